package actors

import (
	"time"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// An instance STALLS when its history needs code the process running it lacks:
// a version of its workflow that is not registered here (a node not yet
// upgraded in a rolling deploy), the workflow itself, or a patch its code no
// longer checks where the replay diverged. It is not failed: other code can
// continue it. It keeps its inputs (events, results, fired timers) held in its
// inbox, replays after StallRetryDelay × n (up to a minute apart), and goes on
// by itself, RUNNING again, on the first replay that goes through.

// maxStallWaits caps the count that spaces the replays of a stalled instance.
const maxStallWaits = 12

// stall records that the instance cannot continue on this process's code and
// sets the reminder of its next replay; the executor is dropped.
func (w *workflowActor) stall(t *txn, s *workflow.Stall) error {
	if w.row.Stalls < maxStallWaits {
		w.row.Stalls++
	}
	delay := min(w.h.opts.StallRetryDelay*time.Duration(w.row.Stalls), time.Minute)
	reason := string(s.Reason)
	if w.row.StallReason != reason || w.row.StallDescription != s.Description {
		// Logged and marked in history once per stall, not on every replay.
		w.h.log.Warn("workflow instance stalled: the code registered here cannot continue it; its inputs are held until code that can is present",
			"instance", w.id, "workflow", w.row.Name, "version", w.row.Version, "reason", reason, "description", s.Description, "retry_in", delay)
		ev := workflow.Event{Kind: workflow.ExecutionStalled, Name: reason, Data: quote(s.Description), Time: w.now}
		if err := w.appendHistory(t, ev); err != nil {
			return err
		}
		w.h.metrics.stalled.WithLabelValues(w.row.Name, reason).Inc()
	}
	w.row.StallReason, w.row.StallDescription = reason, s.Description
	if w.row.Status == storage.Running || w.row.Remote && w.row.Status == storage.Pending {
		w.row.Status = storage.Stalled
	}
	if w.row.Remote {
		// The episode is offered to the workers again when the reminder fires
		// (a worker with the version may have connected by then).
		w.putReminder(t, "unstall", w.now.Add(delay))
		return nil
	}
	w.replayLater(t, delay)
	return nil
}

// unstall clears a stall once a replay went through; it reports whether there
// was one (the row must then be saved).
func (w *workflowActor) unstall() bool {
	if w.row.StallReason == "" {
		return false
	}
	w.h.log.Info("stalled workflow instance continues: the code registered here can run it",
		"instance", w.id, "workflow", w.row.Name, "version", w.row.Version, "was", w.row.StallReason)
	w.row.StallReason, w.row.StallDescription, w.row.Stalls = "", "", 0
	if w.row.Status == storage.Stalled {
		w.row.Status = storage.Running
	}
	return true
}

// waitAfterReplay handles a replay that cannot go on now: it stalled, or its
// step was slow. It reports whether the instance now waits for its "unstall"
// reminder; a deadlock (slow too often) does not wait and is recorded as the
// failure.
func (w *workflowActor) waitAfterReplay(o *workflow.Outcome) (bool, error) {
	if o.Stall == nil && !o.Deadlocked {
		return false, nil
	}
	t := w.newTxn()
	if o.Stall != nil {
		if err := w.stall(t, o.Stall); err != nil {
			t.close()
			return true, err
		}
		return true, w.commit(t)
	}
	if !w.slowStep(t, o) {
		t.close()
		return false, nil
	}
	return true, w.commit(t)
}

// running reports whether the instance has started and neither finished nor
// been suspended: it runs, or it is stalled waiting for code to run it.
func (w *workflowActor) running() bool {
	return w.row.Status == storage.Running || w.row.Status == storage.Stalled
}

// runningStatus is the status of a started instance that is not suspended.
func (w *workflowActor) runningStatus() storage.Status {
	if w.row.StallReason != "" {
		return storage.Stalled
	}
	return storage.Running
}

// defaultVersion is the version new instances of workflow name take here ("":
// none, or a workflow that runs on remote workers).
func (w *workflowActor) defaultVersion(name string) string {
	v, _ := w.h.reg.WorkflowVersion(name)
	return v
}
