package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// A partition's raft group keeps its log and state under g/<part>/ (keys.go).
// The values are opaque here: package replication encodes them.

// PutRaftEntry stores the log entry at index of partition part's group.
func (b *Batch) PutRaftEntry(part uint16, index uint64, v []byte) {
	if err := b.db.validPartition(part); err != nil {
		b.fail(fmt.Errorf("storage: put raft entry %d: %w", index, err))
		return
	}
	if err := b.b.Set(raftEntryKey(part, index), v, nil); err != nil {
		b.fail(fmt.Errorf("storage: put raft entry %d of group %d: %w", index, part, err))
	}
}

// DeleteRaftEntriesFrom deletes the entries of partition part's group at
// index and above: a new leader's entries replace a conflicting tail.
func (b *Batch) DeleteRaftEntriesFrom(part uint16, index uint64) {
	if err := b.db.validPartition(part); err != nil {
		b.fail(fmt.Errorf("storage: delete raft entries from %d: %w", index, err))
		return
	}
	if err := b.b.DeleteRange(raftEntryKey(part, index), prefixEnd(raftEntryPrefix(part)), nil); err != nil {
		b.fail(fmt.Errorf("storage: delete raft entries from %d of group %d: %w", index, part, err))
	}
}

// PutRaftState stores one of partition part's group's state records.
func (b *Batch) PutRaftState(part uint16, name string, v []byte) {
	if err := b.db.validPartition(part); err != nil {
		b.fail(fmt.Errorf("storage: put raft state %s: %w", name, err))
		return
	}
	if err := b.b.Set(raftStateKey(part, name), v, nil); err != nil {
		b.fail(fmt.Errorf("storage: put raft state %s of group %d: %w", name, part, err))
	}
}

// RaftState reads one of partition part's group's state records; ErrNotFound
// if it was never stored.
func (db *DB) RaftState(part uint16, name string) ([]byte, error) {
	if err := db.check(part); err != nil {
		return nil, err
	}
	defer db.release()
	v, err := db.get(raftStateKey(part, name))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("storage: raft state %s of group %d: %w", name, part, err)
	}
	return v, err
}

// RaftEntries calls fn for each stored entry of partition part's group with
// lo ≤ index < hi, in order, until fn returns false.
func (db *DB) RaftEntries(part uint16, lo, hi uint64, fn func(index uint64, v []byte) bool) error {
	if err := db.check(part); err != nil {
		return err
	}
	defer db.release()
	prefix := raftEntryPrefix(part)
	errStop := errors.New("stop")
	err := db.scan(raftEntryKey(part, lo), raftEntryKey(part, hi), func(k, v []byte) error {
		if len(k) != len(prefix)+8 {
			return fmt.Errorf("storage: malformed raft entry key %q", k)
		}
		if !fn(binary.BigEndian.Uint64(k[len(prefix):]), v) {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: raft entries [%d, %d) of group %d: %w", lo, hi, part, err)
	}
	return nil
}

// RaftIndexes returns the first and last index stored in partition part's
// group's log; ok is false when it holds no entry.
func (db *DB) RaftIndexes(part uint16) (first, last uint64, ok bool, err error) {
	if err := db.check(part); err != nil {
		return 0, 0, false, err
	}
	defer db.release()
	prefix := raftEntryPrefix(part)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, 0, false, err
	}
	defer it.Close()
	if !it.First() {
		return 0, 0, false, it.Error()
	}
	first = binary.BigEndian.Uint64(it.Key()[len(prefix):])
	if !it.Last() {
		return 0, 0, false, it.Error()
	}
	last = binary.BigEndian.Uint64(it.Key()[len(prefix):])
	return first, last, true, it.Error()
}

// DeleteRaftEntriesTo deletes the entries of partition part's group up to and
// including index: the log is truncated behind what every replica applied, or
// replaced by a snapshot.
func (b *Batch) DeleteRaftEntriesTo(part uint16, index uint64) {
	if err := b.db.validPartition(part); err != nil {
		b.fail(fmt.Errorf("storage: delete raft entries to %d: %w", index, err))
		return
	}
	if err := b.b.DeleteRange(raftEntryPrefix(part), raftEntryKey(part, index+1), nil); err != nil {
		b.fail(fmt.Errorf("storage: delete raft entries to %d of group %d: %w", index, part, err))
	}
}

// DestroyReplica deletes partition part's data and its raft group's log and
// state in one synced write: this node no longer replicates it. A crash
// leaves all of it or none.
func (db *DB) DestroyReplica(part uint16) error {
	b := db.NewBatch()
	defer b.Close()
	b.DeletePartition(part)
	b.delPrefix("destroy replica", fmt.Sprint(part), raftGroupPrefix(part))
	return b.Commit()
}

// A PartitionSnapshot is a partition's data as of one applied index: what a
// replica that is too far behind for the log is caught up with. It holds a
// pebble snapshot until Close.
type PartitionSnapshot struct {
	db      *DB
	snap    *pebble.Snapshot
	part    uint16
	Applied uint64 // the index the data is at
}

// SnapshotPartition takes a consistent view of partition part: its keys and
// the applied index written with them.
func (db *DB) SnapshotPartition(part uint16) (*PartitionSnapshot, error) {
	if err := db.check(part); err != nil {
		return nil, err
	}
	defer db.release()
	s := &PartitionSnapshot{db: db, snap: db.pdb.NewSnapshot(), part: part}
	v, closer, err := s.snap.Get(appliedKey(part))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		_ = s.snap.Close()
		return nil, fmt.Errorf("storage: snapshot partition %d: %w", part, err)
	default:
		if len(v) == 8 {
			s.Applied = binary.BigEndian.Uint64(v)
		}
		_ = closer.Close()
	}
	return s, nil
}

// RaftState reads one of the group's state records as of the snapshot.
func (s *PartitionSnapshot) RaftState(name string) ([]byte, error) {
	v, closer, err := s.snap.Get(raftStateKey(s.part, name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// Scan calls fn with the partition's keys in chunks of about chunkBytes.
func (s *PartitionSnapshot) Scan(chunkBytes int, fn func([]KV) error) error {
	prefix := partPrefix(s.part)
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	var chunk []KV
	size := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		chunk = append(chunk, KV{append([]byte(nil), it.Key()...), append([]byte(nil), v...)})
		size += len(it.Key()) + len(v)
		if size >= chunkBytes {
			if err := fn(chunk); err != nil {
				return err
			}
			chunk, size = nil, 0
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("storage: scan the snapshot of partition %d: %w", s.part, err)
	}
	if len(chunk) > 0 {
		return fn(chunk)
	}
	return nil
}

// Close releases the snapshot.
func (s *PartitionSnapshot) Close() error { return s.snap.Close() }
