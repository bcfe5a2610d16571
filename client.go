package weft

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/cluster"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// Errors the client methods return; branch on them with errors.Is.
var (
	ErrInstanceNotFound      = actors.ErrInstanceNotFound
	ErrInstanceExists        = actors.ErrInstanceExists
	ErrNotFinished           = actors.ErrNotFinished
	ErrNotRunning            = actors.ErrNotRunning
	ErrClosed                = actors.ErrClosed
	ErrInvalidInstanceID     = errors.New("invalid instance id")
	ErrWorkflowNotRegistered = workflow.ErrNotRegistered
	ErrInvalidInput          = workflow.ErrInvalidInput
	ErrEventNameMissing      = errors.New("event name is empty")
	ErrNotStarted            = errors.New("runtime not started: call Start first")
	// ErrUnavailable: the instance's partition is held by a cluster node that is
	// down (or moving for longer than the wait); errors.As with
	// *cluster.UnavailableError says which node and when to retry.
	ErrUnavailable = cluster.ErrUnavailable
)

// MaxInstanceIDLength is the longest instance id accepted.
const MaxInstanceIDLength = storage.MaxInstanceIDLen

// RuntimeStatus is an instance's lifecycle state, named as Dapr names it.
type RuntimeStatus string

const (
	StatusPending    RuntimeStatus = "PENDING"
	StatusRunning    RuntimeStatus = "RUNNING"
	StatusCompleted  RuntimeStatus = "COMPLETED"
	StatusFailed     RuntimeStatus = "FAILED"
	StatusTerminated RuntimeStatus = "TERMINATED"
	StatusSuspended  RuntimeStatus = "SUSPENDED"
	// StatusStalled: the instance's history needs code (a workflow version, a
	// patch) that the node running it lacks. It holds its inputs and continues
	// by itself once code that has it is deployed; InstanceStatus.Stall says why.
	StatusStalled RuntimeStatus = "STALLED"
)

// Finished reports whether an instance in this status will not run again.
func (s RuntimeStatus) Finished() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusTerminated
}

// InstanceStatus is what a status query returns. Payloads are the JSON bytes as
// they were given or produced.
type InstanceStatus struct {
	ID               string
	Name             string
	Status           RuntimeStatus
	CreatedAt        time.Time
	LastUpdatedAt    time.Time
	ScheduledStartAt time.Time
	CompletedAt      time.Time
	Input            json.RawMessage
	Output           json.RawMessage
	CustomStatus     json.RawMessage
	Failure          *workflow.Failure
	ParentID         string
	Generation       uint32 // how many times the instance continued as new
	// Version is the named version of the workflow's code the instance runs
	// ("": the code registered without a version).
	Version string
	// Stall says why a STALLED instance waits (also kept while it is
	// suspended); nil otherwise.
	Stall *workflow.Stall
	// TraceParent and TraceState are the W3C trace context the instance was
	// started in ("" for none).
	TraceParent, TraceState string
	// App is the app whose remote workers run the instance's code ("": any).
	App string
}

// ScheduleOption configures Schedule.
type ScheduleOption func(*scheduleOptions)

type scheduleOptions struct {
	id      string
	startAt time.Time
	reuse   actors.ReusePolicy
	version string
	trace   [2]string // traceparent, tracestate
	app     string
	notify  string // the instance told when this one finishes
}

// WithInstanceID sets the instance id (default: a random UUID). Ids are 1 to 64
// characters of [A-Za-z0-9_.:-].
func WithInstanceID(id string) ScheduleOption { return func(o *scheduleOptions) { o.id = id } }

// WithStartTime delays the start: the instance is PENDING until t.
func WithStartTime(t time.Time) ScheduleOption { return func(o *scheduleOptions) { o.startAt = t } }

// ReusePolicy says what scheduling an id that is already taken does.
type ReusePolicy = actors.ReusePolicy

// Retention is how long finished instances are kept, by final status (see
// Options.Retention).
type Retention = actors.Retention

// ParseRetention reads a retention policy: comma-separated status=duration
// pairs (completed, failed, terminated, any), e.g. "completed=720h,any=2160h";
// "" or "off" keeps everything.
func ParseRetention(s string) (Retention, error) { return actors.ParseRetention(s) }

const (
	// ReuseError refuses with ErrInstanceExists (the default).
	ReuseError = actors.ReuseError
	// ReuseIgnore keeps the existing instance and returns its id without error.
	ReuseIgnore = actors.ReuseIgnore
	// ReuseTerminate terminates the existing instance if it runs and replaces it.
	ReuseTerminate = actors.ReuseTerminate
)

// WithReusePolicy sets what happens when the instance id is already taken.
func WithReusePolicy(p ReusePolicy) ScheduleOption { return func(o *scheduleOptions) { o.reuse = p } }

// WithTraceContext starts the instance in a W3C trace context (a traceparent
// header's value, and tracestate's or ""): it is kept with the instance, its
// children inherit it, and workers running its code get it. A malformed
// traceparent is ignored, as the W3C recommendation says.
func WithTraceContext(traceparent, tracestate string) ScheduleOption {
	return func(o *scheduleOptions) {
		if ValidTraceParent(traceparent) {
			o.trace = [2]string{traceparent, tracestate}
		}
	}
}

// ValidTraceParent reports whether s is a W3C traceparent of version 00:
// "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", ids not all zero.
func ValidTraceParent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] != "00" {
		return false
	}
	hex := func(part string) bool {
		zero := true
		for _, c := range part {
			switch {
			case c == '0':
			case c >= '1' && c <= '9', c >= 'a' && c <= 'f':
				zero = false
			default:
				return false
			}
		}
		return !zero
	}
	flags := s[53:]
	return hex(s[3:35]) && hex(s[36:52]) && (flags == "00" || hex(flags))
}

// WithApp names the app whose remote workers run the instance's code (a
// worker names its app when it connects): Dapr's multi-app workflows. Without
// it any connected worker may.
func WithApp(app string) ScheduleOption { return func(o *scheduleOptions) { o.app = app } }

// WithVersion starts the instance on a named version of its workflow instead
// of the default (see workflow.RegisterWorkflow).
func WithVersion(version string) ScheduleOption {
	return func(o *scheduleOptions) { o.version = version }
}

// Schedule starts workflow name with input (JSON-encoded; []byte and
// json.RawMessage are taken as JSON as they are) and returns the instance id once
// the start is durable.
func (r *Runtime) Schedule(ctx context.Context, name string, input any, opts ...ScheduleOption) (string, error) {
	var o scheduleOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.id == "" {
		o.id = newInstanceID()
	}
	if err := ValidateInstanceID(o.id); err != nil {
		return "", err
	}
	data, err := encodeJSON(input)
	if err != nil {
		return "", fmt.Errorf("schedule %s: encode input: %w: %w", name, err, ErrInvalidInput)
	}
	if err := r.validateWorkflowInput(name, o.version, data); err != nil {
		return "", fmt.Errorf("schedule: %w", err)
	}
	if err := r.ready(); err != nil {
		return "", err
	}
	err = r.host.Request(ctx, o.id, actors.StartRequest{Name: name, Version: o.version, Input: data, StartAt: o.startAt, Reuse: o.reuse,
		TraceParent: o.trace[0], TraceState: o.trace[1], App: o.app, Notify: o.notify})
	if err != nil {
		return "", err
	}
	return o.id, nil
}

// validateWorkflowInput checks input against the workflow's type. A workflow not
// registered here is accepted when remote workers may run it; its name cannot be
// empty.
func (r *Runtime) validateWorkflowInput(name, version string, data []byte) error {
	if r.opts.RemoteWorkers && !r.reg.HasWorkflow(name) {
		if strings.TrimSpace(name) == "" {
			return fmt.Errorf("workflow name is empty: %w", ErrWorkflowNotRegistered)
		}
		return nil
	}
	return r.reg.ValidateWorkflowVersionInput(name, version, data)
}

// Status returns an instance's committed status.
func (r *Runtime) Status(ctx context.Context, id string) (*InstanceStatus, error) {
	if err := ValidateInstanceID(id); err != nil {
		return nil, err
	}
	if r.node != nil {
		row, err := r.node.ReadInstance(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", id, err)
		}
		return statusOf(row), nil
	}
	row, err := r.db.Instance(r.host.Partition(id), id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("status of %s: %w", id, ErrInstanceNotFound)
	}
	if err == nil {
		err = r.db.SyncVisible() // never report a step a crash could still undo
	}
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", id, err)
	}
	return statusOf(row), nil
}

// WaitForStart blocks until the instance has started (is no longer PENDING) or ctx
// ends.
func (r *Runtime) WaitForStart(ctx context.Context, id string) (*InstanceStatus, error) {
	if r.node != nil {
		return r.waitRemote(ctx, id, true)
	}
	return r.waitFor(ctx, id, func(row *storage.InstanceRecord) bool { return row.Status != storage.Pending })
}

// WaitForCompletion blocks until the instance has finished (COMPLETED, FAILED or
// TERMINATED) or ctx ends. It is woken by the commit that finishes the instance,
// not by polling.
func (r *Runtime) WaitForCompletion(ctx context.Context, id string) (*InstanceStatus, error) {
	if r.node != nil {
		return r.waitRemote(ctx, id, false)
	}
	return r.waitFor(ctx, id, func(row *storage.InstanceRecord) bool {
		return row.Status == storage.Completed || row.Status == storage.Failed || row.Status == storage.Terminated
	})
}

// waitRemote waits on the node that serves the instance.
func (r *Runtime) waitRemote(ctx context.Context, id string, forStart bool) (*InstanceStatus, error) {
	if err := ValidateInstanceID(id); err != nil {
		return nil, err
	}
	row, err := r.node.WaitFor(ctx, id, forStart)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			if st, serr := r.Status(context.Background(), id); serr == nil {
				return st, err // the caller's deadline: with the latest status, as locally
			}
		}
		return nil, fmt.Errorf("wait for %s: %w", id, err)
	}
	return statusOf(row), nil
}

func (r *Runtime) waitFor(ctx context.Context, id string, cond func(*storage.InstanceRecord) bool) (*InstanceStatus, error) {
	if err := ValidateInstanceID(id); err != nil {
		return nil, err
	}
	row, err := r.host.WaitFor(ctx, id, cond)
	if err != nil {
		if row != nil {
			return statusOf(row), err
		}
		return nil, fmt.Errorf("wait for %s: %w", id, err)
	}
	return statusOf(row), nil
}

// RaiseEvent delivers event name with data (JSON-encoded) to an instance. It
// returns once the event is durable. Events for a finished instance are dropped.
//
// An error may leave the caller not knowing whether the event was applied
// (a timeout, a node lost mid-request): sent again with the same
// WithIdempotencyKey, it is applied once.
func (r *Runtime) RaiseEvent(ctx context.Context, id, name string, data any, opts ...RaiseOption) error {
	if err := ValidateInstanceID(id); err != nil {
		return err
	}
	if name == "" {
		return ErrEventNameMissing
	}
	var o raiseOptions
	for _, opt := range opts {
		opt(&o)
	}
	msg := actors.RaiseEventRequest{Name: name}
	if o.keySet {
		if err := ValidateIdempotencyKey(o.key); err != nil {
			return err
		}
		msg.RequestID = idempotencyKeyPrefix + o.key
	}
	b, err := encodeJSON(data)
	if err != nil {
		return fmt.Errorf("raise event %s: encode data: %w: %w", name, err, ErrInvalidInput)
	}
	msg.Data = b
	if err := r.ready(); err != nil {
		return err
	}
	return r.host.Request(ctx, id, msg)
}

// RaiseOption configures RaiseEvent.
type RaiseOption func(*raiseOptions)

type raiseOptions struct {
	key    string
	keySet bool
}

// WithIdempotencyKey names an event so that sending it again is harmless: an
// instance that applied an event with this key in the last 10 minutes
// answers another one with the same key as done and does not apply it,
// whatever its data. Keys are 1 to 64 characters of [A-Za-z0-9_.:-] (a UUID
// will do) and are per instance.
func WithIdempotencyKey(key string) RaiseOption {
	return func(o *raiseOptions) { o.key, o.keySet = key, true }
}

// idempotencyKeyPrefix keeps the keys clients choose apart from the request
// ids a cluster gives the events it may send twice.
const idempotencyKeyPrefix = "k:"

// ValidateIdempotencyKey reports whether key may be given to
// WithIdempotencyKey; the error wraps ErrInvalidInput.
func ValidateIdempotencyKey(key string) error {
	if err := storage.ValidateRequestID(key); err != nil || len(key) > MaxIdempotencyKeyLen {
		return fmt.Errorf("idempotency key %q must be 1 to %d characters of [A-Za-z0-9_.:-]: %w", key, MaxIdempotencyKeyLen, ErrInvalidInput)
	}
	return nil
}

// MaxIdempotencyKeyLen is the longest idempotency key.
const MaxIdempotencyKeyLen = 64

// TerminateOptions configure Terminate.
type TerminateOptions struct {
	Reason    any  // recorded as the instance's output
	Recursive bool // also terminate the child workflows it is waiting for
}

// Terminate ends an instance at once. A finished instance stays as it finished.
func (r *Runtime) Terminate(ctx context.Context, id string, opts TerminateOptions) error {
	if err := ValidateInstanceID(id); err != nil {
		return err
	}
	reason, err := encodeJSON(opts.Reason)
	if err != nil {
		return fmt.Errorf("terminate %s: encode reason: %w: %w", id, err, ErrInvalidInput)
	}
	if err := r.ready(); err != nil {
		return err
	}
	return r.host.Request(ctx, id, actors.TerminateRequest{Reason: reason, Recursive: opts.Recursive})
}

// Suspend pauses a running instance: events and completions that arrive meanwhile
// are kept and applied on Resume.
func (r *Runtime) Suspend(ctx context.Context, id, reason string) error {
	if err := ValidateInstanceID(id); err != nil {
		return err
	}
	if err := r.ready(); err != nil {
		return err
	}
	return r.host.Request(ctx, id, actors.SuspendRequest{Reason: reason})
}

// Resume continues a suspended instance.
func (r *Runtime) Resume(ctx context.Context, id, reason string) error {
	if err := ValidateInstanceID(id); err != nil {
		return err
	}
	if err := r.ready(); err != nil {
		return err
	}
	return r.host.Request(ctx, id, actors.ResumeRequest{Reason: reason})
}

// PurgeOptions configure Purge.
type PurgeOptions struct {
	Recursive bool // also purge the instance's child workflows
	// Force purges an instance that has not finished too (running, stalled,
	// suspended, pending): its work in flight is dropped, and a parent
	// waiting on it never hears from it. Use it for instances you know are
	// abandoned.
	Force bool
}

// Purge deletes a finished instance and everything stored about it. An
// instance that has not finished is refused with ErrNotFinished, unless
// opts.Force.
func (r *Runtime) Purge(ctx context.Context, id string, opts PurgeOptions) error {
	if err := ValidateInstanceID(id); err != nil {
		return err
	}
	if err := r.ready(); err != nil {
		return err
	}
	return r.host.Request(ctx, id, actors.PurgeRequest{Recursive: opts.Recursive, Force: opts.Force})
}

// PurgeFinished purges every instance that finished (completed, failed or was
// terminated) before the given time, as `weft purge --all-older-than 720h`
// and Dapr's CLI do, and returns how many it purged. Children go with their
// parents with opts.Recursive; opts.Force is ignored (only finished
// instances are chosen).
func (r *Runtime) PurgeFinished(ctx context.Context, before time.Time, opts PurgeOptions) (int, error) {
	q := ListQuery{Statuses: []RuntimeStatus{StatusCompleted, StatusFailed, StatusTerminated}, CreatedTo: before, PageSize: 1000}
	purged := 0
	for {
		page, err := r.List(ctx, q)
		if err != nil {
			return purged, fmt.Errorf("purge finished before %s: %w", before.Format(time.RFC3339), err)
		}
		for _, in := range page.Instances {
			st, err := r.Status(ctx, in.ID)
			if errors.Is(err, ErrInstanceNotFound) {
				continue // purged meanwhile (a parent took it, or retention)
			}
			if err != nil {
				return purged, err
			}
			if !st.Status.Finished() || !st.CompletedAt.Before(before) {
				continue
			}
			err = r.Purge(ctx, in.ID, PurgeOptions{Recursive: opts.Recursive})
			switch {
			case err == nil:
				purged++
			case !errors.Is(err, ErrInstanceNotFound):
				return purged, err
			}
		}
		if page.NextPageToken == "" {
			return purged, nil
		}
		q.PageToken = page.NextPageToken
	}
}

// ListQuery filters List. Zero values mean "any".
type ListQuery struct {
	Statuses    []RuntimeStatus
	Name        string
	CreatedFrom time.Time // inclusive
	CreatedTo   time.Time // exclusive
	PageSize    int       // default 100, at most 1000
	PageToken   string    // NextPageToken of the previous page
}

// InstanceSummary is one row of a listing.
type InstanceSummary struct {
	ID        string
	Name      string
	Status    RuntimeStatus
	CreatedAt time.Time
}

// ListPage is one page of a listing, in creation order.
type ListPage struct {
	Instances     []InstanceSummary
	NextPageToken string // empty on the last page
}

// List returns instances matching q, oldest first.
func (r *Runtime) List(ctx context.Context, q ListQuery) (*ListPage, error) {
	sq := storage.ListQuery{Name: q.Name, CreatedFrom: q.CreatedFrom, CreatedTo: q.CreatedTo, Limit: q.PageSize, PageToken: q.PageToken}
	for _, s := range q.Statuses {
		st, err := storage.ParseStatus(string(s))
		if err != nil {
			return nil, fmt.Errorf("list: unknown status %q (one of PENDING, RUNNING, STALLED, SUSPENDED, COMPLETED, FAILED, TERMINATED): %w", s, ErrInvalidInput)
		}
		sq.Statuses = append(sq.Statuses, st)
	}
	var page storage.ListPage
	var err error
	if r.node != nil {
		var missing []string
		page, missing, err = r.node.List(ctx, sq)
		if len(missing) > 0 {
			r.log.Warn("listing without the instances of nodes that are down", "nodes", missing)
		}
	} else {
		page, err = r.db.ListInstances(sq)
		if err == nil {
			err = r.db.SyncVisible()
		}
	}
	if errors.Is(err, storage.ErrMalformedPageToken) {
		return nil, fmt.Errorf("list: %w: %w", err, ErrInvalidInput)
	}
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	out := &ListPage{NextPageToken: page.NextPageToken, Instances: make([]InstanceSummary, len(page.Instances))}
	for i, in := range page.Instances {
		out.Instances[i] = InstanceSummary{ID: in.ID, Name: in.Name, Status: RuntimeStatus(in.Status.String()), CreatedAt: in.CreatedAt}
	}
	return out, nil
}

// CountByStatus counts the stored instances of every status. It reads the whole
// listing index: O(instances).
func (r *Runtime) CountByStatus(ctx context.Context) (map[RuntimeStatus]int, error) {
	var counts map[storage.Status]int
	var err error
	if r.node != nil {
		var missing []string
		counts, missing, err = r.node.Counts(ctx)
		if len(missing) > 0 {
			r.log.Warn("counting without the instances of nodes that are down", "nodes", missing)
		}
	} else {
		counts, err = r.db.CountByStatus()
		if err == nil {
			err = r.db.SyncVisible()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("count instances: %w", err)
	}
	out := make(map[RuntimeStatus]int, len(counts))
	for st, n := range counts {
		out[RuntimeStatus(st.String())] = n
	}
	return out, nil
}

// History returns the instance's history (its current generation), oldest first.
func (r *Runtime) History(ctx context.Context, id string) ([]workflow.Event, error) {
	if err := ValidateInstanceID(id); err != nil {
		return nil, err
	}
	if r.node != nil {
		return r.node.History(ctx, id)
	}
	part := r.host.Partition(id)
	if _, err := r.db.Instance(part, id); errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("history of %s: %w", id, ErrInstanceNotFound)
	}
	return r.host.History(id)
}

// Waits returns what the instance waits on now, in the order the waits
// began: calls without an outcome, with the attempt a retried activity is on,
// timers, children and event waits with a timeout, as its history shows them
// (workflow.OutstandingWaits); and, for a workflow whose code runs here, its
// waits for events without a timeout, found by replaying that history
// (workflow.EventWaits): history has no record of them. A remote worker's
// workflow does not tell weft of those. A finished instance waits on nothing.
func (r *Runtime) Waits(ctx context.Context, id string) ([]workflow.Wait, error) {
	evs, err := r.History(ctx, id)
	if err != nil {
		return nil, err
	}
	waits := workflow.OutstandingWaits(evs)
	if events := workflow.EventWaits(r.reg, id, evs); len(events) > 0 {
		waits = append(waits, events...)
		slices.SortStableFunc(waits, func(a, b workflow.Wait) int { return a.Since.Compare(b.Since) })
	}
	return waits, nil
}

// ValidateInstanceID reports whether id can name an instance: 1 to 64 characters
// of [A-Za-z0-9_.:-]. The error wraps ErrInvalidInstanceID.
func ValidateInstanceID(id string) error {
	if err := storage.ValidateInstanceID(id); err != nil {
		if len(id) > MaxInstanceIDLength {
			return fmt.Errorf("instance id is %d characters, longer than the %d allowed: %w", len(id), MaxInstanceIDLength, ErrInvalidInstanceID)
		}
		if id == "" {
			return fmt.Errorf("instance id is empty: %w", ErrInvalidInstanceID)
		}
		return fmt.Errorf("instance id %q may only contain letters, digits, '-', '_', '.' and ':': %w", id, ErrInvalidInstanceID)
	}
	return nil
}

func (r *Runtime) ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return ErrClosed
	case !r.started:
		return ErrNotStarted
	}
	return nil
}

func statusOf(row *storage.InstanceRecord) *InstanceStatus {
	st := &InstanceStatus{
		ID: row.ID, Name: row.Name, Status: RuntimeStatus(row.Status.String()),
		CreatedAt: row.CreatedAt, LastUpdatedAt: row.UpdatedAt, ScheduledStartAt: row.ScheduledStartAt, CompletedAt: row.CompletedAt,
		Input: row.Input, Output: row.Output, CustomStatus: row.CustomStatus, ParentID: row.ParentID, Generation: row.Generation,
	}
	if row.Failure != nil {
		st.Failure = &workflow.Failure{Type: row.Failure.Type, Message: row.Failure.Message, Stack: row.Failure.Stack}
	}
	st.Version = row.Version
	st.TraceParent, st.TraceState, st.App = row.TraceParent, row.TraceState, row.App
	if row.StallReason != "" {
		st.Stall = &workflow.Stall{Reason: workflow.StallReason(row.StallReason), Description: row.StallDescription}
	}
	return st
}

func encodeJSON(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		if len(x) > 0 && !json.Valid(x) {
			return nil, errors.New("not valid JSON")
		}
		return x, nil
	case json.RawMessage:
		if len(x) > 0 && !json.Valid(x) {
			return nil, errors.New("not valid JSON")
		}
		return x, nil
	}
	return json.Marshal(v)
}

// newInstanceID returns a random UUID (version 4).
func newInstanceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
