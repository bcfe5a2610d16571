package durabletask

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api/durabletask/protos"
	"github.com/weftrt/weft/workflow"
)

// The SDKs themselves are tested against the real binary in test/sdk (a module of
// its own). These tests speak the protocol with weft's own generated client: the
// error codes, the token, and one worker round trip.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testClient is the generated client plus the calls the current protocol
// dropped, which older SDKs still make.
type testClient struct {
	protos.TaskHubSidecarServiceClient
	conn *grpc.ClientConn
}

func (c testClient) invoke(ctx context.Context, method string, req, resp any, opts ...grpc.CallOption) error {
	return c.conn.Invoke(ctx, "/TaskHubSidecarService/"+method, req, resp, opts...)
}

func (c testClient) QueryInstances(ctx context.Context, req *protos.QueryInstancesRequest, opts ...grpc.CallOption) (*protos.QueryInstancesResponse, error) {
	resp := new(protos.QueryInstancesResponse)
	return resp, c.invoke(ctx, "QueryInstances", req, resp, opts...)
}

// startWithPolicy starts as durabletask-go v0.6 does, with an id-reuse policy
// in CreateInstanceRequest's field 6.
func (c testClient) startWithPolicy(ctx context.Context, req *protos.CreateInstanceRequest, p *protos.OrchestrationIdReusePolicy) error {
	legacy, err := proto.Marshal(&protos.LegacyCreateInstanceFields{OrchestrationIdReusePolicy: p})
	if err != nil {
		return err
	}
	req.ProtoReflect().SetUnknown(legacy)
	_, err = c.StartInstance(ctx, req)
	return err
}

func serveTest(t *testing.T, token string) testClient {
	t.Helper()
	c, _ := serveRuntime(t, Options{Token: token})
	return c
}

// serveRuntime is serveTest with the server's options, and the runtime.
func serveRuntime(t *testing.T, opts Options) (testClient, *weft.Runtime) {
	t.Helper()
	return serveWith(t, weft.Options{}, opts)
}

// serveWith is serveRuntime with the runtime's options too.
func serveWith(t testing.TB, ro weft.Options, opts Options) (testClient, *weft.Runtime) {
	t.Helper()
	ro.Dir, ro.RemoteWorkers, ro.StallRetryDelay = t.TempDir(), true, 50*time.Millisecond
	if ro.Logger == nil {
		ro.Logger = quiet
	}
	rt, err := weft.Open(ro)
	if err != nil {
		t.Fatal(err)
	}
	err = weft.RegisterWorkflow(rt, func(ctx *workflow.Context, in int) (int, error) { return in + 1, nil }, workflow.WithName("LocalInc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	opts.Logger = quiet
	g := NewGRPCServer(New(rt, opts), opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		rt.Close() // ends the worker streams
		g.Stop()
	})
	return testClient{protos.NewTaskHubSidecarServiceClient(conn), conn}, rt
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want code %s", what, err, code)
	}
	if code != codes.OK && status.Convert(err).Message() == "" {
		t.Fatalf("%s: no message", what)
	}
}

func TestClientCallErrors(t *testing.T) {
	c := serveTest(t, "")
	ctx := context.Background()
	_, err := c.Hello(ctx, &emptypb.Empty{})
	wantCode(t, "hello", err, codes.OK)

	_, err = c.StartInstance(ctx, &protos.CreateInstanceRequest{InstanceId: "x"})
	wantCode(t, "start without a name", err, codes.InvalidArgument)
	_, err = c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "bad/id"})
	wantCode(t, "start with a bad id", err, codes.InvalidArgument)
	_, err = c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "x", Input: wrapperspb.String("{not json")})
	wantCode(t, "start with input that is not JSON", err, codes.InvalidArgument)

	got, err := c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: "missing"})
	if err != nil || got.GetExists() {
		t.Fatalf("get of a missing instance: %v exists=%v, want exists=false", err, got.GetExists())
	}
	_, err = c.RaiseEvent(ctx, &protos.RaiseEventRequest{InstanceId: "missing", Name: "e"})
	wantCode(t, "raise on a missing instance", err, codes.NotFound)
	_, err = c.TerminateInstance(ctx, &protos.TerminateRequest{InstanceId: "missing"})
	wantCode(t, "terminate a missing instance", err, codes.NotFound)
	p, err := c.PurgeInstances(ctx, &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "missing"}})
	if err != nil || p.GetDeletedInstanceCount() != 0 {
		t.Fatalf("purge of a missing instance: %v count=%d, want count 0", err, p.GetDeletedInstanceCount())
	}
	for _, method := range []string{"SignalEntity", "RewindInstance", "CreateTaskHub"} {
		err = c.invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
		wantCode(t, method+", dropped from the protocol", err, codes.Unimplemented)
	}
	err = c.invoke(ctx, "NoSuchMethod", &emptypb.Empty{}, &emptypb.Empty{})
	wantCode(t, "an unknown method", err, codes.Unimplemented)

	// A local workflow through the protocol: exists, AlreadyExists, the reuse policy.
	_, err = c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "inc", Input: wrapperspb.String("41")})
	wantCode(t, "start", err, codes.OK)
	done, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "inc", GetInputsAndOutputs: true})
	if err != nil || done.GetWorkflowState().GetOutput().GetValue() != "42" ||
		done.GetWorkflowState().GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED {
		t.Fatalf("wait for completion: %v %v", err, done)
	}
	noPayloads, _ := c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: "inc"})
	if noPayloads.GetWorkflowState().GetInput() != nil || noPayloads.GetWorkflowState().GetOutput() != nil {
		t.Fatalf("get without payloads returned payloads: %v", noPayloads)
	}
	_, err = c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "inc"})
	wantCode(t, "start of a taken id", err, codes.AlreadyExists)
	reuse := func(action protos.CreateOrchestrationAction, statuses ...protos.OrchestrationStatus) error {
		return c.startWithPolicy(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "inc", Input: wrapperspb.String("1")},
			&protos.OrchestrationIdReusePolicy{OperationStatus: statuses, Action: action})
	}
	completed := protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED
	wantCode(t, "reuse policy not listing COMPLETED", reuse(protos.CreateOrchestrationAction_TERMINATE, protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED), codes.AlreadyExists)
	wantCode(t, "reuse policy IGNORE", reuse(protos.CreateOrchestrationAction_IGNORE, completed), codes.OK)
	wantCode(t, "reuse policy TERMINATE", reuse(protos.CreateOrchestrationAction_TERMINATE, completed), codes.OK)
	again, _ := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "inc", GetInputsAndOutputs: true})
	if again.GetWorkflowState().GetOutput().GetValue() != "2" {
		t.Fatalf("after TERMINATE reuse the instance ran again with input 1: %v", again)
	}

	q, err := c.QueryInstances(ctx, &protos.QueryInstancesRequest{Query: &protos.InstanceQuery{
		RuntimeStatus: []protos.OrchestrationStatus{completed}, FetchInputsAndOutputs: true}})
	if err != nil || len(q.GetOrchestrationState()) != 1 || q.GetOrchestrationState()[0].GetInstanceId() != "inc" {
		t.Fatalf("query: %v %v", err, q)
	}
	p, err = c.PurgeInstances(ctx, &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_PurgeInstanceFilter{
		PurgeInstanceFilter: &protos.PurgeInstanceFilter{CreatedTimeFrom: timestamppb.New(time.Now().Add(-time.Hour))}}})
	if err != nil || p.GetDeletedInstanceCount() != 1 {
		t.Fatalf("purge by filter: %v count=%d, want 1", err, p.GetDeletedInstanceCount())
	}
}

func TestToken(t *testing.T) {
	c := serveTest(t, "s3cret")
	_, err := c.Hello(context.Background(), &emptypb.Empty{})
	wantCode(t, "no token", err, codes.Unauthenticated)
	bad := metadata.AppendToOutgoingContext(context.Background(), "dapr-api-token", "nope")
	_, err = c.Hello(bad, &emptypb.Empty{})
	wantCode(t, "wrong token", err, codes.Unauthenticated)
	good := metadata.AppendToOutgoingContext(context.Background(), "dapr-api-token", "s3cret")
	_, err = c.Hello(good, &emptypb.Empty{})
	wantCode(t, "right token", err, codes.OK)
	stream, err := c.GetWorkItems(context.Background(), &protos.GetWorkItemsRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "worker stream without a token", err, codes.Unauthenticated)
}

// TestWorkerRoundTrip plays a worker by hand: an episode, an activity, the next
// episode with the activity's result, completion.
// TestWorkerRoundTrip: one workflow's episodes and activity through a worker,
// answering episodes under the old method name (durabletask-go 0.6,
// durabletask-js 1.0) and the current one (durabletask-go 0.12+, Dapr 1.16+).
func TestWorkerRoundTrip(t *testing.T) {
	for _, method := range []string{"CompleteOrchestratorTask", "CompleteWorkflowTask"} {
		t.Run(method, func(t *testing.T) { workerRoundTrip(t, method) })
	}
}

func workerRoundTrip(t *testing.T, method string) {
	c := serveTest(t, "")
	complete := c.CompleteOrchestratorTask
	if method == "CompleteWorkflowTask" {
		complete = c.CompleteWorkflowTask
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "rt", Input: wrapperspb.String("5")}); err != nil {
		t.Fatal(err)
	}
	st, _ := c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: "rt"})
	if st.GetWorkflowState().GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_PENDING {
		t.Fatalf("before the first episode: %v", st.GetWorkflowState().GetWorkflowStatus())
	}

	wi, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	or := wi.GetWorkflowRequest()
	if or == nil || or.GetInstanceId() != "rt" || len(or.GetPastEvents()) != 0 || len(or.GetNewEvents()) != 2 ||
		or.GetNewEvents()[0].GetWorkflowStarted() == nil || or.GetNewEvents()[1].GetExecutionStarted().GetInput().GetValue() != "5" {
		t.Fatalf("first episode: %v", wi)
	}
	_, err = complete(ctx, &protos.WorkflowResponse{InstanceId: "rt", CustomStatus: wrapperspb.String("step 1"),
		Actions: []*protos.WorkflowAction{{Id: 0, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{
			ScheduleTask: &protos.ScheduleTaskAction{Name: "Double", Input: wrapperspb.String("5"), TaskExecutionId: "call-1"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	started, err := c.WaitForInstanceStart(ctx, &protos.GetInstanceRequest{InstanceId: "rt"})
	if err != nil || started.GetWorkflowState().GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING ||
		started.GetWorkflowState().GetCustomStatus() != nil {
		t.Fatalf("after the first episode, without payloads: %v %v", err, started)
	}
	started, err = c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: "rt", GetInputsAndOutputs: true})
	if err != nil || started.GetWorkflowState().GetCustomStatus().GetValue() != "step 1" {
		t.Fatalf("after the first episode: %v %v", err, started)
	}

	wi, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ar := wi.GetActivityRequest()
	if ar == nil || ar.GetName() != "Double" || ar.GetTaskId() != 0 || ar.GetWorkflowInstance().GetInstanceId() != "rt" || ar.GetTaskExecutionId() != "call-1" {
		t.Fatalf("activity: %v", wi)
	}
	_, err = c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: "rt", TaskId: 0, Result: wrapperspb.String("10")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: "rt", TaskId: 0, Result: wrapperspb.String("10")})
	wantCode(t, "a second answer to the same activity", err, codes.NotFound)

	wi, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	or = wi.GetWorkflowRequest()
	past, news := or.GetPastEvents(), or.GetNewEvents()
	if len(past) != 3 || past[2].GetTaskScheduled().GetName() != "Double" || past[2].GetEventId() != 0 || past[2].GetTaskScheduled().GetTaskExecutionId() != "call-1" ||
		len(news) != 2 || news[1].GetTaskCompleted().GetResult().GetValue() != "10" || news[1].GetTaskCompleted().GetTaskScheduledId() != 0 ||
		news[1].GetTaskCompleted().GetTaskExecutionId() != "call-1" {
		t.Fatalf("second episode: past %v new %v", past, news)
	}
	_, err = complete(ctx, &protos.WorkflowResponse{InstanceId: "rt",
		Actions: []*protos.WorkflowAction{{Id: 1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
			CompleteWorkflow: &protos.CompleteWorkflowAction{
				WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, Result: wrapperspb.String("10")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "rt", GetInputsAndOutputs: true})
	if err != nil || done.GetWorkflowState().GetOutput().GetValue() != "10" {
		t.Fatalf("completion: %v %v", err, done)
	}
	_, err = c.PurgeInstances(ctx, &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "rt"}})
	wantCode(t, "purge", err, codes.OK)
}

// TestSuspendRightAfterStart is what Dapr's basic workflow example does: start
// an instance, suspend it at once (still PENDING: no episode committed), see
// it SUSPENDED, resume it, see it RUNNING, and it completes; with the worker
// connected before the start (the first episode may be with it already) and
// after the resume.
func TestSuspendRightAfterStart(t *testing.T) {
	for _, connectFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("worker connected first: %v", connectFirst), func(t *testing.T) {
			c := serveTest(t, "")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stream grpc.ServerStreamingClient[protos.WorkItem]
			connect := func() {
				var err error
				if stream, err = c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{}); err != nil {
					t.Fatal(err)
				}
			}
			if connectFirst {
				connect()
			}
			if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "s"}); err != nil {
				t.Fatal(err)
			}
			statusIs := func(when string, want protos.OrchestrationStatus) {
				t.Helper()
				st, err := c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: "s"})
				if err != nil || st.GetWorkflowState().GetWorkflowStatus() != want {
					t.Fatalf("%s: %v %v, want %s", when, st.GetWorkflowState().GetWorkflowStatus(), err, want)
				}
			}
			_, err := c.SuspendInstance(ctx, &protos.SuspendRequest{InstanceId: "s", Reason: wrapperspb.String("right away")})
			wantCode(t, "suspend right after the start", err, codes.OK)
			statusIs("suspended", protos.OrchestrationStatus_ORCHESTRATION_STATUS_SUSPENDED)
			_, err = c.ResumeInstance(ctx, &protos.ResumeRequest{InstanceId: "s"})
			wantCode(t, "resume", err, codes.OK)
			statusIs("resumed", protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
			if !connectFirst {
				connect()
			}
			wi, err := stream.Recv()
			if err != nil || wi.GetWorkflowRequest().GetInstanceId() != "s" {
				t.Fatalf("the first episode: %v %v", wi, err)
			}
			_, err = c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: "s",
				Actions: []*protos.WorkflowAction{{Id: 0, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
					CompleteWorkflow: &protos.CompleteWorkflowAction{
						WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, Result: wrapperspb.String(`"ok"`)}}}}})
			if err != nil {
				t.Fatal(err)
			}
			done, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "s", GetInputsAndOutputs: true})
			if err != nil || done.GetWorkflowState().GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED {
				t.Fatalf("completion: %v %v", done, err)
			}
		})
	}
}

func TestPurgeRunningRefused(t *testing.T) {
	c := serveTest(t, "")
	ctx := context.Background()
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "NoWorkerYet", InstanceId: "run"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.PurgeInstances(ctx, &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "run"}})
	wantCode(t, "purge of an unfinished instance", err, codes.FailedPrecondition)
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = c.WaitForInstanceStart(wctx, &protos.GetInstanceRequest{InstanceId: "run"})
	wantCode(t, "wait for a start that cannot happen (no worker)", err, codes.DeadlineExceeded)
}

func TestOrchestrationResultRejects(t *testing.T) {
	cases := []struct {
		name   string
		action *protos.WorkflowAction
	}{
		{"terminate from a workflow", &protos.WorkflowAction{WorkflowActionType: &protos.WorkflowAction_TerminateWorkflow{
			TerminateWorkflow: &protos.TerminateWorkflowAction{InstanceId: "other"}}}},
		{"activity without a name", &protos.WorkflowAction{WorkflowActionType: &protos.WorkflowAction_ScheduleTask{
			ScheduleTask: &protos.ScheduleTaskAction{}}}},
		{"event without a target", &protos.WorkflowAction{WorkflowActionType: &protos.WorkflowAction_SendEvent{
			SendEvent: &protos.SendEventAction{Name: "e"}}}},
		{"completion as TERMINATED", &protos.WorkflowAction{WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
			CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED}}}},
		{"no action type", &protos.WorkflowAction{}},
	}
	for _, c := range cases {
		if _, err := orchestrationResult(&protos.WorkflowResponse{InstanceId: "i", Actions: []*protos.WorkflowAction{c.action}}); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	// The completing action goes last whatever its position; a child without an id
	// gets the id the SDKs derive.
	res, err := orchestrationResult(&protos.WorkflowResponse{InstanceId: "p", Actions: []*protos.WorkflowAction{
		{Id: 2, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
			WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}},
		{Id: 1, WorkflowActionType: &protos.WorkflowAction_CreateChildWorkflow{CreateChildWorkflow: &protos.CreateChildWorkflowAction{Name: "Child"}}},
	}})
	if err != nil || len(res.Actions) != 2 || res.Actions[1].Kind != workflow.WorkflowCompleted || res.Actions[0].Instance != "p:0001" {
		t.Fatalf("reordered result: %v %+v", err, res.Actions)
	}
}

// TestHandlerPanicFailsTheCallOnly: a panic in a handler (here: a server with
// no runtime behind it) ends that call with Internal, logged with its stack;
// the server answers the next call. grpc-go itself would let it end the
// process.
func TestHandlerPanicFailsTheCallOnly(t *testing.T) {
	watch := &panicWatch{}
	s := &Server{log: slog.New(watch)}
	g := NewGRPCServer(s, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := protos.NewTaskHubSidecarServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err = c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Anything"})
	wantCode(t, "a call whose handler panics", err, codes.Internal)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "StartInstance") || !strings.Contains(msg, "nil pointer") {
		t.Errorf("message %q: want the method and the panic", msg)
	}
	// The only stream handler does not panic without a runtime: the stream
	// interceptor is called as grpc would.
	err = s.recoverStream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/TaskHubSidecarService/GetWorkItems"},
		func(any, grpc.ServerStream) error { panic("boom") })
	wantCode(t, "a stream whose handler panics", err, codes.Internal)
	if _, err := c.Hello(ctx, &emptypb.Empty{}); err != nil {
		t.Fatalf("the server after the panics: %v", err)
	}
	logged := watch.take()
	if len(logged) != 2 || !strings.Contains(logged[0], "stack=") {
		t.Errorf("logged: %q, want both panics with their stacks", logged)
	}
}
