package actors

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// Tracing: OpenTelemetry spans of what instances do, read off the history
// events a step appends — a span for each generation of a workflow (start to
// finish or continue-as-new), each activity attempt, each timer, each wait
// for an event; a child workflow's spans hang under its parent's.
//
// An instance outlives processes and moves between nodes, so no span is held
// open: each is emitted whole, with its start time, once its end is
// committed. Span ids are derived from the instance (its id, its creation,
// the generation, the task, the attempt), so the span a child or an activity
// names as its parent — before that parent span is emitted, perhaps by
// another node — is the one that will be. The tracer provider must
// therefore take its ids from weft (NewTracerProvider).
//
// Without Options.Tracer nothing here runs: the workflow actor's tracing
// state stays nil and the hooks are one pointer comparison.

// NewTracerProvider returns a tracer provider exporting through exporter in
// batches, with the id generator weft's spans need.
func NewTracerProvider(exporter sdktrace.SpanExporter, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{
		sdktrace.WithBatcher(exporter), sdktrace.WithIDGenerator(spanIDs{}),
	}, opts...)...)
}

type forcedIDKey struct{}

type forcedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

// spanIDs gives a span the ids its context forces (weft's derived ids), or
// random ones.
type spanIDs struct{}

func (spanIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := ctx.Value(forcedIDKey{}).(forcedIDs); ok && f.trace.IsValid() && f.span.IsValid() {
		return f.trace, f.span
	}
	var t trace.TraceID
	binary.BigEndian.PutUint64(t[:8], rand.Uint64())
	binary.BigEndian.PutUint64(t[8:], rand.Uint64()|1)
	return t, randomSpanID()
}

func (spanIDs) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if f, ok := ctx.Value(forcedIDKey{}).(forcedIDs); ok && f.span.IsValid() {
		return f.span
	}
	return randomSpanID()
}

func randomSpanID() trace.SpanID {
	var s trace.SpanID
	binary.BigEndian.PutUint64(s[:], rand.Uint64()|1)
	return s
}

// instanceTrace is where an instance's spans go: its trace, and the span its
// workflow spans hang under (the traceparent it was started with; none for
// a root).
type instanceTrace struct {
	traceID trace.TraceID
	parent  trace.SpanID
	flags   trace.TraceFlags
	state   trace.TraceState
}

func traceOf(id string, created time.Time, traceparent, tracestate string) instanceTrace {
	if traceparent != "" {
		if sc := trace.SpanContextFromContext(withTraceParent(context.Background(), traceparent, tracestate)); sc.IsValid() {
			return instanceTrace{traceID: sc.TraceID(), parent: sc.SpanID(), flags: sc.TraceFlags(), state: sc.TraceState()}
		}
	}
	h := fnv.New128a()
	h.Write([]byte(id))
	writeTime(h, created)
	var t trace.TraceID
	copy(t[:], h.Sum(nil))
	return instanceTrace{traceID: t, flags: trace.FlagsSampled}
}

// spanID derives a span's id from the instance and what the span is of.
func spanID(id string, created time.Time, what string, nums ...int64) trace.SpanID {
	h := fnv.New64a()
	h.Write([]byte(id))
	writeTime(h, created)
	h.Write([]byte(what))
	var b [8]byte
	for _, n := range nums {
		binary.BigEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
	}
	var s trace.SpanID
	binary.BigEndian.PutUint64(s[:], h.Sum64()|1) // never the invalid all-zero id
	return s
}

func writeTime(h interface{ Write([]byte) (int, error) }, t time.Time) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	h.Write(b[:])
}

// traceparent renders a span context as W3C's header.
func traceparent(t trace.TraceID, s trace.SpanID, flags trace.TraceFlags) string {
	return "00-" + t.String() + "-" + s.String() + "-" + flags.String()
}

// spanState is a workflow actor's tracing: when its generation started and
// when each of its outstanding tasks began.
type spanState struct {
	genStart time.Time
	tasks    map[int64]taskStart
	// of is the instance's trace, read from its row once (for the instance
	// created at ofCreated).
	of        instanceTrace
	ofCreated time.Time
}

type taskStart struct {
	at   time.Time
	name string
	// An activity's last attempt, once its outcome is in: which, and when it
	// began (the record goes before the outcome's event is appended).
	attempt   int
	attemptAt time.Time
}

// lastAttempt notes an activity's last attempt as its outcome comes in.
func (s *spanState) lastAttempt(rec *storage.ActivityRecord) {
	if rec == nil {
		return
	}
	if st, ok := s.tasks[rec.TaskID]; ok {
		st.attempt, st.attemptAt = rec.Attempt, rec.NextAttemptAt
		s.tasks[rec.TaskID] = st
	}
}

// finishedSpan is a span to emit once the step that ends it is committed.
type finishedSpan struct {
	name       string
	id, parent trace.SpanID
	start, end time.Time
	attrs      []attribute.KeyValue
	failure    string // set: the span's status is an error
	kind       trace.SpanKind
}

// trace returns the instance's trace, and its generation's span.
func (w *workflowActor) trace() (instanceTrace, trace.SpanID) {
	s := w.spans
	if !s.of.traceID.IsValid() || !s.ofCreated.Equal(w.row.CreatedAt) {
		s.of, s.ofCreated = traceOf(w.id, w.row.CreatedAt, w.row.TraceParent, w.row.TraceState), w.row.CreatedAt
	}
	return s.of, spanID(w.id, w.row.CreatedAt, "generation", int64(w.row.Generation))
}

// childTraceParent is the trace context a child workflow starts in: under
// its parent's generation span.
func (w *workflowActor) childTraceParent() (string, string) {
	it, gen := w.trace()
	return traceparent(it.traceID, gen, it.flags), it.state.String()
}

// attemptTraceParent is the trace context of an activity attempt, handed to
// the code that runs it (the activity's context, a remote worker).
func (w *workflowActor) attemptTraceParent(task int64, attempt int) (string, string) {
	it, _ := w.trace()
	return traceparent(it.traceID, spanID(w.id, w.row.CreatedAt, "attempt", int64(w.row.Generation), task, int64(attempt)), it.flags), it.state.String()
}

// observeForSpans follows a history event: it notes when tasks begin and,
// with t (a live step rather than a replay), queues the span an event ends.
func (w *workflowActor) observeForSpans(t *txn, ev *workflow.Event) {
	s := w.spans
	if s.tasks == nil {
		s.tasks = make(map[int64]taskStart)
	}
	switch ev.Kind {
	case workflow.WorkflowStarted:
		s.genStart = ev.Time
		clear(s.tasks)
	case workflow.ActivityScheduled, workflow.TimerCreated, workflow.ChildScheduled:
		s.tasks[ev.TaskID] = taskStart{at: ev.Time, name: ev.Name}
	}
	if t == nil {
		if ev.Kind == workflow.ActivityCompleted || ev.Kind == workflow.ActivityFailed || ev.Kind == workflow.TimerFired ||
			ev.Kind == workflow.TimerCanceled || ev.Kind == workflow.ChildCompleted || ev.Kind == workflow.ChildFailed {
			delete(s.tasks, ev.TaskID)
		}
		return
	}
	_, gen := w.trace()
	task := func(name string) finishedSpan {
		return finishedSpan{name: name, parent: gen, start: s.tasks[ev.TaskID].at, end: ev.Time,
			id:    spanID(w.id, w.row.CreatedAt, "task", int64(w.row.Generation), ev.TaskID),
			attrs: []attribute.KeyValue{attribute.String("weft.instance.id", w.id), attribute.Int64("weft.task.id", ev.TaskID)}}
	}
	switch ev.Kind {
	case workflow.ActivityCompleted, workflow.ActivityFailed:
		st, ok := s.tasks[ev.TaskID]
		if !ok {
			return
		}
		sp := task("activity " + st.name)
		attempt := 1
		if st.attempt > 0 {
			attempt, sp.start = st.attempt, st.attemptAt
		}
		sp.id = spanID(w.id, w.row.CreatedAt, "attempt", int64(w.row.Generation), ev.TaskID, int64(attempt))
		sp.attrs = append(sp.attrs, attribute.String("weft.activity", st.name), attribute.Int("weft.activity.attempt", attempt))
		if ev.Failure != nil {
			sp.failure = ev.Failure.String()
		}
		sp.kind = trace.SpanKindClient
		t.spans = append(t.spans, sp)
	case workflow.TimerFired, workflow.TimerCanceled:
		st, ok := s.tasks[ev.TaskID]
		if !ok {
			return
		}
		sp := task("timer")
		if event, isWait := strings.CutPrefix(st.name, "wait:"); isWait {
			sp.name = "wait for event " + event
			sp.attrs = append(sp.attrs, attribute.String("weft.event", event), attribute.Bool("weft.timed_out", ev.Kind == workflow.TimerFired))
		} else if ev.Kind == workflow.TimerCanceled {
			sp.name = "timer (canceled)"
		}
		t.spans = append(t.spans, sp)
	case workflow.EventRaised:
		for _, st := range s.tasks {
			if strings.EqualFold(st.name, "wait:"+ev.Name) {
				return // a wait with a timeout: its timer's span tells the wait
			}
		}
		// A wait without a timeout leaves nothing in history: the span runs
		// from the step before the event, when the workflow last waited.
		sp := finishedSpan{name: "event " + ev.Name, parent: gen, start: w.row.UpdatedAt, end: ev.Time,
			id:    spanID(w.id, w.row.CreatedAt, "event", int64(w.row.Generation), int64(w.row.NextSeq)),
			attrs: []attribute.KeyValue{attribute.String("weft.instance.id", w.id), attribute.String("weft.event", ev.Name)}}
		t.spans = append(t.spans, sp)
	case workflow.WorkflowCompleted, workflow.WorkflowFailed, workflow.ContinuedAsNew, workflow.WorkflowTerminated:
		start := s.genStart
		if start.IsZero() {
			start = w.row.CreatedAt
		}
		sp := finishedSpan{name: "workflow " + w.row.Name, id: gen, start: start, end: ev.Time, kind: trace.SpanKindServer,
			attrs: []attribute.KeyValue{attribute.String("weft.instance.id", w.id), attribute.String("weft.workflow", w.row.Name),
				attribute.Int("weft.generation", int(w.row.Generation)), attribute.String("weft.outcome", outcomeOf(ev.Kind))}}
		if w.row.Version != "" {
			sp.attrs = append(sp.attrs, attribute.String("weft.workflow.version", w.row.Version))
		}
		if ev.Kind == workflow.WorkflowFailed && ev.Failure != nil {
			sp.failure = ev.Failure.String()
		}
		t.spans = append(t.spans, sp)
	}
	if ev.Kind == workflow.ActivityCompleted || ev.Kind == workflow.ActivityFailed || ev.Kind == workflow.TimerFired ||
		ev.Kind == workflow.TimerCanceled || ev.Kind == workflow.ChildCompleted || ev.Kind == workflow.ChildFailed {
		delete(s.tasks, ev.TaskID)
	}
}

// spanFailedAttempt queues the span of an activity attempt that failed and
// will be retried (history records only the call's final outcome).
func (w *workflowActor) spanFailedAttempt(t *txn, rec *activityAttempt) {
	_, gen := w.trace()
	t.spans = append(t.spans, finishedSpan{name: "activity " + rec.name, parent: gen, kind: trace.SpanKindClient,
		id:    spanID(w.id, w.row.CreatedAt, "attempt", int64(w.row.Generation), rec.task, int64(rec.attempt)),
		start: rec.start, end: w.now, failure: rec.failure,
		attrs: []attribute.KeyValue{attribute.String("weft.instance.id", w.id), attribute.Int64("weft.task.id", rec.task),
			attribute.String("weft.activity", rec.name), attribute.Int("weft.activity.attempt", rec.attempt)}})
}

type activityAttempt struct {
	task    int64
	name    string
	attempt int
	start   time.Time
	failure string
}

func outcomeOf(k workflow.EventKind) string {
	switch k {
	case workflow.WorkflowCompleted:
		return "completed"
	case workflow.WorkflowFailed:
		return "failed"
	case workflow.ContinuedAsNew:
		return "continued-as-new"
	}
	return "terminated"
}

// emitSpans hands a committed step's spans to the tracer.
func (w *workflowActor) emitSpans(spans []finishedSpan) {
	it, _ := w.trace()
	for i := range spans {
		sp := &spans[i]
		ctx := context.Background()
		if sp.parent.IsValid() || it.parent.IsValid() {
			parent := sp.parent
			if !parent.IsValid() {
				parent = it.parent // a generation's span hangs under the traceparent it started in
			}
			ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: it.traceID, SpanID: parent, TraceFlags: it.flags, TraceState: it.state, Remote: true}))
		}
		ctx = context.WithValue(ctx, forcedIDKey{}, forcedIDs{it.traceID, sp.id})
		kind := sp.kind
		if kind == trace.SpanKindUnspecified {
			kind = trace.SpanKindInternal
		}
		_, span := w.h.opts.Tracer.Start(ctx, sp.name, trace.WithTimestamp(sp.start), trace.WithAttributes(sp.attrs...), trace.WithSpanKind(kind))
		if sp.failure != "" {
			span.SetStatus(codes.Error, sp.failure)
		}
		span.End(trace.WithTimestamp(sp.end))
	}
}

// withTraceParent puts a W3C trace context in ctx as the remote parent of
// spans started under it.
func withTraceParent(ctx context.Context, traceparent, tracestate string) context.Context {
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate})
}
