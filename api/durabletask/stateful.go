package durabletask

// Stateful history (Dapr 1.17's WORKER_CAPABILITY_STATEFUL_HISTORY): a worker
// that announces it keeps, per instance, the committed history (pastEvents)
// of the last episode it ran on its stream. Its next episode of the instance
// on the same stream then carries only the events committed since, with
// cachedHistory.eventCount saying how many it already holds; a chain of N
// steps costs the stream O(N) events instead of O(N²).
//
// The server's side is a record, per stream, of how many past events it sent
// each instance's last episode. The record dies with the stream, so a new or
// restarted worker, and a worker taking over an instance from another, get the
// whole history. A worker whose cache does not match (it failed the episode,
// evicted the instance) fetches the whole history with GetInstanceHistory, as
// the protocol says, so a wrong guess here costs a round trip, never
// correctness. The conversion of the history is the same every time (see
// episodeEvents), so a prefix sent before is a prefix of the history now.

// maxWarmInstances bounds the record of one stream; past it the record starts
// over (those instances get their whole history once more).
const maxWarmInstances = 100_000

type warmInstance struct {
	execution string // the generation the worker holds
	events    int    // how many past events it holds
}

// workerCache is one stream's record; its methods are called from the
// stream's sending goroutine only. A nil *workerCache is a stateless worker.
type workerCache struct {
	warm map[string]warmInstance
}

func newWorkerCache() *workerCache { return &workerCache{warm: map[string]warmInstance{}} }

// sent records an episode of instance id (generation execution, with total
// past events) and reports how many of them the worker holds already, and
// whether it holds any (false: send them all).
func (c *workerCache) sent(id, execution string, total int) (int, bool) {
	if c == nil {
		return 0, false
	}
	w, ok := c.warm[id]
	if len(c.warm) >= maxWarmInstances && !ok {
		clear(c.warm)
	}
	c.warm[id] = warmInstance{execution: execution, events: total}
	if !ok || w.execution != execution || w.events > total {
		return 0, false
	}
	return w.events, true
}
