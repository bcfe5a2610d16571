package weft_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/internal/otlptest"
	"github.com/weftrt/weft/workflow"
)

func TestValidTraceParent(t *testing.T) {
	for s, want := range map[string]bool{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00": true,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": false, // trace id all zero
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01": false, // parent id all zero
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": false, // another version
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01": false, // upper case
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7":    false,
		"": false,
	} {
		if got := weft.ValidTraceParent(s); got != want {
			t.Errorf("ValidTraceParent(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestSpans: with a trace exporter, weft's spans reach an OTLP receiver and
// form the run's tree: a parent workflow in the caller's trace, its children
// under it, each activity attempt (failed ones included) under its
// workflow, timers and waits for events; an activity's code runs in its
// attempt's span.
func TestSpans(t *testing.T) {
	t.Parallel()
	recv, exp, err := otlptest.StartWithExporter()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Stop()
	a := newApp(t, "", weft.Options{TraceExporter: exp})
	if err := weft.RegisterActivity(a.rt, func(ctx context.Context, _ any) (string, error) {
		sc := trace.SpanContextFromContext(ctx)
		return sc.TraceID().String() + "/" + sc.SpanID().String(), nil
	}, workflow.WithName("SpanOf")); err != nil {
		t.Fatal(err)
	}
	if err := weft.RegisterWorkflow(a.rt, func(ctx *workflow.Context, _ any) (string, error) {
		var s string
		err := ctx.CallActivity("SpanOf", nil).Await(&s)
		return s, err
	}, workflow.WithName("AskSpan")); err != nil {
		t.Fatal(err)
	}

	const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
	parent := a.run(t, "Parent", 3, weft.WithTraceContext("00-"+caller+"-00f067aa0ba902b7-01", ""))
	if parent.Status != weft.StatusCompleted {
		t.Fatalf("Parent: %+v", parent)
	}
	a.run(t, "Sleeper", 10*time.Millisecond, weft.WithInstanceID("traced-sleeper"))
	a.run(t, "Approval", struct {
		Cost    float64
		Timeout time.Duration
	}{500, 20 * time.Millisecond}, weft.WithInstanceID("traced-approval"))
	ctx := ctxT(t)
	if _, err := a.rt.Schedule(ctx, "Waiter", "go", weft.WithInstanceID("traced-waiter")); err != nil {
		t.Fatal(err)
	}
	if err := a.rt.RaiseEvent(ctx, "traced-waiter", "go", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.WaitForCompletion(ctx, "traced-waiter"); err != nil {
		t.Fatal(err)
	}
	ask := a.run(t, "AskSpan", nil, weft.WithInstanceID("traced-ask"))
	if err := a.rt.Close(); err != nil { // flushes the spans
		t.Fatal(err)
	}

	spans := recv.Spans()
	byTrace := map[string][]otlptest.Span{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
		if s.Service != "weft" {
			t.Errorf("span %s of service %q, want weft", s.Name, s.Service)
		}
	}
	want := `workflow Parent
  workflow FanOut
    activity Square weft.activity.attempt=1
    activity Square weft.activity.attempt=1
    activity Square weft.activity.attempt=1
  workflow Chain (error)
    activity Step weft.activity.attempt=1
    activity Step weft.activity.attempt=1 (error)
    activity Step weft.activity.attempt=2 (error)
    activity Step weft.activity.attempt=3 (error)
    activity Step weft.activity.attempt=4 (error)
    activity Compensate weft.activity.attempt=1
`
	if got := otlptest.Tree(byTrace[caller], "weft.activity.attempt"); got != want {
		t.Errorf("the caller's trace:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range byTrace[caller] {
		if s.Name == "workflow Parent" && (s.ParentID != "00f067aa0ba902b7" || s.Kind != "SPAN_KIND_SERVER") {
			t.Errorf("the parent workflow's span: parent %s, kind %s; want the caller's span 00f067aa0ba902b7, server", s.ParentID, s.Kind)
		}
	}
	for id, want := range map[string]string{
		"traced-sleeper":  "workflow Sleeper\n  timer\n",
		"traced-approval": "workflow Approval\n  activity RequestApproval\n  wait for event ManagerApproval weft.timed_out=true\n",
		"traced-waiter":   "workflow Waiter\n  event go\n",
	} {
		var trace []otlptest.Span
		for _, s := range spans {
			if s.Attrs["weft.instance.id"] == id {
				trace = byTrace[s.TraceID]
				break
			}
		}
		if got := otlptest.Tree(trace, "weft.timed_out"); got != want {
			t.Errorf("%s's trace:\n%s\nwant:\n%s", id, got, want)
		}
	}
	var asked string
	_ = json.Unmarshal(ask.Output, &asked)
	found := false
	for _, s := range spans {
		if s.Name == "activity SpanOf" {
			found = s.TraceID+"/"+s.SpanID == asked
		}
	}
	if !found {
		t.Errorf("the activity ran in span %s; no activity span has that id", asked)
	}
}
