package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These two tests are not parallel: Go runs them before the parallel tests, so the
// kill lands while the machine is otherwise idle, in the middle of the fan-out.

const fanOut100 = `{"count":100,"maxParallel":10,"itemDelayMs":20}`

// executed counts the "activity executed" log lines of one activity of instance id.
func executed(lines []string, activity, id string) int {
	return countLines(lines, `msg="activity executed"`, "activity="+activity+" ", "instance="+id+" ")
}

// TestKilledMidFanOut is the seed's durability promise ("if a workflow starts 100
// parallel task executions and only 40 complete before the process crashes, the
// workflow restarts itself automatically and only schedules the remaining 60
// tasks") against the real server: SIGKILL in the middle of a fan-out of 100,
// restart on the same --data directory, and the instance completes with 5050.
func TestKilledMidFanOut(t *testing.T) {
	const id = "fan-crash"
	dir := t.TempDir()
	s1 := startServer(t, dir)
	c1 := s1.client(t)
	daprStart(t, c1, "v1.0", "FanOutFanInWorkflow", id, fanOut100)
	s1.waitUntil(30*time.Second, "20 executed ProcessWorkItem activities", func(lines []string) bool {
		return executed(lines, "ProcessWorkItem", id) >= 20
	}, false)
	s1.kill()
	if ws, ok := s1.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		s1.fatalf("the first server was not killed by SIGKILL: %v", s1.exitErr)
	}
	before := s1.Lines()
	ranBefore := executed(before, "ProcessWorkItem", id)
	if executed(before, "PostResults", id) > 0 || ranBefore >= 100 {
		s1.fatalf("killed too late: the fan-out had already finished (%d items ran)", ranBefore)
	}
	if n := executed(before, "GetWorkBatch", id); n != 1 {
		t.Errorf("GetWorkBatch ran %d times before the kill", n)
	}

	s2 := startServer(t, dir)
	c2 := s2.client(t)
	done := c2.waitDone(id)
	if done.Status != "COMPLETED" || string(done.Output) != "5050" {
		s2.fatalf("after the restart: %s output %s, want COMPLETED 5050", done.Status, done.Output)
	}
	if st := getDapr(t, c2, "v1.0", id); st.RuntimeStatus != "COMPLETED" || st.Properties["dapr.workflow.output"] != "5050" ||
		st.Properties["dapr.workflow.input"] != fanOut100 {
		t.Errorf("Dapr status after the restart: %+v", st)
	}

	// The restart only ran what the kill left undone: the batch was committed, and
	// of the items, at most the maxParallel (10) in flight at the kill ran again.
	after := s2.Lines()
	ranAfter := executed(after, "ProcessWorkItem", id)
	t.Logf("ProcessWorkItem executions: %d before the kill, %d after the restart", ranBefore, ranAfter)
	if ranAfter == 0 {
		t.Errorf("the restarted server ran no items: the kill was not mid fan-out")
	}
	if ranBefore+ranAfter < 100 {
		t.Errorf("only %d+%d item executions for 100 items", ranBefore, ranAfter)
	}
	if ranAfter > 100-ranBefore+10 {
		t.Errorf("the restart ran %d items, but only %d had not finished before the kill (+10 in flight): committed work ran again",
			ranAfter, 100-ranBefore)
	}
	if n := executed(after, "GetWorkBatch", id); n != 0 {
		t.Errorf("GetWorkBatch ran again after the restart (%d times), although it completed before the kill", n)
	}
	if n := executed(after, "PostResults", id); n != 1 {
		t.Errorf("PostResults ran %d times after the restart, want once", n)
	}

	// The history has each of the 100 items scheduled and completed exactly once,
	// and their results add up.
	h := decode[v1History](t, c2.expect(c2.do("GET", "/api/v1/instances/"+id+"/history", ""), http.StatusOK))
	names := map[int64]string{}
	completed := map[int64]bool{}
	sum := 0
	for _, ev := range h.Events {
		if ev.TaskID == nil {
			continue
		}
		switch ev.Kind {
		case "activity-scheduled":
			if _, dup := names[*ev.TaskID]; dup {
				t.Errorf("task %d scheduled twice", *ev.TaskID)
			}
			names[*ev.TaskID] = ev.Name
		case "activity-completed":
			if completed[*ev.TaskID] {
				t.Errorf("task %d completed twice", *ev.TaskID)
			}
			completed[*ev.TaskID] = true
			if names[*ev.TaskID] == "ProcessWorkItem" {
				v, err := strconv.Atoi(string(ev.Data))
				if err != nil {
					t.Errorf("item result %s: %v", ev.Data, err)
				}
				sum += v
			}
		case "activity-failed":
			t.Errorf("task %d (%s) failed: the kill must not fail an activity", *ev.TaskID, names[*ev.TaskID])
		}
	}
	items := 0
	for task, name := range names {
		if name == "ProcessWorkItem" {
			items++
			if !completed[task] {
				t.Errorf("item task %d never completed", task)
			}
		}
	}
	if items != 100 || sum != 5050 {
		t.Errorf("history: %d items scheduled, results sum to %d; want 100 and 5050", items, sum)
	}
}

// TestGracefulShutdown: SIGTERM (and SIGINT) make the server log "stopped
// cleanly" and exit 0; a restart on the same directory finds the order that was
// waiting for approval where it was.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	s1 := startServer(t, dir)
	c1 := s1.client(t)
	daprStart(t, c1, "v1.0", "OrderProcessingWorkflow", "waiting-order", `{"Name":"Boat","Quantity":1,"TotalCost":2000}`)
	daprStart(t, c1, "v1.0", "FanOutFanInWorkflow", "fan-done", `{"count":40,"maxParallel":4}`)
	if done := c1.waitDone("fan-done"); string(done.Output) != "820" {
		t.Errorf("fan-out: %+v", done)
	}
	if st := c1.status("waiting-order"); st.Status != "RUNNING" {
		t.Fatalf("order: %+v", st)
	}
	if err := s1.stop(syscall.SIGTERM, 15*time.Second); err != nil {
		s1.fatalf("after SIGTERM the server exited with %v, want exit status 0", err)
	}
	lines := s1.Lines()
	if countLines(lines, `msg="shutting down`) != 1 || countLines(lines, `msg="stopped cleanly"`) != 1 {
		s1.fatalf("no \"shutting down\" and \"stopped cleanly\" lines")
	}
	if countLines(lines, "level=ERROR") > 0 || countLines(lines, "level=WARN") > 0 {
		s1.fatalf("errors or warnings logged during the shutdown")
	}

	// SIGINT is handled the same way.
	s2 := startServer(t, dir)
	if err := s2.stop(syscall.SIGINT, 15*time.Second); err != nil || countLines(s2.Lines(), `msg="stopped cleanly"`) != 1 {
		s2.fatalf("SIGINT: exit %v", err)
	}

	s3 := startServer(t, dir)
	c3 := s3.client(t)
	st := c3.status("waiting-order")
	var custom string
	_ = json.Unmarshal(st.CustomStatus, &custom)
	if st.Status != "RUNNING" || custom != "waiting for ManagerApproval" {
		t.Fatalf("the waiting order after the restart: %+v", st)
	}
	c3.expect(c3.do("POST", "/v1.0/workflows/dapr/waiting-order/raiseEvent/ManagerApproval", `{"approved":true}`), http.StatusAccepted)
	if done := c3.waitDone("waiting-order"); !jsonEqual(done.Output, []byte(`{"Processed":true}`)) {
		t.Errorf("the order after the restart: %+v", done)
	}
	if st := c3.status("fan-done"); st.Status != "COMPLETED" || string(st.Output) != "820" {
		t.Errorf("the finished fan-out after the restart: %+v", st)
	}
}

// TestGracefulShutdownMidFanOut: SIGTERM while activities are completing must still
// exit promptly ("finishing in-flight requests and commits"), and the restarted
// server finishes the fan-out.
//
// Regression: the server once took 60 s to exit here. An activity that returned
// just before Host.Close cancelled the activity context reported its result with
// a request to the workflow actor, which Close then stopped; the request was never
// answered and Close waited out its 1-minute timeout. Close now poisons actors
// (they answer what is in their mailbox before stopping).
func TestGracefulShutdownMidFanOut(t *testing.T) {
	const id = "fan-term"
	// Many short items in flight, so that results are queued at the workflow actor
	// when the signal comes; up to 4 rounds of start, SIGTERM, restart.
	const input = `{"count":600,"maxParallel":25,"itemDelayMs":5}`
	dir := t.TempDir()
	for round := range 4 {
		s := startServer(t, dir)
		if round == 0 {
			daprStart(t, s.client(t), "v1.0", "FanOutFanInWorkflow", id, input)
		}
		s.waitUntil(30*time.Second, "25 executed ProcessWorkItem activities", func(lines []string) bool {
			return executed(lines, "ProcessWorkItem", id) >= 25
		}, false)
		start := time.Now()
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
			if s.exitErr != nil || countLines(s.Lines(), `msg="stopped cleanly"`) != 1 {
				t.Fatalf("round %d: after SIGTERM mid fan-out: exit %v after %s; want exit 0 and \"stopped cleanly\"\n%s",
					round, s.exitErr, time.Since(start), s.log())
			}
		case <-time.After(8 * time.Second):
			// SIGQUIT makes the Go runtime print every goroutine's stack: the evidence.
			_ = s.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				s.kill()
			}
			t.Errorf("round %d: the server did not exit within 8s of SIGTERM in the middle of a fan-out "+
				"(it waits for the 1-minute internal RequestTimeout); its weft goroutines at SIGQUIT:\n%s",
				round, weftGoroutines(s.Lines()))
		}
		if executed(s.Lines(), "PostResults", id) > 0 {
			t.Fatalf("round %d: the fan-out had finished before SIGTERM: the test did not stop it midway", round)
		}
		if t.Failed() {
			break
		}
	}

	s2 := startServer(t, dir)
	c2 := s2.client(t)
	done := c2.waitDone(id)
	if done.Status != "COMPLETED" || string(done.Output) != "180300" {
		s2.fatalf("after the restarts: %s %s, want COMPLETED 180300", done.Status, done.Output)
	}
	h := decode[v1History](t, c2.expect(c2.do("GET", "/api/v1/instances/"+id+"/history", ""), http.StatusOK))
	for _, ev := range h.Events {
		if ev.Kind == "activity-failed" {
			t.Errorf("an activity cancelled by the shutdown was recorded as failed: %+v", ev)
		}
	}
}

// weftGoroutines picks, from a SIGQUIT goroutine dump, the stacks that run weft's
// own code.
func weftGoroutines(lines []string) string {
	var out, cur []string
	flush := func() {
		if slices.ContainsFunc(cur, func(l string) bool { return strings.Contains(l, "github.com/weftrt/weft/") }) {
			out = append(out, cur...)
		}
		cur = nil
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "goroutine ") {
			flush()
		}
		if strings.HasPrefix(l, "goroutine ") || len(cur) > 0 {
			if l == "" {
				flush()
				continue
			}
			cur = append(cur, l)
		}
	}
	flush()
	return strings.Join(out, "\n")
}
