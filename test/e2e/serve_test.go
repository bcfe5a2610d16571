package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeOptions: the serve flags and their WEFT_* variables take effect.
func TestServeOptions(t *testing.T) {
	t.Parallel()

	t.Run("json debug logs and pprof", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, t.TempDir(), "--log-format", "json", "--log-level", "debug", "--pprof")
		c := s.client(t)
		c.expect(c.do("GET", "/debug/pprof/", ""), http.StatusOK)
		c.expect(c.do("GET", "/debug/pprof/cmdline", ""), http.StatusOK)
		id := daprStart(t, c, "v1.0", "ChainingWorkflow", "", `{"value":1}`)
		c.waitDone(id)
		// The log is read from the process's stderr as it comes: the lines
		// of the last step may follow the completion by a moment.
		s.waitUntil(10*time.Second, "a debug line and Step4's line", func(lines []string) bool {
			return countLines(lines, `"level":"DEBUG"`) > 0 && countLines(lines, `"msg":"activity executed"`, `"activity":"Step4"`) > 0
		}, false)
		for _, l := range s.Lines() {
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["msg"] == nil || rec["level"] == nil {
				t.Errorf("log line is not a JSON record: %q", l)
			}
		}
		if n := countLines(s.Lines(), `"msg":"activity executed"`, `"activity":"Step4"`, `"instance":"`+id+`"`); n != 1 {
			t.Errorf("%d JSON \"activity executed\" lines for Step4", n)
		}
	})

	t.Run("samples only when asked", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, t.TempDir(), "--samples=false")
		c := s.client(t)
		if got := decode[map[string][]string](t, c.expect(c.do("GET", "/api/v1/workflows", ""), 200))["workflows"]; len(got) != 0 {
			t.Errorf("without --samples, workflows %v; want none", got)
		}
		wantError(t, c.do("POST", "/v1.0/workflows/dapr/ChainingWorkflow/start", `{"value":1}`), 400, "ERR_WORKFLOW_NOT_REGISTERED")
	})

	t.Run("no pprof by default", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, t.TempDir())
		c := s.client(t)
		if r := c.do("GET", "/debug/pprof/", ""); r.Status != http.StatusNotFound {
			t.Errorf("%s; want 404 without --pprof", r)
		}
	})

	t.Run("environment", func(t *testing.T) {
		t.Parallel()
		s := startServerEnv(t, t.TempDir(), []string{
			"WEFT_API_TOKEN=env-token", "WEFT_MAX_BODY=1KiB", "WEFT_APPROVAL_THRESHOLD=5", "WEFT_APPROVAL_TIMEOUT=200ms",
		})
		c := s.client(t)
		wantError(t, c.do("GET", "/api/v1/instances", ""), 401, "ERR_UNAUTHORIZED")
		c.header.Set("dapr-api-token", "env-token")
		wantError(t, c.do("POST", "/v1.0/workflows/dapr/ChainingWorkflow/start", `{"value":1,"failStep":"`+strings.Repeat("x", 1100)+`"}`), 413, "ERR_BODY_TOO_LARGE")
		// 9.95 is above the threshold of 5: it waits, and times out after 200ms.
		daprStart(t, c, "v1.0", "OrderProcessingWorkflow", "env-order", paperclips)
		if done := c.waitDone("env-order"); !jsonEqual(done.Output, []byte(`{"Processed":false}`)) || !jsonEqual(done.CustomStatus, []byte(`"cancelled: approval timed out"`)) {
			t.Errorf("with WEFT_APPROVAL_*: %+v", done)
		}
	})

	t.Run("flags override the environment", func(t *testing.T) {
		t.Parallel()
		s := startServerEnv(t, t.TempDir(), []string{"WEFT_API_TOKEN=env-token"}, "--api-token", "flag-token")
		c := s.client(t)
		wantError(t, c.do("GET", "/api/v1/instances", "", "dapr-api-token", "env-token"), 401, "ERR_UNAUTHORIZED")
		c.expect(c.do("GET", "/api/v1/instances", "", "dapr-api-token", "flag-token"), 200)
	})

	t.Run("small limits", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, t.TempDir(), "--activity-concurrency", "1", "--max-active", "2", "--partitions", "4")
		c := s.client(t)
		fan := daprStart(t, c, "v1.0", "FanOutFanInWorkflow", "", `{"count":20,"maxParallel":5}`)
		var orders []string
		for i := range 5 {
			orders = append(orders, daprStart(t, c, "v1.0", "OrderProcessingWorkflow", "limit-"+strconv.Itoa(i), `{"Name":"Boat","Quantity":1,"TotalCost":2000}`))
		}
		if done := c.waitDone(fan); string(done.Output) != "210" {
			t.Errorf("fan-out with one activity slot: %+v", done)
		}
		for _, id := range orders {
			c.expect(c.do("POST", "/v1.0/workflows/dapr/"+id+"/raiseEvent/ManagerApproval", `{"approved":true}`), http.StatusAccepted)
		}
		for _, id := range orders {
			if done := c.waitDone(id); !jsonEqual(done.Output, []byte(`{"Processed":true}`)) {
				t.Errorf("%s with --max-active 2: %+v", id, done)
			}
		}
		active := regexp.MustCompile(`(?m)^weft_active_instances (\d+)`)
		eventually(t, 10*time.Second, "at most 2 active instances in /metrics", func() bool {
			m := active.FindSubmatch(c.expect(c.do("GET", "/metrics", ""), 200).Body)
			if m == nil {
				t.Fatal("/metrics has no weft_active_instances")
			}
			n, _ := strconv.Atoi(string(m[1]))
			return n <= 2
		})
		if !strings.Contains(s.log(), "partitions=4") {
			t.Errorf("the store was not created with 4 partitions")
		}
	})
}

// TestServeRefusesBusyAddress: a listen failure is a plain failure (exit 1) with the
// address in the message.
func TestServeRefusesBusyAddress(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	addr := strings.TrimPrefix(s.URL, "http://")
	r := wantCLI(t, 1, nil, "serve", "--http", addr, "--grpc", "off", "--data", t.TempDir())
	if !strings.Contains(r.Stderr, "listen on "+addr) {
		t.Errorf("%s", r)
	}
}
