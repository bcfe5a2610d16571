package actors

// Activity results are queued per instance in the host, and the instance's actor
// takes all that are waiting in one step: its mailbox cannot be peeked, so the
// queue lives here. Only the reporter that found the queue empty waits, for the
// drain message to be acknowledged; the others return at once, freeing their
// activity slot. A result taken but lost to a crash is not lost work: its attempt
// stays in the workflow's activity records and is re-dispatched after the restart.

type resultQueue struct {
	items     []ActivityResult
	scheduled bool // a drainResults message is on its way
}

// report queues an activity's result and makes sure the instance will drain it.
func (h *Host) report(res ActivityResult, instance string) {
	h.resMu.Lock()
	q := h.results[instance]
	if q == nil {
		q = &resultQueue{}
		h.results[instance] = q
	}
	q.items = append(q.items, res)
	first := !q.scheduled
	q.scheduled = true
	h.resMu.Unlock()
	if first {
		h.deliver(instance, drainResults{})
	}
}

// takeResults hands the actor every result waiting for it.
func (h *Host) takeResults(instance string) []ActivityResult {
	h.resMu.Lock()
	defer h.resMu.Unlock()
	q := h.results[instance]
	if q == nil {
		return nil
	}
	delete(h.results, instance)
	h.actMu.Lock()
	for _, r := range q.items {
		delete(h.inflight, inflightKey{instance, r.Gen, r.TaskID, r.Attempt})
	}
	h.actMu.Unlock()
	return q.items
}
