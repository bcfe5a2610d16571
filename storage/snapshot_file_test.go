package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A snapshot staged on disk from one store's partition and installed in
// another replaces that partition's keys there, and only them, durably; a
// staged file a crash left behind is gone when the store opens again.
func TestSnapshotFileReplacesAPartition(t *testing.T) {
	leader := openTest(t, t.TempDir(), 4)
	commit(t, leader, func(b *Batch) {
		for _, id := range []string{"a", "b", "c"} {
			must(t, b.PutInstance(1, rowWith(id, t0)))
		}
		b.PutAppliedIndex(1, 70)
	})
	dir := t.TempDir()
	replica := openTest(t, dir, 4)
	commit(t, replica, func(b *Batch) {
		must(t, b.PutInstance(1, rowWith("stale", t0))) // replaced by the snapshot
		must(t, b.PutInstance(2, rowWith("neighbour", t0)))
		b.PutAppliedIndex(1, 3)
	})

	view, err := leader.SnapshotPartition(1)
	must(t, err)
	f, err := replica.NewSnapshotFile(1, "test")
	must(t, err)
	chunks := 0
	must(t, view.Scan(64, func(kvs []KV) error { chunks++; return f.Add(kvs) })) // small chunks: several
	must(t, view.Close())
	if chunks < 2 {
		t.Fatalf("%d chunks: want several", chunks)
	}
	if err := replica.InstallSnapshotFile(f); err == nil {
		t.Fatal("an unfinished snapshot was installed")
	}
	f, err = replica.NewSnapshotFile(1, "test")
	must(t, err)
	view, err = leader.SnapshotPartition(1)
	must(t, err)
	must(t, view.Scan(64, f.Add))
	must(t, view.Close())
	if err := f.Add([]KV{{K: partPrefix(2), V: nil}}); err == nil {
		t.Fatal("a key of another partition was staged")
	}
	must(t, f.Finish())
	must(t, replica.InstallSnapshotFile(f))
	if _, err := os.Stat(f.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the staged file is still there after the install: %v", err)
	}

	check := func(db *DB, when string) {
		t.Helper()
		for _, id := range []string{"a", "b", "c"} {
			if _, err := db.LoadInstance(1, id); err != nil {
				t.Fatalf("%s: instance %s of the snapshot: %v", when, id, err)
			}
		}
		if _, err := db.LoadInstance(1, "stale"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: the partition's old instance: %v, want not found", when, err)
		}
		if _, err := db.LoadInstance(2, "neighbour"); err != nil {
			t.Fatalf("%s: the neighbouring partition's instance: %v", when, err)
		}
		if applied, _ := db.AppliedIndex(1); applied != 70 {
			t.Fatalf("%s: applied index %d, want the snapshot's 70", when, applied)
		}
	}
	check(replica, "installed")

	// A crash mid-stream leaves a file in the staging directory: the next
	// open deletes it, and the installed snapshot is still there.
	left, err := replica.NewSnapshotFile(3, "interrupted")
	must(t, err)
	must(t, left.Add([]KV{{K: append(partPrefix(3), 'x'), V: []byte("v")}}))
	must(t, replica.Close())
	reopened := openTest(t, dir, 4)
	check(reopened, "reopened")
	if entries, err := os.ReadDir(filepath.Join(dir, stagingDir)); err == nil && len(entries) > 0 {
		t.Fatalf("staged files left after the open: %v", entries)
	}
}
