package weft

// Runtime benchmarks: the whole embedded runtime (actors, executor, synced pebble
// commits), measured end to end from Schedule to the committed completion.
//
//	go test -run '^$' -bench 'Chains|FanOut|SingleChain' -benchtime=3x -count=1 .
//
// Every commit is synced (storage.Batch.Commit always uses pebble.Sync); nothing
// here turns that off. One benchmark iteration is one whole run (1,000 chains, 10
// fan-outs, 200 lone chains), so use -benchtime=Nx rather than a duration.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/weftrt/weft/workflow"
)

const (
	benchChainInstances = 1000
	benchChainSteps     = 5
	benchFanInstances   = 10
	benchFanWidth       = 1000
	benchLatencySamples = 200 // lone chains per iteration of BenchmarkSingleChainLatency
	benchSchedulers     = 64  // goroutines calling Schedule concurrently
	benchRunTimeout     = 2 * time.Minute
	benchTimerInstances = 20_000          // sleepers per iteration of BenchmarkTimerFires
	benchTimerLead      = 5 * time.Second // from the first start to their timers' due time
)

// benchChain calls Inc n times in a row, each on the previous output.
func benchChain(ctx *workflow.Context, n int) (int, error) {
	for range benchChainSteps {
		if err := ctx.CallActivity("Inc", n).Await(&n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// benchFanOut calls Inc(i) for i in [0, width) at once and sums the results.
func benchFanOut(ctx *workflow.Context, width int) (int, error) {
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

func benchInc(_ context.Context, n int) (int, error) { return n + 1, nil }

// processCPU is the CPU time (user+system) this process has used so far. CPU per
// activity is steadier than wall-clock throughput on a machine shared with other
// work, and it is what bounds throughput once commits are grouped.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// openBenchRuntime opens a fresh runtime in a temporary directory with the chain
// and fan-out workflows registered, and closes it when the benchmark ends.
func openBenchRuntime(b *testing.B, opts Options) *Runtime {
	b.Helper()
	opts.Dir = b.TempDir()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rt, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := rt.Close(); err != nil {
			b.Errorf("close: %v", err)
		}
	})
	if err := RegisterActivity(rt, benchInc, workflow.WithName("Inc")); err != nil {
		b.Fatal(err)
	}
	if err := RegisterWorkflow(rt, benchChain, workflow.WithName("BenchChain")); err != nil {
		b.Fatal(err)
	}
	if err := RegisterWorkflow(rt, benchFanOut, workflow.WithName("BenchFanOut")); err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return rt
}

// runBatch schedules count instances of workflow name (input(i) for instance i)
// from a pool of benchSchedulers goroutines, waits for every one to complete
// (WaitForCompletion, woken by the completing commit) and checks each output.
// It returns the wall time from the first Schedule to the last completion.
func runBatch(b *testing.B, rt *Runtime, run int, name string, count int, input func(i int) int, want func(i int) string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchRunTimeout)
	defer cancel()
	next := atomic.Int64{}
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		firstEr error
		waiting atomic.Int64
	)
	fail := func(err error) {
		errMu.Lock()
		if firstEr == nil {
			firstEr = err
		}
		errMu.Unlock()
	}
	start := time.Now()
	for range min(benchSchedulers, count) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				id := fmt.Sprintf("%s-r%d-%d", name, run, i)
				if _, err := rt.Schedule(ctx, name, input(i), WithInstanceID(id)); err != nil {
					fail(fmt.Errorf("schedule %s: %w", id, err))
					return
				}
				waiting.Add(1)
				wg.Go(func() {
					defer waiting.Add(-1)
					st, err := rt.WaitForCompletion(ctx, id)
					switch {
					case err != nil:
						fail(fmt.Errorf("wait for %s: %w", id, err))
					case st.Status != StatusCompleted:
						fail(fmt.Errorf("%s: status %s, failure %v", id, st.Status, st.Failure))
					case string(st.Output) != want(i):
						fail(fmt.Errorf("%s: output %s, want %s", id, st.Output, want(i)))
					}
				})
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstEr != nil {
		h := rt.Host()
		s := h.Stats()
		b.Fatalf("run %d of %s: %v (after %s; still waiting: %d; active actors %d; activities run %d; commits %d)",
			run, name, firstEr, elapsed.Round(time.Millisecond), waiting.Load(), h.Active(), s.ActivitiesRun.Load(), s.Commits.Load())
	}
	return elapsed
}

// BenchmarkChains: 1,000 instances of a 5-step chain scheduled at once; one
// iteration is the whole run. Reports activities/s over all iterations.
func BenchmarkChains(b *testing.B) { benchChains(b, Options{}) }

// BenchmarkChainsTraced is BenchmarkChains with tracing on, its spans
// exported to nowhere: the cost of making them.
func BenchmarkChainsTraced(b *testing.B) { benchChains(b, Options{TraceExporter: discardSpans{}}) }

type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

func benchChains(b *testing.B, opts Options) {
	rt := openBenchRuntime(b, opts)
	var total time.Duration
	run := 0
	cpu0 := processCPU()
	for b.Loop() {
		d := runBatch(b, rt, run, "BenchChain", benchChainInstances,
			func(i int) int { return i },
			func(i int) string { return fmt.Sprint(i + benchChainSteps) })
		b.Logf("run %d: %d×%d chain activities in %s = %.0f activities/s",
			run, benchChainInstances, benchChainSteps, d.Round(time.Millisecond), float64(benchChainInstances*benchChainSteps)/d.Seconds())
		total += d
		run++
	}
	acts := float64(run * benchChainInstances * benchChainSteps)
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/acts, "cpu-µs/activity")
	b.ReportMetric(acts/total.Seconds(), "activities/s")
	b.ReportMetric(total.Seconds()/float64(run), "s/run")
	b.ReportMetric(float64(rt.Host().Stats().Commits.Load())/float64(run), "commits/run")
}

// BenchmarkFanOut: 10 instances each calling 1,000 activities in parallel and
// summing them (WhenAll); one iteration is the whole run.
func BenchmarkFanOut(b *testing.B) {
	rt := openBenchRuntime(b, Options{})
	// sum over i of (i+1) for i < width
	want := fmt.Sprint(benchFanWidth * (benchFanWidth + 1) / 2)
	var total time.Duration
	run := 0
	cpu0 := processCPU()
	for b.Loop() {
		d := runBatch(b, rt, run, "BenchFanOut", benchFanInstances,
			func(int) int { return benchFanWidth },
			func(int) string { return want })
		b.Logf("run %d: %d×%d fan-out activities in %s = %.0f activities/s",
			run, benchFanInstances, benchFanWidth, d.Round(time.Millisecond), float64(benchFanInstances*benchFanWidth)/d.Seconds())
		total += d
		run++
	}
	acts := float64(run * benchFanInstances * benchFanWidth)
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/acts, "cpu-µs/activity")
	b.ReportMetric(acts/total.Seconds(), "activities/s")
	b.ReportMetric(total.Seconds()/float64(run), "s/run")
	b.ReportMetric(float64(rt.Host().Stats().Commits.Load())/float64(run), "commits/run")
}

// BenchmarkSingleChainLatency: one 5-step chain at a time, nothing else running;
// each iteration runs benchLatencySamples of them back to back and the
// percentiles are of Schedule-call → WaitForCompletion-return.
func BenchmarkSingleChainLatency(b *testing.B) {
	rt := openBenchRuntime(b, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*benchRunTimeout)
	defer cancel()
	var lat []time.Duration
	run := 0
	cpu0 := processCPU()
	for b.Loop() {
		for i := range benchLatencySamples {
			id := fmt.Sprintf("lone-r%d-%d", run, i)
			t0 := time.Now()
			if _, err := rt.Schedule(ctx, "BenchChain", i, WithInstanceID(id)); err != nil {
				b.Fatalf("schedule %s: %v", id, err)
			}
			st, err := rt.WaitForCompletion(ctx, id)
			d := time.Since(t0)
			if err != nil {
				b.Fatalf("wait for %s: %v", id, err)
			}
			if st.Status != StatusCompleted || string(st.Output) != fmt.Sprint(i+benchChainSteps) {
				b.Fatalf("%s: status %s output %s", id, st.Status, st.Output)
			}
			lat = append(lat, d)
		}
		run++
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(benchChainSteps*len(lat))/b.Elapsed().Seconds(), "activities/s")
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(benchChainSteps*len(lat)), "cpu-µs/activity")
}

// BenchmarkFanShapes runs the same 10,000 activities as BenchmarkFanOut, cut into
// fewer wide or more narrow fan-outs. If throughput grows with the number of
// instances at a fixed total, the limit is per instance (each workflow actor
// commits its results one synced batch at a time), not the node.
func BenchmarkFanShapes(b *testing.B) {
	for _, shape := range []struct{ instances, width int }{{10, 1000}, {100, 100}, {1000, 10}} {
		b.Run(fmt.Sprintf("%dx%d", shape.instances, shape.width), func(b *testing.B) {
			rt := openBenchRuntime(b, Options{})
			want := fmt.Sprint(shape.width * (shape.width + 1) / 2)
			var total time.Duration
			run := 0
			cpu0 := processCPU()
			for b.Loop() {
				total += runBatch(b, rt, run, "BenchFanOut", shape.instances,
					func(int) int { return shape.width },
					func(int) string { return want })
				run++
			}
			b.ReportMetric(float64(run*shape.instances*shape.width)/total.Seconds(), "activities/s")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(run*shape.instances*shape.width), "cpu-µs/activity")
			b.ReportMetric(float64(rt.Host().Stats().Commits.Load())/float64(run), "commits/run")
		})
	}
}

// benchSleep awaits one durable timer of d.
func benchSleep(ctx *workflow.Context, d time.Duration) (int, error) {
	return 0, ctx.CreateTimer(d).Await(nil)
}

// BenchmarkStarts: 1,000 instances that each start a one-minute timer, scheduled
// at once; one iteration is the whole batch, up to every start being committed.
// Starting is what an instance pays before its first wait (activation, the
// first run of its code, one synced commit).
func BenchmarkStarts(b *testing.B) {
	rt := openBenchRuntime(b, Options{})
	if err := RegisterWorkflow(rt, benchSleep, workflow.WithName("BenchSleep")); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchRunTimeout)
	defer cancel()
	var total time.Duration
	run := 0
	cpu0 := processCPU()
	for b.Loop() {
		next := atomic.Int64{}
		var wg sync.WaitGroup
		start := time.Now()
		for range benchSchedulers {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < benchChainInstances; i = next.Add(1) - 1 {
					if _, err := rt.Schedule(ctx, "BenchSleep", time.Minute, WithInstanceID(fmt.Sprintf("s-r%d-%d", run, i))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		total += time.Since(start)
		run++
	}
	starts := float64(run * benchChainInstances)
	b.ReportMetric(starts/total.Seconds(), "starts/s")
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/starts, "cpu-µs/start")
}

// benchSleepUntil awaits one durable timer due at the given unix nanos, and
// counts the wake-up in benchWoken.
func benchSleepUntil(ctx *workflow.Context, due int64) (int, error) {
	if err := ctx.CreateTimer(time.Unix(0, due).Sub(ctx.Now())).Await(nil); err != nil {
		return 0, err
	}
	if !ctx.IsReplaying() {
		benchWoken.Add(1)
	}
	return 0, nil
}

var benchWoken atomic.Int64

// BenchmarkTimerFires: benchTimerInstances instances sleep on timers that all
// come due at one instant, a few seconds after they started (so each has left
// memory, as sleepers do); one iteration is from that instant to the last
// completion. The CPU is the process's over the same span: what a fire costs
// (activation from disk, replay, one synced commit), compactions included.
func BenchmarkTimerFires(b *testing.B) {
	rt := openBenchRuntime(b, Options{})
	if err := RegisterWorkflow(rt, benchSleepUntil, workflow.WithName("BenchSleepUntil")); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*benchRunTimeout)
	defer cancel()
	var total, cpu time.Duration
	run := 0
	for b.Loop() {
		b.StopTimer()
		ids := make([]string, benchTimerInstances)
		next := atomic.Int64{}
		var wg sync.WaitGroup
		start := time.Now()
		for range benchSchedulers {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(len(ids)); i = next.Add(1) - 1 {
					ids[i] = fmt.Sprintf("t-r%d-%d", run, i)
					at := start.Add(benchTimerLead)
					if _, err := rt.Schedule(ctx, "BenchSleepUntil", at.UnixNano(), WithInstanceID(ids[i])); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		due := start.Add(benchTimerLead)
		if time.Until(due) < time.Second {
			b.Fatalf("starting %d instances took %s, too close to their timers' due time", len(ids), time.Since(start))
		}
		time.Sleep(time.Until(due))
		b.StartTimer()
		t0, cpu0 := time.Now(), processCPU()
		for benchWoken.Load() < int64(len(ids)) && ctx.Err() == nil {
			time.Sleep(time.Millisecond) // a watcher per instance would cost more than the fires
		}
		// The last wake-ups commit right after counting: wait for their rows.
		for _, id := range ids[len(ids)-benchSchedulers:] {
			if _, err := rt.WaitForCompletion(ctx, id); err != nil {
				b.Fatalf("wait for %s: %v", id, err)
			}
		}
		total += time.Since(t0)
		cpu += processCPU() - cpu0
		benchWoken.Store(0)
		run++
	}
	fires := float64(run * benchTimerInstances)
	b.ReportMetric(fires/total.Seconds(), "fires/s")
	b.ReportMetric(float64(cpu.Microseconds())/fires, "cpu-µs/fire")
}
