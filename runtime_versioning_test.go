package weft_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/workflow"
)

// The versioning tests change a workflow's code between two runtimes over one
// data directory, as a deploy does.

// patchWorkflow is "Shipping" as it changes: before the patch it runs A then B
// and waits for "go"; the patched code runs C between A and B.
func patchWorkflow(patched bool) func(*workflow.Context, any) (string, error) {
	return func(ctx *workflow.Context, _ any) (string, error) {
		if err := ctx.CallActivity("Note", "A").Await(nil); err != nil {
			return "", err
		}
		branch := "old"
		if patched && ctx.IsPatched("add-c") {
			branch = "patched"
			if err := ctx.CallActivity("Note", "C").Await(nil); err != nil {
				return "", err
			}
		} else if patched {
			branch = "unpatched"
		}
		if err := ctx.CallActivity("Note", "B").Await(nil); err != nil {
			return "", err
		}
		var ev string
		err := ctx.WaitForExternalEvent("go", 0).Await(&ev)
		return branch + " " + ev, err
	}
}

// versionApp opens a runtime over dir with the activity Note and the given
// registrations, started.
func versionApp(t *testing.T, dir string, register func(rt *weft.Runtime) error) *weft.Runtime {
	t.Helper()
	rt, err := weft.Open(weft.Options{Dir: dir, Logger: quiet, StallRetryDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	if err := weft.RegisterActivity(rt, func(ctx context.Context, s string) (string, error) { return s, nil }, workflow.WithName("Note")); err != nil {
		t.Fatal(err)
	}
	if err := register(rt); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rt
}

// awaitStatus waits until instance id reaches status.
func awaitStatus(t *testing.T, rt *weft.Runtime, id string, status weft.RuntimeStatus) *weft.InstanceStatus {
	t.Helper()
	ctx := ctxT(t)
	for {
		st, err := rt.Status(ctx, id)
		if err == nil && st.Status == status {
			return st
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never became %s: %+v %v", id, status, st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// awaitHistory waits until instance id's history has an event of kind.
func awaitHistory(t *testing.T, rt *weft.Runtime, id string, kind workflow.EventKind) []workflow.Event {
	t.Helper()
	ctx := ctxT(t)
	for {
		h, err := rt.History(ctx, id)
		if err == nil && slices.ContainsFunc(h, func(ev workflow.Event) bool { return ev.Kind == kind }) {
			return h
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: no %s in history: %v", id, kind, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func patchRecords(h []workflow.Event) []string {
	var out []string
	for _, ev := range h {
		if ev.Kind == workflow.PatchRecorded {
			out = append(out, ev.Name+"="+string(ev.Data))
		}
	}
	return out
}

// TestPatchUnderRunningInstances: an instance that passed the patch point on
// the old code finishes on the old branch; one started on the new code takes
// the patched branch; each answer is recorded once.
func TestPatchUnderRunningInstances(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	old := versionApp(t, dir, func(rt *weft.Runtime) error {
		return weft.RegisterWorkflow(rt, patchWorkflow(false), workflow.WithName("Shipping"))
	})
	if _, err := old.Schedule(ctx, "Shipping", nil, weft.WithInstanceID("before")); err != nil {
		t.Fatal(err)
	}
	awaitHistory(t, old, "before", workflow.ActivityCompleted) // A done
	for {
		h, _ := old.History(ctx, "before")
		if len(h) >= 5 { // started, A scheduled+completed, B scheduled+completed: waiting for "go"
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	patched := versionApp(t, dir, func(rt *weft.Runtime) error {
		return weft.RegisterWorkflow(rt, patchWorkflow(true), workflow.WithName("Shipping"))
	})
	if _, err := patched.Schedule(ctx, "Shipping", nil, weft.WithInstanceID("after")); err != nil {
		t.Fatal(err)
	}
	awaitHistory(t, patched, "after", workflow.PatchRecorded)
	for _, id := range []string{"before", "after"} {
		if err := patched.RaiseEvent(ctx, id, "go", "shipped"); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"before": `"unpatched shipped"`, "after": `"patched shipped"`} {
		st, err := patched.WaitForCompletion(ctx, id)
		if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != want {
			t.Fatalf("%s: %+v %v, want output %s", id, st, err, want)
		}
		h, err := patched.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantRec := "add-c=true"
		if id == "before" {
			wantRec = "add-c=false"
		}
		if got := patchRecords(h); !slices.Equal(got, []string{wantRec}) {
			t.Errorf("%s: patch records %v, want [%s]", id, got, wantRec)
		}
	}
}

// TestNamedVersions: new instances take the default version or the one named
// at start; a running instance continues on the version it started on after
// the default changed; continue-as-new moves it to the default.
func TestNamedVersions(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	version := func(name string) func(*workflow.Context, int) (string, error) {
		return func(ctx *workflow.Context, round int) (string, error) {
			var ev string
			if err := ctx.WaitForExternalEvent("go", 0).Await(&ev); err != nil {
				return "", err
			}
			if ev == "again" && round == 0 {
				ctx.ContinueAsNew(1, false)
				return "", nil
			}
			return name + " " + ev, nil
		}
	}
	v1 := versionApp(t, dir, func(rt *weft.Runtime) error {
		return weft.RegisterWorkflow(rt, version("v1"), workflow.WithName("Order"), workflow.WithVersion("v1"))
	})
	for _, id := range []string{"o1", "o2"} {
		if _, err := v1.Schedule(ctx, "Order", 0, weft.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		if st := awaitStatus(t, v1, id, weft.StatusRunning); st.Version != "v1" {
			t.Fatalf("%s: version %q, want the only one, v1", id, st.Version)
		}
	}
	if err := v1.Close(); err != nil {
		t.Fatal(err)
	}

	both := versionApp(t, dir, func(rt *weft.Runtime) error {
		return errors.Join(
			weft.RegisterWorkflow(rt, version("v1"), workflow.WithName("Order"), workflow.WithVersion("v1")),
			weft.RegisterWorkflow(rt, version("v2"), workflow.WithName("Order"), workflow.WithVersion("v2"), workflow.AsDefault()))
	})
	if _, err := both.Schedule(ctx, "Order", 0, weft.WithInstanceID("new")); err != nil {
		t.Fatal(err)
	}
	if _, err := both.Schedule(ctx, "Order", 0, weft.WithInstanceID("pinned"), weft.WithVersion("v1")); err != nil {
		t.Fatal(err)
	}
	_, err := both.Schedule(ctx, "Order", 0, weft.WithVersion("v3"))
	if !errors.Is(err, weft.ErrWorkflowNotRegistered) || !strings.Contains(err.Error(), `"v3"`) {
		t.Fatalf("start on an unknown version: %v, want ErrWorkflowNotRegistered naming it", err)
	}
	for id, ev := range map[string]string{"o1": "done", "o2": "again", "new": "done", "pinned": "done"} {
		if err := both.RaiseEvent(ctx, id, "go", ev); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"o1": `"v1 done"`, "new": `"v2 done"`, "pinned": `"v1 done"`} {
		st, err := both.WaitForCompletion(ctx, id)
		if err != nil || string(st.Output) != want {
			t.Fatalf("%s: %+v %v, want %s", id, st, err, want)
		}
	}
	// o2 continued as new: the next generation runs the default, v2.
	for {
		st, err := both.Status(ctx, "o2")
		if err != nil {
			t.Fatal(err)
		}
		if st.Generation == 1 {
			if st.Version != "v2" {
				t.Fatalf("o2 after continue-as-new: version %q, want the default v2", st.Version)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := both.RaiseEvent(ctx, "o2", "go", "done"); err != nil {
		t.Fatal(err)
	}
	if st, err := both.WaitForCompletion(ctx, "o2"); err != nil || string(st.Output) != `"v2 done"` {
		t.Fatalf("o2: %+v %v", st, err)
	}
}

// TestStalledUntilTheVersionIsDeployed: an instance of a version a process
// lacks (an old node in a rolling deploy) stalls there, holds what comes in
// meanwhile (an event, a fired timer), and continues once the version is
// registered.
func TestStalledUntilTheVersionIsDeployed(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	v2 := func(ctx *workflow.Context, _ any) (string, error) {
		var ev string
		if err := ctx.WaitForExternalEvent("go", 0).Await(&ev); err != nil {
			return "", err
		}
		if err := ctx.CreateTimer(50 * time.Millisecond).Await(nil); err != nil {
			return "", err
		}
		var ev2 string
		err := ctx.WaitForExternalEvent("go", 0).Await(&ev2)
		return "v2 " + ev + " " + ev2, err
	}
	v1 := func(ctx *workflow.Context, _ any) (string, error) { return "v1", nil }
	newer := versionApp(t, dir, func(rt *weft.Runtime) error {
		return errors.Join(
			weft.RegisterWorkflow(rt, v1, workflow.WithName("Report"), workflow.WithVersion("v1")),
			weft.RegisterWorkflow(rt, v2, workflow.WithName("Report"), workflow.WithVersion("v2"), workflow.AsDefault()))
	})
	if _, err := newer.Schedule(ctx, "Report", nil, weft.WithInstanceID("r")); err != nil {
		t.Fatal(err)
	}
	if err := newer.RaiseEvent(ctx, "r", "go", "first"); err != nil {
		t.Fatal(err)
	}
	awaitHistory(t, newer, "r", workflow.TimerCreated)
	if err := newer.Close(); err != nil {
		t.Fatal(err)
	}

	// The old code has only v1: the timer fires and an event comes while the
	// instance is stalled.
	older := versionApp(t, dir, func(rt *weft.Runtime) error {
		return weft.RegisterWorkflow(rt, v1, workflow.WithName("Report"), workflow.WithVersion("v1"))
	})
	if err := older.RaiseEvent(ctx, "r", "go", "second"); err != nil {
		t.Fatal(err)
	}
	st := awaitStatus(t, older, "r", weft.StatusStalled)
	if st.Stall == nil || st.Stall.Reason != workflow.StallVersionNotAvailable || !strings.Contains(st.Stall.Description, `version "v2"`) || st.Version != "v2" {
		t.Fatalf("stalled: %+v (stall %v), want VERSION_NOT_AVAILABLE naming v2", st, st.Stall)
	}
	counts, err := older.CountByStatus(ctx)
	if err != nil || counts[weft.StatusStalled] != 1 {
		t.Fatalf("counts: %v %v, want one STALLED", counts, err)
	}
	page, err := older.List(ctx, weft.ListQuery{Statuses: []weft.RuntimeStatus{weft.StatusStalled}})
	if err != nil || len(page.Instances) != 1 || page.Instances[0].ID != "r" {
		t.Fatalf("list STALLED: %+v %v", page, err)
	}
	time.Sleep(100 * time.Millisecond) // the timer is due meanwhile: it must be held, not lost
	h, err := older.History(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if n := countKind(h, workflow.ExecutionStalled); n != 1 {
		t.Errorf("%d execution-stalled markers, want 1 however often it replayed", n)
	}
	if err := older.Close(); err != nil {
		t.Fatal(err)
	}

	upgraded := versionApp(t, dir, func(rt *weft.Runtime) error {
		return errors.Join(
			weft.RegisterWorkflow(rt, v1, workflow.WithName("Report"), workflow.WithVersion("v1")),
			weft.RegisterWorkflow(rt, v2, workflow.WithName("Report"), workflow.WithVersion("v2"), workflow.AsDefault()))
	})
	st, err = upgraded.WaitForCompletion(ctx, "r")
	if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != `"v2 first second"` || st.Stall != nil {
		t.Fatalf("after the upgrade: %+v %v, want v2 first second", st, err)
	}
}

func countKind(h []workflow.Event, kind workflow.EventKind) int {
	n := 0
	for _, ev := range h {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// TestPatchAfterContinueAsNew: an instance that passed the patch point on the
// old code stays unpatched for its generation; its next generation asks afresh
// and is patched.
func TestPatchAfterContinueAsNew(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	loop := func(patchable bool) func(*workflow.Context, int) (string, error) {
		return func(ctx *workflow.Context, round int) (string, error) {
			if err := ctx.CallActivity("Note", "A").Await(nil); err != nil {
				return "", err
			}
			branch := "old"
			if patchable && ctx.IsPatched("p") {
				branch = "patched"
			}
			if err := ctx.CallActivity("Note", branch).Await(nil); err != nil {
				return "", err
			}
			if err := ctx.WaitForExternalEvent("go", 0).Await(nil); err != nil {
				return "", err
			}
			if round == 0 {
				ctx.ContinueAsNew(1, false)
				return "", nil
			}
			return branch, nil
		}
	}
	old := versionApp(t, dir, func(rt *weft.Runtime) error { return weft.RegisterWorkflow(rt, loop(false), workflow.WithName("Loop")) })
	if _, err := old.Schedule(ctx, "Loop", 0, weft.WithInstanceID("l")); err != nil {
		t.Fatal(err)
	}
	for {
		h, _ := old.History(ctx, "l")
		if countKind(h, workflow.ActivityCompleted) == 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	patched := versionApp(t, dir, func(rt *weft.Runtime) error { return weft.RegisterWorkflow(rt, loop(true), workflow.WithName("Loop")) })
	if err := patched.RaiseEvent(ctx, "l", "go", nil); err != nil { // generation 0 ends: continue as new
		t.Fatal(err)
	}
	h := awaitHistory(t, patched, "l", workflow.PatchRecorded)
	for st, _ := patched.Status(ctx, "l"); st.Generation != 1; st, _ = patched.Status(ctx, "l") {
		time.Sleep(5 * time.Millisecond)
	}
	h = awaitHistory(t, patched, "l", workflow.PatchRecorded)
	if got := patchRecords(h); !slices.Equal(got, []string{"p=true"}) {
		t.Fatalf("generation 1's patch records: %v, want [p=true]", got)
	}
	if err := patched.RaiseEvent(ctx, "l", "go", nil); err != nil {
		t.Fatal(err)
	}
	if st, err := patched.WaitForCompletion(ctx, "l"); err != nil || string(st.Output) != `"patched"` {
		t.Fatalf("generation 1: %+v %v, want the patched branch", st, err)
	}
}
