// Package harness holds what the benchmark driver (cmd/bench) and its engine
// workers (cmd/weftbench, cmd/dtbench, cmd/restatebench, cmd/sdkbench) share: the
// result line a worker prints, the scenario parameters, statistics and process
// measurements.
package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Line prefixes on a worker's stdout. Anything else a worker (or a library it
// uses) prints is ignored by the driver.
const (
	ResultPrefix = "BENCH-RESULT "
	PhasePrefix  = "BENCH-PHASE "
)

// Scenario names, in the order the report lists them.
const (
	Chain     = "chain"     // N instances × S sequential activities
	FanOut    = "fanout"    // N instances × W parallel activities, fan-in sum
	Single    = "single"    // one chain of S at a time: start-to-completed latency, embedded
	Timer1s   = "timer1s"   // N instances each awaiting one 1 s durable timer
	Timers    = "timers"    // N instances each awaiting a durable timer spread over 1–5 s
	Timers1M  = "timers1m"  // N (1M) timers pending at once, then fired at an offered rate
	LongChain = "longchain" // 1 instance × S sequential activities
	Idle      = "idle"      // N monitor workflows sleeping on timers
	Restart   = "restart"   // N instances in flight, SIGKILL, reopen
	Latency   = "latency"   // one-activity workflow over HTTP, one at a time
	SDKChain  = "sdkchain"  // N instances × S sequential activities, Dapr Go SDK over gRPC to a server process
)

// Params are a run's parameters; every worker takes them as the same flags.
type Params struct {
	Scenario string
	N        int           // instances (or samples for single/latency)
	Steps    int           // chain length
	Width    int           // fan-out width
	Conc     int           // client goroutines starting instances
	Dir      string        // directory for this run's data (created by the driver)
	Timeout  time.Duration // the worker gives up (and reports what it has) after this
	Phase    string        // restart: "load" or "recover"
	Window   time.Duration // idle: the period over which idle CPU is measured
	Rate     float64       // timers1m: offered fire rate (timers due per second)
	Warmup   int           // single/latency: samples run first and not counted
	Options  string        // engine-specific options, key=value,...
	Profile  string        // write a CPU profile of the whole run to this file
	// ProfilePhase limits the CPU profile to one phase of the scenario
	// (timers1m: "fire", from the epoch to the last fire).
	ProfilePhase string
	HeapProf     string // write a heap profile here when the scenario reads its memory figure
	Timeline     string // timers: write every timer's due time and lateness here
}

// RegisterFlags defines the common flags on fs.
func RegisterFlags(fs *flag.FlagSet, p *Params) {
	fs.StringVar(&p.Scenario, "scenario", "", "scenario: chain, fanout, single, timer1s, timers, timers1m, longchain, idle, restart, latency, sdkchain")
	fs.IntVar(&p.N, "n", 1000, "instances (samples for single and latency)")
	fs.IntVar(&p.Steps, "steps", 5, "sequential activities per chain")
	fs.IntVar(&p.Width, "width", 1000, "parallel activities per fan-out")
	fs.IntVar(&p.Conc, "conc", 64, "client goroutines starting instances")
	fs.StringVar(&p.Dir, "dir", "", "data directory for this run (default: a new temporary directory)")
	fs.DurationVar(&p.Timeout, "timeout", 10*time.Minute, "give up after this long and report what was measured")
	fs.StringVar(&p.Phase, "phase", "", "restart: load (schedule, then wait to be killed) or recover")
	fs.DurationVar(&p.Window, "window", 10*time.Second, "idle: period over which idle CPU is measured")
	fs.Float64Var(&p.Rate, "rate", 20000, "timers1m: offered fire rate, timers due per second")
	fs.IntVar(&p.Warmup, "warmup", 10, "single, latency: uncounted samples run first")
	fs.StringVar(&p.Options, "opts", "", "engine options, key=value,... (see the worker's -help)")
	fs.StringVar(&p.Profile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.StringVar(&p.ProfilePhase, "profile-phase", "", "profile only this phase of the scenario (timers1m: fire)")
	fs.StringVar(&p.HeapProf, "memprofile", "", "write a heap profile to this file when the scenario reads its memory figure (timers1m, idle)")
	fs.StringVar(&p.Timeline, "timeline", "", "timers, timers1m: write each timer's due time and lateness to this file (see bench/README.md)")
}

// processStart is about when the Go runtime started: GODEBUG=gctrace=1 stamps
// each collection with the seconds since then, which a timeline lines up with.
var processStart = time.Now()

// WriteTimeline writes the timeline p.Timeline names, if any: a line per timer
// that fired, its due time in unix nanoseconds and its lateness in
// milliseconds, after a header giving the process's start.
func (p *Params) WriteTimeline(due, fired *Stamps) {
	if p.Timeline == "" {
		return
	}
	f, err := os.Create(p.Timeline)
	if err != nil {
		fmt.Fprintln(os.Stderr, "timeline:", err)
		return
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "# process start (unix ns; GODEBUG=gctrace=1's @ times count from it): %d\n", processStart.UnixNano())
	w.WriteString("# due_unix_ns lateness_ms\n")
	for i := range due.Len() {
		d, fi := due.Get(i), fired.Get(i)
		if !d.IsZero() && !fi.IsZero() {
			fmt.Fprintf(w, "%d %.3f\n", d.UnixNano(), Ms(fi.Sub(d)))
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		fmt.Fprintln(os.Stderr, "timeline:", err)
	}
}

// WriteHeapProfile writes the heap profile p.HeapProf names, if any.
func (p *Params) WriteHeapProfile() {
	if p.HeapProf == "" {
		return
	}
	f, err := os.Create(p.HeapProf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memprofile:", err)
		return
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "memprofile:", err)
	}
}

// StartProfile starts the CPU profile p.Profile names, if any; call the returned
// function to stop it.
func (p *Params) StartProfile() func() {
	if p.Profile == "" || p.ProfilePhase != "" {
		return func() {}
	}
	return p.startCPUProfile()
}

// StartPhaseProfile starts the CPU profile when -profile-phase names phase (a
// scenario calls it where that phase begins); it returns the function that
// stops it.
func (p *Params) StartPhaseProfile(phase string) func() {
	if p.Profile == "" || p.ProfilePhase != phase {
		return func() {}
	}
	return p.startCPUProfile()
}

func (p *Params) startCPUProfile() func() {
	f, err := os.Create(p.Profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// Option returns the engine option key from Params.Options, or def.
func (p *Params) Option(key string, def int) int {
	for kv := range strings.SplitSeq(p.Options, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == key {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return def
}

// EnsureDir makes p.Dir exist, creating a temporary one when unset. The returned
// function removes a directory it created.
func (p *Params) EnsureDir(prefix string) (func(), error) {
	if p.Dir != "" {
		return func() {}, os.MkdirAll(p.Dir, 0o755)
	}
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	p.Dir = d
	return func() { os.RemoveAll(d) }, nil
}

// Result is what a worker prints, as one JSON line after ResultPrefix, when it is
// done (also when it failed: Error says why, Metrics hold what was measured).
type Result struct {
	Engine   string             `json:"engine"`
	Scenario string             `json:"scenario"`
	Size     string             `json:"size"`
	Metrics  map[string]float64 `json:"metrics"`
	Procs    []Proc             `json:"procs,omitempty"`
	Notes    []string           `json:"notes,omitempty"`
	Error    string             `json:"error,omitempty"`
}

// Proc is one OS process's peak resident set and CPU time.
type Proc struct {
	Name       string  `json:"name"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	CPUSeconds float64 `json:"cpu_s"`
}

// NewResult starts a result for engine and p.
func NewResult(engine string, p *Params) *Result {
	return &Result{Engine: engine, Scenario: p.Scenario, Metrics: map[string]float64{}}
}

// Set records metric name.
func (r *Result) Set(name string, v float64) {
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		r.Metrics[name] = v
	}
}

// Notef adds a note to the report.
func (r *Result) Notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Fail records err (the first one wins).
func (r *Result) Fail(err error) {
	if err != nil && r.Error == "" {
		r.Error = err.Error()
	}
}

// Emit adds this process (as name) in front of the processes already listed and
// prints the result line.
func (r *Result) Emit(name string) {
	r.Procs = append([]Proc{SelfUsage(name)}, r.Procs...)
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(&Result{Engine: r.Engine, Scenario: r.Scenario, Error: "encode result: " + err.Error()})
	}
	fmt.Fprintf(os.Stdout, "%s%s\n", ResultPrefix, b)
}

// Phase tells the driver that the worker reached a phase (restart: "ready").
func Phase(name string) { fmt.Fprintf(os.Stdout, "%s%s\n", PhasePrefix, name) }

// ---- statistics ----

// Percentile is the nearest-rank p-quantile (0 ≤ p ≤ 1) of xs (not modified).
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Mean of xs.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// Ms converts a duration to float milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// SetLatencies records p50, p99, mean and max (ms) of samples under prefix.
func (r *Result) SetLatencies(prefix string, samples []float64) {
	r.Set(prefix+"p50_ms", Percentile(samples, 0.50))
	r.Set(prefix+"p99_ms", Percentile(samples, 0.99))
	r.Set(prefix+"mean_ms", Mean(samples))
	r.Set(prefix+"max_ms", Percentile(samples, 1))
}

// ---- process measurements ----

// SelfUsage is this process's peak RSS and CPU time so far.
func SelfUsage(name string) Proc {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return Proc{Name: name, PeakRSSMiB: float64(ru.Maxrss) / 1024, CPUSeconds: RusageCPU(&ru)}
}

// RusageCPU is user+system time of ru in seconds.
func RusageCPU(ru *syscall.Rusage) float64 {
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// CPU is this process's CPU time (user+system) so far.
func CPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// StatusMiB reads a kB field (VmRSS, VmHWM) of /proc/<pid>/status (pid 0: self)
// in MiB; 0 if unavailable.
func StatusMiB(pid int, field string) float64 {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// ProcCPU is the CPU time (user+system) of process pid from /proc/<pid>/stat.
func ProcCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14 utime
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15 stime
	const clkTck = 100                       // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// ---- running many instances ----

// waiters is how many goroutines of Batch wait for instances: as many as the
// instances of the chain and 1 s timer scenarios. A waiter held up by a slow
// instance delays nothing: the batch ends when the last instance completes
// either way, and the instances queued behind it are likely complete by then.
const waiters = 1024

// maxQueued bounds the started instances queued for a waiter: beyond it, starts
// wait for the waiters. It holds every instance of the 1–5 s timers; the
// bigger batches (1M timers) wait for nothing, so their queue stays short.
const maxQueued = 1 << 17

// Batch starts n instances from conc goroutines (start(i)) and, as each start
// returns, queues the instance for a pool of waiters goroutines, which wait
// for the instances (wait(i)) in the order they started. It returns the time
// from the first start to the last completion, the time the starts took, and
// the first error. wait must be woken by the engine (a wait API, a
// notification), not by sleeping.
//
// One goroutine per instance, as before, made 100,000 goroutines in the 1–5 s
// timers. The engine under test is embedded in this process, so its garbage
// collector scanned their stacks: every cycle marked for 110–290 ms, and the timers
// due then were late by as much (p99 lateness 125–145 ms, against 33–47 ms
// with the pool, measured alternating).
func Batch(ctx context.Context, n, conc int, start, wait func(ctx context.Context, i int) error) (total, starting time.Duration, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    atomic.Int64
		once    sync.Once
		first   error
		starts  sync.WaitGroup
		waits   sync.WaitGroup
		started = time.Now()
		queue   = make(chan int, min(n, maxQueued))
	)
	fail := func(e error) {
		once.Do(func() { first = e; cancel() })
	}
	for range max(1, min(waiters, n)) {
		waits.Go(func() {
			for i := range queue {
				if ctx.Err() != nil {
					continue // drain
				}
				if e := wait(ctx, i); e != nil {
					fail(fmt.Errorf("wait for %d: %w", i, e))
				}
			}
		})
	}
	for range max(1, min(conc, n)) {
		starts.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if e := start(ctx, i); e != nil {
					fail(fmt.Errorf("start %d: %w", i, e))
					return
				}
				queue <- i
			}
		})
	}
	starts.Wait()
	starting = time.Since(started)
	close(queue)
	waits.Wait()
	total = time.Since(started)
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return total, starting, first
}

// Stamps records one wall-clock time per index, the first write winning: the
// benchmark workflows mark "timer due" and "timer fired" or "step ran" with it,
// so replays (which re-run workflow code) do not overwrite the first run.
type Stamps struct {
	t    []atomic.Int64
	n    atomic.Int64
	all  chan struct{}
	want int64
}

// NewStamps returns room for n stamps; Done is closed once want of them are set.
func NewStamps(n, want int) *Stamps {
	return &Stamps{t: make([]atomic.Int64, n), all: make(chan struct{}), want: int64(want)}
}

// Mark sets stamp i to t unless it is set; it reports whether it set it.
func (s *Stamps) Mark(i int, t time.Time) bool {
	if i < 0 || i >= len(s.t) || !s.t[i].CompareAndSwap(0, t.UnixNano()) {
		return false
	}
	if s.n.Add(1) == s.want {
		close(s.all)
	}
	return true
}

// Get returns stamp i (zero time if unset).
func (s *Stamps) Get(i int) time.Time {
	if v := s.t[i].Load(); v != 0 {
		return time.Unix(0, v)
	}
	return time.Time{}
}

// Count is how many stamps are set.
func (s *Stamps) Count() int { return int(s.n.Load()) }

// Done is closed when the wanted number of stamps are set.
func (s *Stamps) Done() <-chan struct{} { return s.all }

// Len is the number of slots.
func (s *Stamps) Len() int { return len(s.t) }

// TimerStats turns due and fired stamps into lateness (fired − due, ms) and the
// observed fire rate (fires / (last fire − first fire)).
func TimerStats(due, fired *Stamps) (lateness []float64, firstFire, lastFire time.Time) {
	for i := range fired.Len() {
		f, d := fired.Get(i), due.Get(i)
		if f.IsZero() || d.IsZero() {
			continue
		}
		lateness = append(lateness, Ms(f.Sub(d)))
		if firstFire.IsZero() || f.Before(firstFire) {
			firstFire = f
		}
		if f.After(lastFire) {
			lastFire = f
		}
	}
	return lateness, firstFire, lastFire
}

// SetTimerMetrics records lateness percentiles, the fire rate and how many fired.
func (r *Result) SetTimerMetrics(due, fired *Stamps) {
	late, first, last := TimerStats(due, fired)
	r.Set("fired", float64(len(late)))
	r.SetLatencies("lateness_", late)
	if span := last.Sub(first).Seconds(); len(late) > 1 && span > 0 {
		r.Set("fire_rate", float64(len(late))/span)
	}
}

// ErrTimeout is reported when the worker's own deadline passed.
var ErrTimeout = errors.New("worker deadline passed before the scenario finished")

// StepStats records per-step times from step stamps (one per step, in order):
// the mean interval of the first and of the last 100 steps, and their ratio.
func (r *Result) StepStats(steps *Stamps) {
	var iv []float64
	for k := 1; k < steps.Len(); k++ {
		a, b := steps.Get(k-1), steps.Get(k)
		if a.IsZero() || b.IsZero() {
			break
		}
		iv = append(iv, Ms(b.Sub(a)))
	}
	r.Set("steps_done", float64(steps.Count()))
	if len(iv) == 0 {
		return
	}
	w := min(100, len(iv))
	first, last := Mean(iv[:w]), Mean(iv[len(iv)-w:])
	r.Set("first100_ms", first)
	r.Set("last100_ms", last)
	r.Set("last_over_first", last/first)
	r.Set("step_p50_ms", Percentile(iv, 0.5))
	r.Set("step_mean_ms", Mean(iv))
}
