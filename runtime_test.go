package weft_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// protoactor's dead-letter throttle: started by a message to a node or
		// actor that is gone (the cluster tests stop nodes with messages on
		// their way), it ends by itself after its 1 s period.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1"),
		// memberlist's Shutdown does not wait for a probe in flight; the probe
		// ends by itself within its probe interval (200 ms in these tests).
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// app is one runtime with the seed's patterns registered and counters the tests
// read.
type app struct {
	rt       *weft.Runtime
	dir      string
	mu       sync.Mutex
	attempts map[string][]time.Time // activity key → when each attempt started
	ran      atomic.Int64
	release  chan struct{} // Blocker activities wait on it
}

func (a *app) attempt(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts[key] = append(a.attempts[key], time.Now())
	return len(a.attempts[key])
}

func (a *app) attemptTimes(key string) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.attempts[key]...)
}

type chainInput struct {
	Value     int
	FailStep  string // this step fails...
	SucceedOn int    // ...until this attempt (0: always)
}

var fastRetry = &workflow.RetryPolicy{MaxAttempts: 4, FirstRetryInterval: 40 * time.Millisecond, BackoffCoefficient: 2, MaxRetryInterval: time.Second}

// Chain is the seed's chain with retries and compensation.
func Chain(ctx *workflow.Context, in chainInput) (int, error) {
	v := in.Value
	for _, step := range []string{"Step1", "Step2", "Step3", "Step4"} {
		err := ctx.CallActivity("Step", stepInput{step, v, in.FailStep, in.SucceedOn}, workflow.WithRetryPolicy(fastRetry)).Await(&v)
		if err != nil {
			var tf *workflow.TaskFailedError
			if errors.As(err, &tf) {
				_ = ctx.CallActivity("Compensate", step).Await(nil)
			}
			return 0, err
		}
	}
	return v, nil
}

type stepInput struct {
	Name      string
	Value     int
	FailStep  string
	SucceedOn int
}

// FanOut processes n items with at most k in flight and sums the results.
func FanOut(ctx *workflow.Context, in struct{ N, K int }) (int, error) {
	tasks, err := workflow.Parallel(ctx, in.N, in.K, func(i int) *workflow.Task { return ctx.CallActivity("Square", i) })
	if err != nil {
		return 0, err
	}
	sum := 0
	for _, t := range tasks {
		var v int
		if err := t.Await(&v); err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

type monitorState struct {
	Cycle     int
	Healthy   bool
	Alerts    int
	MaxCycles int
}

// Monitor is the seed's eternal monitor, ending after MaxCycles generations.
func Monitor(ctx *workflow.Context, st monitorState) (monitorState, error) {
	var status string
	if err := ctx.CallActivity("GetStatus", st.Cycle).Await(&status); err != nil {
		return st, err
	}
	sleep := 20 * time.Millisecond
	if status == "healthy" {
		st.Healthy = true
		sleep = 40 * time.Millisecond
	} else if st.Healthy || st.Cycle == 0 {
		st.Healthy = false
		st.Alerts++
		if err := ctx.CallActivity("SendAlert", st.Cycle).Await(nil); err != nil {
			return st, err
		}
	}
	if err := ctx.CreateTimer(sleep).Await(nil); err != nil {
		return st, err
	}
	st.Cycle++
	if st.Cycle >= st.MaxCycles {
		return st, nil
	}
	ctx.ContinueAsNew(st, false)
	return st, nil
}

// Approval is the seed's purchase order with a human in the loop.
func Approval(ctx *workflow.Context, in struct {
	Cost    float64
	Timeout time.Duration
}) (string, error) {
	if in.Cost <= 100 {
		return "auto-approved", nil
	}
	if err := ctx.CallActivity("RequestApproval", in.Cost).Await(nil); err != nil {
		return "", err
	}
	var approval struct{ Approved bool }
	err := ctx.WaitForExternalEvent("ManagerApproval", in.Timeout).Await(&approval)
	switch {
	case errors.Is(err, workflow.ErrTimeout):
		return "cancelled: no approval in time", nil
	case err != nil:
		return "", err
	case !approval.Approved:
		return "rejected", nil
	}
	return "approved", nil
}

// Parent runs two children: one succeeds, one fails.
func Parent(ctx *workflow.Context, n int) (string, error) {
	var out int
	if err := ctx.CallChildWorkflow("FanOut", struct{ N, K int }{n, 2}).Await(&out); err != nil {
		return "", err
	}
	err := ctx.CallChildWorkflow("Chain", chainInput{Value: 1, FailStep: "Step2"}).Await(nil)
	var tf *workflow.TaskFailedError
	if !errors.As(err, &tf) {
		return "", fmt.Errorf("expected the second child to fail, got %v", err)
	}
	return fmt.Sprintf("sum=%d second=%s", out, tf.Failure.Message), nil
}

// Waiter waits for one event, with no timeout.
func Waiter(ctx *workflow.Context, name string) (json.RawMessage, error) {
	_ = ctx.SetCustomStatus("waiting for " + name)
	var v json.RawMessage
	err := ctx.WaitForExternalEvent(name, 0).Await(&v)
	return v, err
}

// Sleeper sleeps d, then returns "woke".
func Sleeper(ctx *workflow.Context, d time.Duration) (string, error) {
	if err := ctx.CreateTimer(d).Await(nil); err != nil {
		return "", err
	}
	return "woke", nil
}

// Counter consumes n "tick" events, continuing as new after each one.
func Counter(ctx *workflow.Context, st struct{ Seen, Want int }) (int, error) {
	if st.Seen == st.Want {
		return st.Seen, nil
	}
	if err := ctx.WaitForExternalEvent("tick", 0).Await(nil); err != nil {
		return 0, err
	}
	st.Seen++
	ctx.ContinueAsNew(st, true)
	return 0, nil
}

// Blocked runs one Blocker activity.
func Blocked(ctx *workflow.Context, key string) (string, error) {
	var v string
	err := ctx.CallActivity("Blocker", key).Await(&v)
	return v, err
}

func newApp(t *testing.T, dir string, opts weft.Options) *app {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	opts.Dir = dir
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	rt, err := weft.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{rt: rt, dir: dir, attempts: map[string][]time.Time{}, release: make(chan struct{})}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(weft.RegisterWorkflow(rt, Chain))
	must(weft.RegisterWorkflow(rt, FanOut))
	must(weft.RegisterWorkflow(rt, Monitor))
	must(weft.RegisterWorkflow(rt, Approval))
	must(weft.RegisterWorkflow(rt, Parent))
	must(weft.RegisterWorkflow(rt, Waiter))
	must(weft.RegisterWorkflow(rt, Sleeper))
	must(weft.RegisterWorkflow(rt, Counter))
	must(weft.RegisterWorkflow(rt, Blocked))
	must(weft.RegisterWorkflow(rt, Steps))
	must(weft.RegisterActivity(rt, func(ctx context.Context, in stepInput) (int, error) {
		info, _ := workflow.ActivityInfoFrom(ctx)
		n := a.attempt(info.InstanceID + "/" + in.Name)
		if in.Name == in.FailStep && (in.SucceedOn == 0 || n < in.SucceedOn) {
			return 0, workflow.NewError("StepFailed", fmt.Sprintf("%s failed on attempt %d", in.Name, n))
		}
		return in.Value + 1, nil
	}, workflow.WithName("Step")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, step string) (any, error) {
		info, _ := workflow.ActivityInfoFrom(ctx)
		a.attempt(info.InstanceID + "/compensate/" + step)
		return nil, nil
	}, workflow.WithName("Compensate")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, i int) (int, error) {
		a.ran.Add(1)
		return i * i, nil
	}, workflow.WithName("Square")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, cycle int) (string, error) {
		if cycle%3 == 2 { // healthy, healthy, unhealthy, ...
			return "unhealthy", nil
		}
		return "healthy", nil
	}, workflow.WithName("GetStatus")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, cycle int) (any, error) {
		info, _ := workflow.ActivityInfoFrom(ctx)
		a.attempt(info.InstanceID + "/alert")
		return nil, nil
	}, workflow.WithName("SendAlert")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, cost float64) (any, error) { return nil, nil }, workflow.WithName("RequestApproval")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, key string) (string, error) {
		a.attempt(key)
		select {
		case <-a.release:
			return "released", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}, workflow.WithName("Blocker")))
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return a
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (a *app) run(t *testing.T, name string, input any, opts ...weft.ScheduleOption) *weft.InstanceStatus {
	t.Helper()
	ctx := ctxT(t)
	id, err := a.rt.Schedule(ctx, name, input, opts...)
	if err != nil {
		t.Fatalf("schedule %s: %v", name, err)
	}
	st, err := a.rt.WaitForCompletion(ctx, id)
	if err != nil {
		t.Fatalf("wait for %s (%s): %v", id, name, err)
	}
	return st
}

func TestChainCompletes(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	st := a.run(t, "Chain", chainInput{Value: 10})
	if st.Status != weft.StatusCompleted || string(st.Output) != "14" {
		t.Fatalf("status %s output %s failure %+v", st.Status, st.Output, st.Failure)
	}
	if !st.LastUpdatedAt.After(st.CreatedAt) || st.CompletedAt.IsZero() || string(st.Input) != `{"Value":10,"FailStep":"","SucceedOn":0}` {
		t.Fatalf("times or input wrong: %+v", st)
	}
}

func TestChainRetriesWithBackoff(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	st := a.run(t, "Chain", chainInput{Value: 1, FailStep: "Step2", SucceedOn: 3}, weft.WithInstanceID("retry-ok"))
	if st.Status != weft.StatusCompleted || string(st.Output) != "5" {
		t.Fatalf("status %s output %s failure %+v", st.Status, st.Output, st.Failure)
	}
	times := a.attemptTimes("retry-ok/Step2")
	if len(times) != 3 {
		t.Fatalf("Step2 ran %d times, want 3", len(times))
	}
	// The policy waits 40 ms, then 80 ms: never less.
	for i, want := range []time.Duration{40 * time.Millisecond, 80 * time.Millisecond} {
		if gap := times[i+1].Sub(times[i]); gap < want {
			t.Errorf("attempt %d came %v after the previous one; backoff is %v", i+2, gap, want)
		}
	}
	if n := len(a.attemptTimes("retry-ok/compensate/Step2")); n != 0 {
		t.Errorf("compensation ran %d times though a retry succeeded", n)
	}
	// The history shows each failed attempt, when the next began, and the
	// call's outcome after them.
	marks := a.retryMarkers(t, "retry-ok", "Step2", "completed", 2)
	for i, want := range []time.Duration{40 * time.Millisecond, 80 * time.Millisecond} {
		m := marks[i]
		if gap := m.FireAt.Sub(m.Time); gap != want {
			t.Errorf("attempt %d's marker: next attempt %v later, want the policy's %v", i+1, gap, want)
		}
		if !times[i+1].After(m.FireAt) && !times[i+1].Equal(m.FireAt) {
			t.Errorf("attempt %d ran at %v, before the marker's %v", i+2, times[i+1], m.FireAt)
		}
	}
	// A rerun from a later call keeps Step2's outcome, not its attempts: they
	// happened to the source.
	ctx := ctxT(t)
	rerun, err := a.rt.Rerun(ctx, "retry-ok", 2, weft.RerunOptions{InstanceID: "retry-ok-rerun"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := a.rt.WaitForCompletion(ctx, rerun); err != nil || st.Status != weft.StatusCompleted || string(st.Output) != "5" {
		t.Fatalf("rerun: %+v %v", st, err)
	}
	hist, err := a.rt.History(ctx, rerun)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(hist, func(ev workflow.Event) bool { return ev.Kind == workflow.ActivityRetrying }); i >= 0 {
		t.Errorf("the rerun's history holds the source's retry marker %+v", hist[i])
	}
}

// retryMarkers checks id's history for the retry markers of the first
// activity call whose input (stepInput) names step: attempts numbered from 1, each with
// its failure and next attempt, after the call's scheduling and before its
// end (ActivityCompleted or ActivityFailed); it returns them.
func (a *app) retryMarkers(t *testing.T, id, step, end string, want int) []workflow.Event {
	t.Helper()
	hist, err := a.rt.History(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	task, activity := int64(-1), ""
	var marks []workflow.Event
	ended := false
	for _, ev := range hist {
		switch {
		case ev.Kind == workflow.ActivityScheduled && strings.Contains(string(ev.Data), `"Name":"`+step+`"`) && task < 0:
			task, activity = ev.TaskID, ev.Name
		case ev.Kind == workflow.ActivityRetrying:
			if ev.TaskID != task || ev.Name != activity || ended {
				t.Fatalf("%s: a retry marker %+v out of place (task %d for %s, ended %v)", id, ev, task, step, ended)
			}
			if string(ev.Data) != strconv.Itoa(len(marks)+1) || ev.Failure == nil || ev.Failure.Message == "" || !ev.FireAt.After(ev.Time) {
				t.Errorf("%s: marker %d is %+v, want attempt %d with its failure and a later next attempt", id, len(marks), ev, len(marks)+1)
			}
			marks = append(marks, ev)
		case ev.TaskID == task && (ev.Kind == workflow.ActivityCompleted || ev.Kind == workflow.ActivityFailed):
			ended = true
			if got := map[workflow.EventKind]string{workflow.ActivityCompleted: "completed", workflow.ActivityFailed: "failed"}[ev.Kind]; got != end {
				t.Errorf("%s: %s %s, want %s", id, step, got, end)
			}
		}
	}
	if len(marks) != want || !ended {
		t.Fatalf("%s: %d retry markers of %s (ended: %v), want %d before its end", id, len(marks), step, ended, want)
	}
	return marks
}

// An instance passivated while it waits for a retry (its idle timeout is
// shorter than the backoff) is loaded by the retry's reminder: the attempt
// runs once, not once for the load and once for the reminder.
func TestRetryAfterPassivationRunsOnce(t *testing.T) {
	a := newApp(t, "", weft.Options{IdleTimeout: 5 * time.Millisecond})
	st := a.run(t, "Chain", chainInput{Value: 1, FailStep: "Step2", SucceedOn: 3}, weft.WithInstanceID("retry-idle"))
	if st.Status != weft.StatusCompleted || string(st.Output) != "5" {
		t.Fatalf("status %s output %s failure %+v", st.Status, st.Output, st.Failure)
	}
	if n := len(a.attemptTimes("retry-idle/Step2")); n != 3 {
		t.Fatalf("Step2 ran %d times, want 3 (two failures, then success)", n)
	}
	if a.rt.Host().Stats().Passivations.Load() == 0 {
		t.Fatal("the instance was never passivated: the test tested nothing")
	}
	a.retryMarkers(t, "retry-idle", "Step2", "completed", 2) // and replayed past them on every load
}

func TestChainCompensatesWhenRetriesRunOut(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	st := a.run(t, "Chain", chainInput{Value: 1, FailStep: "Step3"}, weft.WithInstanceID("retry-out"))
	if st.Status != weft.StatusFailed {
		t.Fatalf("status %s, want FAILED", st.Status)
	}
	if st.Failure == nil || st.Failure.Type != "StepFailed" || !strings.Contains(st.Failure.Message, "Step3 failed on attempt 4") {
		t.Fatalf("failure %+v", st.Failure)
	}
	if n := len(a.attemptTimes("retry-out/Step3")); n != 4 {
		t.Errorf("Step3 ran %d times, want MaxAttempts = 4", n)
	}
	if n := len(a.attemptTimes("retry-out/compensate/Step3")); n != 1 {
		t.Errorf("compensation ran %d times, want 1", n)
	}
	a.retryMarkers(t, "retry-out", "Step3", "failed", 3)
}

// TestRetryMarkersThinOut: a call retried many times marks its first ten
// failed attempts, then every hundredth, numbered, so its history stays short.
func TestRetryMarkersThinOut(t *testing.T) {
	rt, err := weft.Open(weft.Options{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	var runs atomic.Int64
	if err := weft.RegisterActivity(rt, func(context.Context, int) (int, error) {
		runs.Add(1)
		return 0, errors.New("always down")
	}, workflow.WithName("Down")); err != nil {
		t.Fatal(err)
	}
	const attempts = 103
	if err := weft.RegisterWorkflow(rt, func(ctx *workflow.Context, _ int) (int, error) {
		var n int
		err := ctx.CallActivity("Down", 1, workflow.WithRetryPolicy(&workflow.RetryPolicy{
			MaxAttempts: attempts, FirstRetryInterval: time.Millisecond, BackoffCoefficient: 1})).Await(&n)
		return n, err
	}, workflow.WithName("Persistent")); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	id, err := rt.Schedule(ctx, "Persistent", 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := rt.WaitForCompletion(ctx, id)
	if err != nil || st.Status != weft.StatusFailed || runs.Load() != attempts {
		t.Fatalf("status %v (%v), %d runs; want FAILED after %d", st, err, runs.Load(), attempts)
	}
	hist, err := rt.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var marked []string
	for _, ev := range hist {
		if ev.Kind == workflow.ActivityRetrying {
			marked = append(marked, string(ev.Data))
		}
	}
	if want := []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "100"}; !slices.Equal(marked, want) {
		t.Fatalf("attempts marked %v, want %v", marked, want)
	}
}

func TestFanOutBounded(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	st := a.run(t, "FanOut", struct{ N, K int }{100, 10})
	want := 0
	for i := range 100 {
		want += i * i
	}
	if st.Status != weft.StatusCompleted || string(st.Output) != fmt.Sprint(want) {
		t.Fatalf("status %s output %s, want %d", st.Status, st.Output, want)
	}
	if n := a.ran.Load(); n != 100 {
		t.Errorf("ran %d activities, want 100", n)
	}
	hist, err := a.rt.History(ctxT(t), st.ID)
	if err != nil {
		t.Fatal(err)
	}
	inflight, peak := 0, 0
	for _, ev := range hist {
		switch ev.Kind {
		case workflow.ActivityScheduled:
			inflight++
			peak = max(peak, inflight)
		case workflow.ActivityCompleted:
			inflight--
		}
	}
	if peak != 10 {
		t.Errorf("peak activities in flight %d, want the bound 10", peak)
	}
}

func TestMonitorContinuesAsNew(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	st := a.run(t, "Monitor", monitorState{MaxCycles: 6}, weft.WithInstanceID("mon"))
	var out monitorState
	if err := json.Unmarshal(st.Output, &out); err != nil || st.Status != weft.StatusCompleted {
		t.Fatalf("status %s output %s: %v", st.Status, st.Output, err)
	}
	// Health by cycle: healthy healthy unhealthy healthy healthy unhealthy →
	// two healthy→unhealthy transitions, each alerted once.
	if out.Cycle != 6 || out.Alerts != 2 || len(a.attemptTimes("mon/alert")) != 2 {
		t.Fatalf("out %+v, alerts sent %d", out, len(a.attemptTimes("mon/alert")))
	}
	if st.Generation != 5 {
		t.Errorf("generation %d, want 5", st.Generation)
	}
	hist, _ := a.rt.History(ctxT(t), "mon")
	if len(hist) > 12 {
		t.Errorf("history of the last generation has %d events: continue-as-new must keep it small", len(hist))
	}
}

func TestApprovalPaths(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	type in struct {
		Cost    float64
		Timeout time.Duration
	}
	for _, c := range []struct {
		name  string
		event any
		want  string
	}{
		{"approve", map[string]bool{"Approved": true}, `"approved"`},
		{"reject", map[string]bool{"Approved": false}, `"rejected"`},
		{"timeout", nil, `"cancelled: no approval in time"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			timeout := time.Minute
			if c.event == nil {
				timeout = 100 * time.Millisecond
			}
			id, err := a.rt.Schedule(ctx, "Approval", in{Cost: 500, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			if c.event != nil {
				if err := a.rt.RaiseEvent(ctx, id, "ManagerApproval", c.event); err != nil {
					t.Fatal(err)
				}
			}
			st, err := a.rt.WaitForCompletion(ctx, id)
			if err != nil || string(st.Output) != c.want {
				t.Fatalf("output %s, want %s (%v)", st.Output, c.want, err)
			}
		})
	}
	if st := a.run(t, "Approval", in{Cost: 5}); string(st.Output) != `"auto-approved"` {
		t.Fatalf("small order: %s", st.Output)
	}
}

func TestChildWorkflows(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	st := a.run(t, "Parent", 5, weft.WithInstanceID("parent"))
	if st.Status != weft.StatusCompleted || !strings.Contains(string(st.Output), "sum=30 second=activity Step (task 1) failed") {
		t.Fatalf("status %s output %s failure %+v", st.Status, st.Output, st.Failure)
	}
	child, err := a.rt.Status(ctxT(t), "parent-0")
	if err != nil || child.Status != weft.StatusCompleted || child.ParentID != "parent" {
		t.Fatalf("child: %+v %v", child, err)
	}
}

func TestScheduledStartIsPending(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	at := time.Now().Add(300 * time.Millisecond)
	id, err := a.rt.Schedule(ctx, "Sleeper", time.Millisecond, weft.WithStartTime(at))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.rt.Status(ctx, id)
	if st.Status != weft.StatusPending || !st.ScheduledStartAt.Equal(at.UTC()) {
		t.Fatalf("status %s scheduled %v", st.Status, st.ScheduledStartAt)
	}
	st, err = a.rt.WaitForStart(ctx, id)
	if err != nil || time.Now().Before(at) {
		t.Fatalf("started early or failed: %v %v", st, err)
	}
	if st, _ = a.rt.WaitForCompletion(ctx, id); st.Status != weft.StatusCompleted {
		t.Fatalf("status %s", st.Status)
	}
}

func TestSuspendHoldsEventsAndTimers(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	id, _ := a.rt.Schedule(ctx, "Waiter", "go")
	st, _ := a.rt.Status(ctx, id)
	if string(st.CustomStatus) != `"waiting for go"` {
		t.Fatalf("custom status %s", st.CustomStatus)
	}
	if err := a.rt.Suspend(ctx, id, "maintenance"); err != nil {
		t.Fatal(err)
	}
	if err := a.rt.RaiseEvent(ctx, id, "go", 42); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.rt.Status(ctx, id); st.Status != weft.StatusSuspended {
		t.Fatalf("status %s, want SUSPENDED", st.Status)
	}
	if err := a.rt.Resume(ctx, id, "done"); err != nil {
		t.Fatal(err)
	}
	st, _ = a.rt.WaitForCompletion(ctx, id)
	if st.Status != weft.StatusCompleted || string(st.Output) != "42" {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}

	// A timer that fires while suspended is kept and applied on resume.
	id, _ = a.rt.Schedule(ctx, "Sleeper", 50*time.Millisecond)
	if err := a.rt.Suspend(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.Host().WaitFor(ctx, id, func(r *storage.InstanceRecord) bool { return r.NextInboxSeq > 0 }); err != nil {
		t.Fatalf("timer never fired while suspended: %v", err)
	}
	if st, _ := a.rt.Status(ctx, id); st.Status != weft.StatusSuspended {
		t.Fatalf("status %s, want SUSPENDED", st.Status)
	}
	_ = a.rt.Resume(ctx, id, "")
	if st, _ = a.rt.WaitForCompletion(ctx, id); string(st.Output) != `"woke"` {
		t.Fatalf("output %s", st.Output)
	}
}

// An activity that completes while its instance is suspended has its result
// held; the instance may be passivated meanwhile, and loading it again must
// not run the activity a second time (history alone still shows it
// scheduled and not completed).
func TestSuspendedResultSurvivesPassivation(t *testing.T) {
	a := newApp(t, "", weft.Options{IdleTimeout: 50 * time.Millisecond})
	ctx := ctxT(t)
	id, err := a.rt.Schedule(ctx, "Blocked", "held-result")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "the activity runs", func() bool { return len(a.attemptTimes("held-result")) == 1 })
	if err := a.rt.Suspend(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	before := a.rt.Host().Stats().Passivations.Load()
	close(a.release)
	if _, err := a.rt.Host().WaitFor(ctx, id, func(r *storage.InstanceRecord) bool { return r.NextInboxSeq > 0 }); err != nil {
		t.Fatalf("the result was never held: %v", err)
	}
	waitUntil(t, ctx, "the suspended instance is passivated", func() bool { return a.rt.Host().Stats().Passivations.Load() > before })
	if err := a.rt.Resume(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	st, err := a.rt.WaitForCompletion(ctx, id)
	if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != `"released"` {
		t.Fatalf("final: %+v %v", st, err)
	}
	if n := len(a.attemptTimes("held-result")); n != 1 {
		t.Fatalf("the activity ran %d times, want once", n)
	}
}

// TestSuspendBeforeStart: an instance scheduled to start later can be
// suspended: it shows SUSPENDED at once, does not start when its start comes
// due, holds what it is sent, and starts when resumed (or, resumed before its
// start, waits for it as PENDING).
func TestSuspendBeforeStart(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	soon := time.Now().Add(200 * time.Millisecond)
	id, err := a.rt.Schedule(ctx, "Waiter", "go", weft.WithStartTime(soon))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.rt.Suspend(ctx, id, "not yet"); err != nil {
		t.Fatalf("suspend a PENDING instance: %v", err)
	}
	if st, _ := a.rt.Status(ctx, id); st.Status != weft.StatusSuspended {
		t.Fatalf("status %s, want SUSPENDED", st.Status)
	}
	if err := a.rt.RaiseEvent(ctx, id, "go", 7); err != nil {
		t.Fatal(err)
	}
	part := a.rt.Host().Partition(id)
	waitUntil(t, ctx, "its start reminder fires while it is suspended", func() bool {
		rs, err := a.rt.Host().DB().RemindersOf(part, id)
		return err == nil && len(rs) == 0
	})
	if st, _ := a.rt.Status(ctx, id); st.Status != weft.StatusSuspended {
		t.Fatalf("after its start time: %s, want still SUSPENDED", st.Status)
	}
	if err := a.rt.Resume(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.rt.WaitForCompletion(ctx, id); st.Status != weft.StatusCompleted || string(st.Output) != "7" {
		t.Fatalf("after the resume: %s %s", st.Status, st.Output)
	}

	later := time.Now().Add(400 * time.Millisecond)
	id, _ = a.rt.Schedule(ctx, "Sleeper", time.Millisecond, weft.WithStartTime(later))
	if err := a.rt.Suspend(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.rt.Resume(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.rt.Status(ctx, id); st.Status != weft.StatusPending {
		t.Fatalf("resumed before its start: %s, want PENDING", st.Status)
	}
	st, _ := a.rt.WaitForCompletion(ctx, id)
	if st.Status != weft.StatusCompleted || st.CompletedAt.Before(later) {
		t.Fatalf("resumed before its start: %s, completed at %v (start at %v)", st.Status, st.CompletedAt, later)
	}
}

func TestTerminateAnswersAtOnceInEveryState(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	running, _ := a.rt.Schedule(ctx, "Waiter", "never")
	suspended, _ := a.rt.Schedule(ctx, "Waiter", "never")
	_ = a.rt.Suspend(ctx, suspended, "")
	pending, _ := a.rt.Schedule(ctx, "Sleeper", time.Millisecond, weft.WithStartTime(time.Now().Add(time.Hour)))
	done := a.run(t, "Sleeper", time.Millisecond).ID
	blocked, _ := a.rt.Schedule(ctx, "Blocked", "terminate-me")

	for _, c := range []struct {
		id, want string
	}{{running, "TERMINATED"}, {suspended, "TERMINATED"}, {pending, "TERMINATED"}, {blocked, "TERMINATED"}, {done, "COMPLETED"}} {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.rt.Terminate(tctx, c.id, weft.TerminateOptions{Reason: "test"})
		cancel()
		if err != nil {
			t.Fatalf("terminate %s: %v", c.id, err)
		}
		st, _ := a.rt.Status(ctx, c.id)
		if string(st.Status) != c.want {
			t.Errorf("%s: status %s, want %s", c.id, st.Status, c.want)
		}
		if c.want == "TERMINATED" && string(st.Output) != `"test"` {
			t.Errorf("%s: output %s, want the reason", c.id, st.Output)
		}
	}
	if st, _ := a.rt.WaitForCompletion(ctx, pending); st.Status != weft.StatusTerminated {
		t.Fatal("terminated instance not seen as finished")
	}
	close(a.release)
}

// TestTerminateRecursive: terminating a parent recursively terminates its
// children and theirs, each with the output the caller gave.
func TestTerminateRecursive(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	_ = weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, _ any) (any, error) {
		return nil, ctx.CallChildWorkflow("WaitsOnGrandchild", nil, workflow.WithInstanceID("rec-child")).Await(nil)
	}, workflow.WithName("WaitsOnChild"))
	_ = weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, _ any) (any, error) {
		return nil, ctx.CallChildWorkflow("Waiter", "never", workflow.WithInstanceID("rec-grandchild")).Await(nil)
	}, workflow.WithName("WaitsOnGrandchild"))
	id, _ := a.rt.Schedule(ctx, "WaitsOnChild", nil, weft.WithInstanceID("rec-parent"))
	waitExists(t, a, "rec-grandchild")
	if err := a.rt.Terminate(ctx, id, weft.TerminateOptions{Reason: "shutting down", Recursive: true}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"rec-child", "rec-grandchild"} {
		if st, _ := a.rt.WaitForCompletion(ctx, d); st.Status != weft.StatusTerminated || string(st.Output) != `"shutting down"` {
			t.Fatalf("%s: %s with output %s; want TERMINATED with the caller's output", d, st.Status, st.Output)
		}
	}
}

// waitExists waits until an instance has been created (children are started
// asynchronously by their parent).
func waitExists(t *testing.T, a *app, id string) {
	t.Helper()
	ctx := ctxT(t)
	for {
		if _, err := a.rt.Status(ctx, id); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never created", id)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestEventsDuringContinueAsNewAreNotLost(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	const n = 50
	id, _ := a.rt.Schedule(ctx, "Counter", struct{ Seen, Want int }{0, n})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.rt.RaiseEvent(ctx, id, "tick", nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st, err := a.rt.WaitForCompletion(ctx, id)
	if err != nil || string(st.Output) != fmt.Sprint(n) {
		t.Fatalf("output %s, want %d: %v", st.Output, n, err)
	}
}

func TestPurge(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	running, _ := a.rt.Schedule(ctx, "Waiter", "never")
	if err := a.rt.Purge(ctx, running, weft.PurgeOptions{}); !errors.Is(err, weft.ErrNotFinished) {
		t.Fatalf("purge of a running instance: %v", err)
	}
	st := a.run(t, "Parent", 2, weft.WithInstanceID("purge-parent"))
	if err := a.rt.Purge(ctx, st.ID, weft.PurgeOptions{Recursive: true}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"purge-parent", "purge-parent-0", "purge-parent-1"} {
		if _, err := a.rt.Status(ctx, id); !errors.Is(err, weft.ErrInstanceNotFound) {
			t.Errorf("%s after recursive purge: %v", id, err)
		}
	}
	if err := a.rt.Purge(ctx, st.ID, weft.PurgeOptions{}); !errors.Is(err, weft.ErrInstanceNotFound) {
		t.Fatalf("second purge: %v", err)
	}
}

func TestReusePolicies(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	if _, err := a.rt.Schedule(ctx, "Waiter", "x", weft.WithInstanceID("reuse")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.Schedule(ctx, "Waiter", "y", weft.WithInstanceID("reuse")); !errors.Is(err, weft.ErrInstanceExists) {
		t.Fatalf("default policy: %v", err)
	}
	if _, err := a.rt.Schedule(ctx, "Waiter", "y", weft.WithInstanceID("reuse"), weft.WithReusePolicy(weft.ReuseIgnore)); err != nil {
		t.Fatalf("ignore policy: %v", err)
	}
	if st, _ := a.rt.Status(ctx, "reuse"); string(st.Input) != `"x"` {
		t.Fatalf("ignore replaced the instance: input %s", st.Input)
	}
	if _, err := a.rt.Schedule(ctx, "Sleeper", time.Millisecond, weft.WithInstanceID("reuse"), weft.WithReusePolicy(weft.ReuseTerminate)); err != nil {
		t.Fatalf("terminate policy: %v", err)
	}
	st, _ := a.rt.WaitForCompletion(ctx, "reuse")
	if st.Name != "Sleeper" || string(st.Output) != `"woke"` {
		t.Fatalf("replacement: %+v", st)
	}
}

func TestBadInputLeavesStoreUnchanged(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	existing, _ := a.rt.Schedule(ctx, "Waiter", "x", weft.WithInstanceID("exists"))
	before, _ := a.rt.List(ctx, weft.ListQuery{})
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"unknown workflow", func() error { _, err := a.rt.Schedule(ctx, "Nope", nil); return err }, weft.ErrWorkflowNotRegistered},
		{"undecodable input", func() error { _, err := a.rt.Schedule(ctx, "Chain", []byte(`{"Value":"x"}`)); return err }, weft.ErrInvalidInput},
		{"invalid JSON", func() error { _, err := a.rt.Schedule(ctx, "Chain", []byte(`{`)); return err }, weft.ErrInvalidInput},
		{"empty id", func() error { _, err := a.rt.Schedule(ctx, "Waiter", "x", weft.WithInstanceID("")); return err }, nil},
		{"long id", func() error {
			_, err := a.rt.Schedule(ctx, "Waiter", "x", weft.WithInstanceID(strings.Repeat("a", 65)))
			return err
		}, weft.ErrInvalidInstanceID},
		{"bad characters", func() error { _, err := a.rt.Schedule(ctx, "Waiter", "x", weft.WithInstanceID("a/b")); return err }, weft.ErrInvalidInstanceID},
		{"existing id", func() error { _, err := a.rt.Schedule(ctx, "Waiter", "x", weft.WithInstanceID(existing)); return err }, weft.ErrInstanceExists},
		{"raise to unknown", func() error { return a.rt.RaiseEvent(ctx, "ghost", "e", nil) }, weft.ErrInstanceNotFound},
		{"raise without a name", func() error { return a.rt.RaiseEvent(ctx, existing, "", nil) }, weft.ErrEventNameMissing},
		{"terminate unknown", func() error { return a.rt.Terminate(ctx, "ghost", weft.TerminateOptions{}) }, weft.ErrInstanceNotFound},
		{"purge unknown", func() error { return a.rt.Purge(ctx, "ghost", weft.PurgeOptions{}) }, weft.ErrInstanceNotFound},
		{"purge running", func() error { return a.rt.Purge(ctx, existing, weft.PurgeOptions{}) }, weft.ErrNotFinished},
		{"status unknown", func() error { _, err := a.rt.Status(ctx, "ghost"); return err }, weft.ErrInstanceNotFound},
		{"suspend unknown", func() error { return a.rt.Suspend(ctx, "ghost", "") }, weft.ErrInstanceNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if c.want == nil {
				// An empty id means "generate one": not an error.
				if err != nil {
					t.Fatalf("got %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	after, _ := a.rt.List(ctx, weft.ListQuery{})
	if len(after.Instances) != len(before.Instances)+1 { // + the "empty id" case's generated instance
		t.Fatalf("store changed: %d instances before, %d after", len(before.Instances), len(after.Instances))
	}
}

func TestListFilters(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	for i := range 5 {
		a.run(t, "Sleeper", time.Millisecond, weft.WithInstanceID(fmt.Sprintf("done-%d", i)))
	}
	for i := range 3 {
		_, _ = a.rt.Schedule(ctx, "Waiter", "x", weft.WithInstanceID(fmt.Sprintf("wait-%d", i)))
	}
	page, err := a.rt.List(ctx, weft.ListQuery{Statuses: []weft.RuntimeStatus{weft.StatusRunning}})
	if err != nil || len(page.Instances) != 3 {
		t.Fatalf("running: %+v %v", page, err)
	}
	page, _ = a.rt.List(ctx, weft.ListQuery{Name: "Sleeper", PageSize: 2})
	var ids []string
	for {
		for _, in := range page.Instances {
			ids = append(ids, in.ID)
		}
		if page.NextPageToken == "" {
			break
		}
		page, _ = a.rt.List(ctx, weft.ListQuery{Name: "Sleeper", PageSize: 2, PageToken: page.NextPageToken})
	}
	if strings.Join(ids, ",") != "done-0,done-1,done-2,done-3,done-4" {
		t.Fatalf("paged listing %v", ids)
	}
	if _, err := a.rt.List(ctx, weft.ListQuery{Statuses: []weft.RuntimeStatus{"SLEEPING"}}); err == nil {
		t.Fatal("unknown status accepted")
	}
}

func TestPassivationAndReactivation(t *testing.T) {
	a := newApp(t, "", weft.Options{IdleTimeout: 50 * time.Millisecond, MaxActiveInstances: 5})
	ctx := ctxT(t)
	for i := range 20 {
		if _, err := a.rt.Schedule(ctx, "Waiter", "go", weft.WithInstanceID(fmt.Sprintf("p-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.rt.Host().Active(); n > 6 {
		t.Errorf("%d instances active, cap is 5", n)
	}
	for a.rt.Host().Active() > 0 {
		select {
		case <-ctx.Done():
			t.Fatal("idle instances never passivated")
		case <-time.After(10 * time.Millisecond):
		}
	}
	for i := range 20 {
		id := fmt.Sprintf("p-%d", i)
		if err := a.rt.RaiseEvent(ctx, id, "go", i); err != nil {
			t.Fatal(err)
		}
		if st, _ := a.rt.WaitForCompletion(ctx, id); string(st.Output) != fmt.Sprint(i) {
			t.Fatalf("%s output %s after reactivation", id, st.Output)
		}
	}
}

// TestEvictionRunsEachAttemptOnce: chains with a retry, fan-outs and
// sleepers with far more instances than may stay in memory and a short idle
// timeout, so instances leave memory at every turn: every activity attempt
// runs exactly once and everything completes with the right output.
func TestEvictionRunsEachAttemptOnce(t *testing.T) {
	a := newApp(t, "", weft.Options{IdleTimeout: 3 * time.Millisecond, MaxActiveInstances: 4})
	ctx := ctxT(t)
	const chains, fanouts, items = 30, 6, 15
	var ids []string
	for i := range chains {
		id, err := a.rt.Schedule(ctx, "Chain", chainInput{Value: i, FailStep: "Step2", SucceedOn: 2}, weft.WithInstanceID(fmt.Sprintf("ev-chain-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i := range fanouts {
		id, err := a.rt.Schedule(ctx, "FanOut", struct{ N, K int }{items, 4}, weft.WithInstanceID(fmt.Sprintf("ev-fan-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i := range 10 {
		id, err := a.rt.Schedule(ctx, "Sleeper", 20*time.Millisecond, weft.WithInstanceID(fmt.Sprintf("ev-sleep-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sum := 0
	for i := range items {
		sum += i * i
	}
	for k, id := range ids {
		st, err := a.rt.WaitForCompletion(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := `"woke"`
		switch {
		case k < chains:
			want = fmt.Sprint(k + 4)
		case k < chains+fanouts:
			want = fmt.Sprint(sum)
		}
		if st.Status != weft.StatusCompleted || string(st.Output) != want {
			t.Errorf("%s: %s %s, want COMPLETED %s", id, st.Status, st.Output, want)
		}
	}
	for i := range chains {
		for step, want := range map[string]int{"Step1": 1, "Step2": 2, "Step3": 1, "Step4": 1} {
			if n := len(a.attemptTimes(fmt.Sprintf("ev-chain-%d/%s", i, step))); n != want {
				t.Errorf("ev-chain-%d: %s ran %d times, want %d", i, step, n, want)
			}
		}
	}
	if n := a.ran.Load(); n != fanouts*items {
		t.Errorf("Square ran %d times, want %d", n, fanouts*items)
	}
	if p := a.rt.Host().Stats().Passivations.Load(); p < int64(len(ids)) {
		t.Errorf("%d passivations: instances did not leave memory as the test means them to", p)
	}
}

// TestSleepersAndFinishedLeaveMemory: an instance that only waits on a timer
// due beyond SleepPassivation, or that has finished, is passivated at once, and
// the timer brings it back to finish. One waiting on an event stays until
// IdleTimeout.
func TestSleepersAndFinishedLeaveMemory(t *testing.T) {
	a := newApp(t, "", weft.Options{SleepPassivation: 300 * time.Millisecond})
	ctx := ctxT(t)
	before := a.rt.Host().Stats().Passivations.Load()
	for i := range 10 {
		if _, err := a.rt.Schedule(ctx, "Sleeper", time.Second, weft.WithInstanceID(fmt.Sprintf("s-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.rt.Schedule(ctx, "Waiter", "go", weft.WithInstanceID("w")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "sleepers passivated", func() bool { return a.rt.Host().Active() == 1 })
	if p := a.rt.Host().Stats().Passivations.Load() - before; p != 10 {
		t.Errorf("%d passivations while sleeping, want 10", p)
	}
	for i := range 10 {
		id := fmt.Sprintf("s-%d", i)
		if st, err := a.rt.WaitForCompletion(ctx, id); err != nil || string(st.Output) != `"woke"` {
			t.Fatalf("%s: %v, output %s", id, err, st.Output)
		}
	}
	// Woken by their timers, they finished and left memory again; the waiter stays.
	waitUntil(t, ctx, "finished instances passivated", func() bool { return a.rt.Host().Active() == 1 })
	if err := a.rt.RaiseEvent(ctx, "w", "go", 7); err != nil {
		t.Fatal(err)
	}
	if st, err := a.rt.WaitForCompletion(ctx, "w"); err != nil || string(st.Output) != "7" {
		t.Fatalf("w: %v, output %s", err, st.Output)
	}
	waitUntil(t, ctx, "all passivated", func() bool { return a.rt.Host().Active() == 0 })
}

// TestResultsSurviveEviction: with room for one instance in memory, fan-outs
// evict each other while their activity results are queued in the host; every
// result must still reach its instance, through whichever activation is next.
func TestResultsSurviveEviction(t *testing.T) {
	a := newApp(t, "", weft.Options{MaxActiveInstances: 1})
	ctx := ctxT(t)
	const instances, width = 8, 30
	for i := range instances {
		if _, err := a.rt.Schedule(ctx, "FanOut", struct{ N, K int }{width, width}, weft.WithInstanceID(fmt.Sprintf("e-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	want := 0
	for i := range width {
		want += i * i
	}
	for i := range instances {
		id := fmt.Sprintf("e-%d", i)
		st, err := a.rt.WaitForCompletion(ctx, id)
		if err != nil || string(st.Output) != fmt.Sprint(want) {
			t.Fatalf("%s: %v, output %s, want %d", id, err, st.Output, want)
		}
	}
	if p := a.rt.Host().Stats().Passivations.Load(); p < instances {
		t.Errorf("%d passivations: the instances did not evict each other", p)
	}
}

// waitUntil polls cond (the host's counters have no change notification) until
// it holds or ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within the test's deadline", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestReopenResumesOnlyInstancesWithWork stores many instances waiting on timers
// and a few with activities in flight, closes, reopens: only the latter are
// activated, and they finish.
func TestReopenResumesOnlyInstancesWithWork(t *testing.T) {
	const sleeping, busy = 10_000, 50
	dir := t.TempDir()
	a := newApp(t, dir, weft.Options{})
	// 10,050 synced starts under -race on a shared 2-core machine: give it room.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	ids := make(chan int, sleeping)
	for i := range sleeping {
		ids <- i
	}
	close(ids)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				if _, err := a.rt.Schedule(ctx, "Sleeper", time.Hour, weft.WithInstanceID(fmt.Sprintf("s-%d", i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := range busy {
		_, _ = a.rt.Schedule(ctx, "Blocked", fmt.Sprintf("b-%d", i), weft.WithInstanceID(fmt.Sprintf("b-%d", i)))
	}
	for len(a.attemptTimesAll()) < busy {
		time.Sleep(5 * time.Millisecond)
	}
	if err := a.rt.Close(); err != nil {
		t.Fatal(err)
	}

	b := newApp(t, dir, weft.Options{})
	close(b.release)
	for i := range busy {
		st, err := b.rt.WaitForCompletion(ctx, fmt.Sprintf("b-%d", i))
		if err != nil || string(st.Output) != `"released"` {
			t.Fatalf("b-%d: %+v %v", i, st, err)
		}
	}
	if n := b.rt.Host().Stats().Activations.Load(); n > busy+5 {
		t.Fatalf("%d instances activated on reopen; only the %d with work in flight should be", n, busy)
	}
	if st, _ := b.rt.Status(ctx, "s-9999"); st.Status != weft.StatusRunning {
		t.Fatalf("sleeping instance: %s", st.Status)
	}
}

func (a *app) attemptTimesAll() map[string][]time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]time.Time{}
	for k, v := range a.attempts {
		out[k] = v
	}
	return out
}

func TestCloseIsGracefulAndReopenable(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, weft.Options{})
	ctx := ctxT(t)
	id, _ := a.rt.Schedule(ctx, "Sleeper", 100*time.Millisecond)
	if err := a.rt.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.Schedule(ctx, "Sleeper", time.Millisecond); !errors.Is(err, weft.ErrClosed) {
		t.Fatalf("schedule after close: %v", err)
	}
	b := newApp(t, dir, weft.Options{})
	if st, err := b.rt.WaitForCompletion(ctx, id); err != nil || string(st.Output) != `"woke"` {
		t.Fatalf("timer across a reopen: %+v %v", st, err)
	}
}

// squareThenStallOnce calls Square, then, on the first run of the code only,
// overruns a deadlock timeout of 100 ms.
func squareThenStallOnce(ctx *workflow.Context, runs *atomic.Int32) error {
	if err := ctx.CallActivity("Square", 3).Await(nil); err != nil {
		return err
	}
	if runs.Add(1) == 1 {
		time.Sleep(300 * time.Millisecond)
	}
	return nil
}

// TestStallIsRetriedDeadlockFails: code that overruns the deadlock timeout once
// (an overloaded machine) is retried on a fresh replay and completes; code that
// blocks every time fails with a DeadlockError after the retries.
func TestStallIsRetriedDeadlockFails(t *testing.T) {
	a := newApp(t, "", weft.Options{DeadlockTimeout: 100 * time.Millisecond, StallRetryDelay: 20 * time.Millisecond})
	ctx := ctxT(t)
	var runs atomic.Int32
	_ = weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, _ any) (string, error) {
		if err := squareThenStallOnce(ctx, &runs); err != nil {
			return "", err
		}
		return "done", nil
	}, workflow.WithName("StallsOnce"))
	forever := make(chan struct{})
	t.Cleanup(func() { close(forever) })
	_ = weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, _ any) (string, error) {
		<-forever
		return "", nil
	}, workflow.WithName("BlocksForever"))

	st := a.run(t, "StallsOnce", nil)
	if st.Status != weft.StatusCompleted || string(st.Output) != `"done"` {
		t.Fatalf("a stalled step was not retried: %s %s %+v", st.Status, st.Output, st.Failure)
	}
	if runs.Load() < 2 {
		t.Fatalf("the step ran %d times, want a retry", runs.Load())
	}
	id, _ := a.rt.Schedule(ctx, "BlocksForever", nil)
	st, err := a.rt.WaitForCompletion(ctx, id)
	if err != nil || st.Status != weft.StatusFailed || st.Failure.Type != "DeadlockError" {
		t.Fatalf("a real deadlock: %+v %v", st, err)
	}
}

// TestStalledInstanceHoldsInputs: an event raised while a stalled step waits for
// its fresh replay is held, not refused, and applied after the replay.
func TestStalledInstanceHoldsInputs(t *testing.T) {
	a := newApp(t, "", weft.Options{DeadlockTimeout: 100 * time.Millisecond, StallRetryDelay: 500 * time.Millisecond})
	ctx := ctxT(t)
	var runs atomic.Int32
	_ = weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, _ any) (string, error) {
		if err := squareThenStallOnce(ctx, &runs); err != nil {
			return "", err
		}
		var s string
		err := ctx.WaitForExternalEvent("go", 0).Await(&s)
		return s, err
	}, workflow.WithName("StallsThenWaits"))
	id, err := a.rt.Schedule(ctx, "StallsThenWaits", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.Host().WaitFor(ctx, id, func(r *storage.InstanceRecord) bool { return r.Stalls > 0 }); err != nil {
		t.Fatal(err)
	}
	if err := a.rt.RaiseEvent(ctx, id, "go", "held"); err != nil {
		t.Fatalf("an event for a stalled instance: %v", err)
	}
	st, err := a.rt.WaitForCompletion(ctx, id)
	if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != `"held"` {
		t.Fatalf("after the replay: %+v %v", st, err)
	}
}

// TestStalledStepAppliesRetryPolicy: an activity attempt that fails while its
// workflow's step is stalled (the executor dropped until a fresh replay) is
// retried as its policy says, exactly as without the stall: the decision waits
// for the replay instead of taking the failure as final, and it waits on disk
// if the process stops first.
func TestStalledStepAppliesRetryPolicy(t *testing.T) {
	for _, c := range []struct {
		name           string
		stall, restart bool
	}{
		{"no stall", false, false},
		{"stalled", true, false},
		{"stalled, then the process restarts", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			delay := 200 * time.Millisecond
			if c.restart {
				delay = time.Hour // the replay comes from the restart
			}
			a := newApp(t, dir, weft.Options{DeadlockTimeout: 100 * time.Millisecond, StallRetryDelay: delay})
			ctx := ctxT(t)
			stalling, fail := make(chan struct{}), make(chan struct{})
			var attempts, stalls atomic.Int32
			register := func(a *app) {
				_ = weft.RegisterActivity(a.rt, func(ctx context.Context, _ any) (string, error) {
					if attempts.Add(1) == 1 {
						<-fail
						return "", errors.New("flaky")
					}
					return "ok", nil
				}, workflow.WithName("Flaky"))
				_ = weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, _ any) (string, error) {
					task := ctx.CallActivity("Flaky", nil, workflow.WithRetryPolicy(&workflow.RetryPolicy{
						MaxAttempts: 3, FirstRetryInterval: 10 * time.Millisecond}))
					if err := ctx.WaitForExternalEvent("stall", 0).Await(nil); err != nil {
						return "", err
					}
					if c.stall && stalls.Add(1) == 1 {
						close(stalling)
						time.Sleep(300 * time.Millisecond) // overruns the deadlock timeout, once
					}
					var out string
					err := task.Await(&out)
					return out, err
				}, workflow.WithName("FlakyUnderStall"))
			}
			register(a)
			id, err := a.rt.Schedule(ctx, "FlakyUnderStall", nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.rt.RaiseEvent(ctx, id, "stall", nil); err != nil {
				t.Fatal(err)
			}
			if c.stall {
				<-stalling // the step runs and will be abandoned: the failure comes while it is
			}
			close(fail)
			if c.restart {
				part := a.rt.Host().Partition(id)
				waitUntil(t, ctx, "the failure waits in the activity's record", func() bool {
					recs, err := a.rt.Host().DB().Activities(part, id)
					return err == nil && len(recs) == 1 && recs[0].Failed != nil
				})
				if err := a.rt.Close(); err != nil {
					t.Fatal(err)
				}
				// Registered after Start: the instance, resumed at Start, waits for
				// its workflow and replays once it is registered.
				a = newApp(t, dir, weft.Options{DeadlockTimeout: 100 * time.Millisecond, StallRetryDelay: 20 * time.Millisecond})
				register(a)
			}
			st, err := a.rt.WaitForCompletion(ctx, id)
			if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != `"ok"` {
				t.Fatalf("%+v %v; want COMPLETED with the second attempt's output", st, err)
			}
			if n := attempts.Load(); n != 2 {
				t.Fatalf("%d attempts, want 2", n)
			}
		})
	}
}

// TestWorkflowRegisteredAfterStart: an instance in flight whose workflow the
// reopened process registers only after Start is not failed: it waits, holds
// what it is sent, and goes on once the workflow is registered.
func TestWorkflowRegisteredAfterStart(t *testing.T) {
	dir := t.TempDir()
	late := func(ctx *workflow.Context, _ any) (string, error) {
		var released, ev string
		if err := ctx.CallActivity("Blocker", ctx.InstanceID()).Await(&released); err != nil {
			return "", err
		}
		err := ctx.WaitForExternalEvent("go", 0).Await(&ev)
		return released + " " + ev, err
	}
	a := newApp(t, dir, weft.Options{})
	ctx := ctxT(t)
	if err := weft.RegisterWorkflow(a.rt, late, workflow.WithName("Late")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.Schedule(ctx, "Late", nil, weft.WithInstanceID("late")); err != nil {
		t.Fatal(err)
	}
	for len(a.attemptTimes("late")) == 0 {
		time.Sleep(time.Millisecond) // waits on its Blocker
	}
	if err := a.rt.Close(); err != nil {
		t.Fatal(err)
	}

	b := newApp(t, dir, weft.Options{StallRetryDelay: 50 * time.Millisecond})
	close(b.release)
	if err := b.rt.RaiseEvent(ctx, "late", "go", "now"); err != nil {
		t.Fatalf("an event for an instance of a workflow not registered yet: %v", err)
	}
	if st, err := b.rt.Status(ctx, "late"); err != nil || st.Status != weft.StatusStalled ||
		st.Stall == nil || st.Stall.Reason != workflow.StallVersionNotAvailable || !strings.Contains(st.Stall.Description, `"Late"`) {
		t.Fatalf("before the workflow is registered: %+v %v, want STALLED naming the workflow", st, err)
	}
	if err := weft.RegisterWorkflow(b.rt, late, workflow.WithName("Late")); err != nil {
		t.Fatal(err)
	}
	st, err := b.rt.WaitForCompletion(ctx, "late")
	if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != `"released now"` || st.Stall != nil {
		t.Fatalf("once registered: %+v %v", st, err)
	}
}

// TestSendEventBetweenInstances: an event a workflow sends reaches the target,
// and the sender's outbox entry is gone once the target acknowledged it.
func TestSendEventBetweenInstances(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	_ = weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, target string) (string, error) {
		return "sent", ctx.SendEvent(target, "ping", map[string]string{"from": ctx.InstanceID()})
	}, workflow.WithName("Sender"))
	if _, err := a.rt.Schedule(ctx, "Waiter", "ping", weft.WithInstanceID("receiver")); err != nil {
		t.Fatal(err)
	}
	if st := a.run(t, "Sender", "receiver", weft.WithInstanceID("sender")); string(st.Output) != `"sent"` {
		t.Fatalf("sender: %+v", st)
	}
	st, err := a.rt.WaitForCompletion(ctx, "receiver")
	if err != nil || string(st.Output) != `{"from":"sender"}` {
		t.Fatalf("receiver: %+v %v", st, err)
	}
	// The acknowledgement clears the outbox (and with it the awake flag).
	if _, err := a.rt.Host().WaitFor(ctx, "sender", func(r *storage.InstanceRecord) bool { return r.NextOutboxSeq == 1 }); err != nil {
		t.Fatal(err)
	}
}

// TestWaitForCompletionOfInstancesInMemory: waiting on an instance held in
// memory uses its last commit instead of reading the store, and still answers as
// a read would: a deadline returns the latest status with the error, a
// completion that commits while the caller waits wakes it, an instance already
// finished (passivated) answers at once, and every waiter of many on one
// instance is woken.
func TestWaitForCompletionOfInstancesInMemory(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	id, err := a.rt.Schedule(ctx, "Waiter", "go")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	st, err := a.rt.WaitForCompletion(short, id)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || st == nil || st.Status != weft.StatusRunning {
		t.Fatalf("deadline while running: status %+v, err %v; want RUNNING with DeadlineExceeded", st, err)
	}

	const waiters = 8
	done := make(chan *weft.InstanceStatus, waiters)
	for range waiters {
		go func() {
			st, err := a.rt.WaitForCompletion(ctx, id)
			if err != nil {
				t.Error(err)
			}
			done <- st
		}()
	}
	if err := a.rt.RaiseEvent(ctx, id, "go", "payload"); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if st := <-done; st == nil || st.Status != weft.StatusCompleted || string(st.Output) != `"payload"` {
			t.Fatalf("woken waiter got %+v; want COMPLETED \"payload\"", st)
		}
	}
	st, err = a.rt.WaitForCompletion(ctx, id) // finished: passivated, read from the store
	if err != nil || st.Status != weft.StatusCompleted {
		t.Fatalf("wait after completion: %+v, %v", st, err)
	}
	if _, err := a.rt.WaitForCompletion(ctx, "no-such-instance"); !errors.Is(err, weft.ErrInstanceNotFound) {
		t.Fatalf("wait for an unknown instance: %v, want ErrInstanceNotFound", err)
	}
}

// TestActivityRecordsOnlyForRetries: a first attempt stores no activity record
// (its ActivityScheduled event is its record) and is still re-sent after a
// reopen; a retried attempt stores one (attempt, next attempt time), deleted
// with the outcome.
func TestActivityRecordsOnlyForRetries(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, weft.Options{})
	ctx := ctxT(t)
	db := a.rt.Host().DB()
	records := func(id string) []storage.ActivityRecord {
		t.Helper()
		recs, err := db.Activities(a.rt.Host().Partition(id), id)
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}

	if _, err := a.rt.Schedule(ctx, "Blocked", "first", weft.WithInstanceID("first")); err != nil {
		t.Fatal(err)
	}
	for len(a.attemptTimes("first")) == 0 {
		time.Sleep(time.Millisecond)
	}
	if recs := records("first"); len(recs) != 0 {
		t.Fatalf("a first attempt in flight has %d activity records, want none: %+v", len(recs), recs)
	}
	if err := a.rt.Close(); err != nil {
		t.Fatal(err)
	}
	b := newApp(t, dir, weft.Options{})
	close(b.release)
	if st, err := b.rt.WaitForCompletion(ctx, "first"); err != nil || string(st.Output) != `"released"` {
		t.Fatalf("first attempt after a reopen: %+v %v", st, err)
	}

	// Step2 fails twice; its retries wait 40 ms, then 80 ms.
	db = b.rt.Host().DB()
	a = b
	if _, err := a.rt.Schedule(ctx, "Chain", chainInput{Value: 1, FailStep: "Step2", SucceedOn: 3}, weft.WithInstanceID("retried")); err != nil {
		t.Fatal(err)
	}
	var seen []storage.ActivityRecord
	for {
		st, err := a.rt.Status(ctx, "retried")
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == weft.StatusCompleted {
			break
		}
		if recs := records("retried"); len(recs) > 0 {
			seen = append(seen, recs...)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if len(seen) == 0 {
		t.Fatal("no activity record was seen while Step2 waited for its retries")
	}
	for _, r := range seen {
		if r.TaskID != 1 || r.Attempt < 2 || r.NextAttemptAt.IsZero() {
			t.Fatalf("record %+v: want task 1 (Step2) at attempt 2 or 3 with its next attempt time", r)
		}
	}
	if recs := records("retried"); len(recs) != 0 {
		t.Fatalf("%d activity records left after the instance completed: %+v", len(recs), recs)
	}
}

// Steps calls Step n times in sequence, each with a payload of pad bytes, then
// waits on a Blocker; it returns the sum.
func Steps(ctx *workflow.Context, in struct{ N, Pad int }) (int, error) {
	v := 0
	for i := range in.N {
		if err := ctx.CallActivity("Step", stepInput{Name: fmt.Sprintf("s%d-%s", i, strings.Repeat("x", in.Pad)), Value: v}).Await(&v); err != nil {
			return 0, err
		}
	}
	var released string
	if err := ctx.CallActivity("Blocker", ctx.InstanceID()).Await(&released); err != nil {
		return 0, err
	}
	return v, nil
}

// TestHistoryInRowThenKeys: a short history lives in the instance's row (one
// key per step); one that outgrows storage.InlineHistoryLimit moves to its
// own keys once. Either way a reopen replays it and the instance completes,
// and the history reads the same.
func TestHistoryInRowThenKeys(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, weft.Options{})
	ctx := ctxT(t)
	for _, tc := range []struct {
		id     string
		n, pad int
	}{
		{"short", 3, 0},
		{"long", 40, 100}, // 40 events of over 100 bytes: past storage.InlineHistoryLimit
	} {
		if _, err := a.rt.Schedule(ctx, "Steps", struct{ N, Pad int }{tc.n, tc.pad}, weft.WithInstanceID(tc.id)); err != nil {
			t.Fatal(err)
		}
	}
	for len(a.attemptTimes("short")) == 0 || len(a.attemptTimes("long")) == 0 {
		time.Sleep(time.Millisecond) // both wait on their Blocker
	}
	before := map[string][]workflow.Event{}
	for _, id := range []string{"short", "long"} {
		h, err := a.rt.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		before[id] = h
	}
	if err := a.rt.Close(); err != nil {
		t.Fatal(err)
	}

	b := newApp(t, dir, weft.Options{})
	db := b.rt.Host().DB()
	for _, tc := range []struct {
		id   string
		keys bool
	}{{"short", false}, {"long", true}} {
		st, err := db.LoadInstance(b.rt.Host().Partition(tc.id), tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if st.HistoryKeys != tc.keys {
			t.Errorf("%s: history in keys = %v, want %v (%d events)", tc.id, st.HistoryKeys, tc.keys, len(st.History))
		}
		if len(st.History) != len(before[tc.id]) {
			t.Errorf("%s: %d events stored, the history read %d", tc.id, len(st.History), len(before[tc.id]))
		}
	}
	close(b.release)
	for _, tc := range []struct {
		id   string
		want string
	}{{"short", "3"}, {"long", "40"}} {
		st, err := b.rt.WaitForCompletion(ctx, tc.id)
		if err != nil || string(st.Output) != tc.want {
			t.Fatalf("%s after a reopen: %+v %v", tc.id, st, err)
		}
		h, err := b.rt.History(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		prefix := before[tc.id]
		if len(h) != len(prefix)+2 { // + the Blocker's completion and the workflow's
			t.Fatalf("%s: %d events after completing, %d before", tc.id, len(h), len(prefix))
		}
		for i, ev := range prefix {
			if h[i].Kind != ev.Kind || h[i].TaskID != ev.TaskID {
				t.Fatalf("%s: event %d is %s#%d, was %s#%d", tc.id, i, h[i].Kind, h[i].TaskID, ev.Kind, ev.TaskID)
			}
		}
	}
}

// TestReloadedInstanceKeepsListingAndAwakeSet: an instance loaded back from
// disk (its timer fired after it was passivated) writes its listing entry and
// awake flag only when they change; they must still change when they should.
// Its activity in flight marks it awake, so a reopened runtime resumes it; its
// completion moves it in the listing; an eternal monitor passivated between
// generations stays listed once, as running, until it completes.
func TestReloadedInstanceKeepsListingAndAwakeSet(t *testing.T) {
	dir := t.TempDir()
	sleepThenBlock := func(ctx *workflow.Context, _ any) (string, error) {
		if err := ctx.CreateTimer(50 * time.Millisecond).Await(nil); err != nil {
			return "", err
		}
		var v string
		if err := ctx.CallActivity("Blocker", ctx.InstanceID()).Await(&v); err != nil {
			return "", err
		}
		return v, ctx.CreateTimer(50 * time.Millisecond).Await(nil)
	}
	opts := weft.Options{SleepPassivation: 10 * time.Millisecond}
	a := newApp(t, dir, opts)
	ctx := ctxT(t)
	if err := weft.RegisterWorkflow(a.rt, sleepThenBlock, workflow.WithName("SleepThenBlock")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.Schedule(ctx, "SleepThenBlock", nil, weft.WithInstanceID("stb")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.Schedule(ctx, "Monitor", monitorState{MaxCycles: 4}, weft.WithInstanceID("mon")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "the Blocker attempt after the timer", func() bool { return len(a.attemptTimes("stb")) > 0 })
	awake := func(rt *weft.Runtime) []string {
		t.Helper()
		var ids []string
		if err := rt.Host().DB().Awake(func(_ uint16, id string) error { ids = append(ids, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := awake(a.rt); !slices.Contains(got, "stb") {
		t.Fatalf("awake set %v while stb's activity is in flight; want stb in it", got)
	}
	listed := func(rt *weft.Runtime, status weft.RuntimeStatus) []string {
		t.Helper()
		page, err := rt.List(ctx, weft.ListQuery{Statuses: []weft.RuntimeStatus{status}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, in := range page.Instances {
			ids = append(ids, in.ID)
		}
		slices.Sort(ids)
		return ids
	}
	if got := listed(a.rt, weft.StatusRunning); !slices.Contains(got, "stb") {
		t.Fatalf("running: %v; want stb", got)
	}
	if err := a.rt.Close(); err != nil {
		t.Fatal(err)
	}

	b := newApp(t, dir, opts) // resumes stb from the awake set: its Blocker runs again
	if err := weft.RegisterWorkflow(b.rt, sleepThenBlock, workflow.WithName("SleepThenBlock")); err != nil {
		t.Fatal(err)
	}
	close(b.release)
	for _, id := range []string{"stb", "mon"} {
		if st, err := b.rt.WaitForCompletion(ctx, id); err != nil || st.Status != weft.StatusCompleted {
			t.Fatalf("%s after a reopen: %+v %v", id, st, err)
		}
	}
	if got := listed(b.rt, weft.StatusCompleted); !slices.Equal(got, []string{"mon", "stb"}) {
		t.Errorf("completed: %v; want [mon stb]", got)
	}
	if got := listed(b.rt, weft.StatusRunning); len(got) != 0 {
		t.Errorf("still listed as running: %v", got)
	}
	if got := awake(b.rt); len(got) != 0 {
		t.Errorf("awake set %v after every instance completed; want it empty", got)
	}
}

// Idempotency keys are checked before anything is sent: a malformed one is
// ErrInvalidInput, naming the key.
func TestRaiseEventIdempotencyKeyIsValidated(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	rt, ctx := a.rt, ctxT(t)
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"order-17:approval", true},
		{"5f0c3a1e-8b1d-4c4e-9a39-0d1f2e3a4b5c", true},
		{strings.Repeat("k", weft.MaxIdempotencyKeyLen), true},
		{"", false},
		{strings.Repeat("k", weft.MaxIdempotencyKeyLen+1), false},
		{"with space", false},
		{"a/b", false},
	} {
		err := weft.ValidateIdempotencyKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateIdempotencyKey(%q) = %v, want ok %v", tc.key, err, tc.ok)
		}
		if tc.ok {
			continue
		}
		err = rt.RaiseEvent(ctx, "any", "e", 1, weft.WithIdempotencyKey(tc.key))
		if !errors.Is(err, weft.ErrInvalidInput) || !strings.Contains(err.Error(), "idempotency key") {
			t.Errorf("RaiseEvent with key %q: %v, want ErrInvalidInput naming the key", tc.key, err)
		}
	}
}

// receivedSenders lists the senders instance id keeps a received mark of.
func receivedSenders(t *testing.T, rt *weft.Runtime, id string) []string {
	t.Helper()
	h := rt.Host()
	senders, err := h.DB().ReceivedSenders(h.Partition(id), id)
	if err != nil {
		t.Fatal(err)
	}
	return senders
}
