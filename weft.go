package weft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/cluster"
	"github.com/weftrt/weft/reminders"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// Options configure a Runtime. Only Dir is required.
type Options struct {
	// Dir holds the data (a pebble database). It is created if missing.
	Dir string
	// Partitions splits the key space; fixed when Dir is first created (default 256).
	Partitions int
	// CacheSize is pebble's block cache in bytes (default 128 MiB). Activating an
	// instance (a timer firing, an event arriving) reads its row; a cache smaller
	// than the working set turns those reads into file reads (at 1M pending
	// timers, 128 MiB fired ~12,900/s where 64 MiB fired ~10,500/s). It fills as
	// instances are read, not before.
	CacheSize int64
	// MemTableSize is the size of pebble's memtable in bytes (default 32 MiB):
	// larger ones flush less often into fewer, larger level-0 tables, which
	// every read that misses the memtable consults.
	MemTableSize int64
	// GroupCommitWindow: while several instances commit steps at once, the
	// write-ahead log waits this long after each fsync so that more commits
	// share the next one (default 300 µs; negative: never wait). A step
	// committed alone never waits.
	GroupCommitWindow time.Duration
	// Logger receives weft's structured logs (default slog.Default()).
	Logger *slog.Logger
	// IdleTimeout passivates an instance idle this long (default 2 minutes).
	IdleTimeout time.Duration
	// MaxActiveInstances caps instances held in memory (default 10,000).
	MaxActiveInstances int
	// SleepPassivation: an instance whose only wait is a timer (or retry, or
	// scheduled start) due at least this far ahead leaves memory at once, and
	// its timer brings it back (default 2 s; negative: only IdleTimeout and
	// MaxActiveInstances passivate). Finished instances always leave at once.
	// A million sleeping instances then cost disk, not memory.
	SleepPassivation time.Duration
	// ActivityConcurrency caps activity attempts running at once (default 256);
	// further ones queue.
	ActivityConcurrency int
	// DeadlockTimeout is how long workflow code may run without yielding to weft
	// (default 2 s). A step that overruns it is retried on a fresh replay after
	// StallRetryDelay (default 5 s), 2×, 3× that; the instance fails with a
	// DeadlockError only if the step overruns it 4 times in a row, since a real
	// deadlock recurs on every replay while an overloaded machine recovers.
	DeadlockTimeout time.Duration
	StallRetryDelay time.Duration
	// ReminderWindow is how far ahead due reminders are held in memory (default 30 s),
	// and MaxRemindersInMemory caps them (default 100,000).
	ReminderWindow       time.Duration
	MaxRemindersInMemory int
	// Retention purges finished instances once they are this old, by final
	// status (zero: kept for ever, the default); children go with their
	// parents. ParseRetention reads the --retention flag's form, e.g.
	// "completed=720h,any=2160h". It applies to instances that finish while
	// it is set.
	Retention Retention
	// RemoteWorkers lets workflows and activities that are not registered in this
	// process run on workers connected over the durabletask protocol (Dapr's
	// workflow SDKs, in any language; see api/durabletask). Their work waits until
	// a worker connects. Off (the default), scheduling an unregistered workflow
	// fails with ErrWorkflowNotRegistered.
	RemoteWorkers bool
	// MaxItemsPerWorker bounds the work items (activity attempts, workflow
	// steps) one connected worker holds unanswered at once; more wait for it
	// or go to other workers (default 1,024). A worker of whole histories
	// holds an instance's history with each step it runs: lower it to cap
	// that worker's memory.
	MaxItemsPerWorker int
	// ActivityLimits caps the attempts of each named activity that run at
	// once across the whole cluster, e.g. {"ProcessWorkItem": 20} (`weft
	// serve --activity-limit ProcessWorkItem=20`), on top of each node's
	// ActivityConcurrency. Attempts beyond the limit wait, durably, first
	// come first served (package limits). Give every node the same limits.
	ActivityLimits map[string]int
	// WorkflowLimits caps the instances of each named workflow that run at
	// once across the cluster (`weft serve --workflow-limit Report=2`): an
	// instance beyond the limit stays PENDING until one finishes, then
	// starts, in turn. Give every node the same limits.
	WorkflowLimits map[string]int
	// TraceExporter, when set, receives OpenTelemetry spans: one for each
	// generation of a workflow (start to finish), each activity attempt, each
	// timer and wait for an event, child workflows under their parents, all
	// in the W3C trace context the instance was started in (WithTraceContext,
	// an HTTP traceparent, an SDK's parentTraceContext). Use an OTLP
	// exporter (go.opentelemetry.io/otel/exporters/otlp/otlptrace), as
	// `weft serve --otlp-endpoint` does. Nil (the default): no spans, at no
	// cost. TraceResource names the service in them (default service.name
	// "weft").
	TraceExporter sdktrace.SpanExporter
	TraceResource *resource.Resource
	// Cluster, when set, makes this runtime one node of a cluster (see package
	// cluster): instances live on the node that holds their partition, any node
	// takes any call, activities run on every live node.
	Cluster *cluster.NodeConfig
}

// Runtime is one embedded weft node.
type Runtime struct {
	opts Options
	db   *storage.DB
	reg  *workflow.Registry
	host *actors.Host
	log  *slog.Logger

	node   *cluster.Node            // nil unless Options.Cluster
	traces *sdktrace.TracerProvider // nil unless Options.TraceExporter

	mu      sync.Mutex
	started bool
	closed  bool
}

// Open opens (or creates) the store in opts.Dir. Register workflows and
// activities, then call Start.
func Open(opts Options) (*Runtime, error) {
	if opts.Dir == "" {
		return nil, errors.New("weft: Options.Dir is required (the directory that holds the data)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 128 << 20
	}
	db, err := storage.Open(storage.Options{Dir: opts.Dir, Partitions: opts.Partitions, Logger: opts.Logger,
		CacheSize: opts.CacheSize, MemTableSize: opts.MemTableSize, GroupCommitWindow: opts.GroupCommitWindow})
	if err != nil {
		return nil, fmt.Errorf("weft: open %s: %w", opts.Dir, err)
	}
	reg := workflow.NewRegistry()
	var tp *sdktrace.TracerProvider
	var tracer trace.Tracer
	if opts.TraceExporter != nil {
		res := opts.TraceResource
		if res == nil {
			res = resource.NewSchemaless(attribute.String("service.name", "weft"))
		}
		tp = actors.NewTracerProvider(opts.TraceExporter, sdktrace.WithResource(res))
		tracer = tp.Tracer("github.com/weftrt/weft")
	}
	host := actors.NewHost(actors.Options{
		DB:                  db,
		Registry:            reg,
		Logger:              opts.Logger,
		IdleTimeout:         opts.IdleTimeout,
		MaxActive:           opts.MaxActiveInstances,
		SleepPassivation:    opts.SleepPassivation,
		ActivityConcurrency: opts.ActivityConcurrency,
		DeadlockTimeout:     opts.DeadlockTimeout,
		StallRetryDelay:     opts.StallRetryDelay,
		Reminders:           reminders.Options{Window: opts.ReminderWindow, MaxInMemory: opts.MaxRemindersInMemory},
		RemoteWorkers:       opts.RemoteWorkers,
		MaxItemsPerWorker:   opts.MaxItemsPerWorker,
		Retention:           opts.Retention,
		Tracer:              tracer,
		ActivityLimits:      opts.ActivityLimits,
		WorkflowLimits:      opts.WorkflowLimits,
	})
	r := &Runtime{opts: opts, db: db, reg: reg, host: host, log: opts.Logger, traces: tp}
	if err := r.registerSchedules(); err != nil {
		db.Close()
		return nil, fmt.Errorf("weft: register schedules: %w", err)
	}
	if err := r.registerLimiters(); err != nil {
		db.Close()
		return nil, fmt.Errorf("weft: register limiters: %w", err)
	}
	return r, nil
}

// Registry returns the runtime's registry of workflows and activities.
func (r *Runtime) Registry() *workflow.Registry { return r.reg }

// RegisterWorkflow registers a workflow function under its Go name or WithName's.
func RegisterWorkflow[I, O any](r *Runtime, fn func(*workflow.Context, I) (O, error), opts ...workflow.RegisterOption) error {
	return workflow.RegisterWorkflow(r.reg, fn, opts...)
}

// RegisterActivity registers an activity function under its Go name or WithName's.
func RegisterActivity[I, O any](r *Runtime, fn func(context.Context, I) (O, error), opts ...workflow.RegisterOption) error {
	return workflow.RegisterActivity(r.reg, fn, opts...)
}

// Start fires due reminders and resumes every instance that had work in flight
// when the store was last closed or the process died.
func (r *Runtime) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.started {
		return nil
	}
	if r.opts.Cluster != nil {
		node, err := cluster.StartNode(r.host, *r.opts.Cluster)
		if err != nil {
			return fmt.Errorf("weft: join the cluster: %w", err)
		}
		r.node = node
	}
	if err := r.host.Start(ctx); err != nil {
		return fmt.Errorf("weft: start: %w", err)
	}
	r.started = true
	return nil
}

// Close stops the runtime gracefully: commits in progress finish, running
// activities are cancelled (and run again after the next Start), and the store is
// closed. Nothing is left half-written.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	var err error
	if r.node != nil {
		err = r.node.Close()
	}
	if herr := r.host.Close(); err == nil {
		err = herr
	}
	if cerr := r.db.Close(); err == nil {
		err = cerr
	}
	if r.traces != nil { // the spans of the last steps go out before Close returns
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if terr := r.traces.Shutdown(ctx); err == nil && terr != nil {
			err = fmt.Errorf("weft: flush spans: %w", terr)
		}
	}
	return err
}

// Cluster returns the runtime's cluster node, or nil when it runs alone.
func (r *Runtime) Cluster() *cluster.Node { return r.node }

// LeaveCluster leaves the cluster before Close: the node's replicas move to
// the nodes that own its partitions without it (by raft configuration
// changes, leadership first), waiting at most until ctx ends, then it leaves
// the gossip. A stop that is a restart
// calls Cluster().Drain instead. Without a cluster it does nothing.
func (r *Runtime) LeaveCluster(ctx context.Context) error {
	if r.node == nil {
		return nil
	}
	return r.node.Leave(ctx)
}

// Host exposes the actor host, for the server and tests (metrics, counters).
func (r *Runtime) Host() *actors.Host { return r.host }
