package durabletask

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft/api/durabletask/protos"
)

// TestVersioningOverGRPC plays a worker as Dapr's newer SDKs do (their
// durabletask-go: task/orchestrator.go and task/executor.go): it reports the
// version it chose and the patches it found applied in WorkflowResponse.version,
// reads them back on the episodes' WorkflowStarted events, and answers
// WorkflowVersionNotAvailable when it lacks the instance's version. The
// instance is then STALLED, keeps the episode's inputs, and completes when a
// worker takes the episode.
func TestVersioningOverGRPC(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
	status := func(id string) *protos.WorkflowState {
		t.Helper()
		st, err := c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: id})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetWorkflowState()
	}
	answer := func(res *protos.WorkflowResponse) {
		t.Helper()
		if _, err := c.CompleteWorkflowTask(ctx, res); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "v"}); err != nil {
		t.Fatal(err)
	}
	// A new instance: no version named, so the SDK takes its default.
	first := recv().GetWorkflowRequest()
	if v := first.GetNewEvents()[0].GetWorkflowStarted().GetVersion(); v != nil {
		t.Fatalf("first episode of an instance started without a version names one: %v", v)
	}
	answer(&protos.WorkflowResponse{InstanceId: "v",
		Actions: []*protos.WorkflowAction{{Id: 0, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{
			ScheduleTask: &protos.ScheduleTaskAction{Name: "Step"}}}},
		Version: &protos.WorkflowVersion{Name: new("v1"), Patches: []string{"fix-rounding"}}})
	if v := status("v").GetVersion().GetValue(); v != "v1" {
		t.Fatalf("version after the first episode: %q, want the worker's v1", v)
	}
	if ar := recv().GetActivityRequest(); ar.GetName() != "Step" {
		t.Fatalf("activity: %v", ar)
	}
	if _, err := c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: "v", TaskId: 0, Result: wrapperspb.String("1")}); err != nil {
		t.Fatal(err)
	}

	// The next episode names the version and carries the recorded patch; a
	// worker without v1 (an old one in a rolling deploy) cannot take it.
	second := recv().GetWorkflowRequest()
	past, news := second.GetPastEvents(), second.GetNewEvents()
	pv := past[0].GetWorkflowStarted().GetVersion()
	if pv.GetName() != "v1" || !slices.Equal(pv.GetPatches(), []string{"fix-rounding"}) ||
		news[0].GetWorkflowStarted().GetVersion().GetName() != "v1" || len(news[0].GetWorkflowStarted().GetVersion().GetPatches()) != 0 {
		t.Fatalf("second episode's versions: past %v, new %v", pv, news[0].GetWorkflowStarted().GetVersion())
	}
	answer(&protos.WorkflowResponse{InstanceId: "v", Actions: []*protos.WorkflowAction{{Id: -1,
		WorkflowActionType: &protos.WorkflowAction_WorkflowVersionNotAvailable{WorkflowVersionNotAvailable: &protos.WorkflowVersionNotAvailableAction{}}}}})
	if st := status("v"); st.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_STALLED {
		t.Fatalf("after version-not-available: %v, want STALLED", st.GetWorkflowStatus())
	}
	stalled, err := c.GetInstanceHistory(ctx, &protos.GetInstanceHistoryRequest{InstanceId: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if last := stalled.GetEvents()[len(stalled.GetEvents())-1].GetExecutionStalled(); last.GetReason() != protos.StalledReason_VERSION_NOT_AVAILABLE {
		t.Fatalf("the history of a stalled instance ends with %v, want an ExecutionStalled event", stalled.GetEvents()[len(stalled.GetEvents())-1])
	}

	// Offered again after the stall's delay, with the same inputs: a worker that
	// has v1 completes it, reporting the patch again (recorded once).
	again := recv().GetWorkflowRequest()
	if n := again.GetNewEvents(); len(n) != len(news) || n[1].GetTaskCompleted().GetResult().GetValue() != "1" {
		t.Fatalf("the stalled episode offered again: %v, want the held activity result", n)
	}
	answer(&protos.WorkflowResponse{InstanceId: "v",
		Actions: []*protos.WorkflowAction{{Id: 1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
			CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, Result: wrapperspb.String(`"ok"`)}}}},
		Version: &protos.WorkflowVersion{Name: new("v1"), Patches: []string{"fix-rounding"}}})
	done, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "v", GetInputsAndOutputs: true})
	if err != nil || done.GetWorkflowState().GetOutput().GetValue() != `"ok"` {
		t.Fatalf("completion: %v %v", err, done)
	}
	hist, err := c.GetInstanceHistory(ctx, &protos.GetInstanceHistoryRequest{InstanceId: "v"})
	if err != nil {
		t.Fatal(err)
	}
	var patches []string
	for _, ev := range hist.GetEvents() {
		patches = append(patches, ev.GetWorkflowStarted().GetVersion().GetPatches()...)
	}
	if !slices.Equal(patches, []string{"fix-rounding"}) {
		t.Fatalf("patches in the history: %v, want fix-rounding once", patches)
	}

	// A version named at start is what every episode names, from the first.
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "pinned", Version: wrapperspb.String("v0")}); err != nil {
		t.Fatal(err)
	}
	pinned := recv().GetWorkflowRequest()
	if pinned.GetNewEvents()[0].GetWorkflowStarted().GetVersion().GetName() != "v0" || pinned.GetNewEvents()[1].GetExecutionStarted().GetVersion().GetValue() != "v0" {
		t.Fatalf("first episode of an instance started on v0: %v", pinned.GetNewEvents())
	}
}
