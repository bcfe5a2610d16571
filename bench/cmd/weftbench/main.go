// Command weftbench runs one benchmark scenario on embedded weft and prints one
// result line (see internal/harness). The driver, cmd/bench, runs it in a process
// of its own per run; it can also be run by hand:
//
//	go run ./cmd/weftbench -scenario chain -n 1000 -steps 5
//
// Every commit is synced (weft always commits with pebble.Sync). Completion is
// observed with Runtime.WaitForCompletion, which the completing commit wakes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/bench/internal/harness"
	"github.com/weftrt/weft/workflow"
)

const engine = "weft"

var p harness.Params

func main() {
	fs := flag.NewFlagSet("weftbench", flag.ExitOnError)
	harness.RegisterFlags(fs, &p)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: weftbench -scenario NAME [flags]\n\n-opts keys: activity_concurrency, max_active, idle_timeout_ms, cache_mb, memtable_mb, max_reminders (0 = weft's default)\n\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])

	res := harness.NewResult(engine, &p)
	cleanup, err := p.EnsureDir("weftbench-")
	if err != nil {
		res.Fail(err)
		res.Emit("weftbench")
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
	res.Emit("weftbench")
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
		return timers(ctx, res, spread(p.N))
	case harness.Timers1M:
		return timersMillion(ctx, res)
	case harness.LongChain:
		return longChain(ctx, res)
	case harness.Idle:
		return idle(ctx, res)
	case harness.Restart:
		return restart(ctx, res)
	case harness.Latency:
		return latency(ctx, res)
	}
	return fmt.Errorf("unknown scenario %q", p.Scenario)
}

// spread gives instance i of n a delay in [1 s, 5 s), evenly spread.
func spread(n int) func(int) time.Duration {
	return func(i int) time.Duration {
		return time.Second + time.Duration(i)*4*time.Second/time.Duration(max(n, 1))
	}
}

// ---- workflows and activities ----

// The stamps the workflows write (set per scenario before the runtime starts).
var (
	dueAt, firedAt *harness.Stamps // timers: when each timer was due, when it fired
	stepAt         *harness.Stamps // long chain: when each step ran
	checks         *harness.Stamps // idle: each monitor's first check
	holdRelease    chan struct{}   // restart/load: Hold blocks until this is closed
	holds          *harness.Stamps // restart: each instance's Hold attempt
)

type chainIn struct {
	Start int `json:"start"`
	Steps int `json:"steps"`
}

func chainWF(ctx *workflow.Context, in chainIn) (int, error) {
	n := in.Start
	for range in.Steps {
		if err := ctx.CallActivity("Inc", n).Await(&n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func fanOutWF(ctx *workflow.Context, width int) (int, error) {
	tasks := make([]*workflow.Task, width)
	for i := range tasks {
		tasks[i] = ctx.CallActivity("Inc", i)
	}
	if err := workflow.WhenAll(tasks...); err != nil {
		return 0, err
	}
	sum := 0
	for _, t := range tasks {
		var v int
		if err := t.Await(&v); err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

func inc(_ context.Context, n int) (int, error) { return n + 1, nil }

type timerIn struct {
	I     int   `json:"i"`
	Delay int64 `json:"delayNs,omitempty"` // relative timer
	Due   int64 `json:"dueNs,omitempty"`   // absolute timer (unix ns)
}

// timerWF awaits one durable timer. The due time is weft's own (the time of the
// event being processed plus the delay, as CreateTimer computes it); the fire time
// is the wall clock when the code after the timer first runs.
func timerWF(ctx *workflow.Context, in timerIn) (int, error) {
	due := time.Unix(0, in.Due)
	if in.Due == 0 {
		due = ctx.Now().Add(time.Duration(in.Delay))
	}
	dueAt.Mark(in.I, due)
	if err := ctx.CreateTimerUntil(due).Await(nil); err != nil {
		return 0, err
	}
	firedAt.Mark(in.I, time.Now())
	return in.I, nil
}

func noopWF(_ *workflow.Context, n int) (int, error) { return n, nil }

func longChainWF(ctx *workflow.Context, steps int) (int, error) {
	n := 0
	for range steps {
		if err := ctx.CallActivity("Tick", n).Await(&n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func tick(_ context.Context, k int) (int, error) {
	stepAt.Mark(k, time.Now())
	return k + 1, nil
}

type monitorIn struct {
	I        int   `json:"i"`
	Interval int64 `json:"intervalNs"`
	Cycle    int   `json:"cycle"`
}

// monitorWF is an eternal monitor: check, sleep, continue as new.
func monitorWF(ctx *workflow.Context, in monitorIn) (int, error) {
	var ok bool
	if err := ctx.CallActivity("Check", in.I).Await(&ok); err != nil {
		return 0, err
	}
	if err := ctx.CreateTimer(time.Duration(in.Interval)).Await(nil); err != nil {
		return 0, err
	}
	in.Cycle++
	ctx.ContinueAsNew(in, false)
	return 0, nil
}

func check(_ context.Context, i int) (bool, error) {
	checks.Mark(i, time.Now())
	return true, nil
}

func restartWF(ctx *workflow.Context, i int) (int, error) {
	if err := ctx.CallActivity("Hold", i).Await(&i); err != nil {
		return 0, err
	}
	if err := ctx.CallActivity("Inc", i).Await(&i); err != nil {
		return 0, err
	}
	return i, nil
}

// hold records the attempt; in the load phase it then blocks until the process is
// killed, so that every instance has an activity in flight.
func hold(ctx context.Context, i int) (int, error) {
	holds.Mark(i, time.Now())
	if holdRelease != nil {
		select {
		case <-holdRelease:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return i, nil
}

// ---- runtime ----

func open(opts weft.Options) (*weft.Runtime, error) {
	opts.Dir = p.Dir
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if opts.ActivityConcurrency == 0 {
		opts.ActivityConcurrency = p.Option("activity_concurrency", 0)
	}
	if opts.MaxActiveInstances == 0 {
		opts.MaxActiveInstances = p.Option("max_active", 0)
	}
	if ms := p.Option("idle_timeout_ms", 0); ms > 0 {
		opts.IdleTimeout = time.Duration(ms) * time.Millisecond
	}
	if mb := p.Option("cache_mb", 0); mb > 0 {
		opts.CacheSize = int64(mb) << 20
	}
	if n := p.Option("max_reminders", 0); n > 0 {
		opts.MaxRemindersInMemory = n
	}
	if mb := p.Option("memtable_mb", 0); mb > 0 {
		opts.MemTableSize = int64(mb) << 20
	}
	rt, err := weft.Open(opts)
	if err != nil {
		return nil, err
	}
	for _, reg := range []error{
		weft.RegisterActivity(rt, inc, workflow.WithName("Inc")),
		weft.RegisterActivity(rt, tick, workflow.WithName("Tick")),
		weft.RegisterActivity(rt, check, workflow.WithName("Check")),
		weft.RegisterActivity(rt, hold, workflow.WithName("Hold")),
		weft.RegisterWorkflow(rt, chainWF, workflow.WithName("Chain")),
		weft.RegisterWorkflow(rt, fanOutWF, workflow.WithName("FanOut")),
		weft.RegisterWorkflow(rt, timerWF, workflow.WithName("Timer")),
		weft.RegisterWorkflow(rt, noopWF, workflow.WithName("Noop")),
		weft.RegisterWorkflow(rt, longChainWF, workflow.WithName("LongChain")),
		weft.RegisterWorkflow(rt, monitorWF, workflow.WithName("Monitor")),
		weft.RegisterWorkflow(rt, restartWF, workflow.WithName("Restart")),
	} {
		if reg != nil {
			rt.Close()
			return nil, reg
		}
	}
	return rt, nil
}

func openStarted(ctx context.Context, res *harness.Result, opts weft.Options) (*weft.Runtime, error) {
	rt, err := open(opts)
	if err != nil {
		return nil, err
	}
	if err := rt.Start(ctx); err != nil {
		rt.Close()
		return nil, err
	}
	res.Notef("weft.Options: ActivityConcurrency=%s, MaxActiveInstances=%s, IdleTimeout=%s",
		orDefault(opts.ActivityConcurrency, p.Option("activity_concurrency", 0)),
		orDefault(opts.MaxActiveInstances, p.Option("max_active", 0)),
		orDefault(0, p.Option("idle_timeout_ms", 0)))
	return rt, nil
}

func orDefault(a, b int) string {
	if a > 0 {
		return strconv.Itoa(a)
	}
	if b > 0 {
		return strconv.Itoa(b)
	}
	return "default"
}

// waitOutput waits for instance id to complete and checks its output.
func waitOutput(ctx context.Context, rt *weft.Runtime, id, want string) error {
	st, err := rt.WaitForCompletion(ctx, id)
	if err != nil {
		return err
	}
	if st.Status != weft.StatusCompleted {
		return fmt.Errorf("%s: status %s, failure %v", id, st.Status, st.Failure)
	}
	if want != "" && string(st.Output) != want {
		return fmt.Errorf("%s: output %s, want %s", id, st.Output, want)
	}
	return nil
}

func closeRT(rt *weft.Runtime, res *harness.Result) {
	t := time.Now()
	if err := rt.Close(); err != nil {
		res.Fail(fmt.Errorf("close: %w", err))
	}
	res.Set("close_s", time.Since(t).Seconds())
}

// ---- scenarios ----

func chain(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("%d instances × %d activities", p.N, p.Steps)
	rt, err := openStarted(ctx, res, weft.Options{})
	if err != nil {
		return err
	}
	defer closeRT(rt, res)
	cpu0 := harness.CPU()
	total, starting, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) error {
			_, err := rt.Schedule(ctx, "Chain", chainIn{Start: i, Steps: p.Steps}, weft.WithInstanceID(fmt.Sprintf("chain-%d", i)))
			return err
		},
		func(ctx context.Context, i int) error {
			return waitOutput(ctx, rt, fmt.Sprintf("chain-%d", i), strconv.Itoa(i+p.Steps))
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
	rt, err := openStarted(ctx, res, weft.Options{})
	if err != nil {
		return err
	}
	defer closeRT(rt, res)
	want := strconv.Itoa(p.Width * (p.Width + 1) / 2)
	cpu0 := harness.CPU()
	total, _, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) error {
			_, err := rt.Schedule(ctx, "FanOut", p.Width, weft.WithInstanceID(fmt.Sprintf("fan-%d", i)))
			return err
		},
		func(ctx context.Context, i int) error { return waitOutput(ctx, rt, fmt.Sprintf("fan-%d", i), want) })
	acts := float64(p.N * p.Width)
	res.Set("acts_per_s", acts/total.Seconds())
	res.Set("elapsed_s", total.Seconds())
	res.Set("cpu_us_per_act", float64((harness.CPU()-cpu0).Microseconds())/acts)
	return err
}

func single(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("%d chains of %d, one at a time (+%d warm-up)", p.N, p.Steps, p.Warmup)
	rt, err := openStarted(ctx, res, weft.Options{})
	if err != nil {
		return err
	}
	defer closeRT(rt, res)
	var lat []float64
	cpu0 := harness.CPU()
	for i := range p.Warmup + p.N {
		if i == p.Warmup {
			cpu0 = harness.CPU()
		}
		id := fmt.Sprintf("lone-%d", i)
		t0 := time.Now()
		if _, err := rt.Schedule(ctx, "Chain", chainIn{Start: i, Steps: p.Steps}, weft.WithInstanceID(id)); err != nil {
			return err
		}
		if err := waitOutput(ctx, rt, id, strconv.Itoa(i+p.Steps)); err != nil {
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

// timers: N instances, instance i awaiting a timer of delay(i); all-done time is
// from the first Schedule call to the last completion.
func timers(ctx context.Context, res *harness.Result, delay func(int) time.Duration) error {
	res.Size = fmt.Sprintf("%d instances, timers of %s–%s", p.N, delay(0).Round(time.Millisecond), delay(p.N-1).Round(time.Millisecond))
	dueAt, firedAt = harness.NewStamps(p.N, p.N), harness.NewStamps(p.N, p.N)
	rt, err := openStarted(ctx, res, weft.Options{})
	if err != nil {
		return err
	}
	defer closeRT(rt, res)
	var rssAfterStart atomic.Uint64
	total, starting, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) error {
			_, err := rt.Schedule(ctx, "Timer", timerIn{I: i, Delay: int64(delay(i))}, weft.WithInstanceID(fmt.Sprintf("t-%d", i)))
			if i == p.N-1 {
				rssAfterStart.Store(uint64(harness.StatusMiB(0, "VmRSS") * 1024))
			}
			return err
		},
		func(ctx context.Context, i int) error {
			return waitOutput(ctx, rt, fmt.Sprintf("t-%d", i), strconv.Itoa(i))
		})
	res.Set("all_done_s", total.Seconds())
	res.Set("start_s", starting.Seconds())
	res.Set("rss_after_start_mib", float64(rssAfterStart.Load())/1024)
	res.SetTimerMetrics(dueAt, firedAt)
	p.WriteTimeline(dueAt, firedAt)
	return err
}

// timersMillion: N timers pending at once, then coming due at p.Rate per second.
// The first N/20 instances are parked: their timers are due in 24 h, so they stay
// pending through the run, and the rate at which they were started sets the
// epoch at which the others come due: twice the time the rest should take to
// start, plus 10 s. If starting the rest still runs past the epoch, the timers
// were not all pending when they came due: the run reports that as its error
// instead of a fire rate and lateness that would mean nothing.
func timersMillion(ctx context.Context, res *harness.Result) error {
	park := max(p.N/20, 1)
	firing := p.N - park
	window := time.Duration(float64(firing) / p.Rate * float64(time.Second))
	res.Size = fmt.Sprintf("%d timers pending (%d parked for 24 h), then %d due over %s (%.0f/s offered)", p.N, park, firing, window.Round(time.Second), p.Rate)
	dueAt, firedAt = harness.NewStamps(p.N, p.N), harness.NewStamps(p.N, firing)
	rt, err := openStarted(ctx, res, weft.Options{})
	if err != nil {
		return err
	}
	defer closeRT(rt, res)
	// start(offset, due) starts instance offset+i of the batch's i, due at due(i).
	start := func(offset int, due func(i int) time.Time) func(ctx context.Context, i int) error {
		return func(ctx context.Context, i int) error {
			id := offset + i
			_, err := rt.Schedule(ctx, "Timer", timerIn{I: id, Due: due(i).UnixNano()}, weft.WithInstanceID(fmt.Sprintf("m-%d", id)))
			return err
		}
	}
	none := func(context.Context, int) error { return nil }

	// Parked timers (instances 0..park-1).
	far := time.Now().Add(24 * time.Hour)
	t0 := time.Now()
	_, parkStart, err := harness.Batch(ctx, park, p.Conc, start(0, func(i int) time.Time { return far.Add(time.Duration(i)) }), none)
	if err != nil {
		return fmt.Errorf("parked timers: %w", err)
	}
	parkRate := float64(park) / parkStart.Seconds()
	lead := time.Duration(2*float64(firing)/parkRate*float64(time.Second)) + 10*time.Second
	epoch := time.Now().Add(lead)
	res.Set("parked_starts_per_s", parkRate)

	// The timers that come due (instances park..N-1), earliest first.
	_, _, err = harness.Batch(ctx, firing, p.Conc, start(park, func(i int) time.Time {
		return epoch.Add(time.Duration(float64(i) / p.Rate * float64(time.Second)))
	}), none)
	if err != nil {
		return err
	}
	all := time.Since(t0)
	res.Set("start_s", all.Seconds())
	res.Set("schedules_per_s", float64(p.N)/all.Seconds())
	res.Set("rss_after_start_mib", harness.StatusMiB(0, "VmRSS"))
	if early := firedAt.Count(); early > 0 || time.Now().After(epoch.Add(-500*time.Millisecond)) {
		return fmt.Errorf("starting the timers took %s, past the epoch set from the parked timers' start rate (%.0f/s); "+
			"%d had already fired, so the timers were not all pending when they came due: no pending RSS, fire rate or lateness is reported",
			all.Round(time.Second), parkRate, early)
	}
	// All pending: wait (no work to do) until just before the epoch, then read RSS.
	if d := time.Until(epoch) - time.Second; d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	runtime.GC()
	p.WriteHeapProfile()
	res.Set("pending_rss_mib", harness.StatusMiB(0, "VmRSS"))
	res.Set("pending_heap_mib", heapMiB())
	res.Set("pending_reminders_in_memory", float64(rt.Host().Reminders().Pending()))
	stopProfile := p.StartPhaseProfile("fire")
	defer stopProfile()
	cpu0 := harness.CPU()
	select {
	case <-firedAt.Done():
	case <-ctx.Done():
		res.SetTimerMetrics(dueAt, firedAt)
		p.WriteTimeline(dueAt, firedAt)
		return fmt.Errorf("%d of %d timers fired: %w", firedAt.Count(), firing, ctx.Err())
	}
	res.Set("fire_window_s", time.Since(epoch).Seconds())
	// The process's CPU from about a second before the epoch (once RSS is read)
	// until the last timer fired, over the timers fired: what one fire costs,
	// background work (flushes, compactions, garbage collection) included.
	res.Set("cpu_us_per_fire", float64((harness.CPU()-cpu0).Microseconds())/float64(firing))
	res.SetTimerMetrics(dueAt, firedAt)
	p.WriteTimeline(dueAt, firedAt)
	return nil
}

func heapMiB() float64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

func longChain(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("1 instance × %d sequential activities", p.Steps)
	stepAt = harness.NewStamps(p.Steps, p.Steps)
	rt, err := openStarted(ctx, res, weft.Options{})
	if err != nil {
		return err
	}
	defer closeRT(rt, res)
	t0 := time.Now()
	if _, err := rt.Schedule(ctx, "LongChain", p.Steps, weft.WithInstanceID("long")); err != nil {
		return err
	}
	err = waitOutput(ctx, rt, "long", strconv.Itoa(p.Steps))
	res.Set("elapsed_s", time.Since(t0).Seconds())
	res.Set("acts_per_s", float64(stepAt.Count())/time.Since(t0).Seconds())
	res.StepStats(stepAt)
	return err
}

// idle: N eternal monitors (check, sleep an hour, continue as new) are started;
// once every one has run its check and sleeps, RSS is read and CPU is measured over
// p.Window of doing nothing.
func idle(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("%d monitors sleeping on 1 h timers, idle CPU over %s", p.N, p.Window)
	checks = harness.NewStamps(p.N, p.N)
	rt, err := openStarted(ctx, res, weft.Options{})
	if err != nil {
		return err
	}
	defer closeRT(rt, res)
	t0 := time.Now()
	_, starting, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) error {
			_, err := rt.Schedule(ctx, "Monitor", monitorIn{I: i, Interval: int64(time.Hour)}, weft.WithInstanceID(fmt.Sprintf("mon-%d", i)))
			return err
		},
		func(ctx context.Context, i int) error { return nil })
	if err != nil {
		return err
	}
	res.Set("start_s", starting.Seconds())
	select {
	case <-checks.Done():
	case <-ctx.Done():
		return fmt.Errorf("%d of %d monitors checked: %w", checks.Count(), p.N, ctx.Err())
	}
	res.Set("all_sleeping_s", time.Since(t0).Seconds())
	// Let the commits of the last timers settle before measuring.
	settle := 2 * time.Second
	time.Sleep(settle)
	p.WriteHeapProfile()
	res.Set("rss_sleeping_mib", harness.StatusMiB(0, "VmRSS"))
	res.Set("active_at_window_start", float64(rt.Host().Active()))
	cpu0, w0 := harness.CPU(), time.Now()
	select {
	case <-time.After(p.Window):
	case <-ctx.Done():
		return ctx.Err()
	}
	wall := time.Since(w0)
	res.Set("idle_cpu_pct", 100*float64(harness.CPU()-cpu0)/float64(wall))
	res.Set("rss_idle_mib", harness.StatusMiB(0, "VmRSS"))
	res.Set("heap_idle_mib", heapMiB())
	res.Set("active_at_window_end", float64(rt.Host().Active()))
	return nil
}

// restart, phase load: N instances each with an activity in flight (Hold blocks),
// then "ready" and wait to be killed. Phase recover: reopen the same directory and
// time until every instance has re-run its in-flight step and completed.
func restart(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("%d instances in flight, SIGKILL, reopen", p.N)
	holds = harness.NewStamps(p.N, p.N)
	switch p.Phase {
	case "load":
		holdRelease = make(chan struct{})
		rt, err := openStarted(ctx, res, weft.Options{ActivityConcurrency: max(p.N, 256)})
		if err != nil {
			return err
		}
		_, starting, err := harness.Batch(ctx, p.N, p.Conc,
			func(ctx context.Context, i int) error {
				_, err := rt.Schedule(ctx, "Restart", i, weft.WithInstanceID(fmt.Sprintf("r-%d", i)))
				return err
			},
			func(ctx context.Context, i int) error { return nil })
		if err != nil {
			return err
		}
		select {
		case <-holds.Done():
		case <-ctx.Done():
			return fmt.Errorf("%d of %d in flight: %w", holds.Count(), p.N, ctx.Err())
		}
		res.Set("start_s", starting.Seconds())
		res.Emit("weftbench")
		res.Procs = nil
		harness.Phase("ready")
		<-ctx.Done() // the driver kills the process here
		return errors.New("not killed")
	case "recover":
		t0 := time.Now()
		rt, err := open(weft.Options{ActivityConcurrency: max(p.N, 256)})
		if err != nil {
			return err
		}
		defer closeRT(rt, res)
		res.Set("open_s", time.Since(t0).Seconds())
		res.Notef("weft.Options: ActivityConcurrency=%d in both processes (so that every instance has its activity in flight when killed), other options default", max(p.N, 256))
		if err := rt.Start(ctx); err != nil {
			return err
		}
		res.Set("open_start_s", time.Since(t0).Seconds())
		total, _, err := harness.Batch(ctx, p.N, p.Conc,
			func(ctx context.Context, i int) error { return nil },
			func(ctx context.Context, i int) error {
				return waitOutput(ctx, rt, fmt.Sprintf("r-%d", i), strconv.Itoa(i+1))
			})
		res.Set("all_done_s", time.Since(t0).Seconds())
		_ = total
		var last time.Time
		for i := range p.N {
			if h := holds.Get(i); h.After(last) {
				last = h
			}
		}
		if holds.Count() == p.N {
			res.Set("all_progressing_s", last.Sub(t0).Seconds())
		}
		res.Set("progressed", float64(holds.Count()))
		return err
	}
	return fmt.Errorf("restart: -phase load or recover, not %q", p.Phase)
}

// latency: the one-activity workflow started over HTTP (Dapr's start route) and
// awaited with the long-poll wait route, one at a time, on 127.0.0.1.
func latency(ctx context.Context, res *harness.Result) error {
	res.Size = fmt.Sprintf("%d one-activity workflows over HTTP, one at a time (+%d warm-up)", p.N, p.Warmup)
	rt, err := openStarted(ctx, res, weft.Options{})
	if err != nil {
		return err
	}
	defer closeRT(rt, res)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: api.NewHandler(rt, api.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	var lat []float64
	cpu0 := harness.CPU()
	for i := range p.Warmup + p.N {
		if i == p.Warmup {
			cpu0 = harness.CPU()
		}
		id := fmt.Sprintf("http-%d", i)
		t0 := time.Now()
		if err := post(ctx, client, base+"/v1.0/workflows/dapr/Chain/start?instanceID="+id, fmt.Sprintf(`{"start":%d,"steps":1}`, i), http.StatusAccepted); err != nil {
			return err
		}
		body, err := get(ctx, client, base+"/api/v1/instances/"+id+"/wait?timeout=60s", http.StatusOK)
		if err != nil {
			return err
		}
		if !strings.Contains(body, `"COMPLETED"`) {
			return fmt.Errorf("%s: %s", id, body)
		}
		if i >= p.Warmup {
			lat = append(lat, harness.Ms(time.Since(t0)))
		}
	}
	res.SetLatencies("", lat)
	res.Set("cpu_us_per_act", float64((harness.CPU()-cpu0).Microseconds())/float64(len(lat)))
	return nil
}

func post(ctx context.Context, c *http.Client, url, body string, want int) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: %s %s", url, resp.Status, b)
	}
	return nil
}

func get(ctx context.Context, c *http.Client, url string, want int) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return "", fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b), nil
}
