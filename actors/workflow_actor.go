package actors

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/weftrt/weft/limits"
	"github.com/weftrt/weft/reminders"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// workflowActor owns one workflow instance while it is active. Every message is
// handled the same way (DESIGN.md, "The one idea"): append the message as events,
// advance the executor, collect its actions, commit ONE synced batch (history, the
// instance row, activity records, reminders, the awake flag), and only then send
// what the actions send. If the commit fails, the in-memory state is dropped and
// reloaded from disk on the next message, so memory never runs ahead of disk.
type workflowActor struct {
	h    *Host
	id   string
	part uint16
	act  *activation

	loaded bool
	row    *storage.InstanceRecord // nil: no such instance
	exec   *workflow.Executor
	now    time.Time

	activities map[int64]*storage.ActivityRecord // outstanding invocations of this generation
	// retried are the outstanding invocations that have an activity record on
	// disk. A first attempt has none: its ActivityScheduled event says what to
	// run, so a step that schedules and completes activities writes no record;
	// only a failed attempt that is retried stores one (attempt, next attempt time).
	retried       map[int64]bool
	reminders     reminderSet      // this instance's stored reminders
	children      map[int64]string // outstanding child workflows: task → child id
	childInput    map[int64]childCall
	outbox        map[uint64]*storage.OutboxRecord // messages to other instances, not yet committed by them
	outboxTargets map[string]int                   // how many records of the outbox go to each target
	// receivedFrom caches the stored ReceivedMark of each sender this
	// activation has heard from (outbox.go).
	receivedFrom map[string]storage.ReceivedMark
	// clientLog: the client events applied lately, read when first needed
	// (client_events.go).
	clientLog *clientEventLog
	// marksDropped: this activation deleted the received marks older
	// binaries left on a limiter or schedule (dropOldMarks).
	marksDropped bool

	// What the store holds of this instance's listing index entry and awake flag,
	// so a step rewrites them only when they change. Zero (unknown) after loading.
	stored storedState

	// The generation's history as the row holds it (storage.Inline): encoded
	// events while they fit, until the history moves to h/<seq> keys (histKeys).
	histInline [][]byte
	histSize   int
	histKeys   bool
	// legacy: the row was loaded as version 1; the next commit writes it as
	// version 2 and deletes the reverse reminder entries version 1 kept.
	legacy          bool
	legacyReminders []string

	// For an instance whose code runs on a remote worker (row.Remote), see remote.go.
	past      []workflow.Event   // this generation's history, as the worker replays it
	held      []heldEvent        // inputs in the inbox, for the next episode
	episode   *OrchestrationWork // the episode handed to the workers, if one is
	pastCache *EpisodeCache      // what the episodes' sender derived from past

	spans *spanState // nil unless tracing (tracing.go)
}

// storedState is what the last commit wrote of the instance's index entry and
// awake flag.
type storedState struct {
	indexed    bool
	name       string
	status     storage.Status
	awakeKnown bool
	awake      bool
}

// heldEvent is an input waiting in the inbox at position seq, or, for a
// remote instance, an activity result waiting in memory only (see
// holdResultsInMemory).
type heldEvent struct {
	seq uint64
	ev  workflow.Event
	mem bool
}

type childCall struct {
	name  string
	input []byte
	app   string // the app that runs it, when routed to another
}

// maxGenerationsPerStep stops a workflow that continues as new without ever waiting.
const maxGenerationsPerStep = 1000

// A step whose code does not yield within the deadlock timeout is retried with a
// fresh replay after Options.StallRetryDelay × n, up to maxStalls times, before
// the instance fails with the DeadlockError: on an overloaded machine the code may
// simply not have been scheduled, while a real deadlock is deterministic and
// recurs on every replay.
const maxStalls = 3

func newWorkflowActor(h *Host, id string, a *activation) *workflowActor {
	w := &workflowActor{h: h, id: id, part: h.Partition(id), act: a}
	if h.opts.Tracer != nil {
		w.spans = &spanState{}
	}
	return w
}

func (w *workflowActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
	case *actor.Stopping:
		w.persistHeld()
	case *actor.Restarting:
	case *actor.Stopped:
		w.unload()
		w.h.stopped(w.act)
	case request:
		err := w.handleSafely(msg.msg)
		w.act.awaitsWork.Store(w.awaitsWork())
		msg.done <- err
		w.passivateIfDone(ctx)
	case episodeAnswered:
		if err := w.handleSafely(msg); err != nil {
			w.h.remote.returnAnswered(w.id) // the instance did not load: another episode runs
		}
		w.act.awaitsWork.Store(w.awaitsWork())
		w.passivateIfDone(ctx)
	default:
		_ = w.handleSafely(msg) // posted: nothing waits for an answer
		w.act.awaitsWork.Store(w.awaitsWork())
		w.passivateIfDone(ctx)
	}
}

// awaitsWork reports whether the instance waits on an activity attempt or on
// a worker's answer to its episode (see lruList.victim).
func (w *workflowActor) awaitsWork() bool {
	return w.loaded && (len(w.activities) > 0 || w.episode != nil)
}

// passivateIfDone stops the actor right after a message when keeping it in memory
// buys nothing: the instance is gone or finished with nothing left to send, or it
// sleeps on a reminder due more than SleepPassivation from now with nothing in
// flight (a fired reminder activates it again). Holding such instances until the
// idle timeout is what made a million pending timers cost gigabytes.
func (w *workflowActor) passivateIfDone(ctx actor.Context) bool {
	if !w.loaded || !w.idleInMemory() {
		return false
	}
	if w.h.deactivate(w.act) {
		ctx.Poison(ctx.Self())
		return true
	}
	return false
}

func (w *workflowActor) idleInMemory() bool {
	row := w.row
	switch {
	case row == nil:
		return true // purged, or never existed
	case len(w.outbox) > 0 || row.ParentPending:
		return false // acknowledgements on their way
	case row.Status.Terminal():
		return true
	case row.Remote || w.h.opts.SleepPassivation < 0:
		return false
	case len(w.activities) > 0 || len(w.children) > 0 || w.reminders.len() == 0:
		return false // results coming, or waiting on an event that may come any moment
	}
	soonest := time.Time{}
	for _, r := range w.reminders.all() {
		if soonest.IsZero() || r.Due.Before(soonest) {
			soonest = r.Due
		}
	}
	return soonest.Sub(w.now) >= w.h.opts.SleepPassivation
}

// handleSafely turns a panic in the runtime's own code into an error for the
// sender and a reload from disk, never a crash of the node.
func (w *workflowActor) handleSafely(msg any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.h.log.Error("workflow actor panicked; state reloads from disk", "instance", w.id, "panic", p, "stack", string(debug.Stack()))
			w.unload()
			err = fmt.Errorf("instance %s: internal error: %v", w.id, p)
		}
	}()
	w.now = w.h.opts.Now().UTC()
	if !w.loaded {
		if err := w.load(); err != nil {
			w.unload()
			return err
		}
	}
	err = w.handle(msg)
	if err != nil && !settled(err) {
		// The step did not commit (or failed after changing what the actor
		// holds): memory must not run ahead of disk, so the next message
		// reloads the instance. A refusal changed nothing.
		w.unload()
	}
	return err
}

// handle applies one message to the loaded instance.
func (w *workflowActor) handle(msg any) error {
	switch m := msg.(type) {
	case StartRequest:
		return w.start(m)
	case RaiseEventRequest:
		return w.raise(m)
	case TerminateRequest:
		return w.terminate(m)
	case SuspendRequest:
		return w.suspend(m)
	case ResumeRequest:
		return w.resume(m)
	case PurgeRequest:
		return w.purge(m)
	case RerunRequest:
		return w.rerun(m)
	case drainResults:
		return w.activityResults(w.h.takeResults(w.id))
	case episodeDone:
		return w.episodeDone(m)
	case episodeAnswered:
		return w.applyAnswer()
	case ChildResult:
		return w.childResult(m)
	case reminderFired:
		return w.reminderFired(m.r)
	case parentNotified:
		if w.row != nil && w.row.ParentPending {
			w.row.ParentPending = false
			return w.commit(w.newTxn())
		}
		return nil
	case outboxSent:
		return w.outboxSent(m.seq)
	case wake:
		return nil // loading re-sent whatever was outstanding
	}
	return fmt.Errorf("instance %s: unexpected message %T", w.id, msg)
}

// load reads the instance from disk and, if it is running, replays its history
// into a fresh executor and re-sends the work that was in flight.
func (w *workflowActor) load() error {
	st, err := w.h.db.LoadInstance(w.part, w.id)
	w.loaded = true
	w.forgetOutstanding()
	if errors.Is(err, storage.ErrNotFound) {
		w.stored = storedState{awakeKnown: true} // nothing stored, no awake flag either
		return nil
	}
	if err != nil {
		return fmt.Errorf("load instance %s: %w", w.id, err)
	}
	w.row = st.Row
	w.past, w.held, w.episode, w.pastCache = nil, nil, nil, nil
	w.histKeys, w.legacy = st.HistoryKeys, st.Legacy
	w.histInline, w.histSize = nil, 0
	if !w.histKeys {
		w.histInline = st.History
		for _, ev := range st.History {
			w.histSize += len(ev)
		}
	}
	w.legacyReminders = nil
	if w.legacy {
		for _, r := range st.Reminders {
			w.legacyReminders = append(w.legacyReminders, r.Name)
		}
	} else {
		// The row just read is what the last commit wrote, together with its
		// listing entry (written whenever the name or status changes): the next
		// step need not write the entry again unless one of them changes.
		w.stored = storedState{indexed: true, name: w.row.Name, status: w.row.Status}
	}
	if len(st.Outbox) > 0 {
		all := make([]*storage.OutboxRecord, len(st.Outbox))
		for i := range st.Outbox {
			all[i] = &st.Outbox[i]
			w.keepOutbox(all[i])
		}
		w.sendAll(all) // decided before the node stopped: send again
	}
	for _, r := range st.Reminders {
		w.reminders.set(r)
	}
	if w.running() || w.row.Status == storage.Suspended && !w.notStarted() {
		history := make([]workflow.Event, len(st.History))
		for i, b := range st.History {
			if history[i], err = workflow.DecodeEvent(b); err != nil {
				return fmt.Errorf("load history of %s: %w", w.id, err)
			}
		}
		for _, ev := range history {
			if w.spans != nil {
				w.observeForSpans(nil, &ev)
			}
			switch ev.Kind {
			case workflow.ActivityScheduled:
				put(&w.activities, ev.TaskID, &storage.ActivityRecord{TaskID: ev.TaskID, Name: ev.Name, Input: ev.Data,
					Attempt: 1, FirstAttemptAt: ev.Time, NextAttemptAt: ev.Time, TaskExecutionID: ev.TaskExecutionID, App: ev.App})
			case workflow.ActivityCompleted, workflow.ActivityFailed:
				delete(w.activities, ev.TaskID)
			case workflow.ChildScheduled:
				put(&w.children, ev.TaskID, ev.Instance)
				put(&w.childInput, ev.TaskID, childCall{ev.Name, ev.Data, ev.App})
			case workflow.ChildCompleted, workflow.ChildFailed:
				delete(w.children, ev.TaskID)
			}
		}
		for i := range st.Activities {
			// A retried attempt (or, in data written before first attempts went
			// without a record, any outstanding one): the record has its attempt.
			rec := &st.Activities[i]
			put(&w.activities, rec.TaskID, rec)
			put(&w.retried, rec.TaskID, true)
		}
		w.noteStoredAwake()
		held, err := w.readHeld()
		if err != nil {
			return err
		}
		w.forgetSettled(held)
		if w.row.Remote {
			w.past, w.held = history, held
			if err := w.resend(); err != nil {
				return err
			}
			return w.offerEpisode()
		}
		w.exec = w.newExecutor()
		o := w.exec.Execute(history, nil)
		if waits, err := w.waitAfterReplay(o); waits || err != nil {
			return err // inputs are held until the "unstall" reminder replays
		}
		if unstalled := w.unstall(); len(o.Actions) > 0 || unstalled {
			// Replay diverged from history (non-determinism), found actions history
			// lacks (patch answers, a step a crash cut short), or went through
			// where it stalled before: record it like any other step.
			t := w.newTxn()
			if err := w.record(t, nil, o); err != nil {
				return err
			}
			if err := w.commit(t); err != nil {
				return err
			}
		}
		if err := w.decideFailures(); err != nil {
			return err
		}
		if err := w.resend(); err != nil {
			return err
		}
		if w.running() && len(held) > 0 {
			if err := w.applyHeld(heldEvents(held)); err != nil {
				return err
			}
		}
	}
	if !w.running() && w.row.Status != storage.Suspended {
		w.noteStoredAwake()
	}
	if (w.row.Status == storage.Pending || w.notStarted()) && w.row.Remote {
		return w.loadHeld()
	}
	if w.row.Status.Terminal() && w.row.ParentPending {
		w.notifyParent()
	}
	return nil
}

// noteStoredAwake records, once a load has rebuilt what the instance has
// outstanding, that its stored awake flag is off when nothing outstanding
// would have set it: the last commit saw the same state. A fired timer then
// does not write a deletion of a flag that is not there (a tombstone for
// compactions to carry down). Only "off" is taken as known: were the flag on
// after all, it costs a needless wake-up after a restart, while taking "on"
// wrongly could leave work in flight that a restart would not resume.
func (w *workflowActor) noteStoredAwake() {
	if !w.legacy && !w.row.Remote && !w.awake() {
		w.stored.awakeKnown, w.stored.awake = true, false
	}
}

// awake is the awake flag a commit stores: the instance has work in flight
// that a restart must resume.
func (w *workflowActor) awake() bool {
	return len(w.activities) > 0 || len(w.children) > 0 || len(w.outbox) > 0 || w.row.ParentPending ||
		w.row.Remote && len(w.held) > 0 // an episode to hand to the workers after a restart
}

// applyHeld applies the inputs a running instance held while it had no
// executor (its step stalled, or its workflow was not registered).
func (w *workflowActor) applyHeld(held []workflow.Event) error {
	t := w.newTxn()
	w.clearInbox(t)
	if err := w.advance(t, held); err != nil {
		t.close()
		return err
	}
	return w.commit(t)
}

// resend re-sends what this instance has in flight that nothing on this node is
// already working on: after a crash, that is everything outstanding.
func (w *workflowActor) resend() error {
	var ask []*storage.ActivityRecord
	for _, rec := range w.activities {
		if rec.Failed != nil {
			continue // waiting for a decision on its failure
		}
		if _, waiting := w.reminders.getTask(retryKind, w.row.Generation, rec.TaskID); waiting {
			// Its retry reminder sends it, even when due already: loaded by
			// that very reminder, the instance would otherwise send it twice.
			// (Not its due time: on another node's clock it may lie ahead.)
			continue
		}
		if w.h.limited(rec.Name) && !rec.Permit {
			// Its request waits at the limiter, or was never sent (the limit
			// is newer than the attempt): asked again, the limiter keeps one.
			ask = append(ask, rec)
			continue
		}
		w.h.dispatchUnlessInFlight(w.invocation(rec))
	}
	for task, child := range w.children {
		c := w.childInput[task]
		w.h.deliverAsync(child, w.childStart(task, c))
	}
	if len(ask) == 0 {
		return nil
	}
	t := w.newTxn()
	for _, rec := range ask {
		w.askLimiter(t, rec, false)
	}
	return w.commit(t)
}

// forgetOutstanding clears what the actor knows of the instance's outstanding
// work, before it is loaded again or replaced.
func (w *workflowActor) forgetOutstanding() {
	w.activities = nil
	w.retried = nil
	w.reminders.reset()
	w.children = nil
	w.childInput = nil
	w.outbox = nil
	w.outboxTargets = nil
	w.receivedFrom = nil
	w.clientLog = nil
}

func (w *workflowActor) unload() {
	if w.exec != nil {
		w.exec.Close()
	}
	w.exec, w.row, w.loaded = nil, nil, false
	w.receivedFrom, w.clientLog, w.marksDropped = nil, nil, false
	w.histInline, w.histSize, w.histKeys, w.legacy, w.legacyReminders = nil, 0, false, false, nil
	if w.spans != nil {
		*w.spans = spanState{}
	}
	w.act.committed.Store(0)
	w.stored = storedState{}
	w.past, w.held, w.episode, w.pastCache = nil, nil, nil, nil
}

func (w *workflowActor) newExecutor() *workflow.Executor {
	return workflow.NewExecutor(w.h.reg, w.id, workflow.ExecutorOptions{
		DeadlockTimeout: w.h.opts.DeadlockTimeout,
		Logger:          w.h.log,
	})
}

func (w *workflowActor) history() ([]workflow.Event, error) {
	return w.h.History(w.id)
}

// --- messages ---------------------------------------------------------------

func (w *workflowActor) start(m StartRequest) error {
	if err := storage.ValidateInstanceID(w.id); err != nil {
		if m.ParentID != "" { // a workflow asked for a child id that cannot be stored
			w.h.deliverAsync(m.ParentID, ChildResult{Gen: m.ParentGen, TaskID: m.ParentTask, ChildID: w.id,
				Failure: &workflow.Failure{Type: "InvalidInstanceID", Message: err.Error(), NonRetriable: true}})
			return nil
		}
		return err
	}
	t := w.newTxn()
	if w.row != nil {
		sameCall := m.ParentID != "" && w.row.ParentID == m.ParentID && w.row.ParentTask == m.ParentTask && w.row.ParentGen == m.ParentGen
		switch {
		case sameCall:
			// A re-sent child start: already done. If the child finished and
			// its parent acknowledged the result, the parent asks again
			// because it lost track of it: tell it again.
			t.close()
			if w.row.Status.Terminal() && !w.row.ParentPending {
				w.notifyParent()
			}
			return nil
		case m.ParentID != "" && w.row.Status.Terminal():
			// A parent (re)starting a child under the id of a finished instance
			// replaces it: that is how a retried child runs again.
		case m.ParentID != "":
			t.close()
			w.h.deliverAsync(m.ParentID, ChildResult{Gen: m.ParentGen, TaskID: m.ParentTask, ChildID: w.id,
				Failure: &workflow.Failure{Type: "InstanceExists", Message: fmt.Sprintf("instance id %s is already used by a running workflow", w.id), NonRetriable: true}})
			return nil
		case m.Reuse == ReuseIgnore:
			t.close()
			return nil
		case m.Reuse == ReuseTerminate:
		default:
			t.close()
			return fmt.Errorf("instance %s (%s, %s): %w", w.id, w.row.Name, w.row.Status, ErrInstanceExists)
		}
		if err := w.h.db.PurgeInstance(t.b, w.part, w.id, w.row.CreatedAt); err != nil {
			t.close()
			return fmt.Errorf("replace instance %s: %w", w.id, err)
		}
		t.done = append(t.done, w.reminders.all()...)
		w.forgetRemoteWork()
		w.unload()
		w.loaded = true
		w.forgetOutstanding()
	}
	w.row = &storage.InstanceRecord{
		ID: w.id, Name: m.Name, Status: storage.Running, CreatedAt: w.now, Input: m.Input,
		ParentID: m.ParentID, ParentTask: m.ParentTask, ParentGen: m.ParentGen,
		Remote: w.h.remote != nil && !w.h.reg.HasWorkflow(m.Name), Version: m.Version,
		TraceParent: m.TraceParent, TraceState: m.TraceState, App: m.App, Notify: m.Notify,
	}
	if m.Version == "" {
		w.row.Version = w.defaultVersion(m.Name)
	}
	if m.StartAt.After(w.now) {
		w.row.Status = storage.Pending
		w.row.ScheduledStartAt = m.StartAt.UTC()
		w.putReminder(t, "start", m.StartAt)
		return w.commit(t)
	}
	if w.h.workflowLimited(m.Name) { // starts when its permit comes
		w.askToStart(t)
		return w.commit(t)
	}
	if w.row.Remote {
		// PENDING until a worker's first episode is committed: that is what the
		// SDKs' WaitForInstanceStart waits for.
		w.row.Status = storage.Pending
		t.started = m.Name
		if err := w.hold(t, []workflow.Event{w.startedEvent(m.Input)}); err != nil {
			t.close()
			return err
		}
		return w.commit(t)
	}
	w.exec = w.newExecutor()
	t.started = m.Name
	if err := w.advance(t, []workflow.Event{w.startedEvent(m.Input)}); err != nil {
		t.close()
		return err
	}
	return w.commit(t)
}

func (w *workflowActor) startedEvent(input []byte) workflow.Event {
	return workflow.Event{Kind: workflow.WorkflowStarted, Name: w.row.Name, Version: w.row.Version, Data: input, Time: w.now,
		Instance: w.row.ParentID, TaskID: w.row.ParentTask}
}

func (w *workflowActor) raise(m RaiseEventRequest) error {
	if m.Name == limits.PermitEvent {
		return w.permit(m)
	}
	if m.Create != nil && (w.row == nil || w.row.Status.Terminal()) {
		// A limiter purged or terminated by hand is made anew: requests
		// must not be dropped, though what it held is forgotten.
		create := *m.Create
		create.Reuse = ReuseTerminate
		if err := w.start(create); err != nil {
			return fmt.Errorf("raise event %s on %s: create it: %w", m.Name, w.id, err)
		}
	}
	if w.row == nil {
		return fmt.Errorf("raise event %s on %s: %w", m.Name, w.id, ErrInstanceNotFound)
	}
	if w.row.Status.Terminal() {
		w.h.log.Debug("event raised on a finished instance dropped", "instance", w.id, "event", m.Name)
		return nil
	}
	t := w.newTxn()
	if err := w.dropOldMarks(t); err != nil {
		t.close()
		return err
	}
	if dup, err := w.appliedAlready(t, m); err != nil || dup {
		t.close()
		if dup {
			w.h.stats.IgnoredDuplicates.Add(1)
		}
		return err
	}
	if err := w.inputs(t, []workflow.Event{{Kind: workflow.EventRaised, Name: m.Name, Data: m.Data, Time: w.now}}); err != nil {
		t.close()
		return err
	}
	if err := w.commit(t); err != nil {
		return err
	}
	if m.RequestID != "" {
		w.clientEventCommitted(m.RequestID)
	}
	return nil
}

func (w *workflowActor) terminate(m TerminateRequest) error {
	if w.row == nil {
		return fmt.Errorf("terminate %s: %w", w.id, ErrInstanceNotFound)
	}
	if w.row.Status.Terminal() {
		return nil // a finished instance stays as it finished
	}
	t := w.newTxn()
	if m.Recursive {
		for _, child := range slices.Sorted(maps.Values(w.children)) {
			// Descendants end with the output the caller gave, as Dapr's do.
			rec := &storage.OutboxRecord{Target: child, Kind: storage.OutboxTerminate, Data: m.Reason}
			if err := w.queueOutbox(t, rec); err != nil {
				t.close()
				return err
			}
		}
	}
	if err := w.appendHistory(t, workflow.Event{Kind: workflow.WorkflowTerminated, Data: m.Reason, Time: w.now}); err != nil {
		t.close()
		return err
	}
	w.finish(t, storage.Terminated, m.Reason, nil)
	return w.commit(t)
}

func (w *workflowActor) suspend(m SuspendRequest) error {
	switch {
	case w.row == nil:
		return fmt.Errorf("suspend %s: %w", w.id, ErrInstanceNotFound)
	case w.row.Status == storage.Suspended:
		return nil
	case w.row.Status == storage.Pending:
		return w.suspendBeforeStart()
	case !w.running():
		return fmt.Errorf("suspend %s (%s): %w", w.id, w.row.Status, ErrNotRunning)
	}
	t := w.newTxn()
	if err := w.appendHistory(t, workflow.Event{Kind: workflow.WorkflowSuspended, Data: quote(m.Reason), Time: w.now}); err != nil {
		t.close()
		return err
	}
	w.row.Status = storage.Suspended
	return w.commit(t)
}

func (w *workflowActor) resume(m ResumeRequest) error {
	switch {
	case w.row == nil:
		return fmt.Errorf("resume %s: %w", w.id, ErrInstanceNotFound)
	case w.running():
		return nil
	case w.row.Status != storage.Suspended:
		return fmt.Errorf("resume %s (%s): %w", w.id, w.row.Status, ErrNotRunning)
	case w.notStarted():
		return w.resumeBeforeStart()
	}
	if w.row.Remote { // the held inputs go to the next episode
		t := w.newTxn()
		w.row.Status = storage.Running
		if err := w.appendHistory(t, workflow.Event{Kind: workflow.WorkflowResumed, Data: quote(m.Reason), Time: w.now}); err != nil {
			t.close()
			return err
		}
		return w.commit(t)
	}
	t := w.newTxn()
	w.row.Status = w.runningStatus()
	if err := w.appendHistory(t, workflow.Event{Kind: workflow.WorkflowResumed, Data: quote(m.Reason), Time: w.now}); err != nil {
		t.close()
		return err
	}
	if w.exec != nil { // else the held inputs wait for the replay the "unstall" reminder brings
		held, err := w.inbox()
		if err != nil {
			t.close()
			return err
		}
		w.clearInbox(t)
		if err := w.advance(t, held); err != nil {
			t.close()
			return err
		}
	}
	return w.commit(t)
}

func (w *workflowActor) purge(m PurgeRequest) error {
	if w.row == nil {
		return fmt.Errorf("purge %s: %w", w.id, ErrInstanceNotFound)
	}
	if !w.row.Status.Terminal() && !m.Force {
		return fmt.Errorf("purge %s (%s): %w", w.id, w.row.Status, ErrNotFinished)
	}
	if m.Recursive {
		history, err := w.history()
		if err != nil {
			return err
		}
		for _, ev := range history {
			if ev.Kind != workflow.ChildScheduled {
				continue
			}
			err := w.h.Request(context.Background(), ev.Instance, PurgeRequest{Recursive: true, Expired: m.Expired, Force: m.Force})
			if err != nil && !errors.Is(err, ErrInstanceNotFound) {
				return fmt.Errorf("purge %s: child %s: %w", w.id, ev.Instance, err)
			}
		}
	}
	b := w.h.db.NewBatch()
	if err := w.h.db.PurgeInstance(b, w.part, w.id, w.row.CreatedAt); err != nil {
		b.Close()
		return fmt.Errorf("purge %s: %w", w.id, err)
	}
	err := w.h.commitStep(w.part, b)
	b.Close()
	if err != nil {
		w.unload()
		return fmt.Errorf("purge %s: %w", w.id, err)
	}
	done := append([]storage.Reminder(nil), w.reminders.all()...)
	w.h.rem.Done(done...)
	if !w.row.Status.Terminal() { // forced: its work in flight is dropped
		w.forgetRemoteWork()
		w.h.log.Warn("unfinished workflow instance purged (force)", "instance", w.id, "workflow", w.row.Name, "status", w.row.Status.String())
	}
	w.unload()
	w.loaded = true // known absent
	w.h.notify(w.id, nil)
	reason := "request"
	if m.Expired {
		reason = "retention"
	}
	w.h.metrics.purged.WithLabelValues(reason).Inc()
	return nil
}

// activityResults applies a batch of activity outcomes in one step and one commit:
// a fan-out of 1,000 commits as fast as results arrive, not once per result.
func (w *workflowActor) activityResults(results []ActivityResult) error {
	if w.row == nil {
		return nil // purged
	}
	t := w.newTxn()
	var inputs []workflow.Event
	var taken map[int64]bool // a batch may hold the same attempt's result twice (a re-sent report)
	if len(results) > 1 {
		taken = make(map[int64]bool, len(results))
	}
	for _, m := range results {
		if taken[m.TaskID] {
			w.h.stats.IgnoredDuplicates.Add(1)
			continue
		}
		if ev, ok := w.activityResult(t, m); ok {
			inputs = append(inputs, ev)
			if taken != nil {
				taken[m.TaskID] = true
			}
		}
	}
	if len(inputs) > 0 && w.holdResultsInMemory(t, inputs) {
		return nil
	}
	if len(inputs) > 0 {
		if err := w.inputs(t, inputs); err != nil {
			t.close()
			return err
		}
	}
	if len(inputs) == 0 && t.b.Empty() {
		t.close()
		return nil // only duplicates (a retry writes its record and reminder)
	}
	return w.commit(t)
}

// activityResult decides what one outcome means: a duplicate (nothing), a retry
// (a new attempt record and its reminder), or an input event for the workflow.
func (w *workflowActor) activityResult(t *txn, m ActivityResult) (workflow.Event, bool) {
	rec := w.activities[m.TaskID]
	if w.row.Generation != m.Gen || rec == nil || rec.Attempt != m.Attempt || w.row.Status.Terminal() {
		w.h.stats.IgnoredDuplicates.Add(1)
		return workflow.Event{}, false // a duplicate, or from an earlier generation
	}
	if m.Failure == nil {
		return workflow.Event{Kind: workflow.ActivityCompleted, TaskID: m.TaskID, Data: m.Output, Time: w.now}, true
	}
	if w.exec == nil && !w.row.Remote {
		w.deferFailure(t, rec, m.Failure) // the code that knows the retry policy is not loaded
		return workflow.Event{}, false
	}
	var policy *workflow.RetryPolicy // a remote worker's SDK retries in the workflow's code
	if w.exec != nil {
		policy = w.exec.RetryPolicy(m.TaskID)
	}
	return w.failedAttempt(t, rec, m.Failure, policy)
}

// failedAttempt decides on a failed attempt: another attempt (its record and
// reminder go in t), or the final failure, the input event returned.
func (w *workflowActor) failedAttempt(t *txn, rec *storage.ActivityRecord, f *workflow.Failure, policy *workflow.RetryPolicy) (workflow.Event, bool) {
	if delay, ok := policy.NextDelay(rec.Attempt, rec.FirstAttemptAt, w.now, f); ok {
		if w.spans != nil {
			w.spanFailedAttempt(t, &activityAttempt{rec.TaskID, rec.Name, rec.Attempt, rec.NextAttemptAt, f.String()})
		}
		w.releasePermit(t, rec)
		rec.Permit = false // the next attempt asks again, in turn
		rec.Attempt++
		rec.NextAttemptAt = w.now.Add(delay)
		if err := t.b.PutActivity(w.part, w.id, rec); err != nil {
			panic(err) // our own record: a failure is a bug
		}
		put(&w.retried, rec.TaskID, true)
		w.putReminder(t, retryName(w.row.Generation, rec.TaskID), rec.NextAttemptAt)
		// Marked in history (see workflow.RetryMarkersInFull), with its number.
		if failed := rec.Attempt - 1; failed <= workflow.RetryMarkersInFull || failed%workflow.RetryMarkerEvery == 0 {
			if err := w.appendHistory(t, workflow.Event{Kind: workflow.ActivityRetrying, TaskID: rec.TaskID, Name: rec.Name, Failure: f,
				Data: strconv.AppendInt(nil, int64(failed), 10), FireAt: rec.NextAttemptAt, Time: w.now}); err != nil {
				panic(err) // an event of our own making: a failure is a bug
			}
		}
		w.h.log.Info("activity attempt failed; retrying", "instance", w.id, "task", rec.TaskID, "activity", rec.Name,
			"attempt", rec.Attempt-1, "next_attempt_in", delay, "failure", f.String())
		return workflow.Event{}, false
	}
	return workflow.Event{Kind: workflow.ActivityFailed, TaskID: rec.TaskID, Name: rec.Name, Failure: f, Time: w.now}, true
}

func (w *workflowActor) childResult(m ChildResult) error {
	if w.row == nil || w.row.Generation != m.Gen || w.children[m.TaskID] != m.ChildID {
		return nil
	}
	if m.Failure != nil {
		return w.input(workflow.Event{Kind: workflow.ChildFailed, TaskID: m.TaskID, Failure: m.Failure, Time: w.now})
	}
	return w.input(workflow.Event{Kind: workflow.ChildCompleted, TaskID: m.TaskID, Data: m.Output, Time: w.now})
}

func (w *workflowActor) reminderFired(r storage.Reminder) error {
	stored, ok := w.reminders.get(r.Name)
	if w.row == nil || !ok {
		return nil // already handled and deleted
	}
	kind, gen, task := parseReminderName(r.Name)
	switch {
	case kind == "start" && w.row.Status == storage.Pending && w.h.workflowLimited(w.row.Name):
		t := w.newTxn()
		w.deleteReminder(t, stored)
		w.askToStart(t)
		return w.commit(t)
	case kind == "start" && w.row.Status == storage.Pending && w.row.Remote:
		t := w.newTxn()
		w.deleteReminder(t, stored)
		t.started = w.row.Name
		if err := w.rehold(t, []workflow.Event{w.startedEvent(w.row.Input)}); err != nil {
			t.close()
			return err
		}
		return w.commit(t)
	case kind == "start" && w.row.Status == storage.Pending:
		t := w.newTxn()
		w.deleteReminder(t, stored)
		if err := w.startNow(t); err != nil {
			t.close()
			return err
		}
		return w.commit(t)
	case kind == "timer" && gen == w.row.Generation && !w.row.Status.Terminal():
		return w.input(workflow.Event{Kind: workflow.TimerFired, TaskID: task, Time: w.now})
	case kind == purgeReminder:
		return w.purgeExpired(stored)
	case kind == "unstall":
		t := w.newTxn()
		w.deleteReminder(t, stored)
		if err := w.commit(t); err != nil {
			return err
		}
		if w.row.Remote {
			w.dispatchEpisode() // a stalled episode is offered to the workers again
			return nil
		}
		if w.exec != nil || w.row.Status.Terminal() {
			return nil // loading replayed the history with a fresh executor: the step ran again
		}
		w.unload() // the instance waited for this replay
		return w.load()
	case kind == "retry" && gen == w.row.Generation && w.activities[task] != nil:
		t := w.newTxn()
		w.deleteReminder(t, stored)
		if w.mayRun(t, w.activities[task]) {
			t.dispatch = append(t.dispatch, w.invocation(w.activities[task]))
		}
		return w.commit(t)
	}
	t := w.newTxn() // stale: drop it
	w.deleteReminder(t, stored)
	return w.commit(t)
}

// input applies one input event in its own step.
func (w *workflowActor) input(ev workflow.Event) error {
	t := w.newTxn()
	if err := w.inputs(t, []workflow.Event{ev}); err != nil {
		t.close()
		return err
	}
	return w.commit(t)
}

// inputs applies input events: now if the instance runs, or held in the inbox
// while it is suspended or not started yet.
func (w *workflowActor) inputs(t *txn, evs []workflow.Event) error {
	for _, ev := range evs {
		w.settle(t, ev)
	}
	if w.row.Status == storage.Running && w.exec != nil {
		return w.advance(t, evs)
	}
	return w.hold(t, evs)
}

// hold keeps input events in the inbox: while the instance is suspended or not
// started yet, or, for a remote instance, until the next episode takes them.
func (w *workflowActor) hold(t *txn, evs []workflow.Event) error {
	for _, ev := range evs {
		b, err := workflow.EncodeEvent(ev)
		if err != nil {
			return err
		}
		t.b.PutInbox(w.part, w.id, w.row.NextInboxSeq, b)
		if w.row.Remote {
			w.held = append(w.held, heldEvent{seq: w.row.NextInboxSeq, ev: ev})
		}
		w.row.NextInboxSeq++
	}
	return nil
}

// forgetSettled takes out of the outstanding work rebuilt from history what the
// held inputs complete: settle did so when they arrived, in memory and in the
// records and reminders it deleted. Sent again, an activity whose result waits
// in the inbox would run twice.
func (w *workflowActor) forgetSettled(held []heldEvent) {
	for _, h := range held {
		switch h.ev.Kind {
		case workflow.ActivityCompleted, workflow.ActivityFailed:
			delete(w.activities, h.ev.TaskID)
			delete(w.retried, h.ev.TaskID)
		case workflow.ChildCompleted, workflow.ChildFailed:
			delete(w.children, h.ev.TaskID)
			delete(w.childInput, h.ev.TaskID)
		}
	}
}

// settle does the bookkeeping an input event implies whether or not it is applied
// now: the activity, timer or child it completes is no longer outstanding.
func (w *workflowActor) settle(t *txn, ev workflow.Event) {
	switch ev.Kind {
	case workflow.ActivityCompleted, workflow.ActivityFailed:
		if w.spans != nil {
			w.spans.lastAttempt(w.activities[ev.TaskID])
		}
		w.releasePermit(t, w.activities[ev.TaskID])
		delete(w.activities, ev.TaskID)
		if w.retried[ev.TaskID] {
			delete(w.retried, ev.TaskID)
			t.b.DeleteActivity(w.part, w.id, ev.TaskID)
		}
		if r, ok := w.reminders.getTask(retryKind, w.row.Generation, ev.TaskID); ok {
			w.deleteReminder(t, r)
		}
	case workflow.TimerFired:
		if r, ok := w.reminders.getTask(timerKind, w.row.Generation, ev.TaskID); ok {
			w.deleteReminder(t, r)
		}
	case workflow.ChildCompleted, workflow.ChildFailed:
		delete(w.children, ev.TaskID)
		delete(w.childInput, ev.TaskID)
	}
}

func (w *workflowActor) inbox() ([]workflow.Event, error) {
	evs, err := decodeEvents(func(fn func(uint64, []byte) error) error { return w.h.db.Inbox(w.part, w.id, fn) })
	if err != nil {
		return nil, fmt.Errorf("load held events of %s: %w", w.id, err)
	}
	return evs, nil
}

// --- the step ---------------------------------------------------------------

// txn gathers one step: the batch, and what to do once it is committed.
type txn struct {
	b *storage.Batch
	// hold keeps the reminders' low-water mark from passing the floor the
	// step stores reminders at, until they are Added; rem is set while it is
	// held (from the step's first reminder).
	hold     reminders.Hold
	rem      *reminders.Service
	added    []storage.Reminder
	done     []storage.Reminder
	dispatch []Invocation
	children []childStartMsg
	sends    []*storage.OutboxRecord
	parent   bool
	started  string // workflow name, when this step started an instance
	finished string // final status, when this step finished it
	spans    []finishedSpan
	// limiterRequests go out with the commit, one outbox record per limiter.
	limiterRequests []limits.Request
}

type childStartMsg struct {
	id  string
	msg StartRequest
}

// newTxn starts a step. Kept small enough to inline, so that a txn that does
// not escape stays on the stack: the reminders' hold and its service are set
// by the first reminder the step stores.
func (w *workflowActor) newTxn() *txn { return &txn{b: w.h.db.NewBatch()} }

// close ends a step: committed, or abandoned.
func (t *txn) close() {
	if t.rem != nil {
		t.rem.Release(t.hold)
		t.rem, t.hold = nil, reminders.Hold{}
	}
	t.b.Close()
}

// advance feeds inputs to the executor and records what it did, continuing as new
// as often as the workflow asks (each new generation starts in the same batch).
func (w *workflowActor) advance(t *txn, inputs []workflow.Event) error {
	for gen := 0; ; gen++ {
		o := w.exec.Execute(nil, inputs)
		if w.slowStep(t, o) {
			return w.appendHistory(t, inputs...) // keep the inputs; the step runs again on replay
		}
		if o.Stall != nil { // a new instance (or generation) of a version not registered here
			if err := w.appendHistory(t, inputs...); err != nil {
				return err
			}
			return w.stall(t, o.Stall)
		}
		if err := w.record(t, inputs, o); err != nil {
			return err
		}
		last := workflow.Event{}
		if n := len(o.Actions); n > 0 {
			last = o.Actions[n-1]
		}
		if last.Kind != workflow.ContinuedAsNew {
			return nil
		}
		if gen >= maxGenerationsPerStep {
			w.finish(t, storage.Failed, nil, &storage.Failure{Type: "ContinueAsNewLoop",
				Message: fmt.Sprintf("workflow %s continued as new %d times without waiting for anything", w.row.Name, gen)})
			return nil
		}
		w.dropOutstanding(t)
		w.dropHistory(t)
		w.row.NextSeq = 0
		w.row.Generation++
		w.row.Input = last.Data
		w.row.Version = w.defaultVersion(w.row.Name) // a new generation runs the default version
		w.exec.Close()
		w.exec = w.newExecutor()
		inputs = append([]workflow.Event{w.startedEvent(last.Data)}, o.Carry...)
	}
}

// slowStep handles a step whose code did not yield in time: unless it has been
// slow maxStalls times in a row, the step is abandoned (its inputs are kept by
// the caller), the executor dropped, and an "unstall" reminder replays it later.
func (w *workflowActor) slowStep(t *txn, o *workflow.Outcome) bool {
	if !o.Deadlocked {
		if w.row.Stalls > 0 {
			w.row.Stalls = 0
		}
		return false
	}
	if w.row.Stalls >= maxStalls {
		return false // a real deadlock: record the failure
	}
	w.row.Stalls++
	delay := w.h.opts.StallRetryDelay * time.Duration(w.row.Stalls)
	w.h.log.Warn("workflow code did not yield in time; retrying the step with a fresh replay",
		"instance", w.id, "workflow", w.row.Name, "stall", w.row.Stalls, "of", maxStalls, "retry_in", delay)
	w.replayLater(t, delay)
	return true
}

// replayLater drops the executor of a running instance and sets the "unstall"
// reminder that replays it after delay: meanwhile its inputs are held (inputs).
func (w *workflowActor) replayLater(t *txn, delay time.Duration) {
	w.putReminder(t, "unstall", w.now.Add(delay))
	w.exec.Close()
	w.exec = nil
}

// record appends inputs and the executor's actions to history and turns each
// action into stored records and post-commit effects.
func (w *workflowActor) record(t *txn, inputs []workflow.Event, o *workflow.Outcome) error {
	if err := w.appendHistory(t, inputs...); err != nil {
		return err
	}
	if err := w.appendHistory(t, o.Actions...); err != nil {
		return err
	}
	if o.CustomStatusSet {
		w.row.CustomStatus = o.CustomStatus
	}
	if n := len(o.Ignored); n > 0 {
		w.h.stats.IgnoredDuplicates.Add(int64(n))
	}
	gen := w.row.Generation
	for _, a := range o.Actions {
		switch a.Kind {
		case workflow.ActivityScheduled:
			// No record on disk: the event is the record of a first attempt.
			rec := &storage.ActivityRecord{TaskID: a.TaskID, Name: a.Name, Input: a.Data, Attempt: 1, FirstAttemptAt: w.now, NextAttemptAt: w.now,
				TaskExecutionID: a.TaskExecutionID, App: a.App}
			put(&w.activities, a.TaskID, rec)
			if w.mayRun(t, rec) {
				t.dispatch = append(t.dispatch, w.invocation(rec))
			}
		case workflow.TimerCreated:
			w.putReminder(t, timerName(gen, a.TaskID), a.FireAt)
		case workflow.TimerCanceled:
			if r, ok := w.reminders.getTask(timerKind, gen, a.TaskID); ok {
				w.deleteReminder(t, r)
			}
		case workflow.ChildScheduled:
			put(&w.children, a.TaskID, a.Instance)
			put(&w.childInput, a.TaskID, childCall{a.Name, a.Data, a.App})
			t.children = append(t.children, childStartMsg{a.Instance, w.childStart(a.TaskID, childCall{a.Name, a.Data, a.App})})
		case workflow.EventSent:
			if err := w.queueOutbox(t, &storage.OutboxRecord{Target: a.Instance, Name: a.Name, Data: a.Data}); err != nil {
				return err
			}
		case workflow.WorkflowCompleted:
			w.finish(t, storage.Completed, a.Data, nil)
		case workflow.WorkflowFailed:
			f := &storage.Failure{}
			if a.Failure != nil {
				f = &storage.Failure{Type: a.Failure.Type, Message: a.Failure.Message, Stack: a.Failure.Stack}
			}
			w.finish(t, storage.Failed, nil, f)
		}
	}
	return nil
}

func (w *workflowActor) appendHistory(t *txn, evs ...workflow.Event) error {
	for _, ev := range evs {
		if w.spans != nil {
			w.observeForSpans(t, &ev)
		}
		b, err := workflow.EncodeEvent(ev)
		if err != nil {
			return fmt.Errorf("instance %s: %w", w.id, err)
		}
		if w.histKeys {
			t.b.AppendHistory(w.part, w.id, w.row.NextSeq, b)
		} else {
			w.histInline = append(w.histInline, b)
			w.histSize += len(b)
		}
		w.row.NextSeq++
		if w.row.Remote {
			w.past = append(w.past, ev)
		}
	}
	if !w.histKeys && w.histSize > storage.InlineHistoryLimit {
		// Too long to rewrite with every step: the history moves to its keys,
		// once; later events are appended as keys.
		for seq, b := range w.histInline {
			t.b.AppendHistory(w.part, w.id, uint64(seq), b)
		}
		w.histInline, w.histSize, w.histKeys = nil, 0, true
	}
	return nil
}

// dropHistory deletes the generation's history (continue-as-new): the keys it
// moved to, if it did.
func (w *workflowActor) dropHistory(t *txn) {
	if w.histKeys {
		t.b.DeleteHistory(w.part, w.id, w.row.NextSeq)
	}
	w.histInline, w.histSize, w.histKeys = nil, 0, false
}

// inline is the state the row carries for the next activation (storage.Inline).
func (w *workflowActor) inline() *storage.Inline {
	in := &storage.Inline{HistoryKeys: w.histKeys, History: w.histInline,
		Retrying: len(w.retried), Outbox: len(w.outbox)}
	if w.reminders.len() > 0 {
		in.Reminders = make([]storage.InlineReminder, 0, w.reminders.len())
		for _, r := range w.reminders.all() {
			in.Reminders = append(in.Reminders, storage.InlineReminder{Name: r.Name, Due: r.Due})
		}
		slices.SortFunc(in.Reminders, func(a, b storage.InlineReminder) int { return strings.Compare(a.Name, b.Name) })
	}
	return in
}

// finish ends the instance: nothing outstanding is kept, the parent is told.
func (w *workflowActor) finish(t *txn, status storage.Status, output []byte, failure *storage.Failure) {
	t.finished = status.String()
	w.row.Status = status
	w.row.CompletedAt = w.now
	w.row.Output = output
	w.row.Failure = failure
	w.dropOutstanding(t)
	if r, ok := w.reminders.get("start"); ok {
		w.deleteReminder(t, r)
	}
	w.clearInbox(t)
	w.children = nil
	w.childInput = nil
	if w.row.ParentID != "" {
		w.row.ParentPending = true
		t.parent = true
	}
	if w.exec != nil {
		w.exec.Close()
		w.exec = nil
	}
	w.schedulePurge(t, status)
	w.queueFinishNotice(t)
	if w.h.workflowLimited(w.row.Name) {
		w.askWorkflowLimiter(t, true) // its permit, or its request if it never started
	}
}

// dropOutstanding forgets the generation's activities and timers.
func (w *workflowActor) dropOutstanding(t *txn) {
	w.forgetRemoteWork()
	for _, rec := range w.activities {
		w.releasePermit(t, rec)
	}
	for task := range w.retried {
		t.b.DeleteActivity(w.part, w.id, task)
	}
	w.activities = nil
	w.retried = nil
	for _, r := range slices.Clone(w.reminders.all()) { // deleteReminder changes the set
		if r.Name != "start" {
			w.deleteReminder(t, r)
		}
	}
}

// clearInbox deletes the held events, if there are any.
func (w *workflowActor) clearInbox(t *txn) {
	if w.row.NextInboxSeq > 0 {
		t.b.DeleteInbox(w.part, w.id, w.row.NextInboxSeq)
		w.row.NextInboxSeq = 0
	}
	w.held = nil
}

func (w *workflowActor) putReminder(t *txn, name string, due time.Time) {
	if t.rem == nil {
		t.rem, t.hold = w.h.rem, w.h.rem.Hold()
	}
	if due.Before(t.hold.Floor) {
		due = t.hold.Floor // the reminder scan starts at the floor: store below it and it would be missed
	}
	r := storage.Reminder{Partition: w.part, Instance: w.id, Name: name, Due: due.UTC()}
	if old, ok := w.reminders.get(name); ok {
		t.b.DeleteReminder(old)
	}
	if err := t.b.PutReminder(r); err != nil {
		panic(err) // names are ours and valid; a failure here is a bug
	}
	w.reminders.set(r)
	t.added = append(t.added, r)
}

func (w *workflowActor) deleteReminder(t *txn, r storage.Reminder) {
	t.b.DeleteReminder(r)
	w.reminders.remove(r.Name)
	t.done = append(t.done, r)
}

// commit writes the step and then carries out its effects, in that order.
func (w *workflowActor) commit(t *txn) error {
	defer t.close() // releases the reminders' hold, after Added; returns pebble's batch to its pool
	if len(t.limiterRequests) > 0 {
		w.flushLimiterRequests(t)
	}
	var stored storedState
	if w.row != nil {
		w.row.UpdatedAt = w.now
		stored = storedState{indexed: true, name: w.row.Name, status: w.row.Status, awakeKnown: true, awake: w.awake()}
		w.row.SetInline(w.inline())
		if w.legacy {
			for _, name := range w.legacyReminders {
				t.b.DeleteReverseReminder(w.part, w.id, name)
			}
		}
		put := t.b.PutInstance
		if w.stored.indexed && w.stored.name == stored.name && w.stored.status == stored.status {
			put = t.b.PutInstanceRow
		}
		if err := put(w.part, w.row); err != nil {
			w.unload()
			return err
		}
		if !w.stored.awakeKnown || w.stored.awake != stored.awake {
			t.b.SetAwake(w.part, w.id, stored.awake)
		}
	}
	start := time.Now()
	if err := w.h.commitStep(w.part, t.b); err != nil {
		w.unload()
		return fmt.Errorf("commit instance %s: %w", w.id, err)
	}
	w.stored = stored
	if w.row != nil {
		w.legacy, w.legacyReminders = false, nil
	}
	w.h.metrics.commit.Observe(time.Since(start).Seconds())
	w.h.stats.Commits.Add(1)
	if t.started != "" {
		w.h.metrics.started.WithLabelValues(t.started).Inc()
	}
	if t.finished != "" {
		w.h.metrics.finished.WithLabelValues(w.row.Name, t.finished).Inc()
	}
	w.h.rem.Done(t.done...)
	w.h.rem.AddedAndRelease(t.hold, t.added...)
	t.rem, t.hold = nil, reminders.Hold{}
	for _, inv := range t.dispatch {
		if rec := w.activities[inv.TaskID]; rec != nil && rec.Attempt == inv.Attempt && inv.Gen == w.row.Generation {
			w.h.dispatch(inv)
		}
	}
	for _, c := range t.children {
		if w.children[c.msg.ParentTask] == c.id && c.msg.ParentGen == w.row.Generation {
			w.h.deliverAsync(c.id, c.msg)
		}
	}
	w.sendAll(t.sends)
	if t.parent {
		w.notifyParent()
	}
	if len(t.spans) > 0 && w.row != nil {
		w.emitSpans(t.spans)
	}
	w.dispatchEpisode()
	if w.row != nil {
		w.act.committed.Store(int32(w.row.Status) + 1)
	} else {
		w.act.committed.Store(0)
	}
	if w.row != nil && w.h.watched(w.id) {
		w.h.notify(w.id, w.row)
	}
	return nil
}

func (w *workflowActor) invocation(rec *storage.ActivityRecord) Invocation {
	inv := Invocation{InstanceID: w.id, Gen: w.row.Generation, TaskID: rec.TaskID, Name: rec.Name, Input: rec.Input, Attempt: rec.Attempt}
	if rec.TaskExecutionID != "" || w.row.TraceParent != "" || rec.App != "" || w.row.App != "" || w.spans != nil {
		inv.Remote = &RemoteCall{TaskExecutionID: rec.TaskExecutionID, TraceParent: w.row.TraceParent, TraceState: w.row.TraceState,
			App: cmp.Or(rec.App, w.row.App)}
		if w.spans != nil { // the attempt's code runs under the attempt's span
			inv.Remote.TraceParent, inv.Remote.TraceState = w.attemptTraceParent(rec.TaskID, rec.Attempt)
		}
	}
	return inv
}

func (w *workflowActor) childStart(task int64, c childCall) StartRequest {
	app := c.app
	if app == "" {
		app = w.row.App // a child runs in its parent's app unless routed elsewhere
	}
	start := StartRequest{Name: c.name, Input: c.input, ParentID: w.id, ParentTask: task, ParentGen: w.row.Generation,
		TraceParent: w.row.TraceParent, TraceState: w.row.TraceState, App: app}
	if w.spans != nil { // the child's spans hang under this generation's
		start.TraceParent, start.TraceState = w.childTraceParent()
	}
	return start
}

// Reminder names: "start", "timer:<gen>:<task>", "retry:<gen>:<task>".
const (
	timerKind = "timer:"
	retryKind = "retry:"
)

func timerName(gen uint32, task int64) string { return reminderName(timerKind, gen, task) }
func retryName(gen uint32, task int64) string { return reminderName(retryKind, gen, task) }

func reminderName(kind string, gen uint32, task int64) string {
	b := make([]byte, 0, len(kind)+24)
	b = append(b, kind...)
	b = strconv.AppendUint(b, uint64(gen), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, task, 10)
	return string(b)
}

func parseReminderName(name string) (kind string, gen uint32, task int64) {
	parts := strings.Split(name, ":")
	if len(parts) != 3 {
		return name, 0, 0
	}
	g, _ := strconv.ParseUint(parts[1], 10, 32)
	n, _ := strconv.ParseInt(parts[2], 10, 64)
	return parts[0], uint32(g), n
}

// quote encodes a reason as the JSON string payloads are stored as.
func quote(s string) []byte {
	if s == "" {
		return nil
	}
	b, _ := json.Marshal(s)
	return b
}

// put sets m[k] = v, making the map on first use: most instances never have
// children, retries or outbox entries, and an activation made six maps for them.
func put[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = make(map[K]V)
	}
	(*m)[k] = v
}
