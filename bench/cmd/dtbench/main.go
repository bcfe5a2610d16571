// Command dtbench runs one benchmark scenario on github.com/microsoft/durabletask-go
// v0.6.0 (the engine inside Dapr Workflow), in process, with its sqlite backend on a
// file and its orchestration and activity workers at parallelism 16, and prints one
// result line (see internal/harness).
//
//	go run ./cmd/dtbench -scenario chain -n 500 -steps 5
//
// The sqlite file is opened by modernc.org/sqlite with its defaults (rollback
// journal, synchronous=FULL), so each commit is synced.
//
// Completion: the client's WaitForOrchestrationCompletion polls the store with a
// backoff that starts at 100 ms, which would blur small timings. The backend is
// wrapped instead: the wrapper's CompleteOrchestrationWorkItem, after the store
// committed a work item whose state is complete, wakes whoever waits for that
// instance. That is the commit that makes the completion durable, observed
// without a sleep.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/microsoft/durabletask-go/api"
	"github.com/microsoft/durabletask-go/backend"
	"github.com/microsoft/durabletask-go/backend/sqlite"
	"github.com/microsoft/durabletask-go/task"

	"github.com/weftrt/weft/bench/internal/harness"
)

const engine = "durabletask"

var p harness.Params

func main() {
	fs := flag.NewFlagSet("dtbench", flag.ExitOnError)
	harness.RegisterFlags(fs, &p)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: dtbench -scenario NAME [flags]\n\n-opts keys: parallelism (default 16)\n\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	res := harness.NewResult(engine, &p)
	cleanup, err := p.EnsureDir("dtbench-")
	if err != nil {
		res.Fail(err)
		res.Emit("dtbench")
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	stopProfile := p.StartProfile()
	err = run(ctx, res)
	stopProfile()
	cancel()
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (%s): %v", harness.ErrTimeout, p.Timeout, err)
	}
	res.Fail(err)
	cleanup()
	res.Emit("dtbench")
	if res.Error != "" {
		os.Exit(1)
	}
}

func run(ctx context.Context, res *harness.Result) error {
	switch p.Scenario {
	case harness.Chain:
		return chain(ctx, res)
	case harness.FanOut:
		return fanOut(ctx, res)
	case harness.Single:
		return single(ctx, res)
	case harness.Timer1s:
		return timers(ctx, res, func(int) time.Duration { return time.Second })
	case harness.Timers:
		return timers(ctx, res, func(i int) time.Duration {
			return time.Second + time.Duration(i)*4*time.Second/time.Duration(max(p.N, 1))
		})
	case harness.LongChain:
		return longChain(ctx, res)
	}
	return fmt.Errorf("scenario %q is not run on durabletask-go", p.Scenario)
}

// ---- completion notification ----

type completion struct {
	done   chan struct{}
	status string
	output string
	failed string
}

// notifyingBackend wakes waiters when the commit completing an instance returned.
type notifyingBackend struct {
	backend.Backend
	mu      sync.Mutex
	waiters map[api.InstanceID]*completion
}

func (b *notifyingBackend) entry(id api.InstanceID) *completion {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.waiters[id]
	if c == nil {
		c = &completion{done: make(chan struct{})}
		b.waiters[id] = c
	}
	return c
}

func (b *notifyingBackend) CompleteOrchestrationWorkItem(ctx context.Context, wi *backend.OrchestrationWorkItem) error {
	err := b.Backend.CompleteOrchestrationWorkItem(ctx, wi)
	if err == nil && wi.State != nil && wi.State.IsCompleted() {
		c := b.entry(wi.InstanceID)
		select {
		case <-c.done:
		default:
			c.status = wi.State.RuntimeStatus().String()
			c.output, _ = wi.State.Output()
			if fd, _ := wi.State.FailureDetails(); fd != nil {
				c.failed = fd.GetErrorMessage()
			}
			close(c.done)
		}
	}
	return err
}

func (b *notifyingBackend) wait(ctx context.Context, id string, want string) error {
	c := b.entry(api.InstanceID(id))
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if c.status != "ORCHESTRATION_STATUS_COMPLETED" {
		return fmt.Errorf("%s: %s %s", id, c.status, c.failed)
	}
	if want != "" && c.output != want {
		return fmt.Errorf("%s: output %s, want %s", id, c.output, want)
	}
	return nil
}

// ---- orchestrators and activities ----

var (
	dueAt, firedAt *harness.Stamps
	stepAt         *harness.Stamps
)

type chainIn struct {
	Start int `json:"start"`
	Steps int `json:"steps"`
}

func chainOrch(ctx *task.OrchestrationContext) (any, error) {
	var in chainIn
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	n := in.Start
	for range in.Steps {
		if err := ctx.CallActivity("Inc", task.WithActivityInput(n)).Await(&n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func fanOutOrch(ctx *task.OrchestrationContext) (any, error) {
	var width int
	if err := ctx.GetInput(&width); err != nil {
		return nil, err
	}
	tasks := make([]task.Task, width)
	for i := range tasks {
		tasks[i] = ctx.CallActivity("Inc", task.WithActivityInput(i))
	}
	sum := 0
	for _, t := range tasks {
		var v int
		if err := t.Await(&v); err != nil {
			return nil, err
		}
		sum += v
	}
	return sum, nil
}

func incAct(ctx task.ActivityContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	return n + 1, nil
}

type timerIn struct {
	I     int   `json:"i"`
	Delay int64 `json:"delayNs"`
}

// timerOrch awaits one durable timer. The due time is durabletask's own (the
// orchestration's current time plus the delay, as CreateTimer computes it); the
// fire time is the wall clock when the code after the timer first runs.
func timerOrch(ctx *task.OrchestrationContext) (any, error) {
	var in timerIn
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	dueAt.Mark(in.I, ctx.CurrentTimeUtc.Add(time.Duration(in.Delay)))
	if err := ctx.CreateTimer(time.Duration(in.Delay)).Await(nil); err != nil {
		return nil, err
	}
	firedAt.Mark(in.I, time.Now())
	return in.I, nil
}

func longChainOrch(ctx *task.OrchestrationContext) (any, error) {
	var steps int
	if err := ctx.GetInput(&steps); err != nil {
		return nil, err
	}
	n := 0
	for range steps {
		if err := ctx.CallActivity("Tick", task.WithActivityInput(n)).Await(&n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func tickAct(ctx task.ActivityContext) (any, error) {
	var k int
	if err := ctx.GetInput(&k); err != nil {
		return nil, err
	}
	stepAt.Mark(k, time.Now())
	return k + 1, nil
}

// ---- engine ----

type quietLogger struct{}

func (quietLogger) Debug(...any)          {}
func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Info(...any)           {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warn(v ...any)         { fmt.Fprintln(os.Stderr, append([]any{"WARN:"}, v...)...) }
func (quietLogger) Warnf(f string, v ...any) {
	fmt.Fprintf(os.Stderr, "WARN: "+f+"\n", v...)
}
func (quietLogger) Error(v ...any) { fmt.Fprintln(os.Stderr, append([]any{"ERROR:"}, v...)...) }
func (quietLogger) Errorf(f string, v ...any) {
	fmt.Fprintf(os.Stderr, "ERROR: "+f+"\n", v...)
}

type engineDT struct {
	be     *notifyingBackend
	client backend.TaskHubClient
	hub    backend.TaskHubWorker
}

func start(ctx context.Context, res *harness.Result) (*engineDT, error) {
	r := task.NewTaskRegistry()
	for _, err := range []error{
		r.AddOrchestratorN("Chain", chainOrch),
		r.AddOrchestratorN("FanOut", fanOutOrch),
		r.AddOrchestratorN("Timer", timerOrch),
		r.AddOrchestratorN("LongChain", longChainOrch),
		r.AddActivityN("Inc", incAct),
		r.AddActivityN("Tick", tickAct),
	} {
		if err != nil {
			return nil, err
		}
	}
	var log quietLogger
	path := p.Dir + "/durabletask.sqlite"
	be := &notifyingBackend{Backend: sqlite.NewSqliteBackend(sqlite.NewSqliteOptions(path), log), waiters: map[api.InstanceID]*completion{}}
	exec := task.NewTaskExecutor(r)
	par := int32(p.Option("parallelism", 16))
	ow := backend.NewOrchestrationWorker(be, exec, log, backend.WithMaxParallelism(par))
	aw := backend.NewActivityTaskWorker(be, exec, log, backend.WithMaxParallelism(par))
	hub := backend.NewTaskHubWorker(be, ow, aw, log)
	if err := hub.Start(ctx); err != nil {
		return nil, err
	}
	res.Notef("durabletask-go v0.6.0, sqlite file %s, orchestration and activity workers at parallelism %d", "durabletask.sqlite", par)
	return &engineDT{be: be, client: backend.NewTaskHubClient(be), hub: hub}, nil
}

func (e *engineDT) stop(res *harness.Result) {
	t := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.hub.Shutdown(sctx); err != nil {
		res.Notef("shutdown: %v", err)
	}
	res.Set("close_s", time.Since(t).Seconds())
}

func (e *engineDT) schedule(ctx context.Context, name, id string, input any) error {
	_, err := e.client.ScheduleNewOrchestration(ctx, name, api.WithInstanceID(api.InstanceID(id)), api.WithInput(input))
	return err
}

// ---- scenarios ----

func chain(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("%d instances × %d activities", p.N, p.Steps)
	e, err := start(ctx, res)
	if err != nil {
		return err
	}
	defer e.stop(res)
	cpu0 := harness.CPU()
	total, starting, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) error {
			return e.schedule(ctx, "Chain", fmt.Sprintf("chain-%d", i), chainIn{Start: i, Steps: p.Steps})
		},
		func(ctx context.Context, i int) error {
			return e.be.wait(ctx, fmt.Sprintf("chain-%d", i), strconv.Itoa(i+p.Steps))
		})
	acts := float64(p.N * p.Steps)
	res.Set("acts_per_s", acts/total.Seconds())
	res.Set("elapsed_s", total.Seconds())
	res.Set("start_s", starting.Seconds())
	res.Set("cpu_us_per_act", float64((harness.CPU()-cpu0).Microseconds())/acts)
	return err
}

func fanOut(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("%d instances × %d parallel activities", p.N, p.Width)
	e, err := start(ctx, res)
	if err != nil {
		return err
	}
	defer e.stop(res)
	want := strconv.Itoa(p.Width * (p.Width + 1) / 2)
	cpu0 := harness.CPU()
	total, _, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) error {
			return e.schedule(ctx, "FanOut", fmt.Sprintf("fan-%d", i), p.Width)
		},
		func(ctx context.Context, i int) error { return e.be.wait(ctx, fmt.Sprintf("fan-%d", i), want) })
	acts := float64(p.N * p.Width)
	res.Set("acts_per_s", acts/total.Seconds())
	res.Set("elapsed_s", total.Seconds())
	res.Set("cpu_us_per_act", float64((harness.CPU()-cpu0).Microseconds())/acts)
	return err
}

func single(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("%d chains of %d, one at a time (+%d warm-up)", p.N, p.Steps, p.Warmup)
	e, err := start(ctx, res)
	if err != nil {
		return err
	}
	defer e.stop(res)
	var lat []float64
	cpu0 := harness.CPU()
	for i := range p.Warmup + p.N {
		if i == p.Warmup {
			cpu0 = harness.CPU()
		}
		id := fmt.Sprintf("lone-%d", i)
		t0 := time.Now()
		if err := e.schedule(ctx, "Chain", id, chainIn{Start: i, Steps: p.Steps}); err != nil {
			return err
		}
		if err := e.be.wait(ctx, id, strconv.Itoa(i+p.Steps)); err != nil {
			res.SetLatencies("", lat)
			return err
		}
		if i >= p.Warmup {
			lat = append(lat, harness.Ms(time.Since(t0)))
		}
	}
	res.SetLatencies("", lat)
	res.Set("cpu_us_per_act", float64((harness.CPU()-cpu0).Microseconds())/float64(len(lat)*p.Steps))
	return nil
}

func timers(ctx context.Context, res *harness.Result, delay func(int) time.Duration) error {
	res.Size = fmt.Sprintf("%d instances, timers of %s–%s", p.N, delay(0).Round(time.Millisecond), delay(p.N-1).Round(time.Millisecond))
	dueAt, firedAt = harness.NewStamps(p.N, p.N), harness.NewStamps(p.N, p.N)
	e, err := start(ctx, res)
	if err != nil {
		return err
	}
	defer e.stop(res)
	total, starting, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) error {
			return e.schedule(ctx, "Timer", fmt.Sprintf("t-%d", i), timerIn{I: i, Delay: int64(delay(i))})
		},
		func(ctx context.Context, i int) error { return e.be.wait(ctx, fmt.Sprintf("t-%d", i), strconv.Itoa(i)) })
	res.Set("all_done_s", total.Seconds())
	res.Set("start_s", starting.Seconds())
	res.SetTimerMetrics(dueAt, firedAt)
	return err
}

func longChain(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("1 instance × %d sequential activities", p.Steps)
	stepAt = harness.NewStamps(p.Steps, p.Steps)
	e, err := start(ctx, res)
	if err != nil {
		return err
	}
	defer e.stop(res)
	t0 := time.Now()
	if err := e.schedule(ctx, "LongChain", "long", p.Steps); err != nil {
		return err
	}
	err = e.be.wait(ctx, "long", strconv.Itoa(p.Steps))
	res.Set("elapsed_s", time.Since(t0).Seconds())
	res.Set("acts_per_s", float64(stepAt.Count())/time.Since(t0).Seconds())
	res.StepStats(stepAt)
	return err
}
