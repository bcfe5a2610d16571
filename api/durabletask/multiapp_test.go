package durabletask

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api/durabletask/protos"
)

// TestMultiApp: workers name their app in "dapr-app-id" metadata, as Dapr's
// gRPC calls do. A workflow started for app "orders" runs on the orders
// worker only; an activity it routes to "shipping" runs on the shipping worker
// only; one routed to "billing", which has no worker, waits (the instance is
// not failed) until a billing worker connects; a child routed to "shipping"
// runs there too.
func TestMultiApp(t *testing.T) {
	c, rt := serveRuntime(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(app string) grpc.ServerStreamingClient[protos.WorkItem] {
		s, err := c.GetWorkItems(metadata.AppendToOutgoingContext(ctx, "dapr-app-id", app), &protos.GetWorkItemsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	recv := func(s grpc.ServerStreamingClient[protos.WorkItem]) *protos.WorkItem {
		t.Helper()
		wi, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return wi
	}
	answer := func(id string, actions ...*protos.WorkflowAction) {
		t.Helper()
		if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: id, Actions: actions}); err != nil {
			t.Fatal(err)
		}
	}
	routed := func(task int32, app string, act *protos.WorkflowAction) *protos.WorkflowAction {
		act.Id = task
		act.Router = &protos.TaskRouter{SourceAppID: "orders", TargetAppID: &app}
		return act
	}
	schedule := func(name string) *protos.WorkflowAction {
		return &protos.WorkflowAction{WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: name}}}
	}

	shipping := connect("shipping")
	orders := connect("orders")
	if _, err := c.StartInstance(metadata.AppendToOutgoingContext(ctx, "dapr-app-id", "orders"),
		&protos.CreateInstanceRequest{Name: "Order", InstanceId: "o1"}); err != nil {
		t.Fatal(err)
	}
	if st, err := rt.Status(ctx, "o1"); err != nil || st.App != "orders" {
		t.Fatalf("o1's app: %+v %v", st, err)
	}
	if wr := recv(orders).GetWorkflowRequest(); wr.GetInstanceId() != "o1" {
		t.Fatalf("orders' worker got %v", wr)
	}
	answer("o1",
		routed(0, "shipping", schedule("Ship")),
		routed(1, "billing", schedule("Bill")),
		routed(2, "shipping", &protos.WorkflowAction{WorkflowActionType: &protos.WorkflowAction_CreateChildWorkflow{
			CreateChildWorkflow: &protos.CreateChildWorkflowAction{Name: "Pack", InstanceId: "o1-pack"}}}))

	// shipping's first item is Ship: it never got o1's episode.
	ar := recv(shipping).GetActivityRequest()
	if ar.GetName() != "Ship" {
		t.Fatalf("the shipping worker's first item: %v, want the Ship activity", ar)
	}
	if _, err := c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: "o1", TaskId: ar.GetTaskId(), Result: wrapperspb.String(`"shipped"`)}); err != nil {
		t.Fatal(err)
	}
	// The child runs in shipping: its episode comes to the shipping worker.
	if wr := recv(shipping).GetWorkflowRequest(); wr.GetInstanceId() != "o1-pack" {
		t.Fatalf("the shipping worker's next item: %v, want the child's episode", wr)
	}
	answer("o1-pack", &protos.WorkflowAction{Id: 0, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
		WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}})

	// Bill waits: no billing worker. o1 takes its results so far and runs on.
	if st, _ := rt.Status(ctx, "o1"); st.Status != weft.StatusRunning {
		t.Fatalf("o1 while Bill waits: %v", st.Status)
	}
	billing := connect("billing")
	for {
		wi := recv(billing)
		if ar := wi.GetActivityRequest(); ar != nil {
			if ar.GetName() != "Bill" {
				t.Fatalf("the billing worker got %v", ar)
			}
			break
		}
		t.Fatalf("the billing worker got %v, want only Bill", wi)
	}
}
