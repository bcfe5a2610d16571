// Package crashtest kills a real weft process with SIGKILL in the middle of its
// work, starts it again on the same directory, and checks what the durable
// runtime promises (DESIGN.md, "The one idea"): nothing committed is lost or run
// again, what was in flight runs again, timers due during the downtime fire after
// the restart, and the store is valid after a kill at any moment.
//
// The process under test is test/crash/worker, built once by TestMain. Its
// activity writes an fsync'd line to an append-only execution log when it starts
// and when it finishes; before it starts the runtime, it prints the committed
// status and history of every instance, which is how the tests know exactly what
// the kill left in the store.
package crashtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftrt/weft/test/crash/scenario"
)

// What may run twice. An activity attempt holds one of the worker's
// ActivityConcurrency slots from before it writes its start line until after it
// writes its done line, so at a kill at most that many items are running (started,
// not finished). An item that finished but whose completion the workflow had not
// committed yet may also run again: the runtime commits results within
// milliseconds, but nothing bounds how many finish in that window. So the tests
// kill after the worker (-watch) has seen a number of completions committed, read
// the committed history the kill left behind (the restarted worker prints it
// before it resumes anything), and hold the runtime to exactly this: an item whose
// completion was committed never runs again, every other item runs once more after
// the restart, so executions = items + (started and uncommitted at the kill).

// TestFanOutKilledMidway: a fan-out of 100 activities, SIGKILLed once 40
// completions are committed; the restarted process completes it with the right
// sum; every activity whose completion was committed before the kill ran exactly
// once; the restart ran exactly the others, once each; so total executions ≤ 100 +
// in flight at the kill (with equality).
func TestFanOutKilledMidway(t *testing.T) {
	const (
		n           = 100
		concurrency = 8
		id          = "fanout-1"
	)
	dir := t.TempDir()
	cfg := workerConfig{dir: filepath.Join(dir, "db"), logPath: filepath.Join(dir, "executions.log"), scenario: "fanout",
		args: []string{"-min-sleep", "15ms", "-max-sleep", "30ms", "-concurrency", strconv.Itoa(concurrency), "-watch"}}
	in := instances(t, "fanout", 0, 1)[0]

	cfg.run = 1
	w1 := startWorker(t, cfg)
	if !w1.waitCommitted(id, 40, 30*time.Second) {
		w1.fatalf("no 40 committed completions")
	}
	if !w1.kill() {
		w1.fatalf("the worker exited before the kill")
	}
	if _, ok := w1.waitLine("RESULT", 0); ok {
		w1.fatalf("killed too late: the fan-out had already completed")
	}
	w1.checkStderr()
	atKill := count(readLog(t, cfg.logPath), nil)

	cfg.run = 2
	w2 := startWorker(t, cfg)
	w2.wait(60 * time.Second)
	w2.checkStderr()
	lines := w2.Lines()
	d := parseDump(t, lines)
	if !d.complete || d.states[id] != "RUNNING" || d.count != 1 {
		w2.fatalf("after the kill the store holds %v (%d instances); expected %s RUNNING", d.states, d.count, id)
	}
	if err := checkHistory(in, "RUNNING", d.hist[id]); err != nil {
		t.Fatalf("history after the kill: %v", err)
	}
	committed := committedItems(d.hist[id])
	res := parseResults(t, lines)[id]
	if res == nil || res.status != "COMPLETED" || res.output != strconv.Itoa(in.Expected()) {
		w2.fatalf("result %+v; expected COMPLETED %d", res, in.Expected())
	}
	if err := checkHistory(in, "COMPLETED", res.final); err != nil {
		t.Fatalf("final history: %v", err)
	}
	if err := checkPrefix(id, d.hist[id], res.final); err != nil {
		t.Fatal(err)
	}

	log := readLog(t, cfg.logPath)
	all := count(log, nil)
	rerun := count(log, func(e execution) bool { return e.run == 2 })
	var inFlight, running, doneUncommitted []int
	for i := range n {
		k := itemKey{id, i}
		if atKill.starts[k] > 1 || rerun.starts[k] > 1 {
			t.Errorf("item %d started %d times before the kill and %d times after", i, atKill.starts[k], rerun.starts[k])
		}
		if committed[i] {
			// Committed before the kill: ran exactly once, before the kill.
			if all.starts[k] != 1 || all.dones[k] != 1 || atKill.dones[k] != 1 {
				t.Errorf("item %d, committed before the kill, has %d start and %d done lines (%d done before the kill); expected exactly one run, before the kill",
					i, all.starts[k], all.dones[k], atKill.dones[k])
			}
			continue
		}
		// Not committed: the restart runs it, exactly once.
		if rerun.starts[k] != 1 || rerun.dones[k] != 1 {
			t.Errorf("item %d, not committed at the kill, started %d and finished %d times after the restart; expected once", i, rerun.starts[k], rerun.dones[k])
		}
		if atKill.starts[k] > 0 {
			inFlight = append(inFlight, i)
			if atKill.dones[k] > 0 {
				doneUncommitted = append(doneUncommitted, i)
			} else {
				running = append(running, i)
			}
		}
	}
	if len(committed) < 40 {
		t.Errorf("%d completions committed before the kill; the worker had reported at least 40", len(committed))
	}
	if len(running) > concurrency {
		t.Errorf("%d items running at the kill (%v); at most %d can be (ActivityConcurrency)", len(running), running, concurrency)
	}
	executions := total(all.starts)
	if executions > n+len(inFlight) {
		t.Errorf("%d executions in all; expected at most %d + %d in flight at the kill", executions, n, len(inFlight))
	}
	t.Logf("at the kill: %d started, %d finished, %d committed; in flight (started, not committed) %d: running %v, finished but uncommitted %v; executions in all %d = %d + %d",
		len(atKill.starts), len(atKill.dones), len(committed), len(inFlight), running, doneUncommitted, executions, n, executions-n)
}

// TestChainKilledMidway: a chain of 20 steps, SIGKILLed once 8 steps are
// committed; the restarted process finishes it with the right value; each step ran
// at most twice, the steps committed before the kill exactly once, and the restart
// ran exactly the uncommitted steps, once each.
func TestChainKilledMidway(t *testing.T) {
	const (
		n  = 20
		id = "chain-1"
	)
	dir := t.TempDir()
	cfg := workerConfig{dir: filepath.Join(dir, "db"), logPath: filepath.Join(dir, "executions.log"), scenario: "chain",
		args: []string{"-min-sleep", "15ms", "-max-sleep", "30ms", "-watch"}}
	in := instances(t, "chain", 0, 1)[0]

	cfg.run = 1
	w1 := startWorker(t, cfg)
	if !w1.waitCommitted(id, 8, 30*time.Second) {
		w1.fatalf("no 8 committed steps")
	}
	if !w1.kill() {
		w1.fatalf("the worker exited before the kill")
	}
	if _, ok := w1.waitLine("RESULT", 0); ok {
		w1.fatalf("killed too late: the chain had already completed")
	}
	w1.checkStderr()
	atKill := count(readLog(t, cfg.logPath), nil)

	cfg.run = 2
	w2 := startWorker(t, cfg)
	w2.wait(60 * time.Second)
	w2.checkStderr()
	lines := w2.Lines()
	d := parseDump(t, lines)
	if !d.complete || d.states[id] != "RUNNING" || d.count != 1 {
		w2.fatalf("after the kill the store holds %v (%d instances); expected %s RUNNING", d.states, d.count, id)
	}
	if err := checkHistory(in, "RUNNING", d.hist[id]); err != nil {
		t.Fatalf("history after the kill: %v", err)
	}
	committed := committedItems(d.hist[id])
	res := parseResults(t, lines)[id]
	if res == nil || res.status != "COMPLETED" || res.output != strconv.Itoa(in.Expected()) {
		w2.fatalf("result %+v; expected COMPLETED %d", res, in.Expected())
	}
	if err := checkHistory(in, "COMPLETED", res.final); err != nil {
		t.Fatalf("final history: %v", err)
	}
	if err := checkPrefix(id, d.hist[id], res.final); err != nil {
		t.Fatal(err)
	}

	log := readLog(t, cfg.logPath)
	all := count(log, nil)
	rerun := count(log, func(e execution) bool { return e.run == 2 })
	inFlight := 0
	for i := range n {
		k := itemKey{id, i}
		if all.starts[k] > 2 {
			t.Errorf("step %d ran %d times; at most twice (once before the kill, once after)", i, all.starts[k])
		}
		if committed[i] {
			if all.starts[k] != 1 || all.dones[k] != 1 || rerun.starts[k] != 0 {
				t.Errorf("step %d, committed before the kill, has %d start and %d done lines (%d after the restart); expected exactly one run, before the kill",
					i, all.starts[k], all.dones[k], rerun.starts[k])
			}
			continue
		}
		if rerun.starts[k] != 1 || rerun.dones[k] != 1 {
			t.Errorf("step %d, not committed at the kill, started %d and finished %d times after the restart; expected once", i, rerun.starts[k], rerun.dones[k])
		}
		if atKill.starts[k] > 0 {
			inFlight++
		}
	}
	// checkHistory has checked that the committed steps are a prefix of the chain
	// with at most the next one outstanding: so at most one step was in flight.
	if len(committed) < 8 || inFlight > 1 {
		t.Errorf("at the kill: %d steps committed, %d in flight; expected at least 8 committed, at most one in flight", len(committed), inFlight)
	}
	if executions := total(all.starts); executions > n+inFlight {
		t.Errorf("%d executions in all; expected at most %d + %d in flight", executions, n, inFlight)
	}
	t.Logf("at the kill: %d steps started, %d finished, %d committed, %d in flight; executions in all %d",
		len(atKill.starts), len(atKill.dones), len(committed), inFlight, total(all.starts))
}

// TestTimerDueDuringDowntime: a workflow runs an activity, creates a 3 s durable
// timer and is SIGKILLed right after the timer is committed; the test waits until
// the timer is overdue, restarts, and the timer fires after the restart (not 3 s
// later) and the workflow completes; the first activity never ran again.
func TestTimerDueDuringDowntime(t *testing.T) {
	const (
		timer = 3 * time.Second
		id    = "timer-1"
	)
	dir := t.TempDir()
	cfg := workerConfig{dir: filepath.Join(dir, "db"), logPath: filepath.Join(dir, "executions.log"), scenario: "timer",
		args: []string{"-timer", timer.String(), "-watch"}}
	in := instances(t, "timer", timer, 1)[0]

	cfg.run = 1
	w1 := startWorker(t, cfg)
	line, ok := w1.waitLine("TIMER ", 30*time.Second)
	if !ok {
		w1.fatalf("the timer was not created")
	}
	if !w1.kill() {
		w1.fatalf("the worker exited before the kill")
	}
	killedAt := time.Now()
	w1.checkStderr()
	fireAt, err := time.Parse(time.RFC3339Nano, strings.Fields(line)[2])
	if err != nil {
		t.Fatalf("bad TIMER line %q: %v", line, err)
	}
	if until := time.Until(fireAt); until < timer/2 {
		t.Fatalf("the kill came %s before the timer was due; expected about %s (the kill must precede the due time by far)", until, timer)
	}
	// Downtime: stay down until the timer is overdue.
	time.Sleep(time.Until(fireAt) + 300*time.Millisecond)

	cfg.run = 2
	restartedAt := time.Now()
	w2 := startWorker(t, cfg)
	w2.wait(30 * time.Second)
	w2.checkStderr()
	lines := w2.Lines()
	d := parseDump(t, lines)
	if !d.complete || d.states[id] != "RUNNING" {
		w2.fatalf("after the kill the store holds %v; expected %s RUNNING", d.states, id)
	}
	if err := checkHistory(in, "RUNNING", d.hist[id]); err != nil {
		t.Fatalf("history after the kill: %v", err)
	}
	kinds := []string{}
	for _, ev := range d.hist[id] {
		kinds = append(kinds, ev.Kind)
	}
	if !slices.Equal(kinds, []string{"workflow-started", "activity-scheduled", "activity-completed", "timer-created"}) {
		t.Fatalf("history at the kill: %v; expected the timer to be the last thing committed", kinds)
	}
	res := parseResults(t, lines)[id]
	if res == nil || res.status != "COMPLETED" || res.output != strconv.Itoa(in.Expected()) {
		w2.fatalf("result %+v; expected COMPLETED %d", res, in.Expected())
	}
	if err := checkHistory(in, "COMPLETED", res.final); err != nil {
		t.Fatalf("final history: %v", err)
	}
	if err := checkPrefix(id, d.hist[id], res.final); err != nil {
		t.Fatal(err)
	}
	var firedAt time.Time
	for _, ev := range res.final {
		if ev.Kind == "timer-fired" {
			firedAt = ev.Time
		}
	}
	switch {
	case firedAt.Before(restartedAt):
		t.Errorf("timer fired at %s, before the restart at %s (the process was dead since %s)", firedAt, restartedAt, killedAt)
	case firedAt.Sub(restartedAt) > 2500*time.Millisecond:
		t.Errorf("overdue timer fired %s after the restart; expected at once", firedAt.Sub(restartedAt))
	}

	log := readLog(t, cfg.logPath)
	all := count(log, nil)
	before := count(log, func(e execution) bool { return e.run == 1 })
	first, second := itemKey{id, 0}, itemKey{id, 1}
	if all.starts[first] != 1 || before.dones[first] != 1 {
		t.Errorf("the first activity ran %d times (%d finished before the kill); expected once, before the kill", all.starts[first], before.dones[first])
	}
	if all.starts[second] != 1 || before.starts[second] != 0 || all.dones[second] != 1 {
		t.Errorf("the second activity ran %d times, %d of them before the kill; expected once, after the restart", all.starts[second], before.starts[second])
	}
	t.Logf("killed %s before the timer was due; restarted %s after it was due; it fired %s after the restart",
		fireAt.Sub(killedAt).Round(time.Millisecond), restartedAt.Sub(fireAt).Round(time.Millisecond), firedAt.Sub(restartedAt).Round(time.Millisecond))
}

// TestRandomKills: a mixed workload (chains, fan-outs and a timer over 10
// instances of staggered sizes) is SIGKILLed at random moments, at least 20 times,
// each 10–300 ms after its process started (so some kills land while the store is
// being reopened and recovered). After every kill the restarted process finds
// every instance in a valid state (absent, running with a history its workflow can
// have produced, or completed with the right output), every history extends the
// one found after the previous kill, nothing a run acknowledged to its client (a
// Schedule that returned, a completion WaitForCompletion reported) is missing
// after the kill, no item committed before a kill ever runs
// again, no item runs twice within one process, and at most ActivityConcurrency
// items were running at each kill.
// Finally a run to completion gives every instance its correct output. Should the
// workload finish before 20 kills, a run that is not killed finds it complete and
// a second round of instances is added, so the kills keep landing on live work.
//
// The seed is logged; CRASH_SEED=<n> replays the same kill times.
func TestRandomKills(t *testing.T) {
	const (
		minKills    = 20
		maxRuns     = 40
		concurrency = 8
		timer       = 1500 * time.Millisecond
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	dir := t.TempDir()
	cfg := workerConfig{dir: filepath.Join(dir, "db"), logPath: filepath.Join(dir, "executions.log"), scenario: "mixed"}
	args := func(rounds int) []string {
		return []string{"-min-sleep", "10ms", "-max-sleep", "40ms", "-concurrency", strconv.Itoa(concurrency),
			"-timer", timer.String(), "-rounds", strconv.Itoa(rounds)}
	}

	type runInfo struct {
		dump   dump
		delay  time.Duration
		killed bool
	}
	runs := map[int]*runInfo{}
	var last map[string][]scenario.Event // the histories the last complete dump found
	// checkDump validates what run r found in the store after the previous kill.
	checkDump := func(w *worker, r int, d dump, ins []scenario.Instance) {
		t.Helper()
		present := 0
		for _, in := range ins {
			st, ok := d.states[in.ID]
			if !ok {
				w.fatalf("run %d: no STATE for %s", r, in.ID)
			}
			if st == "ABSENT" {
				if len(last[in.ID]) > 0 {
					w.fatalf("run %d: %s is absent, but an earlier run found it with %d events", r, in.ID, len(last[in.ID]))
				}
				continue
			}
			present++
			if err := checkHistory(in, st, d.hist[in.ID]); err != nil {
				w.fatalf("run %d (after kill %d): %v", r, r-1, err)
			}
			if err := checkPrefix(in.ID, last[in.ID], d.hist[in.ID]); err != nil {
				w.fatalf("run %d (after kill %d): %v", r, r-1, err)
			}
		}
		if d.count != present {
			w.fatalf("run %d: the store lists %d instances; expected %d", r, d.count, present)
		}
		last = d.hist
	}
	checkResults := func(w *worker, ins []scenario.Instance, d dump) {
		t.Helper()
		results := parseResults(t, w.Lines())
		for _, in := range ins {
			res := results[in.ID]
			if res == nil || res.status != "COMPLETED" || res.output != strconv.Itoa(in.Expected()) {
				w.fatalf("%s: result %+v; expected COMPLETED %d", in.ID, res, in.Expected())
			}
			if err := checkHistory(in, "COMPLETED", res.final); err != nil {
				w.fatalf("final history: %v", err)
			}
			if err := checkPrefix(in.ID, d.hist[in.ID], res.final); err != nil {
				w.fatalf("%v", err)
			}
		}
	}

	// acked is, per instance, the furthest state a run told its client about:
	// RUNNING (Schedule returned) or COMPLETED (WaitForCompletion returned).
	acked := map[string]string{}
	checkAcknowledged := func(w *worker, r int, d dump) {
		t.Helper()
		for id, st := range acked {
			if got := d.states[id]; got == "ABSENT" || (st == "COMPLETED" && got != "COMPLETED") {
				w.fatalf("run %d: %s is %s after the kill, but an earlier run had been told it was %s", r, id, got, st)
			}
		}
	}

	rounds, kills, r := 1, 0, 0
	for kills < minKills {
		r++
		if r > maxRuns {
			t.Fatalf("only %d kills landed on a running worker in %d runs", kills, maxRuns)
		}
		ins := instances(t, "mixed", timer, rounds)
		cfg.run, cfg.args = r, args(rounds)
		w := startWorker(t, cfg)
		delay := 10*time.Millisecond + time.Duration(rng.Int64N(int64(290*time.Millisecond)))
		time.Sleep(time.Until(w.started.Add(delay))) // the random moment of the kill
		info := &runInfo{delay: delay, killed: w.kill()}
		runs[r] = info
		w.checkStderr()
		if l, ok := w.waitLine("ERROR", 0); ok {
			w.fatalf("run %d: %s", r, l)
		}
		info.dump = parseDump(t, w.Lines())
		if info.dump.complete {
			checkDump(w, r, info.dump, ins)
			checkAcknowledged(w, r, info.dump)
		}
		// What this run told its client (a Schedule that returned, a completion
		// that WaitForCompletion reported) must be in the store after the kill.
		for _, l := range w.Lines() {
			switch f := strings.Fields(l); {
			case len(f) == 2 && f[0] == "SCHEDULED" && acked[f[1]] == "":
				acked[f[1]] = "RUNNING"
			case len(f) == 4 && f[0] == "RESULT":
				acked[f[1]] = "COMPLETED"
			}
		}
		if !info.killed {
			// It finished the whole workload before its kill: check it, and add a round.
			w.wait(0)
			checkResults(w, ins, info.dump)
			t.Logf("run %d completed round %d before its kill at %s, after %d kills; adding a round", r, rounds, delay, kills)
			rounds++
			continue
		}
		kills++
	}

	// The final run, to completion.
	r++
	ins := instances(t, "mixed", timer, rounds)
	cfg.run, cfg.args = r, args(rounds)
	w := startWorker(t, cfg)
	w.wait(90 * time.Second)
	w.checkStderr()
	final := parseDump(t, w.Lines())
	if !final.complete {
		w.fatalf("the final run printed no complete dump")
	}
	checkDump(w, r, final, ins)
	checkAcknowledged(w, r, final)
	runs[r] = &runInfo{dump: final}
	checkResults(w, ins, final)

	// The execution log against the histories each run found after a kill.
	log := readLog(t, cfg.logPath)
	all := count(log, nil)
	byRun := map[int]tally{}
	for i := 1; i <= r; i++ {
		byRun[i] = count(log, func(e execution) bool { return e.run == i })
		for k, n := range byRun[i].starts {
			if n > 1 {
				t.Errorf("%s item %d started %d times in run %d", k.instance, k.item, n, i)
			}
		}
	}
	totalItems := 0
	for _, in := range ins {
		totalItems += in.Items()
		for item := range in.Items() {
			if k := (itemKey{in.ID, item}); all.starts[k] == 0 || all.dones[k] == 0 {
				t.Errorf("%s item %d never ran to completion (%d starts, %d dones)", in.ID, item, all.starts[k], all.dones[k])
			}
		}
	}
	checked, inFlightTotal := 0, 0
	for i := 1; i <= r; i++ {
		d := runs[i].dump
		if !d.complete {
			continue
		}
		checked++
		for id, evs := range d.hist {
			for item := range committedItems(evs) {
				// Committed before run i: it ran before run i, and never again.
				k := itemKey{id, item}
				before, after := 0, 0
				for j := 1; j <= r; j++ {
					if j < i {
						before += byRun[j].dones[k]
					} else {
						after += byRun[j].starts[k]
					}
				}
				if before == 0 {
					t.Errorf("run %d found %s item %d committed, but it never finished before", i, id, item)
				}
				if after > 0 {
					t.Errorf("%s item %d, committed before run %d, ran again %d times in run %d or later", id, item, i, after, i)
				}
			}
		}
		// What run i-1 started and run i did not find committed was in flight at
		// the kill (and runs again); of it, at most ActivityConcurrency items were
		// still running.
		if i > 1 {
			var running []string
			for k := range byRun[i-1].starts {
				if !committedItems(d.hist[k.instance])[k.item] {
					inFlightTotal++
					if byRun[i-1].dones[k] == 0 {
						running = append(running, fmt.Sprintf("%s/%d", k.instance, k.item))
					}
				}
			}
			if len(running) > concurrency {
				t.Errorf("kill %d: %d items running (%v); at most %d can be", i-1, len(running), running, concurrency)
			}
		}
	}

	var summary []string
	for i := 1; i < r; i++ {
		ri := runs[i]
		s := fmt.Sprintf("run %d: kill at %s", i, ri.delay.Round(time.Millisecond))
		if !ri.killed {
			s = fmt.Sprintf("run %d: finished its round before the kill at %s", i, ri.delay.Round(time.Millisecond))
		}
		if ri.dump.complete {
			done, present := 0, 0
			for _, st := range ri.dump.states {
				if st != "ABSENT" {
					present++
				}
				if st == "COMPLETED" {
					done++
				}
			}
			s += fmt.Sprintf("; reopened in %d ms, found %d instances, %d completed", ri.dump.openMS, present, done)
		} else {
			s += " (before its dump)"
		}
		summary = append(summary, s)
	}
	t.Logf("%d kills, %d rounds; %d reopens checked; %d executions for %d items (%d in flight at kills followed by a dump)\n%s",
		kills, rounds, checked, total(all.starts), totalItems, inFlightTotal, strings.Join(summary, "\n"))
}
