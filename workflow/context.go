package workflow

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Context is what workflow code uses to do anything durable. Its methods must be
// called from the workflow function's own goroutine.
type Context struct {
	e *Executor
}

// InstanceID returns the id of the running instance.
func (c *Context) InstanceID() string { return c.e.instanceID }

// Name returns the workflow's registered name.
func (c *Context) Name() string { return c.e.name }

// Now returns the time of the history event being processed: the same value on
// every replay. Use it instead of time.Now.
func (c *Context) Now() time.Time { c.e.check(); return c.e.now }

// IsReplaying reports whether the code is re-running recorded history (after a
// restart or a passivation) rather than making progress for the first time.
func (c *Context) IsReplaying() bool { return c.e.replaying }

// Logger returns a logger that is silent while the workflow replays, so each line is
// written once however often the code re-runs.
func (c *Context) Logger() *slog.Logger {
	e := c.e
	if e.logger == nil {
		// Built on first use: most workflows never log, and the handler chain
		// cost every activation of every instance a few allocations. The
		// workflow's goroutine and the executor never run at once, so no lock.
		e.logger = slog.New(replayAwareHandler{e.opts.Logger.Handler(), e}).With("instance", e.instanceID, "workflow", e.name)
	}
	return e.logger
}

// NewUUID returns a UUID (version 5 layout) derived from the instance, its
// generation and a counter: different on every call, identical on every replay.
func (c *Context) NewUUID() string {
	e := c.e
	e.check()
	e.uuidSeq++
	h := sha1.New()
	h.Write([]byte(e.instanceID))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(e.startedAt.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], e.uuidSeq)
	h.Write(b[:])
	sum := h.Sum(nil)[:16]
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	s := hex.EncodeToString(sum)
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// SetCustomStatus publishes v (encoded as JSON) as the instance's custom status,
// visible to status queries while the workflow runs.
func (c *Context) SetCustomStatus(v any) error {
	c.e.check()
	b, err := encodePayload(v)
	if err != nil {
		return fmt.Errorf("set custom status: %w", err)
	}
	c.e.customStatus, c.e.customStatusSet = b, true
	return nil
}

// CallActivity schedules activity name with input (encoded as JSON; []byte and
// json.RawMessage are passed as they are) and returns its task.
func (c *Context) CallActivity(name string, input any, opts ...CallOption) *Task {
	e := c.e
	e.check()
	o := applyCallOptions(opts)
	data, err := encodePayload(input)
	if err != nil {
		return failedTask(c, taskActivity, name, NonRetriable(fmt.Errorf("activity %s: encode input: %w", name, err)))
	}
	t := e.newTask(taskActivity, name)
	e.emit(Event{Kind: ActivityScheduled, TaskID: t.id, Name: name, Data: data, Retry: o.retry})
	if o.retry != nil {
		if e.retry == nil {
			e.retry = map[int64]*RetryPolicy{}
		}
		e.retry[t.id] = o.retry
	}
	return t
}

// CallChildWorkflow starts workflow name as a child instance and returns a task
// that completes with the child's output. With a retry policy, a failed child is
// started again under the same instance id after the policy's backoff (a durable
// timer in the parent's history).
func (c *Context) CallChildWorkflow(name string, input any, opts ...CallOption) *Task {
	e := c.e
	e.check()
	o := applyCallOptions(opts)
	data, err := encodePayload(input)
	if err != nil {
		return failedTask(c, taskChild, name, NonRetriable(fmt.Errorf("child workflow %s: encode input: %w", name, err)))
	}
	id := o.instanceID
	if id == "" {
		id = childInstanceID(e.instanceID, e.seq)
	}
	if o.retry == nil {
		return e.scheduleChild(name, id, data, nil)
	}
	outer := &Task{ctx: c, kind: taskChild, name: name, id: e.seq}
	first := e.now
	var attempt func(n int)
	attempt = func(n int) {
		t := e.scheduleChild(name, id, data, o.retry)
		t.onDone(func() {
			if t.err == nil {
				outer.complete(t.result, nil)
				return
			}
			var f *Failure
			if tf, ok := t.err.(*TaskFailedError); ok {
				f = &tf.Failure
			}
			delay, ok := o.retry.NextDelay(n, first, e.now, f)
			if !ok {
				outer.complete(nil, t.err)
				return
			}
			timer := e.createTimer(e.now.Add(delay), "retry:"+name)
			timer.onDone(func() {
				if timer.err == nil {
					attempt(n + 1)
				}
			})
		})
	}
	attempt(1)
	return outer
}

// CreateTimer returns a task that completes after d (a durable timer: it survives
// restarts and fires after downtime).
func (c *Context) CreateTimer(d time.Duration) *Task {
	c.e.check()
	return c.e.createTimer(c.e.now.Add(d), "")
}

// CreateTimerUntil returns a task that completes at t.
func (c *Context) CreateTimerUntil(t time.Time) *Task {
	c.e.check()
	return c.e.createTimer(t, "")
}

// WaitForExternalEvent returns a task that completes with the data of the next
// event called name (names are case-insensitive). Events raised before anyone waits
// are buffered and consumed in the order they arrived; several waits for one name
// are served first come, first served. With timeout > 0 the task fails with
// ErrTimeout if no event came in time (the event is then kept for the next wait);
// timeout ≤ 0 waits forever.
func (c *Context) WaitForExternalEvent(name string, timeout time.Duration) *Task {
	e := c.e
	e.check()
	key := keyOf(name)
	t := &Task{ctx: c, kind: taskEvent, name: name, id: -1, eventKey: key, since: e.now}
	q := e.queue(key)
	if len(q.buffered) > 0 {
		ev := q.buffered[0]
		q.buffered = q.buffered[1:]
		t.complete(ev.Data, nil)
		return t
	}
	q.waiters = append(q.waiters, t)
	if timeout > 0 {
		t.timeout = e.createTimer(e.now.Add(timeout), eventWaitPrefix+name)
		timer := t.timeout
		timer.onDone(func() {
			if timer.err == nil && !t.done {
				e.removeWaiter(t)
				t.complete(nil, ErrTimeout)
			}
		})
	}
	return t
}

// SendEvent raises event name with data on another instance (fire and forget,
// recorded in history so it is sent exactly once per recorded call).
func (c *Context) SendEvent(instanceID, name string, data any) error {
	e := c.e
	e.check()
	b, err := encodePayload(data)
	if err != nil {
		return fmt.Errorf("send event %s to %s: encode data: %w", name, instanceID, err)
	}
	id := e.seq
	e.seq++
	e.emit(Event{Kind: EventSent, TaskID: id, Instance: instanceID, Name: name, Data: b})
	return nil
}

// ContinueAsNew restarts the workflow with input once the function returns (with a
// nil error): history is cleared, so an eternal monitor's history stays small. With
// keepUnprocessedEvents, events that arrived and were not consumed are handed to the
// new generation; events that arrive after this call are always handed over.
func (c *Context) ContinueAsNew(input any, keepUnprocessedEvents bool) {
	e := c.e
	e.check()
	b, err := encodePayload(input)
	if err != nil {
		panic(fmt.Errorf("continue as new: encode input: %w", err))
	}
	e.continueAsNew = &continueAsNew{input: b, keepEvents: keepUnprocessedEvents}
}

func applyCallOptions(opts []CallOption) callOptions {
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// encodePayload turns a Go value into the JSON bytes stored in history.
func encodePayload(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return x, nil
	case json.RawMessage:
		return x, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// ChildInstanceID is the id a child workflow gets when its parent names none:
// derived from the parent's id and the call's task id, within the 64 characters
// an instance id may have.
func ChildInstanceID(parent string, seq int64) string { return childInstanceID(parent, seq) }

func childInstanceID(parent string, seq int64) string {
	suffix := "-" + strconv.FormatInt(seq, 10)
	if len(parent)+len(suffix) <= 64 {
		return parent + suffix
	}
	sum := sha1.Sum([]byte(parent))
	return parent[:64-len(suffix)-17] + "-" + hex.EncodeToString(sum[:])[:16] + suffix
}

// replayAwareHandler drops log records while the workflow replays.
type replayAwareHandler struct {
	slog.Handler
	e *Executor
}

func (h replayAwareHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.e.replaying && h.Handler.Enabled(ctx, l)
}

func (h replayAwareHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return replayAwareHandler{h.Handler.WithAttrs(attrs), h.e}
}

func (h replayAwareHandler) WithGroup(name string) slog.Handler {
	return replayAwareHandler{h.Handler.WithGroup(name), h.e}
}

func keyOf(eventName string) string { return strings.ToLower(eventName) }
