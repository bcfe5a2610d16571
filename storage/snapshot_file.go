package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
)

// A partition's snapshot streamed in from another replica is staged on disk,
// not in memory: its keys, in order as the sender's scan yields them, go
// into an sstable in the store's staging directory as each chunk arrives, so
// a replica catching up on a partition of any size holds a block of it in
// memory at a time. Installing it is pebble's ingest with an excise of the
// partition's span: the partition's keys are replaced by the file's in one
// atomic, durable step, without rewriting them through the WAL.

// stagingDir is where snapshot files are written, inside the store's
// directory (so that ingesting one is a hard link, not a copy). What is left
// there after a crash is deleted when the store opens.
const stagingDir = "snapshot-staging"

// SnapshotFile is one partition snapshot being staged. It is not safe for
// concurrent use.
type SnapshotFile struct {
	db    *DB
	part  uint16
	path  string
	w     *sstable.Writer
	last  []byte
	keys  int
	bytes int64
	done  bool // finished: the file is complete
}

// NewSnapshotFile starts staging a snapshot of partition part; name tells it
// apart from other streams (it becomes the file's name).
func (db *DB) NewSnapshotFile(part uint16, name string) (*SnapshotFile, error) {
	if err := db.validPartition(part); err != nil {
		return nil, err
	}
	dir := filepath.Join(db.dir, stagingDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: stage a snapshot of partition %d: %w", part, err)
	}
	path := filepath.Join(dir, name+".sst")
	f, err := db.popts.FS.Create(path, "")
	if err != nil {
		return nil, fmt.Errorf("storage: stage a snapshot of partition %d: %w", part, err)
	}
	wo := db.popts.MakeWriterOptions(0, db.pdb.TableFormat())
	return &SnapshotFile{db: db, part: part, path: path, w: sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)}, nil
}

// Add appends kvs: keys of the partition, each after the one before.
func (f *SnapshotFile) Add(kvs []KV) error {
	if f.done || f.w == nil {
		return fmt.Errorf("storage: snapshot of partition %d: add after it was finished or discarded", f.part)
	}
	lo := partPrefix(f.part)
	hi := prefixEnd(lo)
	for _, kv := range kvs {
		if bytes.Compare(kv.K, lo) < 0 || bytes.Compare(kv.K, hi) >= 0 {
			return fmt.Errorf("storage: snapshot of partition %d: key %q lies outside it", f.part, kv.K)
		}
		if f.last != nil && f.db.popts.Comparer.Compare(kv.K, f.last) <= 0 {
			return fmt.Errorf("storage: snapshot of partition %d: key %q is out of order", f.part, kv.K)
		}
		if err := f.w.Set(kv.K, kv.V); err != nil {
			return fmt.Errorf("storage: snapshot of partition %d: %w", f.part, err)
		}
		f.last = append(f.last[:0], kv.K...)
		f.keys++
		f.bytes += int64(len(kv.K) + len(kv.V))
	}
	return nil
}

// Finish completes the file (synced).
func (f *SnapshotFile) Finish() error {
	if f.done {
		return nil
	}
	if f.w == nil {
		return fmt.Errorf("storage: snapshot of partition %d: finish after it was discarded", f.part)
	}
	err := f.w.Close()
	f.w = nil
	if err != nil {
		_ = os.Remove(f.path)
		return fmt.Errorf("storage: snapshot of partition %d: %w", f.part, err)
	}
	f.done = true
	return nil
}

// Keys and Bytes say how much the snapshot holds so far.
func (f *SnapshotFile) Keys() int    { return f.keys }
func (f *SnapshotFile) Bytes() int64 { return f.bytes }

// Discard deletes the staged file (it is safe to call more than once, and
// after Install).
func (f *SnapshotFile) Discard() {
	if f.w != nil {
		_ = f.w.Close() // an unfinished table: closed only to release it
		f.w = nil
	}
	_ = os.Remove(f.path)
}

// InstallSnapshotFile replaces partition part's keys with the finished
// snapshot's (its applied index among them), atomically and durably, then
// deletes the staged file.
func (db *DB) InstallSnapshotFile(f *SnapshotFile) error {
	defer f.Discard()
	if !f.done {
		return fmt.Errorf("storage: install the snapshot of partition %d: it is not complete", f.part)
	}
	if f.keys == 0 { // nothing to ingest: the partition is emptied
		b := db.NewBatch()
		defer b.Close()
		b.DeletePartition(f.part)
		return b.Commit()
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	lo := partPrefix(f.part)
	span := pebble.KeyRange{Start: lo, End: prefixEnd(lo)}
	if _, err := db.pdb.IngestAndExcise(context.Background(), []string{f.path}, nil, nil, span); err != nil {
		return fmt.Errorf("storage: install the snapshot of partition %d: %w", f.part, err)
	}
	return nil
}

// clearStaging deletes the snapshot files a crash left behind.
func (db *DB) clearStaging() error {
	err := os.RemoveAll(filepath.Join(db.dir, stagingDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("storage: clear %s: %w", stagingDir, err)
	}
	return nil
}
