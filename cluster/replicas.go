package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmihailenco/msgpack/v5"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/time/rate"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/cluster/wire"
	"github.com/weftrt/weft/placement"
	"github.com/weftrt/weft/replication"
	"github.com/weftrt/weft/storage"
)

// Replicated partitions. Every partition is a raft group (package
// replication) over its replicas, one to NodeConfig.Replicas nodes:
//
//   - the group's leader serves the partition: leadership and holding are one
//     thing. A node publishes the partitions it leads in its registry entry,
//     with the raft term as the epoch, so the highest term names the leader
//     wherever the entry reaches; a request for a partition goes there, and
//     waits (at most MoveWait) while the group elects one;
//   - a step is the raft entry: it commits on a quorum of replicas, every
//     replica applies it to its store, and the leader acts on it only then;
//   - a new leader serves once it has applied an entry of its term (then its
//     store has everything a previous leader committed): it loads the
//     partition's reminders and wakes its instances with work in flight. A
//     leader that steps down (a newer term, or raft's CheckQuorum when it
//     cannot reach a quorum) stops the partition's actors and drops its
//     reminders, and its steps in flight fail;
//   - a store that held partitions before it was replicated (a founder, an
//     older data directory) creates each one's group with itself as the only
//     replica, the data as it is as the state at the log's start; the group
//     grows into its replica count: while it has fewer than Replicas, the
//     leader adds the next registered node of the partition's rendezvous order
//     as a learner, which is caught up by snapshot (the partition's keys,
//     streamed), then promotes it to voter;
//   - leadership goes to the partition's owner in placement's table when it is
//     a caught-up voter, so the load spreads over the nodes as partitions do;
//   - replicas move on joins, leaves and removals by the replica plan
//     (replica_plan.go), one configuration change at a time (reconcile);
//     with one copy, a move briefly has two voters (the new replica is
//     promoted, leadership moves to it, then the old one is removed).

// A group created over data that is already there starts its log after this
// index and term (as CockroachDB starts its ranges' logs): a replica added
// later has no log to start from and is caught up by snapshot.
const (
	bootstrapIndex = 10
	bootstrapTerm  = 5
)

const (
	snapshotChunkBytes  = 1 << 20
	maxSnapshotsSending = 4
	// membershipPause: after proposing a change of a group's replicas or a
	// transfer of its leadership, the leader waits this long before the next
	// unless the change took effect sooner.
	membershipPause = 3 * time.Second
	raftTick        = 100 * time.Millisecond
)

// replicaSet is a node's replicas of partitions: the raft driver, its log in
// the node's store and what happens on leadership changes.
type replicaSet struct {
	n    *Node
	want int
	self replication.NodeID
	log  *replication.PebbleLog
	sm   *replication.StoreStateMachine
	d    *replication.Driver
	rt   *raftTransport

	gcNow         atomic.Bool   // a replica may have been removed: collect garbage now
	sending       chan struct{} // bounds the snapshots streamed at once
	limiter       *rate.Limiter // bounds their bytes per second, together
	snapshotsSent prometheus.Counter
	snapshotBytes prometheus.Counter
	progressMu    sync.Mutex
	progress      map[sendKey]*SnapshotProgress

	// heard is when each peer (by replica id) was last heard from: any raft
	// batch, a ping included. Guarded by heardMu.
	heardMu sync.Mutex
	heard   map[replication.NodeID]time.Time

	// Guarded by n.mu.
	leading map[uint16]uint64 // partitions raft says this node serves → term
	changes []replication.LeaderChange
	paused  map[uint16]pause // no membership change or transfer before
	wake    chan struct{}
}

func newReplicaSet(n *Node, want int) (*replicaSet, error) {
	rs := &replicaSet{n: n, want: want, self: placement.ReplicaID(placement.Member(n.id)),
		log: replication.NewPebbleLog(n.db), sending: make(chan struct{}, maxSnapshotsSending),
		leading: map[uint16]uint64{}, paused: map[uint16]pause{}, wake: make(chan struct{}, 1), heard: map[replication.NodeID]time.Time{},
		snapshotsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_raft_snapshots_sent_total",
			Help: "Snapshots (a partition's keys) streamed to replicas that were added or too far behind for the log."}),
		snapshotBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_raft_snapshot_bytes_sent_total",
			Help: "Bytes of snapshot data streamed to other replicas (throttled to the node's snapshot rate)."}),
		limiter:  rate.NewLimiter(rate.Limit(n.cfg.SnapshotRate), snapshotBurst),
		progress: map[sendKey]*SnapshotProgress{}}
	rs.sm = replication.NewStoreStateMachine(n.db, rs.leadershipChanged)
	rs.rt = &raftTransport{self: rs.self, addrOf: rs.addrOf, log: n.log, snapshot: rs.sendSnapshot}
	d, err := replication.NewDriver(replication.DriverConfig{
		Groups:       replication.Config{NodeID: rs.self},
		Tick:         raftTick,
		Log:          rs.log,
		Transport:    rs.rt,
		StateMachine: rs.sm,
		Logger:       n.log,
		Adopt: func(replication.GroupID) bool {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.registered && !n.leaving && n.removedErr == nil
		},
		Departed: func(dep replication.Departure) { rs.departed(dep) },
	})
	if err != nil {
		return nil, err
	}
	rs.d = d
	return rs, nil
}

// open creates this node's replicas: every group with raft state in the store,
// and a one-replica group for every partition the node held before its
// partitions were replicated (all of them on a founder's new store). Every
// partition starts fenced: it is served once this node leads it.
func (rs *replicaSet) open(held map[uint16]uint64) (alone []uint16, err error) {
	n := rs.n
	for p := range n.parts {
		part := uint16(p)
		if err := n.h.StopPartition(context.Background(), part); err != nil {
			return nil, err
		}
		g := replication.GroupID(part)
		has, err := rs.log.HasState(g)
		if err != nil {
			return nil, err
		}
		if !has {
			if _, ok := held[part]; !ok {
				continue // a replica of it arrives from its leader, if ever
			}
			if err := rs.log.Bootstrap(g, []replication.NodeID{rs.self}, bootstrapIndex, bootstrapTerm); err != nil {
				return nil, err
			}
		}
		applied, err := rs.sm.AppliedIndex(g)
		if err != nil {
			return nil, err
		}
		if err := rs.d.Create(g, nil, applied); err != nil {
			return nil, err
		}
		_, cs, err := rs.log.Storage(g).InitialState()
		if err != nil {
			return nil, err
		}
		if slices.Equal(cs.GetVoters(), []replication.NodeID{rs.self}) {
			alone = append(alone, part)
		}
	}
	return alone, nil
}

// start runs the driver and the loop that serves and stops partitions as
// leadership moves; groups this node is the only voter of elect it at once.
func (rs *replicaSet) start(alone []uint16) {
	rs.d.Start()
	for _, p := range alone {
		if err := rs.d.Campaign(replication.GroupID(p)); err != nil {
			rs.n.log.Warn("campaign failed", "partition", p, "err", err)
		}
	}
	rs.n.wg.Add(2)
	go func() {
		defer rs.n.wg.Done()
		rs.serveLoop()
	}()
	go func() {
		defer rs.n.wg.Done()
		rs.livenessLoop()
	}()
}

// A peer is pinged every pingInterval; one not heard from for silenceAfter
// (three pings) may be gone. A ping is a message over the actor transport:
// two a second per peer keep an idle node's CPU low (measured in
// clusterbench's idle part).
const (
	pingInterval = 500 * time.Millisecond
	silenceAfter = 3 * pingInterval
)

// livenessLoop pings every registered peer and wakes every group
// when one falls silent. Quiesced groups send nothing, so without it a dead
// peer or a network partition would be noticed only when the gossip declares
// a node dead (seconds): a quiesced follower would not campaign for its dead
// leader's partitions, and a quiesced leader cut off from its peers would not
// step down. Woken, raft does both within an election timeout (CheckQuorum).
func (rs *replicaSet) livenessLoop() {
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
	started := time.Now()
	silent := map[replication.NodeID]bool{}
	for {
		select {
		case <-rs.n.stop:
			return
		case <-tick.C:
		}
		wake := false
		for _, e := range rs.n.reg.Entries() {
			if e.Node == rs.n.id || !e.Registered || e.ActorAddr == "" {
				continue
			}
			id := placement.ReplicaID(placement.Member(e.Node))
			rs.rt.ping(e.ActorAddr)
			rs.heardMu.Lock()
			last, ok := rs.heard[id]
			rs.heardMu.Unlock()
			if !ok {
				last = started
			}
			quiet := time.Since(last) > silenceAfter
			if quiet && !silent[id] {
				wake = true // newly silent: once per silence, not every tick
				// It is presumed down: calls waiting on it fail now (they are
				// routed again), and what it ran for this node is sent elsewhere,
				// rather than when the gossip declares it dead, seconds later (an
				// attempt it still runs may then run twice, as after a crash).
				rs.n.tr.connectionLost(e.ActorAddr)
				rs.n.replace(e.Node)
			}
			silent[id] = quiet
		}
		if wake {
			rs.d.Wake()
		}
	}
}

// silent reports whether a node has not answered the replicas' pings for
// silenceAfter (this node never is).
func (rs *replicaSet) silent(node string) bool {
	if node == rs.n.id {
		return false
	}
	rs.heardMu.Lock()
	last, ok := rs.heard[placement.ReplicaID(placement.Member(node))]
	rs.heardMu.Unlock()
	return ok && time.Since(last) > silenceAfter
}

// heardFrom records that a peer spoke.
func (rs *replicaSet) heardFrom(id replication.NodeID) {
	if id == 0 {
		return
	}
	rs.heardMu.Lock()
	rs.heard[id] = time.Now()
	rs.heardMu.Unlock()
}

func (rs *replicaSet) stop() {
	rs.d.Stop()
	rs.log.Close()
}

// CommitStep implements actors.StepCommitter: the step is the partition's next
// raft entry.
func (rs *replicaSet) CommitStep(part uint16, b *storage.Batch) error {
	err := rs.d.CommitStep(part, b)
	if k := rs.n.cfg.Testing; err == nil && k != nil && k.LoseCommitOutcome != nil && k.LoseCommitOutcome(part) {
		err = fmt.Errorf("%w (TestingKnobs.LoseCommitOutcome)", replication.ErrLeadershipLost)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, replication.ErrNotLeader) || errors.Is(err, replication.ErrNoGroup) || errors.Is(err, replication.ErrNotCommitted):
		return fmt.Errorf("%w: %w", actors.ErrStepNotProposed, err)
	case errors.Is(err, replication.ErrLeadershipLost) || errors.Is(err, replication.ErrStopped) || errors.Is(err, replication.ErrRemoved):
		return &UnavailableError{Partition: part, RetryAfter: time.Second, Cause: actors.ErrStepOutcomeUnknown, Reason: fmt.Sprintf(
			"its leader changed while a step was being committed (%v); the step may have been applied: read the instance before retrying", err)}
	}
	return err
}

// oneCopy reports whether the cluster keeps one copy of each partition: a
// partition whose node is down then has no other replica to lead it.
func (rs *replicaSet) oneCopy() bool { return rs.want == 1 }

// addrOf is the actor address of the node whose replica id is id.
func (rs *replicaSet) addrOf(id replication.NodeID) (string, bool) {
	if node, ok := rs.nodeOf(id); ok {
		if e, ok := rs.n.reg.Get(node); ok && e.ActorAddr != "" {
			return e.ActorAddr, true
		}
	}
	return "", false
}

// nodeOf names the node whose replica id is id (any node the registry knows).
func (rs *replicaSet) nodeOf(id replication.NodeID) (string, bool) {
	for _, e := range rs.n.reg.Entries() {
		if placement.ReplicaID(placement.Member(e.Node)) == id {
			return e.Node, true
		}
	}
	return "", false
}

// --- leadership: serving and stopping partitions ----------------------------------

// leadershipChanged is called by the driver's goroutine: it records the change
// (a partition lost stops being routed here at once) and leaves the work to
// serveLoop, since stopping actors waits for steps that wait for the driver.
func (rs *replicaSet) leadershipChanged(lc replication.LeaderChange) {
	p := uint16(lc.Group)
	n := rs.n
	n.mu.Lock()
	if lc.Leading {
		rs.leading[p] = lc.Term
	} else {
		delete(rs.leading, p)
		delete(n.held, p)
	}
	rs.changes = append(rs.changes, lc)
	n.mu.Unlock()
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

func (rs *replicaSet) serveLoop() {
	n := rs.n
	for {
		select {
		case <-n.stop:
			return
		case <-rs.wake:
		}
		for {
			n.mu.Lock()
			if len(rs.changes) == 0 {
				n.mu.Unlock()
				break
			}
			lc := rs.changes[0]
			rs.changes = rs.changes[1:]
			n.mu.Unlock()
			if lc.Leading {
				rs.serve(uint16(lc.Group), lc.Term)
			} else {
				rs.release(uint16(lc.Group), lc.Term)
			}
		}
	}
}

// serve makes this node the partition's holder: reminders loaded, then routed
// here, then its instances with work in flight woken.
func (rs *replicaSet) serve(p uint16, term uint64) {
	n := rs.n
	n.mu.Lock()
	still := rs.leading[p] == term
	n.mu.Unlock()
	if !still {
		return // lost again before it was served
	}
	n.h.ServePartition(p)
	// Logged before anything of the partition runs here (its reminders, its
	// woken instances): an activity re-sent by this new leader follows the line.
	n.log.Info("partition served here: this node leads its group", "partition", p, "term", term)
	n.reloadReminders(p)
	n.mu.Lock()
	if rs.leading[p] == term {
		n.held[p] = term
	}
	n.mu.Unlock()
	n.publish()
	n.wakePartition(p)
}

// reloadReminders hands the partition's stored reminders to the reminder
// service (it skips those beyond its window; its scans find them later).
func (n *Node) reloadReminders(p uint16) {
	rs, err := n.db.RemindersIn(p, time.Time{})
	if err != nil {
		n.log.Error("reading a partition's reminders failed", "partition", p, "err", err)
		return
	}
	n.h.Reminders().Added(rs...)
}

// wakePartition activates the partition's instances that have work in flight.
func (n *Node) wakePartition(p uint16) {
	_ = n.db.AwakeIn(p, func(id string) error {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := n.h.Wake(ctx, id); err != nil && !errors.Is(err, actors.ErrClosed) {
				n.log.Debug("waking an instance of a partition served anew failed; its next message wakes it", "instance", id, "err", err)
			}
		}()
		return nil
	})
}

// release stops serving a partition this node no longer leads.
func (rs *replicaSet) release(p uint16, term uint64) {
	n := rs.n
	n.log.Info("partition no longer served here: another replica leads its group", "partition", p, "term", term)
	n.mu.Lock()
	if _, again := rs.leading[p]; !again {
		delete(n.held, p)
	}
	n.mu.Unlock()
	n.publish()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := n.h.StopPartition(ctx, p); err != nil {
		n.log.Warn("stopping the actors of a partition no longer led here", "partition", p, "err", err)
	}
	n.h.Reminders().DropPartition(p)
	n.mu.Lock()
	_, again := rs.leading[p]
	n.mu.Unlock()
	if again {
		n.h.ServePartition(p) // led again meanwhile: its serve runs next and loads it anew
	}
	for id, results := range n.h.TakePartitionResults(p) {
		for _, r := range results {
			n.h.Report(r, id) // to the new leader
		}
	}
}

// served lists the partitions this node serves (leads and has loaded).
func (rs *replicaSet) served() []uint16 {
	n := rs.n
	n.mu.Lock()
	defer n.mu.Unlock()
	out := slices.Sorted(maps.Keys(n.held))
	if out == nil {
		out = []uint16{}
	}
	return out
}

// --- moving replicas and spreading leadership --------------------------------

// reconcile runs on the leader of each group: it makes the next change of the
// replica plan (replica_plan.go), one per group at a time. It reports whether
// a change is under way (the caller then runs it again soon).
func (rs *replicaSet) reconcile() (busy bool) {
	n := rs.n
	n.mu.Lock()
	draining := n.draining
	n.mu.Unlock()
	if draining {
		return false // it hands its leadership over (Drain) and changes nothing
	}
	registered := n.reg.Registered()
	members := make([]placement.Member, len(registered))
	for i, id := range registered {
		members[i] = placement.Member(id)
	}
	want := min(rs.want, len(members))
	alive := func(id replication.NodeID) bool {
		node, ok := rs.nodeOf(id)
		return ok && n.alive(node)
	}
	now := time.Now()
	for _, p := range rs.served() {
		g := replication.GroupID(p)
		st, ok := rs.d.Status(g)
		if !ok || !st.Leading {
			continue
		}
		conf := fmt.Sprint(st.Voters, st.Learners)
		n.mu.Lock()
		last := rs.paused[p]
		n.mu.Unlock()
		if now.Before(last.until) && last.conf == conf {
			busy = true
			continue // the last change has not taken effect yet
		}
		plan := groupPlan{self: rs.self, voters: st.Voters, learners: st.Learners, match: st.Match,
			commit: st.Commit, last: st.LastIndex, alive: alive, canLead: rs.canLead}
		for _, m := range placement.ReplicasOf(p, members, want) {
			plan.target = append(plan.target, placement.ReplicaID(m))
		}
		c := plan.next()
		if c.kind == noChange {
			continue
		}
		busy = true
		var err error
		switch c.kind {
		case addLearner:
			err = rs.d.ProposeConfChange(g, &pb.ConfChange{Type: pb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: new(c.node)})
		case promoteLearner:
			err = rs.d.ProposeConfChange(g, &pb.ConfChange{Type: pb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: new(c.node)})
		case removeReplica:
			err = rs.d.ProposeConfChange(g, &pb.ConfChange{Type: pb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: new(c.node)})
		case transferLeadership:
			err = rs.d.TransferLeadership(g, c.node)
		}
		if err != nil {
			n.log.Info("changing a group's replicas failed; trying again shortly", "partition", p, "change", c.kind.String(), "replica", rs.name(c.node), "err", err)
		} else if c.kind != transferLeadership || c.why != ownerLeads {
			n.log.Info("changing a partition's replicas", "partition", p, "change", c.kind.String(), "replica", rs.name(c.node), "why", c.why)
		}
		n.mu.Lock()
		rs.paused[p] = pause{until: now.Add(membershipPause), conf: conf}
		n.mu.Unlock()
	}
	return busy
}

// pause holds a group's next change until its last one took effect (its
// membership changed) or membershipPause passed.
type pause struct {
	until time.Time
	conf  string
}

// handOverLeadership asks every group this node leads to elect another
// voter that can lead (a drain); it reports how many it still leads that
// another voter could take (a group whose other voters are all down or
// draining stays: its requests wait for its election once this node stops).
func (rs *replicaSet) handOverLeadership() int {
	left := 0
	for _, p := range rs.served() {
		g := replication.GroupID(p)
		st, ok := rs.d.Status(g)
		if !ok || !st.Leading {
			continue
		}
		var to replication.NodeID
		for _, v := range st.Voters {
			if v != rs.self && rs.canLead(v) {
				if to == 0 || st.Match[v] > st.Match[to] {
					to = v
				}
			}
		}
		if to == 0 {
			continue
		}
		left++
		if st.Match[to] >= st.Commit {
			_ = rs.d.TransferLeadership(g, to)
		}
	}
	return left
}

// canLead reports whether a replica's node may take a group's leadership:
// alive, registered and not draining.
func (rs *replicaSet) canLead(id replication.NodeID) bool {
	node, ok := rs.nodeOf(id)
	if !ok || !rs.n.alive(node) {
		return false
	}
	e, ok := rs.n.reg.Get(node)
	return ok && !e.Draining && !e.Removed
}

func (rs *replicaSet) name(id replication.NodeID) string {
	if node, ok := rs.nodeOf(id); ok {
		return node
	}
	return fmt.Sprintf("replica %d", id)
}

// departed is called on every replica of a group that removed a replica: on
// the leader, it tells the removed node, which may never hear of its removal
// from raft (its leader stops talking to it once the removal is committed).
func (rs *replicaSet) departed(dep replication.Departure) {
	if dep.Node == rs.self || rs.d.Leader(dep.Group) != rs.self {
		return
	}
	addr, ok := rs.addrOf(dep.Node)
	if !ok {
		return
	}
	rs.n.wg.Add(1)
	go func() {
		defer rs.n.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = rs.n.tr.call(ctx, addr, kindReplicaRemoved, replicaRemoved{Group: uint16(dep.Group), Index: dep.Index}, 0)
	}()
}

// replicaRemoved tells a node its replica of a group was removed (kindReplicaRemoved).
type replicaRemoved struct {
	Group uint16 `msgpack:"g"`
	Index uint64 `msgpack:"i"` // the conf change's
}

// --- snapshots ----------------------------------------------------------------------

// DefaultSnapshotRate is how many bytes per second a node streams to the
// replicas it catches up, unless configured: a new replica of a large
// partition takes longer, and the live load keeps its disk and network.
const DefaultSnapshotRate = 32 << 20

// snapChunk is one chunk of a snapshot's data (kindSnapChunk).
type snapChunk struct {
	From  uint64       `msgpack:"f"` // the sender's replica id
	Group uint16       `msgpack:"g"`
	Index uint64       `msgpack:"i"`
	Seq   int          `msgpack:"s"`
	KVs   []storage.KV `msgpack:"kv"`
	Last  bool         `msgpack:"l"`
}

// SnapshotProgress is a snapshot being streamed from this node.
type SnapshotProgress struct {
	Partition int       `json:"partition"`
	To        string    `json:"to"`
	Index     uint64    `json:"index"`
	Bytes     int64     `json:"bytes"`
	Keys      int64     `json:"keys"`
	Started   time.Time `json:"started"`
}

type sendKey struct {
	g  replication.GroupID
	to replication.NodeID
}

// chunkAttempts: a chunk that does not arrive is sent again this many times
// (the stream resumes where it stopped) before the snapshot is given up and
// raft sends a new one.
const chunkAttempts = 4

// sendSnapshot streams the data a MsgSnap names to its replica, at most
// SnapshotRate bytes a second over every snapshot this node sends, then the
// message itself, and tells raft how it went.
func (rs *replicaSet) sendSnapshot(to replication.NodeID, addr string, env replication.Envelope) {
	view, ok := rs.log.TakeSnapshot(env.Message.GetSnapshot().GetData())
	if !ok {
		rs.d.ReportSnapshot(env.Group, to, false)
		return
	}
	defer view.Close()
	select {
	case rs.sending <- struct{}{}:
	case <-rs.n.stop:
		return
	}
	defer func() { <-rs.sending }()
	index := env.Message.GetSnapshot().GetMetadata().GetIndex()
	prog := &SnapshotProgress{Partition: int(env.Group), To: rs.name(to), Index: index, Started: time.Now()}
	k := sendKey{env.Group, to}
	rs.progressMu.Lock()
	rs.progress[k] = prog
	rs.progressMu.Unlock()
	defer func() {
		rs.progressMu.Lock()
		delete(rs.progress, k)
		rs.progressMu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	go func() {
		select {
		case <-rs.n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	send := func(c snapChunk) error {
		var err error
		for attempt := range chunkAttempts {
			if attempt > 0 {
				select {
				case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			_, err = rs.n.tr.call(cctx, addr, kindSnapChunk, c, 0)
			ccancel()
			if err == nil {
				return nil
			}
			var answered *remoteError
			if errors.As(err, &answered) {
				return err // refused, not lost: sending it again changes nothing
			}
		}
		return err
	}
	seq := 0
	err := view.Scan(snapshotChunkBytes, func(kvs []storage.KV) error {
		size := 0
		for _, kv := range kvs {
			size += len(kv.K) + len(kv.V)
		}
		if err := rs.limiter.WaitN(ctx, min(size, snapshotBurst)); err != nil {
			return err
		}
		if err := send(snapChunk{From: rs.self, Group: uint16(env.Group), Index: index, Seq: seq, KVs: kvs}); err != nil {
			return err
		}
		seq++
		rs.progressMu.Lock()
		prog.Bytes += int64(size)
		prog.Keys += int64(len(kvs))
		rs.progressMu.Unlock()
		rs.snapshotBytes.Add(float64(size))
		return nil
	})
	if err == nil {
		err = send(snapChunk{From: rs.self, Group: uint16(env.Group), Index: index, Seq: seq, Last: true})
	}
	if err == nil {
		rs.rt.sendNow(addr, []replication.Envelope{env})
	}
	rs.d.ReportSnapshot(env.Group, to, err == nil)
	if err != nil {
		rs.n.log.Warn("snapshot not delivered; raft sends another", "partition", env.Group, "to", rs.name(to), "err", err)
		return
	}
	rs.snapshotsSent.Inc()
	rs.n.log.Info("snapshot sent", "partition", env.Group, "to", rs.name(to), "index", index, "keys", prog.Keys,
		"bytes", prog.Bytes, "took", time.Since(prog.Started).Round(time.Millisecond))
}

// snapshotBurst bounds the bytes the limiter lets through at once.
const snapshotBurst = 4 * snapshotChunkBytes

// snapshots lists the snapshots this node is streaming.
func (rs *replicaSet) snapshots() []SnapshotProgress {
	rs.progressMu.Lock()
	defer rs.progressMu.Unlock()
	out := make([]SnapshotProgress, 0, len(rs.progress))
	for _, p := range rs.progress {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b SnapshotProgress) int { return a.Partition - b.Partition })
	return out
}

// receive handles the raft kinds of envelope.
func (rs *replicaSet) receive(env *wire.Envelope) *wire.Envelope {
	switch env.Kind {
	case kindGroupMembers:
		var q groupMembersReq
		if err := msgpack.Unmarshal(env.Payload, &q); err != nil {
			return reply(nil, err)
		}
		return reply(rs.groupMembers(q), nil)
	case kindReplicaRemoved:
		var r replicaRemoved
		if err := msgpack.Unmarshal(env.Payload, &r); err != nil {
			return reply(nil, err)
		}
		// Not destroyed on the word alone: the replica may have been added
		// again since. Its group's leader is asked now (replica_gc.go).
		rs.gcSoon()
		return reply(nil, nil)
	case kindSnapChunk:
		var c snapChunk
		if err := msgpack.Unmarshal(env.Payload, &c); err != nil {
			return reply(nil, err)
		}
		return reply(nil, rs.sm.Inbox().Add(replication.GroupID(c.Group), c.Index, c.From, c.Seq, c.KVs, c.Last))
	default: // kindRaft
		from, msgs, err := decodeRaftBatch(env.Payload)
		if err != nil {
			rs.n.log.Warn("raft messages dropped", "err", err)
			return nil
		}
		rs.heardFrom(from)
		if len(msgs) == 0 {
			return nil // a ping
		}
		kept := msgs[:0]
		for _, m := range msgs {
			if m.Message.GetType() == pb.MessageType_MsgSnap &&
				!rs.sm.Inbox().Complete(m.Group, m.Message.GetSnapshot().GetMetadata().GetIndex(), m.Message.GetFrom()) {
				continue // its data did not arrive whole: the leader sends it again
			}
			kept = append(kept, m)
		}
		rs.d.Receive(kept)
		return nil
	}
}

// --- views --------------------------------------------------------------------------

// collectors are the replication metrics: the driver's, snapshots sent, and
// the replicas missing from the groups this node leads.
func (rs *replicaSet) collectors() []prometheus.Collector {
	led := func(count func(replication.GroupStatus, int) int) func() float64 {
		return func() float64 {
			want := min(rs.want, len(rs.n.reg.Registered()))
			total := 0
			for _, p := range rs.served() {
				if st, ok := rs.d.Status(replication.GroupID(p)); ok {
					total += count(st, want)
				}
			}
			return float64(total)
		}
	}
	missing := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_raft_replicas_missing",
		Help: "Live voting replicas the groups this node leads lack to reach the replica count (capped at the registered nodes): 0 when fully replicated."},
		led(func(st replication.GroupStatus, want int) int { return max(0, want-rs.liveVoters(st)) }))
	adding := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_raft_replicas_adding",
		Help: "Replicas being added to the groups this node leads (learners catching up, by snapshot or log)."},
		led(func(st replication.GroupStatus, _ int) int { return len(st.Learners) }))
	sending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_raft_snapshots_sending",
		Help: "Snapshots this node is streaming to replicas now."},
		func() float64 { return float64(len(rs.snapshots())) })
	return append(rs.d.Collectors(), rs.snapshotsSent, rs.snapshotBytes, missing, adding, sending)
}

// view fills a partition's replication fields from this node's replica, if
// it has one.
func (rs *replicaSet) view(v *PartitionView) {
	st, ok := rs.d.Status(replication.GroupID(v.Partition))
	if !ok {
		return
	}
	for _, id := range st.Voters {
		v.Replicas = append(v.Replicas, rs.name(id))
	}
	for _, id := range st.Learners {
		v.Learners = append(v.Learners, rs.name(id))
	}
	v.Term, v.Applied = st.Term, st.Applied
	alive := rs.liveVoters(st)
	v.Quorum = alive > len(st.Voters)/2
	v.UnderReplicated = alive < min(rs.want, len(rs.n.reg.Registered()))
	for _, sn := range rs.snapshots() {
		if sn.Partition == v.Partition {
			v.Snapshots = append(v.Snapshots, sn)
		}
	}
}

// liveVoters counts the group's voters on live nodes.
func (rs *replicaSet) liveVoters(st replication.GroupStatus) int {
	alive := 0
	for _, id := range st.Voters {
		if node, ok := rs.nodeOf(id); ok && rs.n.alive(node) {
			alive++
		}
	}
	return alive
}

// notReady says what keeps this node from being ready, if anything: a
// partition no live node leads, or a group of its own with fewer replicas
// than wanted (the cluster is growing into its replica count). With one
// copy, a partition it owns and does not lead yet (it is moving here):
// another node's being down is no reason to stop sending this one requests
// (it answers those for the down node's partitions with a fast 503).
func (rs *replicaSet) notReady() error {
	n := rs.n
	if rs.oneCopy() {
		if missing := n.ownedNotServed(); len(missing) > 0 {
			return fmt.Errorf("node %s owns %d partitions it does not serve yet (e.g. %d): they are moving here", n.id, len(missing), missing[0])
		}
		return nil
	}
	leaderless, under := 0, 0
	for p := range n.parts {
		n.mu.Lock()
		_, here := n.held[uint16(p)]
		n.mu.Unlock()
		if !here {
			if e, ok := n.holderOf(uint16(p)); !ok || !n.alive(e.Node) {
				leaderless++
			}
		}
	}
	want := min(rs.want, len(n.reg.Registered()))
	example := ""
	for _, g := range rs.d.IDs() {
		if st, ok := rs.d.Status(g); ok && len(st.Voters) < want {
			under++
			if example == "" {
				var names []string
				for _, v := range st.Voters {
					names = append(names, rs.name(v))
				}
				example = fmt.Sprintf(" (e.g. partition %d: replicas %v, leader %s)", g, names, rs.name(st.Lead))
			}
		}
	}
	switch {
	case leaderless > 0:
		return fmt.Errorf("node %s: %d partitions have no live leader yet (an election is under way, or fewer than a quorum of their replicas are up)", n.id, leaderless)
	case under > 0:
		return fmt.Errorf("node %s: %d of its partitions have fewer than %d replicas yet (replicas are being added)%s", n.id, under, want, example)
	}
	return nil
}

// ownedNotServed returns the partitions placement gives this node that it
// does not serve yet.
func (n *Node) ownedNotServed() []uint16 {
	table := n.Table()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []uint16
	for p, owner := range table.Owners {
		if string(owner) != n.id {
			continue
		}
		if _, ok := n.held[uint16(p)]; !ok {
			out = append(out, uint16(p))
		}
	}
	return out
}
