package actors

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftrt/weft/placement"
	"github.com/weftrt/weft/reminders"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// Options configure a Host.
type Options struct {
	DB       *storage.DB
	Registry *workflow.Registry
	Logger   *slog.Logger
	// IdleTimeout passivates an instance that received no message for this long
	// (default 2 minutes).
	IdleTimeout time.Duration
	// MaxActive caps the active (in-memory) instances; the least recently used one
	// is passivated beyond it (default 10,000).
	MaxActive int
	// SleepPassivation passivates an instance at once when all it waits for is a
	// reminder (a timer, a retry, a scheduled start) due at least this far ahead
	// (default 2 s; negative: never, only IdleTimeout and MaxActive passivate).
	// Finished instances are always passivated at once.
	SleepPassivation time.Duration
	// ActivityConcurrency caps the activity attempts running at once on this node;
	// the rest wait in a queue (default 256).
	ActivityConcurrency int
	// DeadlockTimeout is the executor's (default workflow.DefaultDeadlockTimeout).
	DeadlockTimeout time.Duration
	// StallRetryDelay is the first wait before a step whose code did not yield in
	// time is retried (default 5 s; the n-th retry waits n times as long).
	StallRetryDelay time.Duration
	// RequestTimeout bounds one attempt of an internal request (default 1 minute).
	RequestTimeout time.Duration
	// Reminders tunes the reminder service; DB, Fire and Logger are set by the host.
	Reminders reminders.Options
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Committer makes each step durable (see StepCommitter); nil: the local
	// store, one synced commit per step.
	Committer StepCommitter
	// Retention purges finished instances after a while (zero: never; see
	// Retention).
	Retention Retention
	// ActivityLimits caps the attempts of each named activity running at
	// once across the cluster (package limits); every node must be given the
	// same. Nil: no limits.
	ActivityLimits map[string]int
	// WorkflowLimits caps the instances of each named workflow running at
	// once across the cluster: more wait PENDING for a permit.
	WorkflowLimits map[string]int
	// Tracer receives the instances' spans (tracing.go); it must come from a
	// NewTracerProvider. Nil: no tracing, at no cost.
	Tracer trace.Tracer
	// RemoteWorkers runs workflows and activities that are not registered in
	// this process on workers connected over the durabletask protocol (see
	// RemoteWorkers). Off, starting an unregistered workflow fails.
	RemoteWorkers bool
	// MaxItemsPerWorker bounds the work items one remote worker holds
	// unanswered (0: DefaultMaxItemsPerWorker).
	MaxItemsPerWorker int
}

// Host runs this node's workflow and activity actors.
type Host struct {
	opts   Options
	db     *storage.DB
	reg    *workflow.Registry
	log    *slog.Logger
	system *actor.ActorSystem
	rem    *reminders.Service

	mu      sync.Mutex
	actors  map[string]*activation
	lru     lruList
	closing atomic.Bool
	// fenced are the partitions whose actors StopPartition stopped (they are
	// moving to another node, or this node's copy is stale): nothing activates
	// an instance of them until ServePartition. Checked under mu together with
	// the activation table, so no activation slips in after StopPartition took
	// its list of actors to stop.
	fenced    map[uint16]struct{}
	anyFenced atomic.Bool // len(fenced) > 0

	activityCtx    context.Context
	cancelActivity context.CancelFunc
	actMu          sync.Mutex
	actRunning     int
	actQueue       []Invocation

	background sync.WaitGroup // deliveries and reports in flight
	deliveries *deliveryQueue

	shards    [workShards]workShard // queued results and in-flight attempts, by instance
	shardSeed maphash.Seed

	watchMu  sync.Mutex
	watchers map[string][]*watcher

	stats      Stats
	metrics    *metrics
	dispatcher *workerDispatcher
	// activityProps spawns every activity actor; the invocation is its first message.
	activityProps *actor.Props
	remote        *RemoteWorkers // nil unless Options.RemoteWorkers
	router        Router         // nil: a single node
	requests      *requestNamer  // names the client events a cluster may send twice (client_events.go)

	idleStop  chan struct{} // closed by Close: sweepIdle returns
	idleSwept chan struct{} // closed by sweepIdle when it returned
}

// Stats are counters for metrics and tests.
type Stats struct {
	Activations       atomic.Int64
	Passivations      atomic.Int64
	ActivitiesRun     atomic.Int64
	Commits           atomic.Int64
	IgnoredDuplicates atomic.Int64
}

// activation is one instance's actor while it is in memory. Its actor is spawned
// outside the host's lock (spawning under it serialised every activation), so
// pid is set, and may be read, once spawned is closed.
type activation struct {
	id       string
	pid      *actor.PID
	spawned  chan struct{}
	prev     *activation // in Host.lru while not stopping
	next     *activation
	stopping bool
	used     time.Time // when last activated, under the host's lock (see sweepIdle)
	stopped  chan struct{}
	// committed is the status of the instance's last commit plus one (0: not
	// known), written by the actor after each commit and before it notifies
	// watchers, so WaitFor need not read a running instance's row from the store.
	committed atomic.Int32
	// awaitsWork says the instance waits on work this node serves in the order
	// it was queued (an activity attempt, a worker's episode): set by the actor
	// after each message it handles, cleared when a message is routed to it
	// (until the actor has handled that one). MaxActive's evictions read it.
	awaitsWork atomic.Bool
}

// PID waits until the actor is spawned and returns it.
func (a *activation) PID() *actor.PID {
	<-a.spawned
	return a.pid
}

// Invocation is one attempt of one activity.
type Invocation struct {
	InstanceID string
	Gen        uint32
	TaskID     int64
	Name       string
	Input      []byte
	Attempt    int
	// Remote is what a remote worker is told besides (nil when there is
	// nothing: an invocation is copied along its way, so what only remote
	// workers use stays out of line).
	Remote *RemoteCall `msgpack:",omitempty"`
}

// RemoteCall is what an activity invocation carries for remote workers.
type RemoteCall struct {
	// TaskExecutionID is the call's id across attempts, when a remote
	// worker's SDK gave one.
	TaskExecutionID string `msgpack:",omitempty"`
	// TraceParent and TraceState are the trace context of the instance.
	TraceParent string `msgpack:",omitempty"`
	TraceState  string `msgpack:",omitempty"`
	// App names the app whose remote workers run it ("": any worker).
	App string `msgpack:",omitempty"`
}

// NewHost returns a host; Start starts its reminders and resumes interrupted work.
func NewHost(opts Options) *Host {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 2 * time.Minute
	}
	if opts.MaxActive <= 0 {
		opts.MaxActive = 10_000
	}
	if opts.SleepPassivation == 0 {
		opts.SleepPassivation = 2 * time.Second
	}
	if opts.ActivityConcurrency <= 0 {
		opts.ActivityConcurrency = 256
	}
	if opts.StallRetryDelay <= 0 {
		opts.StallRetryDelay = 5 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	quiet := opts.Logger.With("component", "protoactor")
	h := &Host{
		opts:       opts,
		db:         opts.DB,
		reg:        opts.Registry,
		requests:   newRequestNamer(),
		log:        opts.Logger,
		actors:     map[string]*activation{},
		fenced:     map[uint16]struct{}{},
		deliveries: newDeliveryQueue(),
		watchers:   map[string][]*watcher{},
		shardSeed:  maphash.MakeSeed(),
		system: actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(levelFloor{quiet.Handler(), slog.LevelWarn})
		})),
	}
	h.lru.init()
	for i := range h.shards {
		h.shards[i] = workShard{results: map[string]*resultQueue{}, inflight: map[inflightKey]struct{}{}}
	}
	if opts.RemoteWorkers {
		h.remote = newRemoteWorkers(h, opts.MaxItemsPerWorker)
	}
	h.metrics = newMetrics(h)
	h.dispatcher = newWorkerDispatcher(300, 10*time.Second)
	h.activityProps = actor.PropsFromProducer(func() actor.Actor { return &activityActor{h: h} },
		actor.WithDispatcher(h.dispatcher))
	h.activityCtx, h.cancelActivity = context.WithCancel(context.Background())
	ro := opts.Reminders
	ro.DB, ro.Fire, ro.Logger = opts.DB, h.fire, opts.Logger
	h.rem = reminders.New(ro)
	h.idleStop, h.idleSwept = make(chan struct{}), make(chan struct{})
	go h.sweepIdle()
	return h
}

// Start starts firing reminders and wakes every instance that had work in flight
// when the node stopped (only those: an instance waiting on a timer or an event
// stays on disk until its reminder or event comes).
func (h *Host) Start(ctx context.Context) error {
	if err := h.rem.Start(); err != nil {
		return fmt.Errorf("start reminders: %w", err)
	}
	h.startDeliveries()
	var ids []string
	err := h.db.Awake(func(part uint16, id string) error {
		if !h.isFenced(part) { // a fenced partition's instances wake where it is served
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan instances with work in flight: %w", err)
	}
	if len(ids) > 0 {
		h.log.Info("resuming instances with work in flight", "count", len(ids))
	}
	for _, id := range ids {
		h.deliverAsync(id, wake{})
	}
	return nil
}

// Close stops the host: no new requests, running activities are cancelled (their
// outcome is re-run after the next start), every actor finishes the message it is
// handling (so no commit is cut short) and stops.
func (h *Host) Close() error {
	if h.closing.Swap(true) {
		return nil
	}
	h.cancelActivity()
	close(h.idleStop)
	<-h.idleSwept
	if h.remote != nil {
		h.remote.close()
	}
	remErr := h.rem.Close()
	h.mu.Lock()
	all := make([]*activation, 0, len(h.actors))
	for _, a := range h.actors {
		all = append(all, a)
	}
	h.mu.Unlock()
	// Poison, not Stop: an actor first answers what is already in its mailbox (a
	// report of an activity that finished just before Close would otherwise wait
	// out its request timeout), and nothing new arrives, since every request
	// checks closing first.
	_ = h.stopAll(context.Background(), all)
	h.stopDeliveries()
	h.background.Wait()
	h.system.Shutdown()
	h.dispatcher.stop()
	return remErr
}

// Stats returns the host's counters.
func (h *Host) Stats() *Stats { return &h.stats }

// Reminders returns the reminder service.
func (h *Host) Reminders() *reminders.Service { return h.rem }

// Active returns how many instances are in memory.
func (h *Host) Active() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.actors)
}

// Partition returns the partition of an instance id.
func (h *Host) Partition(id string) uint16 { return placement.PartitionOf(id, h.db.Partitions()) }

// Request sends msg to the instance's actor, activating it if needed, and waits for
// its reply. A message that raced a passivation is sent again to the next
// activation; messages are idempotent, so a retry never applies twice.
//
// The reply comes back on a channel, not through a protoactor future: a future
// registers a process and a timer per call (a tenth of a chain step's
// allocations), and a message left in the mailbox of an actor that stopped is
// dropped without a dead letter, so a future would wait out its whole timeout.
// Watching the activation's stopped signal instead re-sends such a message at once.
func (h *Host) Request(ctx context.Context, id string, msg any) error {
	msg = h.nameClientEvent(msg)
	for {
		// Routed on every attempt: a message that raced a passivation may find its
		// partition moved away by the time it is sent again.
		if h.router != nil {
			if forwarded, err := h.router.Forward(ctx, id, msg); forwarded {
				return err
			}
		}
		a, err := h.activate(ctx, id)
		if errors.Is(err, errPartitionFenced) {
			// The router saw the partition here a moment before its actors were
			// stopped for a move: ask it again (it waits for the move).
			if err := sleepCtx(ctx, time.Millisecond); err != nil {
				return fmt.Errorf("request to instance %s: %w", id, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		timeout := h.opts.RequestTimeout
		if dl, ok := ctx.Deadline(); ok {
			if d := time.Until(dl); d < timeout {
				timeout = d
			}
		}
		if timeout <= 0 {
			return fmt.Errorf("request to instance %s: %w", id, context.DeadlineExceeded)
		}
		req := request{msg: msg, done: make(chan error, 1)}
		h.system.Root.Send(a.PID(), req)
		timer := getTimer(timeout)
		select {
		case err := <-req.done:
			putTimer(timer)
			if h.router != nil && (errors.Is(err, ErrStepNotProposed) || errors.Is(err, ErrStepOutcomeUnknown) && sendsAgainSafely(msg)) {
				// Its partition's leader changed under it, and nothing was
				// applied, or what was is recognised when it comes again:
				// route it again, to the new leader.
				if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
					return fmt.Errorf("request to instance %s: %w", id, err)
				}
				continue
			}
			return err
		case <-a.stopped:
			putTimer(timer)
			select {
			case err := <-req.done: // answered just before it stopped
				return err
			default:
			}
			if h.closing.Load() {
				return ErrClosed
			}
			// Stopped without taking it: the next activation does.
		case <-ctx.Done():
			putTimer(timer)
			return fmt.Errorf("request to instance %s: %w", id, ctx.Err())
		case <-timer.C:
			putTimer(timer)
			return fmt.Errorf("request to instance %s: no answer within %s: %w", id, timeout, context.DeadlineExceeded)
		}
	}
}

// post sends msg to the instance's actor without waiting for an answer: for
// messages whose loss a stopping activation makes good (see stopped). Only
// drainResults is posted; if the instance's partition is fenced, its queued
// results go wherever the partition is served now.
func (h *Host) post(id string, msg any) {
	a, err := h.activate(context.Background(), id)
	if errors.Is(err, errPartitionFenced) {
		h.rerouteResults(id)
		return
	}
	if err != nil {
		return // closing
	}
	h.system.Root.Send(a.PID(), msg)
}

// fire is the reminder service's callback. A reminder of a fenced partition
// leaves memory unfired: the node that serves the partition fires it, and this
// one loads it again if the partition comes back (a replica's store holds the
// reminders of partitions it does not lead).
func (h *Host) fire(r storage.Reminder) {
	if h.isFenced(r.Partition) {
		h.rem.Done(r)
		return
	}
	h.deliverAsync(r.Instance, reminderFired{r})
}

// isFenced reports whether partition part is fenced (see StopPartition).
func (h *Host) isFenced(part uint16) bool {
	if !h.anyFenced.Load() { // the embedded path: no lock per reminder
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.fenced[part]
	return ok
}

// errPartitionFenced: the instance's partition is fenced (see Host.fenced).
var errPartitionFenced = errors.New("the instance's partition is not served here now")

func (h *Host) activate(ctx context.Context, id string) (*activation, error) {
	var fresh *activation // made outside the lock: see lruList
	for {
		h.mu.Lock()
		if h.closing.Load() {
			h.mu.Unlock()
			return nil, ErrClosed
		}
		if len(h.fenced) > 0 {
			if _, ok := h.fenced[h.Partition(id)]; ok {
				h.mu.Unlock()
				return nil, errPartitionFenced
			}
		}
		a := h.actors[id]
		if a != nil && !a.stopping {
			a.used = time.Now()
			a.awaitsWork.Store(false)
			h.lru.moveToFront(a)
			h.mu.Unlock()
			return a, nil
		}
		if a != nil {
			stopped := a.stopped
			h.mu.Unlock()
			select {
			case <-stopped:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if fresh == nil {
			h.mu.Unlock()
			fresh = &activation{id: id, stopped: make(chan struct{}), spawned: make(chan struct{})}
			continue // another request may have activated it meanwhile
		}
		a = fresh
		a.used = time.Now()
		h.lru.pushFront(a)
		h.actors[id] = a
		var victim *activation
		if len(h.actors) > h.opts.MaxActive {
			victim = h.lru.victim(a)
		}
		h.mu.Unlock()
		a.pid = h.system.Root.Spawn(h.workflowProps(a))
		close(a.spawned)
		h.stats.Activations.Add(1)
		if victim != nil && h.deactivate(victim) {
			h.system.Root.Poison(victim.PID())
		}
		return a, nil
	}
}

// StopPartition fences partition part (no instance of it is activated until
// ServePartition), passivates every active instance of it and waits until they
// stopped: a partition about to move, or a stale copy about to be dropped, must
// have no actor writing to it. The router keeps new requests away from it
// first; the fence stops those that were routed here just before.
func (h *Host) StopPartition(ctx context.Context, part uint16) error {
	h.mu.Lock()
	h.fenced[part] = struct{}{}
	h.anyFenced.Store(true)
	var victims []*activation
	for id, a := range h.actors {
		if h.Partition(id) == part {
			victims = append(victims, a)
		}
	}
	h.mu.Unlock()
	if err := h.stopAll(ctx, victims); err != nil {
		return fmt.Errorf("stop the actors of partition %d: %w", part, err)
	}
	if h.remote != nil {
		h.remote.forgetPartition(part)
	}
	return nil
}

// ServePartition lifts StopPartition's fence: the partition is served here
// (again). Results that were queued for its instances meanwhile are drained.
func (h *Host) ServePartition(part uint16) {
	h.mu.Lock()
	_, was := h.fenced[part]
	delete(h.fenced, part)
	h.anyFenced.Store(len(h.fenced) > 0)
	h.mu.Unlock()
	if !was {
		return
	}
	for _, id := range h.queuedIn(part) {
		h.post(id, drainResults{})
	}
}

// System is the host's actor system (the cluster starts protoactor's remote
// transport on it).
func (h *Host) System() *actor.ActorSystem { return h.system }

// DB is the host's store.
func (h *Host) DB() *storage.DB { return h.db }

// Log is the host's logger.
func (h *Host) Log() *slog.Logger { return h.log }

// deactivate takes an activation out of routing: later requests wait for it to stop
// and go to a fresh activation. It reports whether the caller claimed the stop:
// only the claimer poisons the actor, so nothing is sent to an actor already
// gone (protoactor would dead-letter it).
func (h *Host) deactivate(a *activation) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.actors[a.id] == a && !a.stopping {
		a.stopping = true
		h.lru.remove(a)
		return true
	}
	return false
}

// stopAll poisons the activations no one else is stopping and waits until all
// of them stopped, or ctx is done.
func (h *Host) stopAll(ctx context.Context, all []*activation) error {
	for _, a := range all {
		if h.deactivate(a) {
			h.system.Root.Poison(a.PID())
		}
	}
	for _, a := range all {
		select {
		case <-a.stopped:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stopped is called by an activation's actor as it stops; whatever is left in
// its mailbox is dropped unread (protoactor does not dead-letter it), which is why
// requests watch a.stopped and results still queued are drained by a new activation.
func (h *Host) stopped(a *activation) {
	h.mu.Lock()
	if h.actors[a.id] == a {
		delete(h.actors, a.id)
		if !a.stopping {
			h.lru.remove(a)
		}
	}
	select {
	case <-a.stopped:
	default:
		close(a.stopped)
	}
	h.mu.Unlock()
	h.stats.Passivations.Add(1)
	if h.hasResults(a.id) && !h.closing.Load() {
		h.deliverAsync(a.id, drainResults{})
	}
	if h.remote != nil && h.remote.answerWaits(a.id) && !h.closing.Load() {
		h.deliverAsync(a.id, episodeAnswered{})
	}
}

type inflightKey struct {
	instance string
	gen      uint32
	task     int64
	attempt  int
}

func keyOf(inv Invocation) inflightKey {
	return inflightKey{inv.InstanceID, inv.Gen, inv.TaskID, inv.Attempt}
}

// dispatchUnlessInFlight dispatches an attempt that this node is not already
// running or queueing (after a passivation it may well be).
func (h *Host) dispatchUnlessInFlight(inv Invocation) {
	if !h.isInFlight(inv) {
		h.dispatch(inv)
	}
}

// dispatch runs an activity attempt when a slot is free, or queues it; an
// activity not registered here goes to the remote workers.
func (h *Host) dispatch(inv Invocation) {
	if h.runsRemotely(inv.Name) {
		h.markInFlight(inv) // until the workflow takes its result, as below
		h.remote.submitActivity(inv)
		return
	}
	if h.router != nil {
		// In flight until its result comes back (takeResults), wherever it runs:
		// marked first, so the router never sees a placed attempt that is not.
		h.markInFlight(inv)
		if h.router.Dispatch(inv) {
			return
		}
	}
	h.dispatchLocal(inv)
}

// dispatchLocal runs an activity attempt on this node when a slot is free, or
// queues it.
func (h *Host) dispatchLocal(inv Invocation) {
	h.markInFlight(inv)
	h.actMu.Lock()
	if h.actRunning >= h.opts.ActivityConcurrency {
		h.actQueue = append(h.actQueue, inv)
		h.actMu.Unlock()
		return
	}
	h.actRunning++
	h.actMu.Unlock()
	h.spawnActivity(inv)
}

// activityFinished frees the attempt's slot. Its in-flight mark stays until the
// workflow takes the result (takeResults), unless the attempt produced none.
func (h *Host) activityFinished(done Invocation, reported bool) {
	if !reported {
		h.unmarkInFlight(done)
	}
	h.actMu.Lock()
	if len(h.actQueue) == 0 || h.closing.Load() {
		h.actRunning--
		h.actMu.Unlock()
		return
	}
	inv := h.actQueue[0]
	h.actQueue[0] = Invocation{}
	h.actQueue = h.actQueue[1:]
	h.actMu.Unlock()
	h.spawnActivity(inv)
}

// workflowProps spawns the actor of activation a.
func (h *Host) workflowProps(a *activation) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newWorkflowActor(h, a.id, a) },
		actor.WithDispatcher(h.dispatcher))
}

func (h *Host) spawnActivity(inv Invocation) {
	h.background.Add(1)
	h.system.Root.Send(h.system.Root.Spawn(h.activityProps), inv)
}

// A watcher waits for a commit of one instance whose row meets its condition:
// notify hands it such a row (the channel holds one, and a newer one replaces
// an unread one), and only such a row, so a client waiting for an instance to
// finish is woken once, not by each of its steps.
type watcher struct {
	rows chan *storage.InstanceRecord
	cond func(*storage.InstanceRecord) bool // called under watchMu: a quick look at the row, nothing more
}

func (h *Host) watch(id string, cond func(*storage.InstanceRecord) bool) (*watcher, func()) {
	w := &watcher{rows: make(chan *storage.InstanceRecord, 1), cond: cond}
	alone := []*watcher{w} // made outside the lock (see lruList); most instances have one watcher
	h.watchMu.Lock()
	if ws := h.watchers[id]; len(ws) > 0 {
		h.watchers[id] = append(ws, w)
	} else {
		h.watchers[id] = alone
	}
	h.watchMu.Unlock()
	return w, func() {
		h.watchMu.Lock()
		defer h.watchMu.Unlock()
		ws := h.watchers[id]
		for i, x := range ws {
			if x == w {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(h.watchers, id)
		} else {
			h.watchers[id] = ws
		}
	}
}

// watched reports whether anyone waits on the instance's commits.
func (h *Host) watched(id string) bool {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	return len(h.watchers[id]) > 0
}

// notify hands a committed row to the instance's watchers whose condition it
// meets, as a copy (the actor goes on changing its own), or nil (purged) to
// all of them.
func (h *Host) notify(id string, row *storage.InstanceRecord) {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	var snapshot *storage.InstanceRecord
	for _, w := range h.watchers[id] {
		var send *storage.InstanceRecord
		if row != nil {
			if !w.cond(row) {
				continue
			}
			if snapshot == nil {
				c := *row
				snapshot = &c
			}
			send = snapshot
		}
		select {
		case <-w.rows: // drop the unread older row
		default:
		}
		w.rows <- send
	}
}

// WaitFor blocks until cond holds for the instance's committed row, woken by the
// runtime's commits (which hand over the row) rather than by polling the store.
// cond is called with the host's watch lock held: it must only look at the row.
func (h *Host) WaitFor(ctx context.Context, id string, cond func(*storage.InstanceRecord) bool) (*storage.InstanceRecord, error) {
	w, cancel := h.watch(id, cond)
	defer cancel()
	var row *storage.InstanceRecord
	var err error
	read := func() {
		row, err = h.db.Instance(h.Partition(id), id)
		if err == nil && cond(row) {
			err = h.db.SyncVisible() // the row came from pebble, not from a synced commit's notification
		}
	}
	// An instance in memory whose last commit does not meet cond yet: its next
	// commits come to w (the watch is registered first, and the actor records the
	// status before it looks for watchers), so there is nothing to read yet.
	if st, ok := h.committedStatus(id); !ok || cond(&storage.InstanceRecord{Status: st}) {
		read()
	}
	for {
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, ErrInstanceNotFound
		case err != nil:
			return nil, err
		case row != nil && cond(row):
			return row, nil
		}
		select {
		case row = <-w.rows:
			if row == nil {
				return nil, ErrInstanceNotFound // purged
			}
		case <-ctx.Done():
			// Commits that did not meet cond were not handed over: the caller
			// gets the latest row with its deadline.
			read()
			if err != nil {
				return nil, err
			}
			return row, ctx.Err()
		}
	}
}

// committedStatus is the status of the instance's last commit, if the instance
// is in memory and has committed since it was loaded.
func (h *Host) committedStatus(id string) (storage.Status, bool) {
	h.mu.Lock()
	a := h.actors[id]
	h.mu.Unlock()
	if a == nil {
		return 0, false
	}
	s := a.committed.Load()
	return storage.Status(s - 1), s > 0
}

// History returns an instance's history (its current generation), decoded.
func (h *Host) History(id string) ([]workflow.Event, error) {
	part := h.Partition(id)
	evs, err := decodeEvents(func(fn func(uint64, []byte) error) error { return h.db.History(part, id, fn) })
	if err == nil {
		err = h.db.SyncVisible()
	}
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	return evs, nil
}

// decodeEvents collects the events a storage scan yields.
func decodeEvents(scan func(func(uint64, []byte) error) error) ([]workflow.Event, error) {
	var evs []workflow.Event
	err := scan(func(_ uint64, b []byte) error {
		ev, err := workflow.DecodeEvent(b)
		if err != nil {
			return err
		}
		evs = append(evs, ev)
		return nil
	})
	return evs, err
}

// levelFloor drops records below a level: protoactor logs every actor start at INFO.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (l levelFloor) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl >= l.min && l.Handler.Enabled(ctx, lvl)
}

// Request timers are reused: a timer per request was a tenth of the bytes a
// timer fire allocates. Since Go 1.23 a stopped or fired timer's channel holds
// no stale value after Reset, so a pooled timer is as good as a new one.
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

func getTimer(d time.Duration) *time.Timer {
	t := timers.Get().(*time.Timer)
	t.Reset(d)
	return t
}

func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}

// sleepCtx waits d, or less if ctx ends first (its error is returned then).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// GetTaskExecutionID is r's TaskExecutionID, "" for a nil r.
func (r *RemoteCall) GetTaskExecutionID() string {
	if r == nil {
		return ""
	}
	return r.TaskExecutionID
}

// GetTraceParent is r's TraceParent, "" for a nil r.
func (r *RemoteCall) GetTraceParent() string {
	if r == nil {
		return ""
	}
	return r.TraceParent
}

// GetTraceState is r's TraceState, "" for a nil r.
func (r *RemoteCall) GetTraceState() string {
	if r == nil {
		return ""
	}
	return r.TraceState
}
