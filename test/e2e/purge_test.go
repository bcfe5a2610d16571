package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPurgeForceAndOlderThan: a running instance is refused by a plain purge
// and purged with --force; `weft purge --all-older-than` purges the instances
// that finished that long ago and no others; the HTTP form refuses a purge of
// many without its time.
func TestPurgeForceAndOlderThan(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	c := s.client(t)
	cli := func(code int, args ...string) cliResult {
		t.Helper()
		return wantCLI(t, code, nil, append(args, "--server", s.URL)...)
	}

	running := v1Start(t, c, `{"name":"MonitorWorkflow","instanceId":"purge-running","input":{"entity":"e"}}`)
	cli(exitConflict, "purge", running)
	cli(exitOK, "purge", running, "--force")
	cli(exitNotFound, "status", running)

	var done []string
	for _, id := range []string{"purge-old-1", "purge-old-2"} {
		done = append(done, v1Start(t, c, `{"name":"ChainingWorkflow","instanceId":"`+id+`","input":{"value":1}}`))
	}
	for _, id := range done {
		if st := c.waitDone(id); st.Status != "COMPLETED" {
			t.Fatalf("%s: %+v", id, st)
		}
	}
	if r := cli(exitOK, "purge", "--all-older-than", "1h"); !strings.Contains(r.Stdout, "purged 0 instance(s)") {
		t.Fatalf("nothing finished an hour ago: %s", r)
	}
	time.Sleep(50 * time.Millisecond)
	if r := cli(exitOK, "purge", "--all-older-than", "10ms"); !strings.Contains(r.Stdout, "purged 2 instance(s) that finished more than 10ms ago") {
		t.Fatalf("the two finished instances: %s", r)
	}
	for _, id := range done {
		cli(exitNotFound, "status", id)
	}
	if r := c.do("DELETE", "/api/v1/instances", ""); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "finishedBefore") {
		t.Fatalf("DELETE /api/v1/instances without a time: %s", r)
	}
	if r := c.do("DELETE", "/api/v1/instances?finishedBefore=yesterday", ""); r.Status != http.StatusBadRequest {
		t.Fatalf("a time that is not RFC 3339: %s", r)
	}
}

// TestRerunCLI: `weft rerun ID --from-event N` starts a new instance from a
// finished chain's second step and prints its id; --wait prints its status;
// a rerun of a running instance exits 4 (conflict), of a missing one 3; a
// missing --from-event and an unknown task exit 2.
func TestRerunCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	c := s.client(t)
	cli := func(code int, args ...string) cliResult {
		t.Helper()
		return wantCLI(t, code, nil, append(args, "--server", s.URL)...)
	}
	src := v1Start(t, c, `{"name":"ChainingWorkflow","instanceId":"rerun-src","input":{"value":1}}`)
	st := c.waitDone(src)
	r := cli(exitOK, "rerun", src, "--from-event", "1", "--id", "rerun-new", "--wait")
	if !strings.HasPrefix(r.Stdout, "rerun-new\n") || !strings.Contains(r.Stdout, `"status": "COMPLETED"`) {
		t.Fatalf("rerun --wait: %s", r)
	}
	again := c.waitDone("rerun-new")
	if string(again.Output) != string(st.Output) {
		t.Fatalf("the rerun's output %s, want the source's %s", again.Output, st.Output)
	}
	running := v1Start(t, c, `{"name":"MonitorWorkflow","instanceId":"rerun-running","input":{"entity":"e"}}`)
	cli(exitConflict, "rerun", running, "--from-event", "0")
	cli(exitNotFound, "rerun", "rerun-nope", "--from-event", "0")
	cli(exitUsage, "rerun", src)
	if r := cli(exitUsage, "rerun", src, "--from-event", "99"); !strings.Contains(r.Stderr, "task 99") { // 400, as any invalid input
		t.Fatalf("an unknown task: %s", r)
	}
}
