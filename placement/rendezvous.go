package placement

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strings"
)

// The placement rule, in one place:
//
//   - a key (an instance id) belongs to partition PartitionOf(key, P), P fixed when
//     the cluster is created;
//   - a partition is owned by the registered member with the highest rendezvous
//     score for it. Registered, not live: liveness decides whether a partition can
//     be served, not who owns it, so a dead node's partitions wait for it with
//     their data instead of starting empty elsewhere;
//   - a partition's replicas are the first N registered members by score (the
//     owner first), so a join or a leave changes one place of a replica set at
//     most, and only where the member scores in the top N;
//   - an activity invocation runs on the live member with the highest score for
//     its key, so a fan-out spreads over the cluster and a dead node strands none.
//
// Rendezvous (highest-random-weight) hashing moves only the partitions whose top
// score belonged to a member that joined or left: about 1/N of them for one of N
// members, and nothing else. Every node computes the same table from the same
// member set.

// Member is a cluster member as placement sees it: a stable id.
type Member string

// score is the rendezvous weight of member m for a key.
func score(m Member, key []byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte(m))
	h.Write([]byte{0})
	h.Write(key)
	return mix(h.Sum64())
}

// mix finalises an FNV hash (splitmix64's finaliser): FNV's low bits are weak,
// and rendezvous needs every bit to compare fairly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Owner returns the member with the highest score for key; ties (practically
// impossible) go to the smaller id. It returns "" for no members.
func Owner(members []Member, key []byte) Member {
	var best Member
	var bestScore uint64
	for _, m := range members {
		s := score(m, key)
		if best == "" || s > bestScore || s == bestScore && m < best {
			best, bestScore = m, s
		}
	}
	return best
}

func partitionKey(p uint16) []byte { return binary.BigEndian.AppendUint16([]byte("p"), p) }

// Replicas returns the first n members by score for key, highest first (the
// owner first; ties go to the smaller id); all of them when there are fewer.
func Replicas(members []Member, key []byte, n int) []Member {
	type scored struct {
		m Member
		s uint64
	}
	all := make([]scored, 0, len(members))
	for _, m := range slices.Compact(slices.Sorted(slices.Values(members))) {
		all = append(all, scored{m, score(m, key)})
	}
	slices.SortFunc(all, func(a, b scored) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return strings.Compare(string(a.m), string(b.m))
	})
	out := make([]Member, 0, min(n, len(all)))
	for _, x := range all[:min(n, len(all))] {
		out = append(out, x.m)
	}
	return out
}

// ReplicasOf returns partition p's n replicas over the registered members.
func ReplicasOf(p uint16, registered []Member, n int) []Member {
	return Replicas(registered, partitionKey(p), n)
}

// ReplicaID is a member's id in the raft groups it replicates: derived from
// its member id alone, so every node computes the same, and never 0 (raft's
// "none").
func ReplicaID(m Member) uint64 {
	h := fnv.New64a()
	h.Write([]byte("replica/"))
	h.Write([]byte(m))
	if id := mix(h.Sum64()); id != 0 {
		return id
	}
	return 1
}

// Table maps every partition to its owner.
type Table struct {
	Members []Member // sorted
	Owners  []Member // Owners[p] owns partition p
}

// NewTable computes the placement table of partitions partitions over the
// registered members.
func NewTable(partitions int, registered []Member) *Table {
	members := slices.Clone(registered)
	slices.Sort(members)
	members = slices.Compact(members)
	t := &Table{Members: members, Owners: make([]Member, partitions)}
	for p := range t.Owners {
		t.Owners[p] = Owner(members, partitionKey(uint16(p)))
	}
	return t
}

// OwnerOf returns the owner of the partition of key.
func (t *Table) OwnerOf(key string) Member {
	return t.Owners[PartitionOf(key, len(t.Owners))]
}

// Moved lists the partitions whose owner differs between t and next.
func (t *Table) Moved(next *Table) []uint16 {
	var moved []uint16
	for p := range min(len(t.Owners), len(next.Owners)) {
		if t.Owners[p] != next.Owners[p] {
			moved = append(moved, uint16(p))
		}
	}
	return moved
}

// Count returns how many partitions each member owns.
func (t *Table) Count() map[Member]int {
	c := map[Member]int{}
	for _, m := range t.Owners {
		c[m]++
	}
	return c
}

// ActivityNode returns the live member that runs the activity invocation key
// (e.g. "<instance>#<task>").
func ActivityNode(live []Member, key string) Member {
	return Owner(live, []byte(key))
}
