package weft_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/limits"
	"github.com/weftrt/weft/workflow"
)

// gauge counts the attempts of an activity running at once, and the most
// ever seen.
type gauge struct {
	now, most atomic.Int64
	mu        sync.Mutex
	runs      map[int]int
}

func (g *gauge) run(i int, d time.Duration) {
	n := g.now.Add(1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(d)
	g.now.Add(-1)
	g.mu.Lock()
	g.runs[i]++
	g.mu.Unlock()
}

// TestActivityLimit: a fan-out of 1,000 calls of an activity limited to 10
// never has more than 10 running (counted by the activity itself), uses all
// 10, and runs each call once; unlimited activities are not held back; a
// retried attempt asks again; the limiter shows what it holds.
func TestActivityLimit(t *testing.T) {
	t.Parallel()
	g := &gauge{runs: map[int]int{}}
	a := newApp(t, "", weft.Options{ActivityLimits: map[string]int{"Limited": 10, "Flaky": 1}, ActivityConcurrency: 64})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(weft.RegisterActivity(a.rt, func(ctx context.Context, i int) (int, error) {
		g.run(i, 20*time.Millisecond)
		return i, nil
	}, workflow.WithName("Limited")))
	var flaky atomic.Int64
	must(weft.RegisterActivity(a.rt, func(ctx context.Context, _ any) (int, error) {
		if flaky.Add(1) < 3 {
			return 0, fmt.Errorf("not yet")
		}
		return int(flaky.Load()), nil
	}, workflow.WithName("Flaky")))
	must(weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, n int) (int, error) {
		// All n asked for at once: only the limit holds them back.
		tasks, err := workflow.Parallel(ctx, n, 0, func(i int) *workflow.Task { return ctx.CallActivity("Limited", i) })
		return len(tasks), err
	}, workflow.WithName("LimitedFan")))
	must(weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, _ any) (int, error) {
		var v int
		err := ctx.CallActivity("Flaky", nil, workflow.WithRetryPolicy(fastRetry)).Await(&v)
		return v, err
	}, workflow.WithName("FlakyOnce")))

	st := a.run(t, "LimitedFan", 1000)
	if st.Status != weft.StatusCompleted || string(st.Output) != "1000" {
		t.Fatalf("fan-out: %+v", st)
	}
	if most := g.most.Load(); most != 10 {
		t.Errorf("at most %d ran at once; want 10 (the limit, and no fewer: the limit is used)", most)
	}
	for i := range 1000 {
		if g.runs[i] != 1 {
			t.Errorf("call %d ran %d times", i, g.runs[i])
		}
	}
	// Unlimited activities run while the limited one is held.
	if st := a.run(t, "Chain", chainInput{Value: 1}); st.Status != weft.StatusCompleted {
		t.Errorf("an unlimited chain: %+v", st)
	}
	if st := a.run(t, "FlakyOnce", nil); st.Status != weft.StatusCompleted || string(st.Output) != "3" {
		t.Errorf("a retried limited activity: %+v", st)
	}
	awaitLimiter(t, a.rt, limits.InstanceID(limits.KindActivity, "Limited"), `"limit":10,"running":0,"waiting":0`)
	// Requests need no received marks: a limiter that heard from every
	// instance that ever asked it keeps none.
	if marks := receivedSenders(t, a.rt, limits.InstanceID(limits.KindActivity, "Limited")); len(marks) != 0 {
		t.Errorf("the limiter keeps received marks of %d senders: %v", len(marks), marks)
	}
	// A limiter terminated by hand is made anew by the next request.
	if err := a.rt.Terminate(ctxT(t), limits.InstanceID(limits.KindActivity, "Limited"), weft.TerminateOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := a.run(t, "LimitedFan", 20); st.Status != weft.StatusCompleted || string(st.Output) != "20" {
		t.Fatalf("a fan-out after its limiter was terminated: %+v", st)
	}
}

// TestActivityLimitAcrossRestart: attempts waiting for permits and attempts
// holding them survive a restart: after it, every call completes, once, and
// the limit still holds.
func TestActivityLimitAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := &gauge{runs: map[int]int{}}
	open := func(block chan struct{}) *app {
		a := newApp(t, dir, weft.Options{ActivityLimits: map[string]int{"Held": 3}})
		if err := weft.RegisterActivity(a.rt, func(ctx context.Context, i int) (int, error) {
			select {
			case <-block:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			g.run(i, time.Millisecond)
			return i, nil
		}, workflow.WithName("Held")); err != nil {
			t.Fatal(err)
		}
		if err := weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, n int) (int, error) {
			tasks, err := workflow.Parallel(ctx, n, 0, func(i int) *workflow.Task { return ctx.CallActivity("Held", i) })
			return len(tasks), err
		}, workflow.WithName("HeldFan")); err != nil {
			t.Fatal(err)
		}
		return a
	}
	blocked := make(chan struct{})
	a := open(blocked)
	if _, err := a.rt.Schedule(ctxT(t), "HeldFan", 20, weft.WithInstanceID("held-fan")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := a.rt.Status(ctxT(t), limits.InstanceID(limits.KindActivity, "Held"))
		if err == nil && strings.Contains(string(st.CustomStatus), `"running":3,"waiting":17`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the limiter never held 3 with 17 waiting: %+v %v", st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.rt.Close(); err != nil { // the 3 running attempts are cancelled
		t.Fatal(err)
	}
	released := make(chan struct{})
	close(released)
	a = open(released)
	st, err := a.rt.WaitForCompletion(ctxT(t), "held-fan")
	if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != "20" {
		t.Fatalf("after the restart: %+v, %v", st, err)
	}
	if most := g.most.Load(); most > 3 {
		t.Errorf("%d ran at once; the limit is 3", most)
	}
	for i := range 20 {
		if g.runs[i] != 1 {
			t.Errorf("call %d completed %d times", i, g.runs[i])
		}
	}
}

func TestParseActivityLimits(t *testing.T) {
	got, err := weft.ParseActivityLimits(" ProcessWorkItem=20, SendEmail=5 ")
	if err != nil || len(got) != 2 || got["ProcessWorkItem"] != 20 || got["SendEmail"] != 5 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"ProcessWorkItem", "X=0", "X=-1", "=3", "X=many", "X=1,X=2"} {
		if _, err := weft.ParseActivityLimits(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestWorkflowLimit: with Waiter limited to 2, of 5 started only 2 run and
// the others wait PENDING; each that finishes lets a waiting one start; a
// waiting one terminated gives its place up; the limit holds throughout.
// (Which ones run first is the order their requests reach the limiter, not
// the order they were started in: their starts send them concurrently. The
// limiter's FIFO order is limits/limiter_test.go's.)
func TestWorkflowLimit(t *testing.T) {
	t.Parallel()
	a := newApp(t, "", weft.Options{WorkflowLimits: map[string]int{"Waiter": 2}})
	ctx := ctxT(t)
	ids := []string{"w0", "w1", "w2", "w3", "w4"}
	for _, id := range ids {
		if _, err := a.rt.Schedule(ctx, "Waiter", "go", weft.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
	}
	statuses := func() map[string]weft.RuntimeStatus {
		out := map[string]weft.RuntimeStatus{}
		for _, id := range ids {
			st, err := a.rt.Status(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = st.Status
		}
		return out
	}
	// await waits until the instances' statuses, counted by status, are
	// want, and returns them by status.
	await := func(what string, want map[weft.RuntimeStatus]int) map[weft.RuntimeStatus][]string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := statuses()
			by := map[weft.RuntimeStatus][]string{}
			for _, id := range ids {
				by[got[id]] = append(by[got[id]], id)
			}
			if n := len(by[weft.StatusRunning]); n > 2 {
				t.Fatalf("%d running at once: %v", n, got)
			}
			ok := len(by) == len(want)
			for s, n := range want {
				ok = ok && len(by[s]) == n
			}
			if ok {
				return by
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v, want %v", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	by := await("two running", map[weft.RuntimeStatus]int{weft.StatusRunning: 2, weft.StatusPending: 3})
	done, gone := by[weft.StatusRunning][0], by[weft.StatusPending][0]
	if err := a.rt.Terminate(ctx, gone, weft.TerminateOptions{Reason: "not needed"}); err != nil {
		t.Fatal(err)
	}
	if err := a.rt.RaiseEvent(ctx, done, "go", 1); err != nil {
		t.Fatal(err)
	}
	by = await("one done, one waiting terminated, one waiting in its place", map[weft.RuntimeStatus]int{
		weft.StatusCompleted: 1, weft.StatusTerminated: 1, weft.StatusRunning: 2, weft.StatusPending: 1})
	if by[weft.StatusCompleted][0] != done || by[weft.StatusTerminated][0] != gone {
		t.Fatalf("completed %v, terminated %v; want %s and %s", by[weft.StatusCompleted], by[weft.StatusTerminated], done, gone)
	}
	for _, id := range slices.Concat(by[weft.StatusRunning], by[weft.StatusPending]) {
		if err := a.rt.RaiseEvent(ctx, id, "go", 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range slices.Concat(by[weft.StatusRunning], by[weft.StatusPending]) {
		if st, err := a.rt.WaitForCompletion(ctx, id); err != nil || st.Status != weft.StatusCompleted {
			t.Fatalf("%s: %+v, %v", id, st, err)
		}
	}
	awaitLimiter(t, a.rt, limits.InstanceID(limits.KindWorkflow, "Waiter"), `"limit":2,"running":0,"waiting":0`)
}

// awaitLimiter waits until a limiter's status says want: the last permits
// come back after their holders finished, through the holders' outboxes.
func awaitLimiter(t *testing.T, rt *weft.Runtime, id, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := rt.Status(ctxT(t), id)
		if err == nil && strings.Contains(string(st.CustomStatus), want) {
			return
		}
		if time.Now().After(deadline) {
			if st != nil {
				t.Fatalf("limiter %s: %s, %v; want %s", id, st.CustomStatus, err, want)
			}
			t.Fatalf("limiter %s: %v; want %s", id, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStalePermitRunsNothing: a permit for an attempt of an activity that
// is not limited here (a limit removed while requests waited, and granted
// later) is given back; the attempt, dispatched already, does not run again.
func TestStalePermitRunsNothing(t *testing.T) {
	t.Parallel()
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	if _, err := a.rt.Schedule(ctx, "Blocked", "stale", weft.WithInstanceID("stale")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(a.attemptTimes("stale")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Blocker never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	grant := limits.Grant{Holders: []limits.Holder{{Instance: "stale", Task: 0, Attempt: 1}}, Limiter: limits.InstanceID(limits.KindActivity, "Blocker")}
	if err := a.rt.RaiseEvent(ctx, "stale", limits.PermitEvent, grant); err != nil {
		t.Fatal(err)
	}
	close(a.release)
	if st, err := a.rt.WaitForCompletion(ctx, "stale"); err != nil || st.Status != weft.StatusCompleted {
		t.Fatalf("stale: %+v, %v", st, err)
	}
	if n := len(a.attemptTimes("stale")); n != 1 {
		t.Errorf("the Blocker ran %d times; a stale permit must not run it again", n)
	}
	// The permit went back to the limiter (which the give-back created).
	waitFor := time.Now().Add(20 * time.Second)
	for {
		if _, err := a.rt.Status(ctx, grant.Limiter); err == nil {
			break
		}
		if time.Now().After(waitFor) {
			t.Fatal("the stale permit was not given back to its limiter")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
