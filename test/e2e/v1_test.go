package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

type v1Summary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
}

type v1List struct {
	Instances     []v1Summary `json:"instances"`
	NextPageToken string      `json:"nextPageToken"`
}

type v1Event struct {
	Seq      int             `json:"seq"`
	Kind     string          `json:"kind"`
	Time     time.Time       `json:"time"`
	TaskID   *int64          `json:"taskId"`
	Name     string          `json:"name"`
	Instance string          `json:"instance"`
	Data     json.RawMessage `json:"data"`
	FireAt   *time.Time      `json:"fireAt"`
}

type v1History struct {
	ID     string    `json:"id"`
	Events []v1Event `json:"events"`
}

// v1Start starts an instance over POST /api/v1/instances and checks the 202.
func v1Start(t *testing.T, c *client, body string) string {
	t.Helper()
	r := c.expect(c.do("POST", "/api/v1/instances", body), http.StatusAccepted)
	out := decode[map[string]string](t, r)
	id := out["id"]
	if id == "" || len(out) != 1 {
		t.Fatalf("%s: want {\"id\": ...}", r)
	}
	if loc := r.Header.Get("Location"); loc != "/api/v1/instances/"+id {
		t.Errorf("%s: Location %q", r, loc)
	}
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("%s: no Retry-After", r)
	}
	return id
}

// TestV1Routes drives weft's own API: workflows, start (with reuse policies and
// a delayed start), status, history, long-poll wait (200 when finished, 202 when
// the timeout came first), events, suspend/resume, terminate, delete; plus
// health, readiness and metrics. It runs all four seed workflows.
func TestV1Routes(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())

	t.Run("health", func(t *testing.T) {
		c := s.client(t)
		if r := c.expect(c.do("GET", "/healthz", ""), 200); strings.TrimSpace(string(r.Body)) != "ok" {
			t.Errorf("%s", r)
		}
		if r := c.expect(c.do("GET", "/readyz", ""), 200); strings.TrimSpace(string(r.Body)) != "ready" {
			t.Errorf("%s", r)
		}
	})

	t.Run("workflows", func(t *testing.T) {
		c := s.client(t)
		got := decode[map[string][]string](t, c.expect(c.do("GET", "/api/v1/workflows", ""), 200))["workflows"]
		for _, w := range []string{"OrderProcessingWorkflow", "ChainingWorkflow", "FanOutFanInWorkflow", "MonitorWorkflow"} {
			if !slices.Contains(got, w) {
				t.Errorf("workflows %v: %s missing", got, w)
			}
		}
	})

	t.Run("chain and history", func(t *testing.T) {
		c := s.client(t)
		id := v1Start(t, c, `{"name":"ChainingWorkflow","instanceId":"chain-1","input":{"value":10}}`)
		if id != "chain-1" {
			t.Fatalf("id %q", id)
		}
		done := c.waitDone(id)
		if done.Status != "COMPLETED" || string(done.Output) != "14" || done.Name != "ChainingWorkflow" ||
			!jsonEqual(done.Input, []byte(`{"value":10}`)) || done.CompletedAt == nil || done.CreatedAt.IsZero() {
			t.Errorf("chain: %+v", done)
		}
		if st := c.status(id); st.Status != "COMPLETED" || string(st.Output) != "14" {
			t.Errorf("status: %+v", st)
		}
		h := decode[v1History](t, c.expect(c.do("GET", "/api/v1/instances/chain-1/history", ""), 200))
		var kinds []string
		for i, ev := range h.Events {
			kinds = append(kinds, ev.Kind)
			if ev.Seq != i {
				t.Errorf("event %d has seq %d", i, ev.Seq)
			}
			if strings.HasPrefix(ev.Kind, "activity-") && ev.TaskID == nil {
				t.Errorf("event %d (%s) has no taskId", i, ev.Kind)
			}
		}
		want := []string{"workflow-started"}
		for range 4 {
			want = append(want, "activity-scheduled", "activity-completed")
		}
		want = append(want, "workflow-completed")
		if h.ID != "chain-1" || !slices.Equal(kinds, want) {
			t.Fatalf("history kinds %v, want %v", kinds, want)
		}
		if h.Events[1].Name != "Step1" || h.Events[7].Name != "Step4" || string(h.Events[8].Data) != "14" || string(h.Events[9].Data) != "14" {
			t.Errorf("history: %+v", h.Events)
		}
		wantError(t, c.do("GET", "/api/v1/instances/nope/history", ""), 404, "ERR_INSTANCE_ID_NOT_FOUND")
	})

	t.Run("reuse policies", func(t *testing.T) {
		c := s.client(t)
		order := `{"Name":"Boat","Quantity":1,"TotalCost":2000}`
		v1Start(t, c, `{"name":"OrderProcessingWorkflow","instanceId":"reuse-1","input":`+order+`}`)
		wantError(t, c.do("POST", "/api/v1/instances", `{"name":"OrderProcessingWorkflow","instanceId":"reuse-1","input":`+order+`}`), 409, "ERR_INSTANCE_ID_ALREADY_EXISTS")
		wantError(t, c.do("POST", "/api/v1/instances", `{"name":"OrderProcessingWorkflow","instanceId":"reuse-1","reusePolicy":"error"}`), 409, "ERR_INSTANCE_ID_ALREADY_EXISTS")
		first := c.status("reuse-1")
		v1Start(t, c, `{"name":"OrderProcessingWorkflow","instanceId":"reuse-1","reusePolicy":"ignore","input":{"Name":"Other","Quantity":1,"TotalCost":1}}`)
		if st := c.status("reuse-1"); !jsonEqual(st.Input, []byte(order)) || !st.CreatedAt.Equal(first.CreatedAt) {
			t.Errorf("ignore replaced the instance: %+v", st)
		}
		v1Start(t, c, `{"name":"ChainingWorkflow","instanceId":"reuse-1","reusePolicy":"terminate","input":{"value":0}}`)
		if done := c.waitDone("reuse-1"); done.Name != "ChainingWorkflow" || string(done.Output) != "4" {
			t.Errorf("terminate-and-replace: %+v", done)
		}
		wantError(t, c.do("POST", "/api/v1/instances", `{"name":"ChainingWorkflow","instanceId":"reuse-1","reusePolicy":"sometimes"}`), 400, "ERR_INVALID_INPUT")
	})

	t.Run("delayed start", func(t *testing.T) {
		c := s.client(t)
		at := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
		id := v1Start(t, c, `{"name":"ChainingWorkflow","instanceId":"later-1","input":{"value":1},"startAt":"`+at+`"}`)
		st := c.status(id)
		if st.Status != "PENDING" || st.ScheduledStartAt == nil {
			t.Errorf("delayed: %+v", st)
		}
		r := c.expect(c.do("GET", "/api/v1/instances/"+id+"/wait?for=start&timeout=100ms", ""), http.StatusAccepted)
		if decode[v1Status](t, r).Status != "PENDING" {
			t.Errorf("%s", r)
		}
		c.expect(c.do("POST", "/api/v1/instances/"+id+"/terminate", `{"reason":"never mind"}`), http.StatusAccepted)
		if done := c.waitDone(id); done.Status != "TERMINATED" {
			t.Errorf("terminated pending instance: %+v", done)
		}
	})

	t.Run("events suspend resume terminate delete", func(t *testing.T) {
		c := s.client(t)
		id := v1Start(t, c, `{"name":"OrderProcessingWorkflow","input":{"Name":"Car","Quantity":1,"TotalCost":30000}}`)
		// A started instance is no longer PENDING.
		r := c.expect(c.do("GET", "/api/v1/instances/"+id+"/wait?for=start&timeout=30s", ""), http.StatusOK)
		if st := decode[v1Status](t, r); st.Status != "RUNNING" {
			t.Errorf("wait for=start: %s", r)
		}
		c.expect(c.do("POST", "/api/v1/instances/"+id+"/suspend", `{"reason":"lunch"}`), http.StatusAccepted)
		if st := c.status(id); st.Status != "SUSPENDED" {
			t.Errorf("suspended: %s", st.Status)
		}
		c.expect(c.do("POST", "/api/v1/instances/"+id+"/resume", `{"reason":"back"}`), http.StatusAccepted)
		if st := c.status(id); st.Status != "RUNNING" {
			t.Errorf("resumed: %s", st.Status)
		}
		wantError(t, c.do("DELETE", "/api/v1/instances/"+id, ""), 409, "ERR_INSTANCE_NOT_FINISHED")
		c.expect(c.do("POST", "/api/v1/instances/"+id+"/events/ManagerApproval", `{"approved":false}`), http.StatusAccepted)
		if done := c.waitDone(id); !jsonEqual(done.Output, []byte(`{"Processed":false}`)) {
			t.Errorf("rejected: %+v", done)
		}
		h := decode[v1History](t, c.expect(c.do("GET", "/api/v1/instances/"+id+"/history", ""), 200))
		var kinds []string
		for _, ev := range h.Events {
			kinds = append(kinds, ev.Kind)
		}
		for _, k := range []string{"workflow-suspended", "workflow-resumed", "event-raised", "workflow-completed"} {
			if !slices.Contains(kinds, k) {
				t.Errorf("history %v has no %s", kinds, k)
			}
		}
		r = c.expect(c.do("DELETE", "/api/v1/instances/"+id+"?recursive=true", ""), 200)
		if got := decode[map[string]string](t, r); got["purged"] != id {
			t.Errorf("%s", r)
		}
		wantError(t, c.do("GET", "/api/v1/instances/"+id, ""), 404, "ERR_INSTANCE_ID_NOT_FOUND")
		wantError(t, c.do("DELETE", "/api/v1/instances/"+id, ""), 404, "ERR_INSTANCE_ID_NOT_FOUND")

		id = v1Start(t, c, `{"name":"OrderProcessingWorkflow","input":{"Name":"Car","Quantity":1,"TotalCost":30000}}`)
		c.expect(c.do("POST", "/api/v1/instances/"+id+"/terminate", `{"reason":"cancelled","recursive":true}`), http.StatusAccepted)
		if done := c.waitDone(id); done.Status != "TERMINATED" || string(done.Output) != `"cancelled"` {
			t.Errorf("terminated: %+v", done)
		}
		wantError(t, c.do("POST", "/api/v1/instances/"+id+"/suspend", ""), 409, "ERR_INSTANCE_NOT_RUNNING")
	})

	t.Run("wait", func(t *testing.T) {
		c := s.client(t)
		id := v1Start(t, c, `{"name":"OrderProcessingWorkflow","instanceId":"wait-1","input":{"Name":"Car","Quantity":1,"TotalCost":30000}}`)
		start := time.Now()
		r := c.expect(c.do("GET", "/api/v1/instances/"+id+"/wait?timeout=250ms", ""), http.StatusAccepted)
		if took := time.Since(start); took < 250*time.Millisecond {
			t.Errorf("the wait answered after %s, before its 250ms timeout", took)
		}
		if st := decode[v1Status](t, r); st.Status != "RUNNING" || st.ID != id {
			t.Errorf("%s", r)
		}
		// A waiter blocked in the long poll is woken by the commit that finishes the
		// instance.
		type result struct {
			r   response
			err error
		}
		got := make(chan result, 1)
		go func() {
			r, err := c.try("GET", "/api/v1/instances/"+id+"/wait?timeout=30s", "")
			got <- result{r, err}
		}()
		c.expect(c.do("POST", "/api/v1/instances/"+id+"/events/ManagerApproval", `{"approved":true}`), http.StatusAccepted)
		res := <-got
		if res.err != nil {
			t.Fatal(res.err)
		}
		if st := decode[v1Status](t, c.expect(res.r, 200)); st.Status != "COMPLETED" {
			t.Errorf("%s", res.r)
		}
		// A finished instance answers at once.
		c.expect(c.do("GET", "/api/v1/instances/"+id+"/wait?timeout=0s", ""), 200)
		for _, q := range []string{"timeout=forever", "timeout=-1s", "timeout=11m", "for=nothing"} {
			wantError(t, c.do("GET", "/api/v1/instances/"+id+"/wait?"+q, ""), 400, "ERR_BAD_REQUEST")
		}
		wantError(t, c.do("GET", "/api/v1/instances/nope/wait?timeout=1s", ""), 404, "ERR_INSTANCE_ID_NOT_FOUND")
	})

	t.Run("fan-out and monitor", func(t *testing.T) {
		c := s.client(t)
		fan := v1Start(t, c, `{"name":"FanOutFanInWorkflow","input":{"count":20,"maxParallel":5}}`)
		mon := v1Start(t, c, `{"name":"MonitorWorkflow","input":{"entity":"db","maxCycles":3,"healthySeconds":0.02,"unhealthySeconds":0.02}}`)
		if done := c.waitDone(fan); done.Status != "COMPLETED" || string(done.Output) != "210" {
			t.Errorf("fan-out of 20: %+v", done)
		}
		done := c.waitDone(mon)
		var out struct {
			Cycle int `json:"cycle"`
		}
		if err := json.Unmarshal(done.Output, &out); done.Status != "COMPLETED" || err != nil || out.Cycle != 3 || done.Generation != 2 {
			t.Errorf("monitor: %s output %s generation %d", done.Status, done.Output, done.Generation)
		}
	})

	t.Run("errors", func(t *testing.T) {
		c := s.client(t)
		long := strings.Repeat("y", 65)
		for _, tc := range []struct {
			method, path, body string
			status             int
			code               string
		}{
			{"POST", "/api/v1/instances", `{"input":{}}`, 400, "ERR_WORKFLOW_NAME_MISSING"},
			{"POST", "/api/v1/instances", `{"name":"Nope"}`, 400, "ERR_WORKFLOW_NOT_REGISTERED"},
			{"POST", "/api/v1/instances", `{not json`, 400, "ERR_INVALID_INPUT"},
			{"POST", "/api/v1/instances", ``, 400, "ERR_INVALID_INPUT"},
			{"POST", "/api/v1/instances", `{"name":"ChainingWorkflow","instanceId":"a/b"}`, 400, "ERR_INSTANCE_ID_INVALID"},
			{"POST", "/api/v1/instances", `{"name":"ChainingWorkflow","instanceId":"` + long + `"}`, 400, "ERR_INSTANCE_ID_TOO_LONG"},
			{"POST", "/api/v1/instances", `{"name":"ChainingWorkflow","input":"not an object"}`, 400, "ERR_INVALID_INPUT"},
			{"GET", "/api/v1/instances/bad*id", "", 400, "ERR_INSTANCE_ID_INVALID"},
			{"GET", "/api/v1/instances/" + long, "", 400, "ERR_INSTANCE_ID_TOO_LONG"},
			{"GET", "/api/v1/instances/nope", "", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", "/api/v1/instances/nope/events/x", "{}", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", "/api/v1/instances/nope/terminate", "", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", "/api/v1/instances/nope/suspend", "", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", "/api/v1/instances/nope/resume", "", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", "/api/v1/instances/chain-1/events/", "{}", 400, "ERR_WORKFLOW_EVENT_NAME_MISSING"},
			{"POST", "/api/v1/instances/chain-1/events", "{}", 400, "ERR_WORKFLOW_EVENT_NAME_MISSING"},
			{"POST", "/api/v1/instances/chain-1/terminate", "[1,2]", 400, "ERR_INVALID_INPUT"},
			{"PUT", "/api/v1/instances", "", 405, "ERR_METHOD_NOT_ALLOWED"},
			{"POST", "/api/v1/workflows", "", 405, "ERR_METHOD_NOT_ALLOWED"},
			{"PATCH", "/api/v1/instances/chain-1", "", 405, "ERR_METHOD_NOT_ALLOWED"},
			{"POST", "/api/v1/instances/chain-1/history", "", 405, "ERR_METHOD_NOT_ALLOWED"},
			{"GET", "/api/v1/instances/chain-1/terminate", "", 405, "ERR_METHOD_NOT_ALLOWED"},
			{"GET", "/api/v1/instances/chain-1/bogus", "", 404, "ERR_NOT_FOUND"},
			{"GET", "/api/v1/bogus", "", 404, "ERR_NOT_FOUND"},
			{"GET", "/api/v2/instances", "", 404, "ERR_NOT_FOUND"},
		} {
			wantError(t, c.do(tc.method, tc.path, tc.body), tc.status, tc.code)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		c := s.client(t)
		c.waitDone("chain-1") // the chain subtest ran: there is something to count
		r := c.expect(c.do("GET", "/metrics", ""), 200)
		body := string(r.Body)
		for _, series := range []string{
			`weft_workflows_started_total{`, `weft_workflows_finished_total{`, `status="COMPLETED"`,
			`weft_activity_executions_total{`, `weft_activity_duration_seconds_bucket{`, `weft_commit_duration_seconds_bucket`,
			`weft_active_instances `, `weft_activities_running `, `weft_activities_queued `, `weft_reminders_in_memory `,
			`go_goroutines `, `process_resident_memory_bytes `,
		} {
			if !strings.Contains(body, series) {
				t.Errorf("/metrics has no %s", series)
			}
		}
		for _, series := range []string{
			`weft_workflows_started_total{workflow="ChainingWorkflow"}`,
			`weft_workflows_finished_total{status="COMPLETED",workflow="ChainingWorkflow"}`,
			`weft_activity_executions_total{activity="Step1",outcome="ok"}`,
		} {
			if !strings.Contains(body, series) {
				t.Errorf("/metrics has no %s:\n%s", series, grep(body, "weft_"))
			}
		}
	})
}

func grep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestV1List checks the counts per status and the listing: every filter (status,
// name, createdFrom, createdTo), paging with pageSize and nextPageToken in creation
// order, and the query errors.
func TestV1List(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	c := s.client(t)

	var all []string
	start := func(name, id, input string) {
		v1Start(t, c, fmt.Sprintf(`{"name":%q,"instanceId":%q,"input":%s}`, name, id, input))
		all = append(all, id)
	}
	for i := range 4 {
		start("ChainingWorkflow", fmt.Sprintf("c%d", i), `{"value":1}`)
	}
	var mid time.Time
	for i := range 3 {
		start("OrderProcessingWorkflow", fmt.Sprintf("o%d", i), `{"Name":"Car","Quantity":1,"TotalCost":30000}`)
		if i == 0 {
			mid = c.status("o0").CreatedAt
		}
	}
	for i := range 4 {
		c.waitDone(fmt.Sprintf("c%d", i))
	}
	c.expect(c.do("POST", "/api/v1/instances/o2/suspend", ""), http.StatusAccepted)

	// GET /api/v1/counts: instances per status.
	counts := decode[map[string]int](t, c.expect(c.do("GET", "/api/v1/counts", ""), 200))
	for st, n := range counts {
		if want := map[string]int{"COMPLETED": 4, "RUNNING": 2, "SUSPENDED": 1}[st]; n != want {
			t.Errorf("counts %v: %s is %d, want %d", counts, st, n, want)
		}
	}
	if counts["COMPLETED"] != 4 || counts["RUNNING"] != 2 || counts["SUSPENDED"] != 1 {
		t.Errorf("counts %v", counts)
	}
	wantError(t, c.do("POST", "/api/v1/counts", ""), 405, "ERR_METHOD_NOT_ALLOWED")

	list := func(q string) v1List {
		t.Helper()
		return decode[v1List](t, c.expect(c.do("GET", "/api/v1/instances?"+q, ""), 200))
	}
	ids := func(l v1List) []string {
		var out []string
		for _, in := range l.Instances {
			out = append(out, in.ID)
		}
		return out
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", all},
		{"status=COMPLETED", []string{"c0", "c1", "c2", "c3"}},
		{"status=running", []string{"o0", "o1"}},
		{"status=RUNNING,SUSPENDED", []string{"o0", "o1", "o2"}},
		{"status=FAILED", nil},
		{"name=OrderProcessingWorkflow", []string{"o0", "o1", "o2"}},
		{"name=OrderProcessingWorkflow&status=SUSPENDED", []string{"o2"}},
		{"name=Nope", nil},
		{"createdFrom=" + url.QueryEscape(mid.Format(time.RFC3339Nano)), []string{"o0", "o1", "o2"}},
		{"createdTo=" + url.QueryEscape(mid.Format(time.RFC3339Nano)), []string{"c0", "c1", "c2", "c3"}},
	} {
		l := list(tc.q)
		if got := ids(l); !slices.Equal(got, tc.want) || l.NextPageToken != "" {
			t.Errorf("list ?%s: %v (next %q), want %v", tc.q, got, l.NextPageToken, tc.want)
		}
	}
	l := list("name=ChainingWorkflow")
	if in := l.Instances[0]; in.Name != "ChainingWorkflow" || in.Status != "COMPLETED" || in.CreatedAt.IsZero() {
		t.Errorf("summary %+v", in)
	}

	// Paging: pages of 3 walk every instance once, in creation order.
	var paged []string
	q := url.Values{"pageSize": {"3"}}
	for pages := 0; ; pages++ {
		if pages > len(all) {
			t.Fatalf("paging does not end: %v", paged)
		}
		l := list(q.Encode())
		if len(l.Instances) > 3 {
			t.Fatalf("page of %d with pageSize=3", len(l.Instances))
		}
		paged = append(paged, ids(l)...)
		if l.NextPageToken == "" {
			break
		}
		q.Set("pageToken", l.NextPageToken)
	}
	if !slices.Equal(paged, all) {
		t.Errorf("paged %v, want %v", paged, all)
	}
	// Paging with a filter.
	q = url.Values{"pageSize": {"1"}, "status": {"RUNNING,SUSPENDED"}}
	paged = nil
	for range 10 {
		l := list(q.Encode())
		paged = append(paged, ids(l)...)
		if l.NextPageToken == "" {
			break
		}
		q.Set("pageToken", l.NextPageToken)
	}
	if !slices.Equal(paged, []string{"o0", "o1", "o2"}) {
		t.Errorf("filtered paging %v", paged)
	}

	for _, q := range []string{"pageSize=0", "pageSize=1001", "pageSize=ten", "status=BOGUS", "createdFrom=yesterday", "createdTo=2026-13-01", "pageToken=%00garbage"} {
		wantError(t, c.do("GET", "/api/v1/instances?"+q, ""), 400, "ERR_BAD_REQUEST")
	}
}
