package workflow

import (
	"fmt"
	"time"

	"github.com/weftrt/weft/internal/mpack"
)

// EventKind says what a history event records. The numeric values are stored: never
// renumber them, only append.
type EventKind uint8

const (
	KindInvalid EventKind = iota
	// Inputs: what happened to the instance.
	WorkflowStarted   // Name: workflow; Data: input; Instance: parent instance (children); TaskID: parent task
	ActivityCompleted // TaskID; Data: result
	ActivityFailed    // TaskID; Failure
	TimerFired        // TaskID
	ChildCompleted    // TaskID; Data: result
	ChildFailed       // TaskID; Failure
	EventRaised       // Name; Data
	// Actions: what the workflow code did (the executor's output, appended by the runtime).
	ActivityScheduled // TaskID; Name; Data: input; Retry
	TimerCreated      // TaskID; FireAt; Name: "" or "wait:<event>" for an event-wait timeout
	TimerCanceled     // TaskID of the timer
	ChildScheduled    // TaskID; Name; Instance: child id; Data: input; Retry
	EventSent         // TaskID; Instance: target; Name; Data
	WorkflowCompleted // Data: output
	WorkflowFailed    // Failure
	ContinuedAsNew    // Data: the next generation's input
	// Runtime markers: the executor ignores them; they explain the history to people.
	WorkflowTerminated // Data: reason
	WorkflowSuspended  // Data: reason
	WorkflowResumed    // Data: reason
	// EpisodeStarted opens each step of a workflow whose code runs on a remote
	// worker (the durabletask protocol's OrchestratorStarted): its Time is the
	// workflow's "now" for that step, on replay as live.
	EpisodeStarted
	// PatchRecorded records one answer of ctx.IsPatched (Name: the patch; Data:
	// true or false), so the answer never changes for the instance. The executor
	// reads all of a generation's records before it replays; their place in
	// history does not matter.
	PatchRecorded
	// ExecutionStalled marks when the instance stalled: the code registered here
	// cannot continue its history (Name: the reason, e.g. PATCH_MISMATCH; Data:
	// the description, a JSON string). A marker, written once per stall.
	ExecutionStalled
	// ActivityRetrying marks a failed attempt of an activity that its retry
	// policy runs again (TaskID; Name: the activity; Failure: the attempt's;
	// Data: the attempt's number, from 1; FireAt: when the next attempt
	// starts). A marker: the workflow sees only the call's final outcome, and
	// people see in the history why a step took as long as it did. A call's
	// first ten retried attempts are marked, then every hundredth.
	ActivityRetrying
	kindCount
)

var kindNames = [...]string{
	KindInvalid:        "invalid",
	WorkflowStarted:    "workflow-started",
	ActivityCompleted:  "activity-completed",
	ActivityFailed:     "activity-failed",
	TimerFired:         "timer-fired",
	ChildCompleted:     "child-completed",
	ChildFailed:        "child-failed",
	EventRaised:        "event-raised",
	ActivityScheduled:  "activity-scheduled",
	TimerCreated:       "timer-created",
	TimerCanceled:      "timer-canceled",
	ChildScheduled:     "child-scheduled",
	EventSent:          "event-sent",
	WorkflowCompleted:  "workflow-completed",
	WorkflowFailed:     "workflow-failed",
	ContinuedAsNew:     "continued-as-new",
	WorkflowTerminated: "workflow-terminated",
	WorkflowSuspended:  "workflow-suspended",
	WorkflowResumed:    "workflow-resumed",
	EpisodeStarted:     "episode-started",
	PatchRecorded:      "patch-recorded",
	ExecutionStalled:   "execution-stalled",
	ActivityRetrying:   "activity-retrying",
}

func (k EventKind) String() string {
	if k < kindCount {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseEventKind is the inverse of EventKind.String.
func ParseEventKind(s string) (EventKind, bool) {
	for k, n := range kindNames {
		if n == s && k != int(KindInvalid) {
			return EventKind(k), true
		}
	}
	return KindInvalid, false
}

// IsAction reports whether events of this kind are produced by workflow code (and
// must therefore be reproduced, call for call, on replay).
func (k EventKind) IsAction() bool { return k >= ActivityScheduled && k <= ContinuedAsNew }

// IsTerminal reports whether the event ends an instance's generation.
func (k EventKind) IsTerminal() bool {
	return k == WorkflowCompleted || k == WorkflowFailed || k == ContinuedAsNew || k == WorkflowTerminated
}

// eventVersion is the encoding version written into every event.
const eventVersion = 1

// Event is one entry of an instance's history. It is a flat, versioned record with a
// stable msgpack encoding (pinned by golden bytes in the tests). Payloads (Data) are
// JSON bytes kept exactly as they were sent.
type Event struct {
	V        uint8        `msgpack:"v"`
	Kind     EventKind    `msgpack:"k"`
	Time     time.Time    `msgpack:"t"`
	TaskID   int64        `msgpack:"id,omitempty"`
	Name     string       `msgpack:"n,omitempty"`
	Data     []byte       `msgpack:"d,omitempty"`
	Instance string       `msgpack:"i,omitempty"`
	FireAt   time.Time    `msgpack:"f,omitempty"`
	Failure  *Failure     `msgpack:"e,omitempty"`
	Retry    *RetryPolicy `msgpack:"r,omitempty"`
	// Version is the named version of the workflow's code a WorkflowStarted
	// event runs ("": the code registered without a version).
	Version string `msgpack:"ver,omitempty"`
	// TaskExecutionID names one call of an activity across all its attempts,
	// as Dapr's SDKs give it (an ActivityScheduled event of a remote worker's
	// workflow): the activity tells calls apart by it.
	TaskExecutionID string `msgpack:"te,omitempty"`
	// App is the app whose remote workers run an activity or child workflow
	// that a remote worker's workflow routed to another app (Dapr's
	// TaskRouter.targetAppID); "" for the workflow's own app.
	App string `msgpack:"ap,omitempty"`
}

// EncodeEvent returns the stored form of ev: a msgpack map, written by the
// hand-written encoder in event_codec.go byte for byte as msgpack/v5 wrote it.
// The error is always nil; it stays in the signature for a future encoding
// that can fail.
func EncodeEvent(ev Event) ([]byte, error) {
	ev.V = eventVersion
	return appendEvent(make([]byte, 0, eventSize(&ev)), &ev), nil
}

// DecodeEvent parses a stored event. It refuses versions it does not know, so an old
// binary never misreads a newer history.
func DecodeEvent(b []byte) (Event, error) {
	var ev Event
	r := mpack.NewReader(b)
	if err := readEvent(&r, &ev); err != nil {
		return Event{}, fmt.Errorf("decode history event: %w", err)
	}
	if ev.V == 0 || ev.V > eventVersion {
		return Event{}, fmt.Errorf("decode history event: unsupported version %d (this build reads up to %d)", ev.V, eventVersion)
	}
	if ev.Kind == KindInvalid || ev.Kind >= kindCount {
		return Event{}, fmt.Errorf("decode history event: unknown kind %d", ev.Kind)
	}
	ev.Time = ev.Time.UTC()
	if !ev.FireAt.IsZero() {
		ev.FireAt = ev.FireAt.UTC()
	}
	return ev, nil
}

// Failure describes why an activity, a child workflow or a workflow failed.
type Failure struct {
	Type         string `msgpack:"t,omitempty" json:"type"`
	Message      string `msgpack:"m,omitempty" json:"message"`
	Stack        string `msgpack:"s,omitempty" json:"stack,omitempty"`
	NonRetriable bool   `msgpack:"nr,omitempty" json:"nonRetriable,omitempty"`
}

func (f *Failure) String() string {
	if f == nil {
		return "<nil>"
	}
	if f.Type == "" {
		return f.Message
	}
	return f.Type + ": " + f.Message
}
