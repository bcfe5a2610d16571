package durabletask

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api/durabletask/protos"
	"github.com/weftrt/weft/internal/otlptest"
)

// TestListInstanceIDsAndHistory: ids page by pageSize with the continuation
// token until none is left; a local workflow's history reads as the protocol's
// events; a missing instance or a foreign token is a clear error.
func TestListInstanceIDsAndHistory(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("inc-%d", i)
		want = append(want, id)
		if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: id, Input: wrapperspb.String("1")}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var token *string
	for pages := 0; ; pages++ {
		size := uint32(2)
		resp, err := c.ListInstanceIDs(ctx, &protos.ListInstanceIDsRequest{PageSize: &size, ContinuationToken: token})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.GetInstanceIds()...)
		if resp.ContinuationToken == nil {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		token = resp.ContinuationToken
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
	bad := "not-a-token"
	_, err := c.ListInstanceIDs(ctx, &protos.ListInstanceIDsRequest{ContinuationToken: &bad})
	wantCode(t, "a foreign continuation token", err, codes.InvalidArgument)

	if _, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "inc-0"}); err != nil {
		t.Fatal(err)
	}
	h, err := c.GetInstanceHistory(ctx, &protos.GetInstanceHistoryRequest{InstanceId: "inc-0"})
	if err != nil || len(h.GetEvents()) == 0 || h.GetEvents()[0].GetExecutionStarted().GetName() != "LocalInc" {
		t.Fatalf("history: %v %v", err, h)
	}
	_, err = c.GetInstanceHistory(ctx, &protos.GetInstanceHistoryRequest{InstanceId: "missing"})
	wantCode(t, "history of a missing instance", err, codes.NotFound)
}

// TestReferenceServerManners: a wait for an instance scheduled a moment later
// waits for it (until the call's deadline, then DeadlineExceeded); a start of
// a taken id says "orchestration instance already exists", as clients written
// against durabletask-go's sidecar match.
func TestReferenceServerManners(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started := make(chan error, 1)
	go func() {
		st, err := c.WaitForInstanceStart(ctx, &protos.GetInstanceRequest{InstanceId: "later"})
		if err == nil && !st.GetExists() {
			err = fmt.Errorf("answered exists=false")
		}
		started <- err
	}()
	time.Sleep(100 * time.Millisecond) // the wait is under way before the start
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "later", Input: wrapperspb.String("1")}); err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatalf("a wait for an instance that appears while it waits: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	_, err := c.WaitForInstanceCompletion(short, &protos.GetInstanceRequest{InstanceId: "never"})
	wantCode(t, "a wait for an instance that never appears", err, codes.DeadlineExceeded)

	_, err = c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "later"})
	wantCode(t, "start of a taken id", err, codes.AlreadyExists)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "orchestration instance already exists") {
		t.Fatalf("AlreadyExists says %q; clients match \"orchestration instance already exists\"", msg)
	}
}

// TestPurgeForce: a purge of an unfinished instance is refused unless forced
// (Dapr 1.16's force); a forced one removes it.
func TestPurgeForce(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "stuck"}); err != nil {
		t.Fatal(err) // no worker: it stays PENDING
	}
	_, err := c.PurgeInstances(ctx, &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "stuck"}})
	wantCode(t, "purge of a pending instance", err, codes.FailedPrecondition)
	force := true
	p, err := c.PurgeInstances(ctx, &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "stuck"}, Force: &force})
	if err != nil || p.GetDeletedInstanceCount() != 1 {
		t.Fatalf("forced purge: %v %v", err, p)
	}
	if got, err := c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: "stuck"}); err != nil || got.GetExists() {
		t.Fatalf("after the forced purge: %v %v", err, got)
	}
}

// TestRerunWorkflowFromEvent: a finished local workflow rerun from its only
// call with a new input; a rerun of a missing instance is NotFound.
func TestRerunWorkflowFromEvent(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "src"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.RerunWorkflowFromEvent(ctx, &protos.RerunWorkflowFromEventRequest{SourceInstanceID: "src", EventID: 0})
	wantCode(t, "rerun of an unfinished instance", err, codes.FailedPrecondition)
	_, err = c.RerunWorkflowFromEvent(ctx, &protos.RerunWorkflowFromEventRequest{SourceInstanceID: "missing", EventID: 0})
	wantCode(t, "rerun of a missing instance", err, codes.NotFound)

	// A worker runs src: one activity, then completes with its result.
	stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() *protos.WorkItem {
		t.Helper()
		wi, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return wi
	}
	play := func(id string) string { // runs one instance to its end; returns the activity's input
		t.Helper()
		if wr := recv().GetWorkflowRequest(); wr.GetInstanceId() != id {
			t.Fatalf("episode for %q, want %s", wr.GetInstanceId(), id)
		}
		if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: id, Actions: []*protos.WorkflowAction{{Id: 0,
			WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "Echo", Input: wrapperspb.String(`"first"`)}}}}}); err != nil {
			t.Fatal(err)
		}
		return finish(t, c, ctx, recv, id)
	}
	if in := play("src"); in != `"first"` {
		t.Fatalf("src's activity input %s", in)
	}
	resp, err := c.RerunWorkflowFromEvent(ctx, &protos.RerunWorkflowFromEventRequest{SourceInstanceID: "src", EventID: 0,
		NewInstanceID: new("again"), Input: wrapperspb.String(`"second"`), OverwriteInput: true})
	if err != nil || resp.GetNewInstanceID() != "again" {
		t.Fatalf("rerun: %v %v", err, resp)
	}
	// The rerun starts with the activity sent again, with the new input; the
	// worker then replays the kept history and completes.
	if in := finish(t, c, ctx, recv, "again"); in != `"second"` {
		t.Fatalf("the rerun's activity input %s, want the new one", in)
	}
}

// finish answers the activity request of instance id with its input, then
// the episode that follows by completing the workflow with the activity's
// result; it returns the activity's input.
func finish(t *testing.T, c testClient, ctx context.Context, recv func() *protos.WorkItem, id string) string {
	t.Helper()
	ar := recv().GetActivityRequest()
	if ar.GetWorkflowInstance().GetInstanceId() != id {
		t.Fatalf("activity for %v, want %s", ar, id)
	}
	if _, err := c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: id, TaskId: ar.GetTaskId(), Result: ar.GetInput()}); err != nil {
		t.Fatal(err)
	}
	wr := recv().GetWorkflowRequest()
	past := wr.GetPastEvents()
	if wr.GetInstanceId() != id || len(past) == 0 || past[len(past)-1].GetTaskScheduled().GetName() != "Echo" {
		t.Fatalf("episode after the activity of %s: %v", id, wr)
	}
	if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: id, Actions: []*protos.WorkflowAction{{Id: 1,
		WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
			WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, Result: ar.GetInput()}}}}}); err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: id, GetInputsAndOutputs: true})
	if err != nil || done.GetWorkflowState().GetOutput().GetValue() != ar.GetInput().GetValue() {
		t.Fatalf("%s: %v %v", id, err, done)
	}
	return ar.GetInput().GetValue()
}

// TestTraceContextReachesWorkers: the parentTraceContext of a start is kept
// with the instance and given to the worker with its episodes and its
// activities; a malformed one is ignored.
func TestTraceContextReachesWorkers(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for id, given := range map[string]string{"traced": tp, "malformed": "00-nothex-01"} {
		if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: id,
			ParentTraceContext: &protos.TraceContext{TraceParent: given, TraceState: wrapperspb.String("k=v")}}); err != nil {
			t.Fatal(err)
		}
		wi, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got := wi.GetWorkflowRequest().GetNewEvents()[1].GetExecutionStarted().GetParentTraceContext()
		if id == "malformed" {
			if got != nil {
				t.Fatalf("a malformed traceparent was kept: %v", got)
			}
			continue
		}
		if got.GetTraceParent() != tp || got.GetTraceState().GetValue() != "k=v" {
			t.Fatalf("the episode's trace context: %v", got)
		}
		if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: id, Actions: []*protos.WorkflowAction{{Id: 0,
			WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "Echo"}}}}}); err != nil {
			t.Fatal(err)
		}
		ar, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if got := ar.GetActivityRequest().GetParentTraceContext(); got.GetTraceParent() != tp {
			t.Fatalf("the activity's trace context: %v", got)
		}
	}
}

// TestSpansOverTheSDKPath: with tracing on, a workflow run by a worker over
// the protocol has its span under the SDK's parentTraceContext, and the
// activity's trace context given to the worker is the span of its attempt,
// which hangs under the workflow's.
func TestSpansOverTheSDKPath(t *testing.T) {
	recv, exp, err := otlptest.StartWithExporter()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Stop()
	c, rt := serveWith(t, weft.Options{TraceExporter: exp}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	const caller, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "sdk-traced",
		ParentTraceContext: &protos.TraceContext{TraceParent: "00-" + caller + "-" + callerSpan + "-01"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: "sdk-traced", Actions: []*protos.WorkflowAction{{Id: 0,
		WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "Echo"}}}}}); err != nil {
		t.Fatal(err)
	}
	recvItem := func() *protos.WorkItem {
		wi, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return wi
	}
	wi := recvItem()
	activityParent := wi.GetActivityRequest().GetParentTraceContext().GetTraceParent()
	if _, err := c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: "sdk-traced", TaskId: wi.GetActivityRequest().GetTaskId()}); err != nil {
		t.Fatal(err)
	}
	recvItem()
	if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: "sdk-traced", Actions: []*protos.WorkflowAction{{Id: 1,
		WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
			WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "sdk-traced"}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	spans := recv.Spans()
	if got, want := otlptest.Tree(spans), "workflow Remote\n  activity Echo\n"; got != want {
		t.Fatalf("spans:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range spans {
		if s.TraceID != caller {
			t.Errorf("span %s in trace %s, want the SDK's %s", s.Name, s.TraceID, caller)
		}
		switch s.Name {
		case "workflow Remote":
			if s.ParentID != callerSpan {
				t.Errorf("the workflow's span has parent %s, want the SDK's span %s", s.ParentID, callerSpan)
			}
		case "activity Echo":
			if want := "00-" + caller + "-" + s.SpanID + "-01"; activityParent != want {
				t.Errorf("the worker got trace context %s for the activity, want its attempt's span %s", activityParent, want)
			}
		}
	}
}
