package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRetention: `weft serve --retention completed=2s` purges a completed
// instance about 2 s after it finished (its status then answers 404) and
// counts it on /metrics; a terminated instance, which this policy keeps,
// stays. A malformed --retention is refused at start, naming what is wrong.
func TestRetention(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--retention", "completed=2s")
	c := s.client(t)
	done := v1Start(t, c, `{"name":"ChainingWorkflow","instanceId":"retained-chain","input":{"value":1}}`)
	st := c.waitDone(done)
	if st.Status != "COMPLETED" || st.CompletedAt == nil {
		t.Fatalf("%s: %+v", done, st)
	}
	// The server's completion time (same machine, same clock), not when the
	// wait returned: the retention counts from the former.
	finished := *st.CompletedAt
	kept := v1Start(t, c, `{"name":"MonitorWorkflow","instanceId":"retained-monitor","input":{"entity":"e"}}`)
	c.expect(c.do("POST", "/api/v1/instances/"+kept+"/terminate", `{"reason":"test"}`), 202)
	if st := c.waitDone(kept); st.Status != "TERMINATED" {
		t.Fatalf("%s: %+v", kept, st)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.do("GET", "/api/v1/instances/"+done, "")
		if r.Status == http.StatusNotFound {
			break
		}
		if r.Status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("the completed instance, %s after it finished: %s; want 404 once its 2 s retention ran out", time.Since(finished).Round(time.Millisecond), r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if took := time.Since(finished); took < 2*time.Second {
		t.Fatalf("purged %s after it finished, before its retention of 2s ran out", took)
	}
	if r := c.do("GET", "/api/v1/instances/"+kept, ""); r.Status != http.StatusOK {
		t.Errorf("the terminated instance (kept for ever by completed=2s): %s", r)
	}
	metrics := string(c.expect(c.do("GET", "/metrics", ""), 200).Body)
	if !strings.Contains(metrics, `weft_instances_purged_total{reason="retention"} 1`) {
		t.Errorf("/metrics has no weft_instances_purged_total{reason=\"retention\"} 1:\n%s", grepLines(metrics, "weft_instances_purged"))
	}

	for _, bad := range []string{"completed=soon", "running=1h", "720h"} {
		r := runCLI(t, nil, "serve", "--http", "127.0.0.1:0", "--grpc", "off", "--data", t.TempDir(), "--retention", bad)
		if r.Code != 2 || !strings.Contains(r.Stderr, "retention") {
			t.Errorf("--retention %s: %s; want exit 2 naming the retention", bad, r)
		}
	}
}

func grepLines(text, sub string) string {
	var out []string
	for l := range strings.Lines(text) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return fmt.Sprint(out)
}
