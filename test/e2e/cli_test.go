package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Exit codes of the weft CLI (cmd/weft/main.go).
const (
	exitOK          = 0
	exitFailed      = 1 // the request failed or the workflow failed
	exitUsage       = 2
	exitNotFound    = 3
	exitConflict    = 4 // id taken, not finished, not running
	exitUnreachable = 5
)

// TestCLI runs every client subcommand of the real binary against a running server
// and checks exit codes and outputs.
func TestCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	srv := []string{"--server", s.URL}
	cli := func(t *testing.T, code int, args ...string) cliResult {
		t.Helper()
		return wantCLI(t, code, nil, append(args, srv...)...)
	}
	statusOf := func(t *testing.T, out string) v1Status {
		t.Helper()
		var st v1Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status output is not JSON: %v\n%s", err, out)
		}
		return st
	}
	orderFile := filepath.Join(t.TempDir(), "order.json")
	if err := os.WriteFile(orderFile, []byte(`{"Name":"Boat","Quantity":1,"TotalCost":2000}`), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("help and usage", func(t *testing.T) {
		for _, args := range [][]string{nil, {"help"}, {"-h"}, {"--help"}} {
			r := wantCLI(t, exitOK, nil, args...)
			if !strings.Contains(r.Stdout, "Exit codes:") || !strings.Contains(r.Stdout, "weft history ID") {
				t.Errorf("%s", r)
			}
		}
		for _, args := range [][]string{
			{"bogus"},
			{"start"},
			{"start", "A", "B"},
			{"status"},
			{"raise", "id-only"},
			{"terminate"},
			{"pause"},
			{"resume", "a", "b"},
			{"purge"},
			{"list", "extra"},
			{"history"},
			{"status", "x", "--no-such-flag"},
			{"start", "ChainingWorkflow", "--input", "{not json"},
			{"start", "ChainingWorkflow", "--input", "@" + filepath.Join(t.TempDir(), "missing.json")},
			{"raise", "x", "E", "--data", "not json"},
			{"status", "x", "--timeout", "soon"},
		} {
			r := cli(t, exitUsage, args...)
			if !strings.HasPrefix(r.Stderr, "weft: ") {
				t.Errorf("%s: want a \"weft: ...\" message on stderr", r)
			}
		}
		wantCLI(t, exitUsage, nil, "serve", "extra-arg")
		wantCLI(t, exitUsage, nil, "serve", "--max-body", "lots")
		if r := wantCLI(t, exitUsage, nil, "serve", "--worker-max-items", "-1"); !strings.Contains(r.Stderr, "--worker-max-items -1") {
			t.Errorf("a negative bound: %s", r)
		}
		wantCLI(t, exitUsage, nil, "serve", "--tls-cert", "cert.pem")
		wantCLI(t, exitUsage, nil, "serve", "--log-level", "loud")
		wantCLI(t, exitUsage, nil, "serve", "--log-format", "xml")
		wantCLI(t, exitUsage, nil, "serve", "--no-such-flag")
		if r := wantCLI(t, exitUsage, nil, "serve", "--approval-threshold", "5"); !strings.Contains(r.Stderr, "add --samples") {
			t.Errorf("a sample's flag without --samples: %s", r)
		}
	})

	t.Run("start --wait and history", func(t *testing.T) {
		r := cli(t, exitOK, "start", "ChainingWorkflow", "--id", "cli-chain", "--input", `{"value":10}`, "--wait")
		first, rest, _ := strings.Cut(r.Stdout, "\n")
		if first != "cli-chain" {
			t.Errorf("start printed %q first, want the id", first)
		}
		if st := statusOf(t, rest); st.Status != "COMPLETED" || string(st.Output) != "14" {
			t.Errorf("start --wait: %s", r)
		}

		h := cli(t, exitOK, "history", "cli-chain")
		lines := strings.Split(strings.TrimRight(h.Stdout, "\n"), "\n")
		if got := strings.Fields(lines[0]); strings.Join(got, " ") != "TIME OFFSET EVENT TASK NAME DURATION OUTCOME" {
			t.Fatalf("history header %q", lines[0])
		}
		if len(lines) != 1+10 {
			t.Fatalf("history has %d rows, want 10:\n%s", len(lines)-1, h.Stdout)
		}
		row := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3}\s+\+\S+\s+(\S+)`)
		for _, l := range lines[1:] {
			if !row.MatchString(l) {
				t.Errorf("history row %q is not TIME +OFFSET EVENT ...", l)
			}
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`workflow-started\s+ChainingWorkflow`),
			regexp.MustCompile(`activity-scheduled\s+0\s+Step1`),
			regexp.MustCompile(`activity-completed\s+0\s+Step1\s+\S+s\s+ok 11`),
			regexp.MustCompile(`activity-completed\s+3\s+Step4\s+\S+s\s+ok 14`),
			regexp.MustCompile(`workflow-completed\s+14$`),
		} {
			if !want.MatchString(h.Stdout) && !matchesALine(want, lines) {
				t.Errorf("history has no line matching %s:\n%s", want, h.Stdout)
			}
		}
		j := cli(t, exitOK, "history", "cli-chain", "--json")
		var hist v1History
		if err := json.Unmarshal([]byte(j.Stdout), &hist); err != nil || hist.ID != "cli-chain" || len(hist.Events) != 10 {
			t.Errorf("history --json: %v\n%s", err, j.Stdout)
		}
		cli(t, exitNotFound, "history", "no-such-instance")
	})

	t.Run("status says what a running instance waits on", func(t *testing.T) {
		if st := statusOf(t, cli(t, exitOK, "status", "cli-chain").Stdout); st.Status != "COMPLETED" || st.WaitingOn != nil {
			t.Errorf("a finished instance waits on nothing: %+v", st)
		}
		cli(t, exitOK, "start", "ChainingWorkflow", "--id", "cli-waits", "--input", `{"value":1,"failStep":"Step2","failTimes":0,"retrySeconds":600}`)
		var st v1Status
		eventually(t, 20*time.Second, "Step2's first attempt failed", func() bool {
			st = statusOf(t, cli(t, exitOK, "status", "cli-waits").Stdout)
			return len(st.WaitingOn) == 1 && st.WaitingOn[0].Attempt == 2
		})
		w := st.WaitingOn[0]
		if w.Kind != "activity" || w.TaskID != 1 || w.Name != "Step2" || w.AttemptAtLeast ||
			w.LastFailure == nil || !strings.Contains(w.LastFailure.Message, "attempt 1") ||
			w.NextAttemptAt == nil || w.NextAttemptAt.Sub(w.Since) < 9*time.Minute {
			t.Errorf("waiting on %+v; want Step2 on attempt 2, attempt 1's failure, the next in ~10 minutes", w)
		}
		cli(t, exitOK, "purge", "cli-waits", "--force") // out of the list subtest's way

		cli(t, exitOK, "start", "OrderProcessingWorkflow", "--id", "cli-waits-approval", "--input", `{"Name":"Yacht","Quantity":1,"TotalCost":50000}`)
		eventually(t, 20*time.Second, "the order to wait for its approval", func() bool {
			st = statusOf(t, cli(t, exitOK, "status", "cli-waits-approval").Stdout)
			return len(st.WaitingOn) == 1 && st.WaitingOn[0].Kind == "event"
		})
		if w := st.WaitingOn[0]; w.Name != "ManagerApproval" || w.TimeoutAt == nil || w.TimeoutAt.Sub(w.Since) != 24*time.Hour || w.FireAt != nil {
			t.Errorf("waiting on %+v; want ManagerApproval, timing out 24h after it began", w)
		}
		cli(t, exitOK, "purge", "cli-waits-approval", "--force")
	})

	t.Run("history shows retried attempts", func(t *testing.T) {
		cli(t, exitOK, "start", "ChainingWorkflow", "--id", "cli-retry", "--input", `{"value":1,"failStep":"Step2","failTimes":1,"retrySeconds":1}`, "--wait")
		h := cli(t, exitOK, "history", "cli-retry")
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`activity-retrying\s+1\s+Step2\s+\S+s\s+attempt 1 failed \S+: .*; next attempt at \d\d:\d\d:\d\d\.\d{3}`),
			regexp.MustCompile(`activity-completed\s+1\s+Step2\s+1\.\d+s\s+ok 3`),
		} {
			if !matchesALine(want, strings.Split(h.Stdout, "\n")) {
				t.Errorf("history has no line matching %s:\n%s", want, h.Stdout)
			}
		}
	})

	t.Run("order lifecycle", func(t *testing.T) {
		r := cli(t, exitOK, "start", "OrderProcessingWorkflow", "--id", "cli-order", "--input", "@"+orderFile)
		if strings.TrimSpace(r.Stdout) != "cli-order" {
			t.Errorf("start printed %q", r.Stdout)
		}
		r = cli(t, exitConflict, "start", "OrderProcessingWorkflow", "--id", "cli-order", "--input", "@"+orderFile)
		if !strings.Contains(r.Stderr, "ERR_INSTANCE_ID_ALREADY_EXISTS") {
			t.Errorf("%s", r)
		}
		if st := statusOf(t, cli(t, exitOK, "status", "cli-order").Stdout); st.Status != "RUNNING" || st.Name != "OrderProcessingWorkflow" {
			t.Errorf("status: %+v", st)
		}
		// Not finished within --timeout: exit 1, nothing printed.
		r = cli(t, exitFailed, "status", "cli-order", "--wait", "--timeout", "300ms")
		if !strings.Contains(r.Stderr, "not finished") {
			t.Errorf("%s", r)
		}
		cli(t, exitConflict, "purge", "cli-order") // not finished

		cli(t, exitOK, "pause", "cli-order")
		if st := statusOf(t, cli(t, exitOK, "status", "cli-order").Stdout); st.Status != "SUSPENDED" {
			t.Errorf("after pause: %s", st.Status)
		}
		cli(t, exitOK, "resume", "cli-order", "--reason", "back")
		if st := statusOf(t, cli(t, exitOK, "status", "cli-order").Stdout); st.Status != "RUNNING" {
			t.Errorf("after resume: %s", st.Status)
		}
		// Flags may come before the positional arguments. Sent twice with
		// the same idempotency key (while paused, so that the second is not
		// simply dropped by a finished instance), the event is applied once.
		cli(t, exitOK, "pause", "cli-order")
		for range 2 {
			wantCLI(t, exitOK, nil, "raise", "--server", s.URL, "--data", `{"approved":true}`, "--idempotency-key", "approval-1", "cli-order", "ManagerApproval")
		}
		r = cli(t, exitUsage, "raise", "cli-order", "ManagerApproval", "--idempotency-key", "not a key")
		if !strings.Contains(r.Stderr, "ERR_INVALID_INPUT") || !strings.Contains(r.Stderr, "Idempotency-Key") {
			t.Errorf("a malformed idempotency key: %s", r)
		}
		cli(t, exitOK, "resume", "cli-order")
		st := statusOf(t, cli(t, exitOK, "status", "cli-order", "--wait").Stdout)
		if st.Status != "COMPLETED" || !jsonEqual(st.Output, []byte(`{"Processed":true}`)) {
			t.Errorf("approved: %+v", st)
		}
		if h := cli(t, exitOK, "history", "cli-order").Stdout; strings.Count(h, "event-raised") != 1 {
			t.Errorf("the event sent twice with one idempotency key, in history:\n%s", h)
		}
		cli(t, exitConflict, "pause", "cli-order") // not running
		cli(t, exitOK, "purge", "cli-order")
		cli(t, exitNotFound, "status", "cli-order")
		cli(t, exitNotFound, "purge", "cli-order")
	})

	t.Run("terminate", func(t *testing.T) {
		cli(t, exitOK, "start", "OrderProcessingWorkflow", "--id", "cli-term", "--input", "@"+orderFile)
		cli(t, exitOK, "terminate", "cli-term", "--reason", "no stock", "--recursive")
		// status --wait prints the final status and exits 1: the workflow did not complete.
		r := cli(t, exitFailed, "status", "cli-term", "--wait")
		if st := statusOf(t, r.Stdout); st.Status != "TERMINATED" || string(st.Output) != `"no stock"` {
			t.Errorf("terminated: %s", r)
		}
		if !strings.Contains(r.Stderr, "TERMINATED") {
			t.Errorf("%s", r)
		}
		cli(t, exitOK, "purge", "cli-term", "--recursive")
	})

	t.Run("failed workflow", func(t *testing.T) {
		r := cli(t, exitFailed, "start", "ChainingWorkflow", "--id", "cli-fail", "--input", `{"value":1,"failStep":"Step1","retrySeconds":0.01}`, "--wait")
		_, rest, _ := strings.Cut(r.Stdout, "\n")
		if st := statusOf(t, rest); st.Status != "FAILED" || st.Failure == nil || st.Failure.Type != "StepFailed" {
			t.Errorf("failed: %s", r)
		}
		if !strings.Contains(r.Stderr, "FAILED") {
			t.Errorf("%s", r)
		}
		h := cli(t, exitOK, "history", "cli-fail")
		if !regexp.MustCompile(`activity-failed\s+0\s+Step1\s+\S+\s+failed StepFailed: Step1 failed on attempt 3`).MatchString(h.Stdout) ||
			!strings.Contains(h.Stdout, "MyCompensation") || !strings.Contains(h.Stdout, "workflow-failed") {
			t.Errorf("history of a failed chain:\n%s", h.Stdout)
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, args := range [][]string{
			{"status", "ghost"},
			{"status", "ghost", "--wait"},
			{"raise", "ghost", "ManagerApproval", "--data", "{}"},
			{"terminate", "ghost"},
			{"pause", "ghost"},
			{"resume", "ghost"},
			{"purge", "ghost"},
			{"history", "ghost"},
		} {
			r := cli(t, exitNotFound, args...)
			if !strings.Contains(r.Stderr, "ERR_INSTANCE_ID_NOT_FOUND") {
				t.Errorf("%s", r)
			}
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		// The server refuses with 400: the CLI reports it as a usage error.
		r := cli(t, exitUsage, "start", "NoSuchWorkflow")
		if !strings.Contains(r.Stderr, "ERR_WORKFLOW_NOT_REGISTERED") {
			t.Errorf("%s", r)
		}
		cli(t, exitUsage, "start", "ChainingWorkflow", "--id", "bad*id")
		cli(t, exitUsage, "status", strings.Repeat("z", 65))
		cli(t, exitUsage, "list", "--status", "BOGUS")
	})

	t.Run("list", func(t *testing.T) {
		cli(t, exitOK, "start", "OrderProcessingWorkflow", "--id", "cli-list-wait", "--input", "@"+orderFile)
		for i := range 3 {
			cli(t, exitOK, "start", "FanOutFanInWorkflow", "--id", "cli-fan-"+string(rune('a'+i)), "--input", `{"count":3}`, "--wait")
		}
		rows := func(out string) (header string, ids []string) {
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			for _, l := range lines[1:] {
				ids = append(ids, strings.Fields(l)[0])
			}
			return strings.Join(strings.Fields(lines[0]), " "), ids
		}
		h, ids := rows(cli(t, exitOK, "list").Stdout)
		if h != "ID WORKFLOW STATUS CREATED" {
			t.Errorf("list header %q", h)
		}
		if len(ids) < 5 || ids[0] != "cli-chain" {
			t.Errorf("list: %v", ids)
		}
		r := cli(t, exitOK, "list", "--name", "FanOutFanInWorkflow")
		if _, ids := rows(r.Stdout); strings.Join(ids, ",") != "cli-fan-a,cli-fan-b,cli-fan-c" {
			t.Errorf("list --name:\n%s", r.Stdout)
		}
		if !regexp.MustCompile(`cli-fan-a\s+FanOutFanInWorkflow\s+COMPLETED\s+\d{4}-\d\d-\d\dT`).MatchString(r.Stdout) {
			t.Errorf("list row:\n%s", r.Stdout)
		}
		if _, ids := rows(cli(t, exitOK, "list", "--status", "RUNNING").Stdout); strings.Join(ids, ",") != "cli-list-wait" {
			t.Errorf("list --status RUNNING: %v", ids)
		}
		if _, ids := rows(cli(t, exitOK, "list", "--status", "FAILED,TERMINATED").Stdout); strings.Join(ids, ",") != "cli-fail" {
			t.Errorf("list --status FAILED,TERMINATED: %v", ids)
		}
		if _, ids := rows(cli(t, exitOK, "list", "--name", "FanOutFanInWorkflow", "--limit", "2").Stdout); strings.Join(ids, ",") != "cli-fan-a,cli-fan-b" {
			t.Errorf("list --limit 2: %v", ids)
		}
		if _, ids := rows(cli(t, exitOK, "list", "--name", "NoSuchWorkflow").Stdout); len(ids) != 0 {
			t.Errorf("list of nothing: %v", ids)
		}
		// --json, and --max-age (created within): the fan-outs were created a
		// moment ago, so within an hour and not within the last millisecond.
		jsonIDs := func(out string) []string {
			var got []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("list --json: %v\n%s", err, out)
			}
			var ids []string
			for _, in := range got {
				ids = append(ids, in.ID+":"+in.Status)
			}
			return ids
		}
		r = cli(t, exitOK, "list", "--name", "FanOutFanInWorkflow", "--max-age", "1h", "--json")
		if got := strings.Join(jsonIDs(r.Stdout), ","); got != "cli-fan-a:COMPLETED,cli-fan-b:COMPLETED,cli-fan-c:COMPLETED" {
			t.Errorf("list --max-age 1h --json: %s", got)
		}
		r = cli(t, exitOK, "list", "--name", "FanOutFanInWorkflow", "--max-age", "1ms", "--json")
		if got := jsonIDs(r.Stdout); len(got) != 0 || strings.TrimSpace(r.Stdout) != "[]" {
			t.Errorf("list --max-age 1ms --json: %q", r.Stdout)
		}
	})

	t.Run("server from environment", func(t *testing.T) {
		r := wantCLI(t, exitOK, []string{"WEFT_SERVER=" + s.URL}, "status", "cli-chain")
		if !strings.Contains(r.Stdout, `"cli-chain"`) {
			t.Errorf("%s", r)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		dead := "http://" + closedPort(t)
		for _, args := range [][]string{
			{"start", "ChainingWorkflow"},
			{"status", "x"},
			{"status", "x", "--wait"},
			{"raise", "x", "E"},
			{"terminate", "x"},
			{"pause", "x"},
			{"resume", "x"},
			{"purge", "x"},
			{"list"},
			{"history", "x"},
		} {
			r := wantCLI(t, exitUnreachable, nil, append(args, "--server", dead)...)
			if !strings.Contains(r.Stderr, "cannot reach the weft server") {
				t.Errorf("%s", r)
			}
		}
	})
}

func matchesALine(re *regexp.Regexp, lines []string) bool {
	for _, l := range lines {
		if re.MatchString(strings.TrimRight(l, " ")) {
			return true
		}
	}
	return false
}
