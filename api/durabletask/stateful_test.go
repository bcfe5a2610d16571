package durabletask

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api/durabletask/protos"
	"github.com/weftrt/weft/workflow"
)

// TestStatefulHistory plays workers as Dapr 1.17's SDKs do: one that announces
// WORKER_CAPABILITY_STATEFUL_HISTORY gets, for its next episode of an instance,
// only the events committed since its last one (cachedHistory says how many
// it holds), and the prefix plus the delta is exactly the whole history; a
// worker that did not announce it, and a new stateful worker taking over
// (the first one gone), get the whole history.
func TestStatefulHistory(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// worker is one stream; step answers an episode by scheduling the next
	// activity (or completing after three), then runs that activity.
	type worker struct {
		stream grpc.ServerStreamingClient[protos.WorkItem]
		cancel context.CancelFunc
		cache  map[string][]*protos.HistoryEvent // what it holds, as the SDK caches it
	}
	connect := func(stateful bool) *worker {
		wctx, wcancel := context.WithCancel(ctx)
		req := &protos.GetWorkItemsRequest{}
		if stateful {
			req.Capabilities = []protos.WorkerCapability{protos.WorkerCapability_WORKER_CAPABILITY_STATEFUL_HISTORY}
		}
		s, err := c.GetWorkItems(wctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return &worker{stream: s, cancel: wcancel, cache: map[string][]*protos.HistoryEvent{}}
	}
	type got struct {
		cached, sent, whole int // events held, sent, and the whole history
	}
	step := func(w *worker, id string, n int) got {
		t.Helper()
		wi, err := w.stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		wr := wi.GetWorkflowRequest()
		if wr.GetInstanceId() != id {
			t.Fatalf("episode of %q, want %s", wr.GetInstanceId(), id)
		}
		past := wr.GetPastEvents()
		g := got{sent: len(past)}
		if ch := wr.GetCachedHistory(); ch != nil {
			g.cached = int(ch.GetEventCount())
			held := w.cache[id]
			if len(held) != g.cached {
				t.Fatalf("episode %d of %s: the server thinks the worker holds %d events; it holds %d", n, id, g.cached, len(held))
			}
			past = append(append([]*protos.HistoryEvent(nil), held...), past...)
		}
		whole, err := c.GetInstanceHistory(ctx, &protos.GetInstanceHistoryRequest{InstanceId: id})
		if err != nil {
			t.Fatal(err)
		}
		g.whole = len(whole.GetEvents())
		if len(past) != g.whole {
			t.Fatalf("episode %d of %s: prefix and delta are %d events, the history %d", n, id, len(past), g.whole)
		}
		for i := range past {
			if fmt.Sprint(past[i].GetEventType()) != fmt.Sprint(whole.GetEvents()[i].GetEventType()) {
				t.Fatalf("episode %d of %s: event %d is %v, the history has %v", n, id, i, past[i], whole.GetEvents()[i])
			}
		}
		w.cache[id] = past
		action := &protos.WorkflowAction{Id: int32(n), WorkflowActionType: &protos.WorkflowAction_ScheduleTask{
			ScheduleTask: &protos.ScheduleTaskAction{Name: "Step", Input: wrapperspb.String(fmt.Sprint(n))}}}
		if n == 3 {
			action = &protos.WorkflowAction{Id: int32(n), WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
				WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}
		}
		if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: id, Actions: []*protos.WorkflowAction{action}}); err != nil {
			t.Fatal(err)
		}
		if n < 3 {
			ar, err := w.stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: id, TaskId: ar.GetActivityRequest().GetTaskId()}); err != nil {
				t.Fatal(err)
			}
		}
		return g
	}

	// A stateful worker runs a chain: deltas from its second episode on.
	sw := connect(true)
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Chain", InstanceId: "warm"}); err != nil {
		t.Fatal(err)
	}
	var seen []got
	for n := range 4 {
		seen = append(seen, step(sw, "warm", n))
	}
	for n, g := range seen {
		if n >= 2 && (g.cached != seen[n-1].whole || g.sent != g.whole-g.cached || g.sent >= g.whole) {
			t.Errorf("episode %d: held %d, sent %d of %d; want only the events since episode %d", n, g.cached, g.sent, g.whole, n-1)
		}
	}

	// Another instance: its first episodes on this worker, then the worker goes
	// and a new stateful one takes over: it gets the whole history.
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Chain", InstanceId: "moved"}); err != nil {
		t.Fatal(err)
	}
	step(sw, "moved", 0)
	step(sw, "moved", 1)
	sw.cancel()
	next := connect(true)
	if g := step(next, "moved", 2); g.cached != 0 || g.sent != g.whole {
		t.Errorf("a new worker taking over: held %d, sent %d of %d; want the whole history", g.cached, g.sent, g.whole)
	}
	if g := step(next, "moved", 3); g.cached == 0 || g.sent == g.whole {
		t.Errorf("the new worker's next episode: held %d, sent %d of %d; want a delta", g.cached, g.sent, g.whole)
	}
	next.cancel()

	// An instance purged and started again under the same id is another
	// history: the worker gets it whole, not as a delta of the old one.
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Chain", InstanceId: "again"}); err != nil {
		t.Fatal(err)
	}
	again := connect(true)
	for round := range 2 {
		for n := range 4 {
			step(again, "again", n) // checks every episode against the history
		}
		if _, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "again"}); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if _, err := c.PurgeInstances(ctx, &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "again"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Chain", InstanceId: "again"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	again.cancel()

	// A worker that does not announce the capability always gets it all.
	plain := connect(false)
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Chain", InstanceId: "cold"}); err != nil {
		t.Fatal(err)
	}
	for n := range 4 {
		if g := step(plain, "cold", n); g.cached != 0 || g.sent != g.whole {
			t.Errorf("stateless worker, episode %d: held %d, sent %d of %d", n, g.cached, g.sent, g.whole)
		}
	}
	for _, id := range []string{"warm", "moved", "cold"} {
		if st, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: id}); err != nil ||
			st.GetWorkflowState().GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED {
			t.Fatalf("%s: %v %v", id, st, err)
		}
	}
}

// TestPayloadTooLarge: an episode larger than a worker may be sent stalls its
// instance (PAYLOAD_SIZE_EXCEEDED, saying what to do), however often it is
// offered again, and an activity input that is too large is not sent; the
// worker's stream goes on and gets the next item.
func TestPayloadTooLarge(t *testing.T) {
	c, rt := serveRuntime(t, Options{MaxWorkItemBytes: 4 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	big := wrapperspb.String(`"` + strings.Repeat("x", 8<<10) + `"`)
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "huge", Input: big}); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := rt.Status(ctx, "huge")
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == weft.StatusStalled {
			if st.Stall.Reason != workflow.StallPayloadTooLarge || !strings.Contains(st.Stall.Description, "pass a reference") {
				t.Fatalf("stall: %+v", st.Stall)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("never stalled: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The same stream takes the next instance; its too large activity fails.
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "small"}); err != nil {
		t.Fatal(err)
	}
	wi, err := stream.Recv()
	if err != nil || wi.GetWorkflowRequest().GetInstanceId() != "small" {
		t.Fatalf("the stream after a too large item: %v %v", wi, err)
	}
	if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: "small", Actions: []*protos.WorkflowAction{{Id: 0,
		WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "Echo", Input: big}}}}}); err != nil {
		t.Fatal(err)
	}
	// The activity's attempt fails in the worker's place; the episode that
	// would hand the failure to the worker holds the input too, so the
	// instance stalls, the failure held with it.
	awaitStalled(t, ctx, rt, "small")
	h, err := rt.History(ctx, "huge")
	if err != nil {
		t.Fatal(err)
	}
	if n := countKind(h, workflow.ExecutionStalled); n != 1 {
		t.Fatalf("huge's history has %d execution-stalled events, want 1 however often it is offered again", n)
	}
}

func awaitStalled(t *testing.T, ctx context.Context, rt *weft.Runtime, id string) *weft.InstanceStatus {
	t.Helper()
	for {
		st, err := rt.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == weft.StatusStalled {
			return st
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never stalled: %+v", id, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func countKind(h []workflow.Event, kind workflow.EventKind) int {
	n := 0
	for _, ev := range h {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}
