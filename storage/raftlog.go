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
