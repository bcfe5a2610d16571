package main

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft/api/durabletask/protos"
)

// TestChainOfTwo plays a worker as Dapr's Go SDK does: a chain of two
// activities runs to completion, each episode carrying the whole past, and
// the waiting client gets the output.
func TestChainOfTwo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, stream := startFloor(t, ctx)
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{InstanceId: "c1", Name: "Chain", Input: wrapperspb.String("1")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{InstanceId: "c1", Name: "Chain"})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second start of c1: %v, want AlreadyExists", err)
	}
	waited := make(chan *protos.GetInstanceResponse, 1)
	go func() {
		res, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "c1", GetInputsAndOutputs: true})
		if err != nil {
			t.Error(err)
		}
		waited <- res
	}()

	// Each step: the episode's past and new events, then the answer.
	steps := []struct {
		past, news int
		answer     *protos.WorkflowAction
	}{
		{0, 2, &protos.WorkflowAction{Id: 0, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "Inc", Input: wrapperspb.String("1")}}}},
		{3, 2, &protos.WorkflowAction{Id: 1, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "Inc", Input: wrapperspb.String("2")}}}},
		{6, 2, &protos.WorkflowAction{Id: 2, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
			WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, Result: wrapperspb.String("3")}}}},
	}
	for i, s := range steps {
		it, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		ep := it.GetWorkflowRequest()
		if ep == nil || ep.InstanceId != "c1" || len(ep.PastEvents) != s.past || len(ep.NewEvents) != s.news {
			t.Fatalf("step %d: work item %v, want an episode of c1 with %d past and %d new events", i, it, s.past, s.news)
		}
		if ep.NewEvents[0].GetWorkflowStarted() == nil {
			t.Fatalf("step %d: the episode's first new event is %v, not WorkflowStarted", i, ep.NewEvents[0])
		}
		if _, err := c.CompleteOrchestratorTask(ctx, &protos.WorkflowResponse{InstanceId: "c1", Actions: []*protos.WorkflowAction{s.answer}}); err != nil {
			t.Fatal(err)
		}
		sched := s.answer.GetScheduleTask()
		if sched == nil {
			break
		}
		it, err = stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		act := it.GetActivityRequest()
		if act == nil || act.Name != "Inc" || act.TaskId != s.answer.Id || act.GetWorkflowInstance().GetInstanceId() != "c1" {
			t.Fatalf("step %d: work item %v, want activity Inc, task %d of c1", i, it, s.answer.Id)
		}
		n, _ := strconv.Atoi(act.Input.GetValue())
		if _, err := c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: "c1", TaskId: act.TaskId, Result: wrapperspb.String(strconv.Itoa(n + 1))}); err != nil {
			t.Fatal(err)
		}
	}
	res := <-waited
	st := res.GetWorkflowState()
	if !res.GetExists() || st.WorkflowStatus != protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED || st.Output.GetValue() != "3" || st.Input.GetValue() != "1" {
		t.Fatalf("wait answered %v, want c1 completed with input 1 and output 3", res)
	}
	if _, err := c.CompleteOrchestratorTask(ctx, &protos.WorkflowResponse{InstanceId: "c1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("an answer for a finished instance: %v, want NotFound", err)
	}
	if _, err := c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("a result for an unknown instance: %v, want NotFound", err)
	}
}

// TestOtherActionsRefused: a workflow doing more than calling activities gets
// a clear Unimplemented, not a wrong answer.
func TestOtherActionsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, stream := startFloor(t, ctx)
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{InstanceId: "t1", Name: "Timer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	_, err := c.CompleteOrchestratorTask(ctx, &protos.WorkflowResponse{InstanceId: "t1", Actions: []*protos.WorkflowAction{
		{Id: 0, WorkflowActionType: &protos.WorkflowAction_CreateTimer{CreateTimer: &protos.CreateTimerAction{}}}}})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("a timer action: %v, want Unimplemented", err)
	}
}

// startFloor serves a floor on a free port and returns a client of it and
// a worker's open work-item stream.
func startFloor(t *testing.T, ctx context.Context) (protos.TaskHubSidecarServiceClient, grpc.ServerStreamingClient[protos.WorkItem]) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	protos.RegisterTaskHubSidecarServiceServer(g, newFloor())
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := protos.NewTaskHubSidecarServiceClient(conn)
	stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return c, stream
}
