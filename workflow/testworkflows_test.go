package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The workflows the datadriven scripts under testdata/ drive. Activities are never
// run here: the scripts play their outcomes as history events.

var chainPolicy = &RetryPolicy{MaxAttempts: 3, FirstRetryInterval: time.Second, BackoffCoefficient: 2, MaxRetryInterval: time.Minute}

// Chain is the seed's task chain: each step's output is the next step's input, and
// exhausted retries run a compensation before failing.
func Chain(ctx *Context, in int) (int, error) {
	v := in
	for _, step := range []string{"Step1", "Step2", "Step3", "Step4"} {
		if err := ctx.CallActivity(step, v, WithRetryPolicy(chainPolicy)).Await(&v); err != nil {
			var tf *TaskFailedError
			if errors.As(err, &tf) {
				ctx.Logger().Info("compensating", "failed", tf.TaskName)
				if cerr := ctx.CallActivity("Compensate", tf.TaskName).Await(nil); cerr != nil {
					return 0, cerr
				}
			}
			return 0, err
		}
	}
	return v, nil
}

// ChainRenamed is Chain with its second step renamed: replaying a Chain history
// with it must be detected.
func ChainRenamed(ctx *Context, in int) (int, error) {
	v := in
	for _, step := range []string{"Step1", "Step2b", "Step3", "Step4"} {
		if err := ctx.CallActivity(step, v, WithRetryPolicy(chainPolicy)).Await(&v); err != nil {
			return 0, err
		}
	}
	return v, nil
}

// ChainShort is Chain without its last two steps.
func ChainShort(ctx *Context, in int) (int, error) {
	v := in
	for _, step := range []string{"Step1", "Step2"} {
		if err := ctx.CallActivity(step, v).Await(&v); err != nil {
			return 0, err
		}
	}
	return v, nil
}

// FanOut schedules one activity per item at once and sums the results in order.
func FanOut(ctx *Context, n int) (int, error) {
	var items []int
	if err := ctx.CallActivity("GetWorkBatch", n).Await(&items); err != nil {
		return 0, err
	}
	tasks := make([]*Task, len(items))
	for i, item := range items {
		tasks[i] = ctx.CallActivity("ProcessWorkItem", item)
	}
	if err := WhenAll(tasks...); err != nil {
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
	return sum, ctx.CallActivity("PostResults", sum).Await(nil)
}

// BoundedFanOut processes n items with at most 2 in flight.
func BoundedFanOut(ctx *Context, n int) (int, error) {
	tasks, err := Parallel(ctx, n, 2, func(i int) *Task { return ctx.CallActivity("ProcessWorkItem", i) })
	if err != nil {
		return 0, err
	}
	sum := 0
	for _, t := range tasks {
		var v int
		_ = t.Await(&v)
		sum += v
	}
	return sum, nil
}

// Approval waits for "ManagerApproval" or a 3-day timer, whichever comes first.
func Approval(ctx *Context, _ any) (string, error) {
	timer := ctx.CreateTimer(72 * time.Hour)
	approval := ctx.WaitForExternalEvent("ManagerApproval", 0)
	winner, err := WhenAny(timer, approval)
	if err != nil {
		return "", err
	}
	if winner == 0 {
		approval.Cancel()
		return "timed out", nil
	}
	timer.Cancel()
	var approved bool
	if err := approval.Await(&approved); err != nil {
		return "", err
	}
	if approved {
		return "approved", nil
	}
	return "rejected", nil
}

// WaitTimeout waits for one event with a timeout, then, if it timed out, for the
// same event again without one.
func WaitTimeout(ctx *Context, _ any) (string, error) {
	var v string
	err := ctx.WaitForExternalEvent("go", 10*time.Second).Await(&v)
	if errors.Is(err, ErrTimeout) {
		ctx.Logger().Info("first wait timed out")
		if err := ctx.WaitForExternalEvent("go", 0).Await(&v); err != nil {
			return "", err
		}
		return "late:" + v, nil
	}
	return "on time:" + v, err
}

// CollectEvents consumes n events named "item" in order.
func CollectEvents(ctx *Context, n int) ([]int, error) {
	var got []int
	for range n {
		var v int
		if err := ctx.WaitForExternalEvent("item", 0).Await(&v); err != nil {
			return nil, err
		}
		got = append(got, v)
	}
	return got, nil
}

// StepThenWait runs a step, then waits up to an hour for "Approval".
func StepThenWait(ctx *Context, _ any) (string, error) {
	if err := ctx.CallActivity("Step1", nil).Await(nil); err != nil {
		return "", err
	}
	var v string
	err := ctx.WaitForExternalEvent("Approval", time.Hour).Await(&v)
	return v, err
}

// Parent calls a child workflow and reports how it went.
func Parent(ctx *Context, in string) (string, error) {
	var out string
	err := ctx.CallChildWorkflow("Child", in).Await(&out)
	var tf *TaskFailedError
	if errors.As(err, &tf) {
		return "child failed: " + tf.Failure.Message, nil
	}
	return "child said " + out, err
}

// RetryingParent retries its child twice, 5 s apart.
func RetryingParent(ctx *Context, in string) (string, error) {
	var out string
	err := ctx.CallChildWorkflow("Child", in, WithInstanceID("kid"),
		WithRetryPolicy(&RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 5 * time.Second})).Await(&out)
	return out, err
}

// Monitor is an eternal monitor: check, sleep, continue as new with a counter; it
// ends after 3 generations. It reports the events it was handed over.
type MonitorState struct {
	Cycle  int
	Events []string `json:",omitempty"`
	Keep   bool
}

func Monitor(ctx *Context, st MonitorState) (MonitorState, error) {
	var status string
	if err := ctx.CallActivity("GetStatus", st.Cycle).Await(&status); err != nil {
		return st, err
	}
	// Consume at most one event per generation if one is already there.
	ev := ctx.WaitForExternalEvent("note", time.Second)
	sleep := ctx.CreateTimer(time.Hour)
	if i, _ := WhenAny(ev, sleep); i == 0 {
		var note string
		if err := ev.Await(&note); err == nil {
			st.Events = append(st.Events, note)
		}
		_ = sleep.Await(nil)
	}
	if st.Cycle >= 2 {
		return st, nil
	}
	st.Cycle++
	ctx.ContinueAsNew(st, st.Keep)
	return st, nil
}

// Status publishes its progress as custom status.
func Status(ctx *Context, _ any) (string, error) {
	_ = ctx.SetCustomStatus(map[string]any{"stage": "reserving"})
	if err := ctx.CallActivity("Reserve", nil).Await(nil); err != nil {
		return "", err
	}
	_ = ctx.SetCustomStatus(map[string]any{"stage": "shipping"})
	return "done", ctx.CallActivity("Ship", nil).Await(nil)
}

// Panics panics after its first step.
func Panics(ctx *Context, _ any) (string, error) {
	_ = ctx.CallActivity("Step1", nil).Await(nil)
	var m map[string]int
	m["boom"]++ // assignment to entry in nil map
	return "unreachable", nil
}

// deadlockRelease lets the Deadlocks test unblock the stuck goroutine afterwards.
var deadlockRelease = make(chan struct{})

// Deadlocks blocks on a channel instead of a weft task.
func Deadlocks(ctx *Context, _ any) (string, error) {
	_ = ctx.CallActivity("Step1", nil).Await(nil)
	<-deadlockRelease
	return "unreachable", ctx.CallActivity("Step2", nil).Await(nil)
}

// Uuids returns two deterministic UUIDs and the workflow time.
func Uuids(ctx *Context, _ any) ([]string, error) {
	a, b := ctx.NewUUID(), ctx.NewUUID()
	_ = ctx.CreateTimer(time.Minute).Await(nil)
	return []string{a, b, ctx.Now().Format(time.RFC3339)}, nil
}

// SendsEvent raises an event on another instance and completes.
func SendsEvent(ctx *Context, target string) (string, error) {
	if err := ctx.SendEvent(target, "ping", "hello"); err != nil {
		return "", err
	}
	return "sent", nil
}

func testRegistry() *Registry {
	r := NewRegistry()
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(RegisterWorkflow(r, Chain))
	must(RegisterWorkflow(r, ChainRenamed))
	must(RegisterWorkflow(r, ChainShort))
	must(RegisterWorkflow(r, FanOut))
	must(RegisterWorkflow(r, BoundedFanOut))
	must(RegisterWorkflow(r, Approval))
	must(RegisterWorkflow(r, WaitTimeout))
	must(RegisterWorkflow(r, CollectEvents))
	must(RegisterWorkflow(r, StepThenWait))
	must(RegisterWorkflow(r, Parent))
	must(RegisterWorkflow(r, RetryingParent))
	must(RegisterWorkflow(r, Monitor))
	must(RegisterWorkflow(r, Status))
	must(RegisterWorkflow(r, Panics))
	must(RegisterWorkflow(r, Deadlocks))
	must(RegisterWorkflow(r, Uuids))
	must(RegisterWorkflow(r, SendsEvent))
	must(RegisterWorkflow(r, func(ctx *Context, in string) (string, error) {
		return "", fmt.Errorf("child %s cannot go on", in)
	}, WithName("Child")))
	must(RegisterWorkflow(r, PatchOld))
	must(RegisterWorkflow(r, PatchNew))
	must(RegisterWorkflow(r, PatchRetired))
	must(RegisterWorkflow(r, PatchNested))
	must(RegisterWorkflow(r, EmptyPatch))
	must(RegisterWorkflow(r, VersionedV1, WithName("Versioned"), WithVersion("v1")))
	must(RegisterWorkflow(r, VersionedV2, WithName("Versioned"), WithVersion("v2"), AsDefault()))
	must(RegisterActivity(r, func(ctx context.Context, in int) (int, error) { return in + 1, nil }, WithName("Step1")))
	return r
}

// The patch scripts' workflows: one workflow's code as it changes. PatchOld
// runs A then B; PatchNew adds C between them under patch "add-c"; PatchRetired
// keeps only the new branch; PatchNested adds D under "add-d" inside "add-c".

func PatchOld(ctx *Context, _ any) (string, error) {
	if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
		return "", err
	}
	return "old", ctx.CallActivity("B", nil).Await(nil)
}

func PatchNew(ctx *Context, _ any) (string, error) {
	if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
		return "", err
	}
	out := "unpatched"
	if ctx.IsPatched("add-c") {
		out = "patched"
		if err := ctx.CallActivity("C", nil).Await(nil); err != nil {
			return "", err
		}
	}
	if ctx.IsPatched("add-c") != (out == "patched") {
		return "", errors.New("IsPatched changed its answer")
	}
	return out, ctx.CallActivity("B", nil).Await(nil)
}

func PatchRetired(ctx *Context, _ any) (string, error) {
	if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
		return "", err
	}
	if err := ctx.CallActivity("C", nil).Await(nil); err != nil {
		return "", err
	}
	return "patched", ctx.CallActivity("B", nil).Await(nil)
}

func PatchNested(ctx *Context, _ any) (string, error) {
	if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
		return "", err
	}
	out := "-"
	if ctx.IsPatched("add-c") {
		out = "c"
		if err := ctx.CallActivity("C", nil).Await(nil); err != nil {
			return "", err
		}
		if ctx.IsPatched("add-d") {
			out += "d"
			if err := ctx.CallActivity("D", nil).Await(nil); err != nil {
				return "", err
			}
		}
	}
	return out, ctx.CallActivity("B", nil).Await(nil)
}

// EmptyPatch asks for a patch with no name.
func EmptyPatch(ctx *Context, _ any) (bool, error) { return ctx.IsPatched(""), nil }

// Versioned's versions: v1 runs A, v2 runs B.
func VersionedV1(ctx *Context, _ any) (string, error) {
	return "v1", ctx.CallActivity("A", nil).Await(nil)
}
func VersionedV2(ctx *Context, _ any) (string, error) {
	return "v2", ctx.CallActivity("B", nil).Await(nil)
}
