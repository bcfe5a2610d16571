package workflow

import (
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A call's failed attempts that its retry policy runs again are marked in
// history (ActivityRetrying): the first RetryMarkersInFull of them, then every
// RetryMarkerEvery-th, so a call retried for days (MaxAttempts in the
// thousands) does not grow its instance's history, and every load's replay,
// without bound.
const (
	RetryMarkersInFull = 10
	RetryMarkerEvery   = 100
)

// WaitKind says what an unfinished instance waits on.
type WaitKind string

const (
	WaitActivity WaitKind = "activity" // a call's attempt running, or its next attempt due
	WaitTimer    WaitKind = "timer"    // a durable timer
	WaitEvent    WaitKind = "event"    // an external event
	WaitChild    WaitKind = "child"    // a child workflow
)

// Wait is one thing an unfinished instance waits on: a call scheduled without
// an outcome yet, a timer not fired or canceled, an external event. History
// records a wait for an event only when the workflow gave it a timeout (the
// timeout's timer); EventWaits finds the others by replaying it.
type Wait struct {
	Kind      WaitKind   `json:"kind"`
	TaskID    int64      `json:"taskId"`              // -1 for a wait for an event without a timeout: it has no task in history
	Name      string     `json:"name,omitempty"`      // the activity, child workflow or event
	Child     string     `json:"instance,omitempty"`  // a child's instance id
	Since     time.Time  `json:"since"`               // when the call was scheduled or the timer created
	FireAt    *time.Time `json:"fireAt,omitempty"`    // a timer's due time
	TimeoutAt *time.Time `json:"timeoutAt,omitempty"` // when a wait for an event times out
	// Attempt is the attempt an activity call is on, from 1; AttemptAtLeast
	// says it may be further on (from the RetryMarkersInFull-th failed
	// attempt, not every failed attempt is marked).
	Attempt        int  `json:"attempt,omitempty"`
	AttemptAtLeast bool `json:"attemptAtLeast,omitempty"`
	// LastFailure is why the last marked attempt failed; NextAttemptAt is
	// when the attempt after it starts (a time past means it has started).
	LastFailure   *Failure   `json:"lastFailure,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
}

// eventWaitPrefix names the timer that times out a wait for an external
// event: TimerCreated's Name is eventWaitPrefix + the event's name.
const eventWaitPrefix = "wait:"

// OutstandingWaits returns what an instance waits on, given its history (one
// generation, oldest first), in the order the waits began: nothing for a
// finished generation.
func OutstandingWaits(history []Event) []Wait {
	var waits []Wait
	at := map[int64]int{} // open waits: task id → index in waits (timers and calls share the numbering)
	closed := map[int]bool{}
	open := func(w Wait) {
		at[w.TaskID] = len(waits)
		waits = append(waits, w)
	}
	for _, ev := range history {
		switch ev.Kind {
		case ActivityScheduled:
			open(Wait{Kind: WaitActivity, TaskID: ev.TaskID, Name: ev.Name, Since: ev.Time, Attempt: 1})
		case ChildScheduled:
			open(Wait{Kind: WaitChild, TaskID: ev.TaskID, Name: ev.Name, Child: ev.Instance, Since: ev.Time})
		case TimerCreated:
			fire := ev.FireAt
			if event, ok := strings.CutPrefix(ev.Name, eventWaitPrefix); ok && event != "" {
				open(Wait{Kind: WaitEvent, TaskID: ev.TaskID, Name: event, Since: ev.Time, TimeoutAt: &fire})
			} else {
				open(Wait{Kind: WaitTimer, TaskID: ev.TaskID, Since: ev.Time, FireAt: &fire})
			}
		case ActivityRetrying:
			i, ok := at[ev.TaskID]
			if !ok || waits[i].Kind != WaitActivity {
				continue
			}
			failed, err := strconv.Atoi(string(ev.Data))
			if err != nil || failed < 1 {
				continue // a marker without its number: the attempt is unknown, the rest still holds
			}
			next := ev.FireAt
			w := &waits[i]
			w.Attempt, w.AttemptAtLeast = failed+1, failed >= RetryMarkersInFull
			w.LastFailure, w.NextAttemptAt = ev.Failure, &next
		case ActivityCompleted, ActivityFailed, ChildCompleted, ChildFailed, TimerFired, TimerCanceled:
			if i, ok := at[ev.TaskID]; ok {
				closed[i] = true
				delete(at, ev.TaskID)
			}
		default:
			if ev.Kind.IsTerminal() {
				return nil
			}
		}
	}
	var still []Wait
	for i, w := range waits {
		if !closed[i] {
			still = append(still, w)
		}
	}
	return still
}

// EventWaits returns the waits for external events without a timeout that
// the instance's code is blocked on, oldest first, found by replaying its
// history (one generation, oldest first) against the code registered in reg:
// such a wait changes nothing in history, and the code is the only record of
// it. A wait with a timeout is left out (OutstandingWaits lists it from its
// timer). Nil when history does not start the workflow, its code is not
// registered in reg (a remote worker's workflow), or the replay does not
// reach a point where the code waits (it finished, stalled or diverged).
func EventWaits(reg *Registry, instanceID string, history []Event) []Wait {
	if !slices.ContainsFunc(history, func(ev Event) bool { return ev.Kind == WorkflowStarted }) ||
		slices.ContainsFunc(history, func(ev Event) bool { return ev.Kind == EpisodeStarted || ev.Kind.IsTerminal() }) {
		return nil // not started, its code runs on a remote worker, or it finished: nothing to replay
	}
	exec := NewExecutor(reg, instanceID, ExecutorOptions{Logger: slog.New(slog.DiscardHandler)})
	defer exec.Close()
	o := exec.Execute(history, nil)
	if o.Stall != nil || o.Divergence != nil || o.Deadlocked || exec.Finished() {
		return nil
	}
	var waits []Wait
	for _, q := range exec.events {
		for _, t := range q.waiters {
			if t.timeout == nil {
				waits = append(waits, Wait{Kind: WaitEvent, TaskID: -1, Name: t.name, Since: t.since})
			}
		}
	}
	slices.SortStableFunc(waits, func(a, b Wait) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return waits
}
