package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// daprVersions are the API versions Dapr has served its workflow routes under.
var daprVersions = []string{"v1.0-alpha1", "v1.0-beta1", "v1.0"}

// daprStatus is Dapr's GET /{v}/workflows/dapr/{instanceID} body.
type daprStatus struct {
	InstanceID    string            `json:"instanceID"`
	WorkflowName  string            `json:"workflowName"`
	CreatedAt     string            `json:"createdAt"`
	LastUpdatedAt string            `json:"lastUpdatedAt"`
	RuntimeStatus string            `json:"runtimeStatus"`
	Properties    map[string]string `json:"properties"`
}

var (
	daprKeys  = []string{"instanceID", "workflowName", "createdAt", "lastUpdatedAt", "runtimeStatus", "properties"}
	daprProps = map[string]bool{
		"dapr.workflow.input": true, "dapr.workflow.output": true, "dapr.workflow.custom_status": true,
		"dapr.workflow.failure.error_type": true, "dapr.workflow.failure.error_message": true,
	}
	// rfc3339Nano is RFC 3339 in UTC with a fractional second, as Go's
	// time.RFC3339Nano writes it (and as Dapr's status shows it).
	rfc3339Nano = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z$`)
)

// getDapr fetches a Dapr status and checks it has exactly Dapr's shape: the six
// keys, RFC 3339 times with nanoseconds, only Dapr's property names, and no
// empty property.
func getDapr(t *testing.T, c *client, version, id string) daprStatus {
	t.Helper()
	r := c.expect(c.do("GET", "/"+version+"/workflows/dapr/"+id, ""), http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", r, ct)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	for _, k := range daprKeys {
		if _, ok := raw[k]; !ok {
			t.Errorf("%s: key %q missing", r, k)
		}
	}
	if len(raw) != len(daprKeys) {
		t.Errorf("%s: keys other than Dapr's %v", r, daprKeys)
	}
	st := decode[daprStatus](t, r)
	for _, ts := range []string{st.CreatedAt, st.LastUpdatedAt} {
		if !rfc3339Nano.MatchString(ts) {
			t.Errorf("%s: time %q is not RFC 3339 with nanoseconds", r, ts)
		}
	}
	created, err1 := time.Parse(time.RFC3339Nano, st.CreatedAt)
	updated, err2 := time.Parse(time.RFC3339Nano, st.LastUpdatedAt)
	if err1 != nil || err2 != nil || updated.Before(created) {
		t.Errorf("%s: createdAt %s, lastUpdatedAt %s (%v, %v)", r, st.CreatedAt, st.LastUpdatedAt, err1, err2)
	}
	if d := time.Since(created); d < -time.Minute || d > 10*time.Minute {
		t.Errorf("%s: createdAt %s is not about now", r, st.CreatedAt)
	}
	for k, v := range st.Properties {
		if !daprProps[k] {
			t.Errorf("%s: property %q is not one of Dapr's", r, k)
		}
		if v == "" {
			t.Errorf("%s: empty property %q should be left out", r, k)
		}
	}
	if st.InstanceID != id {
		t.Errorf("%s: instanceID %q", r, st.InstanceID)
	}
	return st
}

// daprStart starts a workflow over Dapr's route and checks the 202's body and
// headers; id "" lets the server choose.
func daprStart(t *testing.T, c *client, version, name, id, body string) string {
	t.Helper()
	path := "/" + version + "/workflows/dapr/" + name + "/start"
	if id != "" {
		path += "?instanceID=" + id
	}
	r := c.expect(c.do("POST", path, body), http.StatusAccepted)
	var out map[string]string
	if err := json.Unmarshal(r.Body, &out); err != nil || len(out) != 1 || out["instanceID"] == "" {
		t.Fatalf("%s: want {\"instanceID\": ...}", r)
	}
	got := out["instanceID"]
	if id != "" && got != id {
		t.Fatalf("%s: instanceID %q, want %q", r, got, id)
	}
	if loc := r.Header.Get("Location"); loc != "/"+version+"/workflows/dapr/"+got {
		t.Errorf("%s: Location %q, want the status URL /%s/workflows/dapr/%s", r, loc, version, got)
	}
	if ra := r.Header.Get("Retry-After"); ra == "" {
		t.Errorf("%s: no Retry-After header", r)
	}
	return got
}

const paperclips = `{"Name":"Paperclips","Quantity":1,"TotalCost":9.95}`

// TestSeedCurlFlow is the seed document's async HTTP API walkthrough, command for
// command: start OrderProcessingWorkflow as 12345678, poll its status (RUNNING or
// already COMPLETED, in the seed's shape), and see it COMPLETED with
// {"Processed":true}.
func TestSeedCurlFlow(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	c := s.client(t)

	r := c.expect(c.do("POST", "/v1.0-alpha1/workflows/dapr/OrderProcessingWorkflow/start?instanceID=12345678", paperclips), http.StatusAccepted)
	if got := strings.TrimSpace(string(r.Body)); got != `{"instanceID":"12345678"}` {
		t.Errorf("start answered %s, want the seed's {\"instanceID\":\"12345678\"}", got)
	}
	if loc := r.Header.Get("Location"); loc != "/v1.0-alpha1/workflows/dapr/12345678" {
		t.Errorf("Location %q", loc)
	}
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}

	st := getDapr(t, c, "v1.0-alpha1", "12345678")
	if st.RuntimeStatus != "RUNNING" && st.RuntimeStatus != "COMPLETED" {
		t.Errorf("first poll: runtimeStatus %q, want RUNNING or COMPLETED", st.RuntimeStatus)
	}
	if st.WorkflowName != "OrderProcessingWorkflow" || st.Properties["dapr.workflow.input"] != paperclips {
		t.Errorf("first poll: %+v", st)
	}

	// The client polls "until it sees COMPLETE, FAILURE or TERMINATED".
	c.waitDone("12345678")
	st = getDapr(t, c, "v1.0-alpha1", "12345678")
	if st.RuntimeStatus != "COMPLETED" {
		t.Fatalf("runtimeStatus %q, want COMPLETED", st.RuntimeStatus)
	}
	want := map[string]string{"dapr.workflow.input": paperclips, "dapr.workflow.output": `{"Processed":true}`}
	if len(st.Properties) != len(want) || st.Properties["dapr.workflow.input"] != want["dapr.workflow.input"] ||
		st.Properties["dapr.workflow.output"] != want["dapr.workflow.output"] {
		t.Errorf("properties %q, want %q", st.Properties, want)
	}
	// The status URL of the Location header answers under every version.
	for _, v := range daprVersions {
		if got := getDapr(t, c, v, "12345678"); got.RuntimeStatus != "COMPLETED" {
			t.Errorf("%s: %+v", v, got)
		}
	}
}

// TestOrderApproval is the seed's human-interaction pattern: an order above
// --approval-threshold waits for ManagerApproval; approved → Processed true,
// rejected → Processed false, no answer within --approval-timeout → Processed false.
func TestOrderApproval(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--approval-threshold", "500")
	c := s.client(t)
	const expensive = `{"Name":"Yacht","Quantity":1,"TotalCost":750}`

	for _, tc := range []struct {
		version, id, data string
		processed         bool
		custom            string
	}{
		{"v1.0-alpha1", "approve-1", `{"approved":true}`, true, `"approved"`},
		{"v1.0-beta1", "reject-1", `{"approved":false}`, false, `"rejected by manager"`},
		{"v1.0", "approve-2", `{"approved":true}`, true, `"approved"`},
	} {
		daprStart(t, c, tc.version, "OrderProcessingWorkflow", tc.id, expensive)
		// It waits: the long poll times out (202) with the instance still RUNNING.
		r := c.expect(c.do("GET", "/api/v1/instances/"+tc.id+"/wait?timeout=300ms", ""), http.StatusAccepted)
		if st := decode[v1Status](t, r); st.Status != "RUNNING" {
			t.Fatalf("%s: want RUNNING while it waits for approval", r)
		}
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After on a timed-out wait", r)
		}
		st := getDapr(t, c, tc.version, tc.id)
		if st.RuntimeStatus != "RUNNING" || st.Properties["dapr.workflow.custom_status"] != `"waiting for ManagerApproval"` {
			t.Errorf("%s waiting: %+v", tc.id, st)
		}
		r = c.do("POST", "/"+tc.version+"/workflows/dapr/"+tc.id+"/raiseEvent/ManagerApproval", tc.data)
		c.expect(r, http.StatusAccepted)
		done := c.waitDone(tc.id)
		want := `{"Processed":` + map[bool]string{true: "true", false: "false"}[tc.processed] + `}`
		if done.Status != "COMPLETED" || !jsonEqual(done.Output, []byte(want)) || !jsonEqual(done.CustomStatus, []byte(tc.custom)) {
			t.Errorf("%s after %s: %s %s custom %s; want COMPLETED %s custom %s", tc.id, tc.data, done.Status, done.Output, done.CustomStatus, want, tc.custom)
		}
		if got := getDapr(t, c, tc.version, tc.id).Properties["dapr.workflow.output"]; got != want {
			t.Errorf("%s: dapr.workflow.output %q, want %q", tc.id, got, want)
		}
	}

	// A cheap order does not wait.
	daprStart(t, c, "v1.0", "OrderProcessingWorkflow", "cheap-1", `{"Name":"Pen","Quantity":2,"TotalCost":499}`)
	if done := c.waitDone("cheap-1"); !jsonEqual(done.Output, []byte(`{"Processed":true}`)) {
		t.Errorf("cheap order: %s", done.Output)
	}
}

func TestOrderApprovalTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--approval-timeout", "300ms")
	c := s.client(t)
	start := time.Now()
	daprStart(t, c, "v1.0", "OrderProcessingWorkflow", "late-1", `{"Name":"Yacht","Quantity":1,"TotalCost":5000}`)
	done := c.waitDone("late-1")
	if done.Status != "COMPLETED" || !jsonEqual(done.Output, []byte(`{"Processed":false}`)) {
		t.Fatalf("timed-out approval: %s %s, want COMPLETED {\"Processed\":false}", done.Status, done.Output)
	}
	if !jsonEqual(done.CustomStatus, []byte(`"cancelled: approval timed out"`)) {
		t.Errorf("custom status %s", done.CustomStatus)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("finished after %s, before the 300ms approval timeout", took)
	}
	// An approval that comes after the timeout changes nothing.
	c.expect(c.do("POST", "/v1.0/workflows/dapr/late-1/raiseEvent/ManagerApproval", `{"approved":true}`), http.StatusAccepted)
	if st := getDapr(t, c, "v1.0", "late-1"); st.Properties["dapr.workflow.output"] != `{"Processed":false}` {
		t.Errorf("after a late approval: %+v", st)
	}
}

// TestDaprLifecycle drives every Dapr route under every version: start (given and
// generated ids), status, pause, resume, raiseEvent, terminate, purge; a failed
// instance shows Dapr's failure properties.
func TestDaprLifecycle(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	c := s.client(t)
	for _, v := range daprVersions {
		t.Run(v, func(t *testing.T) {
			c := s.client(t)
			base := "/" + v + "/workflows/dapr/"
			id := "life-" + strings.ReplaceAll(v, ".", "_")
			daprStart(t, c, v, "OrderProcessingWorkflow", id, `{"Name":"Boat","Quantity":1,"TotalCost":2000}`)
			if st := getDapr(t, c, v, id); st.RuntimeStatus != "RUNNING" {
				t.Fatalf("after start: %+v", st)
			}

			c.expect(c.do("POST", base+id+"/pause", ""), http.StatusAccepted)
			if st := getDapr(t, c, v, id); st.RuntimeStatus != "SUSPENDED" {
				t.Errorf("after pause: %s", st.RuntimeStatus)
			}
			// An event raised while paused is kept and applied on resume.
			c.expect(c.do("POST", base+id+"/raiseEvent/ManagerApproval", `{"approved":true}`), http.StatusAccepted)
			r := c.expect(c.do("GET", "/api/v1/instances/"+id+"/wait?timeout=200ms", ""), http.StatusAccepted)
			if st := decode[v1Status](t, r); st.Status != "SUSPENDED" {
				t.Errorf("a paused instance went on: %s", r)
			}
			c.expect(c.do("POST", base+id+"/resume", ""), http.StatusAccepted)
			if done := c.waitDone(id); done.Status != "COMPLETED" || !jsonEqual(done.Output, []byte(`{"Processed":true}`)) {
				t.Errorf("after resume: %s %s", done.Status, done.Output)
			}
			st := getDapr(t, c, v, id)
			if st.RuntimeStatus != "COMPLETED" || st.Properties["dapr.workflow.output"] != `{"Processed":true}` ||
				st.Properties["dapr.workflow.custom_status"] != `"approved"` {
				t.Errorf("completed: %+v", st)
			}

			c.expect(c.do("POST", base+id+"/purge", ""), http.StatusAccepted)
			wantError(t, c.do("GET", base+id, ""), http.StatusNotFound, "ERR_INSTANCE_ID_NOT_FOUND")

			// Terminate, with a generated id and a JSON reason.
			gen := daprStart(t, c, v, "OrderProcessingWorkflow", "", `{"Name":"Ship","Quantity":1,"TotalCost":90000}`)
			c.expect(c.do("POST", base+gen+"/terminate", `"out of stock"`), http.StatusAccepted)
			done := c.waitDone(gen)
			if done.Status != "TERMINATED" || !jsonEqual(done.Output, []byte(`"out of stock"`)) {
				t.Errorf("terminated: %s output %s", done.Status, done.Output)
			}
			if st := getDapr(t, c, v, gen); st.RuntimeStatus != "TERMINATED" || st.Properties["dapr.workflow.output"] != `"out of stock"` {
				t.Errorf("terminated: %+v", st)
			}
			c.expect(c.do("POST", base+gen+"/purge", ""), http.StatusAccepted)
			wantError(t, c.do("GET", base+gen, ""), http.StatusNotFound, "ERR_INSTANCE_ID_NOT_FOUND")
		})
	}

	t.Run("failed", func(t *testing.T) {
		id := daprStart(t, c, "v1.0", "ChainingWorkflow", "chain-fails", `{"value":1,"failStep":"Step3","retrySeconds":0.01}`)
		if done := c.waitDone(id); done.Status != "FAILED" {
			t.Fatalf("want FAILED, got %s", done.Status)
		}
		st := getDapr(t, c, "v1.0", id)
		if st.RuntimeStatus != "FAILED" || st.Properties["dapr.workflow.failure.error_type"] != "StepFailed" ||
			!strings.Contains(st.Properties["dapr.workflow.failure.error_message"], "Step3 failed on attempt 3") {
			t.Errorf("failed: %+v", st)
		}
		if _, ok := st.Properties["dapr.workflow.output"]; ok {
			t.Errorf("a failed instance without output shows dapr.workflow.output: %+v", st.Properties)
		}
	})
}

// TestDaprErrors checks every error of Dapr's routes: the status, and the
// {"errorCode","message"} body.
func TestDaprErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--max-body", "1KiB")
	c := s.client(t)
	daprStart(t, c, "v1.0", "OrderProcessingWorkflow", "taken", `{"Name":"Boat","Quantity":1,"TotalCost":2000}`)
	daprStart(t, c, "v1.0", "ChainingWorkflow", "finished", `{"value":1}`)
	c.waitDone("finished")

	long := strings.Repeat("x", 65)
	big := `{"Name":"` + strings.Repeat("a", 1100) + `","Quantity":1,"TotalCost":1}`
	for _, v := range daprVersions {
		b := "/" + v + "/workflows/"
		for _, tc := range []struct {
			method, path, body string
			status             int
			code               string
		}{
			{"POST", b + "dapr/OrderProcessingWorkflow/start?instanceID=bad*id", paperclips, 400, "ERR_INSTANCE_ID_INVALID"},
			{"POST", b + "dapr/OrderProcessingWorkflow/start?instanceID=has%20space", paperclips, 400, "ERR_INSTANCE_ID_INVALID"},
			{"POST", b + "dapr/OrderProcessingWorkflow/start?instanceID=", paperclips, 400, "ERR_INSTANCE_ID_INVALID"},
			{"POST", b + "dapr/OrderProcessingWorkflow/start?instanceID=" + long, paperclips, 400, "ERR_INSTANCE_ID_TOO_LONG"},
			{"GET", b + "dapr/bad*id", "", 400, "ERR_INSTANCE_ID_INVALID"},
			{"GET", b + "dapr/" + long, "", 400, "ERR_INSTANCE_ID_TOO_LONG"},
			{"POST", b + "dapr/" + long + "/terminate", "", 400, "ERR_INSTANCE_ID_TOO_LONG"},
			{"POST", b + "dapr/bad*id/raiseEvent/x", "", 400, "ERR_INSTANCE_ID_INVALID"},
			{"POST", b + "dapr//start", paperclips, 400, "ERR_WORKFLOW_NAME_MISSING"},
			{"POST", b + "dapr/taken/raiseEvent/", "{}", 400, "ERR_WORKFLOW_EVENT_NAME_MISSING"},
			{"POST", b + "dapr/taken/raiseEvent", "{}", 400, "ERR_WORKFLOW_EVENT_NAME_MISSING"},
			{"POST", b + "other/OrderProcessingWorkflow/start", paperclips, 400, "ERR_WORKFLOW_COMPONENT_NOT_FOUND"},
			{"GET", b + "other/taken", "", 400, "ERR_WORKFLOW_COMPONENT_NOT_FOUND"},
			{"POST", b + "other/taken/terminate", "", 400, "ERR_WORKFLOW_COMPONENT_NOT_FOUND"},
			{"GET", b + "dapr/missing", "", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", b + "dapr/missing/raiseEvent/ManagerApproval", "{}", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", b + "dapr/missing/terminate", "", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", b + "dapr/missing/pause", "", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", b + "dapr/missing/resume", "", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", b + "dapr/missing/purge", "", 404, "ERR_INSTANCE_ID_NOT_FOUND"},
			{"POST", b + "dapr/OrderProcessingWorkflow/start?instanceID=taken", paperclips, 409, "ERR_INSTANCE_ID_ALREADY_EXISTS"},
			{"POST", b + "dapr/OrderProcessingWorkflow/start?instanceID=finished", paperclips, 409, "ERR_INSTANCE_ID_ALREADY_EXISTS"},
			{"POST", b + "dapr/taken/purge", "", 409, "ERR_INSTANCE_NOT_FINISHED"},
			{"POST", b + "dapr/finished/pause", "", 409, "ERR_INSTANCE_NOT_RUNNING"},
			{"POST", b + "dapr/NoSuchWorkflow/start", "{}", 400, "ERR_WORKFLOW_NOT_REGISTERED"},
			{"POST", b + "dapr/OrderProcessingWorkflow/start", "{not json", 400, "ERR_INVALID_INPUT"},
			{"POST", b + "dapr/OrderProcessingWorkflow/start", `"a string, not an order"`, 400, "ERR_INVALID_INPUT"},
			{"POST", b + "dapr/taken/raiseEvent/ManagerApproval", "{not json", 400, "ERR_INVALID_INPUT"},
			{"POST", b + "dapr/taken/terminate", "{not json", 400, "ERR_INVALID_INPUT"},
			{"POST", b + "dapr/OrderProcessingWorkflow/start", big, 413, "ERR_BODY_TOO_LARGE"},
			{"POST", b + "dapr/taken/raiseEvent/ManagerApproval", big, 413, "ERR_BODY_TOO_LARGE"},
			{"POST", b + "dapr/taken/terminate", big, 413, "ERR_BODY_TOO_LARGE"},
			{"GET", b + "dapr/OrderProcessingWorkflow/start", "", 405, "ERR_METHOD_NOT_ALLOWED"},
			{"DELETE", b + "dapr/taken", "", 405, "ERR_METHOD_NOT_ALLOWED"},
			{"GET", b + "dapr/taken/terminate", "", 405, "ERR_METHOD_NOT_ALLOWED"},
			{"GET", b + "dapr/taken/raiseEvent/x", "", 405, "ERR_METHOD_NOT_ALLOWED"},
			{"GET", b + "dapr", "", 404, "ERR_NOT_FOUND"},
			{"POST", b + "dapr/taken/bogus", "", 404, "ERR_NOT_FOUND"},
			{"POST", b + "dapr/taken/raiseEvent/a/b", "", 404, "ERR_NOT_FOUND"},
		} {
			r := c.do(tc.method, tc.path, tc.body)
			wantError(t, r, tc.status, tc.code)
			if tc.status == 405 && r.Header.Get("Allow") == "" {
				t.Errorf("%s: no Allow header", r)
			}
		}
	}
	wantError(t, c.do("GET", "/v1.0-gamma/workflows/dapr/taken", ""), http.StatusNotFound, "ERR_NOT_FOUND")

	// The instance the conflicting starts named is untouched.
	if st := getDapr(t, c, "v1.0", "taken"); st.RuntimeStatus != "RUNNING" || !strings.Contains(st.Properties["dapr.workflow.input"], "Boat") {
		t.Errorf("after conflicting starts: %+v", st)
	}
	// Just under the limit is accepted.
	fits := `{"Name":"` + strings.Repeat("a", 900) + `","Quantity":1,"TotalCost":1}`
	daprStart(t, c, "v1.0", "OrderProcessingWorkflow", "fits", fits)
	if done := c.waitDone("fits"); done.Status != "COMPLETED" {
		t.Errorf("a body under --max-body: %s", done.Status)
	}
}
