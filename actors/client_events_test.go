package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/test/messaging"
	"github.com/weftrt/weft/workflow"
)

// clientEventsOf lists the request ids the store keeps for instance id.
func clientEventsOf(t *testing.T, h *Host, id string) []string {
	t.Helper()
	var ids []string
	if err := h.db.ClientEvents(h.Partition(id), id, func(request string, _ time.Time) { ids = append(ids, request) }); err != nil {
		t.Fatal(err)
	}
	return ids
}

// newCountingHost is a host with the workflows of test/messaging: its
// Collector returns the data of the first n "ping" events it receives.
func newCountingHost(t *testing.T, opts Options, r Router) *Host {
	t.Helper()
	reg := workflow.NewRegistry()
	if err := messaging.Register(reg); err != nil {
		t.Fatal(err)
	}
	return startTestHost(t, opts, reg, r)
}

// A client's event sent again with the same request id is applied once, also
// after its instance left memory and was loaded again; a request id is
// forgotten, on disk too, once clientEventWindow has passed.
func TestClientEventAppliedOnce(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	h := newCountingHost(t, Options{Now: clock, MaxActive: 1}, nil)
	startInstance(t, h, "target", "Collector", 5)
	send := func(data, request string) {
		t.Helper()
		b, _ := json.Marshal(data)
		if err := h.Request(context.Background(), "target", RaiseEventRequest{Name: "ping", Data: b, RequestID: request}); err != nil {
			t.Fatalf("raise %s: %v", data, err)
		}
	}
	send("a", "r1")
	send("a again", "r1")
	send("b", "r2")
	send("no request id", "")

	// Out of memory (MaxActive 1) and back: the log is read again.
	passivations := h.stats.Passivations.Load()
	startInstance(t, h, "other", "Collector", 1)
	// The eviction is counted once the target's actor has stopped, a moment
	// after the start that caused it returned.
	for deadline := time.Now().Add(10 * time.Second); h.stats.Passivations.Load() == passivations; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the target stayed in memory: the test did not exercise a reload")
		}
	}
	send("b again", "r2")

	advance(clientEventWindow + time.Second)
	send("c", "r3") // forgets r1 and r2, on disk too
	if got := clientEventsOf(t, h, "target"); len(got) != 1 || got[0] != "r3" {
		t.Fatalf("request ids kept after the window: %v, want [r3]", got)
	}
	send("c again", "r3")
	send("a, after the window", "r1")

	want := `["a","b","no request id","c","a, after the window"]`
	if got := waitOutput(t, h, "target"); got != want {
		t.Fatalf("target applied %s, want %s", got, want)
	}
	if n := h.stats.IgnoredDuplicates.Load(); n != 3 {
		t.Fatalf("%d duplicates counted, want 3", n)
	}
}

// outcomeLosingCommitter commits every step, and reports the next one after
// arm as the committer of a leader that lost its leadership before it knew
// the outcome.
type outcomeLosingCommitter struct {
	armed atomic.Bool
	lost  atomic.Int32
}

func (c *outcomeLosingCommitter) CommitStep(_ uint16, b *storage.Batch) error {
	if err := b.Commit(); err != nil {
		return err
	}
	if c.armed.CompareAndSwap(true, false) {
		c.lost.Add(1)
		return fmt.Errorf("partition unavailable: %w", ErrStepOutcomeUnknown)
	}
	return nil
}

// In a cluster (a host with a router), a client's event gets a request id
// before its first attempt: when the step that applied it reports an unknown
// outcome, the host sends it again and the instance recognises it, so the
// caller sees success and the event is applied once. Other requests whose
// outcome is unknown are not sent again: their caller hears of it.
func TestClientEventSentAgainAfterAnUnknownOutcome(t *testing.T) {
	c := &outcomeLosingCommitter{}
	h := newCountingHost(t, Options{Committer: c}, &downRouter{down: map[string]bool{}})
	startInstance(t, h, "target", "Collector", 2)
	ctx := context.Background()
	raise := func(data string) error {
		b, _ := json.Marshal(data)
		return h.Request(ctx, "target", RaiseEventRequest{Name: "ping", Data: b})
	}
	if err := raise("first"); err != nil {
		t.Fatal(err)
	}
	c.armed.Store(true)
	if err := raise("lost answer"); err != nil {
		t.Fatalf("an event whose first commit had an unknown outcome: %v, want it sent again and answered", err)
	}
	if c.lost.Load() != 1 {
		t.Fatal("no step reported an unknown outcome: the test exercised nothing")
	}
	ids := clientEventsOf(t, h, "target")
	if len(ids) != 2 || ids[0] == ids[1] || !strings.HasPrefix(ids[1], h.requests.prefix) {
		t.Fatalf("request ids stored: %v, want two of this host (%s…)", ids, h.requests.prefix)
	}
	if got := waitOutput(t, h, "target"); got != `["first","lost answer"]` {
		t.Fatalf("target applied %s, want each event once", got)
	}

	startInstance(t, h, "suspended", "Collector", 1)
	c.armed.Store(true)
	if err := h.Request(ctx, "suspended", SuspendRequest{}); err == nil {
		t.Fatal("a suspend whose outcome is unknown answered success: only events are sent again")
	}
}
