package actors

import (
	"context"
	"testing"

	"github.com/weftrt/weft/storage"
)

// A watcher is handed only the commits whose row meets its condition: a
// client waiting for an instance to finish is not woken by each of its steps,
// while a watcher of every commit sees the latest one.
func TestWatcherGetsOnlyRowsThatMeetItsCondition(t *testing.T) {
	h := newCountingHost(t, Options{}, nil)
	startInstance(t, h, "c", "Collector", 3)
	finishing, stopFinishing := h.watch("c", func(r *storage.InstanceRecord) bool { return r.Status.Terminal() })
	defer stopFinishing()
	every, stopEvery := h.watch("c", func(*storage.InstanceRecord) bool { return true })
	defer stopEvery()
	ping := func() {
		t.Helper()
		if err := h.Request(context.Background(), "c", RaiseEventRequest{Name: "ping", Data: []byte(`"x"`)}); err != nil {
			t.Fatal(err)
		}
	}

	ping()
	ping()
	if n := len(finishing.rows); n != 0 {
		t.Fatalf("a watcher of the finish was handed %d rows of a running instance", n)
	}
	if n := len(every.rows); n != 1 {
		t.Fatalf("a watcher of every commit holds %d rows, want the latest", n)
	}
	if r := <-every.rows; r.Status != storage.Running {
		t.Fatalf("latest row: %s, want RUNNING", r.Status)
	}

	ping() // the third: the collector finishes
	r := <-finishing.rows
	if r == nil || r.Status != storage.Completed {
		t.Fatalf("the finish was handed %+v, want a COMPLETED row", r)
	}
}
