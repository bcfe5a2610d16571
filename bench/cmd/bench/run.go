package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weftrt/weft/bench/internal/harness"
)

// record is one run of one engine on one scenario.
type record struct {
	Scenario string          `json:"scenario"`
	Engine   string          `json:"engine"`
	Run      int             `json:"run"`
	Result   *harness.Result `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Wall     float64         `json:"wall_s"`
	Load     [2]float64      `json:"loadavg_1m"` // before, after
	Log      string          `json:"log,omitempty"`
}

// ok reports whether the run produced a result without error.
func (r *record) ok() bool { return r.Error == "" && r.Result != nil && r.Result.Error == "" }

func (r *record) errText() string {
	switch {
	case r.Error != "":
		return r.Error
	case r.Result == nil:
		return "no result"
	}
	return r.Result.Error
}

// runner starts worker processes, one at a time.
type runner struct {
	binDir        string
	workDir       string
	logDir        string
	keep          bool
	restateServer string
	netns         bool

	mu      sync.Mutex
	current *exec.Cmd // the worker running now, killed on interrupt
}

// killCurrent kills the running worker's process group (it and what it started).
func (r *runner) killCurrent() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != nil && r.current.Process != nil {
		_ = syscall.Kill(-r.current.Process.Pid, syscall.SIGKILL)
	}
}

func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

// run runs engine e on scenario s once (restart: both phases).
func (r *runner) run(s scenario, e string, run int) *record {
	rec := &record{Scenario: s.name, Engine: e, Run: run, Load: [2]float64{loadavg(), 0}}
	t0 := time.Now()
	defer func() { rec.Wall = time.Since(t0).Seconds(); rec.Load[1] = loadavg() }()

	dir, err := os.MkdirTemp(r.workDir, fmt.Sprintf("%s-%s-%d-", s.name, e, run))
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	if !r.keep {
		defer os.RemoveAll(dir)
	}
	a := s.args(e)
	base := append([]string{"-scenario", s.name, "-dir", filepath.Join(dir, "data")}, a.flags()...)
	logPath := filepath.Join(r.logDir, fmt.Sprintf("%s-%s-%d.log", s.name, e, run))
	rec.Log = logPath
	hard := a.timeout + 90*time.Second // the worker stops itself at a.timeout
	if a.server != "" {
		base = append(base, "-server", filepath.Join(r.binDir, a.server),
			"-server-log", strings.TrimSuffix(logPath, ".log")+".server.log")
	}
	bin := s.worker(e)

	if s.name != harness.Restart {
		res, procs, err := r.exec(e, bin, base, logPath, hard, "")
		rec.Result = res
		if err != nil {
			rec.Error = err.Error()
		}
		mergeProcs(res, procs)
		return rec
	}
	// Restart: load until "ready", SIGKILL, then recover on the same directory.
	load, loadProcs, err := r.exec(e, bin, append(base, "-phase", "load"), logPath, hard, "ready")
	if err != nil {
		rec.Error = "load phase: " + err.Error()
		rec.Result = load
		return rec
	}
	res, procs, err := r.exec(e, bin, append(base, "-phase", "recover"), logPath, hard, "")
	rec.Result = res
	if err != nil {
		rec.Error = "recover phase: " + err.Error()
	}
	if res != nil {
		mergeProcs(res, procs)
		for i := range res.Procs {
			res.Procs[i].Name += " (reopened)"
		}
		for _, pr := range loadProcs {
			pr.Name += beforeKill
			res.Procs = append(res.Procs, pr)
		}
		if load != nil {
			for k, v := range load.Metrics {
				res.Metrics["load_"+k] = v
			}
		}
	}
	return rec
}

// mergeProcs uses the driver's wait4 figures for a worker that started no other
// process (they include the worker's shutdown); a worker that did lists each
// process itself.
func mergeProcs(res *harness.Result, waited []harness.Proc) {
	if res == nil {
		return
	}
	if len(res.Procs) <= 1 && len(waited) == 1 {
		name := waited[0].Name
		if len(res.Procs) == 1 {
			name = res.Procs[0].Name
		}
		res.Procs = []harness.Proc{{Name: name, PeakRSSMiB: waited[0].PeakRSSMiB, CPUSeconds: waited[0].CPUSeconds}}
	}
}

// exec runs one worker process (the binary named worker, for engine e). With
// killAt set, the worker is killed (SIGKILL, whole process group) as soon as it
// reports that phase, and that is success.
func (r *runner) exec(e, worker string, flags []string, logPath string, hard time.Duration, killAt string) (*harness.Result, []harness.Proc, error) {
	bin := filepath.Join(r.binDir, worker)
	argv := append([]string{bin}, flags...)
	if e == restateEng {
		argv = append(argv, "-restate-server", r.restateServer)
		if r.netns {
			// A network namespace of its own with only loopback: every listener is
			// on 127.0.0.1 anyway, and restate-server's start-up check for a newer
			// release (which no setting turns off) cannot leave the machine.
			argv = append([]string{"unshare", "--net", "--", "sh", "-c", `ip link set lo up && exec "$@"`, "sh"}, argv...)
		}
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n=== %s\n", strings.Join(argv, " "))

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	r.current = cmd
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.current = nil
		r.mu.Unlock()
	}()
	pgid := cmd.Process.Pid

	var (
		res      *harness.Result
		parseErr error
		killed   bool
		timedOut bool
	)
	timer := time.AfterFunc(hard, func() {
		timedOut = true
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, harness.ResultPrefix):
			var rr harness.Result
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, harness.ResultPrefix)), &rr); err != nil {
				parseErr = fmt.Errorf("bad result line: %w", err)
			} else {
				res = &rr
			}
		case killAt != "" && strings.TrimSpace(strings.TrimPrefix(line, harness.PhasePrefix)) == killAt && strings.HasPrefix(line, harness.PhasePrefix):
			killed = true
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		default:
			fmt.Fprintln(logf, line)
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	werr := cmd.Wait()
	timer.Stop()
	// Kill anything the worker left behind in its process group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)

	var procs []harness.Proc
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		procs = []harness.Proc{{Name: worker, PeakRSSMiB: float64(ru.Maxrss) / 1024, CPUSeconds: harness.RusageCPU(ru)}}
	}
	switch {
	case killed:
		return res, procs, nil
	case timedOut:
		return res, procs, fmt.Errorf("killed after %s (the worker did not stop at its own deadline); log: %s", hard, logPath)
	case killAt != "":
		return res, procs, fmt.Errorf("exited before phase %q (%v): %s; log: %s", killAt, werr, errLine(res), logPath)
	case parseErr != nil:
		return res, procs, parseErr
	case res == nil:
		return nil, procs, fmt.Errorf("no result line (%v); last log lines: %s", werr, tailFile(logPath, 600))
	case werr != nil && res.Error == "":
		return res, procs, fmt.Errorf("exit: %v", werr)
	}
	return res, procs, nil
}

func errLine(r *harness.Result) string {
	if r == nil {
		return "no result"
	}
	return r.Error
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.Join(strings.Fields(string(bytes.TrimSpace(b))), " ")
}

// beforeKill marks the restart scenario's first process.
const beforeKill = " (before the kill)"
