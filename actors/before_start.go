package actors

import (
	"slices"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// An instance can be suspended before it started: one scheduled to start
// later, or one whose code runs on a remote worker and whose first episode is
// not committed yet (Dapr's SDKs suspend an instance right after scheduling
// it). It shows SUSPENDED at once and does not start while suspended: a
// scheduled start that comes due meanwhile waits for the resume, a first
// episode is not handed to the workers (one already with a worker is
// recorded when it is answered; from then on the instance has started). What
// it is sent meanwhile is held, as for any instance not started yet. Resumed,
// it starts at once if its start is due (RUNNING), or waits for it (PENDING).
//
// Such an instance has no history yet (the first step writes it), which is how
// it is told from one suspended while it ran.

// notStarted reports whether a suspended instance was suspended before it
// started.
func (w *workflowActor) notStarted() bool {
	return w.row.Status == storage.Suspended && w.row.NextSeq == 0
}

// suspendBeforeStart suspends a PENDING instance.
func (w *workflowActor) suspendBeforeStart() error {
	t := w.newTxn()
	w.row.Status = storage.Suspended
	return w.commit(t)
}

// resumeBeforeStart resumes an instance suspended before it started.
func (w *workflowActor) resumeBeforeStart() error {
	t := w.newTxn()
	if at := w.row.ScheduledStartAt; at.After(w.now) {
		w.row.Status = storage.Pending
		w.putReminder(t, "start", at) // its start came due while suspended and was set aside
		return w.commit(t)
	}
	if r, ok := w.reminders.get("start"); ok {
		w.deleteReminder(t, r)
	}
	if w.h.workflowLimited(w.row.Name) { // it gave its permit back when it was suspended
		w.row.Status = storage.Pending
		w.askToStart(t)
		return w.commit(t)
	}
	if err := w.startNow(t); err != nil {
		t.close()
		return err
	}
	return w.commit(t)
}

// startNow starts a PENDING (or suspended-before-start) instance whose start is
// due, applying what it was sent meanwhile: a remote one gets its first
// episode, a local one runs its code.
func (w *workflowActor) startNow(t *txn) error {
	if w.row.Remote {
		w.row.Status = storage.Running
		if slices.ContainsFunc(w.held, func(h heldEvent) bool { return h.ev.Kind == workflow.WorkflowStarted }) {
			return nil // started without a schedule: its start is held (and counted) already
		}
		t.started = w.row.Name
		return w.rehold(t, []workflow.Event{w.startedEvent(w.row.Input)})
	}
	t.started = w.row.Name
	held, err := w.inbox()
	if err != nil {
		return err
	}
	w.clearInbox(t)
	w.row.Status = storage.Running
	w.exec = w.newExecutor()
	return w.advance(t, append([]workflow.Event{w.startedEvent(w.row.Input)}, held...))
}
