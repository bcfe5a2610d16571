package actors

import (
	"slices"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// A failed activity attempt is retried or not as its retry policy says, and
// the policy lives in the workflow's code (workflow.RetryPolicy.Handle is a
// function). While that code is not loaded — a step that did not yield in
// time dropped the executor until a fresh replay, or the workflow is not
// registered in this process yet — a failure cannot be decided on. It is not
// taken as final either: it waits in the activity's record (Failed), the
// attempt is not sent again meanwhile, and the decision is made when a replay
// brings the code back, exactly as it would have been made at once.

// deferFailure keeps the failure of rec's attempt for decideFailures.
func (w *workflowActor) deferFailure(t *txn, rec *storage.ActivityRecord, f *workflow.Failure) {
	rec.Failed = &storage.Failure{Type: f.Type, Message: f.Message, Stack: f.Stack, NonRetriable: f.NonRetriable}
	if err := t.b.PutActivity(w.part, w.id, rec); err != nil {
		panic(err) // our own record: a failure is a bug
	}
	put(&w.retried, rec.TaskID, true)
	w.h.log.Info("activity attempt failed while the workflow's code is not loaded; retrying or not is decided when it is",
		"instance", w.id, "task", rec.TaskID, "activity", rec.Name, "attempt", rec.Attempt, "failure", f.String())
}

// decideFailures makes, in one step, the retry decisions that waited for the
// workflow's code; the executor has just replayed the history.
func (w *workflowActor) decideFailures() error {
	var waiting []*storage.ActivityRecord
	for _, rec := range w.activities {
		if rec.Failed != nil {
			waiting = append(waiting, rec)
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	slices.SortFunc(waiting, func(a, b *storage.ActivityRecord) int { return int(a.TaskID - b.TaskID) })
	t := w.newTxn()
	var inputs []workflow.Event
	for _, rec := range waiting {
		s := rec.Failed
		rec.Failed = nil
		f := &workflow.Failure{Type: s.Type, Message: s.Message, Stack: s.Stack, NonRetriable: s.NonRetriable}
		if ev, final := w.failedAttempt(t, rec, f, w.exec.RetryPolicy(rec.TaskID)); final {
			inputs = append(inputs, ev)
		}
	}
	if len(inputs) > 0 {
		if err := w.inputs(t, inputs); err != nil {
			t.close()
			return err
		}
	}
	return w.commit(t)
}
