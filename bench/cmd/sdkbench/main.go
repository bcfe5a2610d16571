// Command sdkbench runs the sdkchain scenario: chains of activities written with
// Dapr's Go SDK (github.com/dapr/go-sdk v1.11.0, package workflow), driven over
// gRPC against a durabletask "sidecar" server that it starts as a child process:
//
//   - target=weft: `weft serve --http 127.0.0.1:0 --grpc 127.0.0.1:0 --data DIR`,
//     the weft binary of this tree (the driver builds cmd/weft from the bench
//     module, through its replace of github.com/weftrt/weft);
//   - target=durabletask: durabletask-go v0.6.0's own sidecar, the main package at
//     the root of github.com/microsoft/durabletask-go (`-host 127.0.0.1 -port 0
//     -db DIR/durabletask.sqlite`): its sqlite backend on a file, its gRPC
//     executor, orchestration and activity workers at their defaults;
//   - target=floor: bench/cmd/sdkfloor (`--grpc 127.0.0.1:0`), the least a
//     server of this protocol spends on the scenario (instances in a map,
//     nothing on disk): the floor for the server's CPU per activity.
//
// The server's address comes from its own log (`weft serving … grpc=ADDR`,
// `server listening at ADDR`, `sdkfloor serving grpc=ADDR`): both listen on a free port of 127.0.0.1 chosen by
// the kernel. The SDK's workflow worker (workflow.NewWorker) runs in this
// process; a workflow.Client on a second connection starts the instances from
// 64 goroutines and awaits each with WaitForWorkflowCompletion, a
// WaitForInstanceCompletion call that the server answers once the instance
// completed (weft: woken by the commit; the durabletask sidecar: it polls its
// store with a backoff from 1 ms up to 3 s). It prints one result line listing
// both processes (this one and the server).
//
//	go run ./cmd/sdkbench -scenario sdkchain -n 200 -steps 5 -opts target=weft -server .bin/weft
//
// This binary links durabletask-go (through the SDK) and must never link weft's
// api/durabletask/protos: both register the protocol's messages under the same
// unqualified names, and a binary holding both panics at init.
package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/workflow"

	"github.com/weftrt/weft/bench/internal/harness"
)

var (
	p          harness.Params
	serverPath string
	serverLog  string
	target     string
)

func main() {
	fs := flag.NewFlagSet("sdkbench", flag.ExitOnError)
	harness.RegisterFlags(fs, &p)
	fs.StringVar(&serverPath, "server", "", "the server binary: weft (cmd/weft), durabletask-go's sidecar (the main package of github.com/microsoft/durabletask-go) or sdkfloor (bench/cmd/sdkfloor)")
	fs.StringVar(&serverLog, "server-log", "", "file for the server's stdout and stderr (default: server.log in -dir)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sdkbench -scenario sdkchain -opts target=weft|durabletask|floor -server PATH [flags]\n\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	target = option(p.Options, "target")
	engine := target
	if engine == "" {
		engine = "?"
	}
	res := harness.NewResult(engine, &p)
	cleanup, err := p.EnsureDir("sdkbench-")
	if err != nil {
		res.Fail(err)
		res.Emit("sdkbench")
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
	res.Emit("sdkbench (Dapr Go SDK worker + client)")
	if res.Error != "" {
		os.Exit(1)
	}
}

// option is key's value in a key=value,... list.
func option(opts, key string) string {
	for kv := range strings.SplitSeq(opts, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func run(ctx context.Context, res *harness.Result) error {
	if p.Scenario != harness.SDKChain {
		return fmt.Errorf("sdkbench runs the %s scenario only, not %q", harness.SDKChain, p.Scenario)
	}
	if target != "weft" && target != "durabletask" && target != "floor" {
		return fmt.Errorf("-opts target=weft, target=durabletask or target=floor, not %q", target)
	}
	if serverPath == "" {
		return errors.New("no server binary: pass -server PATH")
	}
	// A developer's Dapr settings (DAPR_API_TOKEN, timeouts) must not reach the SDK.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "DAPR_") {
			os.Unsetenv(k)
		}
	}
	srv, err := startServer(ctx, res)
	if srv != nil {
		defer srv.stop(res)
	}
	if err != nil {
		return err
	}
	if w := option(p.Options, "perstep"); w != "" {
		window, err := strconv.Atoi(w)
		if err != nil || window < 1 || 2*window > p.Steps {
			return fmt.Errorf("-opts perstep=%q: want a window of steps, at least 1 and at most half of -steps (%d)", w, p.Steps)
		}
		return perStep(ctx, res, srv, window)
	}
	return chain(ctx, res, srv)
}

// ---- the workflow, registered by function name ----

type chainIn struct {
	Start int `json:"start"`
	Steps int `json:"steps"`
}

// Executions of the workflow function (the first run and every replay) and of
// the activity, reported with the result: a check on what the server dispatched.
var workflowRuns, activityRuns atomic.Int64

// SdkBenchChain calls SdkBenchInc Steps times in sequence.
func SdkBenchChain(ctx *workflow.WorkflowContext) (any, error) {
	workflowRuns.Add(1)
	var in chainIn
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	n := in.Start
	for range in.Steps {
		if err := ctx.CallActivity(SdkBenchInc, workflow.ActivityInput(n)).Await(&n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// activityTimes, when set, records when each activity call began (perStep).
var (
	timesMu       sync.Mutex
	activityTimes []time.Time
	recordTimes   bool
)

// SdkBenchInc returns its input + 1.
func SdkBenchInc(ctx workflow.ActivityContext) (any, error) {
	activityRuns.Add(1)
	timesMu.Lock()
	if recordTimes {
		activityTimes = append(activityTimes, time.Now())
	}
	timesMu.Unlock()
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	return n + 1, nil
}

// ---- the server ----

type server struct {
	cmd    *exec.Cmd
	name   string
	addr   string // host:port of its gRPC listener
	log    string
	exited chan struct{}
}

var (
	weftServing = regexp.MustCompile(`msg="weft serving".* grpc=(?:[a-z]+://)?"?([^"\s]+)`)
	dtListening = regexp.MustCompile(`server listening at (\S+)`)
	floorReady  = regexp.MustCompile(`sdkfloor serving grpc=(\S+)`)
)

// cleanEnv is this process's environment without WEFT_* and DAPR_* variables.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "WEFT_") || strings.HasPrefix(kv, "DAPR_")
	})
}

func startServer(ctx context.Context, res *harness.Result) (*server, error) {
	if serverLog == "" {
		serverLog = filepath.Join(p.Dir, "server.log")
	}
	s := &server{log: serverLog, exited: make(chan struct{})}
	var (
		args  []string
		ready *regexp.Regexp
	)
	switch target {
	case "weft":
		s.name = "weft serve"
		args = []string{"serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--data", filepath.Join(p.Dir, "weft-data"), "--log-format", "text"}
		ready = weftServing
	case "durabletask":
		s.name = "durabletask-go sidecar"
		args = []string{"-host", "127.0.0.1", "-port", "0", "-db", filepath.Join(p.Dir, "durabletask.sqlite")}
		ready = dtListening
	case "floor":
		s.name = "sdkfloor"
		args = []string{"--grpc", "127.0.0.1:0"}
		ready = floorReady
	}
	// The server writes its output straight to a file (no copying through this
	// process while it is measured); the file is read for its address during setup.
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own copy
	off, _ := logf.Seek(0, 2)
	fmt.Fprintf(logf, "=== %s %s\n", serverPath, strings.Join(args, " "))
	s.cmd = exec.Command(serverPath, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = cleanEnv()
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", serverPath, err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()

	// Setup (not measured): wait for the line that gives the address.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := findLine(s.log, off, ready); m != "" {
			s.addr = m
			break
		}
		select {
		case <-s.exited:
			return s, fmt.Errorf("%s exited (%v) before it listened; its output: %s", s.name, s.cmd.ProcessState, tail(s.log, off))
		case <-ctx.Done():
			return s, fmt.Errorf("%s: %w; its output: %s", s.name, ctx.Err(), tail(s.log, off))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%s printed no address within 60 s; its output: %s", s.name, tail(s.log, off))
		}
	}
	res.Set("server_ready_s", time.Since(t0).Seconds())
	res.Notef("%s", describeServer(s.name))
	res.Notef("worker: %s", describeSelf())
	return s, nil
}

// findLine returns the first submatch of re in the log from offset off.
func findLine(path string, off int64, re *regexp.Regexp) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return ""
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			return m[1]
		}
	}
	return ""
}

func tail(path string, off int64) string {
	b, _ := os.ReadFile(path)
	if int64(len(b)) > off {
		b = b[off:]
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return strings.TrimSpace(string(b))
}

// stop ends the server (SIGTERM) and lists its peak RSS and CPU time.
func (s *server) stop(res *harness.Result) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		res.Notef("%s did not stop within 30 s of SIGTERM; killed", s.name)
	}
	if ps := s.cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.Procs = append(res.Procs, harness.Proc{Name: s.name, PeakRSSMiB: float64(ru.Maxrss) / 1024, CPUSeconds: harness.RusageCPU(ru)})
		}
	}
}

// serverCPU is the CPU time the server process used so far.
func (s *server) serverCPU() time.Duration {
	return harness.ProcCPU(s.cmd.Process.Pid)
}

// ---- versions ----

// versions lists the modules of interest in a binary's build information.
func versions(bi *debug.BuildInfo) string {
	want := []string{"github.com/weftrt/weft", "github.com/microsoft/durabletask-go", "github.com/dapr/go-sdk",
		"google.golang.org/grpc", "google.golang.org/protobuf", "modernc.org/sqlite", "github.com/cockroachdb/pebble/v2"}
	var parts []string
	for _, d := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
		if !slices.Contains(want, d.Path) {
			continue
		}
		v := d.Version
		if d.Replace != nil || v == "(devel)" {
			v = "this tree"
			if d.Replace != nil && d.Replace.Version != "" {
				v = d.Replace.Version
			}
		}
		parts = append(parts, d.Path+" "+v)
	}
	return strings.Join(parts, ", ") + ", " + bi.GoVersion
}

func describeServer(name string) string {
	bi, err := buildinfo.ReadFile(serverPath)
	if err != nil {
		return fmt.Sprintf("server %s: %s (build info: %v)", name, filepath.Base(serverPath), err)
	}
	what := map[string]string{
		"weft": "`weft serve` (cmd/weft of this tree), data in a pebble directory, defaults (fsync per commit)",
		"durabletask": "durabletask-go's sidecar (package main of github.com/microsoft/durabletask-go), sqlite file durabletask.sqlite " +
			"(modernc.org/sqlite defaults), workers at its defaults (one orchestration and one activity work item at a time)",
		"floor": "sdkfloor (bench/cmd/sdkfloor of this tree): the protocol's least, instances in a map, nothing on disk, weft serve's gRPC options and GOGC",
	}[target]
	return fmt.Sprintf("server: %s; built with %s", what, versions(bi))
}

func describeSelf() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "Dapr Go SDK workflow worker and client"
	}
	return "Dapr Go SDK workflow worker and client (two connections), " + versions(bi)
}

// ---- the scenario ----

// startSDK starts, not measured, the SDK's workflow worker and then its client,
// each on its own connection as a Dapr application has them; stop shuts both
// down (before the server stops).
func startSDK(s *server) (c *workflow.Client, stop func(), err error) {
	wc, err := dapr.NewClientWithAddress(s.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dapr.NewClientWithAddress(%s) for the worker: %w", s.addr, err)
	}
	w, err := workflow.NewWorker(workflow.WorkerWithDaprClient(wc))
	if err != nil {
		wc.Close()
		return nil, nil, fmt.Errorf("workflow.NewWorker: %w", err)
	}
	if err := w.RegisterWorkflow(SdkBenchChain); err != nil {
		return nil, nil, err
	}
	if err := w.RegisterActivity(SdkBenchInc); err != nil {
		return nil, nil, err
	}
	if err := w.Start(); err != nil {
		wc.Close()
		return nil, nil, fmt.Errorf("workflow worker start: %w", err)
	}
	cc, err := dapr.NewClientWithAddress(s.addr)
	if err != nil {
		_ = w.Shutdown()
		return nil, nil, fmt.Errorf("dapr.NewClientWithAddress(%s) for the client: %w", s.addr, err)
	}
	c, err = workflow.NewClient(workflow.WithDaprClient(cc))
	if err != nil {
		cc.Close()
		_ = w.Shutdown()
		return nil, nil, err
	}
	return c, func() { cc.Close(); _ = w.Shutdown() }, nil // Shutdown closes wc too
}

func chain(ctx context.Context, res *harness.Result, s *server) error {
	res.Size = fmt.Sprintf("%d instances × %d activities", p.N, p.Steps)
	c, stop, err := startSDK(s)
	if err != nil {
		return err
	}
	defer stop()

	ids := make([]string, p.N)
	updated := make([]time.Time, p.N) // the server's last-update time of the completed instance
	seen := make([]time.Time, p.N)    // when WaitForWorkflowCompletion returned
	self0, server0 := harness.CPU(), s.serverCPU()
	t0 := time.Now()
	total, starting, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) (err error) {
			ids[i], err = c.ScheduleNewWorkflow(ctx, "SdkBenchChain", workflow.WithInstanceID("chain-"+strconv.Itoa(i)),
				workflow.WithInput(chainIn{Start: i, Steps: p.Steps}))
			return err
		},
		func(ctx context.Context, i int) error {
			md, err := c.WaitForWorkflowCompletion(ctx, ids[i], workflow.WithFetchPayloads(true))
			if err != nil {
				return err
			}
			seen[i] = time.Now()
			if md.RuntimeStatus != workflow.StatusCompleted {
				why := ""
				if md.FailureDetails != nil {
					why = ": " + md.FailureDetails.Message
				}
				return fmt.Errorf("%s ended %s%s", ids[i], md.RuntimeStatus, why)
			}
			if want := strconv.Itoa(i + p.Steps); md.SerializedOutput != want {
				return fmt.Errorf("%s: output %q, want %s", ids[i], md.SerializedOutput, want)
			}
			updated[i] = md.LastUpdatedAt
			return nil
		})
	acts := float64(p.N * p.Steps)
	res.Set("acts_per_s", acts/total.Seconds())
	res.Set("elapsed_s", total.Seconds())
	res.Set("start_s", starting.Seconds())
	self, server := harness.CPU()-self0, s.serverCPU()-server0
	res.Set("cpu_us_per_act", float64((self+server).Microseconds())/acts)
	res.Set("server_cpu_us_per_act", float64(server.Microseconds())/acts)
	res.Set("worker_cpu_us_per_act", float64(self.Microseconds())/acts)
	res.Set("activity_runs", float64(activityRuns.Load()))
	res.Set("workflow_runs", float64(workflowRuns.Load()))
	// The same throughput by the servers' own completion times, and how long after
	// them the wait call returned.
	var last time.Time
	var lag []float64
	for i := range p.N {
		if updated[i].IsZero() {
			last = time.Time{}
			break
		}
		if updated[i].After(last) {
			last = updated[i]
		}
		lag = append(lag, harness.Ms(seen[i].Sub(updated[i])))
	}
	if !last.IsZero() && last.After(t0) {
		res.Set("server_elapsed_s", last.Sub(t0).Seconds())
		res.Set("server_acts_per_s", acts/last.Sub(t0).Seconds())
		res.Set("wait_lag_p50_ms", harness.Percentile(lag, 0.5))
		res.Set("wait_lag_max_ms", harness.Percentile(lag, 1))
	}
	return err
}

// perStep runs p.N chains of p.Steps one after another and reports the wall
// time per step (from one activity call's start to the next one's: the
// activity, its result, the episode with the SDK's replay of the whole
// history, the commits between) averaged over the first and the last window
// steps, medians over the chains. Dapr's Go SDK v1.11 gets the whole history
// every episode; the ratio last/first says what that costs as it grows.
func perStep(ctx context.Context, res *harness.Result, s *server, window int) error {
	res.Size = fmt.Sprintf("%d chains of %d activities, one after another", p.N, p.Steps)
	c, stop, err := startSDK(s)
	if err != nil {
		return err
	}
	defer stop()
	mean := func(ts []time.Time) float64 {
		return float64(ts[len(ts)-1].Sub(ts[0]).Microseconds()) / float64(len(ts)-1)
	}
	var firsts, lasts []float64
	runs0 := workflowRuns.Load()
	for i := range p.N {
		timesMu.Lock()
		activityTimes, recordTimes = activityTimes[:0], true
		timesMu.Unlock()
		id, err := c.ScheduleNewWorkflow(ctx, "SdkBenchChain", workflow.WithInstanceID("long-"+strconv.Itoa(i)),
			workflow.WithInput(chainIn{Start: 0, Steps: p.Steps}))
		if err != nil {
			return err
		}
		md, err := c.WaitForWorkflowCompletion(ctx, id, workflow.WithFetchPayloads(true))
		if err != nil {
			return err
		}
		if md.RuntimeStatus != workflow.StatusCompleted || md.SerializedOutput != strconv.Itoa(p.Steps) {
			return fmt.Errorf("%s ended %s with %q, want COMPLETED with %d", id, md.RuntimeStatus, md.SerializedOutput, p.Steps)
		}
		timesMu.Lock()
		ts := slices.Clone(activityTimes)
		recordTimes = false
		timesMu.Unlock()
		if len(ts) != p.Steps {
			return fmt.Errorf("%s: %d activity calls, want %d", id, len(ts), p.Steps)
		}
		firsts = append(firsts, mean(ts[:window+1]))
		lasts = append(lasts, mean(ts[len(ts)-window-1:]))
	}
	first, last := harness.Percentile(firsts, 0.5), harness.Percentile(lasts, 0.5)
	res.Set("first_us_per_step", first)
	res.Set("last_us_per_step", last)
	res.Set("last_over_first", last/first)
	res.Set("workflow_runs_per_chain", float64(workflowRuns.Load()-runs0)/float64(p.N))
	return nil
}
