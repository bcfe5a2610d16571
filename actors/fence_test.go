package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// staleRouter answers "served here" until the test fences the partition, as a
// node's router does for a message routed a moment before the partition's
// actors were stopped for a move; after that it takes every message elsewhere.
type staleRouter struct {
	mu        sync.Mutex
	moved     bool
	forwarded []any
}

func (r *staleRouter) Forward(_ context.Context, _ string, msg any) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.moved {
		r.moved = true // the next look sees the move
		return false, nil
	}
	r.forwarded = append(r.forwarded, msg)
	return true, nil
}

func (r *staleRouter) Dispatch(Invocation) bool { return false }

func (r *staleRouter) sent() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]any(nil), r.forwarded...)
}

func newFenceHost(t *testing.T, r Router) *Host {
	t.Helper()
	reg := workflow.NewRegistry()
	err := workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, in int) (int, error) {
		var out int
		err := ctx.CallActivity("Inc", in).Await(&out)
		return out, err
	}, workflow.WithName("One"))
	if err != nil {
		t.Fatal(err)
	}
	if err := workflow.RegisterActivity(reg, func(_ context.Context, v int) (int, error) { return v + 1, nil }, workflow.WithName("Inc")); err != nil {
		t.Fatal(err)
	}
	return startTestHost(t, Options{}, reg, r)
}

// startTestHost starts a host with reg, on a store of 8 partitions in a
// temporary directory, routed by r (nil: a single node); the test's cleanup
// closes both.
func startTestHost(t *testing.T, opts Options, reg *workflow.Registry, r Router) *Host {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Partitions: 8, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	opts.DB, opts.Registry, opts.Logger = db, reg, logger
	h := NewHost(opts)
	if r != nil {
		h.SetRouter(r)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		db.Close()
	})
	return h
}

// A request the router placed here just before the partition's actors were
// stopped for a move must not activate the instance here: the move would copy
// the partition without what that actor commits, and delete it afterwards.
// It is routed again, and goes where the partition went.
func TestFencedPartitionActivatesNothing(t *testing.T) {
	r := &staleRouter{}
	h := newFenceHost(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.StopPartition(ctx, h.Partition("x")); err != nil {
		t.Fatal(err)
	}
	if err := h.Request(ctx, "x", StartRequest{Name: "One", Input: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if got := r.sent(); len(got) != 1 {
		t.Fatalf("the router took %d messages, want the start re-routed to it once", len(got))
	} else if _, ok := got[0].(StartRequest); !ok {
		t.Fatalf("the router took a %T, want the StartRequest", got[0])
	}
	if n := h.Active(); n != 0 {
		t.Errorf("%d instances active on a fenced partition, want 0", n)
	}
	if _, err := h.db.Instance(h.Partition("x"), "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the instance was stored here (err %v); its partition was moving away", err)
	}
}

// An activity result queued here for an instance whose partition was fenced
// meanwhile goes to the router again rather than waking an actor here.
func TestFencedPartitionReroutesResults(t *testing.T) {
	r := &staleRouter{}
	h := newFenceHost(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.StopPartition(ctx, h.Partition("y")); err != nil {
		t.Fatal(err)
	}
	res := ActivityResult{Gen: 0, TaskID: 0, Attempt: 1, Output: []byte("2")}
	h.report(res, "y") // the router says "here" once: queued, then the drain finds the fence
	deadline := time.Now().Add(5 * time.Second)
	for len(r.sent()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := r.sent()
	if len(got) != 1 {
		t.Fatalf("the router took %d messages, want the result once", len(got))
	}
	if gotRes, ok := got[0].(ActivityResult); !ok || gotRes.TaskID != res.TaskID || string(gotRes.Output) != "2" {
		t.Fatalf("the router took %#v, want the result", got[0])
	}
	if h.hasResults("y") {
		t.Error("the result is still queued here")
	}
	if n := h.Active(); n != 0 {
		t.Errorf("%d instances active on a fenced partition, want 0", n)
	}
}

// ServePartition lifts the fence: a partition that stayed (its move failed)
// runs its instances here again.
func TestServePartitionLiftsTheFence(t *testing.T) {
	h := newFenceHost(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := h.Partition("z")
	if err := h.StopPartition(ctx, p); err != nil {
		t.Fatal(err)
	}
	h.ServePartition(p)
	if err := h.Request(ctx, "z", StartRequest{Name: "One", Input: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	row, err := h.WaitFor(ctx, "z", func(r *storage.InstanceRecord) bool { return r.Status.Terminal() })
	if err != nil {
		t.Fatal(err)
	}
	if row.Status != storage.Completed || string(row.Output) != "2" {
		t.Fatalf("z: %s %s, want COMPLETED 2", row.Status, row.Output)
	}
}
