// Command appworker is the worker of one app, written on a client generated
// from the current durabletask protocol (api/durabletask/protos): it connects
// to `weft serve` naming its app in "dapr-app-id" metadata, as Dapr's gRPC
// calls name apps, and plays two programs:
//
//   - workflow Order: calls activity Ship routed to app "shipping", then ends
//     with Ship's result;
//
//   - activity Ship: answers "shipped by <its app>".
//
//     appworker -server 127.0.0.1:50001 -app orders
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft/api/durabletask/protos"
)

func main() {
	server := flag.String("server", "", "weft serve's gRPC address")
	app := flag.String("app", "", "this worker's app id")
	flag.Parse()
	if err := run(*server, *app); err != nil {
		fmt.Fprintln(os.Stderr, "appworker:", err)
		os.Exit(1)
	}
}

func run(server, app string) error {
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := protos.NewTaskHubSidecarServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "dapr-app-id", app)
	stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{})
	if err != nil {
		return err
	}
	fmt.Println("connected")
	for {
		wi, err := stream.Recv()
		if err != nil {
			return err
		}
		if ar := wi.GetActivityRequest(); ar != nil {
			_, err = c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: ar.GetWorkflowInstance().GetInstanceId(), TaskId: ar.GetTaskId(),
				Result: wrapperspb.String(fmt.Sprintf("%q", "shipped by "+app))})
		} else {
			_, err = c.CompleteWorkflowTask(ctx, episode(wi.GetWorkflowRequest()))
		}
		if err != nil {
			return err
		}
	}
}

// episode is Order's step: Ship first; once Ship completed, the end.
func episode(wr *protos.WorkflowRequest) *protos.WorkflowResponse {
	res := &protos.WorkflowResponse{InstanceId: wr.GetInstanceId()}
	for _, ev := range append(wr.GetPastEvents(), wr.GetNewEvents()...) {
		if tc := ev.GetTaskCompleted(); tc != nil {
			res.Actions = []*protos.WorkflowAction{{Id: 1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
				WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, Result: tc.GetResult()}}}}
			return res
		}
	}
	shipping := "shipping"
	res.Actions = []*protos.WorkflowAction{{Id: 0, Router: &protos.TaskRouter{TargetAppID: &shipping},
		WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "Ship"}}}}
	return res
}
