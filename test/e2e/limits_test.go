package e2e

import (
	"strings"
	"testing"

	"github.com/weftrt/weft/internal/activitylog"
)

// TestActivityLimitThroughServe: `weft serve --activity-limit
// ProcessWorkItem=10` holds a fan-out of 1,000 items asking for all of them
// at once to 10 running (as the activity's own log of when each ran says),
// using all 10, and every item runs once; a malformed limit is refused at
// start.
func TestActivityLimitThroughServe(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--activity-limit", "ProcessWorkItem=10", "--activity-limit", "Other=3")
	if !strings.Contains(s.log(), `activity_limits="ProcessWorkItem=10,Other=3"`) {
		t.Errorf("the serving line does not show the limits:\n%s", s.log())
	}
	c := s.client(t)
	v1Start(t, c, `{"name":"FanOutFanInWorkflow","instanceId":"limited-fan","input":{"count":1000,"maxParallel":1000,"itemDelayMs":5}}`)
	if st := c.waitDone("limited-fan"); st.Status != "COMPLETED" || string(st.Output) != "500500" {
		t.Fatalf("limited-fan: %+v", st)
	}
	execs := activitylog.Parse(s.Lines())
	items := 0
	for _, e := range execs {
		if e.Activity == "ProcessWorkItem" {
			items++
		}
	}
	if items != 1000 {
		t.Errorf("%d executions of ProcessWorkItem logged, want 1000", items)
	}
	if most := activitylog.MostAtOnce(execs, "ProcessWorkItem"); most != 10 {
		t.Errorf("at most %d ProcessWorkItem ran at once; want 10 (the limit, reached)", most)
	}
	for _, bad := range []string{"ProcessWorkItem", "ProcessWorkItem=0", "=4"} {
		r := runCLI(t, nil, "serve", "--http", "127.0.0.1:0", "--grpc", "off", "--data", t.TempDir(), "--activity-limit", bad)
		if r.Code != 2 || !strings.Contains(r.Stderr, "--activity-limit") {
			t.Errorf("--activity-limit %s: %s; want exit 2 naming the flag", bad, r)
		}
	}
}
