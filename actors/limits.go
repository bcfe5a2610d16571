package actors

import (
	"encoding/json"

	"github.com/weftrt/weft/limits"
	"github.com/weftrt/weft/storage"
)

// Activity limits, the instance's side (package limits has the limiter's):
// an attempt of a limited activity runs only with a permit. The request for
// it goes through the outbox with the step that makes the attempt due (its
// scheduling, its retry reminder firing); the permit comes back as an event,
// and the step that takes it records it with the attempt (ActivityRecord.
// Permit) and dispatches it. The permit goes back with the attempt's
// outcome, or when the call is dropped.

// limited reports whether attempts of activity name need a permit.
func (h *Host) limited(name string) bool {
	return len(h.opts.ActivityLimits) > 0 && h.opts.ActivityLimits[name] > 0
}

// workflowLimited reports whether instances of workflow name need a permit
// to start.
func (h *Host) workflowLimited(name string) bool {
	return len(h.opts.WorkflowLimits) > 0 && h.opts.WorkflowLimits[name] > 0
}

// mayRun reports whether rec's attempt may be dispatched now; if it needs a
// permit it has not got, the step asks for one.
func (w *workflowActor) mayRun(t *txn, rec *storage.ActivityRecord) bool {
	if !w.h.limited(rec.Name) || rec.Permit {
		return true
	}
	w.askLimiter(t, rec, false)
	return false
}

// releasePermit gives back rec's permit (or withdraws its request) if its
// activity is limited.
func (w *workflowActor) releasePermit(t *txn, rec *storage.ActivityRecord) {
	if rec != nil && w.h.limited(rec.Name) {
		w.askLimiter(t, rec, true)
	}
}

// askLimiter adds a request to the step's; they go out with its commit,
// one outbox record per limiter (flushLimiterRequests).
func (w *workflowActor) askLimiter(t *txn, rec *storage.ActivityRecord, release bool) {
	t.limiterRequests = append(t.limiterRequests, limits.Request{
		Holder: limits.Holder{Instance: w.id, Gen: w.row.Generation, Task: rec.TaskID, Attempt: rec.Attempt},
		Kind:   limits.KindActivity, Name: rec.Name, Release: release, Limit: w.h.opts.ActivityLimits[rec.Name]})
}

// A limited workflow's instance starts only with a permit: one that would
// start (at once, its scheduled start come due, resumed) stays PENDING and
// asks; the permit starts it; the permit goes back when it finishes.

// askToStart keeps the instance PENDING and asks for a permit to start.
func (w *workflowActor) askToStart(t *txn) {
	if w.row.Status != storage.Suspended {
		w.row.Status = storage.Pending
	}
	w.askWorkflowLimiter(t, false)
}

func (w *workflowActor) askWorkflowLimiter(t *txn, release bool) {
	t.limiterRequests = append(t.limiterRequests, limits.Request{
		Holder: limits.Holder{Instance: w.id, Incarnation: w.row.CreatedAt.UnixNano(), Task: limits.WorkflowTask},
		Kind:   limits.KindWorkflow, Name: w.row.Name, Release: release, Limit: w.h.opts.WorkflowLimits[w.row.Name]})
}

// startPermitted starts an instance its permit came for, if it waits for
// one; it reports false when the permit is not needed (to give back).
func (w *workflowActor) startPermitted(t *txn) (bool, error) {
	switch {
	case w.row.Status == storage.Pending && !w.row.ScheduledStartAt.After(w.now):
		if _, scheduled := w.reminders.get("start"); scheduled {
			return false, nil
		}
		return true, w.startNow(t)
	case w.row.Status.Terminal(), w.notStarted():
		// Finished, or suspended before it started: its resume asks again.
		return false, nil
	}
	return true, nil // started already: a permit granted twice
}

// flushLimiterRequests puts the step's requests in its outbox: all those
// for one limiter in one record, in the order they were made (a limiter
// takes a record's requests in one step).
func (w *workflowActor) flushLimiterRequests(t *txn) {
	reqs := t.limiterRequests
	t.limiterRequests = nil
	byLimiter := map[string][]limits.Request{}
	var order []string
	for _, r := range reqs {
		id := limits.InstanceID(r.Kind, r.Name)
		if _, ok := byLimiter[id]; !ok {
			order = append(order, id)
		}
		byLimiter[id] = append(byLimiter[id], r)
	}
	for _, id := range order {
		data, _ := json.Marshal(byLimiter[id]) // plain values: cannot fail
		// An error is kept in the batch and fails the step's commit.
		_ = w.queueOutbox(t, &storage.OutboxRecord{Target: id, Kind: storage.OutboxLimiter, Name: limits.RequestEvent, Data: data})
	}
}

// permit takes a limiter's permits: each attempt named runs now if it is
// still due, and its permit goes back at once if not.
func (w *workflowActor) permit(m RaiseEventRequest) error {
	var g limits.Grant
	if err := json.Unmarshal(m.Data, &g); err != nil {
		w.h.log.Warn("a malformed permit dropped", "instance", w.id, "err", err)
		return nil
	}
	if w.row == nil { // purged: nothing to keep the permits for, nor an outbox to return them through
		var back []limits.Request
		for _, h := range g.Holders {
			back = append(back, limits.Request{Holder: h, Release: true})
		}
		data, _ := json.Marshal(back)
		w.h.deliverAsync(g.Limiter, RaiseEventRequest{Name: limits.RequestEvent, Data: data})
		return nil
	}
	t := w.newTxn()
	if m.From != nil {
		dup, err := w.received(t, m.From)
		if err != nil || dup {
			t.close()
			return err
		}
	}
	var back []limits.Request
	var unlimited []Invocation
	for _, h := range g.Holders {
		if h.Task == limits.WorkflowTask {
			needed := false
			var err error
			if h.Incarnation == w.row.CreatedAt.UnixNano() {
				needed, err = w.startPermitted(t)
			}
			if err != nil {
				t.close()
				return err
			}
			if !needed {
				back = append(back, limits.Request{Holder: h, Release: true})
			}
			continue
		}
		rec := w.activities[h.Task]
		if w.row.Status.Terminal() || rec == nil || h.Gen != w.row.Generation || rec.Attempt != h.Attempt || rec.Failed != nil {
			back = append(back, limits.Request{Holder: h, Release: true})
			continue
		}
		if !w.h.limited(rec.Name) {
			// Not limited here (the limit was removed while it waited): it
			// needs no permit, and runs unless it is running already.
			back = append(back, limits.Request{Holder: h, Release: true})
			unlimited = append(unlimited, w.invocation(rec))
			continue
		}
		if rec.Permit {
			continue // granted twice (asked again after a restart): it runs once
		}
		rec.Permit = true
		if err := t.b.PutActivity(w.part, w.id, rec); err != nil {
			t.close()
			return err
		}
		put(&w.retried, rec.TaskID, true)
		t.dispatch = append(t.dispatch, w.invocation(rec))
	}
	if len(back) > 0 {
		data, _ := json.Marshal(back)
		_ = w.queueOutbox(t, &storage.OutboxRecord{Target: g.Limiter, Kind: storage.OutboxLimiter, Name: limits.RequestEvent, Data: data})
	}
	if err := w.commit(t); err != nil {
		return err
	}
	for _, inv := range unlimited {
		w.h.dispatchUnlessInFlight(inv)
	}
	return nil
}
