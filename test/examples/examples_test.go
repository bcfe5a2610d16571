// Package examples_test builds each program in examples/ (without the race
// detector) and runs it, asserting on what it prints.
package examples_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bin holds the example binaries, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weft-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	// One go build for the programs, linked in parallel, without the race
	// detector and without DWARF (-s -w: half the link time; stack traces remain).
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", dir+string(filepath.Separator),
		"./examples/chaining", "./examples/fanout", "./examples/monitor", "./examples/approval", "./examples/asynchttp", "./examples/versioning")
	cmd.Dir = filepath.Join("..", "..") // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./examples/...: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build returns the path of the binary of ./examples/name.
func build(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(bin, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs bin with args and returns its standard output and exit code.
func run(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), err, &stdout, &stderr)
	}
	t.Logf("$ %s %s (exit %d)\n%s%s", filepath.Base(bin), strings.Join(args, " "), code, &stdout, &stderr)
	return stdout.String(), code
}

// find returns the submatches of the first line matching re, or fails the test.
func find(t *testing.T, out string, re *regexp.Regexp) []string {
	t.Helper()
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no line matches %s", re)
	}
	return m
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// --- chaining ------------------------------------------------------------------

var attemptLine = regexp.MustCompile(`(?m)^\[\s*([0-9.]+)s\] (\w+) attempt (\d+): (ok|failed)`)

type attempt struct {
	at   time.Duration
	step string // e.g. "ChargePayment 2 failed"
}

func attempts(t *testing.T, out string) []attempt {
	var as []attempt
	for _, m := range attemptLine.FindAllStringSubmatch(out, -1) {
		secs, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, attempt{time.Duration(secs * float64(time.Second)), m[2] + " " + m[3] + " " + m[4]})
	}
	return as
}

func steps(as []attempt) []string {
	var s []string
	for _, a := range as {
		s = append(s, a.step)
	}
	return s
}

// checkBackoff checks that consecutive attempts were spaced at least as the
// policy says (the waits are lower bounds: a retry reminder never fires early).
func checkBackoff(t *testing.T, as []attempt, waits ...time.Duration) {
	t.Helper()
	for i, w := range waits {
		// Times are printed with millisecond precision.
		if gap := as[i+1].at - as[i].at; gap < w-time.Millisecond {
			t.Errorf("wait before %s was %s, the policy says %s", as[i+1].step, gap, w)
		}
	}
}

func TestChainingTransientFailureIsRetriedWithoutCompensation(t *testing.T) {
	t.Parallel()
	bin := build(t, "chaining")
	out, code := run(t, bin, "-fail", "transient", "-step", "2", "-succeed-on", "3",
		"-first-interval", "20ms", "-coefficient", "2", "-max-interval", "1s")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	as := attempts(t, out)
	want := []string{"ReserveInventory 1 ok", "ChargePayment 1 failed", "ChargePayment 2 failed", "ChargePayment 3 ok", "ShipOrder 1 ok", "NotifyCustomer 1 ok"}
	if got := steps(as); !slices.Equal(got, want) {
		t.Fatalf("attempts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkBackoff(t, as[1:4], 20*time.Millisecond, 40*time.Millisecond)
	if strings.Contains(out, "Compensate") {
		t.Error("compensation ran although the step succeeded on a retry")
	}
	find(t, out, regexp.MustCompile(`(?m)^result: COMPLETED \{"OrderID":"po-1001","ChargeID":"ch-po-1001","TrackingNo":"trk-po-1001"\}$`))
}

func TestChainingPermanentFailureCompensatesOnceRetriesRunOut(t *testing.T) {
	t.Parallel()
	bin := build(t, "chaining")
	out, code := run(t, bin, "-fail", "permanent", "-step", "3", "-attempts", "4",
		"-first-interval", "10ms", "-coefficient", "2", "-max-interval", "25ms")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	as := attempts(t, out)
	want := []string{"ReserveInventory 1 ok", "ChargePayment 1 ok", "ShipOrder 1 failed", "ShipOrder 2 failed", "ShipOrder 3 failed", "ShipOrder 4 failed"}
	if got := steps(as); !slices.Equal(got, want) {
		t.Fatalf("attempts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkBackoff(t, as[2:6], 10*time.Millisecond, 20*time.Millisecond, 25*time.Millisecond) // the third wait is capped
	if n := strings.Count(out, "Compensate:"); n != 1 {
		t.Fatalf("compensation ran %d times, want once", n)
	}
	comp := find(t, out, regexp.MustCompile(`(?m)^\[\s*([0-9.]+)s\] Compensate: ShipOrder failed for good; undoing \[refund ch-po-1001 release res-po-1001\]$`))
	if at, _ := strconv.ParseFloat(comp[1], 64); time.Duration(at*float64(time.Second)) < as[len(as)-1].at {
		t.Error("compensation ran before the last attempt")
	}
	if strings.Index(out, "Compensate:") < strings.Index(out, "ShipOrder attempt 4") {
		t.Error("compensation printed before the last attempt")
	}
	find(t, out, regexp.MustCompile(`(?m)^result: FAILED .*activity ShipOrder \(task \d+\) failed`))
}

func TestChainingHappyPath(t *testing.T) {
	t.Parallel()
	bin := build(t, "chaining")
	out, code := run(t, bin, "-fail", "none")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := []string{"ReserveInventory 1 ok", "ChargePayment 1 ok", "ShipOrder 1 ok", "NotifyCustomer 1 ok"}
	if got := steps(attempts(t, out)); !slices.Equal(got, want) {
		t.Fatalf("attempts %v, want %v", got, want)
	}
	if strings.Contains(out, "Compensate") {
		t.Error("compensation ran on the happy path")
	}
	find(t, out, regexp.MustCompile(`(?m)^result: COMPLETED `))
}

// --- fanout --------------------------------------------------------------------

func sumOfSquares(n int) int { return n * (n + 1) * (2*n + 1) / 6 }

func TestFanOut(t *testing.T) {
	t.Parallel()
	bin := build(t, "fanout")
	out, code := run(t, bin, "-n", "25", "-k", "4")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	find(t, out, regexp.MustCompile(fmt.Sprintf(`(?m)^posted: sum of the squares = %d$`, sumOfSquares(25))))
	find(t, out, regexp.MustCompile(fmt.Sprintf(`(?m)^result: COMPLETED sum=%d expected=%[1]d$`, sumOfSquares(25))))
	find(t, out, regexp.MustCompile(`(?m)^run 1 processed 25 items$`))
	find(t, out, regexp.MustCompile(`(?m)^items processed: 25 distinct, 0 more than once`))
}

func TestFanOutResumesAfterCrashWithOnlyTheRemainingItems(t *testing.T) {
	t.Parallel()
	const n, k, crashAfter = 60, 6, 20
	bin := build(t, "fanout")
	dir := t.TempDir()
	args := []string{"-dir", dir, "-n", strconv.Itoa(n), "-k", strconv.Itoa(k)}

	out, code := run(t, bin, append(args, "-crash-after", strconv.Itoa(crashAfter))...)
	if code != 3 {
		t.Fatalf("first run: exit %d, want 3 (the os.Exit of -crash-after)", code)
	}
	find(t, out, regexp.MustCompile(`(?m)^crash: \d+ items processed in this run`))
	if strings.Contains(out, "result:") || strings.Contains(out, "posted:") {
		t.Fatal("first run finished the batch although it crashed")
	}

	out, code = run(t, bin, args...)
	if code != 0 {
		t.Fatalf("second run: exit %d", code)
	}
	m := find(t, out, regexp.MustCompile(`(?m)^resuming: (\d+) of (\d+) item results were saved before this run; (\d+) remain$`))
	saved := atoi(t, m[1])
	if atoi(t, m[2]) != n || saved < 1 || saved >= n {
		t.Fatalf("saved %s of %s before the second run", m[1], m[2])
	}
	run1 := atoi(t, find(t, out, regexp.MustCompile(`(?m)^run 1 processed (\d+) items$`))[1])
	run2 := atoi(t, find(t, out, regexp.MustCompile(`(?m)^run 2 processed (\d+) items$`))[1])
	if run1 < crashAfter || run1 < saved {
		t.Errorf("run 1 processed %d items; it crashed after %d and saved %d", run1, crashAfter, saved)
	}
	if run2 != n-saved {
		t.Errorf("run 2 processed %d items; %d of %d were saved, so exactly %d remained", run2, saved, n, n-saved)
	}
	find(t, out, regexp.MustCompile(fmt.Sprintf(`(?m)^result: COMPLETED sum=%d expected=%[1]d$`, sumOfSquares(n))))

	// The execution log, read independently: run 2 processed every item once at
	// most, and the two runs together processed every item.
	log, err := os.ReadFile(filepath.Join(dir, "executions.log"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	inRun2 := map[int]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var r, item int
		if _, err := fmt.Sscanf(line, "%d %d", &r, &item); err != nil {
			continue // a "run N" header
		}
		seen[item] = true
		if r == 2 {
			inRun2[item]++
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct items processed, want %d", len(seen), n)
	}
	for item, c := range inRun2 {
		if c > 1 {
			t.Errorf("item %d processed %d times in run 2", item, c)
		}
	}
}

// --- monitor -------------------------------------------------------------------

func TestMonitorAlertsOncePerTransition(t *testing.T) {
	t.Parallel()
	const hosts, cycles = 20, 8
	bin := build(t, "monitor")
	out, code := run(t, bin, "-n", strconv.Itoa(hosts), "-cycles", strconv.Itoa(cycles),
		"-healthy-sleep", "20ms", "-unhealthy-sleep", "5ms")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	alerts := map[string][]int{} // host → cycles alerted at
	for _, m := range regexp.MustCompile(`(?m)^ALERT (host-\d+): healthy → unhealthy at cycle (\d+)$`).FindAllStringSubmatch(out, -1) {
		alerts[m[1]] = append(alerts[m[1]], atoi(t, m[2]))
	}
	hostLines := regexp.MustCompile(`(?m)^(host-\d+): (\d+) cycles, (\d+) alerts, statuses ([HU]+), generation (\d+)$`).FindAllStringSubmatch(out, -1)
	if len(hostLines) != hosts {
		t.Fatalf("%d host lines, want %d", len(hostLines), hosts)
	}
	transitions, unalerted := 0, 0
	for _, m := range hostLines {
		host, seen := m[1], m[4]
		if atoi(t, m[2]) != cycles || len(seen) != cycles || atoi(t, m[5]) != cycles-1 {
			t.Errorf("%s: %s cycles, statuses %s, generation %s; want %d cycles in %d generations", host, m[2], seen, m[5], cycles, cycles)
		}
		var want []int
		for c := 1; c < len(seen); c++ {
			if seen[c-1] == 'H' && seen[c] == 'U' {
				want = append(want, c)
			}
		}
		unalerted += strings.Count(seen, "U") - len(want)
		transitions += len(want)
		got := slices.Sorted(slices.Values(alerts[host]))
		if !slices.Equal(got, want) || atoi(t, m[3]) != len(want) {
			t.Errorf("%s: statuses %s, alerts at cycles %v (counted %s), want one at each healthy→unhealthy transition %v", host, seen, got, m[3], want)
		}
	}
	if transitions == 0 || unalerted == 0 {
		t.Fatalf("the simulated statuses have %d transitions and %d unhealthy checks without one: the test shows nothing", transitions, unalerted)
	}
	find(t, out, regexp.MustCompile(fmt.Sprintf(`(?m)^alerts: %d sent, %[1]d healthy→unhealthy transitions$`, transitions)))
	find(t, out, regexp.MustCompile(fmt.Sprintf(`(?m)^cycles per host: min %d, max %[1]d `, cycles)))
	// Continue-as-new keeps only the last cycle's history.
	if ev := atoi(t, find(t, out, regexp.MustCompile(`(?m)^history of monitor-host-00001: (\d+) events`))[1]); ev > 10 {
		t.Errorf("history holds %d events after %d cycles", ev, cycles)
	}
	find(t, out, regexp.MustCompile(`(?m)^memory: heap in use [0-9.]+ MiB, RSS `))
}

func TestMonitorManyHosts(t *testing.T) {
	t.Parallel()
	bin := build(t, "monitor")
	out, code := run(t, bin, "-n", "1000", "-cycles", "3", "-healthy-sleep", "10ms", "-unhealthy-sleep", "5ms")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(out, "ALERT") {
		t.Error("alerts printed one by one for 1,000 hosts")
	}
	m := find(t, out, regexp.MustCompile(`(?m)^alerts: (\d+) sent, (\d+) healthy→unhealthy transitions$`))
	if m[1] != m[2] || m[1] == "0" {
		t.Errorf("alerts %s, transitions %s", m[1], m[2])
	}
	find(t, out, regexp.MustCompile(`(?m)^cycles per host: min 3, max 3 \(3000 in all`))
}

// --- approval ------------------------------------------------------------------

func TestApprovalTakesEachPath(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	bin := build(t, "approval")
	out, code := run(t, bin, "-timeout", timeout.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	result := func(id string) (outcome, reason string, took time.Duration) {
		m := find(t, out, regexp.MustCompile(`(?m)^`+id+` \$\s*[0-9.]+ (\w+)\s+(.*) \(took (\S+)\)$`))
		d, err := time.ParseDuration(m[3])
		if err != nil {
			t.Fatal(err)
		}
		return m[1], m[2], d
	}
	for _, c := range []struct{ id, outcome, reason string }{
		{"po-1001", "processed", "at most 1000: no approval needed"},
		{"po-1002", "processed", "approved by the manager"},
		{"po-1003", "cancelled", "rejected by the manager"},
		{"po-1004", "cancelled", "no approval within " + timeout.String()},
	} {
		outcome, reason, took := result(c.id)
		if outcome != c.outcome || reason != c.reason {
			t.Errorf("%s: %s (%s), want %s (%s)", c.id, outcome, reason, c.outcome, c.reason)
		}
		if c.id == "po-1004" && took < timeout {
			t.Errorf("%s timed out after %s, before its %s timeout", c.id, took, timeout)
		}
	}
	// Each activity ran for exactly the orders on its path.
	for _, c := range []struct {
		line string
		ids  []string
	}{
		{"RequestApproval: asking the manager to approve %s ", []string{"po-1002", "po-1003", "po-1004"}},
		{"PlaceOrder: %s placed", []string{"po-1001", "po-1002"}},
		{"CancelOrder: %s cancelled", []string{"po-1003", "po-1004"}},
	} {
		for _, id := range []string{"po-1001", "po-1002", "po-1003", "po-1004"} {
			want := 0
			if slices.Contains(c.ids, id) {
				want = 1
			}
			if n := strings.Count(out, fmt.Sprintf(c.line, id)); n != want {
				t.Errorf("%q printed %d times, want %d", fmt.Sprintf(c.line, id), n, want)
			}
		}
	}
}
