package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/grpc"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/cluster/wire"
)

// Nodes talk over protoactor-go's remote transport: each node runs one named
// actor, "weft-node", that takes wire.Envelope requests and answers each with an
// envelope. The payloads are msgpack; the kinds are below.

const handlerName = "weft-node"

// Envelope kinds.
const (
	kindMsg                = "msg"     // an actor message for an instance (routed again on arrival)
	kindRun                = "run"     // run an activity attempt here
	kindStatus             = "status"  // read an instance's row
	kindWait               = "wait"    // wait for an instance to start or finish
	kindHistory            = "history" // read an instance's history
	kindList               = "list"    // a page of this node's listing index
	kindCounts             = "counts"  // this node's instance counts
	kindRaft               = "raft"    // raft messages of any groups, one way (raft_transport.go)
	kindSnapChunk          = "snap"    // part of a snapshot's data, before its raft message (replicas.go)
	kindReplicaRemoved     = "removed" // a replica of a group was removed by its leader (replicas.go)
	kindGroupMembers       = "members" // a group's members as its leader sees them (replica_gc.go)
	maxHops                = 4         // a request forwarded more often than this is refused
	hopsKey            key = "weft-hops"
)

type key string

// msgReq carries an actor message for instance ID.
type msgReq struct {
	ID      string `msgpack:"id"`
	Kind    string `msgpack:"k"`
	Payload []byte `msgpack:"p"`
}

type idReq struct {
	ID       string `msgpack:"id"`
	ForStart bool   `msgpack:"s,omitempty"`
}

// Errors cross the wire as a class and a message; the class restores the
// sentinel callers match with errors.Is.
var wireErrors = map[string]error{
	"not-found":    actors.ErrInstanceNotFound,
	"exists":       actors.ErrInstanceExists,
	"not-finished": actors.ErrNotFinished,
	"not-running":  actors.ErrNotRunning,
	"closed":       actors.ErrClosed,
	"deadline":     context.DeadlineExceeded,
	"unavailable":  ErrUnavailable,
}

func errorClass(err error) string {
	for class, sentinel := range wireErrors {
		if errors.Is(err, sentinel) {
			return class
		}
	}
	return "error"
}

// remoteError is an error another node returned.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// transport is this node's end of protoactor remote.
type transport struct {
	system *actor.ActorSystem
	remote *remote.Remote
	addr   string // host:port other nodes reach this one at
	log    *slog.Logger

	// Requests waiting for an answer, by address: when protoactor loses the
	// connection to an address (the node crashed), they fail at once instead of
	// waiting out their timeout.
	mu      sync.Mutex
	pending map[string]map[*actor.Future]struct{}
	closed  bool // failAll ran: requests fail at once
	onLost  func(addr string)
	sub     *eventstream.Subscription
}

// notifyLost makes fn hear of every connection lost (a node crashed, or the
// network between failed).
func (t *transport) notifyLost(fn func(addr string)) {
	t.mu.Lock()
	t.onLost = fn
	t.mu.Unlock()
}

// codeUnreachable marks an answer the transport made up for a lost connection.
const codeUnreachable = "unreachable"

func (t *transport) track(addr string, f *actor.Future) func() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.system.Root.Send(f.PID(), &wire.Envelope{Error: "this node is stopping", Code: codeUnreachable})
		return func() {}
	}
	if t.pending[addr] == nil {
		t.pending[addr] = map[*actor.Future]struct{}{}
	}
	t.pending[addr][f] = struct{}{}
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.pending[addr], f)
		t.mu.Unlock()
	}
}

// failAll ends every request waiting for an answer: the node is stopping.
func (t *transport) failAll() {
	t.mu.Lock()
	t.closed = true
	addrs := make([]string, 0, len(t.pending))
	for a := range t.pending {
		addrs = append(addrs, a)
	}
	t.mu.Unlock()
	for _, a := range addrs {
		t.connectionLost(a)
	}
}

func (t *transport) connectionLost(addr string) {
	t.mu.Lock()
	fs := t.pending[addr]
	delete(t.pending, addr)
	onLost := t.onLost
	t.mu.Unlock()
	if onLost != nil {
		onLost(addr)
	}
	for f := range fs {
		t.system.Root.Send(f.PID(), &wire.Envelope{Error: "connection to " + addr + " lost", Code: codeUnreachable})
	}
}

// startTransport starts protoactor remote on bind (host:port; port 0 picks one),
// advertising advertiseHost (empty: the bind host), and spawns the handler.
func startTransport(system *actor.ActorSystem, bind, advertiseHost string, serverOpts []grpc.ServerOption, dialOpts []grpc.DialOption,
	handle func(ctx context.Context, env *wire.Envelope) *wire.Envelope, log *slog.Logger) (t *transport, err error) {
	host, portStr, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, fmt.Errorf("cluster: actor address %q: %w", bind, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("cluster: actor address %q: bad port", bind)
	}
	if port == 0 {
		// protoactor advertises the address it was given; pick the port here so
		// the advertised one is real.
		ln, err := net.Listen("tcp", bind)
		if err != nil {
			return nil, fmt.Errorf("cluster: actor address %s: %w", bind, err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	if advertiseHost == "" {
		advertiseHost = host
	}
	if advertiseHost == "" || advertiseHost == "0.0.0.0" || advertiseHost == "::" {
		return nil, fmt.Errorf("cluster: actor address %s binds every interface: set --advertise to the host other nodes reach this one at", bind)
	}
	opts := []remote.ConfigOption{remote.WithAdvertisedHost(net.JoinHostPort(advertiseHost, strconv.Itoa(port)))}
	grpcOpts := append([]grpc.ServerOption{grpc.MaxRecvMsgSize(64 << 20)}, serverOpts...)
	opts = append(opts, remote.WithServerOptions(grpcOpts...))
	if len(dialOpts) > 0 {
		opts = append(opts, remote.WithDialOptions(dialOpts...))
	}
	opts = append(opts, remote.WithCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	rcfg := remote.Configure(host, port, opts...)
	// protoactor retries a failed connection 5 times, 2 s apart, before it
	// answers the queued requests with dead letters: 10 s for a request to a node
	// that just crashed. One attempt: the caller answers ErrUnavailable at once,
	// and the next request connects afresh.
	rcfg.MaxRetryCount = 1
	r := remote.NewRemote(system, rcfg)
	defer func() {
		if p := recover(); p != nil { // protoactor panics when it cannot listen
			err = fmt.Errorf("cluster: start the actor transport on %s: %v", bind, p)
		}
	}()
	r.Start()
	t = &transport{system: system, remote: r, addr: system.ProcessRegistry.Address, log: log, pending: map[string]map[*actor.Future]struct{}{}}
	t.sub = system.EventStream.Subscribe(func(evt any) {
		if e, ok := evt.(*remote.EndpointTerminatedEvent); ok {
			t.connectionLost(e.Address)
		}
	})
	props := actor.PropsFromFunc(func(c actor.Context) {
		env, ok := c.Message().(*wire.Envelope)
		if !ok {
			return
		}
		if env.Kind == kindRaft {
			// Raft messages are handed over in the order they came (raft copes
			// with reordering, but an append overtaken by the next is rejected
			// and sent again), and taking them never waits.
			handle(context.Background(), env)
			return
		}
		sender := c.Sender()
		go func() { // a request may wait (a long poll, a move): never block the mailbox
			ctx := context.WithValue(context.Background(), hopsKey, int(env.Hops))
			reply := handle(ctx, env)
			if sender != nil {
				system.Root.Send(sender, reply)
			}
		}()
	})
	if _, err := system.Root.SpawnNamed(props, handlerName); err != nil {
		r.Shutdown(false)
		return nil, fmt.Errorf("cluster: spawn the node handler: %w", err)
	}
	return t, nil
}

func (t *transport) stop() {
	t.system.EventStream.Unsubscribe(t.sub)
	t.remote.Shutdown(true)
}

// call sends a request to the node at addr and waits for its answer.
func (t *transport) call(ctx context.Context, addr, kind string, req any, hops int) ([]byte, error) {
	var payload []byte
	if req != nil {
		var err error
		if payload, err = msgpack.Marshal(req); err != nil {
			return nil, fmt.Errorf("cluster: encode %s request: %w", kind, err)
		}
	}
	timeout := time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	pid := actor.NewPID(addr, handlerName)
	f := t.system.Root.RequestFuture(pid, &wire.Envelope{Kind: kind, Payload: payload, Hops: uint32(hops)}, timeout)
	untrack := t.track(addr, f)
	res, err := f.Result()
	untrack()
	if err != nil {
		if errors.Is(err, actor.ErrTimeout) {
			return nil, fmt.Errorf("cluster: %s request to %s: no answer within %s: %w", kind, addr, timeout.Round(time.Millisecond), context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("cluster: %s request to %s: %w", kind, addr, err)
	}
	env, ok := res.(*wire.Envelope)
	if !ok {
		return nil, fmt.Errorf("cluster: %s request to %s: unexpected answer %T", kind, addr, res)
	}
	if env.Code == codeUnreachable {
		return nil, fmt.Errorf("cluster: %s request to %s: %s", kind, addr, env.Error)
	}
	if env.Error != "" {
		return nil, &remoteError{msg: env.Error, sentinel: wireErrors[env.Code]}
	}
	return env.Payload, nil
}

// send sends a request without waiting for an answer.
func (t *transport) send(addr, kind string, req any) error {
	payload, err := msgpack.Marshal(req)
	if err != nil {
		return fmt.Errorf("cluster: encode %s request: %w", kind, err)
	}
	t.system.Root.Send(actor.NewPID(addr, handlerName), &wire.Envelope{Kind: kind, Payload: payload})
	return nil
}

// reply builds an answer envelope.
func reply(v any, err error) *wire.Envelope {
	if err != nil {
		return &wire.Envelope{Error: err.Error(), Code: errorClass(err)}
	}
	if v == nil {
		return &wire.Envelope{}
	}
	b, merr := msgpack.Marshal(v)
	if merr != nil {
		return &wire.Envelope{Error: fmt.Sprintf("encode answer: %v", merr), Code: "error"}
	}
	return &wire.Envelope{Payload: b}
}

func hopsOf(ctx context.Context) int {
	h, _ := ctx.Value(hopsKey).(int)
	return h
}
