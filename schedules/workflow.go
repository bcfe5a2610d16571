package schedules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/weftrt/weft/workflow"
)

// The names under which package weft registers a schedule's code.
const (
	WorkflowName     = "weft.Schedule"
	StartRunActivity = "weft.StartScheduledRun"
	// CommandEvent carries a Command to a schedule.
	CommandEvent = "weft.schedule.command"
	// RunFinishedEvent is raised on a schedule by each of its runs when it
	// finishes (RunFinished); the runtime sends it, durably, for any instance
	// started with a finish notification.
	RunFinishedEvent = "weft.run-finished"
)

// keepActions is how many of its latest actions a schedule shows;
// keepCommands how many applied command ids it remembers for the callers
// waiting to see theirs applied.
const (
	keepActions  = 20
	keepCommands = 32
)

// maxTicksPerWake bounds the ticks a schedule goes through on one wake: an
// every-second schedule down for a day has 86,400 due, nearly all outside
// the catch-up window; past the bound it jumps to the window's start.
const maxTicksPerWake = 10_000

// State is everything a schedule knows, the input of each of its
// generations; its instance's custom status shows it (with Next).
type State struct {
	Spec      Spec      `json:"spec"`
	CreatedAt time.Time `json:"createdAt"`
	Paused    bool      `json:"paused,omitempty"`
	// Note says who paused or resumed it and why.
	Note string `json:"note,omitempty"`
	// LastTick: every tick up to it has been dealt with (run, skipped, missed).
	LastTick time.Time `json:"lastTick"`
	// Next is the time of the next run, jitter included (zero while paused
	// or when the timetable has no further tick).
	Next time.Time `json:"next,omitzero"`
	// Running are the runs started and not known to have finished.
	Running []string `json:"running,omitempty"`
	// Buffered is the run waiting for the running ones to finish (overlap
	// buffer-one).
	Buffered *Action `json:"buffered,omitempty"`
	Counts   Counts  `json:"counts"`
	// Recent are the latest actions, oldest first.
	Recent []Action `json:"recent,omitempty"`
	// Commands are the ids of the latest commands applied.
	Commands []string `json:"commands,omitempty"`
}

// Counts count what the schedule's ticks did since it was created.
type Counts struct {
	Started  int64 `json:"started"`
	Skipped  int64 `json:"skipped"`
	Missed   int64 `json:"missed"`
	Failed   int64 `json:"failed"`
	Buffered int64 `json:"buffered"`
}

// Action is what one tick (or trigger) did.
type Action struct {
	Tick    time.Time `json:"tick"`
	Run     string    `json:"run,omitempty"`
	Outcome Outcome   `json:"outcome"`
	// Reason says why a run was skipped or could not start.
	Reason string `json:"reason,omitempty"`
	Manual bool   `json:"manual,omitempty"`
	// Command is the id of the trigger that asked for a manual run.
	Command string `json:"command,omitempty"`
}

// Outcome is what became of a tick.
type Outcome string

const (
	Started  Outcome = "started"
	Skipped  Outcome = "skipped"
	Buffered Outcome = "buffered"
	Missed   Outcome = "missed"
	Failed   Outcome = "failed"
)

// Command is what an operator asks of a schedule.
type Command struct {
	// ID lets the sender see its command applied (State.Commands).
	ID   string `json:"id"`
	Kind string `json:"kind"` // "pause", "resume" or "trigger"
	Note string `json:"note,omitempty"`
}

// StartRun is the StartRunActivity's input: start Run, applying the overlap
// policy to the runs the schedule believes still run.
type StartRun struct {
	Schedule string   `json:"schedule"` // the schedule's instance id, told when the run finishes
	Run      string   `json:"run"`
	Workflow string   `json:"workflow"`
	Version  string   `json:"version,omitempty"`
	Input    []byte   `json:"input,omitempty"`
	Overlap  Overlap  `json:"overlap"`
	Running  []string `json:"running,omitempty"`
	Force    bool     `json:"force,omitempty"` // start whatever runs (a buffered run whose turn came)
}

// StartRunResult is what the activity did: started, skipped or buffered,
// and which runs still run (the new one included).
type StartRunResult struct {
	Outcome Outcome  `json:"outcome"`
	Reason  string   `json:"reason,omitempty"`
	Running []string `json:"running,omitempty"`
}

// RunFinished is the RunFinishedEvent's data.
type RunFinished struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// startRetry retries a start that could not reach the run's partition (a
// node down, a leader being elected) for about ten minutes before the tick
// counts as failed.
var startRetry = &workflow.RetryPolicy{MaxAttempts: 20, FirstRetryInterval: time.Second, BackoffCoefficient: 2, MaxRetryInterval: time.Minute}

// Workflow is a schedule: each generation waits for its next tick, a
// command or a run's end, deals with what came, and continues as new with
// the state it leaves, so its history stays a few events long.
func Workflow(ctx *workflow.Context, st State) (struct{}, error) {
	if st.CreatedAt.IsZero() { // the first generation: ticks count from now
		st.CreatedAt = ctx.Now()
		st.LastTick = ctx.Now()
	}
	st.publish()
	if err := ctx.SetCustomStatus(st); err != nil {
		return struct{}{}, err
	}
	command := ctx.WaitForExternalEvent(CommandEvent, 0)
	finished := ctx.WaitForExternalEvent(RunFinishedEvent, 0)
	waits := []*workflow.Task{command, finished}
	var tick *workflow.Task
	if !st.Next.IsZero() {
		tick = ctx.CreateTimerUntil(st.Next)
		waits = append(waits, tick)
	}
	if _, err := workflow.WhenAny(waits...); err != nil {
		return struct{}{}, err
	}
	if finished.Done() {
		var f RunFinished
		if err := finished.Await(&f); err != nil {
			return struct{}{}, fmt.Errorf("schedule %s: run finished event: %w", st.Spec.ID, err)
		}
		st.Running = slices.DeleteFunc(st.Running, func(id string) bool { return id == f.ID })
		if len(st.Running) == 0 {
			st.startBuffered(ctx, true)
		}
	}
	if command.Done() {
		var c Command
		if err := command.Await(&c); err != nil {
			return struct{}{}, fmt.Errorf("schedule %s: command: %w", st.Spec.ID, err)
		}
		st.apply(ctx, c)
	}
	if tick != nil && tick.Done() {
		st.ticksDue(ctx)
	}
	st.publish()
	if err := ctx.SetCustomStatus(st); err != nil {
		return struct{}{}, err
	}
	ctx.ContinueAsNew(st, true)
	return struct{}{}, nil
}

// publish sets Next from the timetable and the pause.
func (st *State) publish() {
	st.Next = time.Time{}
	if st.Paused {
		return
	}
	if next, ok := st.Spec.Next(st.LastTick); ok {
		st.Next = next.Add(st.Spec.Delay(next))
	}
}

// apply carries out an operator's command.
func (st *State) apply(ctx *workflow.Context, c Command) {
	switch c.Kind {
	case "pause":
		st.Paused, st.Note = true, c.Note
	case "resume":
		if st.Paused {
			// Ticks that fell due while paused are not run: a resumed
			// schedule goes on from now.
			st.LastTick = ctx.Now()
		}
		st.Paused, st.Note = false, c.Note
	case "trigger":
		st.startBuffered(ctx, false)
		st.start(ctx, Action{Tick: ctx.Now(), Run: RunID(st.Spec.ID, ctx.Now(), cmp.Or(c.ID, "manual")), Manual: true, Command: c.ID}, false)
	}
	if c.ID != "" {
		st.Commands = append(st.Commands, c.ID)
		if len(st.Commands) > keepCommands {
			st.Commands = slices.Delete(st.Commands, 0, len(st.Commands)-keepCommands)
		}
	}
}

// ticksDue deals with every tick due by now: the ones within the catch-up
// window start runs (subject to the overlap policy), older ones are missed.
func (st *State) ticksDue(ctx *workflow.Context) {
	now := ctx.Now()
	horizon := now.Add(-st.Spec.CatchupWindow)
	for n := 0; ; n++ {
		next, ok := st.Spec.Next(st.LastTick)
		if !ok || next.After(now) {
			return
		}
		if n == maxTicksPerWake && next.Before(horizon) {
			st.Counts.Missed++ // at least one more; the rest are not counted
			st.record(Action{Tick: horizon, Outcome: Missed, Reason: fmt.Sprintf("more than %d ticks were due; those before %s were not counted", maxTicksPerWake, horizon.UTC().Format(time.RFC3339))})
			st.LastTick = horizon
			continue
		}
		st.LastTick = next
		if next.Before(horizon) {
			st.Counts.Missed++
			st.record(Action{Tick: next, Outcome: Missed, Reason: fmt.Sprintf("due %s ago, beyond the catch-up window of %s", now.Sub(next).Round(time.Second), st.Spec.CatchupWindow)})
			continue
		}
		st.startBuffered(ctx, false)
		st.start(ctx, Action{Tick: next, Run: RunID(st.Spec.ID, next, "")}, false)
	}
}

// start starts a tick's run through the activity, which applies the
// overlap policy (force: start it whatever runs).
func (st *State) start(ctx *workflow.Context, a Action, force bool) {
	res, ok := st.callStart(ctx, a, force)
	if !ok {
		return
	}
	a.Outcome, a.Reason = res.Outcome, res.Reason
	switch res.Outcome {
	case Started:
		st.Counts.Started++
	case Buffered:
		if st.Buffered != nil { // buffer one: the first buffered tick keeps its place
			a.Outcome, a.Reason = Skipped, "the run of "+st.Buffered.Tick.UTC().Format(time.RFC3339)+" is already waiting for the running ones"
			st.Counts.Skipped++
			break
		}
		st.Counts.Buffered++
		b := a
		st.Buffered = &b
	default:
		st.Counts.Skipped++
	}
	st.record(a)
}

// startBuffered gives the buffered run its turn if nothing runs any more
// (force: the schedule knows so, its last run told it; otherwise the
// activity checks).
func (st *State) startBuffered(ctx *workflow.Context, force bool) {
	if st.Buffered == nil {
		return
	}
	b := *st.Buffered
	res, ok := st.callStart(ctx, b, force)
	if ok && res.Outcome == Buffered {
		return // still waiting
	}
	st.Buffered = nil
	if !ok {
		return
	}
	b.Outcome, b.Reason = res.Outcome, res.Reason
	if res.Outcome == Started {
		st.Counts.Started++
	} else {
		st.Counts.Skipped++
	}
	st.record(b)
}

// callStart runs the StartRunActivity for a, recording a failure.
func (st *State) callStart(ctx *workflow.Context, a Action, force bool) (StartRunResult, bool) {
	var res StartRunResult
	err := ctx.CallActivity(StartRunActivity, StartRun{Schedule: ctx.InstanceID(), Run: a.Run, Workflow: st.Spec.Workflow,
		Version: st.Spec.Version, Input: st.Spec.Input, Overlap: st.Spec.Overlap, Running: st.Running, Force: force},
		workflow.WithRetryPolicy(startRetry)).Await(&res)
	if err != nil {
		a.Outcome, a.Reason = Failed, errorText(err)
		st.Counts.Failed++
		st.record(a)
		return res, false
	}
	st.Running = res.Running
	return res, true
}

func (st *State) record(a Action) {
	st.Recent = append(st.Recent, a)
	if len(st.Recent) > keepActions {
		st.Recent = slices.Delete(st.Recent, 0, len(st.Recent)-keepActions)
	}
}

func errorText(err error) string {
	var tf *workflow.TaskFailedError
	if errors.As(err, &tf) && tf.Failure.Message != "" {
		return tf.Failure.Message
	}
	return err.Error()
}
