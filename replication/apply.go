package replication

import (
	"github.com/weftrt/weft/storage"
)

// StoreStateMachine applies committed entries to a node's pebble store. An
// entry is a step's encoded batch (storage.Batch.Repr); it is applied with its
// index as its partition's applied index, every entry of a pass in one write
// (storage.ApplyBatch), not synced: the raft log is, and a restart applies
// again what follows each partition's applied index (AppliedIndex, passed to
// Driver.Create).
type StoreStateMachine struct {
	db         *storage.DB
	leadership func(LeaderChange)
}

// NewStoreStateMachine returns the state machine of db; leadership, if not
// nil, hears of every leadership change before the entries of its pass apply.
func NewStoreStateMachine(db *storage.DB, leadership func(LeaderChange)) *StoreStateMachine {
	return &StoreStateMachine{db: db, leadership: leadership}
}

// Apply implements StateMachine.
func (m *StoreStateMachine) Apply(es []Applied) error {
	a := m.db.NewApplyBatch()
	defer a.Close()
	for _, e := range es {
		if err := a.Add(uint16(e.Group), e.Index, e.Data); err != nil {
			return err
		}
	}
	return a.Commit()
}

// LeadershipChanged implements StateMachine.
func (m *StoreStateMachine) LeadershipChanged(lc LeaderChange) {
	if m.leadership != nil {
		m.leadership(lc)
	}
}

// AppliedIndex is what to pass to Driver.Create for a partition: the index its
// store has applied up to.
func (m *StoreStateMachine) AppliedIndex(g GroupID) (uint64, error) {
	return m.db.AppliedIndex(uint16(g))
}
