package placement

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func members(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member(fmt.Sprintf("node-%d", i+1))
	}
	return ms
}

// TestJoinAndLeaveMoveAboutOneNth: adding or removing one of N members moves
// about 1/N of the partitions, and only to or from that member.
func TestJoinAndLeaveMoveAboutOneNth(t *testing.T) {
	const partitions = 256
	for _, n := range []int{2, 3, 4, 5, 8} {
		t.Run(fmt.Sprintf("%d→%d", n, n+1), func(t *testing.T) {
			before, after := NewTable(partitions, members(n)), NewTable(partitions, members(n+1))
			joined := Member(fmt.Sprintf("node-%d", n+1))
			moved := before.Moved(after)
			for _, p := range moved {
				if after.Owners[p] != joined {
					t.Errorf("partition %d moved from %s to %s, not to the joining node", p, before.Owners[p], after.Owners[p])
				}
			}
			checkShare(t, len(moved), partitions, n+1)
		})
		t.Run(fmt.Sprintf("%d→%d", n+1, n), func(t *testing.T) {
			before := NewTable(partitions, members(n+1))
			left := Member(fmt.Sprintf("node-%d", 2)) // not the last one: order must not matter
			var rest []Member
			for _, m := range members(n + 1) {
				if m != left {
					rest = append(rest, m)
				}
			}
			after := NewTable(partitions, rest)
			moved := before.Moved(after)
			for _, p := range moved {
				if before.Owners[p] != left {
					t.Errorf("partition %d moved though its owner %s stayed", p, before.Owners[p])
				}
			}
			if len(moved) != before.Count()[left] {
				t.Errorf("moved %d partitions, the leaving node owned %d", len(moved), before.Count()[left])
			}
			checkShare(t, len(moved), partitions, n+1)
		})
	}
}

// checkShare: moved is within a generous binomial bound of partitions/n.
func checkShare(t *testing.T, moved, partitions, n int) {
	t.Helper()
	want := float64(partitions) / float64(n)
	sd := math.Sqrt(float64(partitions) * (1 / float64(n)) * (1 - 1/float64(n)))
	if math.Abs(float64(moved)-want) > 4*sd {
		t.Errorf("moved %d of %d partitions; expected about %.0f (1/%d)", moved, partitions, want, n)
	}
}

// TestTableIsTheSameEverywhere: the table depends on the member set only, not on
// the order members are listed in (every node computes the same one).
func TestTableIsTheSameEverywhere(t *testing.T) {
	a := NewTable(256, []Member{"c", "a", "b"})
	b := NewTable(256, []Member{"b", "c", "a", "a"})
	if len(a.Moved(b)) != 0 {
		t.Fatal("member order changed the table")
	}
	for m, c := range a.Count() {
		if c < 256/3-40 || c > 256/3+40 {
			t.Errorf("%s owns %d of 256 partitions: unbalanced", m, c)
		}
	}
	if NewTable(4, nil).Owners[0] != "" {
		t.Error("a table without members has owners")
	}
}

// TestActivitiesSpreadOverLiveMembers: a fan-out of 300 on 3 live members runs
// roughly a third on each, and a member's death moves only its own invocations.
func TestActivitiesSpreadOverLiveMembers(t *testing.T) {
	live := members(3)
	counts := map[Member]int{}
	for task := range 300 {
		counts[ActivityNode(live, fmt.Sprintf("order-1#%d", task))]++
	}
	for _, m := range live {
		if counts[m] < 60 || counts[m] > 140 {
			t.Errorf("%s runs %d of 300 activities", m, counts[m])
		}
	}
	survivors := []Member{live[0], live[2]}
	for task := range 300 {
		key := fmt.Sprintf("order-1#%d", task)
		before, after := ActivityNode(live, key), ActivityNode(survivors, key)
		if before != live[1] && before != after {
			t.Errorf("%s moved from %s to %s though %s is alive", key, before, after, before)
		}
	}
}

// TestPartitionOfIsStable pins the key → partition function: a change would move
// every stored key to another partition.
func TestPartitionOfIsStable(t *testing.T) {
	for key, want := range map[string]uint16{"12345678": 0x2d} {
		if got := PartitionOf(key, 256); got != want {
			t.Errorf("PartitionOf(%q, 256) = %#x, want %#x", key, got, want)
		}
	}
	seen := map[uint16]bool{}
	for i := range 10_000 {
		p := PartitionOf(fmt.Sprint("id-", i), 256)
		if p >= 256 {
			t.Fatalf("partition %d out of range", p)
		}
		seen[p] = true
	}
	if len(seen) != 256 {
		t.Errorf("10,000 ids fell in %d of 256 partitions", len(seen))
	}
}

// TestReplicas: a partition's replicas start with its owner, are the same
// whatever order the members come in, and a join changes at most one place of
// each replica set (the joining member's), a leave only the sets the leaving
// member was in; every member holds about its share.
func TestReplicas(t *testing.T) {
	const partitions, n = 256, 3
	five := members(5)
	reversed := slices.Clone(five)
	slices.Reverse(reversed)
	six := members(6)
	held := map[Member]int{}
	for p := range uint16(partitions) {
		rs := ReplicasOf(p, five, n)
		if len(rs) != n || rs[0] != NewTable(partitions, five).Owners[p] {
			t.Fatalf("partition %d: replicas %v, owner %s", p, rs, NewTable(partitions, five).Owners[p])
		}
		if other := ReplicasOf(p, reversed, n); !slices.Equal(rs, other) {
			t.Fatalf("partition %d: %v, or %v with the members in another order", p, rs, other)
		}
		for _, m := range rs {
			held[m]++
		}
		grown := ReplicasOf(p, six, n)
		var added []Member
		for _, m := range grown {
			if !slices.Contains(rs, m) {
				added = append(added, m)
			}
		}
		if len(added) > 1 || len(added) == 1 && added[0] != "node-6" {
			t.Fatalf("partition %d: a join changed %v into %v", p, rs, grown)
		}
		shrunk := ReplicasOf(p, five[1:], n) // node-1 leaves
		if !slices.Contains(rs, "node-1") && !slices.Equal(rs, shrunk) {
			t.Fatalf("partition %d: node-1 left and %v, which it was not in, became %v", p, rs, shrunk)
		}
	}
	for _, m := range five {
		checkShare(t, held[m], partitions*n, 5)
	}
	if got := ReplicasOf(3, members(2), n); len(got) != 2 {
		t.Fatalf("two members, three replicas wanted: %v", got)
	}
	if ReplicaID("node-1") == 0 || ReplicaID("node-1") == ReplicaID("node-2") || ReplicaID("node-1") != ReplicaID("node-1") {
		t.Fatal("replica ids: not stable, zero or shared")
	}
}
