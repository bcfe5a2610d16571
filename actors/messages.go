package actors

import (
	"time"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// The messages a workflow actor handles. Every one sent with Host.Request is
// answered once its effects are committed (or refused), so senders retry until
// they hear back.

// ReusePolicy says what starting an instance whose id is taken does.
type ReusePolicy uint8

const (
	// ReuseError refuses the start with ErrInstanceExists (the default).
	ReuseError ReusePolicy = iota
	// ReuseIgnore keeps the existing instance and reports success.
	ReuseIgnore
	// ReuseTerminate terminates the existing instance if it still runs, purges it,
	// and starts the new one under the same id.
	ReuseTerminate
)

// StartRequest creates an instance.
type StartRequest struct {
	Name    string
	Input   []byte
	StartAt time.Time // zero or past: now
	Reuse   ReusePolicy
	// Version names the version of the workflow's code to run ("": the
	// default registered where the instance starts).
	Version string `msgpack:",omitempty"`
	// TraceParent and TraceState are the W3C trace context the instance is
	// started in (storage.InstanceRecord.TraceParent).
	TraceParent string `msgpack:",omitempty"`
	TraceState  string `msgpack:",omitempty"`
	// App names the app whose remote workers run the instance's code ("":
	// any worker).
	App string `msgpack:",omitempty"`
	// Notify names an instance to tell when this one finishes
	// (storage.InstanceRecord.Notify).
	Notify string `msgpack:",omitempty"`
	// Set when a parent workflow starts this instance as its child.
	ParentID   string
	ParentTask int64
	ParentGen  uint32
}

// RaiseEventRequest delivers an external event.
type RaiseEventRequest struct {
	Name string
	Data []byte
	// From names the outbox record an event sent by another instance comes
	// from, so a re-delivery is recognised; nil for an event from a client.
	From *MessageID `msgpack:",omitempty"`
	// RequestID names a client's event that may be sent more than once (a
	// cluster retries a request whose first attempt may have been applied):
	// the instance applies it once (client_events.go).
	RequestID string `msgpack:",omitempty"`
	// Create starts the instance first if it does not exist (the event is
	// for an activity's limiter, which its first request creates).
	Create *StartRequest `msgpack:",omitempty"`
}

// TerminateRequest ends an instance at once.
type TerminateRequest struct {
	Reason    []byte
	Recursive bool
}

// SuspendRequest pauses an instance: events are kept and applied on resume.
type SuspendRequest struct{ Reason string }

// ResumeRequest resumes a suspended instance.
type ResumeRequest struct{ Reason string }

// PurgeRequest deletes a finished instance and everything stored about it.
// Expired: its retention ran out (Options.Retention), not a caller's request.
type PurgeRequest struct {
	Recursive bool
	Expired   bool
	// Force purges an instance that has not finished (running, stalled,
	// suspended, pending): its outstanding work is dropped and whoever waits
	// on it (a parent) never hears from it.
	Force bool `msgpack:",omitempty"`
}

// ActivityResult is the outcome of one activity attempt.
type ActivityResult struct {
	Gen     uint32
	TaskID  int64
	Attempt int
	Output  []byte
	Failure *workflow.Failure
}

// ChildResult is a child instance's final outcome, sent to its parent.
type ChildResult struct {
	Gen     uint32
	TaskID  int64
	ChildID string
	Output  []byte
	Failure *workflow.Failure
}

// drainResults tells an actor that activity results wait for it in the host.
type drainResults struct{}

// reminderFired delivers a due reminder.
type reminderFired struct{ r storage.Reminder }

// wake activates an instance after a restart so it re-sends its outstanding work.
type wake struct{}

// outboxSent tells an instance that an event it sent was acknowledged.
type outboxSent struct{ seq uint64 }

// parentNotified tells a finished child that its parent acknowledged its result.
type parentNotified struct{}

// episodeDone carries a remote worker's answer to an episode.
type episodeDone struct {
	work   *OrchestrationWork
	result OrchestrationResult
}

// episodeAnswered tells an actor that a worker's answer to its episode waits
// in the pool (RemoteWorkers.AnswerOrchestration).
type episodeAnswered struct{}

// request carries a message to a workflow actor and the channel its answer goes
// back on (buffered, so the actor never waits for the sender).
type request struct {
	msg  any
	done chan error
}
