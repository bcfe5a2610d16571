// Package placement decides where things live: which partition a key belongs to,
// which member owns a partition, and which live member runs an activity. The
// rule is in rendezvous.go; this package does no networking (the cluster feeds
// it member sets).
package placement

import "hash/fnv"

// DefaultPartitions is the partition count of a new store or cluster. It is fixed
// when the store is created: changing it would move every key.
const DefaultPartitions = 256

// PartitionOf maps a key (an instance id) to its partition, 0 ≤ p < partitions.
// FNV-1a is stable across processes and Go versions, unlike maphash.
func PartitionOf(key string, partitions int) uint16 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return uint16(h.Sum64() % uint64(partitions))
}
