package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weftrt/weft/storage"
)

// LogStore keeps this node's raft logs durable.
type LogStore interface {
	// Storage is what raft reads of a group's log and state; the same value
	// for a group every time.
	Storage(g GroupID) raft.Storage
	// Save persists one Ready pass: every group's saves in one write, synced
	// when sync is set. It returns once they are durable. A save with a
	// snapshot replaces the group's log (its data is installed already).
	Save(saves []Save, sync bool) error
	// Compact truncates a group's log up to and including an applied index.
	Compact(g GroupID, index uint64) error
	// Destroy forgets a group this node no longer replicates: its log and
	// state (and, for PebbleLog, the partition's data, in the same write).
	Destroy(g GroupID) error
}

// Transport carries messages to other nodes. Send must not block for long
// (queue and return); delivery is best effort, raft retries what is lost.
type Transport interface {
	Send(to NodeID, msgs []Envelope)
}

// StateMachine is what committed entries are applied to.
type StateMachine interface {
	// Apply applies committed entries, in log order within each group. An
	// error stops the driver: the node can no longer keep up with its groups.
	Apply(entries []Applied) error
	// InstallSnapshot replaces a group's data with the snapshot raft accepted
	// (its data came apart from raft's message: the transport's business),
	// durably, before the log is replaced by it.
	InstallSnapshot(g GroupID, meta *pb.SnapshotMetadata) error
	// LeadershipChanged says this node now serves a group as its leader (after
	// the entries of the pass that made it so are applied), or no longer does
	// (before they are).
	LeadershipChanged(LeaderChange)
	// Forget says this node's replica of a group is gone (after the log
	// destroyed it): whatever the state machine remembers of it goes too.
	Forget(g GroupID)
}

// DriverConfig configures a Driver.
type DriverConfig struct {
	Groups       Config
	Tick         time.Duration // one raft tick (default 100 ms)
	Log          LogStore
	Transport    Transport
	StateMachine StateMachine
	Logger       *slog.Logger
	// Adopt, when set, is asked whether to create this node's replica of a
	// group it has none of when its leader reaches out (the node was added to
	// the group); the replica starts empty and is caught up by snapshot.
	Adopt func(GroupID) bool
	// A group's log is truncated once it holds more than CompactAbove applied
	// entries (default 1000), keeping the last CompactKeep (default 200) for
	// replicas a little behind; those further behind get a snapshot.
	CompactAbove, CompactKeep uint64
	// Departed, when set, hears of every replica a committed conf change
	// removed from a group, on every replica that applies it (after the pass
	// that applied it). A removed replica does not always learn of its own
	// removal (its leader stops talking to it once the change is committed):
	// the leader's caller tells it (Driver.RemoveReplica).
	Departed func(Departure)
	// StuckAfter is how long a Ready pass may run, or the driver's lock stay
	// held, before the driver logs itself stuck with every goroutine's stack
	// (watchdog.go; default 30 s).
	StuckAfter time.Duration
}

// ErrStopped fails calls to a driver that stopped.
var ErrStopped = errors.New("replication: stopped")

// A Driver runs a node's groups: one goroutine ticks them and drains their
// Ready passes, doing the I/O in the order raft requires (persist, send,
// apply, advance). Every other method may be called from any goroutine.
//
// Its lock is held while raft runs (ticks, steps, Ready, Advance), never
// across a write: raft reads its logs under it, so the LogStore must not
// make those reads wait for a write (PebbleLog updates what they read before
// or after its writes, not during). Messages from other nodes are stepped
// under it, by the transport's receiving goroutine: a write waited on there
// would hold up every group's messages.
type Driver struct {
	cfg DriverConfig
	log *slog.Logger

	mu      sync.Mutex
	gs      *Groups
	stopped error
	metrics *metrics
	remove  []GroupID // replicas to destroy at the next pass (RemoveReplica)
	// destroying: removed replicas whose state is being deleted; they are not
	// adopted again meanwhile.
	destroying map[GroupID]struct{}

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	passBegan atomic.Int64  // unix nanos: when the running pass began (0: none runs); see watchdog.go
	watched   chan struct{} // closed when the watchdog returned
}

// NewDriver returns a stopped driver with no groups.
func NewDriver(cfg DriverConfig) (*Driver, error) {
	if cfg.Log == nil || cfg.Transport == nil || cfg.StateMachine == nil {
		return nil, errors.New("replication: DriverConfig needs Log, Transport and StateMachine")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StuckAfter <= 0 {
		cfg.StuckAfter = 30 * time.Second
	}
	if cfg.CompactAbove == 0 {
		cfg.CompactAbove = 1000
	}
	if cfg.CompactKeep == 0 || cfg.CompactKeep > cfg.CompactAbove {
		cfg.CompactKeep = min(200, cfg.CompactAbove)
	}
	gs, err := NewGroups(cfg.Groups)
	if err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, log: cfg.Logger.With("component", "replication", "raft_node", cfg.Groups.NodeID), gs: gs, metrics: newMetrics(),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), watched: make(chan struct{}),
		destroying: map[GroupID]struct{}{}}, nil
}

// Create adds this node's replica of a group (see Groups.Create).
func (d *Driver) Create(g GroupID, peers []NodeID, applied uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped != nil {
		return d.stopped
	}
	err := d.gs.Create(g, d.cfg.Log.Storage(g), peers, applied)
	d.poke()
	return err
}

// Start starts the driver's goroutines: its loop and its watchdog.
func (d *Driver) Start() {
	go d.run()
	go d.watch()
}

// Stop stops the goroutine and fails the proposals not applied yet.
func (d *Driver) Stop() {
	d.mu.Lock()
	if d.stopped == nil {
		d.stopped = ErrStopped
		close(d.stop)
	}
	d.mu.Unlock()
	<-d.done
	<-d.watched
}

// Propose proposes data to a group this node leads and waits until its entry
// is applied here (or ctx ends: the proposal may still be applied).
func (d *Driver) Propose(ctx context.Context, g GroupID, data []byte) (uint64, error) {
	d.mu.Lock()
	if d.stopped != nil {
		d.mu.Unlock()
		return 0, d.stopped
	}
	p, err := d.gs.Propose(g, data)
	d.mu.Unlock()
	if err != nil {
		return 0, err
	}
	d.poke()
	return p.Wait(ctx)
}

// stepWait bounds how long CommitStep waits for a step's quorum: a step that
// cannot commit fails (its actor reloads from what is applied) rather than
// hold its instance forever.
const stepWait = time.Minute

// CommitStep makes a partition's step durable on a quorum of its replicas: the
// batch, encoded, is proposed to the partition's group (this node must lead
// it) and CommitStep returns once the entry is applied here. The batch itself
// is not committed. It implements actors.StepCommitter.
func (d *Driver) CommitStep(part uint16, b *storage.Batch) error {
	repr, err := b.Repr()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepWait)
	defer cancel()
	start := time.Now()
	d.metrics.proposals.Inc()
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 50*time.Millisecond) {
		_, err := d.Propose(ctx, GroupID(part), repr)
		if errors.Is(err, raft.ErrProposalDropped) && ctx.Err() == nil {
			// raft drops proposals while leadership is being transferred: the
			// transfer ends within an election timeout, one way or the other.
			time.Sleep(backoff)
			continue
		}
		if err != nil {
			d.metrics.proposalsFailed.Inc()
			return fmt.Errorf("commit a step of partition %d: %w", part, err)
		}
		break
	}
	d.metrics.commit.Observe(time.Since(start).Seconds())
	return nil
}

// ProposeConfChange proposes a change of a group's replicas (this node must
// lead the group); it takes effect once committed.
func (d *Driver) ProposeConfChange(g GroupID, cc *pb.ConfChange) error {
	return d.locked(func() error { return d.gs.ProposeConfChange(g, cc) })
}

// RemoveReplica destroys this node's replica of a group that no longer
// counts it as a member (its leader says so): the replica stops, its state
// and data are deleted at the driver's next pass.
func (d *Driver) RemoveReplica(g GroupID) {
	_ = d.locked(func() error {
		if d.gs.Has(g) {
			d.remove = append(d.remove, g)
		}
		return nil
	})
}

// Campaign makes this node stand for election in a group now.
func (d *Driver) Campaign(g GroupID) error {
	return d.locked(func() error { return d.gs.Campaign(g) })
}

// Receive hands messages from another node to their groups.
func (d *Driver) Receive(msgs []Envelope) {
	d.mu.Lock()
	if d.stopped != nil {
		d.mu.Unlock()
		return
	}
	for _, m := range msgs {
		if _, busy := d.destroying[m.Group]; busy {
			continue // its old state is being deleted: raft sends again, and it is adopted then
		}
		if !d.gs.Has(m.Group) && d.adoptable(m) {
			if err := d.gs.Create(m.Group, d.cfg.Log.Storage(m.Group), nil, 0); err != nil {
				d.log.Warn("a replica of a group not created", "group", m.Group, "err", err)
				continue
			}
			d.log.Info("replica added: this node joins a group", "group", m.Group, "leader", m.Message.GetFrom())
		}
		if err := d.gs.Step(m); err != nil && !errors.Is(err, ErrNoGroup) {
			d.log.Debug("raft message not taken", "group", m.Group, "from", m.Message.GetFrom(), "err", err)
		}
	}
	d.mu.Unlock()
	d.poke()
}

// adoptable: a message only a leader sends, to a group the caller adopts.
func (d *Driver) adoptable(m Envelope) bool {
	if d.cfg.Adopt == nil {
		return false
	}
	switch m.Message.GetType() {
	case pb.MessageType_MsgApp, pb.MessageType_MsgHeartbeat, pb.MessageType_MsgSnap:
		return d.cfg.Adopt(m.Group)
	}
	return false
}

// TransferLeadership asks this node's replica, the leader, to hand a group's
// leadership to another voter.
func (d *Driver) TransferLeadership(g GroupID, to NodeID) error {
	return d.locked(func() error { return d.gs.TransferLeadership(g, to) })
}

// ReportSnapshot says whether a snapshot streamed to a replica arrived.
func (d *Driver) ReportSnapshot(g GroupID, to NodeID, ok bool) {
	_ = d.locked(func() error { d.gs.ReportSnapshot(g, to, ok); return nil })
}

// ReportUnreachable says a message to a replica could not be sent.
func (d *Driver) ReportUnreachable(g GroupID, to NodeID) {
	_ = d.locked(func() error { d.gs.ReportUnreachable(g, to); return nil })
}

// Status returns this node's view of a group; false if it has no replica.
func (d *Driver) Status(g GroupID) (GroupStatus, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gs.Status(g)
}

// Role returns whether this node leads a group and the group's term, without
// the cost of Status (no progress or membership copied); false if it has no
// replica of it.
func (d *Driver) Role(g GroupID) (leading bool, term uint64, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	grp, found := d.gs.groups[g]
	if !found {
		return false, 0, false
	}
	return grp.leading, grp.rn.BasicStatus().GetTerm(), true
}

// Wake makes every quiesced group tick again: a node may have failed (a
// quiesced replica would not notice its leader is gone) or come back.
func (d *Driver) Wake() {
	_ = d.locked(func() error { d.gs.Wake(); return nil })
}

// Quiesced reports how many of this node's groups are quiesced.
func (d *Driver) Quiesced() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gs.Quiesced()
}

// Has reports whether this node has a replica of a group.
func (d *Driver) Has(g GroupID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gs.Has(g)
}

// IDs lists the groups this node has a replica of.
func (d *Driver) IDs() []GroupID {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gs.IDs()
}

// Leader is the node this one last saw leading a group (0: none known).
func (d *Driver) Leader(g GroupID) NodeID {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gs.Leader(g)
}

func (d *Driver) locked(fn func() error) error {
	d.mu.Lock()
	if d.stopped != nil {
		d.mu.Unlock()
		return d.stopped
	}
	err := fn()
	d.mu.Unlock()
	d.poke()
	return err
}

func (d *Driver) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Driver) run() {
	defer close(d.done)
	ticker := time.NewTicker(d.cfg.Tick)
	defer ticker.Stop()
	ticking := true
	for {
		select {
		case <-ticker.C:
			d.mu.Lock()
			d.gs.Tick()
			if d.gs.allQuiesced() {
				// Nothing to tick until something wakes a group: every way of
				// waking one (a proposal, a message, Wake) kicks this loop.
				ticker.Stop()
				ticking = false
			}
			d.mu.Unlock()
		case <-d.kick:
			if !ticking {
				ticker.Reset(d.cfg.Tick)
				ticking = true
			}
		case <-d.stop:
			d.mu.Lock()
			d.gs.Close(ErrStopped)
			d.mu.Unlock()
			return
		}
		for {
			more, err := d.pass()
			if err != nil {
				d.fail(err)
				return
			}
			if !more {
				break
			}
		}
	}
}

// pass runs one Ready pass over every group; more says another may be due.
func (d *Driver) pass() (more bool, err error) {
	d.passBegan.Store(time.Now().UnixNano())
	defer d.passBegan.Store(0)
	d.mu.Lock()
	for _, g := range d.remove {
		d.gs.markRemoved(g)
	}
	d.remove = nil
	b := d.gs.Ready()
	d.mu.Unlock()
	if err := b.Err(); err != nil {
		return false, err
	}
	if b.Empty() {
		return false, nil
	}
	for _, lc := range b.Leaders {
		if !lc.Leading { // first: the partition stops being served here before anything else happens
			d.metrics.leadershipLost.Inc()
			d.cfg.StateMachine.LeadershipChanged(lc)
		}
	}
	for to, msgs := range b.Early {
		d.cfg.Transport.Send(to, msgs)
	}
	for _, sv := range b.Saves {
		if sv.Snapshot != nil {
			if err := d.cfg.StateMachine.InstallSnapshot(sv.Group, sv.Snapshot.GetMetadata()); err != nil {
				return false, fmt.Errorf("install a snapshot of group %d: %w", sv.Group, err)
			}
			d.metrics.snapshots.Inc()
		}
	}
	if len(b.Saves) > 0 {
		if err := d.cfg.Log.Save(b.Saves, b.MustSync); err != nil {
			return false, fmt.Errorf("save raft state: %w", err)
		}
	}
	for to, msgs := range b.Messages {
		d.cfg.Transport.Send(to, msgs)
	}
	if len(b.Committed) > 0 {
		if err := d.cfg.StateMachine.Apply(b.Committed); err != nil {
			return false, fmt.Errorf("apply committed entries: %w", err)
		}
	}
	for _, lc := range b.Leaders {
		if lc.Leading {
			d.metrics.leadershipGained.Inc()
			d.cfg.StateMachine.LeadershipChanged(lc)
		}
	}
	d.mu.Lock()
	err = d.gs.Advance(b)
	for _, g := range b.Removed {
		d.gs.Remove(g)
		// Until its state is destroyed (below, unlocked), a message for it
		// must not adopt it again: the new replica would load the old state
		// and lose its own with the destroy, a zombie the group cannot use.
		d.destroying[g] = struct{}{}
	}
	d.mu.Unlock()
	if err == nil && len(b.Committed) > 0 {
		err = d.compact(b.Committed)
	}
	if err != nil {
		return true, err
	}
	for _, g := range b.Removed {
		if err := d.cfg.Log.Destroy(g); err != nil {
			return true, fmt.Errorf("destroy the replica of group %d: %w", g, err)
		}
		d.cfg.StateMachine.Forget(g)
		d.mu.Lock()
		delete(d.destroying, g)
		d.mu.Unlock()
		d.metrics.removed.Inc()
		d.log.Info("replica removed: this node no longer replicates the group", "group", g)
	}
	if d.cfg.Departed != nil {
		for _, dep := range b.Departed {
			d.cfg.Departed(dep)
		}
	}
	return true, nil
}

// compact truncates the logs of the groups that applied entries in a pass
// once they hold more than CompactAbove applied entries.
func (d *Driver) compact(applied []Applied) error {
	last := map[GroupID]uint64{}
	for _, a := range applied {
		last[a.Group] = a.Index
	}
	for g, index := range last {
		first, err := d.cfg.Log.Storage(g).FirstIndex()
		if err != nil {
			return err
		}
		if index+1-first > d.cfg.CompactAbove {
			if err := d.cfg.Log.Compact(g, index-d.cfg.CompactKeep); err != nil {
				return fmt.Errorf("truncate the log of group %d: %w", g, err)
			}
		}
	}
	return nil
}

// fail stops the driver after an I/O failure: raft's promises hold only if
// what it asked to persist was persisted.
func (d *Driver) fail(err error) {
	d.log.Error("replication stopped: a raft log or its state machine failed", "err", err)
	d.mu.Lock()
	if d.stopped == nil {
		d.stopped = fmt.Errorf("replication: stopped after a failure: %w", err)
		close(d.stop)
	}
	d.gs.Close(d.stopped)
	d.mu.Unlock()
}
