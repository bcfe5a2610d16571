package workflow

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultDeadlockTimeout is how long workflow code may run without handing control
// back to the executor before it is reported as deadlocked.
const DefaultDeadlockTimeout = 2 * time.Second

// ExecutorOptions configure an Executor.
type ExecutorOptions struct {
	// DeadlockTimeout bounds how long workflow code may run between two weft calls
	// (default DefaultDeadlockTimeout).
	DeadlockTimeout time.Duration
	// Logger is the base of ctx.Logger (default slog.Default()).
	Logger *slog.Logger
}

// Outcome is what one Execute call produced.
type Outcome struct {
	// Actions are the new history events the code produced, in order: append them to
	// history and commit, then carry them out.
	Actions []Event
	// CustomStatus is the latest custom status, when CustomStatusSet.
	CustomStatus    []byte
	CustomStatusSet bool
	// Carry are the events a ContinuedAsNew action hands to the next generation.
	Carry []Event
	// Ignored are input events that matched no outstanding task (duplicates of
	// at-least-once delivery, or late completions); the runtime may log them.
	Ignored []Event
	// Deadlocked is set when the code did not yield within DeadlockTimeout; the
	// only action is then a WorkflowFailed with a DeadlockError. The executor is
	// unusable afterwards. On an overloaded machine this can be a stall rather than
	// a deadlock: a runtime may retry the step with a fresh executor instead.
	Deadlocked bool
	// NotRegistered is set when a history is replayed for a workflow this
	// process has not registered (it ran here before, or on a node that has it):
	// there are no actions and the executor is unusable. The instance is not
	// failed for it: a runtime waits and replays again once it is registered.
	// A new instance of an unregistered workflow fails with WorkflowNotRegistered.
	// Stall says the same, with the reason VERSION_NOT_AVAILABLE.
	NotRegistered bool
	// Stall is set when the history needs code this process lacks: a version
	// of the workflow that is not registered, or a patch the code does not know
	// where the replay diverged. There are no actions and the executor is
	// unusable; the instance is not failed for it: a runtime holds its inputs
	// and replays again later, until code that can continue it is present.
	Stall *Stall
	// Divergence is set when replaying the history found a call the code no
	// longer makes (the WorkflowFailed action, or the stall, says so too).
	Divergence *Divergence
}

// Divergence is where a replay left its history.
type Divergence struct {
	// Event is the position in the replayed history (from 0, as the history
	// API numbers events) of the recorded call the code did not make; -1 when
	// it was in Execute's new events.
	Event int
	*NonDeterminismError
}

// StallReason says why an instance cannot continue on the code registered in
// a process. The values are Dapr's StalledReason names.
type StallReason string

const (
	// StallPatchMismatch: replaying the history diverged where it recorded a
	// patch that the code does not check (a patch removed while instances that
	// took its old branch still run, or a node with older code).
	StallPatchMismatch StallReason = "PATCH_MISMATCH"
	// StallVersionNotAvailable: the instance runs a version of its workflow
	// (or a workflow) that is not registered in this process.
	StallVersionNotAvailable StallReason = "VERSION_NOT_AVAILABLE"
	// StallPayloadTooLarge: a step of the instance (its history, or an input)
	// is larger than the server may send a remote worker.
	StallPayloadTooLarge StallReason = "PAYLOAD_SIZE_EXCEEDED"
)

// Stall says why an instance stalled.
type Stall struct {
	Reason      StallReason
	Description string
}

func (s *Stall) String() string { return string(s.Reason) + ": " + s.Description }

// Done reports whether the outcome ends the generation.
func (o *Outcome) Done() bool {
	return len(o.Actions) > 0 && o.Actions[len(o.Actions)-1].Kind.IsTerminal()
}

// Executor runs one workflow instance's code against its history. It is not safe
// for concurrent use: its owner (one actor) calls it from one goroutine at a time.
type Executor struct {
	reg        *Registry
	instanceID string
	opts       ExecutorOptions
	ctx        *Context
	logger     *slog.Logger

	// the workflow function's goroutine and the hand-off between us
	resumeCh  chan struct{}
	yieldCh   chan yieldMsg
	closed    chan struct{}
	abandoned atomic.Bool // the coroutine deadlocked: it may still run, so nothing it touches is read again
	timer     *time.Timer
	started   bool
	finished  bool
	halted    bool // finished, failed, or closed: later events are ignored
	diverged  bool // replay found a non-deterministic call

	name      string
	version   string
	startedAt time.Time
	now       time.Time
	replaying bool
	seq       int64
	uuidSeq   uint64

	// patches are the generation's answers to IsPatched: those recorded in
	// history (read before the replay) and those given since.
	patches map[string]bool
	// recordedPatches names the answers that came from history, askedPatches
	// those of them the code asked for on this replay.
	recordedPatches map[string]bool
	askedPatches    map[string]bool
	// actionsAhead is set while the replay has recorded actions still to
	// come: the code is re-running old ground, not making new progress.
	actionsAhead bool
	// applying is the position in past of the event being replayed, -1 past
	// its end.
	applying int

	pending []Event // actions produced and not yet matched against recorded history
	tasks   map[int64]*Task
	retry   map[int64]*RetryPolicy
	events  map[string]*eventQueue
	arrival uint64

	customStatus    []byte
	customStatusSet bool
	continueAsNew   *continueAsNew
	out             *Outcome
}

type continueAsNew struct {
	input      []byte
	keepEvents bool
}

type eventQueue struct {
	buffered []bufferedEvent
	waiters  []*Task
}

type bufferedEvent struct {
	Event
	arrival uint64
}

type yieldMsg struct {
	done   bool
	output []byte
	err    error
	panic  *Failure
}

var errExecutorClosed = errors.New("workflow: executor closed")

// NewExecutor returns an executor for one instance. Feed it the instance's history
// with Execute; Close it when the instance is done or passivated.
func NewExecutor(reg *Registry, instanceID string, opts ExecutorOptions) *Executor {
	if opts.DeadlockTimeout <= 0 {
		opts.DeadlockTimeout = DefaultDeadlockTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Executor{
		reg:        reg,
		instanceID: instanceID,
		opts:       opts,
		closed:     make(chan struct{}),
		tasks:      map[int64]*Task{},
	}
	e.ctx = &Context{e: e}
	return e
}

// Execute replays past (events already in history) and then applies new (events not
// yet in history), running the workflow code as far as they let it, and returns the
// actions the code produced. A fresh executor needs the whole history in past; a
// live one only the new events.
func (e *Executor) Execute(past, new []Event) *Outcome {
	out := &Outcome{}
	e.out = out
	e.replaying = true
	lastAction := -1
	for i, ev := range past {
		switch {
		case ev.Kind.IsAction():
			lastAction = i
		case ev.Kind == PatchRecorded:
			e.recordPatch(ev)
		}
	}
	for i, ev := range past {
		e.actionsAhead, e.applying = i < lastAction, i
		e.apply(ev)
	}
	e.replaying, e.actionsAhead, e.applying = false, false, -1
	for _, ev := range new {
		e.apply(ev)
	}
	e.out = nil
	if !e.abandoned.Load() {
		out.Actions = append(out.Actions, e.pending...)
		e.pending = e.pending[:0]
		out.CustomStatus, out.CustomStatusSet = e.customStatus, e.customStatusSet
		e.customStatusSet = false
	}
	return out
}

// Finished reports whether the workflow has completed, failed or continued as new
// (or was halted by a replay or deadlock error).
func (e *Executor) Finished() bool { return e.halted }

// Name returns the workflow name, known once the start event was applied.
func (e *Executor) Name() string { return e.name }

// RetryPolicy returns the retry policy the code gave the activity with task id, or
// nil. The runtime asks it when an attempt fails: the policy's Handle predicate
// lives only in the process's memory.
func (e *Executor) RetryPolicy(taskID int64) *RetryPolicy { return e.retry[taskID] }

// Close stops the workflow goroutine. The executor must not be used afterwards.
func (e *Executor) Close() {
	select {
	case <-e.closed:
	default:
		close(e.closed)
	}
	e.halted = true
	if e.timer != nil {
		e.timer.Stop()
		deadlockTimers.Put(e.timer)
		e.timer = nil
	}
}

func (e *Executor) apply(ev Event) {
	if !ev.Time.IsZero() {
		e.now = ev.Time
	}
	if ev.Kind.IsAction() {
		// Recorded actions are checked even after the code returned: a history that
		// goes on past the point where the code now ends is a removed step.
		if !e.abandoned.Load() && !e.diverged {
			e.match(ev)
		}
		return
	}
	if e.halted {
		if e.finished && e.continueAsNew != nil && ev.Kind == EventRaised {
			e.out.Carry = append(e.out.Carry, ev) // raised while continuing as new: for the next generation
			return
		}
		if !ev.Kind.IsAction() && ev.Kind != PatchRecorded && ev.Kind != ExecutionStalled && ev.Kind != ActivityRetrying {
			e.out.Ignored = append(e.out.Ignored, ev)
		}
		return
	}
	switch ev.Kind {
	case WorkflowStarted:
		e.start(ev)
	case ActivityCompleted, ChildCompleted, TimerFired:
		e.resolve(ev, ev.Data, nil)
	case ActivityFailed, ChildFailed:
		f := Failure{Type: "unknown", Message: "failed without details"}
		if ev.Failure != nil {
			f = *ev.Failure
		}
		t := e.tasks[ev.TaskID]
		name := ev.Name
		if t != nil {
			name = t.name
		}
		kind := "activity"
		if ev.Kind == ChildFailed {
			kind = "child workflow"
		}
		e.resolve(ev, nil, &TaskFailedError{Kind: kind, TaskName: name, TaskID: ev.TaskID, Failure: f})
	case EventRaised:
		e.raise(ev)
	case WorkflowTerminated, WorkflowSuspended, WorkflowResumed, EpisodeStarted, PatchRecorded, ExecutionStalled, ActivityRetrying:
	default:
		e.out.Ignored = append(e.out.Ignored, ev)
	}
}

func (e *Executor) start(ev Event) {
	if e.started {
		e.out.Ignored = append(e.out.Ignored, ev)
		return
	}
	e.started = true
	e.name, e.version, e.startedAt = ev.Name, ev.Version, ev.Time
	def := e.reg.workflowVersion(ev.Name, ev.Version)
	switch {
	case def == nil && !e.replaying && ev.Version == "" && !e.reg.HasWorkflow(ev.Name):
		e.finish(yieldMsg{done: true, err: &ApplicationError{Type: "WorkflowNotRegistered",
			Message: fmt.Sprintf("workflow %q is not registered in this process", ev.Name), NonRetriable: true}})
		return
	case def == nil && !e.reg.HasWorkflow(ev.Name):
		e.out.NotRegistered = true
		e.stall(StallVersionNotAvailable, fmt.Sprintf("workflow %q is not registered in this process", ev.Name))
		return
	case def == nil:
		e.stall(StallVersionNotAvailable, fmt.Sprintf("workflow %q version %q is not registered in this process (registered: %s)",
			ev.Name, ev.Version, quoteVersions(e.reg.WorkflowVersions(ev.Name))))
		return
	}
	e.resumeCh = make(chan struct{})
	e.yieldCh = make(chan yieldMsg)
	e.timer = deadlockTimers.Get().(*time.Timer)
	go e.run(def, ev.Data)
	e.resume()
}

// deadlockTimers holds the stopped timers of closed executors: every
// activation of an instance makes an executor, and a timer each was 5% of the
// bytes a fired timer allocates. Since Go 1.23 a stopped timer delivers nothing
// stale, so a reused one starts clean.
var deadlockTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// run is the workflow function's goroutine.
func (e *Executor) run(def *workflowDef, input []byte) {
	var msg yieldMsg
	defer func() {
		if p := recover(); p != nil {
			if p == errExecutorClosed {
				return
			}
			msg = yieldMsg{panic: &Failure{Type: "panic", Message: fmt.Sprintf("workflow %s panicked: %v", def.name, p), Stack: string(debug.Stack())}}
		}
		msg.done = true
		select {
		case e.yieldCh <- msg:
		case <-e.closed:
		}
	}()
	select {
	case <-e.resumeCh:
	case <-e.closed:
		return
	}
	msg.output, msg.err = def.run(e.ctx, input)
}

// resume hands control to the workflow code until it blocks on a task or returns.
func (e *Executor) resume() {
	if e.halted || !e.started || e.resumeCh == nil {
		return
	}
	e.timer.Reset(e.opts.DeadlockTimeout)
	e.resumeCh <- struct{}{}
	select {
	case msg := <-e.yieldCh:
		e.timer.Stop()
		if msg.done {
			e.finish(msg)
		}
	case <-e.timer.C:
		e.abandoned.Store(true)
		e.halted = true
		e.out.Deadlocked = true
		e.out.Actions = []Event{{Kind: WorkflowFailed, Time: e.now, Failure: &Failure{
			Type: "DeadlockError", Message: (&DeadlockError{Workflow: e.name, Timeout: e.opts.DeadlockTimeout.String()}).Error(), NonRetriable: true}}}
	}
}

// yield is called on the workflow goroutine: hand control back, wait to be resumed.
func (c *Context) yield() {
	e := c.e
	select {
	case e.yieldCh <- yieldMsg{}:
	case <-e.closed:
		panic(errExecutorClosed)
	}
	select {
	case <-e.resumeCh:
	case <-e.closed:
		panic(errExecutorClosed)
	}
}

// check stops a goroutine that deadlocked and later woke up from touching state the
// executor has moved on from.
func (e *Executor) check() {
	if e.abandoned.Load() {
		panic(errExecutorClosed)
	}
}

func (e *Executor) finish(msg yieldMsg) {
	e.finished, e.halted = true, true
	switch {
	case msg.panic != nil:
		e.emit(Event{Kind: WorkflowFailed, Failure: msg.panic})
	case msg.err != nil:
		f := FailureOf(msg.err)
		e.emit(Event{Kind: WorkflowFailed, Failure: f})
	case e.continueAsNew != nil:
		e.emit(Event{Kind: ContinuedAsNew, Data: e.continueAsNew.input})
		if e.continueAsNew.keepEvents {
			var carry []bufferedEvent
			for _, q := range e.events {
				carry = append(carry, q.buffered...)
			}
			slices.SortFunc(carry, func(a, b bufferedEvent) int { return int(a.arrival) - int(b.arrival) })
			for _, b := range carry {
				e.out.Carry = append(e.out.Carry, b.Event)
			}
		}
	default:
		e.emit(Event{Kind: WorkflowCompleted, Data: msg.output})
	}
}

// resolve completes the task an input event is for and lets the code react.
func (e *Executor) resolve(ev Event, result []byte, err error) {
	t := e.tasks[ev.TaskID]
	if t == nil || t.done {
		e.out.Ignored = append(e.out.Ignored, ev)
		return
	}
	delete(e.tasks, ev.TaskID)
	t.complete(result, err)
	e.resume()
}

func (e *Executor) raise(ev Event) {
	q := e.queue(keyOf(ev.Name))
	if len(q.waiters) > 0 {
		t := q.waiters[0]
		q.waiters = q.waiters[1:]
		if t.timeout != nil {
			t.timeout.Cancel()
		}
		t.complete(ev.Data, nil)
		e.resume()
		return
	}
	e.arrival++
	q.buffered = append(q.buffered, bufferedEvent{ev, e.arrival})
}

// stall halts the executor: the history needs code this process lacks.
func (e *Executor) stall(reason StallReason, description string) {
	e.abandoned.Store(true)
	e.halted = true
	e.pending = e.pending[:0]
	e.out.Stall = &Stall{Reason: reason, Description: description}
}

// match checks a recorded action against the ones the code produced on replay.
func (e *Executor) match(ev Event) {
	i := slices.IndexFunc(e.pending, func(p Event) bool {
		if !p.Kind.IsAction() {
			return false // a patch record: history may hold it anywhere
		}
		if ev.Kind.IsTerminal() {
			return p.Kind.IsTerminal()
		}
		return !p.Kind.IsTerminal() && p.TaskID == ev.TaskID
	})
	if i < 0 {
		e.nondeterministic(ev, "nothing")
		return
	}
	p := e.pending[i]
	if p.Kind != ev.Kind || p.Name != ev.Name {
		e.nondeterministic(ev, describe(p))
		return
	}
	e.pending = slices.Delete(e.pending, i, i+1)
}

func (e *Executor) nondeterministic(recorded Event, replayed string) {
	err := &NonDeterminismError{Workflow: e.name, TaskID: recorded.TaskID, Recorded: describe(recorded), Replayed: replayed}
	e.out.Divergence = &Divergence{Event: e.applying, NonDeterminismError: err}
	if unasked := e.unaskedPatches(); len(unasked) > 0 {
		// The history took a branch of a patch this code no longer (or not
		// yet) has: newer or older code can continue it, so wait for it.
		e.diverged = true
		e.stall(StallPatchMismatch, fmt.Sprintf("history records patch %s, which this code does not check, and the replay diverged: %s",
			quoteVersions(unasked), err.Error()))
		return
	}
	e.halted, e.diverged = true, true
	e.pending = e.pending[:0]
	e.emit(Event{Kind: WorkflowFailed, Failure: &Failure{Type: "NonDeterminismError", Message: err.Error(), NonRetriable: true}})
}

func describe(ev Event) string {
	if ev.Name == "" {
		return ev.Kind.String()
	}
	return fmt.Sprintf("%s %q", ev.Kind, ev.Name)
}

func (e *Executor) emit(ev Event) {
	ev.Time = e.now
	e.pending = append(e.pending, ev)
}

func (e *Executor) newTask(kind taskKind, name string) *Task {
	t := &Task{ctx: e.ctx, kind: kind, name: name, id: e.seq}
	e.seq++
	e.tasks[t.id] = t
	return t
}

func (e *Executor) createTimer(at time.Time, name string) *Task {
	t := e.newTask(taskTimer, name)
	e.emit(Event{Kind: TimerCreated, TaskID: t.id, Name: name, FireAt: at.UTC()})
	return t
}

func (e *Executor) scheduleChild(name, id string, data []byte, retry *RetryPolicy) *Task {
	t := e.newTask(taskChild, name)
	e.emit(Event{Kind: ChildScheduled, TaskID: t.id, Name: name, Instance: id, Data: data, Retry: retry})
	return t
}

func (e *Executor) queue(key string) *eventQueue {
	q := e.events[key]
	if q == nil {
		q = &eventQueue{}
		if e.events == nil {
			e.events = map[string]*eventQueue{}
		}
		e.events[key] = q
	}
	return q
}

func (e *Executor) removeWaiter(t *Task) {
	q := e.queue(t.eventKey)
	if i := slices.Index(q.waiters, t); i >= 0 {
		q.waiters = slices.Delete(q.waiters, i, i+1)
	}
}
