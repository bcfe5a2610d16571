package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// schedule is the part of GET /api/v1/schedules/{id} the tests read.
type schedule struct {
	ID       string   `json:"id"`
	Instance string   `json:"instance"`
	Status   string   `json:"status"`
	Paused   bool     `json:"paused"`
	Note     string   `json:"note"`
	Running  []string `json:"running"`
	Next     time.Time
	Counts   struct{ Started, Skipped, Missed, Failed int }
	Recent   []struct {
		Tick    time.Time
		Run     string
		Outcome string
		Reason  string
	}
	Spec struct {
		Workflow string
		Every    string
		Cron     string
		Overlap  string
	}
}

func (c *client) schedule(id string) schedule {
	return decode[schedule](c.t, c.expect(c.do("GET", "/api/v1/schedules/"+id, ""), http.StatusOK))
}

// TestSchedules drives schedules through `weft serve`: created with the CLI,
// read over HTTP, ticking every second into completed runs, paused,
// triggered, kept across a restart, resumed, deleted; bad requests get the
// right status and a message naming what is wrong.
func TestSchedules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir)
	c := s.client(t)
	srv := []string{"--server", s.URL}
	cli := func(code int, args ...string) cliResult {
		t.Helper()
		return wantCLI(t, code, nil, append(args, srv...)...)
	}

	out := cli(exitOK, "schedule", "create", "chain", "--workflow", "ChainingWorkflow", "--input", `{"value":1}`, "--every", "1s", "--overlap", "allow-all")
	if !strings.Contains(out.Stdout, "every 1s, overlap allow-all") || !strings.Contains(out.Stdout, "active") {
		t.Errorf("create printed:\n%s", out.Stdout)
	}
	var sc schedule
	eventually(t, 20*time.Second, "two runs of the schedule", func() bool {
		sc = c.schedule("chain")
		return sc.Counts.Started >= 2
	})
	for _, a := range sc.Recent[:2] {
		if a.Outcome != "started" || !strings.HasPrefix(a.Run, "chain-") {
			t.Fatalf("recent: %+v", sc.Recent)
		}
		if st := c.waitDone(a.Run); st.Status != "COMPLETED" || string(st.Output) != "5" || st.Name != "ChainingWorkflow" {
			t.Errorf("run %s: %+v", a.Run, st)
		}
	}
	list := decode[struct{ Schedules []schedule }](t, c.expect(c.do("GET", "/api/v1/schedules", ""), 200))
	if len(list.Schedules) != 1 || list.Schedules[0].ID != "chain" || list.Schedules[0].Spec.Every != "1s" {
		t.Errorf("GET /api/v1/schedules: %+v", list)
	}
	if out := cli(exitOK, "schedule", "list"); !strings.Contains(out.Stdout, "chain") || !strings.Contains(out.Stdout, "every 1s") {
		t.Errorf("schedule list:\n%s", out.Stdout)
	}

	out = cli(exitOK, "schedule", "pause", "chain", "--note", "deploying")
	if !strings.Contains(out.Stdout, "paused: deploying") {
		t.Errorf("pause printed:\n%s", out.Stdout)
	}
	out = cli(exitOK, "schedule", "trigger", "chain", "--wait")
	if !strings.Contains(out.Stdout, "chain-") || !strings.Contains(out.Stdout, "COMPLETED") {
		t.Errorf("trigger --wait printed:\n%s", out.Stdout)
	}

	// Across a restart: the schedule and its pause are kept.
	if err := s.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s = startServer(t, dir)
	c = s.client(t)
	srv = []string{"--server", s.URL}
	if sc = c.schedule("chain"); !sc.Paused || sc.Note != "deploying" || sc.Status != "RUNNING" {
		t.Fatalf("after a restart: %+v", sc)
	}
	started := sc.Counts.Started
	resumed := decode[schedule](t, c.expect(c.do("POST", "/api/v1/schedules/chain/resume", `{"note":"done"}`), 200))
	if resumed.Paused || resumed.Next.IsZero() {
		t.Errorf("resumed: %+v", resumed)
	}
	eventually(t, 20*time.Second, "a run after the resume", func() bool { return c.schedule("chain").Counts.Started > started })

	// Bad requests.
	wantError(t, c.do("POST", "/api/v1/schedules", `{"id":"x","workflow":"ChainingWorkflow","cron":"61 * * * *"}`), 400, "ERR_INVALID_INPUT")
	wantError(t, c.do("POST", "/api/v1/schedules", `{"id":"x","workflow":"ChainingWorkflow","every":"soon"}`), 400, "ERR_INVALID_INPUT")
	wantError(t, c.do("POST", "/api/v1/schedules", `{"id":"x","workflow":"NoSuchWorkflow","every":"1m"}`), 400, "ERR_WORKFLOW_NOT_REGISTERED")
	wantError(t, c.do("POST", "/api/v1/schedules", `{"id":"chain","workflow":"ChainingWorkflow","every":"1m","input":{"value":1}}`), 409, "ERR_SCHEDULE_ALREADY_EXISTS")
	wantError(t, c.do("POST", "/api/v1/schedules", `[1]`), 400, "ERR_INVALID_INPUT")
	wantError(t, c.do("GET", "/api/v1/schedules/nope", ""), 404, "ERR_SCHEDULE_NOT_FOUND")
	wantError(t, c.do("GET", "/api/v1/schedules/bad:id", ""), 400, "ERR_INVALID_INPUT")
	wantError(t, c.do("POST", "/api/v1/schedules/chain/rewind", ""), 404, "ERR_NOT_FOUND")
	wantError(t, c.do("PUT", "/api/v1/schedules/chain", ""), 405, "ERR_METHOD_NOT_ALLOWED")
	if r := cli(exitUsage, "schedule", "create", "y", "--workflow", "ChainingWorkflow"); !strings.Contains(r.Stderr, "no timetable") {
		t.Errorf("create without a timetable: %s", r)
	}
	cli(exitUsage, "schedule")
	cli(exitUsage, "schedule", "show")
	cli(exitNotFound, "schedule", "show", "nope")

	cli(exitOK, "schedule", "delete", "chain")
	cli(exitNotFound, "schedule", "show", "chain")
	if list := decode[struct{ Schedules []schedule }](t, c.expect(c.do("GET", "/api/v1/schedules", ""), 200)); len(list.Schedules) != 0 {
		t.Errorf("after delete: %+v", list)
	}
}
