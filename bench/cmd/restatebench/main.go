// Command restatebench runs one benchmark scenario on Restate: it starts a
// restate-server (1.7.12, the binary the npm package @restatedev/restate-server
// ships) with every listener on 127.0.0.1 and telemetry off, serves a Go service
// written with github.com/restatedev/sdk-go v1.2.0 whose steps are restate.Run side
// effects, registers it through the admin API and drives it through the ingress.
// It prints one result line (see internal/harness) listing both processes.
//
//	go run ./cmd/restatebench -restate-server PATH -scenario chain -n 1000
//
// Durability is Restate's default: its log and partition stores fsync (grouped).
// Completion is observed with the ingress attach API (a long poll the server
// answers when the invocation completes), or the synchronous call itself.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	restate "github.com/restatedev/sdk-go"
	"github.com/restatedev/sdk-go/server"

	"github.com/weftrt/weft/bench/internal/harness"
)

const engine = "restate"

var (
	p          harness.Params
	serverPath string
)

func main() {
	fs := flag.NewFlagSet("restatebench", flag.ExitOnError)
	harness.RegisterFlags(fs, &p)
	fs.StringVar(&serverPath, "restate-server", os.Getenv("RESTATE_SERVER"), "path of the restate-server binary (RESTATE_SERVER)")
	_ = fs.Parse(os.Args[1:])
	res := harness.NewResult(engine, &p)
	cleanup, err := p.EnsureDir("restatebench-")
	if err != nil {
		res.Fail(err)
		res.Emit("restatebench")
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
	res.Emit("restatebench (Go service + client)")
	if res.Error != "" {
		os.Exit(1)
	}
}

func run(ctx context.Context, res *harness.Result) error {
	switch p.Scenario {
	case harness.Chain, harness.FanOut, harness.Single, harness.Timer1s, harness.Timers, harness.LongChain, harness.Latency:
	default:
		return fmt.Errorf("scenario %q is not run on Restate", p.Scenario)
	}
	env, err := startRestate(ctx, res)
	if env != nil {
		defer env.stop(res)
	}
	if err != nil {
		return err
	}
	switch p.Scenario {
	case harness.Chain:
		return chain(ctx, res, env)
	case harness.FanOut:
		return fanOut(ctx, res, env)
	case harness.Single:
		return single(ctx, res, env, p.Steps, "chains of "+strconv.Itoa(p.Steps))
	case harness.Latency:
		return single(ctx, res, env, 1, "one-activity workflows over HTTP")
	case harness.Timer1s:
		return timers(ctx, res, env, func(int) time.Duration { return time.Second })
	case harness.Timers:
		return timers(ctx, res, env, func(i int) time.Duration {
			return time.Second + time.Duration(i)*4*time.Second/time.Duration(max(p.N, 1))
		})
	case harness.LongChain:
		return longChain(ctx, res, env)
	}
	return nil
}

// ---- the service ----

var (
	dueAt, firedAt *harness.Stamps
	stepAt         *harness.Stamps
)

type chainIn struct {
	Start int `json:"start"`
	Steps int `json:"steps"`
}

func chainH(ctx restate.Context, in chainIn) (int, error) {
	n := in.Start
	for range in.Steps {
		v := n
		var err error
		if n, err = restate.Run(ctx, func(restate.RunContext) (int, error) { return v + 1, nil }); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func fanOutH(ctx restate.Context, width int) (int, error) {
	futs := make([]restate.RunAsyncFuture[int], width)
	for i := range futs {
		futs[i] = restate.RunAsync(ctx, func(restate.RunContext) (int, error) { return i + 1, nil })
	}
	sum := 0
	for _, f := range futs {
		v, err := f.Result()
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

type timerIn struct {
	I     int   `json:"i"`
	Delay int64 `json:"delayNs"`
}

// timerH sleeps durably. The due time is the wall clock when the handler first
// asks for the sleep, plus the delay; the fire time is the wall clock when the
// code after the sleep first runs.
func timerH(ctx restate.Context, in timerIn) (int, error) {
	dueAt.Mark(in.I, time.Now().Add(time.Duration(in.Delay)))
	if err := restate.Sleep(ctx, time.Duration(in.Delay)); err != nil {
		return 0, err
	}
	firedAt.Mark(in.I, time.Now())
	return in.I, nil
}

func longChainH(ctx restate.Context, steps int) (int, error) {
	n := 0
	for range steps {
		k := n
		var err error
		n, err = restate.Run(ctx, func(restate.RunContext) (int, error) {
			stepAt.Mark(k, time.Now())
			return k + 1, nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

func pingH(restate.Context, int) (int, error) { return 1, nil }

// ---- the server ----

type restateEnv struct {
	cmd      *exec.Cmd
	svc      *http.Server
	ingress  string
	admin    string
	client   *http.Client
	exited   chan struct{}
	stopOnce bool
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startRestate(ctx context.Context, res *harness.Result) (*restateEnv, error) {
	if serverPath == "" {
		return nil, errors.New("no restate-server binary: pass -restate-server or set RESTATE_SERVER")
	}
	// The Go service, over h2c on loopback.
	quiet := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})
	rs := server.NewRestate().WithLogger(quiet, true).Bind(restate.NewService("Bench").
		Handler("Chain", restate.NewServiceHandler(chainH)).
		Handler("FanOut", restate.NewServiceHandler(fanOutH)).
		Handler("Timer", restate.NewServiceHandler(timerH)).
		Handler("LongChain", restate.NewServiceHandler(longChainH)).
		Handler("Ping", restate.NewServiceHandler(pingH)))
	h, err := rs.Handler()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	env := &restateEnv{svc: &http.Server{Handler: h, Protocols: &protocols}, exited: make(chan struct{})}
	go env.svc.Serve(ln)
	svcURL := "http://" + ln.Addr().String()

	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return env, err
		}
	}
	env.ingress = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	env.admin = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	base := filepath.Join(p.Dir, "restate-data")
	cfg := fmt.Sprintf(`# written by restatebench: every listener on 127.0.0.1, telemetry off,
# durability (fsync) left at Restate's defaults.
cluster-name = "weftbench"
node-name = "bench"
base-dir = %q
bind-address = "127.0.0.1:%d"
advertised-address = "http://127.0.0.1:%d/"
disable-telemetry = true
log-filter = "warn"
log-disable-ansi-codes = true
shutdown-timeout = "20s"

[admin]
bind-address = "127.0.0.1:%d"
disable-web-ui = true

[ingress]
bind-address = "127.0.0.1:%d"
`, base, ports[2], ports[2], ports[1], ports[0])
	cfgPath := filepath.Join(p.Dir, "restate.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return env, err
	}
	logf, err := os.Create(filepath.Join(p.Dir, "restate-server.log"))
	if err != nil {
		return env, err
	}
	env.cmd = exec.Command(serverPath, "--config-file", cfgPath, "--no-logo", "--listen-mode", "tcp")
	env.cmd.Stdout, env.cmd.Stderr = logf, logf
	env.cmd.Env = append(os.Environ(), "DO_NOT_TRACK=1")
	env.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := env.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start restate-server: %w", err)
	}
	go func() { env.cmd.Wait(); logf.Close(); close(env.exited) }()
	env.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxIdleConns: 4096, IdleConnTimeout: time.Minute}}

	// Setup (not measured): wait for the admin API, register, wait for the route.
	if err := env.until(ctx, 60*time.Second, func() error {
		_, err := env.do(ctx, http.MethodGet, env.admin+"/health", nil, http.StatusOK)
		return err
	}); err != nil {
		return env, fmt.Errorf("restate admin API not up: %w (log: %s)", err, tail(filepath.Join(p.Dir, "restate-server.log")))
	}
	reg, _ := json.Marshal(map[string]any{"uri": svcURL, "force": true})
	if err := env.until(ctx, 30*time.Second, func() error {
		_, err := env.do(ctx, http.MethodPost, env.admin+"/deployments", reg, http.StatusCreated, http.StatusOK)
		return err
	}); err != nil {
		return env, fmt.Errorf("register the service: %w", err)
	}
	if err := env.until(ctx, 60*time.Second, func() error {
		_, err := env.do(ctx, http.MethodPost, env.ingress+"/Bench/Ping", []byte("1"), http.StatusOK)
		return err
	}); err != nil {
		return env, fmt.Errorf("ingress does not route to the service: %w", err)
	}
	res.Set("server_ready_s", time.Since(t0).Seconds())
	res.Notef("Restate server %s, Go SDK v1.2.0 service registered over h2c, every listener on 127.0.0.1, fsync at defaults", serverVersion())
	return env, nil
}

func serverVersion() string {
	out, err := exec.Command(serverPath, "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "restate-server"))
}

// until retries f every 50 ms (setup only, never during a measurement).
func (e *restateEnv) until(ctx context.Context, limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-e.exited:
			return fmt.Errorf("restate-server exited (%v)", e.cmd.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

func (e *restateEnv) do(ctx context.Context, method, url string, body []byte, want ...int) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s %s: %s %s", method, url, resp.Status, bytes.TrimSpace(b))
}

// send starts handler with input and returns the invocation id.
func (e *restateEnv) send(ctx context.Context, handler string, input any) (string, error) {
	b, _ := json.Marshal(input)
	out, err := e.do(ctx, http.MethodPost, e.ingress+"/Bench/"+handler+"/send", b, http.StatusAccepted, http.StatusOK)
	if err != nil {
		return "", err
	}
	var r struct {
		InvocationID string `json:"invocationId"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.InvocationID == "" {
		return "", fmt.Errorf("send %s: answer %s", handler, out)
	}
	return r.InvocationID, nil
}

// attach waits for invocation id to complete and checks its output.
func (e *restateEnv) attach(ctx context.Context, id, want string) error {
	out, err := e.do(ctx, http.MethodGet, e.ingress+"/restate/invocation/"+id+"/attach", nil, http.StatusOK)
	if err != nil {
		return err
	}
	if want != "" && string(bytes.TrimSpace(out)) != want {
		return fmt.Errorf("%s: output %s, want %s", id, out, want)
	}
	return nil
}

// cpu is the CPU time used so far by this process and restate-server together.
func (e *restateEnv) cpu() time.Duration {
	return harness.CPU() + harness.ProcCPU(e.cmd.Process.Pid)
}

// stop ends restate-server gracefully (SIGTERM) and lists its peak RSS and CPU.
func (e *restateEnv) stop(res *harness.Result) {
	if e.svc != nil {
		defer e.svc.Close()
	}
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(30 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
		res.Notef("restate-server did not stop within 30 s of SIGTERM; killed")
	}
	if ps := e.cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.Procs = append(res.Procs, harness.Proc{Name: "restate-server", PeakRSSMiB: float64(ru.Maxrss) / 1024, CPUSeconds: harness.RusageCPU(ru)})
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// ---- scenarios ----

func chain(ctx context.Context, res *harness.Result, e *restateEnv) error {
	res.Size = fmt.Sprintf("%d instances × %d activities", p.N, p.Steps)
	ids := make([]string, p.N)
	cpu0 := e.cpu()
	total, starting, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) (err error) {
			ids[i], err = e.send(ctx, "Chain", chainIn{Start: i, Steps: p.Steps})
			return err
		},
		func(ctx context.Context, i int) error { return e.attach(ctx, ids[i], strconv.Itoa(i+p.Steps)) })
	acts := float64(p.N * p.Steps)
	res.Set("acts_per_s", acts/total.Seconds())
	res.Set("elapsed_s", total.Seconds())
	res.Set("start_s", starting.Seconds())
	res.Set("cpu_us_per_act", float64((e.cpu()-cpu0).Microseconds())/acts)
	return err
}

func fanOut(ctx context.Context, res *harness.Result, e *restateEnv) error {
	res.Size = fmt.Sprintf("%d instances × %d parallel activities", p.N, p.Width)
	ids := make([]string, p.N)
	want := strconv.Itoa(p.Width * (p.Width + 1) / 2)
	cpu0 := e.cpu()
	total, _, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) (err error) {
			ids[i], err = e.send(ctx, "FanOut", p.Width)
			return err
		},
		func(ctx context.Context, i int) error { return e.attach(ctx, ids[i], want) })
	acts := float64(p.N * p.Width)
	res.Set("acts_per_s", acts/total.Seconds())
	res.Set("elapsed_s", total.Seconds())
	res.Set("cpu_us_per_act", float64((e.cpu()-cpu0).Microseconds())/acts)
	return err
}

// single: one synchronous ingress call at a time (the call returns with the
// handler's result).
func single(ctx context.Context, res *harness.Result, e *restateEnv, steps int, what string) error {
	res.Size = fmt.Sprintf("%d %s, one at a time (+%d warm-up)", p.N, what, p.Warmup)
	var lat []float64
	cpu0 := e.cpu()
	defer func() {
		if len(lat) > 0 {
			res.Set("cpu_us_per_act", float64((e.cpu()-cpu0).Microseconds())/float64(len(lat)*steps))
		}
	}()
	for i := range p.Warmup + p.N {
		if i == p.Warmup {
			cpu0 = e.cpu()
		}
		b, _ := json.Marshal(chainIn{Start: i, Steps: steps})
		t0 := time.Now()
		out, err := e.do(ctx, http.MethodPost, e.ingress+"/Bench/Chain", b, http.StatusOK)
		if err != nil {
			res.SetLatencies("", lat)
			return err
		}
		if string(bytes.TrimSpace(out)) != strconv.Itoa(i+steps) {
			return fmt.Errorf("chain %d: output %s", i, out)
		}
		if i >= p.Warmup {
			lat = append(lat, harness.Ms(time.Since(t0)))
		}
	}
	res.SetLatencies("", lat)
	return nil
}

func timers(ctx context.Context, res *harness.Result, e *restateEnv, delay func(int) time.Duration) error {
	res.Size = fmt.Sprintf("%d instances, timers of %s–%s", p.N, delay(0).Round(time.Millisecond), delay(p.N-1).Round(time.Millisecond))
	dueAt, firedAt = harness.NewStamps(p.N, p.N), harness.NewStamps(p.N, p.N)
	ids := make([]string, p.N)
	total, starting, err := harness.Batch(ctx, p.N, p.Conc,
		func(ctx context.Context, i int) (err error) {
			ids[i], err = e.send(ctx, "Timer", timerIn{I: i, Delay: int64(delay(i))})
			return err
		},
		func(ctx context.Context, i int) error { return e.attach(ctx, ids[i], strconv.Itoa(i)) })
	res.Set("all_done_s", total.Seconds())
	res.Set("start_s", starting.Seconds())
	res.SetTimerMetrics(dueAt, firedAt)
	return err
}

func longChain(ctx context.Context, res *harness.Result, e *restateEnv) error {
	res.Size = fmt.Sprintf("1 instance × %d sequential activities", p.Steps)
	stepAt = harness.NewStamps(p.Steps, p.Steps)
	t0 := time.Now()
	id, err := e.send(ctx, "LongChain", p.Steps)
	if err != nil {
		return err
	}
	err = e.attach(ctx, id, strconv.Itoa(p.Steps))
	res.Set("elapsed_s", time.Since(t0).Seconds())
	res.Set("acts_per_s", float64(stepAt.Count())/time.Since(t0).Seconds())
	res.StepStats(stepAt)
	return err
}
