package actors

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// downRouter is the in-memory twin of a cluster in which some instances'
// partitions are unavailable (their node is down): a message for one of them
// fails as the cluster's router fails it; every other instance is served here.
type downRouter struct {
	mu   sync.Mutex
	down map[string]bool
}

var errPartitionDown = errors.New("partition unavailable: its node is down")

func (r *downRouter) Forward(_ context.Context, id string, _ any) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down[id] {
		return true, errPartitionDown
	}
	return false, nil
}

func (r *downRouter) Dispatch(Invocation) bool { return false }

func (r *downRouter) set(id string, down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down[id] = down
}

type sendInput struct {
	Target string   `json:"target"`
	Data   []string `json:"data"`
}

// newDeliveryHost is a host with these workflows:
//   - Send sends each of its input's data as a "ping" to the target;
//   - Collect returns the data of the pings it receives until none came for
//     quiet (the first wait has no limit);
//   - Slow does the same as Collect, after a step that takes slow (it waits
//     for the event "slow" first), and closes entered as that step begins.
func newDeliveryHost(t *testing.T, opts Options, r Router, quiet, slow time.Duration, entered chan struct{}) *Host {
	t.Helper()
	collect := func(ctx *workflow.Context) ([]string, error) {
		var got []string
		for wait := time.Duration(0); ; wait = quiet {
			var s string
			err := ctx.WaitForExternalEvent("ping", wait).Await(&s)
			if errors.Is(err, workflow.ErrTimeout) {
				return got, nil
			}
			if err != nil {
				return nil, err
			}
			got = append(got, s)
		}
	}
	reg := workflow.NewRegistry()
	var once sync.Once
	err := errors.Join(
		workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, in sendInput) (int, error) {
			for _, d := range in.Data {
				if err := ctx.SendEvent(in.Target, "ping", d); err != nil {
					return 0, err
				}
			}
			return len(in.Data), nil
		}, workflow.WithName("Send")),
		workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, _ any) ([]string, error) {
			return collect(ctx)
		}, workflow.WithName("Collect")),
		workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, _ any) ([]string, error) {
			if err := ctx.WaitForExternalEvent("slow", 0).Await(nil); err != nil {
				return nil, err
			}
			once.Do(func() {
				close(entered)
				time.Sleep(slow)
			})
			return collect(ctx)
		}, workflow.WithName("Slow")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return startTestHost(t, opts, reg, r)
}

func startInstance(t *testing.T, h *Host, id, name string, input any) {
	t.Helper()
	b, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Request(context.Background(), id, StartRequest{Name: name, Input: b}); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
}

func waitOutput(t *testing.T, h *Host, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	row, err := h.WaitFor(ctx, id, func(r *storage.InstanceRecord) bool { return r.Status.Terminal() })
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	if row.Status != storage.Completed {
		t.Fatalf("%s: %s %+v", id, row.Status, row.Failure)
	}
	return string(row.Output)
}

// Events sent to an instance whose partition is unavailable wait at the sender
// (counted as pending), arrive once it is available again, in the order they
// were sent, each once; then nothing is pending and the outbox is empty.
func TestEventsWaitForAnUnavailableTarget(t *testing.T) {
	r := &downRouter{down: map[string]bool{"target": true}}
	h := newDeliveryHost(t, Options{}, r, 300*time.Millisecond, 0, nil)
	startInstance(t, h, "sender", "Send", sendInput{Target: "target", Data: []string{"1", "2", "3"}})
	if got := waitOutput(t, h, "sender"); got != "3" {
		t.Fatalf("sender output %s", got)
	}
	if n := h.PendingDeliveries(); n == 0 {
		t.Fatal("nothing pending while the target is unavailable")
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.deliveries.retries.Load() < 2 { // retried with backoff, not dropped
		if time.Now().After(deadline) {
			t.Fatal("the delivery was not retried")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.set("target", false)
	startInstance(t, h, "target", "Collect", nil)
	h.RetryDeliveries() // what the cluster does when a node comes back
	if got := waitOutput(t, h, "target"); got != `["1","2","3"]` {
		t.Fatalf("target received %s, want the three events once each, in order", got)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		out, err := h.db.Outbox(h.Partition("sender"), "sender")
		if err == nil && len(out) == 0 && h.PendingDeliveries() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after delivery: outbox %v (%v), %d pending", out, err, h.PendingDeliveries())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An event whose delivery gets no answer in time is sent again while the first
// copy still waits in the target's mailbox (the target is busy with a slow
// step): the target applies it once.
func TestRedeliveredEventIsAppliedOnce(t *testing.T) {
	entered := make(chan struct{})
	h := newDeliveryHost(t, Options{RequestTimeout: 50 * time.Millisecond}, nil, 500*time.Millisecond, 600*time.Millisecond, entered)
	startInstance(t, h, "target", "Slow", nil)
	go func() { _ = h.Request(context.Background(), "target", RaiseEventRequest{Name: "slow"}) }()
	<-entered
	startInstance(t, h, "sender", "Send", sendInput{Target: "target", Data: []string{"once"}})
	if got := waitOutput(t, h, "target"); got != `["once"]` {
		t.Fatalf("target received %s, want the event once", got)
	}
	if n := h.deliveries.retries.Load(); n == 0 {
		t.Fatal("the event was never sent twice: the test did not exercise a re-delivery")
	}
}

// A duplicate carries the same MessageID; a newer incarnation of the sender
// starts its sequence again and is not taken for a duplicate.
func TestReceivedMarkTellsDuplicates(t *testing.T) {
	h := newDeliveryHost(t, Options{}, nil, 300*time.Millisecond, 0, nil)
	startInstance(t, h, "target", "Collect", nil)
	send := func(data string, inc int64, seq uint64) {
		t.Helper()
		b, _ := json.Marshal(data)
		err := h.Request(context.Background(), "target", RaiseEventRequest{Name: "ping", Data: b,
			From: &MessageID{Sender: "s", Incarnation: inc, Seq: seq}})
		if err != nil {
			t.Fatal(err)
		}
	}
	send("a", 1, 0)
	send("a again", 1, 0)
	send("b", 1, 1)
	send("old", 0, 7) // an earlier incarnation's late message
	send("new", 2, 0) // a new incarnation starts at 0
	send("new again", 2, 0)
	if got := waitOutput(t, h, "target"); got != `["a","b","new"]` {
		t.Fatalf("target applied %s", got)
	}
}

// A step that fails before its commit (here: resume cannot read the held
// events) leaves the actor as the disk has the instance: asked again, it
// fails again rather than answer from a state that was never stored.
func TestFailedStepLeavesMemoryAsOnDisk(t *testing.T) {
	h := newDeliveryHost(t, Options{}, nil, time.Second, 0, nil)
	ctx := context.Background()
	startInstance(t, h, "i", "Collect", nil)
	if err := h.Request(ctx, "i", SuspendRequest{}); err != nil {
		t.Fatal(err)
	}
	part := h.Partition("i")
	b := h.db.NewBatch()
	b.PutInbox(part, "i", 99, []byte("not an event"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := h.Request(ctx, "i", ResumeRequest{}); err == nil {
			t.Fatalf("resume %d with an unreadable inbox succeeded", i+1)
		}
	}
	row, err := h.db.Instance(part, "i")
	if err != nil || row.Status != storage.Suspended {
		t.Fatalf("stored: %+v %v", row, err)
	}
}
