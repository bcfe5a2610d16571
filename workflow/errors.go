package workflow

import (
	"errors"
	"fmt"
	"reflect"
)

var (
	// ErrTimeout is returned by Await on an event wait whose timeout fired first.
	ErrTimeout = errors.New("workflow: timed out waiting for the event")
	// ErrCanceled is returned by Await on a timer or event wait cancelled with Task.Cancel.
	ErrCanceled = errors.New("workflow: task canceled")
	// ErrNotRegistered names a workflow or activity the registry does not know.
	ErrNotRegistered = errors.New("not registered")
	// ErrInvalidInput says an input payload cannot be decoded into the function's type.
	ErrInvalidInput = errors.New("invalid input")
)

// TaskFailedError is the error Await returns for a failed activity or child workflow.
// Reach it with errors.As.
type TaskFailedError struct {
	Kind     string // "activity" or "child workflow"
	TaskName string
	TaskID   int64
	Failure  Failure
}

func (e *TaskFailedError) Error() string {
	return fmt.Sprintf("%s %s (task %d) failed: %s", e.Kind, e.TaskName, e.TaskID, e.Failure.String())
}

// NonDeterminismError says that replaying a history with the current workflow code
// produced a different call than the one recorded.
type NonDeterminismError struct {
	Workflow string
	TaskID   int64
	Recorded string // the call in history, e.g. `activity-scheduled "Step2"`
	Replayed string // the call the code made now, or "nothing"
}

func (e *NonDeterminismError) Error() string {
	return fmt.Sprintf("non-deterministic workflow %s: at step %d history has %s but the code now produced %s; "+
		"a workflow must make the same calls in the same order on replay (version the workflow instead of changing it in place)",
		e.Workflow, e.TaskID, e.Recorded, e.Replayed)
}

// DeadlockError says the workflow code neither blocked on a weft task nor returned
// within the executor's deadlock timeout: it is waiting on something weft cannot see
// (a channel, a mutex, a sleep) or spinning.
type DeadlockError struct {
	Workflow string
	Timeout  string
}

func (e *DeadlockError) Error() string {
	return fmt.Sprintf("workflow %s deadlocked: it did not yield to weft within %s; "+
		"block only on weft tasks (Await, WhenAll, WhenAny) and use ctx.CreateTimer instead of time.Sleep", e.Workflow, e.Timeout)
}

// ApplicationError is an error with an explicit type name, for activities and workflows
// that want callers (and retry policies) to branch on something stabler than a message.
type ApplicationError struct {
	Type         string
	Message      string
	NonRetriable bool // the runtime does not retry it, whatever the policy says
}

func (e *ApplicationError) Error() string { return e.Type + ": " + e.Message }

// NewError returns an *ApplicationError of the given type.
func NewError(typ, msg string) error { return &ApplicationError{Type: typ, Message: msg} }

// NonRetriable wraps err so that no retry policy retries it.
func NonRetriable(err error) error {
	if err == nil {
		return nil
	}
	return &ApplicationError{Type: ErrorType(err), Message: err.Error(), NonRetriable: true}
}

// ErrorType names the type of err as it is recorded in a Failure: the Type of an
// *ApplicationError or a *TaskFailedError's failure, else the Go type, e.g. "*fs.PathError".
func ErrorType(err error) string {
	var ae *ApplicationError
	if errors.As(err, &ae) {
		return ae.Type
	}
	var te *TaskFailedError
	if errors.As(err, &te) {
		return te.Failure.Type
	}
	if t, ok := err.(interface{ ErrorType() string }); ok {
		return t.ErrorType()
	}
	return reflect.TypeOf(err).String()
}

// FailureOf converts err to the Failure recorded in history.
func FailureOf(err error) *Failure {
	f := &Failure{Type: ErrorType(err), Message: err.Error()}
	var ae *ApplicationError
	if errors.As(err, &ae) {
		f.Message = ae.Message
		f.NonRetriable = ae.NonRetriable
	}
	return f
}
