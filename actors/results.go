package actors

import (
	"context"
	"time"
)

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
// In a cluster, a result for an instance another node serves goes there.
func (h *Host) report(res ActivityResult, instance string) {
	if h.router != nil {
		forwarded, err := h.router.Forward(context.Background(), instance, res)
		if !forwarded {
			h.queueResult(res, instance)
			return
		}
		if err != nil && !h.closing.Load() {
			h.retryReport(res, instance, err)
		}
		return
	}
	h.queueResult(res, instance)
}

// retryReport keeps offering a result whose instance's node could not take it,
// for a while: if that node stays away, it re-sends the attempt itself when it
// comes back (the attempt is still in its records), so giving up loses nothing.
func (h *Host) retryReport(res ActivityResult, instance string, first error) {
	h.background.Add(1)
	go func() {
		defer h.background.Done()
		backoff := 100 * time.Millisecond
		deadline := time.Now().Add(time.Minute)
		err := first
		for err != nil && !h.closing.Load() && time.Now().Before(deadline) {
			time.Sleep(backoff)
			backoff = min(2*backoff, 5*time.Second)
			var forwarded bool
			forwarded, err = h.router.Forward(context.Background(), instance, res)
			if !forwarded {
				h.queueResult(res, instance)
				return
			}
		}
		if err != nil {
			h.log.Warn("activity result not delivered; its instance's node re-sends the attempt when it serves it again",
				"instance", instance, "task", res.TaskID, "err", err)
		}
	}()
}

func (h *Host) queueResult(res ActivityResult, instance string) {
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

// TakePartitionResults removes the results queued here for instances of
// partition part: after the partition moved, they belong to its new node.
func (h *Host) TakePartitionResults(part uint16) map[string][]ActivityResult {
	h.resMu.Lock()
	defer h.resMu.Unlock()
	out := map[string][]ActivityResult{}
	for id, q := range h.results {
		if h.Partition(id) == part {
			out[id] = q.items
			delete(h.results, id)
		}
	}
	return out
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
