package actors

import (
	"errors"

	"github.com/weftrt/weft/storage"
)

// A StepCommitter makes a step's batch durable before the step's effects are
// carried out. Without one (a node alone, embedded weft) the batch is
// committed to the local store, synced. A replicated partition's committer
// (replication.Driver) proposes the batch to the partition's raft group and
// returns once a quorum committed it and this node applied it; the batch
// itself is then not committed locally, its entry is.
//
// A committer that finds this node no longer serves the partition, before
// the step was proposed (a leader changed), returns an error wrapping
// ErrStepNotProposed: the request is routed again, to the node that serves
// the partition now, since nothing of it was applied. One that lost the
// leadership after proposing the step returns ErrStepOutcomeUnknown.
type StepCommitter interface {
	CommitStep(part uint16, b *storage.Batch) error
}

// ErrStepNotProposed: see StepCommitter.
var ErrStepNotProposed = errors.New("the step was not proposed: this node does not serve its partition now")

// ErrStepOutcomeUnknown: a committer that lost its partition's leadership
// after proposing the step returns an error wrapping it: the step may yet be
// applied by the next leader, or may not. Only a request that is recognised
// when it comes again (sendsAgainSafely) is routed again.
var ErrStepOutcomeUnknown = errors.New("the step was proposed but its partition's leader changed before it was committed: it may have been applied")

// sendsAgainSafely reports whether msg may be sent again after an attempt
// whose outcome is unknown: the instance recognises it if it was applied.
func sendsAgainSafely(msg any) bool {
	m, ok := msg.(RaiseEventRequest)
	return ok && (m.RequestID != "" || m.From != nil)
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
