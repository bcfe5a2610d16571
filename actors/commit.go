package actors

import (
	"github.com/weftrt/weft/storage"
)

// A StepCommitter makes a step's batch durable before the step's effects are
// carried out. Without one (a node alone, embedded weft) the batch is
// committed to the local store, synced. A replicated partition's committer
// (replication.Driver) proposes the batch to the partition's raft group and
// returns once a quorum committed it and this node applied it; the batch
// itself is then not committed locally, its entry is.
type StepCommitter interface {
	CommitStep(part uint16, b *storage.Batch) error
}

// commitStep makes a step's batch durable (see StepCommitter).
func (h *Host) commitStep(part uint16, b *storage.Batch) error {
	if h.opts.Committer != nil {
		return h.opts.Committer.CommitStep(part, b)
	}
	return b.Commit()
}

// SetCommitter makes c commit every step from now on (see StepCommitter).
// Call it before Start: a cluster node whose partitions are replicated.
func (h *Host) SetCommitter(c StepCommitter) { h.opts.Committer = c }
