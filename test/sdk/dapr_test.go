package sdk

// The Dapr Go SDK's workflow package (v1.11.0) against weft, exactly as a Dapr
// application uses it: a workflow.WorkflowWorker and a workflow.Client, each on a
// Dapr client made with client.NewClientWithAddress(<weft's gRPC address>).
// Workflows and activities are registered by function name, so each is a named
// function here.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/workflow"
	"github.com/microsoft/durabletask-go/api"
	"github.com/microsoft/durabletask-go/task"
	"google.golang.org/grpc"
)

// --- workflows and activities ------------------------------------------------

func SdkDaprChain(ctx *workflow.WorkflowContext) (any, error) {
	var v int
	if err := ctx.GetInput(&v); err != nil {
		return nil, err
	}
	for d := 2; d <= 6; d++ {
		if err := ctx.CallActivity(SdkDaprAppendDigit, workflow.ActivityInput(digitStep{v, d})).Await(&v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func SdkDaprFanOut(ctx *workflow.WorkflowContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	tasks := workflow.NewTaskSlice(n)
	for i := range tasks {
		tasks[i] = ctx.CallActivity(SdkDaprDouble, workflow.ActivityInput(i+1))
	}
	return awaitSum(tasks)
}

func SdkDaprTimer(ctx *workflow.WorkflowContext) (any, error) {
	var ms int
	if err := ctx.GetInput(&ms); err != nil {
		return nil, err
	}
	t0 := ctx.CurrentUTCDateTime()
	if err := ctx.CreateTimer(time.Duration(ms) * time.Millisecond).Await(nil); err != nil {
		return nil, err
	}
	elapsed := ctx.CurrentUTCDateTime().Sub(t0)
	if err := ctx.CallActivity(SdkDaprDouble, workflow.ActivityInput(1)).Await(nil); err != nil {
		return nil, err
	}
	return timerOutput{ElapsedMs: elapsed.Milliseconds()}, nil
}

func SdkDaprEvents(ctx *workflow.WorkflowContext) (any, error) {
	var in eventsInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	if in.DelayMs > 0 {
		if err := ctx.CreateTimer(time.Duration(in.DelayMs) * time.Millisecond).Await(nil); err != nil {
			return nil, err
		}
	}
	timeout := forever // Dapr passes the timeout through: 0 would not wait at all
	if in.TimeoutMs > 0 {
		timeout = time.Duration(in.TimeoutMs) * time.Millisecond
	}
	out := eventsOutput{Got: []string{}}
	for range in.Count {
		var s string
		err := ctx.WaitForExternalEvent(in.Name, timeout).Await(&s)
		if errors.Is(err, task.ErrTaskCanceled) {
			out.TimedOut = true
			break
		}
		if err != nil {
			return nil, err
		}
		out.Got = append(out.Got, s)
	}
	return out, nil
}

func SdkDaprEcho(ctx *workflow.WorkflowContext) (any, error) {
	var in, p string
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	if err := ctx.WaitForExternalEvent("go", forever).Await(&p); err != nil {
		return nil, err
	}
	return in + "/" + p, nil
}

// SdkDaprParent calls a child (no retry policy: the Dapr SDK has none).
func SdkDaprParent(ctx *workflow.WorkflowContext) (any, error) {
	var in parentInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	var out any
	err := ctx.CallChildWorkflow(in.Child,
		workflow.ChildWorkflowInput(in.ChildInput),
		workflow.ChildWorkflowInstanceID(in.ChildID), // "" lets the server choose
	).Await(&out)
	if err != nil {
		return nil, fmt.Errorf("child %s: %w", in.Child, err)
	}
	return out, nil
}

func SdkDaprChildDouble(ctx *workflow.WorkflowContext) (any, error) {
	var n, r int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	if err := ctx.CallActivity(SdkDaprDouble, workflow.ActivityInput(n)).Await(&r); err != nil {
		return nil, err
	}
	return r, nil
}

func SdkDaprChildFail(ctx *workflow.WorkflowContext) (any, error) {
	var msg string
	if err := ctx.GetInput(&msg); err != nil {
		return nil, err
	}
	return nil, errors.New(msg)
}

func SdkDaprCounter(ctx *workflow.WorkflowContext) (any, error) {
	var n, d int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	if err := ctx.CallActivity(SdkDaprDouble, workflow.ActivityInput(n)).Await(&d); err != nil {
		return nil, err
	}
	if d != 2*n {
		return nil, fmt.Errorf("generation %d: SdkDaprDouble(%d) = %d: another generation's result?", n, n, d)
	}
	if n < 5 {
		ctx.ContinueAsNew(n+1, false)
		return nil, nil
	}
	return n, nil
}

// SdkDaprCarryOver is dtCarryOver with ContinueAsNew(…, keepEvents=true).
func SdkDaprCarryOver(ctx *workflow.WorkflowContext) (any, error) {
	var s carryState
	if err := ctx.GetInput(&s); err != nil {
		return nil, err
	}
	if s.Gen == 0 {
		if err := ctx.CreateTimer(time.Second).Await(nil); err != nil {
			return nil, err
		}
	}
	var tick string
	err := ctx.WaitForExternalEvent("tick", 5*time.Second).Await(&tick)
	if errors.Is(err, task.ErrTaskCanceled) {
		return nil, fmt.Errorf("generation %d: no tick within 5s (got %v): unprocessed events were not carried over", s.Gen, s.Got)
	}
	if err != nil {
		return nil, err
	}
	s.Got = append(s.Got, tick)
	if s.Gen < 4 {
		ctx.ContinueAsNew(carryState{Gen: s.Gen + 1, Got: s.Got}, true)
		return nil, nil
	}
	return s.Got, nil
}

func SdkDaprHello(ctx *workflow.WorkflowContext) (any, error) {
	var s string
	if err := ctx.GetInput(&s); err != nil {
		return nil, err
	}
	return "hello " + s, nil
}

func SdkDaprAppendDigit(ctx workflow.ActivityContext) (any, error) {
	var s digitStep
	if err := ctx.GetInput(&s); err != nil {
		return nil, err
	}
	return s.V*10 + s.D, nil
}

func SdkDaprDouble(ctx workflow.ActivityContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	return 2 * n, nil
}

// FanOutFanInWorkflow, GetWorkBatch and ProcessWorkItem have the names of the
// seed's sample workflow and activities (and the shape of Dapr's own fan-out
// example): an app's names are the app's, whatever weft serve could host.
func FanOutFanInWorkflow(ctx *workflow.WorkflowContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	var batch []int
	if err := ctx.CallActivity(GetWorkBatch, workflow.ActivityInput(n)).Await(&batch); err != nil {
		return nil, err
	}
	tasks := workflow.NewTaskSlice(len(batch))
	for i, item := range batch {
		tasks[i] = ctx.CallActivity(ProcessWorkItem, workflow.ActivityInput(item))
	}
	return awaitSum(tasks)
}

func GetWorkBatch(ctx workflow.ActivityContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	batch := make([]int, n)
	for i := range batch {
		batch[i] = i + 1
	}
	return batch, nil
}

func ProcessWorkItem(ctx workflow.ActivityContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	return 2 * n, nil
}

// --- the environment ---------------------------------------------------------

// daprEnv is one weft server with a Dapr workflow worker and client connected.
type daprEnv struct {
	srv *server
	c   *workflow.Client
	raw *grpc.ClientConn // for what the SDK does not show (failure details)
}

func newDapr(t *testing.T) *daprEnv {
	t.Helper()
	srv := startServer(t)
	daprClient := func() dapr.Client {
		c, err := dapr.NewClientWithAddress(srv.GRPCAddr)
		if err != nil {
			t.Fatalf("dapr.NewClientWithAddress(%s): %v", srv.GRPCAddr, err)
		}
		return c
	}
	w, err := workflow.NewWorker(workflow.WorkerWithDaprClient(daprClient()))
	if err != nil {
		t.Fatalf("workflow.NewWorker: %v", err)
	}
	for _, wf := range []workflow.Workflow{SdkDaprChain, SdkDaprFanOut, SdkDaprTimer, SdkDaprEvents, SdkDaprEcho,
		SdkDaprParent, SdkDaprChildDouble, SdkDaprChildFail, SdkDaprCounter, SdkDaprCarryOver, SdkDaprHello, FanOutFanInWorkflow} {
		if err := w.RegisterWorkflow(wf); err != nil {
			t.Fatalf("RegisterWorkflow: %v", err)
		}
	}
	for _, a := range []workflow.Activity{SdkDaprAppendDigit, SdkDaprDouble, GetWorkBatch, ProcessWorkItem} {
		if err := w.RegisterActivity(a); err != nil {
			t.Fatalf("RegisterActivity: %v", err)
		}
	}
	if err := w.Start(); err != nil {
		t.Fatalf("WorkflowWorker.Start (Hello, GetWorkItems): %v", err)
	}
	t.Cleanup(func() { _ = w.Shutdown() }) // closes the worker's Dapr client too
	cc := daprClient()
	t.Cleanup(cc.Close)
	c, err := workflow.NewClient(workflow.WithDaprClient(cc))
	if err != nil {
		t.Fatalf("workflow.NewClient: %v", err)
	}
	return &daprEnv{srv: srv, c: c, raw: dial(t, srv.GRPCAddr)}
}

func describeDapr(md *workflow.Metadata) string {
	return fmt.Sprintf("%s %s output=%q", md.InstanceID, md.RuntimeStatus, md.SerializedOutput)
}

func (e *daprEnv) start(t *testing.T, name string, opts ...api.NewOrchestrationOptions) string {
	t.Helper()
	id, err := e.c.ScheduleNewWorkflow(waitCtx(t), name, opts...)
	if err != nil {
		t.Fatalf("ScheduleNewWorkflow(%s): %v", name, err)
	}
	return id
}

func (e *daprEnv) fetch(t *testing.T, id string, opts ...api.FetchOrchestrationMetadataOptions) (*workflow.Metadata, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return e.c.FetchWorkflowMetadata(ctx, id, opts...)
}

func (e *daprEnv) status(t *testing.T, id string) string {
	md, err := e.fetch(t, id)
	if err != nil {
		return "FetchWorkflowMetadata: " + err.Error()
	}
	return describeDapr(md)
}

func (e *daprEnv) wait(t *testing.T, id string, opts ...api.FetchOrchestrationMetadataOptions) *workflow.Metadata {
	t.Helper()
	md, err := e.c.WaitForWorkflowCompletion(waitCtx(t), id, opts...)
	if err != nil {
		t.Fatalf("WaitForWorkflowCompletion(%s): %v; the instance now: %s", id, err, e.status(t, id))
	}
	return md
}

func (e *daprEnv) waitStatus(t *testing.T, id string, want workflow.Status) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%s in %s", id, want), func() (bool, string) {
		md, err := e.fetch(t, id)
		if err != nil {
			return false, err.Error()
		}
		return md.RuntimeStatus == want, describeDapr(md)
	})
}

func (e *daprEnv) raise(t *testing.T, id, name string, payload any) {
	t.Helper()
	if err := e.c.RaiseEvent(waitCtx(t), id, name, workflow.WithEventPayload(payload)); err != nil {
		t.Fatalf("RaiseEvent(%s, %s): %v", id, name, err)
	}
}

func wantDapr(t *testing.T, md *workflow.Metadata, status workflow.Status, want any) {
	t.Helper()
	if md.RuntimeStatus != status {
		t.Fatalf("%s: status %s, want %s", describeDapr(md), md.RuntimeStatus, status)
	}
	if status == workflow.StatusCompleted {
		wantJSON(t, md.InstanceID+" output", md.SerializedOutput, want)
	}
}

// wantFailure checks that the workflow FAILED with substr in its failure
// message (read with a raw GetInstance: the SDK's Metadata never has it).
func (e *daprEnv) wantFailure(t *testing.T, md *workflow.Metadata, substr string) {
	t.Helper()
	if md.RuntimeStatus != workflow.StatusFailed {
		t.Fatalf("%s: want FAILED", describeDapr(md))
	}
	typ, msg := rawFailure(t, e.raw, md.InstanceID)
	if !strings.Contains(msg, substr) {
		t.Fatalf("%s: failureDetails %s: %q, want a message containing %q", md.InstanceID, typ, msg, substr)
	}
}

// --- tests -------------------------------------------------------------------

func TestDaprChain(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	id := e.start(t, "SdkDaprChain", workflow.WithInstanceID("dapr-chain-1"), workflow.WithInput(1))
	if id != "dapr-chain-1" {
		t.Errorf("ScheduleNewWorkflow returned id %q, want dapr-chain-1", id)
	}
	wantDapr(t, e.wait(t, id), workflow.StatusCompleted, 123456)
}

func TestDaprFanOut(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	id := e.start(t, "SdkDaprFanOut", workflow.WithInput(50))
	wantDapr(t, e.wait(t, id), workflow.StatusCompleted, 2*(50*51/2))
}

// TestDaprAppNamesBelongToTheApp: a workflow and activities named like weft
// serve's samples run the app's code (weft serve hosts the samples only with
// --samples).
func TestDaprAppNamesBelongToTheApp(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	id := e.start(t, "FanOutFanInWorkflow", workflow.WithInput(10))
	wantDapr(t, e.wait(t, id), workflow.StatusCompleted, 2*(10*11/2))
}

func TestDaprTimer(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	begin := time.Now()
	id := e.start(t, "SdkDaprTimer", workflow.WithInstanceID("dapr-timer-1"), workflow.WithInput(1000))
	md := e.wait(t, id)
	took := time.Since(begin)
	if md.RuntimeStatus != workflow.StatusCompleted {
		t.Fatalf("%s, want COMPLETED", describeDapr(md))
	}
	if took < time.Second {
		t.Errorf("a 1s durable timer completed after %s", took)
	}
	var out timerOutput
	wantJSONInto(t, md.SerializedOutput, &out)
	if out.ElapsedMs < 1000 {
		t.Errorf("workflow time across a 1s timer: %d ms, want ≥ 1000", out.ElapsedMs)
	}
}

func TestDaprExternalEvents(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	ten := []string{"e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9"}
	for _, tc := range []struct {
		name      string
		in        eventsInput
		raise     []string
		want      eventsOutput
		minWaited time.Duration
	}{
		{name: "buffered before the wait", in: eventsInput{Name: "Approval", Count: 1, DelayMs: 500},
			raise: []string{"yes"}, want: eventsOutput{Got: []string{"yes"}}},
		{name: "ten of one name in order", in: eventsInput{Name: "Item", Count: 10},
			raise: ten, want: eventsOutput{Got: ten}},
		{name: "wait times out", in: eventsInput{Name: "Never", Count: 1, TimeoutMs: 1000},
			want: eventsOutput{Got: []string{}, TimedOut: true}, minWaited: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			begin := time.Now()
			id := e.start(t, "SdkDaprEvents", workflow.WithInput(tc.in))
			for _, p := range tc.raise {
				e.raise(t, id, tc.in.Name, p)
			}
			wantDapr(t, e.wait(t, id), workflow.StatusCompleted, tc.want)
			if took := time.Since(begin); took < tc.minWaited {
				t.Errorf("finished after %s, want ≥ %s", took, tc.minWaited)
			}
		})
	}
}

func TestDaprSuspendResume(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	ctx := waitCtx(t)
	id := e.start(t, "SdkDaprEcho", workflow.WithInstanceID("dapr-suspend-1"), workflow.WithInput("x"))
	if _, err := e.c.WaitForWorkflowStart(ctx, id); err != nil {
		t.Fatalf("WaitForWorkflowStart: %v", err)
	}
	if err := e.c.SuspendWorkflow(ctx, id, "test suspends"); err != nil {
		t.Fatalf("SuspendWorkflow: %v", err)
	}
	e.waitStatus(t, id, workflow.StatusSuspended)
	e.raise(t, id, "go", "raised while suspended")

	short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	md, err := e.c.WaitForWorkflowCompletion(short, id)
	cancel()
	if err == nil {
		t.Fatalf("a suspended workflow finished: %s", describeDapr(md))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForWorkflowCompletion on a suspended workflow: %v, want a deadline error", err)
	}
	if md, err := e.fetch(t, id); err != nil || md.RuntimeStatus != workflow.StatusSuspended {
		t.Fatalf("after an event was raised while suspended: %s, want SUSPENDED", e.status(t, id))
	}
	if err := e.c.ResumeWorkflow(ctx, id, "test resumes"); err != nil {
		t.Fatalf("ResumeWorkflow: %v", err)
	}
	wantDapr(t, e.wait(t, id), workflow.StatusCompleted, "x/raised while suspended")
}

func TestDaprTerminate(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	for _, recursive := range []bool{true, false} {
		t.Run(fmt.Sprintf("recursive=%v", recursive), func(t *testing.T) {
			t.Parallel()
			parent := fmt.Sprintf("dapr-terminate-%v", recursive)
			child := parent + "-child"
			e.start(t, "SdkDaprParent", workflow.WithInstanceID(parent),
				workflow.WithInput(parentInput{Child: "SdkDaprEcho", ChildID: child, ChildInput: "child"}))
			e.waitStatus(t, child, workflow.StatusRunning)

			// TerminateWorkflow is recursive unless told otherwise (durabletask's option).
			opts := []api.TerminateOptions{workflow.WithOutput("stopped by the test")}
			if !recursive {
				opts = append(opts, api.WithRecursiveTerminate(false))
			}
			if err := e.c.TerminateWorkflow(waitCtx(t), parent, opts...); err != nil {
				t.Fatalf("TerminateWorkflow: %v", err)
			}
			wantDapr(t, e.wait(t, parent), workflow.StatusTerminated, nil)
			if recursive {
				wantDapr(t, e.wait(t, child), workflow.StatusTerminated, nil)
				return
			}
			if md, err := e.fetch(t, child); err != nil || md.RuntimeStatus != workflow.StatusRunning {
				t.Fatalf("child after a non-recursive terminate: %s, want RUNNING", e.status(t, child))
			}
			e.raise(t, child, "go", "alive")
			wantDapr(t, e.wait(t, child), workflow.StatusCompleted, "child/alive")
		})
	}
}

func TestDaprPurge(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	ctx := waitCtx(t)
	id := e.start(t, "SdkDaprEcho", workflow.WithInstanceID("dapr-purge-1"), workflow.WithInput("p"))
	e.waitStatus(t, id, workflow.StatusRunning)
	if err := e.c.PurgeWorkflow(ctx, id); err == nil {
		t.Fatalf("purging a running workflow succeeded, want an error; the instance now: %s", e.status(t, id))
	}
	if md, err := e.fetch(t, id); err != nil || md.RuntimeStatus != workflow.StatusRunning {
		t.Fatalf("after a refused purge: %s, want RUNNING", e.status(t, id))
	}
	e.raise(t, id, "go", "done")
	wantDapr(t, e.wait(t, id), workflow.StatusCompleted, "p/done")
	if err := e.c.PurgeWorkflow(ctx, id); err != nil {
		t.Fatalf("purging a completed workflow: %v", err)
	}
	if _, err := e.fetch(t, id); !errors.Is(err, api.ErrInstanceNotFound) {
		t.Fatalf("FetchWorkflowMetadata after purge: %v, want api.ErrInstanceNotFound", err)
	}
	if err := e.c.PurgeWorkflow(ctx, id); !isNotFound(err, api.ErrInstanceNotFound) {
		t.Fatalf("purging it again: %v, want not found", err)
	}
}

func TestDaprChildWorkflows(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	for _, tc := range []struct {
		name        string
		id          string
		in          parentInput
		wantOutput  any
		wantFailure string
		childStatus workflow.Status
	}{
		{name: "completed, id chosen by the server", id: "dapr-child-auto",
			in: parentInput{Child: "SdkDaprChildDouble", ChildInput: 21}, wantOutput: 42},
		{name: "completed", id: "dapr-child-ok",
			in:         parentInput{Child: "SdkDaprChildDouble", ChildID: "dapr-child-ok-child", ChildInput: 21},
			wantOutput: 42, childStatus: workflow.StatusCompleted},
		{name: "failed", id: "dapr-child-fail",
			in:          parentInput{Child: "SdkDaprChildFail", ChildID: "dapr-child-fail-child", ChildInput: "child boom"},
			wantFailure: "child boom", childStatus: workflow.StatusFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e.start(t, "SdkDaprParent", workflow.WithInstanceID(tc.id), workflow.WithInput(tc.in))
			md := e.wait(t, tc.id)
			if tc.wantFailure != "" {
				e.wantFailure(t, md, tc.wantFailure)
			} else {
				wantDapr(t, md, workflow.StatusCompleted, tc.wantOutput)
			}
			if tc.in.ChildID == "" {
				return
			}
			child := e.wait(t, tc.in.ChildID)
			if child.RuntimeStatus != tc.childStatus || child.Name != tc.in.Child {
				t.Errorf("child: %s name %q, want %s %s", describeDapr(child), child.Name, tc.childStatus, tc.in.Child)
			}
		})
	}
}

func TestDaprContinueAsNew(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	t.Run("counter", func(t *testing.T) {
		t.Parallel()
		id := e.start(t, "SdkDaprCounter", workflow.WithInstanceID("dapr-counter-1"), workflow.WithInput(0))
		wantDapr(t, e.wait(t, id), workflow.StatusCompleted, 5)
	})
	t.Run("unprocessed events carried over", func(t *testing.T) {
		t.Parallel()
		id := e.start(t, "SdkDaprCarryOver", workflow.WithInstanceID("dapr-carry-1"), workflow.WithInput(carryState{}))
		ticks := []string{"t0", "t1", "t2", "t3", "t4"}
		for _, p := range ticks {
			e.raise(t, id, "tick", p)
		}
		wantDapr(t, e.wait(t, id), workflow.StatusCompleted, ticks)
	})
}

func TestDaprScheduledStart(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	startAt := time.Now().Add(2 * time.Second)
	id := e.start(t, "SdkDaprHello", workflow.WithInstanceID("dapr-scheduled-1"), workflow.WithInput("later"), workflow.WithStartTime(startAt))
	md, err := e.fetch(t, id)
	if err != nil {
		t.Fatalf("FetchWorkflowMetadata: %v", err)
	}
	if md.RuntimeStatus != workflow.StatusPending {
		t.Fatalf("before its start time: %s, want PENDING", describeDapr(md))
	}
	wantDapr(t, e.wait(t, id), workflow.StatusCompleted, "hello later")
	if now := time.Now(); now.Before(startAt) {
		t.Errorf("completed %s before its start time", startAt.Sub(now))
	}
}

func TestDaprWaitHonoursDeadline(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	id := e.start(t, "SdkDaprHello", workflow.WithInstanceID("dapr-far-future"), workflow.WithInput("never"),
		workflow.WithStartTime(time.Now().Add(time.Hour)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	begin := time.Now()
	md, err := e.c.WaitForWorkflowStart(ctx, id)
	took := time.Since(begin)
	if err == nil {
		t.Fatalf("WaitForWorkflowStart on a workflow starting in an hour returned %s, want a deadline error", describeDapr(md))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitForWorkflowStart: %v, want context.DeadlineExceeded", err)
	}
	if took > 5*time.Second {
		t.Errorf("WaitForWorkflowStart with a 1s deadline returned after %s", took)
	}
}

func TestDaprGetInstance(t *testing.T) {
	t.Parallel()
	e := newDapr(t)
	id := e.start(t, "SdkDaprChain", workflow.WithInstanceID("dapr-meta-1"), workflow.WithInput(1))
	e.wait(t, id)
	for _, tc := range []struct {
		name          string
		opts          []api.FetchOrchestrationMetadataOptions
		input, output string
	}{
		{"with payloads", nil, "1", "123456"},
		{"without payloads", []api.FetchOrchestrationMetadataOptions{workflow.WithFetchPayloads(false)}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, err := e.fetch(t, id, tc.opts...)
			if err != nil {
				t.Fatalf("FetchWorkflowMetadata: %v", err)
			}
			if md.InstanceID != id || md.Name != "SdkDaprChain" || md.RuntimeStatus != workflow.StatusCompleted {
				t.Errorf("id %q name %q status %s, want %q SdkDaprChain COMPLETED", md.InstanceID, md.Name, md.RuntimeStatus, id)
			}
			if md.SerializedInput != tc.input || md.SerializedOutput != tc.output {
				t.Errorf("input %q output %q, want %q %q", md.SerializedInput, md.SerializedOutput, tc.input, tc.output)
			}
			if md.CreatedAt.IsZero() || md.LastUpdatedAt.Before(md.CreatedAt) {
				t.Errorf("createdAt %s lastUpdatedAt %s, want both set, in order", md.CreatedAt, md.LastUpdatedAt)
			}
		})
	}
	if _, err := e.fetch(t, "dapr-no-such-instance"); !errors.Is(err, api.ErrInstanceNotFound) {
		t.Errorf("FetchWorkflowMetadata of an unknown instance: %v, want api.ErrInstanceNotFound", err)
	}
}
