package cluster

import (
	"context"
	"slices"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftrt/weft/replication"
)

// Replica garbage collection. A replica removed from its group does not
// always hear of it: its leader stops talking to it once the removal is
// committed (the leader's notice, replicas.go, may be lost, or overtaken by a
// snapshot sent before the removal that recreates the replica), and a node
// that was down at the time comes back with the replica. Such a replica
// follows nobody: it waits forever, or campaigns in vain (its peers have moved
// on; its log is behind theirs). From where it stands it looks like a quiet
// follower.
//
// So every gcInterval a node asks the leader of each group it has a replica
// of but does not lead (the registry names them; one request per leader node
// for all its groups) for the group's members; a replica that is not among
// them, by a leader whose term is not older than its own, destroys itself.

const gcInterval = 10 * time.Second

type groupMembersReq struct {
	Groups []uint16 `msgpack:"g"`
}

type groupMembers struct {
	Term     uint64               `msgpack:"t"`
	Voters   []replication.NodeID `msgpack:"v"`
	Learners []replication.NodeID `msgpack:"ln"`
}

// groupMembers answers a replica's question (kindGroupMembers) for the groups
// this node leads.
func (rs *replicaSet) groupMembers(q groupMembersReq) map[uint16]groupMembers {
	out := make(map[uint16]groupMembers, len(q.Groups))
	for _, p := range q.Groups {
		if st, ok := rs.d.Status(replication.GroupID(p)); ok && st.Leading {
			out[p] = groupMembers{Term: st.Term, Voters: st.Voters, Learners: st.Learners}
		}
	}
	return out
}

// gcSoon makes the next collectGarbage run at once: a leader said one of
// this node's replicas was removed.
func (rs *replicaSet) gcSoon() {
	rs.gcNow.Store(true)
	rs.n.poke()
}

// collectGarbage destroys the replicas their groups no longer have; last is
// when it last ran (kept by the caller).
func (rs *replicaSet) collectGarbage(last *time.Time) {
	if time.Since(*last) < gcInterval && !rs.gcNow.Swap(false) {
		return
	}
	*last = time.Now()
	n := rs.n
	byLeader := map[string][]uint16{}
	addrs := map[string]string{}
	for _, g := range rs.d.IDs() {
		p := uint16(g)
		if leading, _, ok := rs.d.Role(g); !ok || leading {
			continue
		}
		if leader, ok := n.holderOf(p); ok && n.alive(leader.Node) {
			byLeader[leader.Node] = append(byLeader[leader.Node], p)
			addrs[leader.Node] = leader.ActorAddr
		}
	}
	for node, parts := range byLeader {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b, err := n.tr.call(ctx, addrs[node], kindGroupMembers, groupMembersReq{Groups: parts}, 0)
		cancel()
		var members map[uint16]groupMembers
		if err != nil || msgpack.Unmarshal(b, &members) != nil {
			continue
		}
		for p, m := range members {
			g := replication.GroupID(p)
			leading, term, ok := rs.d.Role(g)
			if !ok || leading || m.Term < term || slices.Contains(m.Voters, rs.self) || slices.Contains(m.Learners, rs.self) {
				continue
			}
			n.log.Info("destroying a replica its group no longer has", "partition", p, "leader", node, "term", m.Term)
			rs.d.RemoveReplica(g)
		}
	}
}
