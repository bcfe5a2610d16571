package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
	"unicode"

	"github.com/hashicorp/memberlist"
)

// DefaultClusterName is the cluster name when Config.ClusterName is empty.
const DefaultClusterName = "weft"

// DefaultGossipPort is memberlist's customary port, used when BindAddr is empty.
const DefaultGossipPort = 7946

// Config configures a node's membership.
type Config struct {
	NodeID string // required; see LoadOrCreateNodeID
	// ClusterName keeps clusters apart: memberlist prefixes every packet and
	// stream with it and drops those of another name, so two clusters on one
	// network never merge even if one is told to join the other. Default "weft".
	ClusterName string
	// BindAddr is the gossip address, host:port, for both UDP and TCP. Port 0
	// picks a free port (Membership.Addr reports it). Default 0.0.0.0:7946.
	BindAddr string
	// AdvertiseAddr is the address other nodes reach this one at, when it
	// differs from BindAddr (NAT, a wildcard bind). Port 0 means BindAddr's port.
	AdvertiseAddr string
	Join          []string // host:port of any members, tried in turn; empty to found a cluster
	// GossipKey, base64 of 16, 24 or 32 bytes, encrypts and authenticates every
	// gossip message (AES-GCM); nodes without the same key cannot join. Empty
	// means no encryption. GenerateGossipKey makes one.
	GossipKey string
	Meta      Meta // NodeID is filled in from NodeID; Partitions 0 means placement.DefaultPartitions
	Timing    Timing
	Logger    *slog.Logger // nil means slog.Default(); memberlist's own lines go to debug
	// State, when set, is replicated state the node exchanges with its peers:
	// memberlist's push/pull anti-entropy (on join and every PushPullInterval)
	// carries LocalState, and Membership.Broadcast sends updates at once.
	State StateDelegate
	// WrapTransport, when set, wraps the gossip's network transport (UDP and
	// TCP on BindAddr): a network of one's own, or faults injected into it
	// (test/faultnet cuts nodes off from each other).
	WrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

// StateDelegate is state replicated over gossip. MergeRemoteState receives both a
// peer's whole state and a broadcast update, so one encoding serves both; it
// must be idempotent and order-insensitive (a CRDT), since messages repeat and
// arrive in any order.
type StateDelegate interface {
	LocalState() []byte
	MergeRemoteState(buf []byte)
}

// Timing tunes failure detection and dissemination. Zero fields keep
// memberlist's LAN defaults, given in brackets. Detecting a death takes a
// failed probe, then a suspicion of SuspicionMult × ProbeInterval ×
// max(1, log10 N); in clusters big enough to expect confirmations from other
// members (N > SuspicionMult), the suspicion starts six times longer and
// confirmations shorten it. Measured on loopback with 3 nodes: 5.8–6.8 s with
// the defaults, 0.76–0.98 s (under -race) with the tests' 200 ms probes,
// 100 ms probe timeout and SuspicionMult 2.
type Timing struct {
	ProbeInterval    time.Duration // between failure probes of a random member [1 s]
	ProbeTimeout     time.Duration // for a probe's ack: the network's p99 round trip [500 ms]
	GossipInterval   time.Duration // between gossip rounds [200 ms]
	PushPullInterval time.Duration // between full state syncs with a random member [30 s]
	SuspicionMult    int           // suspicion lasts this many probe intervals (scaled by cluster size) [4]
	TCPTimeout       time.Duration // for a join's or sync's stream, hence how long a join to a silent address waits [10 s]
}

// GenerateGossipKey returns a new random AES-256 gossip key in base64, as
// Config.GossipKey takes it.
func GenerateGossipKey() (string, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", fmt.Errorf("cluster: generate gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k[:]), nil
}

func parseGossipKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip key is not valid base64: %w", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("cluster: gossip key is %d bytes once decoded; it must be 16, 24 or 32 (AES-128, -192 or -256)", len(k))
}

func validateClusterName(name string) error {
	if len(name) > memberlist.LabelMaxSize {
		return fmt.Errorf("cluster: cluster name is %d bytes; at most %d", len(name), memberlist.LabelMaxSize)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("cluster: cluster name %q contains the unprintable %q", name, r)
		}
	}
	return nil
}

func splitHostPort(what, addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("cluster: %s %q: %w", what, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("cluster: %s %q: bad port %q", what, addr, p)
	}
	return host, port, nil
}

// memberlistConfig turns cfg into memberlist's configuration, starting from
// its LAN defaults. It sets no delegates.
func (cfg *Config) memberlistConfig() (*memberlist.Config, error) {
	if err := ValidateNodeID(cfg.NodeID); err != nil {
		return nil, err
	}
	if err := validateClusterName(cfg.ClusterName); err != nil {
		return nil, err
	}
	key, err := parseGossipKey(cfg.GossipKey)
	if err != nil {
		return nil, err
	}
	c := memberlist.DefaultLANConfig()
	c.Name = cfg.NodeID
	c.Label = cfg.ClusterName
	c.SecretKey = key
	// A node that comes back after a crash may come back at another address (a
	// new container, port 0 in tests): memberlist refuses a known name at a new
	// address unless the old one has been dead this long.
	c.DeadNodeReclaimTime = time.Second

	bind := cfg.BindAddr
	if bind == "" {
		bind = net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultGossipPort))
	}
	if c.BindAddr, c.BindPort, err = splitHostPort("bind address", bind); err != nil {
		return nil, err
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	c.AdvertisePort = c.BindPort
	if cfg.AdvertiseAddr != "" {
		host, port, err := splitHostPort("advertise address", cfg.AdvertiseAddr)
		if err != nil {
			return nil, err
		}
		if port != 0 && c.BindPort == 0 {
			// memberlist overwrites the advertised port with the one it picked.
			return nil, errors.New("cluster: an advertise port needs a fixed bind port (BindAddr port is 0)")
		}
		c.AdvertiseAddr = host
		if port != 0 {
			c.AdvertisePort = port
		}
	}

	t := cfg.Timing
	if t.ProbeInterval < 0 || t.ProbeTimeout < 0 || t.GossipInterval < 0 || t.PushPullInterval < 0 || t.SuspicionMult < 0 || t.TCPTimeout < 0 {
		return nil, fmt.Errorf("cluster: negative timing %+v", t)
	}
	setIf(&c.ProbeInterval, t.ProbeInterval)
	setIf(&c.ProbeTimeout, t.ProbeTimeout)
	setIf(&c.GossipInterval, t.GossipInterval)
	setIf(&c.PushPullInterval, t.PushPullInterval)
	setIf(&c.SuspicionMult, t.SuspicionMult)
	setIf(&c.TCPTimeout, t.TCPTimeout)
	if c.ProbeTimeout > c.ProbeInterval {
		return nil, fmt.Errorf("cluster: probe timeout %v exceeds the probe interval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	return c, nil
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}
