package cluster

import (
	"fmt"

	"github.com/hashicorp/memberlist"
)

// delegate is Membership's side of memberlist's callbacks. It is a separate
// type so that they stay out of Membership's API.
type delegate struct{ m *Membership }

// NodeMeta hands memberlist this node's encoded metadata. Start checked that
// it fits memberlist's limit.
func (d *delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	return d.m.metaBuf
}

// Membership carries the replicated state (Config.State), if any: whole in
// push/pull, as updates in messages.
func (d *delegate) NotifyMsg(b []byte) {
	if d.m.state != nil && len(b) > 0 {
		d.m.state.MergeRemoteState(b)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

func (d *delegate) LocalState(join bool) []byte {
	if d.m.state == nil {
		return nil
	}
	return d.m.state.LocalState()
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	if d.m.state != nil && len(buf) > 0 {
		d.m.state.MergeRemoteState(buf)
	}
}

// check decides whether a node may be a member: its metadata must be readable,
// name it, and carry this node's partition count.
func (d *delegate) check(n *memberlist.Node) (Meta, error) {
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		return Meta{}, fmt.Errorf("cluster: node %q: %w", n.Name, err)
	}
	if meta.NodeID != n.Name {
		return Meta{}, fmt.Errorf("cluster: node %q advertises the id %q in its metadata", n.Name, meta.NodeID)
	}
	if meta.Partitions != d.m.partitions {
		return Meta{}, &PartitionMismatchError{Node: n.Name, Theirs: meta.Partitions, Ours: d.m.partitions}
	}
	return meta, nil
}

// NotifyMerge runs on both sides of a join, before either adopts the other's
// member list: the joining node sees the cluster's members, the contacted node
// sees the joiner's. Refusing here is what makes the joining side's Join fail
// with the reason.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if _, err := d.check(p); err != nil {
			d.m.log.Warn("refused to merge with a node", "peer", p.Name, "err", err)
			d.m.mu.Lock()
			d.m.refusal = err
			d.m.mu.Unlock()
			return err
		}
	}
	return nil
}

// NotifyAlive filters gossip, which can carry news of a node that never joined
// through NotifyMerge (it joined a member that does not check, or a refused
// node is gossiped about by a third).
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	_, err := d.check(n)
	return err
}

// NotifyConflict reports two nodes with one id at different addresses: each
// would own the other's partitions.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.m.log.Error("two nodes claim one node id", "id", existing.Name, "known_addr", existing.Address(), "other_addr", other.Address())
}

func (d *delegate) member(n *memberlist.Node, s State) (Member, bool) {
	meta, err := decodeMeta(n.Meta)
	if err != nil { // NotifyAlive admits no such node; keep the view clean regardless
		d.m.log.Warn("ignored a member with unreadable metadata", "peer", n.Name, "err", err)
		return Member{}, false
	}
	return Member{ID: n.Name, Addr: n.Address(), Meta: meta, State: s}, true
}

func (d *delegate) NotifyJoin(n *memberlist.Node) {
	if mem, ok := d.member(n, StateAlive); ok {
		d.m.log.Debug("member joined", "peer", mem.ID, "addr", mem.Addr)
		d.m.record(EventJoin, mem)
	}
}

func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	if mem, ok := d.member(n, StateAlive); ok {
		d.m.log.Debug("member updated", "peer", mem.ID, "leaving", mem.Meta.Leaving)
		d.m.record(EventUpdate, mem)
	}
}

// NotifyLeave is memberlist's report of both a graceful leave and a death; the
// Leaving flag the node gossiped before leaving tells them apart.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	mem, ok := d.member(n, StateDead)
	if !ok {
		return
	}
	t := EventFail
	if mem.Meta.Leaving {
		mem.State, t = StateLeft, EventLeave
	}
	d.m.log.Info("member "+mem.State.String(), "peer", mem.ID, "addr", mem.Addr)
	d.m.record(t, mem)
}
