package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// when sync is set. It returns once they are durable.
	Save(saves []Save, sync bool) error
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
	// LeadershipChanged says this node now leads a group, or no longer does;
	// it is called before the entries of the same pass are applied.
	LeadershipChanged(LeaderChange)
}

// DriverConfig configures a Driver.
type DriverConfig struct {
	Groups       Config
	Tick         time.Duration // one raft tick (default 100 ms)
	Log          LogStore
	Transport    Transport
	StateMachine StateMachine
	Logger       *slog.Logger
}

// ErrStopped fails calls to a driver that stopped.
var ErrStopped = errors.New("replication: stopped")

// A Driver runs a node's groups: one goroutine ticks them and drains their
// Ready passes, doing the I/O in the order raft requires (persist, send,
// apply, advance). Every other method may be called from any goroutine.
type Driver struct {
	cfg DriverConfig
	log *slog.Logger

	mu      sync.Mutex
	gs      *Groups
	stopped error

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
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
	gs, err := NewGroups(cfg.Groups)
	if err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, log: cfg.Logger.With("component", "replication", "raft_node", cfg.Groups.NodeID), gs: gs,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}, nil
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

// Start starts the driver's goroutine.
func (d *Driver) Start() { go d.run() }

// Stop stops the goroutine and fails the proposals not applied yet.
func (d *Driver) Stop() {
	d.mu.Lock()
	if d.stopped == nil {
		d.stopped = ErrStopped
		close(d.stop)
	}
	d.mu.Unlock()
	<-d.done
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
	if _, err := d.Propose(ctx, GroupID(part), repr); err != nil {
		return fmt.Errorf("commit a step of partition %d: %w", part, err)
	}
	return nil
}

// ProposeConfChange proposes a change of a group's replicas (this node must
// lead the group); it takes effect once committed.
func (d *Driver) ProposeConfChange(g GroupID, cc *pb.ConfChange) error {
	return d.locked(func() error { return d.gs.ProposeConfChange(g, cc) })
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
		if err := d.gs.Step(m); err != nil && !errors.Is(err, ErrNoGroup) {
			d.log.Debug("raft message not taken", "group", m.Group, "from", m.Message.GetFrom(), "err", err)
		}
	}
	d.mu.Unlock()
	d.poke()
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
	for {
		select {
		case <-ticker.C:
			d.mu.Lock()
			d.gs.Tick()
			d.mu.Unlock()
		case <-d.kick:
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
	d.mu.Lock()
	b := d.gs.Ready()
	d.mu.Unlock()
	if err := b.Err(); err != nil {
		return false, err
	}
	if b.Empty() {
		return false, nil
	}
	if len(b.Saves) > 0 {
		if err := d.cfg.Log.Save(b.Saves, b.MustSync); err != nil {
			return false, fmt.Errorf("save raft state: %w", err)
		}
	}
	for to, msgs := range b.Messages {
		d.cfg.Transport.Send(to, msgs)
	}
	for _, lc := range b.Leaders {
		d.cfg.StateMachine.LeadershipChanged(lc)
	}
	if len(b.Committed) > 0 {
		if err := d.cfg.StateMachine.Apply(b.Committed); err != nil {
			return false, fmt.Errorf("apply committed entries: %w", err)
		}
	}
	d.mu.Lock()
	err = d.gs.Advance(b)
	d.mu.Unlock()
	return true, err
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
