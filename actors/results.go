package actors

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Activity results are queued per instance in the host, and the instance's actor
// takes all that are waiting in one step: its mailbox cannot be peeked, so the
// queue lives here. The reporter that found the queue empty posts a drain message
// and, like the others, returns at once, freeing its activity slot: waiting for the
// drain would hold the slot through the workflow's commit. A drain message that
// an activation stopped without handling is posted again when it stops (Host.stopped),
// so a queued result always reaches an actor. A result taken but lost to a crash
// is not lost work: its attempt stays in the workflow's activity records and is
// re-dispatched after the restart.

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
		// The result left: this node's mark of the attempt (it ran here for an
		// instance served elsewhere) must not outlive it. Left behind, it would
		// keep this node, should it serve the instance later (a partition moved
		// or a new leader), from sending the attempt again when the result was
		// lost on the way.
		h.unmarkInFlight(Invocation{InstanceID: instance, Gen: res.Gen, TaskID: res.TaskID, Attempt: res.Attempt})
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
	sh := h.shard(instance)
	sh.mu.Lock()
	q := sh.results[instance]
	if q == nil {
		q = &resultQueue{}
		sh.results[instance] = q
	}
	q.items = append(q.items, res)
	first := !q.scheduled
	q.scheduled = true
	sh.mu.Unlock()
	if first {
		h.post(instance, drainResults{})
	}
}

// rerouteResults takes the results queued for an instance whose partition is
// fenced here and reports them again: the router takes them to the node that
// serves the partition now, or back here once it is served here again.
func (h *Host) rerouteResults(instance string) {
	sh := h.shard(instance)
	sh.mu.Lock()
	q := sh.results[instance]
	delete(sh.results, instance)
	sh.mu.Unlock()
	if q == nil || h.closing.Load() {
		return
	}
	h.background.Add(1)
	go func() {
		defer h.background.Done()
		for _, r := range q.items {
			h.report(r, instance)
		}
	}()
}

// queuedIn lists the instances of partition part with queued results.
func (h *Host) queuedIn(part uint16) []string {
	var ids []string
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for id := range sh.results {
			if h.Partition(id) == part {
				ids = append(ids, id)
			}
		}
		sh.mu.Unlock()
	}
	return ids
}

// hasResults reports whether results wait for the instance.
func (h *Host) hasResults(instance string) bool {
	sh := h.shard(instance)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.results[instance] != nil
}

// TakePartitionResults removes the results queued here for instances of
// partition part: after the partition moved, they belong to its new node.
func (h *Host) TakePartitionResults(part uint16) map[string][]ActivityResult {
	out := map[string][]ActivityResult{}
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for id, q := range sh.results {
			if h.Partition(id) == part {
				out[id] = q.items
				delete(sh.results, id)
			}
		}
		sh.mu.Unlock()
	}
	return out
}

// takeResults hands the actor every result waiting for it.
func (h *Host) takeResults(instance string) []ActivityResult {
	sh := h.shard(instance)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	q := sh.results[instance]
	if q == nil {
		return nil
	}
	delete(sh.results, instance)
	for _, r := range q.items {
		delete(sh.inflight, inflightKey{instance, r.Gen, r.TaskID, r.Attempt})
	}
	return q.items
}

// workShards splits the per-instance bookkeeping of activity work (queued
// results, in-flight marks) so that reporters, dispatchers and actors of
// different instances do not queue on one lock: with one lock, waiting for it
// was the largest delay in the chain benchmark's mutex profile.
const workShards = 64

type workShard struct {
	mu       sync.Mutex
	results  map[string]*resultQueue
	inflight map[inflightKey]struct{} // queued or running attempts, so a re-activation does not send them twice
}

func (h *Host) shard(instance string) *workShard {
	return &h.shards[maphash.String(h.shardSeed, instance)%workShards]
}

func (h *Host) markInFlight(inv Invocation) {
	sh := h.shard(inv.InstanceID)
	sh.mu.Lock()
	sh.inflight[keyOf(inv)] = struct{}{}
	sh.mu.Unlock()
}

func (h *Host) unmarkInFlight(inv Invocation) {
	sh := h.shard(inv.InstanceID)
	sh.mu.Lock()
	delete(sh.inflight, keyOf(inv))
	sh.mu.Unlock()
}

func (h *Host) isInFlight(inv Invocation) bool {
	sh := h.shard(inv.InstanceID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, ok := sh.inflight[keyOf(inv)]
	return ok
}
