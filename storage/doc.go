// Package storage is weft's pebble store: it owns the key layout, the msgpack
// encoding of every record, atomic batches, scans and the listing index. It knows
// records and keys, not what a workflow is; callers decide what to write and when.
//
// One pebble database serves a whole node. Every partition-scoped key starts
// with its partition (see keys.go), so a partition can be scanned, streamed or
// dropped as a unit. Every change of one actor step goes into one Batch, which
// commits with pebble.Sync: many actors committing at once share an fsync in
// pebble's commit pipeline.
package storage
