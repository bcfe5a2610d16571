package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

type taskKind uint8

const (
	taskActivity taskKind = iota + 1
	taskChild
	taskTimer
	taskEvent
)

func (k taskKind) String() string {
	switch k {
	case taskActivity:
		return "activity"
	case taskChild:
		return "child workflow"
	case taskTimer:
		return "timer"
	default:
		return "event"
	}
}

// Task is the pending outcome of an activity, a child workflow, a timer or an event
// wait. Await blocks the workflow until the outcome is in history.
type Task struct {
	ctx    *Context
	kind   taskKind
	name   string
	id     int64 // history sequence number; -1 for an event wait
	done   bool
	result []byte
	err    error
	then   []func()

	// event waits
	eventKey string
	timeout  *Task
	since    time.Time // when the wait began: the time of the step that began it
}

// Await blocks until the task is done, then decodes its JSON result into out (a
// pointer, or nil to discard it). A failed activity or child workflow returns a
// *TaskFailedError; a timed-out event wait ErrTimeout; a cancelled task ErrCanceled.
func (t *Task) Await(out any) error {
	for !t.done {
		t.ctx.yield()
	}
	if t.err != nil {
		return t.err
	}
	if out == nil || len(t.result) == 0 {
		return nil
	}
	if err := json.Unmarshal(t.result, out); err != nil {
		return fmt.Errorf("decode result of %s %s (task %d) into %T: %w", t.kind, t.name, t.id, out, err)
	}
	return nil
}

// Done reports whether the task's outcome is known, without blocking.
func (t *Task) Done() bool { return t.done }

// Cancel stops waiting for a timer or an external event: the task completes with
// ErrCanceled and the runtime drops the durable timer behind it. It reports false
// for a task that is already done and for activities and child workflows, which
// cannot be recalled once scheduled.
func (t *Task) Cancel() bool {
	if t.done {
		return false
	}
	e := t.ctx.e
	switch t.kind {
	case taskTimer:
		delete(e.tasks, t.id)
		e.emit(Event{Kind: TimerCanceled, TaskID: t.id, Name: t.name})
	case taskEvent:
		e.removeWaiter(t)
		if t.timeout != nil {
			t.timeout.Cancel()
		}
	default:
		return false
	}
	t.complete(nil, ErrCanceled)
	return true
}

func (t *Task) complete(result []byte, err error) {
	if t.done {
		return
	}
	t.done, t.result, t.err = true, result, err
	for _, f := range t.then {
		f()
	}
	t.then = nil
}

func (t *Task) onDone(f func()) {
	if t.done {
		f()
		return
	}
	t.then = append(t.then, f)
}

// WhenAll blocks until every task is done and returns the first error in argument
// order, or nil. Results stay in the tasks: Await each one to read it.
func WhenAll(tasks ...*Task) error {
	for _, t := range tasks {
		for !t.done {
			t.ctx.yield()
		}
	}
	for _, t := range tasks {
		if t.err != nil {
			return t.err
		}
	}
	return nil
}

// WhenAny blocks until at least one task is done and returns the index of the first
// done task in argument order. Which task won is recorded by history order, so a
// replay picks the same one.
func WhenAny(tasks ...*Task) (int, error) {
	if len(tasks) == 0 {
		return -1, errors.New("workflow: WhenAny of no tasks")
	}
	for {
		for i, t := range tasks {
			if t.done {
				return i, nil
			}
		}
		tasks[0].ctx.yield()
	}
}

// Parallel runs start(i) for every i in [0, n) with at most limit tasks in flight,
// starting the next one as soon as one finishes, and returns the tasks in index
// order once all are done, with the first error in index order. It is the seed's
// "limit the degree of concurrency": a batch of 10,000 items with limit 50 never has
// more than 50 activities outstanding. limit ≤ 0 means no limit.
func Parallel(ctx *Context, n, limit int, start func(i int) *Task) ([]*Task, error) {
	if limit <= 0 || limit > n {
		limit = n
	}
	tasks := make([]*Task, n)
	inflight := make([]int, 0, limit)
	next := 0
	for next < n || len(inflight) > 0 {
		for next < n && len(inflight) < limit {
			tasks[next] = start(next)
			inflight = append(inflight, next)
			next++
		}
		kept := inflight[:0]
		for _, i := range inflight {
			if !tasks[i].done {
				kept = append(kept, i)
			}
		}
		if len(kept) == len(inflight) {
			ctx.yield()
		}
		inflight = kept
	}
	for _, t := range tasks {
		if t.err != nil {
			return tasks, t.err
		}
	}
	return tasks, nil
}

// CallOption configures CallActivity and CallChildWorkflow.
type CallOption func(*callOptions)

type callOptions struct {
	retry      *RetryPolicy
	instanceID string
}

// WithRetryPolicy retries the call according to p.
func WithRetryPolicy(p *RetryPolicy) CallOption { return func(o *callOptions) { o.retry = p } }

// WithInstanceID gives a child workflow its instance id (default: derived from the
// parent's id and the call's sequence number, so it is stable across replays).
func WithInstanceID(id string) CallOption { return func(o *callOptions) { o.instanceID = id } }

func failedTask(c *Context, kind taskKind, name string, err error) *Task {
	t := &Task{ctx: c, kind: kind, name: name, id: -1}
	t.complete(nil, err)
	return t
}

func (t *Task) describe() string { return fmt.Sprintf("%s %q", t.kind, t.name) }
