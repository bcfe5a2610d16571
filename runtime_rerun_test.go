package weft_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/workflow"
)

// TestRerun: a finished instance rerun from one of its calls: what came
// before is kept (its activities do not run again), the call runs again (with
// a new input if given), and the workflow goes on; from a child workflow's
// start the child runs again under a new id; what was in flight at the point
// runs again with it; unknown tasks, unfinished sources and taken ids are
// refused.
func TestRerun(t *testing.T) {
	ctx := ctxT(t)
	var mu sync.Mutex
	runs := map[string]int{} // activity input → executions
	rt, err := weft.Open(weft.Options{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	note := func(_ context.Context, s string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		runs[s]++
		return s, nil
	}
	chain := func(ctx *workflow.Context, _ any) (string, error) {
		out := ""
		for _, step := range []string{"a", "b", "c"} {
			var got string
			if err := ctx.CallActivity("Note", step).Await(&got); err != nil {
				return "", err
			}
			out += got
		}
		return out, nil
	}
	fan := func(ctx *workflow.Context, _ any) (string, error) {
		tasks := []*workflow.Task{ctx.CallActivity("Note", "x"), ctx.CallActivity("Note", "y")}
		out := ""
		for _, tk := range tasks {
			var got string
			if err := tk.Await(&got); err != nil {
				return "", err
			}
			out += got
		}
		return out, nil
	}
	parent := func(ctx *workflow.Context, _ any) (string, error) {
		var got string
		err := ctx.CallChildWorkflow("Chain", nil).Await(&got)
		return "child said " + got, err
	}
	waits := func(ctx *workflow.Context, _ any) (any, error) {
		return nil, ctx.WaitForExternalEvent("never", 0).Await(nil)
	}
	mixed := func(ctx *workflow.Context, _ any) (string, error) { // a timer, a child and an activity in flight at once
		timer := ctx.CreateTimer(20 * time.Millisecond)
		child := ctx.CallChildWorkflow("Chain", nil)
		act := ctx.CallActivity("Note", "m")
		var c, a string
		if err := errors.Join(timer.Await(nil), child.Await(&c), act.Await(&a)); err != nil {
			return "", err
		}
		return c + a, nil
	}
	if err := errors.Join(
		weft.RegisterActivity(rt, note, workflow.WithName("Note")),
		weft.RegisterWorkflow(rt, chain, workflow.WithName("Chain")),
		weft.RegisterWorkflow(rt, fan, workflow.WithName("Fan")),
		weft.RegisterWorkflow(rt, parent, workflow.WithName("Parent")),
		weft.RegisterWorkflow(rt, waits, workflow.WithName("Waits")),
		weft.RegisterWorkflow(rt, mixed, workflow.WithName("Mixed")),
	); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for id, name := range map[string]string{"chain": "Chain", "fan": "Fan", "parent": "Parent", "mixed": "Mixed"} {
		if _, err := rt.Schedule(ctx, name, nil, weft.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		if st, err := rt.WaitForCompletion(ctx, id); err != nil || st.Status != weft.StatusCompleted {
			t.Fatalf("%s: %+v %v", id, st, err)
		}
	}
	if _, err := rt.Schedule(ctx, "Waits", nil, weft.WithInstanceID("running")); err != nil {
		t.Fatal(err)
	}
	before := func(s string) int { mu.Lock(); defer mu.Unlock(); return runs[s] }

	for _, tc := range []struct {
		name   string
		source string
		task   int64
		opts   weft.RerunOptions
		output string // "" when refused
		err    error
		msg    string
		ran    []string // activity inputs that run again
	}{
		{name: "from the second step", source: "chain", task: 1, opts: weft.RerunOptions{InstanceID: "chain-2"}, output: `"abc"`, ran: []string{"b", "c"}},
		{name: "with a new input", source: "chain", task: 1, opts: weft.RerunOptions{InstanceID: "chain-3", Input: json.RawMessage(`"B"`), OverwriteInput: true}, output: `"aBc"`, ran: []string{"B", "c"}},
		{name: "from the first of a batch", source: "fan", task: 0, opts: weft.RerunOptions{InstanceID: "fan-2"}, output: `"xy"`, ran: []string{"x", "y"}},
		{name: "from a child's start", source: "parent", task: 0, opts: weft.RerunOptions{InstanceID: "parent-2"}, output: `"child said abc"`, ran: []string{"a", "b", "c"}},
		{name: "from a child's start, its id given", source: "parent", task: 0, opts: weft.RerunOptions{InstanceID: "parent-3", ChildInstanceID: "kid-3"}, output: `"child said abc"`},
		{name: "with a batch in flight", source: "fan", task: 1, opts: weft.RerunOptions{InstanceID: "fan-3"}, output: `"xy"`, ran: []string{"x", "y"}},
		{name: "with a timer and a child in flight", source: "mixed", task: 2, opts: weft.RerunOptions{InstanceID: "mixed-2"}, output: `"abcm"`, ran: []string{"m", "a"}},
		{name: "an unknown task", source: "chain", task: 7, err: weft.ErrInvalidInput, msg: "schedules no activity or child workflow as task 7"},
		{name: "a child id for an activity", source: "chain", task: 0, opts: weft.RerunOptions{ChildInstanceID: "kid"}, err: weft.ErrInvalidInput, msg: "is activity Note"},
		{name: "a running source", source: "running", task: 0, err: weft.ErrNotFinished, msg: "it is RUNNING"},
		{name: "a taken id", source: "chain", task: 1, opts: weft.RerunOptions{InstanceID: "fan"}, err: weft.ErrInstanceExists},
		{name: "a missing source", source: "nope", task: 0, err: weft.ErrInstanceNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counts := map[string]int{}
			for _, s := range tc.ran {
				counts[s] = before(s)
			}
			otherA := before("a")
			id, err := rt.Rerun(ctx, tc.source, tc.task, tc.opts)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err %v, want %v saying %q", err, tc.err, tc.msg)
				}
				return
			}
			if err != nil || id != tc.opts.InstanceID {
				t.Fatalf("rerun: %q %v", id, err)
			}
			st, err := rt.WaitForCompletion(ctx, id)
			if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != tc.output {
				t.Fatalf("rerun instance: %+v %v, want output %s", st, err, tc.output)
			}
			for _, s := range tc.ran {
				if got := before(s) - counts[s]; got != 1 {
					t.Errorf("activity %q ran %d more times, want once", s, got)
				}
			}
			if tc.source == "chain" && before("a") != otherA {
				t.Errorf("the step before the rerun point ran again")
			}
			if tc.source == "mixed" { // the child in flight ran again under a new id; the source's is untouched
				kid, err := rt.Status(ctx, workflow.ChildInstanceID(id, 1))
				if err != nil || kid.Status != weft.StatusCompleted || kid.ParentID != id {
					t.Errorf("the rerun's child: %+v %v", kid, err)
				}
				old, err := rt.Status(ctx, workflow.ChildInstanceID("mixed", 1))
				if err != nil || old.ParentID != "mixed" {
					t.Errorf("the source's child: %+v %v", old, err)
				}
			}
			if tc.opts.ChildInstanceID != "" {
				if kid, err := rt.Status(ctx, tc.opts.ChildInstanceID); err != nil || kid.Status != weft.StatusCompleted || kid.ParentID != id {
					t.Errorf("child %s: %+v %v", tc.opts.ChildInstanceID, kid, err)
				}
			}
		})
	}
}
