package replication

import (
	"fmt"
	"sync"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weftrt/weft/storage"
)

// StoreStateMachine applies committed entries to a node's pebble store. An
// entry is a step's encoded batch (storage.Batch.Repr); it is applied with its
// index as its partition's applied index, every entry of a pass in one write
// (storage.ApplyBatch), not synced: the raft log is, and a restart applies
// again what follows each partition's applied index (AppliedIndex, passed to
// Driver.Create). An entry at or below the applied index is skipped: a
// snapshot installed just before a crash may be ahead of the log.
type StoreStateMachine struct {
	db         *storage.DB
	leadership func(LeaderChange)
	inbox      *SnapshotInbox

	mu      sync.Mutex
	applied map[GroupID]uint64 // as stored; loaded on first use
}

// NewStoreStateMachine returns the state machine of db; leadership, if not
// nil, hears of every leadership change (see StateMachine).
func NewStoreStateMachine(db *storage.DB, leadership func(LeaderChange)) *StoreStateMachine {
	return &StoreStateMachine{db: db, leadership: leadership, inbox: NewSnapshotInbox(db), applied: map[GroupID]uint64{}}
}

// Inbox is where the snapshots streamed to this node are staged.
func (m *StoreStateMachine) Inbox() *SnapshotInbox { return m.inbox }

// Apply implements StateMachine.
func (m *StoreStateMachine) Apply(es []Applied) error {
	a := m.db.NewApplyBatch()
	defer a.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	next := map[GroupID]uint64{}
	for _, e := range es {
		applied, ok := next[e.Group]
		if !ok {
			var err error
			if applied, err = m.appliedLocked(e.Group); err != nil {
				return err
			}
		}
		if e.Index <= applied {
			continue
		}
		if err := a.Add(uint16(e.Group), e.Index, e.Data); err != nil {
			return err
		}
		next[e.Group] = e.Index
	}
	if len(next) == 0 {
		return nil
	}
	if err := a.Commit(); err != nil {
		return err
	}
	for g, i := range next {
		m.applied[g] = i
	}
	return nil
}

func (m *StoreStateMachine) appliedLocked(g GroupID) (uint64, error) {
	if i, ok := m.applied[g]; ok {
		return i, nil
	}
	i, err := m.db.AppliedIndex(uint16(g))
	if err != nil {
		return 0, err
	}
	m.applied[g] = i
	return i, nil
}

// InstallSnapshot implements StateMachine: the staged file replaces the
// partition's keys, atomically and durably (storage.InstallSnapshotFile).
func (m *StoreStateMachine) InstallSnapshot(g GroupID, meta *pb.SnapshotMetadata) error {
	file, ok := m.inbox.take(g, meta.GetIndex())
	if !ok {
		return fmt.Errorf("the data of the snapshot at %d was not staged", meta.GetIndex())
	}
	if err := m.db.InstallSnapshotFile(file); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.applied, g)
	applied, err := m.appliedLocked(g)
	if err != nil {
		return err
	}
	if applied != meta.GetIndex() {
		return fmt.Errorf("the snapshot's data is at index %d, its metadata says %d", applied, meta.GetIndex())
	}
	return nil
}

// LeadershipChanged implements StateMachine.
func (m *StoreStateMachine) LeadershipChanged(lc LeaderChange) {
	if m.leadership != nil {
		m.leadership(lc)
	}
}

// Forget implements StateMachine: the log's Destroy deleted the partition's
// data with its raft state.
func (m *StoreStateMachine) Forget(g GroupID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.applied, g)
}

// AppliedIndex is what to pass to Driver.Create for a partition: the index its
// store has applied up to.
func (m *StoreStateMachine) AppliedIndex(g GroupID) (uint64, error) {
	return m.db.AppliedIndex(uint16(g))
}
