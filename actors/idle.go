package actors

import "time"

// Instances idle for Options.IdleTimeout leave memory. This used to be
// protoactor's receive timeout: a timer per actor whose goroutine reads the
// actor's timer field while the actor's own goroutine clears it when it stops,
// without a lock (the race detector reports it; when the two meet, the timer's
// goroutine can call Stop on a nil timer and panic where nothing recovers,
// taking the node down). Instead the host notes when each activation was last
// used (activate keeps the LRU list in that order) and one goroutine
// passivates, from the least recently used end, those idle for longer than
// the timeout: no timer per actor, nothing shared without the host's lock.

// idleSweepEvery is how often the idle sweep runs: a quarter of the timeout,
// within [1 ms, 1 s], so an instance leaves memory at most that much late.
func idleSweepEvery(timeout time.Duration) time.Duration {
	return min(max(timeout/4, time.Millisecond), time.Second)
}

// sweepIdle passivates idle instances until the host closes.
func (h *Host) sweepIdle() {
	defer close(h.idleSwept)
	t := time.NewTicker(idleSweepEvery(h.opts.IdleTimeout))
	defer t.Stop()
	for {
		select {
		case <-h.idleStop:
			return
		case now := <-t.C:
			for _, a := range h.takeIdle(now.Add(-h.opts.IdleTimeout)) {
				h.system.Root.Poison(a.PID())
			}
		}
	}
}

// takeIdle marks as stopping, and returns, the activations not used since
// cutoff.
func (h *Host) takeIdle(cutoff time.Time) []*activation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var idle []*activation
	for a := h.lru.root.prev; a != &h.lru.root && a.used.Before(cutoff); a = h.lru.root.prev {
		a.stopping = true
		h.lru.remove(a)
		idle = append(idle, a)
	}
	return idle
}
