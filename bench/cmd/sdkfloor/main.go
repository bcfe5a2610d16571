// Command sdkfloor is the floor that scenario 8 (sdkchain) is judged against:
// a server of durabletask's TaskHubSidecarService protocol that does the least
// any such server must do for a Dapr SDK worker running chains of activities,
// and nothing a workflow engine adds: instances live in a map, nothing is
// written to disk, nothing is replicated, placed, retried or recovered. It
// serves the calls Dapr's Go SDK v1.11 makes in that scenario (Hello,
// StartInstance, WaitForInstanceCompletion, GetWorkItems, CompleteActivityTask,
// CompleteOrchestratorTask) with the same gRPC options and garbage-collector
// setting as `weft serve`; anything else is Unimplemented.
//
// What it spends per activity is what gRPC, protobuf and Go's runtime cost on
// this path with this SDK: `weft serve` can only come near it, and a goal for
// the server's CPU below it cannot be met by the server.
//
//	sdkbench -scenario sdkchain -opts target=floor -server PATH-TO-sdkfloor
//
// It prints `sdkfloor serving grpc=ADDR` once it listens.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft/api/durabletask/protos"
)

func main() {
	addr := flag.String("grpc", "127.0.0.1:0", "address to listen on")
	pprof := flag.Bool("pprof", false, "serve net/http/pprof on a free port of 127.0.0.1 (printed as pprof=URL)")
	flag.Parse()
	if *pprof {
		servePprof()
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300) // as `weft serve` (cmd/weft/gc.go)
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkfloor:", err)
		os.Exit(1)
	}
	// The options `weft serve` runs its gRPC server with (api/durabletask/server.go).
	g := grpc.NewServer(
		grpc.MaxRecvMsgSize(16<<20),
		grpc.InitialWindowSize(4<<20),
		grpc.InitialConnWindowSize(16<<20),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	)
	protos.RegisterTaskHubSidecarServiceServer(g, newFloor())
	fmt.Printf("sdkfloor serving grpc=%s\n", lis.Addr())
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		g.Stop()
	}()
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "sdkfloor:", err)
		os.Exit(1)
	}
}

// instance is one workflow instance: its history and whether a worker holds
// an episode of it.
type instance struct {
	id, name  string
	input     *wrapperspb.StringValue
	created   *timestamppb.Timestamp
	past      []*protos.HistoryEvent // events the worker has answered for
	sent      []*protos.HistoryEvent // the new events of the episode a worker holds
	pending   []*protos.HistoryEvent // events that arrived while it held one
	inEpisode bool
	status    protos.OrchestrationStatus
	output    *wrapperspb.StringValue
	failure   *protos.TaskFailureDetails
	updated   *timestamppb.Timestamp
	done      chan struct{}
}

type floor struct {
	protos.UnimplementedTaskHubSidecarServiceServer

	mu        sync.Mutex
	instances map[string]*instance
	queue     []*protos.WorkItem
	wake      chan struct{} // a value when the queue may hold work
}

func newFloor() *floor {
	return &floor{instances: map[string]*instance{}, wake: make(chan struct{}, 1)}
}

func (f *floor) Hello(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (f *floor) StartInstance(_ context.Context, req *protos.CreateInstanceRequest) (*protos.CreateInstanceResponse, error) {
	if req.InstanceId == "" || req.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "sdkfloor: instanceId and name are required")
	}
	now := timestamppb.Now()
	inst := &instance{id: req.InstanceId, name: req.Name, input: req.Input, created: now, updated: now, done: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[req.InstanceId]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "orchestration instance already exists: %s", req.InstanceId)
	}
	f.instances[req.InstanceId] = inst
	inst.pending = []*protos.HistoryEvent{{EventId: -1, Timestamp: now, EventType: &protos.HistoryEvent_ExecutionStarted{
		ExecutionStarted: &protos.ExecutionStartedEvent{Name: req.Name, Input: req.Input,
			WorkflowInstance: &protos.WorkflowInstance{InstanceId: req.InstanceId}}}}}
	f.episodeLocked(inst)
	return &protos.CreateInstanceResponse{InstanceId: req.InstanceId}, nil
}

// episodeLocked hands inst's pending events to a worker, unless one holds an
// episode of it already.
func (f *floor) episodeLocked(inst *instance) {
	if inst.inEpisode || len(inst.pending) == 0 || inst.done == nil {
		return
	}
	started := &protos.HistoryEvent{EventId: -1, Timestamp: timestamppb.Now(),
		EventType: &protos.HistoryEvent_WorkflowStarted{WorkflowStarted: &protos.WorkflowStartedEvent{}}}
	inst.sent = append([]*protos.HistoryEvent{started}, inst.pending...)
	inst.pending = nil
	inst.inEpisode = true
	f.pushLocked(&protos.WorkItem{Request: &protos.WorkItem_WorkflowRequest{WorkflowRequest: &protos.WorkflowRequest{
		InstanceId: inst.id, PastEvents: inst.past, NewEvents: inst.sent}}})
}

func (f *floor) pushLocked(it *protos.WorkItem) {
	f.queue = append(f.queue, it)
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *floor) GetWorkItems(_ *protos.GetWorkItemsRequest, stream protos.TaskHubSidecarService_GetWorkItemsServer) error {
	var batch []*protos.WorkItem
	for {
		f.mu.Lock()
		batch, f.queue = f.queue, batch[:0]
		f.mu.Unlock()
		for i, it := range batch {
			if err := stream.Send(it); err != nil {
				f.mu.Lock()
				f.queue = append(f.queue, batch[i:]...) // for another worker
				f.mu.Unlock()
				return err
			}
			batch[i] = nil
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-f.wake:
		case <-stream.Context().Done():
			// Pass the wake-up on: another worker may wait for it.
			select {
			case f.wake <- struct{}{}:
			default:
			}
			return stream.Context().Err()
		}
	}
}

func (f *floor) CompleteActivityTask(_ context.Context, res *protos.ActivityResponse) (*protos.CompleteTaskResponse, error) {
	ev := &protos.HistoryEvent{EventId: -1, Timestamp: timestamppb.Now()}
	if res.FailureDetails != nil {
		ev.EventType = &protos.HistoryEvent_TaskFailed{TaskFailed: &protos.TaskFailedEvent{TaskScheduledId: res.TaskId, FailureDetails: res.FailureDetails}}
	} else {
		ev.EventType = &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: res.TaskId, Result: res.Result}}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	inst := f.instances[res.InstanceId]
	if inst == nil {
		return nil, status.Errorf(codes.NotFound, "sdkfloor: no instance %q", res.InstanceId)
	}
	inst.pending = append(inst.pending, ev)
	f.episodeLocked(inst)
	return &protos.CompleteTaskResponse{}, nil
}

func (f *floor) CompleteOrchestratorTask(_ context.Context, res *protos.WorkflowResponse) (*protos.CompleteTaskResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst := f.instances[res.InstanceId]
	if inst == nil || !inst.inEpisode {
		return nil, status.Errorf(codes.NotFound, "sdkfloor: no episode of instance %q is out", res.InstanceId)
	}
	now := timestamppb.Now()
	inst.past = append(inst.past, inst.sent...)
	inst.sent, inst.inEpisode, inst.updated = nil, false, now
	for _, act := range res.Actions {
		switch a := act.WorkflowActionType.(type) {
		case *protos.WorkflowAction_ScheduleTask:
			id := act.Id
			inst.past = append(inst.past, &protos.HistoryEvent{EventId: id, Timestamp: now, EventType: &protos.HistoryEvent_TaskScheduled{
				TaskScheduled: &protos.TaskScheduledEvent{Name: a.ScheduleTask.Name, Input: a.ScheduleTask.Input}}})
			f.pushLocked(&protos.WorkItem{Request: &protos.WorkItem_ActivityRequest{ActivityRequest: &protos.ActivityRequest{
				Name: a.ScheduleTask.Name, Input: a.ScheduleTask.Input, WorkflowInstance: &protos.WorkflowInstance{InstanceId: inst.id}, TaskId: id}}})
		case *protos.WorkflowAction_CompleteWorkflow:
			inst.status, inst.output, inst.failure = a.CompleteWorkflow.WorkflowStatus, a.CompleteWorkflow.Result, a.CompleteWorkflow.FailureDetails
			close(inst.done)
			inst.done = nil // no more episodes
			inst.past, inst.pending = nil, nil
			return &protos.CompleteTaskResponse{}, nil
		default:
			return nil, status.Errorf(codes.Unimplemented, "sdkfloor serves chains of activities only, not %T", a)
		}
	}
	f.episodeLocked(inst)
	return &protos.CompleteTaskResponse{}, nil
}

func (f *floor) WaitForInstanceCompletion(ctx context.Context, req *protos.GetInstanceRequest) (*protos.GetInstanceResponse, error) {
	f.mu.Lock()
	inst := f.instances[req.InstanceId]
	var done chan struct{}
	if inst != nil {
		done = inst.done
	}
	f.mu.Unlock()
	if inst == nil {
		return &protos.GetInstanceResponse{Exists: false}, nil
	}
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &protos.WorkflowState{InstanceId: inst.id, Name: inst.name, WorkflowStatus: inst.status,
		CreatedTimestamp: inst.created, LastUpdatedTimestamp: inst.updated, FailureDetails: inst.failure}
	if req.GetInputsAndOutputs {
		st.Input, st.Output = inst.input, inst.output
	}
	return &protos.GetInstanceResponse{Exists: true, WorkflowState: st}, nil
}

// servePprof serves Go's profiles, to see where the floor's CPU goes.
func servePprof() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkfloor: pprof:", err)
		return
	}
	fmt.Printf("sdkfloor pprof=http://%s\n", lis.Addr())
	go http.Serve(lis, nil)
}
