package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/weftrt/weft/bench/internal/harness"
)

// Engines, in the order each round runs them and the report lists them.
const (
	weft        = "weft"
	durabletask = "durabletask"
	restateEng  = "restate"
	// floorEng is no engine: the least a server of durabletask's protocol does
	// (bench/cmd/sdkfloor), run in sdkchain only, to judge the server's CPU by.
	floorEng = "floor"
)

var allEngines = []string{weft, durabletask, restateEng, floorEng}

// peerEngines are the workflow engines, which run every scenario they can.
var peerEngines = []string{weft, durabletask, restateEng}

var engineTitle = map[string]string{
	weft:        "weft",
	durabletask: "durabletask-go v0.6.0",
	restateEng:  "Restate 1.7.12",
	floorEng:    "sdkfloor (in memory, nothing on disk)",
}

var workerBinary = map[string]string{
	weft:        "weftbench",
	durabletask: "dtbench",
	restateEng:  "restatebench",
	floorEng:    "sdkbench",
}

// metric is one row of a scenario's table.
type metric struct {
	key    string
	label  string
	better int // +1: higher is better, -1: lower is better, 0: neither
}

// scenario is one section of the report.
type scenario struct {
	name    string // harness scenario name, also the -only key
	title   string
	what    string              // one paragraph: what runs and what is measured
	engines []string            // engines that run it
	runs    int                 // runs per engine; 0: the mode's default
	args    func(e string) args // worker parameters per engine
	metrics []metric
	notes   []string // fixed notes printed under the table
	// anySize: ratios are given even where the engines ran different sample
	// counts (latency percentiles compare across them; throughputs do not).
	anySize bool
	// note, when set, adds a note computed from the measurements.
	note func(r *report) string
	// workers and engineTitles, when set, replace workerBinary and engineTitle
	// for this scenario: the same engine deployed another way (sdkchain: as a
	// server process driven over gRPC by Dapr's SDK, with one worker for both).
	workers      map[string]string
	engineTitles map[string]string
}

// worker is the worker binary that runs engine e on s.
func (s scenario) worker(e string) string {
	if w := s.workers[e]; w != "" {
		return w
	}
	return workerBinary[e]
}

// engineName is how the report names engine e in s.
func (s scenario) engineName(e string) string {
	if t := s.engineTitles[e]; t != "" {
		return t
	}
	return engineTitle[e]
}

// args are a worker's parameters (see harness.Params).
type args struct {
	n, steps, width int
	window          time.Duration
	rate            float64
	warmup          int
	opts            string
	timeout         time.Duration
	// server is a binary the driver builds into its bin directory (serverBinaries)
	// that the worker starts: passed as -server with its path, with -server-log.
	server string
}

// Server binaries the driver builds besides the workers, each in a binary of its
// own: weft's protos and durabletask-go's register the same unqualified names and
// cannot be linked together.
const (
	weftServer = "weft"                // `weft serve`, from this tree (replace ../)
	dtSidecar  = "durabletask-sidecar" // package main of github.com/microsoft/durabletask-go v0.6.0
	sdkFloor   = "sdkfloor"            // bench/cmd/sdkfloor
)

var serverBinaries = map[string]string{
	weftServer: "github.com/weftrt/weft/cmd/weft",
	dtSidecar:  "github.com/microsoft/durabletask-go",
	sdkFloor:   "github.com/weftrt/weft/bench/cmd/sdkfloor",
}

func (a args) flags() []string {
	f := []string{}
	add := func(k string, v string) { f = append(f, "-"+k, v) }
	if a.n > 0 {
		add("n", strconv.Itoa(a.n))
	}
	if a.steps > 0 {
		add("steps", strconv.Itoa(a.steps))
	}
	if a.width > 0 {
		add("width", strconv.Itoa(a.width))
	}
	if a.window > 0 {
		add("window", a.window.String())
	}
	if a.rate > 0 {
		add("rate", strconv.FormatFloat(a.rate, 'f', -1, 64))
	}
	if a.warmup > 0 {
		add("warmup", strconv.Itoa(a.warmup))
	}
	if a.opts != "" {
		add("opts", a.opts)
	}
	add("timeout", a.timeout.String())
	return f
}

// pick returns quick or full by mode.
func pick[T any](full bool, quick, fullV T) T {
	if full {
		return fullV
	}
	return quick
}

var (
	throughput = []metric{
		{"acts_per_s", "activities/s", +1},
		{"elapsed_s", "first start → last completion (s)", -1},
		{"cpu_us_per_act", "CPU per activity, all processes (µs)", -1},
	}
	latencyMetrics = []metric{
		{"p50_ms", "p50 start → completed (ms)", -1},
		{"p99_ms", "p99 (ms)", -1},
		{"mean_ms", "mean (ms)", -1},
		{"max_ms", "max (ms)", -1},
	}
	timerMetrics = []metric{
		{"all_done_s", "first start → last completion (s)", -1},
		{"lateness_p50_ms", "lateness p50: fired − due (ms)", -1},
		{"lateness_p99_ms", "lateness p99 (ms)", -1},
		{"lateness_max_ms", "lateness max (ms)", -1},
		{"fire_rate", "fire rate: fired / (last fire − first fire) (/s)", +1},
		{"start_s", "time to start all instances (s)", -1},
	}
)

// plan is the list of scenarios for a mode.
func plan(full bool) []scenario {
	to := func(quick, fullV time.Duration) time.Duration { return pick(full, quick, fullV) }
	return []scenario{
		{
			name:  harness.Chain,
			title: "1. Chain",
			what: "Instances of a workflow that calls 5 activities in sequence (each returns its input + 1) are all started at " +
				"once from 64 client goroutines; each instance is awaited as soon as it is started. Throughput is activities " +
				"completed over the time from the first start to the last completion.",
			engines: peerEngines,
			args: func(e string) args {
				return args{n: pick(full, 200, 1000), steps: 5, timeout: to(3*time.Minute, 10*time.Minute)}
			},
			metrics: throughput,
		},
		{
			name:  harness.Single,
			title: "1b. One chain of 5 alone",
			what: "The same 5-step chain, one instance at a time with nothing else running: start → completed latency. weft " +
				"and durabletask-go are embedded (in-process client); Restate is called through its HTTP ingress (its only " +
				"client path), with a synchronous call that returns the result.",
			engines: peerEngines,
			args: func(e string) args {
				n := pick(full, 50, 500)
				switch e {
				case durabletask:
					n = pick(full, 10, 50)
				case restateEng:
					n = pick(full, 50, 200)
				}
				return args{n: n, steps: 5, warmup: pick(full, 5, 10), timeout: to(3*time.Minute, 10*time.Minute)}
			},
			metrics: append(append([]metric{}, latencyMetrics...), metric{"cpu_us_per_act", "CPU per activity, all processes (µs)", -1}),
			notes: []string{"durabletask-go runs fewer samples: each takes about half a second (its workers poll the store " +
				"with a backoff starting at 50 ms)."},
			anySize: true,
		},
		{
			name:    harness.FanOut,
			title:   "2. Fan-out / fan-in",
			what:    "Instances that each call N activities at once (activity i returns i + 1) and sum the results, all started at once.",
			engines: peerEngines,
			args: func(e string) args {
				return args{n: pick(full, 4, 10), width: pick(full, 250, 1000), timeout: to(3*time.Minute, 10*time.Minute)}
			},
			metrics: throughput,
			notes: []string{"weft runs with its default ActivityConcurrency, 256 attempts at once on the node (the rest " +
				"queue in memory); durabletask-go's activity worker runs 16 at once; Restate runs every `restate.RunAsync` " +
				"of an invocation at once."},
		},
		{
			name:  harness.Timer1s,
			title: "3a. 1,000 one-second timers",
			what: "Instances that each await one durable timer of 1 s and complete, all started at once. All done: from the " +
				"first start to the last completion. Lateness: when the code after the timer first ran minus when the timer " +
				"was due (the engine's own due time: start-event time + 1 s for weft and durabletask-go, the wall clock at " +
				"the `restate.Sleep` call + 1 s for Restate).",
			engines: peerEngines,
			args: func(e string) args {
				return args{n: pick(full, 200, 1000), timeout: to(3*time.Minute, 5*time.Minute)}
			},
			metrics: timerMetrics,
		},
		{
			name:  harness.Timers,
			title: "3b. Timers spread over 1–5 s",
			what: "Instances each awaiting one durable timer, instance i of n with a delay of 1 s + 4 s·i/n, all started " +
				"at once; lateness and fire rate as above, and the memory of the process holding them.",
			engines: peerEngines,
			args: func(e string) args {
				n := pick(full, 10000, 100000)
				if e != weft {
					n = pick(full, 200, 1000)
				}
				return args{n: n, timeout: to(3*time.Minute, 10*time.Minute)}
			},
			metrics: append(append([]metric{}, timerMetrics...), metric{"rss_after_start_mib", "RSS once all are started (MiB)", -1}),
			notes: []string{"The peers run 1,000 instances (quick mode: 200), weft 100,000 (quick: 10,000). The sizes " +
				"differ, so no ratio is given; 3a compares all three at the same size."},
			note: timersNote,
		},
		{
			name:  harness.Timers1M,
			title: "3c. 1,000,000 pending timers",
			what: "weft only. Instances each awaiting a durable timer at an absolute due time. The first 5% are parked: " +
				"due in 24 h, they stay pending through the run, and the rate at which they started sets an epoch at " +
				"twice the time the rest should take to start (plus 10 s). The rest come due from that epoch on at an " +
				"offered 21,000 per second (5% above the 20,000/s target, so that keeping up shows as a fire rate above " +
				"it). RSS is read with all pending, just before the epoch; then lateness and fire rate as they come due. " +
				"If starting them runs past the epoch anyway, the run is reported as failed rather than with figures " +
				"that would not describe pending timers.",
			engines: []string{weft},
			args: func(e string) args {
				return args{n: pick(full, 50000, 1000000), rate: 21000, timeout: to(5*time.Minute, 20*time.Minute)}
			},
			metrics: []metric{
				{"pending_rss_mib", "RSS with all timers pending (MiB)", -1},
				{"pending_heap_mib", "Go heap in use with all pending (MiB)", -1},
				{"fire_rate", "fire rate (/s)", +1},
				{"cpu_us_per_fire", "CPU per fire, background work included (µs)", -1},
				{"lateness_p50_ms", "lateness p50 (ms)", -1},
				{"lateness_p99_ms", "lateness p99 (ms)", -1},
				{"lateness_max_ms", "lateness max (ms)", -1},
				{"fired", "timers fired", +1},
				{"schedules_per_s", "instances started per second", +1},
				{"start_s", "time to start all (s)", -1},
				{"rss_after_start_mib", "RSS once all are started (MiB)", -1},
			},
			notes: []string{"The process also holds the harness's own bookkeeping: two 8-byte stamps per timer (16 MB at 1M).",
				"The issue's scenario 3 measures lateness on 3b's 100,000 timers; its targets table puts a p99 of 50 ms in " +
					"the row of the 1M pending as well, so the report judges both. 3c's lateness varies from run to run far more " +
					"than 3b's, since firing 21,000 timers a second takes most of both cores: where late timers wait, the profile, the arithmetic and " +
					"what was tried are in [TIMER-LATENESS.md](TIMER-LATENESS.md)."},
		},
		{
			name:  harness.LongChain,
			title: "4. Long chain",
			what: "One instance calling 10,000 activities in sequence. Each activity records the wall clock when it runs; " +
				"per-step time is the interval between consecutive steps, averaged over the first and the last 100 steps. " +
				"An engine that re-runs the workflow from the top on every step (O(n²) in all) slows down as the history grows.",
			engines: peerEngines,
			args: func(e string) args {
				a := args{steps: pick(full, 1000, 10000), timeout: to(3*time.Minute, 10*time.Minute)}
				if e == durabletask {
					a.steps = 1000 // see the note
				}
				return a
			},
			metrics: []metric{
				{"first100_ms", "first 100 steps: mean step (ms)", -1},
				{"last100_ms", "last 100 steps: mean step (ms)", -1},
				{"last_over_first", "last 100 / first 100", -1},
				{"elapsed_s", "whole chain (s)", -1},
				{"acts_per_s", "activities/s", +1},
				{"steps_done", "steps done", +1},
			},
			notes: []string{"durabletask-go runs 1,000 steps in full mode too: its workers poll the store between steps " +
				"(about 70 ms a step here, flat), so 10,000 steps would take over 10 minutes a run. Its last-100/first-100 " +
				"ratio is over its own 1,000 steps; no other ratio is given where the lengths differ."},
		},
		{
			name:  harness.Idle,
			title: "5. Idle monitors",
			what: "weft only. Eternal monitor workflows (call a Check activity, sleep 1 h on a durable timer, continue as " +
				"new) are started; once every one has checked and sleeps, RSS is read and the CPU used by the process " +
				"over an idle window is measured. weft runs with its defaults: an instance whose only wait is a timer " +
				"due 2 s or more ahead leaves memory at once (its timer brings it back), others after 2 idle minutes, " +
				"and at most 10,000 are held in memory.",
			engines: []string{weft},
			args: func(e string) args {
				return args{n: pick(full, 10000, 100000), window: pick(full, 5*time.Second, 30*time.Second), timeout: to(3*time.Minute, 10*time.Minute)}
			},
			metrics: []metric{
				{"rss_sleeping_mib", "RSS once all sleep (MiB)", -1},
				{"rss_idle_mib", "RSS after the idle window (MiB)", -1},
				{"idle_cpu_pct", "idle CPU (% of one core)", -1},
				{"heap_idle_mib", "Go heap in use (MiB)", -1},
				{"active_at_window_end", "instances held in memory", -1},
				{"all_sleeping_s", "time until all sleep (s)", -1},
			},
		},
		{
			name:  harness.Restart,
			title: "6. Restart",
			what: "weft only. Instances of a two-step workflow are started; the first step's activity blocks, so every " +
				"instance has an activity in flight. The process is then killed (SIGKILL) and a new process reopens " +
				"the same directory. Measured from the new process's start (before `weft.Open`): until every instance " +
				"re-ran its in-flight step (all progressing) and until all completed.",
			engines: []string{weft},
			args: func(e string) args {
				return args{n: pick(full, 2000, 10000), timeout: to(3*time.Minute, 5*time.Minute)}
			},
			metrics: []metric{
				{"all_progressing_s", "reopen → every instance progressed (s)", -1},
				{"all_done_s", "reopen → all completed (s)", -1},
				{"open_start_s", "weft.Open + Start (s)", -1},
				{"load_start_s", "(before the kill) time to start all (s)", -1},
			},
		},
		{
			name:  harness.Latency,
			title: "7. Latency over HTTP",
			what: "A one-activity workflow started over HTTP and awaited, one at a time, on 127.0.0.1. weft: `weft serve`'s " +
				"handler in process (`api.NewHandler`), Dapr's start route then the `/api/v1/instances/{id}/wait` long " +
				"poll (two requests). Restate: one synchronous ingress call.",
			engines: []string{weft, restateEng},
			args: func(e string) args {
				n := pick(full, 50, 500)
				if e == restateEng {
					n = pick(full, 50, 200)
				}
				return args{n: n, warmup: pick(full, 5, 10), timeout: to(3*time.Minute, 10*time.Minute)}
			},
			metrics: append(append([]metric{}, latencyMetrics...), metric{"cpu_us_per_act", "CPU per activity, all processes (µs)", -1}),
			notes: []string{"durabletask-go has no HTTP API of its own (Dapr puts one in front of it), so it is not run here; " +
				"its embedded latency is in 1b."},
			anySize: true,
		},
		{
			name:  harness.SDKChain,
			title: "8. Dapr Go SDK over gRPC: chains of 5",
			what: "The chain of 1 as a Dapr application runs it: the workflow and its activity (input + 1) are written " +
				"with Dapr's Go SDK (`github.com/dapr/go-sdk` v1.11.0, package `workflow`) and run by its workflow worker " +
				"against a server speaking durabletask's `TaskHubSidecarService` gRPC protocol, started as a process of its " +
				"own on a free port of 127.0.0.1: `weft serve` (this tree), or the sidecar that durabletask-go v0.6.0 " +
				"ships (the `main` package at the root of its module, sqlite file in the run's data directory), or " +
				"`sdkfloor` (bench/cmd/sdkfloor): the least a server of this protocol does for the scenario, instances in a " +
				"map and nothing on disk, with weft serve's gRPC options and `GOGC`, the floor for the server's CPU. A " +
				"`workflow.Client` on a second connection starts all instances from 64 goroutines and awaits each with " +
				"`WaitForWorkflowCompletion` as soon as it is started; outputs are checked. Throughput is activities over " +
				"the time from the first start to the last completion seen by the client; CPU per activity sums the SDK " +
				"worker's process and the server's over that interval.",
			engines: []string{weft, durabletask, floorEng},
			workers: map[string]string{weft: "sdkbench", durabletask: "sdkbench", floorEng: "sdkbench"},
			engineTitles: map[string]string{
				weft:        "weft serve (gRPC)",
				durabletask: "durabletask-go v0.6.0 sidecar",
			},
			args: func(e string) args {
				// As many chains as scenario 1, which the goal compares it with
				// (the durabletask sidecar takes about a minute for them).
				a := args{n: pick(full, 200, 1000), steps: 5, timeout: to(5*time.Minute, 10*time.Minute), opts: "target=" + e}
				a.server = map[string]string{weft: weftServer, durabletask: dtSidecar, floorEng: sdkFloor}[e]
				return a
			},
			metrics: append(append([]metric{}, throughput...),
				metric{"server_cpu_us_per_act", "… of which the server process alone (µs)", -1},
				metric{"worker_cpu_us_per_act", "… of which the SDK's process: its workflow worker and client (µs)", -1},
				metric{"server_acts_per_s", "activities/s by the server's completion times (last update of the last instance)", +1},
				metric{"wait_lag_p50_ms", "wait call returned after the server's completion time, p50 (ms)", -1},
				metric{"wait_lag_max_ms", "… max (ms)", -1},
				metric{"start_s", "time to start all instances (s)", -1},
				metric{"activity_runs", "activity executions in the SDK worker (one per activity expected)", 0},
				metric{"workflow_runs", "workflow function executions in the SDK worker (first runs and replays)", 0},
			),
			notes: []string{"The durabletask-go sidecar runs as its `main.go` sets it up: `backend.NewOrchestrationWorker` and " +
				"`NewActivityTaskWorker` without options, i.e. one orchestration and one activity work item at a time, and a " +
				"`WaitForInstanceCompletion` that polls its store with a backoff from 1 ms up to 3 s (the wait-lag rows show " +
				"what that adds; the server-time throughput row leaves it out). weft serve runs with its defaults.",
				"sdkfloor keeps each instance's history as protocol messages in memory and answers every call at once: " +
					"no commit, no actor, no placement, no retry or recovery, no conversion. It serves only the calls this " +
					"scenario makes. What it spends is what gRPC, protobuf and Go's runtime cost on this path with this SDK.",
				"The server binaries and the SDK worker are built in the bench module, so they share its dependency " +
					"versions (the versions are listed below)."},
		},
	}
}

func (s scenario) has(e string) bool {
	for _, x := range s.engines {
		if x == e {
			return true
		}
	}
	return false
}

func (s scenario) String() string { return fmt.Sprintf("%s (%s)", s.title, s.name) }

// timersNote says, from the start rates measured in 3a, how long the peers would
// need just to start the 100,000 instances weft runs in 3b.
func timersNote(r *report) string {
	var parts []string
	for _, e := range []string{weft, durabletask, restateEng} {
		n, ok1 := r.med(harness.Timer1s, e, "fired")
		st, ok2 := r.med(harness.Timer1s, e, "start_s")
		if !ok1 || !ok2 || st <= 0 {
			continue
		}
		rate := n / st
		parts = append(parts, fmt.Sprintf("%s %s/s (100,000 in %s)", engineTitle[e], num(rate), (time.Duration(100000/rate)*time.Second).Round(time.Second)))
	}
	if len(parts) == 0 {
		return ""
	}
	n, _ := r.med(harness.Timer1s, weft, "fired")
	return fmt.Sprintf("Start rates measured in 3a (%s instances started at once): ", num(n)) + strings.Join(parts, "; ") +
		". The peers would spend far longer than the 1–5 s timers starting 100,000 instances, so they run 1,000 here."
}
