package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/grpc"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/cluster/wire"
	"github.com/weftrt/weft/placement"
	"github.com/weftrt/weft/replication"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// A Node makes a runtime's host one member of a cluster. It keeps the registry
// (who is registered, which partitions each serves), computes placement's
// table from it, routes every message for an instance to the node that serves
// the instance's partition, and places activities over the live nodes.
//
// Every partition is a raft group over its replicas (replicas.go): one to
// Replicas nodes. The rules it keeps:
//   - a partition is served only by its group's leader, which publishes it
//     with its term as the epoch; ownership (placement over the registered
//     nodes) says where replicas and leadership should be, the registry where
//     they are;
//   - replicas move on joins, leaves and the removal of a lost node by raft
//     configuration changes, leadership first (replica_plan.go): a request
//     meanwhile waits for the next leader, it never fails;
//   - with one copy, a dead node keeps its partitions: their requests fail
//     fast with ErrUnavailable naming it, and nothing starts them empty
//     elsewhere.

// DefaultReplicas is how many copies of each partition a cluster keeps unless
// told otherwise.
const DefaultReplicas = 3

// ErrLastNode refuses the leave of the cluster's last registered node.
var ErrLastNode = errors.New("cannot leave")

// ErrUnavailable is returned (wrapped in *UnavailableError) for a request whose
// partition no live node serves now.
var ErrUnavailable = errors.New("partition unavailable")

// UnavailableError says which partition cannot be served and why.
type UnavailableError struct {
	Partition  uint16
	Node       string // the node that holds (or should hold) it
	Reason     string
	RetryAfter time.Duration
	Cause      error // what made it unavailable, when errors.Is should see it
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("partition %d is unavailable: %s", e.Partition, e.Reason)
}

func (e *UnavailableError) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrUnavailable, e.Cause}
	}
	return []error{ErrUnavailable}
}

// NodeConfig configures a Node.
type NodeConfig struct {
	Gossip Config // membership: NodeID, ClusterName, BindAddr, Join, GossipKey, Meta (HTTP, gRPC addresses), Timing
	// ActorAddr is where protoactor's remote transport listens (host:port, port 0
	// picks one); AdvertiseHost is the host other nodes reach it at (default:
	// ActorAddr's host).
	ActorAddr     string
	AdvertiseHost string
	// Transport TLS, if any: gRPC server and dial options for protoactor remote.
	ServerOptions []grpc.ServerOption
	DialOptions   []grpc.DialOption
	// Founder: with a store that never was part of a cluster, this node holds
	// every partition (it creates the cluster). Otherwise it holds none and gets
	// its share as replicas its groups' leaders add.
	Founder bool
	// MoveWait bounds how long a request waits for a partition whose group is
	// electing a leader, or whose new leader is loading it (default 30 s).
	MoveWait time.Duration
	// Replicas is how many nodes keep a copy of each partition: its raft
	// group's voters (capped at the registered nodes). 3 survives the loss of
	// one; 1 keeps one copy, which moves on joins and leaves but is
	// unavailable while its node is down. 0: what this store used last (one
	// copy on a new store). Every node of a cluster should be given the same.
	Replicas int
	// ReplaceAfter is how long a node stays unreachable before the others
	// remove it and replace its replicas (default DefaultReplaceAfter; see
	// removal.go). Replicated partitions only.
	ReplaceAfter time.Duration
	// SnapshotRate bounds the bytes per second this node streams to the
	// replicas it catches up by snapshot (default DefaultSnapshotRate), so
	// that a new replica does not starve the live load.
	SnapshotRate int64
	Logger       *slog.Logger
	// Testing changes the node's behaviour in tests; nil otherwise.
	Testing *TestingKnobs
}

// TestingKnobs make a node fail in ways a test cannot otherwise bring about
// at the moment it needs them. Nil functions change nothing.
type TestingKnobs struct {
	// LoseAnswer is asked after another node answered a forwarded instance
	// message; true makes the caller see no answer, as if the connection
	// failed after the message was applied.
	LoseAnswer func(instanceID string, msg any) bool
	// LoseCommitOutcome is asked after a step of partition part was
	// committed; true makes the step's caller see the error of a leader that
	// lost its leadership before it knew the outcome.
	LoseCommitOutcome func(part uint16) bool
}

// Persisted meta keys.
const (
	heldKey     = "cluster/held"
	registryKey = "cluster/registry"
	replicasKey = "cluster/replicas" // the replica count this store last ran with
)

type heldRecord struct {
	V    uint8             `msgpack:"v"`
	Held map[uint16]uint64 `msgpack:"h"` // partition → epoch
}

// Node is this node's part in the cluster.
type Node struct {
	cfg   NodeConfig
	id    string
	h     *actors.Host
	db    *storage.DB
	log   *slog.Logger
	parts int

	tr  *transport
	ms  *Membership
	reg *Registry
	rep *replicaSet

	mu         sync.Mutex
	held       map[uint16]uint64 // partitions this node serves (leads, loaded) → term
	registered bool
	version    uint64
	changed    chan struct{} // closed and replaced when the registry or held set changes
	placed     map[string]map[placedKey]actors.Invocation
	leaving    bool
	draining   bool

	kick   chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup
	closed bool

	removedCh  chan struct{} // closed when this node learns it was removed (removal.go)
	removedErr *RemovedError
	started    time.Time
}

type placedKey struct {
	instance string
	gen      uint32
	task     int64
	attempt  int
}

// StartNode makes h a member of the cluster: it loads what this node holds, starts
// the actor transport and gossip, registers the node, and routes h's work.
// Call it after the host started.
func StartNode(h *actors.Host, cfg NodeConfig) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = h.Log()
	}
	if cfg.MoveWait <= 0 {
		cfg.MoveWait = 30 * time.Second
	}
	if cfg.ReplaceAfter <= 0 {
		cfg.ReplaceAfter = DefaultReplaceAfter
	}
	if cfg.SnapshotRate <= 0 {
		cfg.SnapshotRate = DefaultSnapshotRate
	}
	n := &Node{
		cfg: cfg, id: cfg.Gossip.NodeID, h: h, db: h.DB(), log: cfg.Logger.With("node", cfg.Gossip.NodeID),
		parts: h.DB().Partitions(), held: map[uint16]uint64{},
		changed: make(chan struct{}), placed: map[string]map[placedKey]actors.Invocation{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), removedCh: make(chan struct{}), started: time.Now(),
	}
	if err := n.loadHeld(); err != nil {
		return nil, err
	}
	var entries []Entry
	var removals []Removal
	if b, err := n.db.GetMeta(registryKey); err == nil {
		if entries, removals, err = decodeState(b); err != nil {
			return nil, err
		}
	}
	n.reg = NewRegistry(entries, n.registryChanged)
	n.reg.mergeRemovals(removals)
	if r, gone := n.reg.Removal(n.id); gone {
		return nil, &RemovedError{Removal: r}
	}
	if own, ok := n.reg.Get(n.id); ok {
		n.version = own.Version
	}
	h.SetRouter(n) // before anything can send to this node: nothing races the host's reads of it
	replicas, err := n.replicaCount()
	if err != nil {
		return nil, err
	}
	if n.rep, err = newReplicaSet(n, replicas); err != nil {
		return nil, err
	}
	alone, err := n.rep.open(n.held)
	if err != nil {
		return nil, fmt.Errorf("cluster: open the partitions' raft groups: %w", err)
	}
	// From now on held is what this node serves as a leader.
	clear(n.held)
	if err := n.persistHeld(); err != nil {
		return nil, err
	}
	h.SetCommitter(n.rep)
	tr, err := startTransport(h.System(), cfg.ActorAddr, cfg.AdvertiseHost, cfg.ServerOptions, cfg.DialOptions, n.handle, n.log)
	if err != nil {
		return nil, err
	}
	n.tr = tr
	n.registered = true
	n.publish()
	n.rep.rt.tr = tr
	tr.notifyLost(func(string) { n.rep.d.Wake() }) // a quiesced group must notice its leader is gone
	n.rep.start(alone)

	gcfg := cfg.Gossip
	gcfg.Meta.ActorAddr = tr.addr
	gcfg.Meta.Partitions = n.parts
	gcfg.State = n.reg
	gcfg.Logger = cfg.Logger
	ms, err := Start(gcfg)
	if err != nil {
		tr.stop()
		return nil, err
	}
	n.ms = ms
	if err := n.RemovedErr(); err != nil {
		// The join's exchange of state brought news of this node's removal:
		// it must not serve a moment.
		_ = n.Close()
		return nil, err
	}
	n.publish() // with the gossip address known
	n.log.Info("cluster node started", "actor", tr.addr, "gossip", ms.Addr(), "holds", len(n.held), "members", len(n.reg.Registered()), "replicas", replicas)

	events, cancel := ms.Subscribe()
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		defer cancel()
		n.watchMembers(events)
	}()
	go func() {
		defer n.wg.Done()
		n.reconcileLoop()
	}()
	return n, nil
}

// replicaCount is how many replicas each partition gets: the configured
// count, else the one this store last ran with (a store that kept raft
// groups before the count was recorded was replicated: DefaultReplicas),
// else one. It is recorded for the next start.
func (n *Node) replicaCount() (int, error) {
	want := n.cfg.Replicas
	if want <= 0 {
		b, err := n.db.GetMeta(replicasKey)
		switch {
		case err == nil && len(b) == 1 && b[0] > 0:
			want = int(b[0])
		case err == nil || errors.Is(err, storage.ErrNotFound):
			want = 1
			log := replication.NewPebbleLog(n.db)
			for p := range n.parts {
				if has, err := log.HasState(replication.GroupID(p)); err != nil {
					return 0, err
				} else if has {
					want = DefaultReplicas
					break
				}
			}
		default:
			return 0, err
		}
	}
	if want > 255 {
		return 0, fmt.Errorf("cluster: %d replicas of each partition: at most 255", want)
	}
	return want, n.db.PutMeta(replicasKey, []byte{byte(want)}, true)
}

// loadHeld reads which partitions this node holds; a store new to the cluster
// holds all of them if this node founds the cluster, none otherwise.
func (n *Node) loadHeld() error {
	b, err := n.db.GetMeta(heldKey)
	if errors.Is(err, storage.ErrNotFound) {
		if n.cfg.Founder {
			for p := range n.parts {
				n.held[uint16(p)] = 1
			}
		}
		return n.persistHeld()
	}
	if err != nil {
		return err
	}
	var rec heldRecord
	if err := msgpack.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("cluster: decode the held partitions: %w", err)
	}
	maps.Copy(n.held, rec.Held)
	return nil
}

// persistHeld records the partitions this node holds outside raft: a
// founder's new store holds them all until they become groups of one
// (StartNode), then none.
func (n *Node) persistHeld() error {
	n.mu.Lock()
	b, err := msgpack.Marshal(&heldRecord{V: 1, Held: maps.Clone(n.held)})
	n.mu.Unlock()
	if err != nil {
		return err
	}
	return n.db.PutMeta(heldKey, b, true)
}

// publish writes this node's registry entry (a new version) and sends it to
// the others.
func (n *Node) publish() {
	n.mu.Lock()
	n.version++
	e := Entry{Node: n.id, Version: n.version, Registered: n.registered, Draining: n.draining, ActorAddr: n.tr.addr, HTTPAddr: n.cfg.Gossip.Meta.HTTPAddr}
	if n.ms != nil {
		e.GossipAddr = n.ms.Addr()
	}
	for _, p := range slices.Sorted(maps.Keys(n.held)) {
		e.Held = append(e.Held, p)
		e.Epochs = append(e.Epochs, n.held[p])
	}
	ms := n.ms
	n.mu.Unlock()
	n.reg.Merge([]Entry{e})
	if ms != nil {
		ms.Broadcast(EncodeEntries([]Entry{e}))
	}
}

func (n *Node) registryChanged() {
	n.checkRemoved()
	n.mu.Lock()
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
	n.poke()
	// A partition may be served again (its node is back, or it landed
	// somewhere): messages waiting for it go now, not after their backoff.
	n.h.RetryDeliveries()
}

func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// alive reports whether a node answers gossip (this node always does).
func (n *Node) alive(node string) bool {
	if node == n.id {
		return true
	}
	return n.ms != nil && n.ms.StateOf(node) == StateAlive
}

// Table is placement's table over the registered nodes.
func (n *Node) Table() *placement.Table {
	ids := n.reg.Registered()
	ms := make([]placement.Member, len(ids))
	for i, id := range ids {
		ms[i] = placement.Member(id)
	}
	return placement.NewTable(n.parts, ms)
}

// holderOf returns the other node that holds p at the highest epoch, if any.
func (n *Node) holderOf(p uint16) (Entry, bool) {
	var best Entry
	var bestEpoch uint64
	found := false
	for _, e := range n.reg.Entries() {
		if e.Node == n.id || e.Removed {
			continue
		}
		if ep, ok := e.Holds(p); ok && (!found || ep > bestEpoch) {
			best, bestEpoch, found = e, ep, true
		}
	}
	return best, found
}

// --- routing (actors.Router) --------------------------------------------------

// Forward implements actors.Router.
func (n *Node) Forward(ctx context.Context, id string, msg any) (bool, error) {
	p := placement.PartitionOf(id, n.parts)
	var kind string
	var payload []byte
	here, ambiguous := false, false
	err := n.onServer(ctx, p, func(target *Entry) error {
		if target == nil {
			here = true
			return nil
		}
		if payload == nil {
			var err error
			if kind, payload, err = actors.EncodeMessage(msg); err != nil {
				return fmt.Errorf("instance %s is served by node %s: %w", id, target.Node, err)
			}
		}
		_, err := n.tr.call(ctx, target.ActorAddr, kindMsg, msgReq{ID: id, Kind: kind, Payload: payload}, hopsOf(ctx)+1)
		if k := n.cfg.Testing; err == nil && k != nil && k.LoseAnswer != nil && k.LoseAnswer(id, msg) {
			err = fmt.Errorf("cluster: %s request to %s: the answer was lost (TestingKnobs.LoseAnswer)", kindMsg, target.ActorAddr)
		}
		// No answer, or "unavailable" (its leader changed mid-commit): the
		// message may have been applied, and onServer tries it again.
		var answered *remoteError
		ambiguous = ambiguous || (err != nil && (!errors.As(err, &answered) || errors.Is(err, ErrUnavailable)))
		return err
	})
	if start, ok := msg.(actors.StartRequest); ok && ambiguous && (errors.Is(err, actors.ErrInstanceExists) || here && err == nil) && n.startLanded(ctx, id, start) {
		// Also when the partition came here meanwhile (its leader moved to
		// this node): the start handled here would answer "already exists".
		return true, nil
	}
	if _, ok := msg.(actors.PurgeRequest); ok && ambiguous && errors.Is(err, actors.ErrInstanceNotFound) {
		// A purge sent again finds nothing: its first attempt purged.
		return true, nil
	}
	return !here, err
}

// startLanded reports whether instance id exists as start would have made
// it. A start sent again after an attempt that may have been applied (no
// answer, or its leader changed mid-commit) finds the instance its first
// attempt created: that is its success, not "already exists".
func (n *Node) startLanded(ctx context.Context, id string, start actors.StartRequest) bool {
	row, err := n.ReadInstance(ctx, id)
	return err == nil && row.Name == start.Name && bytes.Equal(row.Input, start.Input) && row.ParentID == start.ParentID
}

// onServer routes partition p and calls fn with the node that serves it (nil:
// this one). A call that does not reach that node fails with ErrUnavailable;
// with more than one copy it is tried again instead, until MoveWait: the
// node may have died, and another replica then leads the partition.
func (n *Node) onServer(ctx context.Context, p uint16, fn func(target *Entry) error) error {
	deadline := time.Now().Add(n.cfg.MoveWait)
	for {
		n.mu.Lock()
		changed := n.changed
		n.mu.Unlock()
		target, err := n.route(ctx, p)
		if err != nil {
			return err
		}
		err = fn(target)
		if target == nil {
			return err
		}
		err = n.unreachable(ctx, p, target.Node, err)
		if n.rep.oneCopy() || !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-n.stop:
			t.Stop()
			return actors.ErrClosed
		}
		t.Stop()
	}
}

// unreachable turns a failure to reach the node serving partition p (not an
// error that node answered with) into ErrUnavailable naming it: until gossip
// declares the node dead, that is how a crash shows.
func (n *Node) unreachable(ctx context.Context, p uint16, node string, err error) error {
	var answered *remoteError
	if err == nil || errors.As(err, &answered) || ctx.Err() != nil {
		return err
	}
	return &UnavailableError{Partition: p, Node: node, RetryAfter: 2 * time.Second,
		Reason: fmt.Sprintf("its data is on node %s, which did not answer (%v)", node, err)}
}

// route decides where partition p is served: here (nil), or the returned node.
// It waits (at most MoveWait) while nobody serves p (its group elects a
// leader, or a new leader loads it).
func (n *Node) route(ctx context.Context, p uint16) (*Entry, error) {
	if hopsOf(ctx) >= maxHops {
		return nil, &UnavailableError{Partition: p, Reason: "the nodes disagree on who holds it (forwarded too often); retry shortly", RetryAfter: time.Second}
	}
	deadline := time.Now().Add(n.cfg.MoveWait)
	for {
		n.mu.Lock()
		_, held := n.held[p]
		changed := n.changed
		n.mu.Unlock()
		if held {
			return nil, nil
		}
		e, ok := n.holderOf(p)
		if ok && n.alive(e.Node) {
			return &e, nil
		}
		if ok && n.rep.oneCopy() {
			// Its only copy is on a dead node: no other replica can lead it.
			return nil, &UnavailableError{Partition: p, Node: e.Node, RetryAfter: 5 * time.Second,
				Reason: fmt.Sprintf("its data is on node %s, which is not reachable; it is served again when %s is back", e.Node, e.Node)}
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, &UnavailableError{Partition: p, RetryAfter: 2 * time.Second,
				Reason: fmt.Sprintf("no live replica has led its group within %s: fewer than a quorum of its replicas are reachable", n.cfg.MoveWait)}
		}
		t := time.NewTimer(min(remaining, 500*time.Millisecond))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-n.stop:
			t.Stop()
			return nil, actors.ErrClosed
		}
		t.Stop()
	}
}

// Dispatch implements actors.Router: activities go to a node chosen by
// rendezvous hashing over the live registered nodes.
func (n *Node) Dispatch(inv actors.Invocation) bool {
	var live []placement.Member
	for _, id := range n.reg.Registered() {
		if n.alive(id) && !n.rep.silent(id) {
			live = append(live, placement.Member(id))
		}
	}
	n.mu.Lock()
	leaving := n.leaving
	n.mu.Unlock()
	key := fmt.Sprintf("%s/%d/%d/%d", inv.InstanceID, inv.Gen, inv.TaskID, inv.Attempt)
	target := placement.ActivityNode(live, key)
	if target == "" || string(target) == n.id || leaving {
		return false
	}
	e, ok := n.reg.Get(string(target))
	if !ok {
		return false
	}
	n.mu.Lock()
	if n.placed[e.Node] == nil {
		n.placed[e.Node] = map[placedKey]actors.Invocation{}
	}
	n.placed[e.Node][placedKey{inv.InstanceID, inv.Gen, inv.TaskID, inv.Attempt}] = inv
	n.mu.Unlock()
	// The node acknowledges taking the attempt. Without that answer (it crashed,
	// or protoactor dropped the message while reconnecting) the attempt runs here:
	// at worst twice, which the instance's bookkeeping absorbs.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := n.tr.call(ctx, e.ActorAddr, kindRun, inv, 0); err != nil {
			if !n.unplace(e.Node, inv) {
				return // replace took it already (its node died): sent elsewhere once is enough
			}
			select {
			case <-n.stop:
				return // closing: the instance re-sends it after the next start
			default:
			}
			n.log.Debug("activity not taken by its node; running it here", "target", e.Node, "err", err)
			n.h.RunActivity(inv)
		}
	}()
	return true
}

// unplace forgets an attempt placed on a node; it reports whether it was
// still placed there.
func (n *Node) unplace(node string, inv actors.Invocation) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := placedKey{inv.InstanceID, inv.Gen, inv.TaskID, inv.Attempt}
	_, ok := n.placed[node][k]
	delete(n.placed[node], k)
	return ok
}

// replace re-dispatches the attempts placed on a node that died or left and
// whose results have not come back.
func (n *Node) replace(node string) {
	n.mu.Lock()
	invs := slices.Collect(maps.Values(n.placed[node]))
	delete(n.placed, node)
	n.mu.Unlock()
	redone := 0
	for _, inv := range invs {
		if n.h.InFlight(inv) {
			n.h.Redispatch(inv)
			redone++
		}
	}
	if redone > 0 {
		n.log.Info("activities re-sent: the node they ran on is gone", "gone", node, "count", redone)
	}
}

// watchMembers reacts to membership changes.
func (n *Node) watchMembers(events <-chan Event) {
	epochs := map[string]int64{} // each member's start epoch: a new one means it restarted
	for ev := range events {
		n.log.Info("cluster membership changed", "member", ev.Member.ID, "event", ev.Type.String(), "state", ev.Member.State.String())
		m := ev.Member
		restarted := epochs[m.ID] != 0 && m.Meta.Epoch != 0 && m.Meta.Epoch != epochs[m.ID]
		if m.Meta.Epoch != 0 {
			epochs[m.ID] = m.Meta.Epoch
		}
		if ev.Type == EventFail || ev.Type == EventLeave || restarted {
			if e, ok := n.reg.Get(m.ID); ok && e.ActorAddr != "" && ev.Type != EventLeave {
				n.tr.connectionLost(e.ActorAddr) // requests waiting on it fail now, as 503s
			}
			n.replace(m.ID) // what ran there is lost, even if it came back before anyone saw it die
		}
		n.rep.d.Wake()      // quiesced groups notice a failure only by ticking
		n.registryChanged() // liveness changes routing too: wake waiters, reconcile
	}
}

// --- requests from other nodes ------------------------------------------------

func (n *Node) handle(ctx context.Context, env *wire.Envelope) *wire.Envelope {
	dec := func(v any) error { return msgpack.Unmarshal(env.Payload, v) }
	switch env.Kind {
	case kindMsg:
		var r msgReq
		if err := dec(&r); err != nil {
			return reply(nil, err)
		}
		msg, err := actors.DecodeMessage(r.Kind, r.Payload)
		if err != nil {
			return reply(nil, err)
		}
		if res, ok := msg.(actors.ActivityResult); ok {
			n.h.Report(res, r.ID)
			return reply(nil, nil)
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return reply(nil, n.h.Request(ctx, r.ID, msg))
	case kindRun:
		var inv actors.Invocation
		if err := dec(&inv); err != nil {
			return reply(nil, err)
		}
		n.h.RunActivity(inv)
		return reply(nil, nil)
	case kindStatus, kindHistory, kindWait:
		var r idReq
		if err := dec(&r); err != nil {
			return reply(nil, err)
		}
		timeout := time.Minute
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		switch env.Kind {
		case kindStatus:
			row, err := n.ReadInstance(ctx, r.ID)
			return reply(row, err)
		case kindHistory:
			evs, err := n.History(ctx, r.ID)
			return reply(evs, err)
		default:
			row, err := n.WaitFor(ctx, r.ID, r.ForStart)
			return reply(row, err)
		}
	case kindRaft, kindSnapChunk, kindReplicaRemoved, kindGroupMembers:
		return n.rep.receive(env)
	case kindList:
		var q storage.ListQuery
		if err := dec(&q); err != nil {
			return reply(nil, err)
		}
		q.Partitions = n.rep.served()
		page, err := n.db.ListInstances(q)
		if err == nil {
			err = n.db.SyncVisible()
		}
		return reply(page, err)
	case kindCounts:
		counts, err := n.localCounts()
		return reply(counts, err)
	}
	return reply(nil, fmt.Errorf("unknown request kind %q", env.Kind))
}

// --- reads, routed like messages ------------------------------------------------

// ReadInstance returns an instance's committed row from the node serving it.
func (n *Node) ReadInstance(ctx context.Context, id string) (*storage.InstanceRecord, error) {
	p := placement.PartitionOf(id, n.parts)
	var row *storage.InstanceRecord
	err := n.onServer(ctx, p, func(target *Entry) error {
		if target == nil {
			var err error
			row, err = n.h.ReadInstance(id)
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("instance %s: %w", id, actors.ErrInstanceNotFound)
			}
			return err
		}
		b, err := n.callRead(ctx, target.ActorAddr, kindStatus, idReq{ID: id})
		if err != nil {
			return err
		}
		row = &storage.InstanceRecord{}
		return msgpack.Unmarshal(b, row)
	})
	if err != nil {
		return nil, err
	}
	return row, nil
}

// WaitFor waits, on the node serving the instance, until it started (forStart)
// or finished.
func (n *Node) WaitFor(ctx context.Context, id string, forStart bool) (*storage.InstanceRecord, error) {
	cond := func(r *storage.InstanceRecord) bool { return r.Status.Terminal() }
	if forStart {
		cond = func(r *storage.InstanceRecord) bool { return r.Status != storage.Pending }
	}
	for {
		p := placement.PartitionOf(id, n.parts)
		target, err := n.route(ctx, p)
		if err != nil {
			return nil, err
		}
		if target == nil {
			// Wait here, but not past a move of the partition: then ask again.
			wctx, cancel := context.WithCancel(ctx)
			stopOnMove := n.watchMove(p, cancel)
			row, err := n.h.WaitFor(wctx, id, cond)
			stopOnMove()
			cancel()
			if err != nil && ctx.Err() == nil && errors.Is(err, context.Canceled) {
				continue // the partition moved away
			}
			return row, err
		}
		// Ask in slices of at most readAttempt, so a move of the partition is
		// noticed, and an answer lost on the way costs no more than a slice.
		cctx, cancel := context.WithTimeout(ctx, readAttempt)
		b, err := n.tr.call(cctx, target.ActorAddr, kindWait, idReq{ID: id, ForStart: forStart}, hopsOf(ctx)+1)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			err = n.unreachable(ctx, p, target.Node, err)
			if !n.rep.oneCopy() && errors.Is(err, ErrUnavailable) {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
				continue // its node is gone: another replica leads the partition soon
			}
			return nil, err
		}
		var row storage.InstanceRecord
		if err := msgpack.Unmarshal(b, &row); err != nil {
			return nil, err
		}
		return &row, nil
	}
}

// readAttempt bounds one attempt of a read on another node (a status, a
// history, a slice of a wait). Reads are safe to repeat, and an answer can be
// lost: a message to a node that does not listen makes protoactor's endpoint
// wait 2 s and give up, dropping whatever was sent to that node meanwhile, so
// the first answers to a node that just restarted may vanish, and nothing
// tells the asker. A lost answer costs one attempt (a little over those 2 s,
// so the next goes through a fresh endpoint), not the caller's deadline.
const readAttempt = 2500 * time.Millisecond

// callRead asks the node at addr for a read, again after each attempt that
// got no answer in readAttempt, until ctx ends (or a minute passes, as a
// single call's default).
func (n *Node) callRead(ctx context.Context, addr, kind string, req idReq) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel func()
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, readAttempt)
		b, err := n.tr.call(cctx, addr, kind, req, hopsOf(ctx)+1)
		cancel()
		var answered *remoteError
		if err == nil || ctx.Err() != nil || errors.As(err, &answered) || !errors.Is(err, context.DeadlineExceeded) {
			return b, err
		}
		n.log.Debug("no answer to a read; asking again", "kind", kind, "to", addr, "instance", req.ID)
	}
}

// watchMove calls cancel when this node no longer serves partition p.
func (n *Node) watchMove(p uint16, cancel func()) (stop func()) {
	quit := make(chan struct{})
	go func() {
		for {
			n.mu.Lock()
			_, held := n.held[p]
			changed := n.changed
			n.mu.Unlock()
			if !held { // led elsewhere now
				cancel()
				return
			}
			select {
			case <-quit:
				return
			case <-changed:
			case <-time.After(time.Second):
			}
		}
	}()
	return func() { close(quit) }
}

// History returns an instance's history from the node serving it.
func (n *Node) History(ctx context.Context, id string) ([]workflow.Event, error) {
	p := placement.PartitionOf(id, n.parts)
	var evs []workflow.Event
	err := n.onServer(ctx, p, func(target *Entry) error {
		if target == nil {
			if _, err := n.h.ReadInstance(id); errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("history of %s: %w", id, actors.ErrInstanceNotFound)
			}
			var err error
			evs, err = n.h.History(id)
			return err
		}
		b, err := n.callRead(ctx, target.ActorAddr, kindHistory, idReq{ID: id})
		if err != nil {
			return err
		}
		return msgpack.Unmarshal(b, &evs)
	})
	return evs, err
}

// List gathers a page of the listing from every live node: each returns its
// page after the same cursor, and the merge keeps the first PageSize in
// (created, id) order. Nodes that are down are missing from it (the second
// result names them).
func (n *Node) List(ctx context.Context, q storage.ListQuery) (storage.ListPage, []string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	var all []storage.IndexedInstance
	var missing []string
	more := false
	for _, e := range n.reg.Entries() {
		if (len(e.Held) == 0 || e.Removed) && e.Node != n.id {
			continue
		}
		var page storage.ListPage
		var err error
		if e.Node == n.id {
			local := q
			local.Partitions = n.rep.served()
			page, err = n.db.ListInstances(local)
			if err == nil {
				err = n.db.SyncVisible()
			}
		} else if !n.alive(e.Node) {
			missing = append(missing, e.Node)
			continue
		} else {
			var b []byte
			b, err = n.tr.call(ctx, e.ActorAddr, kindList, q, 0)
			if err == nil {
				err = msgpack.Unmarshal(b, &page)
			}
			if err != nil && ctx.Err() == nil && !errors.Is(err, storage.ErrMalformedPageToken) {
				// A node that died since the gossip last heard from it: the
				// listing goes on without it, as for one known to be down.
				missing = append(missing, e.Node)
				continue
			}
		}
		if err != nil {
			return storage.ListPage{}, nil, fmt.Errorf("list on node %s: %w", e.Node, err)
		}
		all = append(all, page.Instances...)
		more = more || page.NextPageToken != ""
	}
	slices.SortFunc(all, func(a, b storage.IndexedInstance) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	out := storage.ListPage{Instances: all}
	if len(all) > limit {
		out.Instances = all[:limit]
		more = true
	}
	if more && len(out.Instances) > 0 {
		last := out.Instances[len(out.Instances)-1]
		out.NextPageToken = storage.PageTokenAfter(last.CreatedAt, last.ID)
	}
	return out, missing, nil
}

// Counts adds up the instance counts of every live node.
func (n *Node) Counts(ctx context.Context) (map[storage.Status]int, []string, error) {
	total := map[storage.Status]int{}
	var missing []string
	for _, e := range n.reg.Entries() {
		if (len(e.Held) == 0 || e.Removed) && e.Node != n.id {
			continue
		}
		var counts map[storage.Status]int
		var err error
		switch {
		case e.Node == n.id:
			counts, err = n.localCounts()
		case !n.alive(e.Node):
			missing = append(missing, e.Node)
			continue
		default:
			var b []byte
			if b, err = n.tr.call(ctx, e.ActorAddr, kindCounts, nil, 0); err == nil {
				err = msgpack.Unmarshal(b, &counts)
			}
			if err != nil && ctx.Err() == nil { // died since the gossip last heard from it
				missing = append(missing, e.Node)
				continue
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("count on node %s: %w", e.Node, err)
		}
		for st, c := range counts {
			total[st] += c
		}
	}
	return total, missing, nil
}

// localCounts counts the instances of the partitions this node serves.
func (n *Node) localCounts() (map[storage.Status]int, error) {
	return n.db.CountByStatusIn(n.rep.served())
}

// --- leaving and stopping -------------------------------------------------------

// Drain prepares a stop that is a restart: with replicated partitions, the
// node hands the leadership of every group it leads to another replica and
// takes none back, keeping its replicas and its place in the cluster, so
// that its stop fails no request; then it leaves the gossip. It gives up at
// ctx's deadline (the others elect leaders when it stops). With one copy of
// each partition, a node cannot stop without making its partitions
// unavailable: Drain is Leave (its partitions move to the others, and back
// when it joins again), unless it is the last node.
func (n *Node) Drain(ctx context.Context) error {
	if n.rep.oneCopy() {
		if err := n.Leave(ctx); !errors.Is(err, ErrLastNode) {
			return err
		}
	}
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
	n.publish()
	n.log.Info("draining for a stop: handing over leadership")
	var err error
	for {
		left := n.rep.handOverLeadership()
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("drain: still leading %d partitions: %w", left, ctx.Err())
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	return n.leaveGossip(err)
}

// Leave leaves the cluster: the node unregisters, its partitions move to the
// nodes placement now gives them (each group's leader replaces this node's
// replica, see leaveReplicated), then it leaves the gossip. It gives up at
// ctx's deadline (what did not move stays here, on disk, and the node keeps
// it when it starts again). A node that left may join again: it gets its
// share of replicas anew.
func (n *Node) Leave(ctx context.Context) error {
	if !slices.ContainsFunc(n.reg.Registered(), func(id string) bool { return id != n.id }) {
		return fmt.Errorf("%w: node %s is the cluster's last registered node and its partitions would have no copy left; stop it instead (SIGTERM), or add a node first", ErrLastNode, n.id)
	}
	n.mu.Lock()
	n.registered = false
	n.leaving = true
	n.mu.Unlock()
	n.publish()
	err := n.leaveReplicated(ctx)
	// The last entry (unregistered, holding nothing) must reach the others before
	// the gossip goes quiet: they would list this node as holding partitions.
	return n.leaveGossip(err)
}

// leaveReplicated waits until this node's replicas have moved to the others.
// Unregistered, the node is in no partition's placement any more: the leader
// of each of its groups adds the partition's next node and removes this
// node's replica (where this node leads, it hands leadership over first;
// replicas.go), and the replica destroys itself.
func (n *Node) leaveReplicated(ctx context.Context) error {
	n.log.Info("leaving the cluster: moving this node's replicas to the others")
	for {
		left := len(n.rep.d.IDs())
		if left == 0 {
			return nil
		}
		n.poke()
		select {
		case <-ctx.Done():
			return fmt.Errorf("leave: still a replica of %d partitions: %w", left, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// leaveGossip sends this node's last registry entry to the others, then
// leaves the gossip; it returns err, or the leave's error if err is nil.
func (n *Node) leaveGossip(err error) error {
	if own, ok := n.reg.Get(n.id); ok {
		n.ms.BroadcastWait(EncodeEntries([]Entry{own}))
	}
	if lerr := n.ms.Leave(5 * time.Second); lerr != nil && err == nil {
		err = lerr
	}
	return err
}

// Close stops the node's gossip, transport and loops (after Leave, or on a
// crash-like stop: its partitions stay registered and held).
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	close(n.stop)
	err := n.ms.Shutdown()
	n.tr.failAll() // requests still waiting on other nodes end now
	n.rep.stop()   // steps waiting for a quorum fail now
	n.wg.Wait()
	_ = n.db.PutMeta(registryKey, n.reg.LocalState(), true)
	n.tr.stop()
	return err
}

// --- views ----------------------------------------------------------------------

// ID is this node's id.
func (n *Node) ID() string { return n.id }

// Collectors returns the node's Prometheus collectors (replication's).
func (n *Node) Collectors() []prometheus.Collector {
	return n.rep.collectors()
}

// MemberView is one member as the members listing shows it.
type MemberView struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Registered bool   `json:"registered"`
	Gossip     string `json:"gossip,omitempty"`
	Actor      string `json:"actor,omitempty"`
	HTTP       string `json:"http,omitempty"`
	Partitions int    `json:"partitions"` // owned in this node's table
	Held       int    `json:"held"`
}

// Members lists the registry with liveness and owned partition counts.
func (n *Node) Members() []MemberView {
	counts := n.Table().Count()
	state := map[string]string{}
	for _, m := range n.ms.Members() {
		state[m.ID] = m.State.String()
	}
	var out []MemberView
	for _, e := range n.reg.Entries() {
		st := state[e.Node]
		if st == "" {
			st = "dead" // registered, but gossip has not heard of it since this node started
			if !e.Registered {
				st = "left"
			}
		}
		if e.Node == n.id {
			st = "alive"
		}
		if !e.Registered && st == "dead" {
			st = "left" // it unregistered: gossip may not have heard its leave before it went
		}
		if e.Removed {
			st = "removed"
		}
		out = append(out, MemberView{ID: e.Node, State: st, Registered: e.Registered, Gossip: e.GossipAddr, Actor: e.ActorAddr,
			HTTP: e.HTTPAddr, Partitions: counts[placement.Member(e.Node)], Held: len(e.Held)})
	}
	return out
}

// PartitionView is one partition as the partitions listing shows it.
//
// Holder is the group's leader and Epoch its term; Replicas, Learners, Term and Applied are this node's view of the
// group (empty when it has no replica of it).
type PartitionView struct {
	Partition int    `json:"partition"`
	Owner     string `json:"owner"`
	Holder    string `json:"holder"`
	Epoch     uint64 `json:"epoch"`
	Serving   bool   `json:"serving"`

	Replicas        []string `json:"replicas,omitempty"`
	Learners        []string `json:"learners,omitempty"` // replicas being added, catching up
	Term            uint64   `json:"term,omitempty"`
	Applied         uint64   `json:"applied,omitempty"`
	Quorum          bool     `json:"quorum,omitempty"`           // a majority of the replicas is alive
	UnderReplicated bool     `json:"under_replicated,omitempty"` // fewer live replicas than the cluster wants
	// Snapshots are this node's snapshots of the partition being streamed to
	// replicas it catches up.
	Snapshots []SnapshotProgress `json:"snapshots,omitempty"`
}

// Partitions lists the placement table with where each partition's data is.
func (n *Node) Partitions() []PartitionView {
	table := n.Table()
	out := make([]PartitionView, n.parts)
	n.mu.Lock()
	held := maps.Clone(n.held)
	n.mu.Unlock()
	for p := range out {
		v := PartitionView{Partition: p, Owner: string(table.Owners[p])}
		if ep, ok := held[uint16(p)]; ok {
			v.Holder, v.Epoch, v.Serving = n.id, ep, true
		} else if e, ok := n.holderOf(uint16(p)); ok {
			v.Holder = e.Node
			v.Epoch, _ = e.Holds(uint16(p))
			v.Serving = n.alive(e.Node)
		}
		n.rep.view(&v)
		out[p] = v
	}
	return out
}

// Ready reports whether this node serves every partition it owns.
func (n *Node) Ready() error {
	return n.rep.notReady()
}
