package replication

import "context"

// A Proposal is a step on its way to a quorum: it resolves once its entry is
// committed and applied on this node (its log index), or fails.
type Proposal struct {
	done  chan struct{}
	index uint64
	err   error
	// logIndex is where the leader wrote the entry (0: not written yet).
	// Only the groups' goroutine reads or writes it.
	logIndex uint64
}

func newProposal() *Proposal { return &Proposal{done: make(chan struct{})} }

func (p *Proposal) resolve(index uint64, err error) {
	p.index, p.err = index, err
	close(p.done)
}

// Done is closed once the proposal resolved.
func (p *Proposal) Done() <-chan struct{} { return p.done }

// Wait blocks until the proposal resolved or ctx ends, and returns the index
// its entry was applied at.
func (p *Proposal) Wait(ctx context.Context) (uint64, error) {
	select {
	case <-p.done:
		return p.index, p.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
