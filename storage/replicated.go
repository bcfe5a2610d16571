package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// A replicated partition's steps reach the store through its raft group
// (package replication): the leader's step batch, encoded (Repr), is the
// entry, and every replica applies committed entries with Applied, which
// records the entry's index as the partition's applied index in the same
// write. The raft log is synced; the apply is not: after a crash the group
// applies again what follows the applied index, and the two never disagree
// since they are written together.

// ErrForeignKey refuses an entry that writes outside its partition.
var ErrForeignKey = errors.New("storage: a replicated step writes outside its partition")

// Repr is the batch encoded: what a replicated step proposes. The batch is
// not committed; close it as usual.
func (b *Batch) Repr() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.b == nil {
		return nil, errors.New("storage: repr of a closed batch")
	}
	return append([]byte(nil), b.b.Repr()...), nil
}

// An ApplyBatch gathers committed entries, of any number of partitions, into
// one write.
type ApplyBatch struct {
	db  *DB
	b   *pebble.Batch
	err error
}

// NewApplyBatch starts an empty ApplyBatch; Close it when done.
func (db *DB) NewApplyBatch() *ApplyBatch { return &ApplyBatch{db: db, b: db.pdb.NewBatch()} }

// Add adds the entry at index of partition part's group: the step's writes,
// which must all lie in the partition, and the applied index.
func (a *ApplyBatch) Add(part uint16, index uint64, repr []byte) error {
	if a.err != nil {
		return a.err
	}
	if err := a.db.validPartition(part); err != nil {
		a.err = fmt.Errorf("storage: apply entry %d: %w", index, err)
		return a.err
	}
	if len(repr) == 0 { // an entry with no step: only the applied index moves
		if err := a.b.Set(appliedKey(part), binary.BigEndian.AppendUint64(nil, index), nil); err != nil {
			a.err = fmt.Errorf("storage: apply entry %d of group %d: %w", index, part, err)
		}
		return a.err
	}
	step := a.db.pdb.NewBatch()
	defer step.Close()
	if err := step.SetRepr(append([]byte(nil), repr...)); err != nil {
		a.err = fmt.Errorf("storage: apply entry %d of group %d: %w", index, part, err)
		return a.err
	}
	if err := inPartition(step, part); err != nil {
		a.err = fmt.Errorf("storage: apply entry %d of group %d: %w", index, part, err)
		return a.err
	}
	if err := a.b.Apply(step, nil); err != nil {
		a.err = fmt.Errorf("storage: apply entry %d of group %d: %w", index, part, err)
		return a.err
	}
	if err := a.b.Set(appliedKey(part), binary.BigEndian.AppendUint64(nil, index), nil); err != nil {
		a.err = fmt.Errorf("storage: apply entry %d of group %d: %w", index, part, err)
	}
	return a.err
}

// inPartition checks that every key the step writes (and every range it
// deletes) lies under p/<part>/.
func inPartition(step *pebble.Batch, part uint16) error {
	lo := partPrefix(part)
	hi := prefixEnd(lo)
	within := func(k []byte) bool { return string(k) >= string(lo) && string(k) < string(hi) }
	r := step.Reader()
	for {
		kind, key, value, ok, err := r.Next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if !within(key) {
			return fmt.Errorf("key %q: %w", key, ErrForeignKey)
		}
		if kind == pebble.InternalKeyKindRangeDelete && string(value) > string(hi) {
			return fmt.Errorf("range [%q, %q): %w", key, value, ErrForeignKey)
		}
	}
}

// Commit writes the entries, not synced (see above).
func (a *ApplyBatch) Commit() error {
	if a.err != nil {
		return a.err
	}
	if err := a.db.acquire(); err != nil {
		return err
	}
	defer a.db.release()
	if err := a.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("storage: apply: %w", err)
	}
	return nil
}

// Close releases the batch.
func (a *ApplyBatch) Close() { _ = a.b.Close() }

// AppliedIndex is the index of partition part's group applied last (0: none).
func (db *DB) AppliedIndex(part uint16) (uint64, error) {
	if err := db.check(part); err != nil {
		return 0, err
	}
	defer db.release()
	v, err := db.get(appliedKey(part))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storage: applied index of group %d: %w", part, err)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("storage: applied index of group %d: %d bytes, want 8", part, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// PutAppliedIndex records index as partition part's applied index: a group
// created over data that is already there (a partition held before it was
// replicated) starts its log after it.
func (b *Batch) PutAppliedIndex(part uint16, index uint64) {
	if err := b.db.validPartition(part); err != nil {
		b.fail(fmt.Errorf("storage: put applied index: %w", err))
		return
	}
	b.set("put applied index", "", appliedKey(part), binary.BigEndian.AppendUint64(nil, index))
}
