// Package faultnet cuts a weft node off from chosen peers, for tests of
// network partitions between real processes: the node's gossip transport
// (cluster.Config.WrapTransport) and its node-to-node connections (a gRPC
// dialer in cluster.NodeConfig.DialOptions) drop everything to and from the
// addresses blocked. A partition is made by telling each side to block the
// other's gossip and actor addresses (Handler serves that over HTTP);
// connections open when a block starts are closed.
package faultnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/grpc"
)

// ErrCut is returned for a dial or a send to a blocked address.
var ErrCut = errors.New("faultnet: this link is cut")

// Net is one node's view of the network: the addresses it cannot reach.
type Net struct {
	mu      sync.Mutex
	blocked map[string]bool     // host:port
	conns   map[net.Conn]string // open outbound connections → remote address
}

// New returns a Net with every link up.
func New() *Net { return &Net{blocked: map[string]bool{}, conns: map[net.Conn]string{}} }

// Block cuts the links to and from addrs (replacing the previous set) and
// closes the connections open to them.
func (n *Net) Block(addrs []string) {
	n.mu.Lock()
	n.blocked = map[string]bool{}
	for _, a := range addrs {
		n.blocked[a] = true
	}
	var doomed []net.Conn
	for c, a := range n.conns {
		if n.blocked[a] {
			doomed = append(doomed, c)
			delete(n.conns, c)
		}
	}
	n.mu.Unlock()
	for _, c := range doomed {
		_ = c.Close()
	}
}

// Blocked lists the addresses cut off.
func (n *Net) Blocked() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for a := range n.blocked {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

func (n *Net) cut(addr string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.blocked[addr]
}

// DialOption is the gRPC dialer of the node's actor transport.
func (n *Net) DialOption() grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		if n.cut(addr) {
			return nil, fmt.Errorf("dial %s: %w", addr, ErrCut)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		n.conns[c] = addr
		n.mu.Unlock()
		return &trackedConn{Conn: c, n: n}, nil
	})
}

type trackedConn struct {
	net.Conn
	n *Net
}

func (c *trackedConn) Close() error {
	c.n.mu.Lock()
	delete(c.n.conns, c.Conn)
	c.n.mu.Unlock()
	return c.Conn.Close()
}

// WrapTransport is cluster.Config.WrapTransport: gossip packets and streams to
// and from blocked addresses are dropped.
func (n *Net) WrapTransport(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	w := &transport{NodeAwareTransport: t, n: n, packets: make(chan *memberlist.Packet)}
	go func() {
		defer close(w.packets)
		for p := range t.PacketCh() {
			if p.From != nil && n.cut(p.From.String()) {
				continue
			}
			w.packets <- p
		}
	}()
	return w
}

type transport struct {
	memberlist.NodeAwareTransport
	n       *Net
	packets chan *memberlist.Packet
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.n.cut(addr) {
		return time.Now(), nil // lost on the way, as UDP is
	}
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.n.cut(a.Addr) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.n.cut(addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrCut)
	}
	return t.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.n.cut(a.Addr) {
		return nil, fmt.Errorf("dial %s: %w", a.Addr, ErrCut)
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, timeout)
}

// Handler serves the node's block list: GET returns {"blocked": [...]}, PUT
// with the same body replaces it.
func (n *Net) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		type body struct {
			Blocked []string `json:"blocked"`
		}
		switch r.Method {
		case http.MethodGet:
		case http.MethodPut:
			var b body
			if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
				http.Error(w, "faultnet: want {\"blocked\": [\"host:port\", ...]}: "+err.Error(), http.StatusBadRequest)
				return
			}
			n.Block(b.Blocked)
		default:
			http.Error(w, "faultnet: GET or PUT", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body{Blocked: n.Blocked()})
	})
}
