package storage

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestSizedWALCrashImageReopens: a new WAL is preallocated with its size set, so a
// crash leaves zeros after the last record. A copy of the files of an open store
// (what a kill -9 leaves on disk, since every commit below was synced) must
// reopen with every commit, including across a WAL rotation (the flush in the
// middle), and keep taking writes.
func TestSizedWALCrashImageReopens(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, 4)
	put := func(from, to int) {
		for i := from; i < to; i++ {
			commit(t, db, func(b *Batch) {
				must(t, b.PutInstance(uint16(i%4), &InstanceRecord{ID: fmt.Sprintf("i%04d", i), Name: "W", CreatedAt: t0}))
			})
		}
	}
	put(0, 200)
	must(t, db.pdb.Flush()) // rotates to a second WAL
	put(200, 400)

	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	must(t, err)
	if len(logs) == 0 {
		t.Fatal("no WAL in the store")
	}
	if runtime.GOOS == "linux" {
		last := logs[len(logs)-1]
		fi, err := os.Stat(last)
		must(t, err)
		if fi.Size() < 4<<20 {
			t.Errorf("WAL %s is %d bytes; expected its preallocation (about 110%% of a memtable) in its size", last, fi.Size())
		}
	}

	image := t.TempDir()
	copyDir(t, dir, image)
	db2 := openTest(t, image, 4)
	for i := 0; i < 400; i++ {
		id := fmt.Sprintf("i%04d", i)
		if _, err := db2.Instance(uint16(i%4), id); err != nil {
			t.Fatalf("after reopening the crash image, instance %s: %v", id, err)
		}
	}
	commit(t, db2, func(b *Batch) {
		must(t, b.PutInstance(0, &InstanceRecord{ID: "after", Name: "W", CreatedAt: t0}))
	})
	must(t, db2.Close())
	db3 := openTest(t, image, 4)
	if _, err := db3.Instance(0, "after"); err != nil {
		t.Fatalf("a commit after recovery, reopened: %v", err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	must(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		must(t, err)
		dst, err := os.Create(filepath.Join(to, e.Name()))
		must(t, err)
		_, err = io.Copy(dst, src)
		must(t, err)
		must(t, src.Close())
		must(t, dst.Close())
	}
}

// TestGroupCommitWindow: the WAL waits between fsyncs only while enough synced
// commits are in flight; a negative window turns the wait off; and commits from
// many goroutines at once, waiting in that window, are all durable.
func TestGroupCommitWindow(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, Partitions: 4, Logger: quietLogger()})
	must(t, err)
	if db.groupWindow != DefaultGroupCommitWindow {
		t.Fatalf("default window %v, want %v", db.groupWindow, DefaultGroupCommitWindow)
	}
	for _, c := range []struct {
		inFlight int64
		want     time.Duration
	}{{0, 0}, {1, 0}, {groupCommitters - 1, 0}, {groupCommitters, DefaultGroupCommitWindow}, {100, DefaultGroupCommitWindow}} {
		db.syncing.Store(c.inFlight)
		if got := db.groupCommit(); got != c.want {
			t.Errorf("%d synced commits in flight: wait %v, want %v", c.inFlight, got, c.want)
		}
	}
	db.syncing.Store(0)

	const writers, each = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				b := db.NewBatch()
				err := b.PutInstance(uint16(w%4), &InstanceRecord{ID: fmt.Sprintf("w%02d-%03d", w, i), Name: "W", CreatedAt: t0})
				if err == nil {
					err = b.Commit()
				}
				b.Close()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := db.syncing.Load(); n != 0 {
		t.Fatalf("%d synced commits still counted in flight after all returned", n)
	}
	image := t.TempDir()
	copyDir(t, dir, image) // what a crash leaves: every returned commit was synced
	must(t, db.Close())
	db2 := openTest(t, image, 4)
	for w := range writers {
		for i := range each {
			if _, err := db2.Instance(uint16(w%4), fmt.Sprintf("w%02d-%03d", w, i)); err != nil {
				t.Fatalf("commit w%02d-%03d missing from the crash image: %v", w, i, err)
			}
		}
	}

	off, err := Open(Options{Dir: t.TempDir(), Logger: quietLogger(), GroupCommitWindow: -1})
	must(t, err)
	defer off.Close()
	if off.groupWindow >= 0 {
		t.Fatalf("GroupCommitWindow -1 kept window %v", off.groupWindow)
	}
}
