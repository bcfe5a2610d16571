package sdk

// The durabletask-go client and worker (v0.6.0) against weft: the worker runs in
// the test process, connected over GetWorkItems, and every workflow and activity
// here has a name weft does not host itself, so weft hands all of them to it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microsoft/durabletask-go/api"
	"github.com/microsoft/durabletask-go/client"
	"github.com/microsoft/durabletask-go/task"
	"google.golang.org/grpc"
)

// --- workflows and activities ------------------------------------------------

type digitStep struct{ V, D int }

// eventsInput drives SdkEvents: wait Count times for events named Name.
type eventsInput struct {
	Name      string
	Count     int
	TimeoutMs int // per wait; 0 waits forever
	DelayMs   int // a durable timer before the first wait
}

type eventsOutput struct {
	Got      []string
	TimedOut bool
}

// parentInput drives SdkParent: call Child (under ChildID if set) with
// ChildInput, retried up to MaxAttempts times if set.
type parentInput struct {
	Child       string
	ChildID     string
	ChildInput  any
	MaxAttempts int
}

type flakyInput struct {
	Key       string
	FailTimes int
}

type carryState struct {
	Gen int
	Got []string
}

type timerOutput struct {
	ElapsedMs int64 // workflow time (OrchestratorStarted timestamps) across the timer
}

// forever is the WaitForSingleEvent timeout that waits without a timer.
const forever = time.Duration(-1)

var dtRegistry = sync.OnceValue(func() *task.TaskRegistry {
	r := task.NewTaskRegistry()
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	for name, o := range map[string]task.Orchestrator{
		"SdkChain":         dtChain,
		"SdkFanOut":        dtFanOut,
		"SdkTimer":         dtTimer,
		"SdkEvents":        dtEvents,
		"SdkEcho":          dtEcho,
		"SdkParent":        dtParent,
		"SdkChildDouble":   dtChildDouble,
		"SdkChildFail":     dtChildFail,
		"SdkChildFlaky":    dtChildFlaky,
		"SdkActivityRetry": dtActivityRetry,
		"SdkCounter":       dtCounter,
		"SdkCarryOver":     dtCarryOver,
		"SdkCustomStatus":  dtCustomStatus,
		"SdkHello":         dtHello,
	} {
		must(r.AddOrchestratorN(name, o))
	}
	for name, a := range map[string]task.Activity{
		"SdkAppendDigit": func(ctx task.ActivityContext) (any, error) {
			var s digitStep
			if err := ctx.GetInput(&s); err != nil {
				return nil, err
			}
			return s.V*10 + s.D, nil
		},
		"SdkDouble": func(ctx task.ActivityContext) (any, error) {
			var n int
			if err := ctx.GetInput(&n); err != nil {
				return nil, err
			}
			return 2 * n, nil
		},
		"SdkFlaky": func(ctx task.ActivityContext) (any, error) {
			var in flakyInput
			if err := ctx.GetInput(&in); err != nil {
				return nil, err
			}
			n := count(in.Key)
			if n <= in.FailTimes {
				return nil, fmt.Errorf("flaky failure %d of %d", n, in.FailTimes)
			}
			return n, nil
		},
		"SdkAlwaysFail": func(ctx task.ActivityContext) (any, error) {
			var key string
			if err := ctx.GetInput(&key); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("always fails (attempt %d)", count(key))
		},
	} {
		must(r.AddActivityN(name, a))
	}
	return r
})

// dtChain appends the digits 2…6 to its input, one activity per digit.
func dtChain(ctx *task.OrchestrationContext) (any, error) {
	var v int
	if err := ctx.GetInput(&v); err != nil {
		return nil, err
	}
	for d := 2; d <= 6; d++ {
		if err := ctx.CallActivity("SdkAppendDigit", task.WithActivityInput(digitStep{v, d})).Await(&v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// dtFanOut doubles 1…n in parallel and sums the results.
func dtFanOut(ctx *task.OrchestrationContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	tasks := make([]task.Task, n)
	for i := range tasks {
		tasks[i] = ctx.CallActivity("SdkDouble", task.WithActivityInput(i+1))
	}
	return awaitSum(tasks)
}

// awaitSum awaits every task, in order, and sums their int results.
func awaitSum(tasks []task.Task) (any, error) {
	sum := 0
	for _, t := range tasks {
		var r int
		if err := t.Await(&r); err != nil {
			return nil, err
		}
		sum += r
	}
	return sum, nil
}

// dtTimer sleeps on a durable timer of its input (ms), then runs an activity so
// that the timer's events are replayed once more.
func dtTimer(ctx *task.OrchestrationContext) (any, error) {
	var ms int
	if err := ctx.GetInput(&ms); err != nil {
		return nil, err
	}
	t0 := ctx.CurrentTimeUtc
	if err := ctx.CreateTimer(time.Duration(ms) * time.Millisecond).Await(nil); err != nil {
		return nil, err
	}
	elapsed := ctx.CurrentTimeUtc.Sub(t0)
	if err := ctx.CallActivity("SdkDouble", task.WithActivityInput(1)).Await(nil); err != nil {
		return nil, err
	}
	return timerOutput{ElapsedMs: elapsed.Milliseconds()}, nil
}

func dtEvents(ctx *task.OrchestrationContext) (any, error) {
	var in eventsInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	if in.DelayMs > 0 {
		if err := ctx.CreateTimer(time.Duration(in.DelayMs) * time.Millisecond).Await(nil); err != nil {
			return nil, err
		}
	}
	timeout := forever
	if in.TimeoutMs > 0 {
		timeout = time.Duration(in.TimeoutMs) * time.Millisecond
	}
	out := eventsOutput{Got: []string{}}
	for range in.Count {
		var s string
		err := ctx.WaitForSingleEvent(in.Name, timeout).Await(&s)
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

// dtEcho waits for the event "go" and returns "<input>/<event payload>".
func dtEcho(ctx *task.OrchestrationContext) (any, error) {
	var in, p string
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	if err := ctx.WaitForSingleEvent("go", forever).Await(&p); err != nil {
		return nil, err
	}
	return in + "/" + p, nil
}

func dtParent(ctx *task.OrchestrationContext) (any, error) {
	var in parentInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	var retry *task.RetryPolicy
	if in.MaxAttempts > 0 {
		retry = &task.RetryPolicy{MaxAttempts: in.MaxAttempts, InitialRetryInterval: 50 * time.Millisecond, BackoffCoefficient: 2}
	}
	var out json.RawMessage
	err := ctx.CallSubOrchestrator(in.Child,
		task.WithSubOrchestratorInput(in.ChildInput),
		task.WithSubOrchestrationInstanceID(in.ChildID), // "" lets the server choose
		task.WithSubOrchestrationRetryPolicy(retry),     // nil: no retries
	).Await(&out)
	if err != nil {
		return nil, fmt.Errorf("child %s: %w", in.Child, err)
	}
	return out, nil
}

func dtChildDouble(ctx *task.OrchestrationContext) (any, error) {
	var n, r int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	if err := ctx.CallActivity("SdkDouble", task.WithActivityInput(n)).Await(&r); err != nil {
		return nil, err
	}
	return r, nil
}

func dtChildFail(ctx *task.OrchestrationContext) (any, error) {
	var msg string
	if err := ctx.GetInput(&msg); err != nil {
		return nil, err
	}
	return nil, errors.New(msg)
}

// dtChildFlaky fails (through its activity) the first <input> times it runs
// under its instance id.
func dtChildFlaky(ctx *task.OrchestrationContext) (any, error) {
	var failTimes, n int
	if err := ctx.GetInput(&failTimes); err != nil {
		return nil, err
	}
	if err := ctx.CallActivity("SdkFlaky", task.WithActivityInput(flakyInput{Key: string(ctx.ID), FailTimes: failTimes})).Await(&n); err != nil {
		return nil, err
	}
	return fmt.Sprintf("succeeded at attempt %d", n), nil
}

func dtActivityRetry(ctx *task.OrchestrationContext) (any, error) {
	err := ctx.CallActivity("SdkAlwaysFail",
		task.WithActivityInput(string(ctx.ID)),
		task.WithActivityRetryPolicy(&task.RetryPolicy{MaxAttempts: 3, InitialRetryInterval: 50 * time.Millisecond, BackoffCoefficient: 2}),
	).Await(nil)
	return nil, err
}

// dtCounter runs one activity per generation and continues as new up to 5.
func dtCounter(ctx *task.OrchestrationContext) (any, error) {
	var n, d int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	if err := ctx.CallActivity("SdkDouble", task.WithActivityInput(n)).Await(&d); err != nil {
		return nil, err
	}
	if d != 2*n {
		return nil, fmt.Errorf("generation %d: SdkDouble(%d) = %d: another generation's result?", n, n, d)
	}
	if n < 5 {
		ctx.ContinueAsNew(n + 1)
		return nil, nil
	}
	return n, nil
}

// dtCarryOver consumes one "tick" per generation, five generations. Generation 0
// first sleeps for a second so that all the ticks the test raises at once are in
// its history: the later generations see them only if they were carried over.
func dtCarryOver(ctx *task.OrchestrationContext) (any, error) {
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
	err := ctx.WaitForSingleEvent("tick", 5*time.Second).Await(&tick)
	if errors.Is(err, task.ErrTaskCanceled) {
		return nil, fmt.Errorf("generation %d: no tick within 5s (got %v): unprocessed events were not carried over", s.Gen, s.Got)
	}
	if err != nil {
		return nil, err
	}
	s.Got = append(s.Got, tick)
	if s.Gen < 4 {
		ctx.ContinueAsNew(carryState{Gen: s.Gen + 1, Got: s.Got}, task.WithKeepUnprocessedEvents())
		return nil, nil
	}
	return s.Got, nil
}

func dtCustomStatus(ctx *task.OrchestrationContext) (any, error) {
	ctx.SetCustomStatus("waiting for go")
	if err := ctx.WaitForSingleEvent("go", forever).Await(nil); err != nil {
		return nil, err
	}
	ctx.SetCustomStatus("done")
	return "ok", nil
}

func dtHello(ctx *task.OrchestrationContext) (any, error) {
	var s string
	if err := ctx.GetInput(&s); err != nil {
		return nil, err
	}
	return "hello " + s, nil
}

// --- the environment ---------------------------------------------------------

// dtEnv is one weft server with a durabletask-go worker and client connected.
type dtEnv struct {
	srv  *server
	c    *client.TaskHubGrpcClient
	conn *grpc.ClientConn // the client's
}

func newDT(t *testing.T) *dtEnv {
	t.Helper()
	srv := startServer(t)
	log := newLogSink(t, "durabletask-go worker")
	worker := client.NewTaskHubGrpcClient(dial(t, srv.GRPCAddr), log)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // stops the listener before the server is killed
	if err := worker.StartWorkItemListener(ctx, dtRegistry()); err != nil {
		t.Fatalf("StartWorkItemListener (Hello, GetWorkItems): %v", err)
	}
	conn := dial(t, srv.GRPCAddr)
	c := client.NewTaskHubGrpcClient(conn, newLogSink(t, "durabletask-go client"))
	return &dtEnv{srv: srv, c: c, conn: conn}
}

func (e *dtEnv) start(t *testing.T, name string, opts ...api.NewOrchestrationOptions) api.InstanceID {
	t.Helper()
	id, err := e.c.ScheduleNewOrchestration(waitCtx(t), name, opts...)
	if err != nil {
		t.Fatalf("ScheduleNewOrchestration(%s): %v", name, err)
	}
	return id
}

func (e *dtEnv) fetch(t *testing.T, id api.InstanceID, opts ...api.FetchOrchestrationMetadataOptions) (*api.OrchestrationMetadata, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return e.c.FetchOrchestrationMetadata(ctx, id, opts...)
}

// status is the instance's status, or what went wrong fetching it.
func (e *dtEnv) status(t *testing.T, id api.InstanceID) string {
	md, err := e.fetch(t, id)
	if err != nil {
		return "GetInstance: " + err.Error()
	}
	return describeDT(md)
}

func describeDT(md *api.OrchestrationMetadata) string {
	return fmt.Sprintf("%s %s output=%q custom=%q", md.InstanceID, md.RuntimeStatus, md.SerializedOutput, md.SerializedCustomStatus)
}

// wait waits for the instance to finish (WaitForInstanceCompletion).
func (e *dtEnv) wait(t *testing.T, id api.InstanceID, opts ...api.FetchOrchestrationMetadataOptions) *api.OrchestrationMetadata {
	t.Helper()
	md, err := e.c.WaitForOrchestrationCompletion(waitCtx(t), id, opts...)
	if err != nil {
		t.Fatalf("WaitForOrchestrationCompletion(%s): %v; the instance now: %s", id, err, e.status(t, id))
	}
	return md
}

// waitStatus polls GetInstance until the instance has status want.
func (e *dtEnv) waitStatus(t *testing.T, id api.InstanceID, want api.OrchestrationStatus) *api.OrchestrationMetadata {
	t.Helper()
	var md *api.OrchestrationMetadata
	eventually(t, 10*time.Second, fmt.Sprintf("%s in %s", id, want), func() (bool, string) {
		var err error
		if md, err = e.fetch(t, id); err != nil {
			return false, err.Error()
		}
		return md.RuntimeStatus == want, describeDT(md)
	})
	return md
}

func (e *dtEnv) raise(t *testing.T, id api.InstanceID, name string, payload any) {
	t.Helper()
	if err := e.c.RaiseEvent(waitCtx(t), id, name, api.WithEventPayload(payload)); err != nil {
		t.Fatalf("RaiseEvent(%s, %s): %v", id, name, err)
	}
}

// wantDone checks a finished instance's status and, for COMPLETED, its output
// (compared as JSON with want).
func wantDone(t *testing.T, md *api.OrchestrationMetadata, status api.OrchestrationStatus, want any) {
	t.Helper()
	if md.RuntimeStatus != status {
		t.Fatalf("%s: status %s, want %s", describeDT(md), md.RuntimeStatus, status)
	}
	if status == api.RUNTIME_STATUS_COMPLETED {
		wantJSON(t, string(md.InstanceID)+" output", md.SerializedOutput, want)
	}
}

// wantJSON checks that the JSON text got holds the same value as want.
func wantJSON(t *testing.T, what, got string, want any) {
	t.Helper()
	wb, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: %q is not JSON: %v (want %s)", what, got, err, wb)
	}
	_ = json.Unmarshal(wb, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s = %s, want %s", what, got, wb)
	}
}

// wantJSONInto decodes the JSON text s into v.
func wantJSONInto(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%q is not a %T: %v", s, v, err)
	}
}

// wantFailure checks that the instance FAILED with substr in its failure
// message (read with a raw GetInstance: the client drops failure details).
func (e *dtEnv) wantFailure(t *testing.T, md *api.OrchestrationMetadata, substr string) {
	t.Helper()
	if md.RuntimeStatus != api.RUNTIME_STATUS_FAILED {
		t.Fatalf("%s: want FAILED", describeDT(md))
	}
	typ, msg := rawFailure(t, e.conn, string(md.InstanceID))
	if !strings.Contains(msg, substr) {
		t.Fatalf("%s: failureDetails %s: %q, want a message containing %q", md.InstanceID, typ, msg, substr)
	}
}

// --- tests -------------------------------------------------------------------

func TestDurableTaskChain(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	id := e.start(t, "SdkChain", api.WithInstanceID("chain-1"), api.WithInput(1))
	if id != "chain-1" {
		t.Errorf("ScheduleNewOrchestration returned id %q, want chain-1", id)
	}
	wantDone(t, e.wait(t, id), api.RUNTIME_STATUS_COMPLETED, 123456)
}

func TestDurableTaskFanOut(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	id := e.start(t, "SdkFanOut", api.WithInput(50)) // the client picks a UUID
	wantDone(t, e.wait(t, id), api.RUNTIME_STATUS_COMPLETED, 2*(50*51/2))
}

func TestDurableTaskTimer(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	begin := time.Now()
	id := e.start(t, "SdkTimer", api.WithInstanceID("timer-1"), api.WithInput(1000))
	md := e.wait(t, id)
	took := time.Since(begin)
	if md.RuntimeStatus != api.RUNTIME_STATUS_COMPLETED {
		t.Fatalf("%s, want COMPLETED", describeDT(md))
	}
	var out timerOutput
	wantJSONInto(t, md.SerializedOutput, &out)
	if took < time.Second {
		t.Errorf("a 1s durable timer completed after %s (the worker computes fireAt from the OrchestratorStarted timestamp: is it missing or stale?)", took)
	}
	if out.ElapsedMs < 1000 {
		t.Errorf("workflow time across a 1s timer: %d ms, want ≥ 1000 (OrchestratorStarted timestamps must be the time of each execution)", out.ElapsedMs)
	}
}

func TestDurableTaskExternalEvents(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	ten := []string{"e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9"}
	for _, tc := range []struct {
		name      string
		in        eventsInput
		raiseAs   string // the name the client raises under ("" = in.Name)
		raise     []string
		want      eventsOutput
		minWaited time.Duration
	}{
		{name: "buffered before the wait", in: eventsInput{Name: "Approval", Count: 1, DelayMs: 500},
			raise: []string{"yes"}, want: eventsOutput{Got: []string{"yes"}}},
		{name: "ten of one name in order", in: eventsInput{Name: "Item", Count: 10},
			raise: ten, want: eventsOutput{Got: ten}},
		{name: "names are case-insensitive", in: eventsInput{Name: "Approval", Count: 1},
			raiseAs: "APPROVAL", raise: []string{"upper"}, want: eventsOutput{Got: []string{"upper"}}},
		{name: "wait times out", in: eventsInput{Name: "Never", Count: 1, TimeoutMs: 1000},
			want: eventsOutput{Got: []string{}, TimedOut: true}, minWaited: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			begin := time.Now()
			id := e.start(t, "SdkEvents", api.WithInput(tc.in))
			name := tc.in.Name
			if tc.raiseAs != "" {
				name = tc.raiseAs
			}
			for _, p := range tc.raise { // right after the start: the first may come before the workflow ran at all
				e.raise(t, id, name, p)
			}
			md := e.wait(t, id)
			wantDone(t, md, api.RUNTIME_STATUS_COMPLETED, tc.want)
			if took := time.Since(begin); took < tc.minWaited {
				t.Errorf("finished after %s, want ≥ %s", took, tc.minWaited)
			}
		})
	}
}

func TestDurableTaskSuspendResume(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	ctx := waitCtx(t)
	id := e.start(t, "SdkEcho", api.WithInstanceID("suspend-1"), api.WithInput("x"))
	if _, err := e.c.WaitForOrchestrationStart(ctx, id); err != nil {
		t.Fatalf("WaitForOrchestrationStart: %v", err)
	}
	if err := e.c.SuspendOrchestration(ctx, id, "test suspends"); err != nil {
		t.Fatalf("SuspendOrchestration: %v", err)
	}
	e.waitStatus(t, id, api.RUNTIME_STATUS_SUSPENDED)
	e.raise(t, id, "go", "raised while suspended")

	// Suspended, the event must wait: the instance may not finish in the meantime.
	short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	md, err := e.c.WaitForOrchestrationCompletion(short, id)
	cancel()
	if err == nil {
		t.Fatalf("a suspended instance finished: %s", describeDT(md))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForOrchestrationCompletion on a suspended instance: %v, want a deadline error", err)
	}
	if md, err := e.fetch(t, id); err != nil || md.RuntimeStatus != api.RUNTIME_STATUS_SUSPENDED {
		t.Fatalf("after an event was raised while suspended: %v %v, want SUSPENDED", err, e.status(t, id))
	}

	if err := e.c.ResumeOrchestration(ctx, id, "test resumes"); err != nil {
		t.Fatalf("ResumeOrchestration: %v", err)
	}
	wantDone(t, e.wait(t, id), api.RUNTIME_STATUS_COMPLETED, "x/raised while suspended")
}

func TestDurableTaskTerminate(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	for _, recursive := range []bool{true, false} {
		t.Run(fmt.Sprintf("recursive=%v", recursive), func(t *testing.T) {
			t.Parallel()
			parent := api.InstanceID(fmt.Sprintf("terminate-%v", recursive))
			child := parent + "-child"
			e.start(t, "SdkParent", api.WithInstanceID(parent),
				api.WithInput(parentInput{Child: "SdkEcho", ChildID: string(child), ChildInput: "child"}))
			e.waitStatus(t, child, api.RUNTIME_STATUS_RUNNING)

			if err := e.c.TerminateOrchestration(waitCtx(t), parent,
				api.WithRecursiveTerminate(recursive), api.WithOutput("stopped by the test")); err != nil {
				t.Fatalf("TerminateOrchestration: %v", err)
			}
			md := e.wait(t, parent)
			if md.RuntimeStatus != api.RUNTIME_STATUS_TERMINATED {
				t.Fatalf("parent: %s, want TERMINATED", describeDT(md))
			}
			if md.SerializedOutput != `"stopped by the test"` {
				t.Errorf("parent output %q, want the terminate output %q", md.SerializedOutput, `"stopped by the test"`)
			}

			if recursive {
				if md := e.wait(t, child); md.RuntimeStatus != api.RUNTIME_STATUS_TERMINATED {
					t.Fatalf("child after a recursive terminate: %s, want TERMINATED", describeDT(md))
				}
				return
			}
			md, err := e.fetch(t, child)
			if err != nil || md.RuntimeStatus != api.RUNTIME_STATUS_RUNNING {
				t.Fatalf("child after a non-recursive terminate: %v %s, want RUNNING", err, e.status(t, child))
			}
			// Still alive, and its completion is not lost on its terminated parent.
			e.raise(t, child, "go", "alive")
			wantDone(t, e.wait(t, child), api.RUNTIME_STATUS_COMPLETED, "child/alive")
			if md := e.wait(t, parent); md.RuntimeStatus != api.RUNTIME_STATUS_TERMINATED {
				t.Fatalf("parent after its child completed: %s, want still TERMINATED", describeDT(md))
			}
		})
	}
}

func TestDurableTaskPurge(t *testing.T) {
	t.Parallel()
	e := newDT(t)

	t.Run("running refused, finished purged once", func(t *testing.T) {
		t.Parallel()
		ctx := waitCtx(t)
		id := e.start(t, "SdkEcho", api.WithInstanceID("purge-1"), api.WithInput("p"))
		if _, err := e.c.WaitForOrchestrationStart(ctx, id); err != nil {
			t.Fatalf("WaitForOrchestrationStart: %v", err)
		}
		if err := e.c.PurgeOrchestrationState(ctx, id); err == nil {
			t.Fatalf("purging a running instance succeeded, want an error; the instance now: %s", e.status(t, id))
		} else {
			t.Logf("purging a running instance: %v", err)
		}
		if md, err := e.fetch(t, id); err != nil || md.RuntimeStatus != api.RUNTIME_STATUS_RUNNING {
			t.Fatalf("after a refused purge: %s, want RUNNING", e.status(t, id))
		}

		e.raise(t, id, "go", "done")
		wantDone(t, e.wait(t, id), api.RUNTIME_STATUS_COMPLETED, "p/done")
		if err := e.c.PurgeOrchestrationState(ctx, id); err != nil {
			t.Fatalf("purging a completed instance: %v", err)
		}
		if md, err := e.fetch(t, id); !errors.Is(err, api.ErrInstanceNotFound) {
			t.Fatalf("GetInstance after purge: %v %v, want api.ErrInstanceNotFound", md, err)
		}
		if err := e.c.PurgeOrchestrationState(ctx, id); !isNotFound(err, api.ErrInstanceNotFound) {
			t.Fatalf("purging it again: %v, want not found (api.ErrInstanceNotFound or gRPC NotFound)", err)
		}
	})

	for _, recursive := range []bool{true, false} {
		t.Run(fmt.Sprintf("recursive=%v", recursive), func(t *testing.T) {
			t.Parallel()
			parent := api.InstanceID(fmt.Sprintf("purge-parent-%v", recursive))
			child := parent + "-child"
			e.start(t, "SdkParent", api.WithInstanceID(parent),
				api.WithInput(parentInput{Child: "SdkChildDouble", ChildID: string(child), ChildInput: 4}))
			wantDone(t, e.wait(t, parent), api.RUNTIME_STATUS_COMPLETED, 8)
			if err := e.c.PurgeOrchestrationState(waitCtx(t), parent, api.WithRecursivePurge(recursive)); err != nil {
				t.Fatalf("PurgeOrchestrationState(recursive=%v): %v", recursive, err)
			}
			if _, err := e.fetch(t, parent); !errors.Is(err, api.ErrInstanceNotFound) {
				t.Fatalf("parent after purge: %v, want api.ErrInstanceNotFound", err)
			}
			md, err := e.fetch(t, child)
			switch {
			case recursive && !errors.Is(err, api.ErrInstanceNotFound):
				t.Fatalf("child after a recursive purge: %v %v, want api.ErrInstanceNotFound", err, e.status(t, child))
			case !recursive && (err != nil || md.RuntimeStatus != api.RUNTIME_STATUS_COMPLETED):
				t.Fatalf("child after a non-recursive purge: %v, want it kept, COMPLETED", e.status(t, child))
			}
		})
	}
}

func TestDurableTaskChildWorkflows(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	for _, tc := range []struct {
		name        string
		id          api.InstanceID
		in          parentInput
		wantOutput  any    // parent COMPLETED with this output, or
		wantFailure string // parent FAILED with this in its message
		childStatus api.OrchestrationStatus
		attempts    int // executions of the child's activity, if checked
	}{
		{name: "completed, id chosen by the server", id: "child-auto",
			in: parentInput{Child: "SdkChildDouble", ChildInput: 21}, wantOutput: 42},
		{name: "completed", id: "child-ok",
			in:         parentInput{Child: "SdkChildDouble", ChildID: "child-ok-child", ChildInput: 21},
			wantOutput: 42, childStatus: api.RUNTIME_STATUS_COMPLETED},
		{name: "failed", id: "child-fail",
			in:          parentInput{Child: "SdkChildFail", ChildID: "child-fail-child", ChildInput: "child boom"},
			wantFailure: "child boom", childStatus: api.RUNTIME_STATUS_FAILED},
		{name: "retried under the same id", id: "child-retry",
			in:         parentInput{Child: "SdkChildFlaky", ChildID: unique("child-retry-child"), ChildInput: 2, MaxAttempts: 3},
			wantOutput: "succeeded at attempt 3", childStatus: api.RUNTIME_STATUS_COMPLETED, attempts: 3},
		{name: "retries exhausted", id: "child-exhausted",
			in:          parentInput{Child: "SdkChildFlaky", ChildID: unique("child-exhausted-child"), ChildInput: 5, MaxAttempts: 3},
			wantFailure: "flaky failure 3 of 5", childStatus: api.RUNTIME_STATUS_FAILED, attempts: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e.start(t, "SdkParent", api.WithInstanceID(tc.id), api.WithInput(tc.in))
			md := e.wait(t, tc.id)
			if tc.wantFailure != "" {
				e.wantFailure(t, md, tc.wantFailure)
			} else {
				wantDone(t, md, api.RUNTIME_STATUS_COMPLETED, tc.wantOutput)
			}
			if tc.in.ChildID == "" {
				return
			}
			child := e.wait(t, api.InstanceID(tc.in.ChildID))
			if child.RuntimeStatus != tc.childStatus {
				t.Errorf("child: %s, want %s", describeDT(child), tc.childStatus)
			}
			if child.Name != tc.in.Child {
				t.Errorf("child name %q, want %q", child.Name, tc.in.Child)
			}
			if tc.attempts > 0 {
				if n := counted(tc.in.ChildID); n != tc.attempts {
					t.Errorf("the child ran %d times under %s, want %d", n, tc.in.ChildID, tc.attempts)
				}
			}
		})
	}
}

func TestDurableTaskActivityRetriesExhausted(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	id := e.start(t, "SdkActivityRetry", api.WithInstanceID(api.InstanceID(unique("activity-retry"))))
	md := e.wait(t, id)
	e.wantFailure(t, md, "always fails (attempt 3)")
	if n := counted(string(id)); n != 3 {
		t.Errorf("the activity ran %d times, want 3 (MaxAttempts)", n)
	}
}

func TestDurableTaskContinueAsNew(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	t.Run("counter", func(t *testing.T) {
		t.Parallel()
		id := e.start(t, "SdkCounter", api.WithInstanceID("counter-1"), api.WithInput(0))
		wantDone(t, e.wait(t, id), api.RUNTIME_STATUS_COMPLETED, 5)
	})
	t.Run("unprocessed events carried over", func(t *testing.T) {
		t.Parallel()
		id := e.start(t, "SdkCarryOver", api.WithInstanceID("carry-1"), api.WithInput(carryState{}))
		ticks := []string{"t0", "t1", "t2", "t3", "t4"}
		for _, p := range ticks {
			e.raise(t, id, "tick", p)
		}
		wantDone(t, e.wait(t, id), api.RUNTIME_STATUS_COMPLETED, ticks)
	})
}

func TestDurableTaskCustomStatus(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	id := e.start(t, "SdkCustomStatus", api.WithInstanceID("custom-1"))
	eventually(t, 10*time.Second, "custom status \"waiting for go\"", func() (bool, string) {
		md, err := e.fetch(t, id)
		if err != nil {
			return false, err.Error()
		}
		return md.SerializedCustomStatus == "waiting for go", describeDT(md)
	})
	if md, _ := e.fetch(t, id, api.WithFetchPayloads(false)); md != nil && md.SerializedCustomStatus != "" {
		t.Errorf("GetInstance without payloads returned custom status %q", md.SerializedCustomStatus)
	}
	e.raise(t, id, "go", nil)
	md := e.wait(t, id)
	wantDone(t, md, api.RUNTIME_STATUS_COMPLETED, "ok")
	if md.SerializedCustomStatus != "done" {
		t.Errorf("custom status %q at the end, want \"done\"", md.SerializedCustomStatus)
	}
}

func TestDurableTaskIDReusePolicy(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	policy := func(action api.CreateOrchestrationAction, statuses ...api.OrchestrationStatus) *api.OrchestrationIdReusePolicy {
		return &api.OrchestrationIdReusePolicy{Action: action, OperationStatus: statuses}
	}
	running, completed := api.RUNTIME_STATUS_RUNNING, api.RUNTIME_STATUS_COMPLETED
	for _, tc := range []struct {
		name     string
		existing api.OrchestrationStatus // of the first instance when the second is scheduled
		policy   *api.OrchestrationIdReusePolicy
		wantErr  bool
		want     string // the final output: "first/go" kept, "second/go" replaced
	}{
		{"no policy, running", running, nil, true, "first/go"},
		{"ERROR, running", running, policy(api.REUSE_ID_ACTION_ERROR, running), true, "first/go"},
		{"IGNORE, running", running, policy(api.REUSE_ID_ACTION_IGNORE, running), false, "first/go"},
		{"TERMINATE, running", running, policy(api.REUSE_ID_ACTION_TERMINATE, running), false, "second/go"},
		{"TERMINATE for completed only, running", running, policy(api.REUSE_ID_ACTION_TERMINATE, completed), true, "first/go"},
		{"IGNORE, completed", completed, policy(api.REUSE_ID_ACTION_IGNORE, completed), false, "first/go"},
		{"TERMINATE, completed", completed, policy(api.REUSE_ID_ACTION_TERMINATE, completed), false, "second/go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := api.InstanceID("reuse-" + strings.NewReplacer(" ", "-", ",", "").Replace(strings.ToLower(tc.name)))
			e.start(t, "SdkEcho", api.WithInstanceID(id), api.WithInput("first"))
			if tc.existing == completed {
				e.raise(t, id, "go", "go")
				wantDone(t, e.wait(t, id), completed, "first/go")
			} else {
				e.waitStatus(t, id, running)
			}

			opts := []api.NewOrchestrationOptions{api.WithInstanceID(id), api.WithInput("second")}
			if tc.policy != nil {
				opts = append(opts, api.WithOrchestrationIdReusePolicy(tc.policy))
			}
			_, err := e.c.ScheduleNewOrchestration(waitCtx(t), "SdkEcho", opts...)
			if tc.wantErr && err == nil {
				t.Fatalf("scheduling %s again succeeded, want an error; the instance now: %s", id, e.status(t, id))
			}
			if !tc.wantErr && err != nil {
				t.Fatalf("scheduling %s again: %v", id, err)
			}

			md, err := e.fetch(t, id)
			if err != nil {
				t.Fatalf("GetInstance: %v", err)
			}
			if md.RuntimeStatus != completed {
				e.raise(t, id, "go", "go")
				md = e.wait(t, id)
			}
			wantDone(t, md, completed, tc.want)
		})
	}
}

func TestDurableTaskScheduledStart(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	startAt := time.Now().Add(2 * time.Second)
	id := e.start(t, "SdkHello", api.WithInstanceID("scheduled-1"), api.WithInput("later"), api.WithStartTime(startAt))
	md, err := e.fetch(t, id)
	if err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	if md.RuntimeStatus != api.RUNTIME_STATUS_PENDING {
		t.Fatalf("before its start time: %s, want PENDING", describeDT(md))
	}
	md, err = e.c.WaitForOrchestrationStart(waitCtx(t), id)
	if err != nil {
		t.Fatalf("WaitForOrchestrationStart: %v", err)
	}
	if now := time.Now(); now.Before(startAt) {
		t.Errorf("started %s before its start time: %s", startAt.Sub(now), describeDT(md))
	}
	wantDone(t, e.wait(t, id), api.RUNTIME_STATUS_COMPLETED, "hello later")
}

func TestDurableTaskWaitHonoursDeadline(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	id := e.start(t, "SdkHello", api.WithInstanceID("far-future"), api.WithInput("never"),
		api.WithStartTime(time.Now().Add(time.Hour)))
	for name, wait := range map[string]func(context.Context, api.InstanceID, ...api.FetchOrchestrationMetadataOptions) (*api.OrchestrationMetadata, error){
		"WaitForOrchestrationStart":      e.c.WaitForOrchestrationStart,
		"WaitForOrchestrationCompletion": e.c.WaitForOrchestrationCompletion,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		begin := time.Now()
		md, err := wait(ctx, id)
		cancel()
		took := time.Since(begin)
		if err == nil {
			t.Errorf("%s on an instance starting in an hour returned %s, want a deadline error", name, describeDT(md))
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want context.DeadlineExceeded", name, err)
		}
		if took > 5*time.Second {
			t.Errorf("%s with a 1s deadline returned after %s", name, took)
		}
	}
	if md, err := e.fetch(t, id); err != nil || md.RuntimeStatus != api.RUNTIME_STATUS_PENDING {
		t.Errorf("after the waits: %s, want PENDING", e.status(t, id))
	}
}

func TestDurableTaskGetInstance(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	begin := time.Now()
	id := e.start(t, "SdkChain", api.WithInstanceID("meta-1"), api.WithInput(1))
	e.wait(t, id)

	full, err := e.fetch(t, id)
	if err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	bare, err := e.fetch(t, id, api.WithFetchPayloads(false))
	if err != nil {
		t.Fatalf("GetInstance without payloads: %v", err)
	}
	bareWait := e.wait(t, id, api.WithFetchPayloads(false))
	for _, tc := range []struct {
		name        string
		md          *api.OrchestrationMetadata
		input, outp string
	}{
		{"with payloads", full, "1", "123456"},
		{"without payloads", bare, "", ""},
		{"WaitForInstanceCompletion without payloads", bareWait, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := tc.md
			if md.InstanceID != id || md.Name != "SdkChain" || md.RuntimeStatus != api.RUNTIME_STATUS_COMPLETED {
				t.Errorf("id %q name %q status %s, want %q SdkChain COMPLETED", md.InstanceID, md.Name, md.RuntimeStatus, id)
			}
			if md.SerializedInput != tc.input || md.SerializedOutput != tc.outp {
				t.Errorf("input %q output %q, want %q %q", md.SerializedInput, md.SerializedOutput, tc.input, tc.outp)
			}
			if md.CreatedAt.Before(begin.Add(-time.Second)) || md.CreatedAt.After(time.Now()) {
				t.Errorf("createdAt %s, want about %s", md.CreatedAt, begin)
			}
			if md.LastUpdatedAt.Before(md.CreatedAt) || md.LastUpdatedAt.After(time.Now()) {
				t.Errorf("lastUpdatedAt %s, want between createdAt %s and now", md.LastUpdatedAt, md.CreatedAt)
			}
			if md.FailureDetails != nil {
				t.Errorf("failure details on a completed instance: %v", md.FailureDetails)
			}
		})
	}
}

func TestDurableTaskUnknownInstance(t *testing.T) {
	t.Parallel()
	e := newDT(t)
	const id = api.InstanceID("no-such-instance")
	for _, tc := range []struct {
		name string
		call func(context.Context) error
	}{
		{"GetInstance", func(ctx context.Context) error { _, err := e.c.FetchOrchestrationMetadata(ctx, id); return err }},
		{"RaiseEvent", func(ctx context.Context) error { return e.c.RaiseEvent(ctx, id, "go") }},
		{"TerminateInstance", func(ctx context.Context) error { return e.c.TerminateOrchestration(ctx, id) }},
		{"SuspendInstance", func(ctx context.Context) error { return e.c.SuspendOrchestration(ctx, id, "") }},
		{"ResumeInstance", func(ctx context.Context) error { return e.c.ResumeOrchestration(ctx, id, "") }},
		{"PurgeInstances", func(ctx context.Context) error { return e.c.PurgeOrchestrationState(ctx, id) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(waitCtx(t)); !isNotFound(err, api.ErrInstanceNotFound) {
				t.Errorf("%s on an unknown instance: %v, want not found (api.ErrInstanceNotFound or gRPC NotFound)", tc.name, err)
			}
		})
	}
}
