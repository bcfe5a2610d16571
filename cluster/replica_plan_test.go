package cluster

import (
	"slices"
	"testing"

	"github.com/weftrt/weft/replication"
)

// The replica plan, case by case: the leader is node 1 unless said; dead
// nodes are listed; match is every replica's log position (10 = caught up).
func TestReplicaPlan(t *testing.T) {
	ids := func(xs ...replication.NodeID) []replication.NodeID { return xs }
	cases := []struct {
		name     string
		self     replication.NodeID
		voters   []replication.NodeID
		learners []replication.NodeID
		target   []replication.NodeID
		dead     []replication.NodeID
		draining []replication.NodeID
		behind   []replication.NodeID // match 5 instead of 10
		want     replicaChange
	}{
		{name: "matches its target", voters: ids(1, 2, 3), target: ids(1, 2, 3), want: replicaChange{}},
		{name: "grows to its target", voters: ids(1), target: ids(1, 2, 3), want: replicaChange{kind: addLearner, node: 2}},
		{name: "one learner at a time", voters: ids(1), learners: ids(2), behind: ids(2), target: ids(1, 2, 3), want: replicaChange{}},
		{name: "a caught-up learner is promoted", voters: ids(1), learners: ids(2), target: ids(1, 2, 3), want: replicaChange{kind: promoteLearner, node: 2}},
		{name: "a dead learner is not promoted", voters: ids(1, 2), learners: ids(3), dead: ids(3), target: ids(1, 2, 3), want: replicaChange{}},
		{name: "a learner out of the target is removed", voters: ids(1, 2, 3), learners: ids(4), target: ids(1, 2, 3), want: replicaChange{kind: removeReplica, node: 4}},
		{name: "a lost node is replaced: the new one first", voters: ids(1, 2, 3), dead: ids(3), target: ids(1, 2, 4),
			want: replicaChange{kind: addLearner, node: 4}},
		{name: "a lost node is replaced: then the lost one goes", voters: ids(1, 2, 3, 4), dead: ids(3), target: ids(1, 2, 4),
			want: replicaChange{kind: removeReplica, node: 3}},
		{name: "a node only down keeps its place", voters: ids(1, 2, 3), dead: ids(3), target: ids(1, 2, 3), want: replicaChange{}},
		{name: "a target node that is down is not added", voters: ids(1, 2, 3), dead: ids(4), target: ids(1, 2, 4), want: replicaChange{}},
		{name: "a leaving voter goes once the target is whole", voters: ids(1, 2, 3), target: ids(1, 2), want: replicaChange{kind: removeReplica, node: 3}},
		{name: "the dead extra voter goes first", voters: ids(1, 2, 3, 4, 5), dead: ids(5), target: ids(1, 2, 3),
			want: replicaChange{kind: removeReplica, node: 5}},
		{name: "a leaving leader hands leadership over first", self: 3, voters: ids(1, 2, 3), target: ids(1, 2),
			want: replicaChange{kind: transferLeadership, node: 1}},
		{name: "not to a replica behind", self: 3, voters: ids(1, 2, 3), behind: ids(1), target: ids(1, 2),
			want: replicaChange{kind: transferLeadership, node: 2}},
		{name: "not to a draining replica", self: 3, voters: ids(1, 2, 3), draining: ids(1), target: ids(1, 2),
			want: replicaChange{kind: transferLeadership, node: 2}},
		{name: "a removal that would lose the live majority waits", voters: ids(1, 2, 3), dead: ids(3), target: ids(1, 3),
			want: replicaChange{}},
		{name: "a join: the new node is added", voters: ids(1, 2, 3), target: ids(1, 4, 2), want: replicaChange{kind: addLearner, node: 4}},
		{name: "a join: the displaced voter goes", voters: ids(1, 2, 3, 4), target: ids(1, 4, 2), want: replicaChange{kind: removeReplica, node: 3}},
		{name: "leadership goes to the owner", voters: ids(1, 2, 3), target: ids(2, 1, 3), want: replicaChange{kind: transferLeadership, node: 2}},
		{name: "not to an owner that is behind", voters: ids(1, 2, 3), behind: ids(2), target: ids(2, 1, 3), want: replicaChange{}},
		{name: "nor to a draining owner", voters: ids(1, 2, 3), draining: ids(2), target: ids(2, 1, 3), want: replicaChange{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			self := tc.self
			if self == 0 {
				self = 1
			}
			match := map[replication.NodeID]uint64{}
			for _, id := range append(slices.Clone(tc.voters), tc.learners...) {
				match[id] = 10
				if slices.Contains(tc.behind, id) {
					match[id] = 5
				}
			}
			alive := func(id replication.NodeID) bool { return !slices.Contains(tc.dead, id) }
			g := groupPlan{self: self, voters: tc.voters, learners: tc.learners, match: match, commit: 10, last: 10,
				target: tc.target, alive: alive,
				canLead: func(id replication.NodeID) bool { return alive(id) && !slices.Contains(tc.draining, id) }}
			got := g.next()
			if got.kind != tc.want.kind || got.node != tc.want.node {
				t.Fatalf("next change %v, want %s %d", got, tc.want.kind, tc.want.node)
			}
		})
	}
}
