package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftrt/weft/internal/activitylog"
)

// TestActivityLimitThroughServe: `weft serve --activity-limit
// ProcessWorkItem=10` holds a fan-out of 1,000 items asking for all of them
// at once to 10 running (as the activity's own log of when each ran says),
// using all 10, and every item runs once; `--workflow-limit
// ChainingWorkflow=1` runs three chains started together one after the
// other; a malformed limit is refused at start.
func TestActivityLimitThroughServe(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--activity-limit", "ProcessWorkItem=10", "--activity-limit", "Other=3", "--workflow-limit", "ChainingWorkflow=1")
	if !strings.Contains(s.log(), `activity_limits="ProcessWorkItem=10,Other=3"`) {
		t.Errorf("the serving line does not show the limits:\n%s", s.log())
	}
	c := s.client(t)
	v1Start(t, c, `{"name":"FanOutFanInWorkflow","instanceId":"limited-fan","input":{"count":1000,"maxParallel":1000,"itemDelayMs":5}}`)
	if st := c.waitDone("limited-fan"); st.Status != "COMPLETED" || string(st.Output) != "500500" {
		t.Fatalf("limited-fan: %+v", st)
	}
	// The instance completes once the results are in, a moment before this
	// process may have read the last lines logged with them.
	executed := func(activity, instancePrefix string) func([]string) int {
		return func(lines []string) int {
			n := 0
			for _, e := range activitylog.Parse(lines) {
				if (activity == "" || e.Activity == activity) && strings.HasPrefix(e.Instance, instancePrefix) {
					n++
				}
			}
			return n
		}
	}
	items := executed("ProcessWorkItem", "limited-fan")
	s.waitUntil(10*time.Second, "1000 executions of ProcessWorkItem logged", func(l []string) bool { return items(l) >= 1000 }, false)
	execs := activitylog.Parse(s.Lines())
	if n := items(s.Lines()); n != 1000 {
		t.Errorf("%d executions of ProcessWorkItem logged, want 1000", n)
	}
	if most := activitylog.MostAtOnce(execs, "ProcessWorkItem"); most != 10 {
		t.Errorf("at most %d ProcessWorkItem ran at once; want 10 (the limit, reached)", most)
	}
	for i := range 3 {
		v1Start(t, c, fmt.Sprintf(`{"name":"ChainingWorkflow","instanceId":"one-at-a-time-%d","input":{"value":%d}}`, i, i))
	}
	type span struct{ start, end time.Time }
	chains := map[string]*span{}
	for i := range 3 {
		id := fmt.Sprintf("one-at-a-time-%d", i)
		if st := c.waitDone(id); st.Status != "COMPLETED" || string(st.Output) != fmt.Sprint(i+4) {
			t.Fatalf("%s: %+v", id, st)
		}
	}
	steps := executed("", "one-at-a-time-")
	s.waitUntil(10*time.Second, "the chains' 12 steps logged", func(l []string) bool { return steps(l) >= 12 }, false)
	for _, e := range activitylog.Parse(s.Lines()) {
		if !strings.HasPrefix(e.Instance, "one-at-a-time-") {
			continue
		}
		sp := chains[e.Instance]
		if sp == nil {
			sp = &span{e.Start, e.End}
			chains[e.Instance] = sp
		}
		if e.Start.Before(sp.start) {
			sp.start = e.Start
		}
		if e.End.After(sp.end) {
			sp.end = e.End
		}
	}
	for a, x := range chains {
		for b, y := range chains {
			if a < b && x.start.Before(y.end) && y.start.Before(x.end) {
				t.Errorf("chains %s and %s ran at once (limit 1): %v and %v", a, b, x, y)
			}
		}
	}
	for flag, bad := range map[string]string{"--activity-limit": "ProcessWorkItem", "--workflow-limit": "ChainingWorkflow=0"} {
		r := runCLI(t, nil, "serve", "--http", "127.0.0.1:0", "--grpc", "off", "--data", t.TempDir(), flag, bad)
		if r.Code != 2 || !strings.Contains(r.Stderr, flag) {
			t.Errorf("%s %s: %s; want exit 2 naming the flag", flag, bad, r)
		}
	}
}
