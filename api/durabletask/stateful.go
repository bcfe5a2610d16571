package durabletask

import (
	"time"

	"github.com/weftrt/weft/actors"
)

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
	execution string    // the generation the worker holds
	created   time.Time // and the incarnation of the instance (a purge and a new start reuse ids)
	events    int       // how many past events it holds
	raw       int       // how many of the instance's history events they are made of
}

// workerCache is one stream's record; its methods are called from the
// stream's sending goroutine only. A nil *workerCache is a stateless worker.
type workerCache struct {
	warm map[string]warmInstance
}

func newWorkerCache() *workerCache { return &workerCache{warm: map[string]warmInstance{}} }

// held returns what the worker holds of o's history: how many protocol
// events, made of how many history events; ok is false when it holds none.
func (c *workerCache) held(o *actors.OrchestrationWork) (events, raw int, ok bool) {
	if c == nil {
		return 0, 0, false
	}
	w, found := c.warm[o.InstanceID]
	if !found || w.execution != o.ExecutionID || !w.created.Equal(o.Created) || w.raw > len(o.Past) {
		return 0, 0, false
	}
	return w.events, w.raw, true
}

// sent records that the worker was sent o's past, events protocol events in
// all: it holds them once it ran the episode.
func (c *workerCache) sent(o *actors.OrchestrationWork, events int) {
	if c == nil {
		return
	}
	if _, found := c.warm[o.InstanceID]; !found && len(c.warm) >= maxWarmInstances {
		clear(c.warm)
	}
	c.warm[o.InstanceID] = warmInstance{execution: o.ExecutionID, created: o.Created, events: events, raw: len(o.Past)}
}
