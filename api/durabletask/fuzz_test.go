package durabletask

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api/durabletask/protos"
)

// Whatever a client or a worker sends, the server answers it (a result or a
// status with a message) and stays up: no panic in a handler (which would end
// the process), none in a workflow actor (which recovers, but reloads the
// instance into the same answer again), no call that hangs. `go test` runs the
// seeds; `go test -fuzz FuzzWorkerAnswer ./api/durabletask` explores.

// panicWatch is a log handler that keeps the runtime's reports of recovered
// panics.
type panicWatch struct {
	mu     sync.Mutex
	panics []string
}

func (p *panicWatch) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicWatch) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *panicWatch) WithGroup(string) slog.Handler            { return p }
func (p *panicWatch) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "panic") {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	p.mu.Lock()
	p.panics = append(p.panics, b.String())
	p.mu.Unlock()
	return nil
}

func (p *panicWatch) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.panics
	p.panics = nil
	return got
}

// answered checks one call's outcome: an answer, or a status that says what
// was wrong; never a hang.
func answered(t *testing.T, what string, err error) {
	t.Helper()
	switch {
	case err == nil:
	case status.Code(err) == codes.DeadlineExceeded:
		t.Fatalf("%s: no answer within the deadline: %v", what, err)
	case status.Convert(err).Message() == "":
		t.Fatalf("%s: status %s without a message", what, status.Code(err))
	}
}

func workerAnswerSeeds() []*protos.WorkflowResponse {
	action := func(id int32, a any) *protos.WorkflowAction {
		w := &protos.WorkflowAction{Id: id}
		switch x := a.(type) {
		case *protos.ScheduleTaskAction:
			w.WorkflowActionType = &protos.WorkflowAction_ScheduleTask{ScheduleTask: x}
		case *protos.CreateTimerAction:
			w.WorkflowActionType = &protos.WorkflowAction_CreateTimer{CreateTimer: x}
		case *protos.CreateChildWorkflowAction:
			w.WorkflowActionType = &protos.WorkflowAction_CreateChildWorkflow{CreateChildWorkflow: x}
		case *protos.SendEventAction:
			w.WorkflowActionType = &protos.WorkflowAction_SendEvent{SendEvent: x}
		case *protos.CompleteWorkflowAction:
			w.WorkflowActionType = &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: x}
		case *protos.TerminateWorkflowAction:
			w.WorkflowActionType = &protos.WorkflowAction_TerminateWorkflow{TerminateWorkflow: x}
		}
		return w
	}
	done := protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED
	return []*protos.WorkflowResponse{
		{Actions: []*protos.WorkflowAction{action(0, &protos.ScheduleTaskAction{Name: "Echo", Input: wrapperspb.String(`"x"`)})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CompleteWorkflowAction{WorkflowStatus: done, Result: wrapperspb.String(`42`)})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED,
			FailureDetails: &protos.TaskFailureDetails{ErrorType: "Boom", ErrorMessage: "failed"}})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW,
			Result: wrapperspb.String(`1`), CarryoverEvents: []*protos.HistoryEvent{{EventType: &protos.HistoryEvent_EventRaised{EventRaised: &protos.EventRaisedEvent{Name: "e"}}}}})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CreateTimerAction{})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CreateTimerAction{FireAt: &timestamppb.Timestamp{Seconds: 1 << 62}})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CreateTimerAction{FireAt: &timestamppb.Timestamp{Seconds: -1 << 62, Nanos: -5}})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CreateChildWorkflowAction{Name: "Child", InstanceId: "a/b"})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CreateChildWorkflowAction{Name: "", InstanceId: ""})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.SendEventAction{Instance: &protos.WorkflowInstance{InstanceId: "nobody"}, Name: "e"})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.SendEventAction{Instance: &protos.WorkflowInstance{InstanceId: strings.Repeat("z", 300)}, Name: "e"})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.TerminateWorkflowAction{InstanceId: "x"})}},
		{Actions: []*protos.WorkflowAction{{Id: 3}}}, // no action type at all
		{Actions: []*protos.WorkflowAction{action(1, &protos.ScheduleTaskAction{Name: "A"}), action(1, &protos.ScheduleTaskAction{Name: "B"})}},
		{Actions: []*protos.WorkflowAction{action(-7, &protos.ScheduleTaskAction{Name: "A"})}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.CompleteWorkflowAction{WorkflowStatus: done}), action(1, &protos.ScheduleTaskAction{Name: "After"})}},
		{CustomStatus: wrapperspb.String("not json"), Version: &protos.WorkflowVersion{Name: new("v2"), Patches: []string{"p", "p"}}},
		{Actions: []*protos.WorkflowAction{action(0, &protos.ScheduleTaskAction{Name: "Echo", Input: wrapperspb.String("{not json")})}},
	}
}

// FuzzWorkerAnswer answers a fresh instance's first episode with the input
// (a WorkflowResponse in protobuf).
func FuzzWorkerAnswer(f *testing.F) {
	for _, s := range workerAnswerSeeds() {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	watch := &panicWatch{}
	c, _ := serveWith(f, weft.Options{Logger: slog.New(watch)}, Options{})
	n := 0
	f.Fuzz(func(t *testing.T, b []byte) {
		res := new(protos.WorkflowResponse)
		if proto.Unmarshal(b, res) != nil {
			return
		}
		n++
		id := fmt.Sprintf("fz-%d", n)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// A stream per input: when it ends, what it held goes back to the pool
		// and comes to the next input's stream, which finishes it off.
		stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Fz", InstanceId: id}); err != nil {
			t.Fatal(err)
		}
		for {
			wi, err := stream.Recv()
			if err != nil {
				t.Fatalf("waiting for the episode of %s: %v", id, err)
			}
			if wi.GetWorkflowRequest().GetInstanceId() == id {
				break
			}
			finishOff(ctx, c, wi)
		}
		res.InstanceId = id
		_, err = c.CompleteWorkflowTask(ctx, res)
		answered(t, fmt.Sprintf("answer %v", res), err)
		_, err = c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: id, GetInputsAndOutputs: true})
		answered(t, "status after the answer", err)
		if p := watch.take(); len(p) > 0 {
			t.Fatalf("answer %v: the server panicked:\n%s", res, strings.Join(p, "\n"))
		}
	})
}

// finishOff answers work that earlier inputs left (their activities, their
// children's and their own later episodes) so that it ends instead of piling
// up: a worker holds at most 128 items unanswered, and gets nothing more.
func finishOff(ctx context.Context, c testClient, wi *protos.WorkItem) {
	if a := wi.GetActivityRequest(); a != nil {
		_, _ = c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: a.GetWorkflowInstance().GetInstanceId(), TaskId: a.GetTaskId(),
			Result: wrapperspb.String("null")})
		return
	}
	if w := wi.GetWorkflowRequest(); w != nil {
		_, _ = c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: w.GetInstanceId(), Actions: []*protos.WorkflowAction{{Id: 1 << 20,
			WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
				WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}}})
	}
}

// clientCalls are the unary calls a client makes, each with a request of its
// own type; FuzzClientCalls picks one by the input's first byte.
var clientCalls = []clientCall{
	unary("StartInstance", testClient.StartInstance),
	unary("RaiseEvent", testClient.RaiseEvent),
	unary("TerminateInstance", testClient.TerminateInstance),
	unary("SuspendInstance", testClient.SuspendInstance),
	unary("ResumeInstance", testClient.ResumeInstance),
	unary("PurgeInstances", testClient.PurgeInstances),
	unary("GetInstance", testClient.GetInstance),
	unary("RerunWorkflowFromEvent", testClient.RerunWorkflowFromEvent),
	unary("ListInstanceIDs", testClient.ListInstanceIDs),
	unary("GetInstanceHistory", testClient.GetInstanceHistory),
	unary("QueryInstances", testClient.QueryInstances),
	unary("CompleteActivityTask", testClient.CompleteActivityTask),
	// The waits block by design: they get a short deadline of their own, and
	// running out of it is their answer.
	waitBriefly(unary("WaitForInstanceStart", testClient.WaitForInstanceStart)),
	waitBriefly(unary("WaitForInstanceCompletion", testClient.WaitForInstanceCompletion)),
}

type clientCall struct {
	name string
	req  func() proto.Message
	call func(testClient, context.Context, proto.Message) error
}

// unary makes a clientCall of a client method.
func unary[Req proto.Message, Resp any](name string, method func(testClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) clientCall {
	return clientCall{
		name: name,
		req: func() proto.Message {
			var none Req
			return none.ProtoReflect().Type().New().Interface()
		},
		call: func(c testClient, ctx context.Context, m proto.Message) error {
			_, err := method(c, ctx, m.(Req))
			return err
		},
	}
}

// waitBriefly gives a wait a 200 ms deadline; its running out is not an error.
func waitBriefly(w clientCall) clientCall {
	call := w.call
	w.call = func(c testClient, ctx context.Context, m proto.Message) error {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if err := call(c, ctx, m); status.Code(err) != codes.DeadlineExceeded {
			return err
		}
		return nil
	}
	return w
}

// FuzzClientCalls sends one client call (the input's first byte picks which;
// the rest is its request in protobuf) to a server that holds instances in
// every state a call can meet.
func FuzzClientCalls(f *testing.F) {
	seed := func(call string, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		for i, c := range clientCalls {
			if c.name == call {
				f.Add(append([]byte{byte(i)}, b...))
				return
			}
		}
		f.Fatalf("no call %s", call)
	}
	far := &timestamppb.Timestamp{Seconds: 1 << 40}
	seed("StartInstance", &protos.CreateInstanceRequest{Name: "Fz", InstanceId: "s1", Input: wrapperspb.String(`{"a":1}`)})
	seed("StartInstance", &protos.CreateInstanceRequest{Name: "Fz", InstanceId: "s2", ScheduledStartTimestamp: far})
	seed("StartInstance", &protos.CreateInstanceRequest{Name: "Fz", InstanceId: "s3", ScheduledStartTimestamp: &timestamppb.Timestamp{Seconds: -1 << 62}})
	seed("StartInstance", &protos.CreateInstanceRequest{Name: "Fz", ParentTraceContext: &protos.TraceContext{TraceParent: "00-zz", SpanID: "x"}})
	seed("StartInstance", &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "s4", Input: wrapperspb.String(`"not an int"`)})
	seed("RaiseEvent", &protos.RaiseEventRequest{InstanceId: "running", Name: "e", Input: wrapperspb.String(`[1,2]`)})
	seed("RaiseEvent", &protos.RaiseEventRequest{InstanceId: "running", Name: "", Input: wrapperspb.String(`{`)})
	seed("TerminateInstance", &protos.TerminateRequest{InstanceId: "pending", Recursive: true, Output: wrapperspb.String(`"bye"`)})
	seed("SuspendInstance", &protos.SuspendRequest{InstanceId: "pending", Reason: wrapperspb.String("r")})
	seed("ResumeInstance", &protos.ResumeRequest{InstanceId: "running"})
	seed("PurgeInstances", &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "done"}, Recursive: true})
	seed("PurgeInstances", &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_PurgeInstanceFilter{PurgeInstanceFilter: &protos.PurgeInstanceFilter{
		CreatedTimeFrom: far, CreatedTimeTo: &timestamppb.Timestamp{Seconds: -1 << 62}}}})
	seed("PurgeInstances", &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "running"}, Force: new(true)})
	seed("GetInstance", &protos.GetInstanceRequest{InstanceId: "done", GetInputsAndOutputs: true})
	seed("RerunWorkflowFromEvent", &protos.RerunWorkflowFromEventRequest{SourceInstanceID: "done", EventID: 0, NewInstanceID: new("r1")})
	seed("RerunWorkflowFromEvent", &protos.RerunWorkflowFromEventRequest{SourceInstanceID: "done", EventID: 1 << 30, NewChildWorkflowInstanceID: new("a/b")})
	seed("ListInstanceIDs", &protos.ListInstanceIDsRequest{PageSize: new(uint32(1 << 31)), ContinuationToken: new("garbage")})
	seed("GetInstanceHistory", &protos.GetInstanceHistoryRequest{InstanceId: "done"})
	seed("QueryInstances", &protos.QueryInstancesRequest{Query: &protos.InstanceQuery{MaxInstanceCount: -5, ContinuationToken: wrapperspb.String("x"),
		RuntimeStatus: []protos.OrchestrationStatus{99}, CreatedTimeFrom: far}})
	seed("CompleteActivityTask", &protos.ActivityResponse{InstanceId: "running", TaskId: -1, Result: wrapperspb.String(`{`)})
	seed("WaitForInstanceStart", &protos.GetInstanceRequest{InstanceId: "never-started"})
	seed("WaitForInstanceCompletion", &protos.GetInstanceRequest{InstanceId: "done", GetInputsAndOutputs: true})
	seed("WaitForInstanceCompletion", &protos.GetInstanceRequest{InstanceId: "bad/id"})

	watch := &panicWatch{}
	c, rt := serveWith(f, weft.Options{Logger: slog.New(watch)}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Instances to meet: a finished one (run in process), one waiting for a
	// worker's first episode, one scheduled for later.
	if _, err := rt.Schedule(ctx, "LocalInc", []byte("1"), weft.WithInstanceID("done")); err != nil {
		f.Fatal(err)
	}
	if _, err := rt.WaitForCompletion(ctx, "done"); err != nil {
		f.Fatal(err)
	}
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Fz", InstanceId: "running"}); err != nil {
		f.Fatal(err)
	}
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Fz", InstanceId: "pending", ScheduledStartTimestamp: far}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		call := clientCalls[int(b[0])%len(clientCalls)]
		req := call.req()
		if proto.Unmarshal(b[1:], req) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		answered(t, fmt.Sprintf("%s(%v)", call.name, req), call.call(c, ctx, req))
		_, err := c.Hello(ctx, &emptypb.Empty{})
		answered(t, "hello after "+call.name, err)
		if p := watch.take(); len(p) > 0 {
			t.Fatalf("%s(%v): the server panicked:\n%s", call.name, req, strings.Join(p, "\n"))
		}
	})
}
