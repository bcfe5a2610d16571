package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/weftrt/weft/workflow"
)

// Remote workers run the workflows and activities whose code is not registered in
// this process: apps connected over the durabletask protocol (api/durabletask), as
// Dapr's SDKs connect to their sidecar. The runtime does not care where code runs:
// a workflow actor hands a step (an "episode": the history so far and the new
// events) to the pool, and applies the actions that come back exactly as it applies
// the in-process executor's; an activity attempt comes back as an ActivityResult.
//
// The pool is pull-based: each connected worker takes items from one queue, up to
// Options.MaxItemsPerWorker unanswered at a time, so items spread over all workers.
// When a worker's stream drops, its unanswered items go back to the front of the
// queue for another worker (or wait for one). Nothing here is durable, and nothing
// needs to be: an instance that restarts re-sends its pending episode and its
// outstanding activities, as it does for in-process work.
//
// Responses in the protocol carry no token, only the instance id (and the task id
// for activities): at most one episode per instance is outstanding, and a
// response is accepted only from the connection the item was handed to, so a late
// answer from a worker whose items were reassigned can never be taken for the
// answer to a newer item.
//
// An instance may be passivated while its work is out (more instances in flight
// than MaxActive) and loaded again by the very answer to that work. What it
// finds then must say that the work is already done: an activity attempt stays
// marked in flight in the host until its result is taken, as in-process
// attempts do, and an answered episode stays in the pool while its answer is
// being applied, so that the loading instance waits for it instead of handing
// the episode out again.

// DefaultMaxItemsPerWorker is the default Options.MaxItemsPerWorker: the
// items one worker holds unanswered at once. A worker that takes long over its
// items (slow activities) leaves the rest to the others. The bound is also how
// many items one worker runs at once (Dapr's SDKs run every item they are
// handed at once), so it is set well above what a worker process gets through
// while an item is in flight: at 128, one Dapr Go SDK worker doing 1,000
// chains of 5 waited on it, and ran 10–17% fewer activities per second at 10%
// more server CPU per activity than at 1,024 (sdkbench, 4 alternated pairs),
// and a fan-out of slow activities on one worker ran 128 at a time. A worker
// of whole histories (Dapr's SDKs before stateful history) holds an instance's
// history with each of its episodes: a lower bound caps what such a worker
// holds in memory when it falls behind.
const DefaultMaxItemsPerWorker = 1024

// OrchestrationWork asks a remote worker to run one episode of a workflow.
type OrchestrationWork struct {
	InstanceID  string
	ExecutionID string
	Name        string
	Version     string // the named version of the workflow's code the instance runs, if known
	TraceParent string // the instance's trace context (W3C), if it has one
	TraceState  string
	App         string // the app whose workers run it ("": any worker)
	// Created is when the instance was created: with ExecutionID it names
	// this history, which a purge and a new start under the same id begin
	// again (a worker's cached history must not be taken for the new one's).
	Created time.Time
	Past    []workflow.Event // history so far, as the worker replays it
	New     []workflow.Event // EpisodeStarted, then the inputs of this episode
	// Cache is the instance's, shared by its episodes (nil: none).
	Cache *EpisodeCache

	// Which episode this is: the generation, the number of episodes before it
	// in that generation, and how many held inputs it consumes. All three come
	// from the instance's durable state, so an answer still applies after the
	// instance was passivated and loaded again.
	gen     uint32
	episode uint64
	inputs  int
}

// EpisodeCache keeps what the layer that sends an instance's episodes to
// workers derived from the instance's past in earlier episodes (the gRPC
// server: the past's encoding), so that an episode costs it the events since
// the last one, not the whole history again. Within a generation the past only
// grows, so what was derived from a prefix of it still holds; the cache lives
// with the instance's activation and starts empty with each generation (and
// its user checks the execution it derived the value from, all the same).
// Episodes of one instance may be sent by two streams at once (an episode
// offered again after its worker left), hence the lock.
type EpisodeCache struct {
	sync.Mutex
	Value any
}

// OrchestrationResult is what a remote worker decided in one episode.
type OrchestrationResult struct {
	Actions         []workflow.Event // TaskIDs as the worker numbered them
	CustomStatus    []byte
	CustomStatusSet bool
	Carry           []workflow.Event // events carried into the next generation by a ContinuedAsNew action
	// Version is the named version of the workflow the worker ran ("": it
	// did not say); Patches the patches its code found applied (IsPatched
	// true), as Dapr's SDKs report them.
	Version string
	Patches []string
	// VersionNotAvailable: the worker has no code for the instance's version;
	// nothing else in the answer applies and the instance stalls.
	VersionNotAvailable bool
	// TooLarge, when set, says that the episode could not be sent to any
	// worker: it is larger than the stream allows. The instance stalls.
	TooLarge string
}

// WorkItem is one item for a remote worker: exactly one of Orchestration and
// Activity is set.
type WorkItem struct {
	Orchestration *OrchestrationWork
	Activity      *Invocation

	key    workKey
	worker *RemoteWorker        // nil while queued, and while an episode's answer is applied (see take)
	answer *OrchestrationResult // an answer handed over by AnswerOrchestration, not yet taken by the instance
}

type workKey struct {
	instance string
	task     int64 // orchestrationTask for an episode
}

const orchestrationTask = -1 << 63

// RemoteWorkers is a node's pool of connected workers and the work waiting for them.
type RemoteWorkers struct {
	h        *Host
	maxItems int // per worker (Options.MaxItemsPerWorker)

	mu       sync.Mutex
	lastIdle time.Time // when "no worker connected" was last logged
	workers  map[*RemoteWorker]struct{}
	queue    []*WorkItem
	items    map[workKey]*WorkItem // every unanswered item
	changed  chan struct{}         // closed and replaced whenever the queue or a worker's load changes, if waited on
	waiting  int                   // Next calls waiting on changed
	closed   bool
}

// RemoteWorker is one connected worker stream.
type RemoteWorker struct {
	pool     *RemoteWorkers
	peer     string
	app      string // the app it runs the code of ("": it named none)
	assigned map[*WorkItem]struct{}
	gone     bool
}

// ErrNotAssigned is returned for a response to an item this connection does not hold.
var ErrNotAssigned = errors.New("no such work item is outstanding on this connection")

func newRemoteWorkers(h *Host, maxItems int) *RemoteWorkers {
	if maxItems <= 0 {
		maxItems = DefaultMaxItemsPerWorker
	}
	return &RemoteWorkers{h: h, maxItems: maxItems, workers: map[*RemoteWorker]struct{}{}, items: map[workKey]*WorkItem{}, changed: make(chan struct{})}
}

// RemoteWorkers returns the pool, or nil when remote workers are not enabled.
func (h *Host) RemoteWorkers() *RemoteWorkers { return h.remote }

// runsRemotely reports whether an activity's code runs on a remote worker.
func (h *Host) runsRemotely(activity string) bool {
	return h.remote != nil && !h.reg.HasActivity(activity)
}

// Connect registers a worker stream; peer identifies its connection (the remote
// address), which its responses must come from.
func (p *RemoteWorkers) Connect(peer string) *RemoteWorker { return p.ConnectApp(peer, "") }

// ConnectApp registers the worker stream of an app: it gets the work of that
// app and the work no app is named for. Work for an app with no worker
// connected waits for one.
func (p *RemoteWorkers) ConnectApp(peer, app string) *RemoteWorker {
	w := &RemoteWorker{pool: p, peer: peer, app: app, assigned: map[*WorkItem]struct{}{}}
	p.mu.Lock()
	p.workers[w] = struct{}{}
	p.mu.Unlock()
	p.h.log.Info("remote worker connected", "peer", peer, "app", app)
	return w
}

// app is the app whose workers may take the item ("": any).
func (it *WorkItem) app() string {
	if it.Orchestration != nil {
		return it.Orchestration.App
	}
	if r := it.Activity.Remote; r != nil {
		return r.App
	}
	return ""
}

// Workers returns how many workers are connected and how many items wait for one.
func (p *RemoteWorkers) Workers() (connected, queued int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.workers), len(p.queue)
}

// Next blocks until an item is available for this worker (or ctx ends, or the
// pool closes) and hands it over.
func (w *RemoteWorker) Next(ctx context.Context) (*WorkItem, error) {
	p := w.pool
	waited := false
	for {
		p.mu.Lock()
		if waited {
			p.waiting--
			waited = false
		}
		if p.closed || w.gone {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if len(w.assigned) < p.maxItems {
			if i := slices.IndexFunc(p.queue, func(it *WorkItem) bool { a := it.app(); return a == "" || a == w.app }); i >= 0 {
				it := p.queue[i]
				if i == 0 { // the usual case: O(1), where a delete moves the whole queue
					p.queue[0] = nil
					p.queue = p.queue[1:]
				} else {
					p.queue = slices.Delete(p.queue, i, i+1)
				}
				it.worker = w
				w.assigned[it] = struct{}{}
				p.mu.Unlock()
				return it, nil
			}
		}
		changed := p.changed
		p.waiting++
		waited = true
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			p.mu.Lock()
			p.waiting--
			p.mu.Unlock()
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// Disconnect removes the worker; its unanswered items go back to the front of the
// queue, in the order they were queued.
func (w *RemoteWorker) Disconnect() {
	p := w.pool
	p.mu.Lock()
	if w.gone {
		p.mu.Unlock()
		return
	}
	w.gone = true
	delete(p.workers, w)
	back := make([]*WorkItem, 0, len(w.assigned))
	for it := range w.assigned {
		it.worker = nil
		back = append(back, it)
	}
	p.queue = append(back, p.queue...)
	p.broadcast()
	p.mu.Unlock()
	p.h.log.Info("remote worker disconnected", "peer", w.peer, "requeued", len(back))
}

// broadcast wakes every waiting Next. Called with p.mu held. With none
// waiting (a busy worker takes its next item before the queue changes again)
// there is nothing to wake, and no channel to replace.
func (p *RemoteWorkers) broadcast() {
	if p.waiting == 0 {
		return
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// submit queues an item, replacing an unanswered one with the same key (which the
// instance no longer waits for) unless it is the very same activity attempt.
func (p *RemoteWorkers) submit(it *WorkItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if old := p.items[it.key]; old != nil {
		if old.Activity != nil && it.Activity != nil && old.Activity.Gen == it.Activity.Gen && old.Activity.Attempt == it.Activity.Attempt {
			return // re-sent after a re-activation: already queued or running
		}
		p.withdraw(old)
	}
	p.items[it.key] = it
	p.queue = append(p.queue, it)
	p.broadcast()
	if !p.anyWorkerOf(it.app()) && time.Since(p.lastIdle) > 30*time.Second {
		p.lastIdle = time.Now()
		what := "episode of workflow " + it.key.instance
		if it.Activity != nil {
			what = "activity " + it.Activity.Name + " of " + it.key.instance
		}
		p.h.log.Warn("work waits for a remote worker: none that may run it is connected (start the app whose SDK worker runs it, pointed at this server's gRPC address)",
			"work", what, "app", it.app(), "queued", len(p.queue))
	}
}

// anyWorkerOf reports whether a connected worker may take work of app.
// Called with p.mu held.
func (p *RemoteWorkers) anyWorkerOf(app string) bool {
	for w := range p.workers {
		if app == "" || w.app == app {
			return true
		}
	}
	return false
}

// withdraw drops an item that will not be answered: an activity attempt is no
// longer in flight. Called with p.mu held.
func (p *RemoteWorkers) withdraw(it *WorkItem) {
	p.drop(it)
	if it.Activity != nil {
		p.h.unmarkInFlight(*it.Activity)
	}
}

// drop forgets an item wherever it is. Called with p.mu held.
func (p *RemoteWorkers) drop(it *WorkItem) {
	if p.items[it.key] == it {
		delete(p.items, it.key)
	}
	if w := it.worker; w != nil {
		atBound := len(w.assigned) >= p.maxItems
		delete(w.assigned, it)
		it.worker = nil
		if atBound {
			// The worker may take another item. Below its bound it took every
			// item it could: waking its Next only to find the queue empty
			// again cost a wake-up per answer.
			p.broadcast()
		}
		return
	}
	for i, q := range p.queue {
		if q == it {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			return
		}
	}
}

// take removes and returns the unanswered item key that peer holds. An
// episode stays in items (see answered) until its answer is applied.
func (p *RemoteWorkers) take(peer string, key workKey) (*WorkItem, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.takeLocked(peer, key)
}

// takeLocked is take, called with p.mu held.
func (p *RemoteWorkers) takeLocked(peer string, key workKey) (*WorkItem, error) {
	it := p.items[key]
	if it == nil || it.worker == nil || it.worker.peer != peer {
		return nil, ErrNotAssigned
	}
	p.drop(it)
	if it.Orchestration != nil {
		p.items[key] = it // in no queue and with no worker: being answered
	}
	return it, nil
}

// answered forgets an episode whose answer was applied (or found stale).
func (p *RemoteWorkers) answered(it *WorkItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.items[it.key] == it {
		delete(p.items, it.key)
	}
}

// putBack re-queues an episode whose answer could not be delivered.
func (p *RemoteWorkers) putBack(it *WorkItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.items[it.key] != it {
		return // closing, or withdrawn or replaced by a newer item meanwhile
	}
	p.queue = append([]*WorkItem{it}, p.queue...)
	p.broadcast()
}

// outstandingEpisode returns the episode of instance that is queued, with a
// worker, or answered and being applied, if any.
func (p *RemoteWorkers) outstandingEpisode(instance string) *OrchestrationWork {
	p.mu.Lock()
	defer p.mu.Unlock()
	if it := p.items[workKey{instance, orchestrationTask}]; it != nil {
		return it.Orchestration
	}
	return nil
}

// forget drops the instance's unanswered items: it finished or continued as new.
func (p *RemoteWorkers) forget(instance string, activityTasks []int64, episode bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, task := range activityTasks {
		if it := p.items[workKey{instance, task}]; it != nil {
			p.withdraw(it)
		}
	}
	if it := p.items[workKey{instance, orchestrationTask}]; episode && it != nil {
		p.withdraw(it)
	}
}

// forgetPartition drops the unanswered items of every instance of partition
// part: it moved to another node, whose own workers get its work.
func (p *RemoteWorkers) forgetPartition(part uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, it := range p.items {
		if p.h.Partition(key.instance) == part {
			p.withdraw(it)
		}
	}
}

// CompleteOrchestration applies a worker's answer to the instance's outstanding
// episode. It returns once the step is committed (or found stale).
func (p *RemoteWorkers) CompleteOrchestration(ctx context.Context, peer, instance string, res OrchestrationResult) error {
	it, err := p.take(peer, workKey{instance, orchestrationTask})
	if err != nil {
		return fmt.Errorf("orchestration %s: %w", instance, err)
	}
	err = p.h.Request(ctx, instance, episodeDone{work: it.Orchestration, result: res})
	switch {
	case err == nil, errors.Is(err, ErrInstanceNotFound):
		p.answered(it)
		return nil
	case errors.Is(err, ErrNotForwardable):
		p.answered(it)
		// The instance's partition moved to another node since: its new node
		// hands its own workers the episode when it loads the instance.
		return fmt.Errorf("orchestration %s: its partition moved to another node; the episode runs there", instance)
	}
	p.putBack(it) // not applied: another worker (or this one) runs the episode again
	return fmt.Errorf("orchestration %s: %w", instance, err)
}

// AnswerOrchestration hands a worker's answer to the instance's outstanding
// episode and returns without waiting for its commit, as Dapr's sidecar
// answers: the worker has nothing to wait for, and a handler parked on every
// commit cost the SDK path CPU per step. The answer waits with the episode
// until the instance's actor takes it; if the activation stops first, its next
// one does (Host.stopped). If it cannot be applied (the instance does not load,
// the commit fails), the episode goes back to the workers, as a failed
// CompleteOrchestration puts it; if the node stops first, the episode is
// offered again when the instance loads, since nothing of the answer was
// stored. On a cluster node, where the instance may live on another node,
// it waits for the commit like CompleteOrchestration.
func (p *RemoteWorkers) AnswerOrchestration(ctx context.Context, peer, instance string, res OrchestrationResult) error {
	if p.h.router != nil {
		return p.CompleteOrchestration(ctx, peer, instance, res)
	}
	key := workKey{instance, orchestrationTask}
	p.mu.Lock()
	it, err := p.takeLocked(peer, key)
	if err == nil {
		it.answer = &res
	}
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("orchestration %s: %w", instance, err)
	}
	p.h.post(instance, episodeAnswered{})
	return nil
}

// withAnswer returns the instance's episode if an answer handed over for it
// waits to be taken. Called with p.mu held.
func (p *RemoteWorkers) withAnswer(instance string) *WorkItem {
	if it := p.items[workKey{instance, orchestrationTask}]; it != nil && it.answer != nil {
		return it
	}
	return nil
}

// takeAnswer returns the instance's episode with the answer handed over for
// it, and takes the answer; nil if none waits.
func (p *RemoteWorkers) takeAnswer(instance string) (*WorkItem, OrchestrationResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	it := p.withAnswer(instance)
	if it == nil {
		return nil, OrchestrationResult{}
	}
	res := *it.answer
	it.answer = nil
	return it, res
}

// answerWaits reports whether an answer handed over for the instance's
// episode waits to be taken.
func (p *RemoteWorkers) answerWaits(instance string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.withAnswer(instance) != nil
}

// returnAnswered sends the instance's episode back to the workers if an answer
// handed over for it is still waiting: its instance could not take it.
func (p *RemoteWorkers) returnAnswered(instance string) {
	p.mu.Lock()
	it := p.withAnswer(instance)
	if it != nil {
		it.answer = nil
	}
	p.mu.Unlock()
	if it != nil {
		p.putBack(it)
	}
}

// CompleteActivity reports a remote activity attempt's outcome.
func (p *RemoteWorkers) CompleteActivity(peer, instance string, task int64, output []byte, failure *workflow.Failure) error {
	it, err := p.take(peer, workKey{instance, task})
	if err != nil {
		return fmt.Errorf("activity task %d of %s: %w", task, instance, err)
	}
	inv := it.Activity
	outcome := "ok"
	if failure != nil {
		outcome = "failed"
	}
	p.h.stats.ActivitiesRun.Add(1)
	p.h.metrics.activities.WithLabelValues(inv.Name, outcome).Inc()
	p.h.report(ActivityResult{Gen: inv.Gen, TaskID: inv.TaskID, Attempt: inv.Attempt, Output: output, Failure: failure}, inv.InstanceID)
	return nil
}

// close ends every worker's Next.
func (p *RemoteWorkers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.broadcast()
}

// submitActivity hands an activity attempt to the workers.
func (p *RemoteWorkers) submitActivity(inv Invocation) {
	p.submit(&WorkItem{Activity: &inv, key: workKey{inv.InstanceID, inv.TaskID}})
}

// submitEpisode hands an episode to the workers.
func (p *RemoteWorkers) submitEpisode(work *OrchestrationWork) {
	p.submit(&WorkItem{Orchestration: work, key: workKey{work.InstanceID, orchestrationTask}})
}

// ExecutionID names one generation of an instance in the durabletask protocol
// (which gives every continue-as-new a new execution id).
func ExecutionID(gen uint32) string { return "gen-" + strconv.FormatUint(uint64(gen), 10) }
