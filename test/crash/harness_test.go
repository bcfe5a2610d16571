package crashtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftrt/weft/test/crash/scenario"
)

// workerBin is the worker program, built once by TestMain (without -race: the
// process under test is the runtime, and it must run at its real speed so that a
// kill lands in the middle of its work).
var workerBin string

func TestMain(m *testing.M) {
	if os.Getenv(closeRaceChild) == "1" {
		os.Exit(m.Run()) // the child of TestCloseWaitsForReadsInProgress needs no worker
	}
	dir, err := os.MkdirTemp("", "weft-crash-worker-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash tests: temp dir:", err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "worker")
	build := exec.Command("go", "build", "-o", workerBin, "./worker")
	build.Env = append(os.Environ(), "GOFLAGS=") // no -race inherited from the test's flags
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "crash tests: go build ./test/crash/worker: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// --- the worker process -------------------------------------------------------

type workerConfig struct {
	dir      string // data directory
	logPath  string // execution log
	scenario string
	run      int      // run number, written into the execution log
	args     []string // more flags (sleeps, concurrency, timer)
}

// worker is one running worker process and what it printed.
type worker struct {
	t          testing.TB
	run        int
	cmd        *exec.Cmd
	stderrPath string
	started    time.Time

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced whenever a line arrives or the process exits
	exited  chan struct{}
	state   *os.ProcessState
}

func startWorker(t testing.TB, c workerConfig) *worker {
	t.Helper()
	args := append([]string{"-dir", c.dir, "-log", c.logPath, "-scenario", c.scenario, "-run", strconv.Itoa(c.run)}, c.args...)
	cmd := exec.Command(workerBin, args...)
	stderrPath := filepath.Join(filepath.Dir(c.logPath), fmt.Sprintf("worker-%d.stderr", c.run))
	errf, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = errf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{t: t, run: c.run, cmd: cmd, stderrPath: stderrPath, changed: make(chan struct{}), exited: make(chan struct{})}
	w.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			_ = cmd.Process.Kill()
			<-w.exited
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		_ = errf.Close()
		w.mu.Lock()
		w.state = cmd.ProcessState
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
		close(w.exited)
	}()
	return w
}

// Lines returns what the worker printed so far.
func (w *worker) Lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// waitLine waits for a line starting with prefix and returns it; ok is false if the
// process exited or the timeout passed first.
func (w *worker) waitLine(prefix string, timeout time.Duration) (line string, ok bool) {
	return w.waitMatch(func(l string) bool { return strings.HasPrefix(l, prefix) }, timeout)
}

// waitCommitted waits for the worker (run with -watch) to report at least n
// committed activity completions of instance id.
func (w *worker) waitCommitted(id string, n int, timeout time.Duration) bool {
	_, ok := w.waitMatch(func(l string) bool {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "COMMITTED" || f[1] != id {
			return false
		}
		c, err := strconv.Atoi(f[2])
		return err == nil && c >= n
	}, timeout)
	return ok
}

func (w *worker) waitMatch(match func(string) bool, timeout time.Duration) (line string, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		for _, l := range w.lines {
			if match(l) {
				w.mu.Unlock()
				return l, true
			}
		}
		ch, done := w.changed, w.state != nil
		w.mu.Unlock()
		if done {
			return "", false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return "", false
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone. It reports whether the
// kill is what ended it (false: it had already exited by itself).
func (w *worker) kill() bool {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited
	ws, ok := w.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// wait waits for the worker to exit by itself and fails the test unless it exited
// 0 having printed CLOSED.
func (w *worker) wait(timeout time.Duration) {
	w.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-w.exited:
	default:
		select {
		case <-w.exited:
		case <-timer.C:
			_ = w.cmd.Process.Kill()
			<-w.exited
			w.fatalf("worker run %d did not finish within %s", w.run, timeout)
		}
	}
	if !w.state.Success() {
		w.fatalf("worker run %d exited with %s", w.run, w.state)
	}
	if _, ok := w.waitLine("CLOSED", 0); !ok {
		w.fatalf("worker run %d exited 0 without printing CLOSED", w.run)
	}
}

// fatalf fails the test, showing what the worker printed.
func (w *worker) fatalf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("%s\n--- worker run %d stdout:\n%s\n--- stderr:\n%s", fmt.Sprintf(format, args...), w.run,
		abbreviate(strings.Join(w.Lines(), "\n")), abbreviate(readFile(w.stderrPath)))
}

// checkStderr fails the test if the worker logged at ERROR level (a recovered
// panic, a failed commit, a pebble error) and shows its warnings.
func (w *worker) checkStderr() {
	w.t.Helper()
	for _, l := range strings.Split(readFile(w.stderrPath), "\n") {
		switch {
		case strings.Contains(l, "level=ERROR"), strings.Contains(l, "panic"):
			w.fatalf("worker run %d logged an error: %s", w.run, l)
		case strings.Contains(l, "level=WARN"):
			w.t.Logf("worker run %d warned: %s", w.run, l)
		}
	}
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

func abbreviate(s string) string {
	const max = 6000
	if len(s) <= max {
		return s
	}
	return s[:max/2] + "\n[...]\n" + s[len(s)-max/2:]
}

// --- what the worker printed --------------------------------------------------

// dump is what a worker found in the store before it started the runtime: the
// state the previous run (or the kill) left behind.
type dump struct {
	complete bool              // the COUNT line, the dump's last, was printed
	states   map[string]string // instance → status or ABSENT
	hist     map[string][]scenario.Event
	count    int
	openMS   int // how long the worker took from main to the end of the dump
}

func parseDump(t testing.TB, lines []string) dump {
	t.Helper()
	d := dump{states: map[string]string{}, hist: map[string][]scenario.Event{}}
	for _, l := range lines {
		f := strings.SplitN(l, " ", 3)
		switch f[0] {
		case "STATE":
			d.states[f[1]] = f[2]
		case "HIST":
			var evs []scenario.Event
			if err := json.Unmarshal([]byte(f[2]), &evs); err != nil {
				t.Fatalf("bad HIST line %q: %v", abbreviate(l), err)
			}
			d.hist[f[1]] = evs
		case "COUNT":
			f = strings.Fields(l)
			n, err := strconv.Atoi(f[1])
			if err == nil {
				d.openMS, err = strconv.Atoi(f[2])
			}
			if err != nil {
				t.Fatalf("bad COUNT line %q", l)
			}
			d.count, d.complete = n, true
			return d
		case "READY", "ERROR":
			return d
		}
	}
	return d
}

type result struct {
	status string
	output string
	final  []scenario.Event
}

func parseResults(t testing.TB, lines []string) map[string]*result {
	t.Helper()
	res := map[string]*result{}
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		switch f[0] {
		case "RESULT":
			res[f[1]] = &result{status: f[2], output: f[3]}
		case "FINAL":
			f = strings.SplitN(l, " ", 3)
			r := res[f[1]]
			if r == nil {
				t.Fatalf("FINAL before RESULT for %s", f[1])
			}
			if err := json.Unmarshal([]byte(f[2]), &r.final); err != nil {
				t.Fatalf("bad FINAL line %q: %v", abbreviate(l), err)
			}
		}
	}
	return res
}

// --- the execution log --------------------------------------------------------

// execution is one line of the execution log.
type execution struct {
	done     bool // a "done" line; else a "start" line
	instance string
	item     int
	attempt  int // start lines only
	run      int
}

type itemKey struct {
	instance string
	item     int
}

// readLog parses the complete lines of the execution log.
func readLog(t testing.TB, path string) []execution {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []execution
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		var e execution
		var err error
		switch {
		case len(f) == 5 && f[0] == "start":
			e.instance = f[1]
			e.item, err = strconv.Atoi(f[2])
			if err == nil {
				e.attempt, err = strconv.Atoi(f[3])
			}
			if err == nil {
				e.run, err = strconv.Atoi(f[4])
			}
		case len(f) == 4 && f[0] == "done":
			e.done, e.instance = true, f[1]
			e.item, err = strconv.Atoi(f[2])
			if err == nil {
				e.run, err = strconv.Atoi(f[3])
			}
		default:
			err = errors.New("unknown line")
		}
		if err != nil {
			t.Fatalf("execution log %s: bad line %q: %v", path, l, err)
		}
		out = append(out, e)
	}
	return out
}

// tally counts start and done lines per item, optionally only of some runs.
type tally struct {
	starts map[itemKey]int
	dones  map[itemKey]int
}

func count(log []execution, keep func(execution) bool) tally {
	c := tally{starts: map[itemKey]int{}, dones: map[itemKey]int{}}
	for _, e := range log {
		if keep != nil && !keep(e) {
			continue
		}
		k := itemKey{e.instance, e.item}
		if e.done {
			c.dones[k]++
		} else {
			c.starts[k]++
		}
	}
	return c
}

func total(m map[itemKey]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// --- history checks -----------------------------------------------------------

// checkHistory checks that an instance's committed history is one its workflow
// can have produced, and consistent with its status: every completion matches an
// earlier scheduling and is the right value, nothing is completed twice, the
// steps come in the workflow's order (a fan-out schedules all its items in the
// batch that starts it), a timer fires no earlier than due, and the instance
// completes, with the right output, only once everything it waited for is done.
func checkHistory(in scenario.Instance, status string, evs []scenario.Event) error {
	switch status {
	case "RUNNING", "COMPLETED":
	default:
		return fmt.Errorf("%s: status %s; expected RUNNING or COMPLETED", in.ID, status)
	}
	if len(evs) == 0 {
		return fmt.Errorf("%s: %s with an empty history", in.ID, status)
	}
	first := evs[0]
	want, _ := json.Marshal(in.Job)
	if first.Kind != "workflow-started" || first.Name != in.Workflow || !jsonEqual(first.Data, want) {
		return fmt.Errorf("%s: history starts with %s %s %s; expected workflow-started %s %s", in.ID, first.Kind, first.Name, first.Data, in.Workflow, want)
	}
	type task struct {
		item      int
		completed bool
	}
	tasks := map[int64]*task{}
	byItem := map[int]int64{}
	timers := map[int64]scenario.Event{}
	fired := map[int64]bool{}
	completedItems, openTasks := 0, 0
	terminal := -1
	for i, ev := range evs[1:] {
		i++
		if terminal >= 0 {
			return fmt.Errorf("%s: event %d (%s) after the terminal event", in.ID, i, ev.Kind)
		}
		switch ev.Kind {
		case "activity-scheduled":
			var it scenario.Item
			if err := json.Unmarshal(ev.Data, &it); err != nil || ev.Name != "Work" {
				return fmt.Errorf("%s: event %d: bad activity-scheduled %s %s", in.ID, i, ev.Name, ev.Data)
			}
			if tasks[ev.Task] != nil {
				return fmt.Errorf("%s: task %d scheduled twice", in.ID, ev.Task)
			}
			if _, dup := byItem[it.Item]; dup || it.Item < 0 || it.Item >= in.Items() {
				return fmt.Errorf("%s: item %d scheduled twice or out of range", in.ID, it.Item)
			}
			if it.Value != in.Value(it.Item) {
				return fmt.Errorf("%s: item %d scheduled with value %d; expected %d", in.ID, it.Item, it.Value, in.Value(it.Item))
			}
			if in.Workflow != "FanOut" && (it.Item != len(byItem) || openTasks != 0) {
				return fmt.Errorf("%s: %s scheduled item %d with %d items scheduled and %d open; expected them one after the other", in.ID, in.Workflow, it.Item, len(byItem), openTasks)
			}
			if in.Workflow == "FanOut" && i != 1+it.Item {
				return fmt.Errorf("%s: fan-out item %d scheduled at event %d; expected every item in the starting batch", in.ID, it.Item, i)
			}
			if in.Workflow == "TimerFlow" && it.Item == 1 && len(fired) != 1 {
				return fmt.Errorf("%s: second activity scheduled before the timer fired", in.ID)
			}
			tasks[ev.Task] = &task{item: it.Item}
			byItem[it.Item] = ev.Task
			openTasks++
		case "activity-completed":
			tk := tasks[ev.Task]
			if tk == nil || tk.completed {
				return fmt.Errorf("%s: event %d: activity-completed for task %d, which is not outstanding", in.ID, i, ev.Task)
			}
			var v int
			if err := json.Unmarshal(ev.Data, &v); err != nil || v != in.Value(tk.item)+1 {
				return fmt.Errorf("%s: item %d completed with %s; expected %d", in.ID, tk.item, ev.Data, in.Value(tk.item)+1)
			}
			tk.completed = true
			completedItems++
			openTasks--
		case "timer-created":
			if in.Workflow != "TimerFlow" || len(timers) > 0 || completedItems != 1 || ev.FireAt == nil {
				return fmt.Errorf("%s: unexpected timer-created at event %d", in.ID, i)
			}
			prev := evs[i-1]
			if wantAt := prev.Time.Add(time.Duration(in.Job.DelayMS) * time.Millisecond); !ev.FireAt.Equal(wantAt) {
				return fmt.Errorf("%s: timer due %s; expected %s (the first activity's completion + %dms)", in.ID, ev.FireAt, wantAt, in.Job.DelayMS)
			}
			timers[ev.Task] = ev
		case "timer-fired":
			tm, ok := timers[ev.Task]
			if !ok || fired[ev.Task] {
				return fmt.Errorf("%s: timer-fired for task %d, which is not pending", in.ID, ev.Task)
			}
			if ev.Time.Before(*tm.FireAt) {
				return fmt.Errorf("%s: timer due %s fired early, at %s", in.ID, tm.FireAt, ev.Time)
			}
			fired[ev.Task] = true
		case "workflow-completed":
			if completedItems != in.Items() || len(timers) != len(fired) {
				return fmt.Errorf("%s: completed with %d of %d items done", in.ID, completedItems, in.Items())
			}
			var out int
			if err := json.Unmarshal(ev.Data, &out); err != nil || out != in.Expected() {
				return fmt.Errorf("%s: completed with output %s; expected %d", in.ID, ev.Data, in.Expected())
			}
			terminal = i
		default:
			return fmt.Errorf("%s: unexpected event %d: %s %s %s", in.ID, i, ev.Kind, ev.Data, ev.Fail)
		}
	}
	if (status == "COMPLETED") != (terminal >= 0) {
		return fmt.Errorf("%s: status %s but the history %s a workflow-completed event", in.ID, status, map[bool]string{true: "has", false: "lacks"}[terminal >= 0])
	}
	return nil
}

// committedItems returns the items whose completion is in the history.
func committedItems(evs []scenario.Event) map[int]bool {
	items := map[int64]int{}
	out := map[int]bool{}
	for _, ev := range evs {
		switch ev.Kind {
		case "activity-scheduled":
			var it scenario.Item
			_ = json.Unmarshal(ev.Data, &it)
			items[ev.Task] = it.Item
		case "activity-completed":
			out[items[ev.Task]] = true
		}
	}
	return out
}

// checkPrefix checks that an earlier history is a prefix of a later one: nothing
// committed is ever lost or rewritten.
func checkPrefix(id string, earlier, later []scenario.Event) error {
	if len(earlier) > len(later) {
		return fmt.Errorf("%s: history shrank from %d to %d events", id, len(earlier), len(later))
	}
	for i := range earlier {
		a, _ := json.Marshal(earlier[i])
		b, _ := json.Marshal(later[i])
		if !bytes.Equal(a, b) {
			return fmt.Errorf("%s: history event %d changed from %s to %s", id, i, a, b)
		}
	}
	return nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func instances(t testing.TB, name string, timer time.Duration, rounds int) []scenario.Instance {
	t.Helper()
	ins, err := scenario.Get(name, timer, rounds)
	if err != nil {
		t.Fatal(err)
	}
	return ins
}
