package cluster

import (
	"fmt"
	"slices"

	"github.com/weftrt/weft/replication"
)

// The replica plan: what the leader of a partition's group changes next so
// that the group's replicas become the partition's target, the first
// Replicas nodes of its rendezvous order over the registered nodes (a node
// that left or was removed is not registered; one that is only down still
// is, and keeps its place until it is removed). One change at a time, each
// keeping a live majority of voters:
//
//  1. a learner that is not in the target is removed;
//  2. a learner in the target that caught up is promoted;
//  3. once the target's voters are enough, a voter outside it is removed, the
//     dead first; if that voter is the leader itself, it hands leadership to
//     a live caught-up voter of the target instead, and the next leader
//     removes it;
//  4. a live node of the target that is no replica yet is added as a
//     learner (one at a time; it is caught up by snapshot);
//  5. leadership goes to the partition's first target node, the owner, when
//     that is a live caught-up voter: the load spreads as partitions do.
//
// So a lost node's replica is replaced (add, catch up, promote, remove), a
// join moves replicas to the new node the same way, and a leave moves them
// off the leaving node, leadership first.

// groupPlan is what the plan looks at: the leader's view of its group.
type groupPlan struct {
	self     replication.NodeID
	voters   []replication.NodeID
	learners []replication.NodeID
	match    map[replication.NodeID]uint64
	commit   uint64
	last     uint64
	target   []replication.NodeID // best first
	alive    func(replication.NodeID) bool
	canLead  func(replication.NodeID) bool // alive and not draining
}

type changeKind uint8

const (
	noChange changeKind = iota
	addLearner
	promoteLearner
	removeReplica
	transferLeadership
)

func (k changeKind) String() string {
	return [...]string{"none", "add learner", "promote", "remove", "transfer leadership"}[k]
}

// replicaChange is one step of the plan.
type replicaChange struct {
	kind changeKind
	node replication.NodeID
	why  string
}

func (c replicaChange) String() string { return fmt.Sprintf("%s %d: %s", c.kind, c.node, c.why) }

// next returns the group's next change (noChange when it matches its target).
func (g groupPlan) next() replicaChange {
	inTarget := func(id replication.NodeID) bool { return slices.Contains(g.target, id) }
	for _, l := range g.learners {
		if !inTarget(l) {
			return replicaChange{removeReplica, l, "a learner no longer in the partition's placement"}
		}
	}
	for _, l := range g.learners {
		if g.match[l] >= g.commit && g.alive(l) && g.liveMajority(append(slices.Clone(g.voters), l)) {
			return replicaChange{promoteLearner, l, "caught up"}
		}
	}
	kept := 0
	var extra []replication.NodeID
	for _, v := range g.voters {
		if inTarget(v) {
			kept++
		} else {
			extra = append(extra, v)
		}
	}
	if kept >= len(g.target) && len(extra) > 0 {
		// The dead first: they cost the group its margin.
		slices.SortStableFunc(extra, func(a, b replication.NodeID) int {
			return boolCmp(g.alive(a), g.alive(b))
		})
		for _, v := range extra {
			if v == g.self {
				if to, ok := g.successor(); ok {
					return replicaChange{transferLeadership, to, "this node's replica leaves the group"}
				}
				continue
			}
			rest := slices.DeleteFunc(slices.Clone(g.voters), func(x replication.NodeID) bool { return x == v })
			if g.liveMajority(rest) {
				return replicaChange{removeReplica, v, "a voter no longer in the partition's placement"}
			}
		}
	}
	if len(g.learners) == 0 {
		for _, t := range g.target {
			if !slices.Contains(g.voters, t) && g.alive(t) {
				return replicaChange{addLearner, t, "in the partition's placement, not a replica yet"}
			}
		}
	}
	if len(g.target) > 0 {
		owner := g.target[0]
		if owner != g.self && slices.Contains(g.voters, owner) && g.canLead(owner) && g.match[owner] >= g.last {
			return replicaChange{transferLeadership, owner, ownerLeads}
		}
	}
	return replicaChange{}
}

// successor is the live caught-up voter of the target to hand leadership to,
// the best placed first.
func (g groupPlan) successor() (replication.NodeID, bool) {
	for _, t := range g.target {
		if t != g.self && slices.Contains(g.voters, t) && g.canLead(t) && g.match[t] >= g.commit {
			return t, true
		}
	}
	return 0, false
}

// liveMajority reports whether a majority of voters is alive.
func (g groupPlan) liveMajority(voters []replication.NodeID) bool {
	live := 0
	for _, v := range voters {
		if g.alive(v) {
			live++
		}
	}
	return live > len(voters)/2
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// ownerLeads is why leadership moves to the partition's owner: routine, so not
// logged at info level.
const ownerLeads = "the partition's owner leads it"
