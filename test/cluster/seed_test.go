package cluster_test

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftrt/weft/examples/seed"
)

// TestSeedPatternsThroughEachNode: any node accepts any request and it reaches
// the owner of the instance's partition. Every seed pattern is started through
// each node for instances owned by each node (3 × 3 combinations each), read back
// through another node and through Dapr's routes on a third, and every one ends
// with its right output. An order over the approval threshold, started through
// one node, gets its ManagerApproval through another. Listing through any node
// shows every instance once. The cluster CLI commands print the same state as
// the HTTP routes.
func TestSeedPatternsThroughEachNode(t *testing.T) {
	c := startCluster(t, 3)
	nodes := c.nodes
	tb := ownerTable(t, nodes[0])
	t.Logf("partitions owned: %v", tb.count())

	t.Run("cli", func(t *testing.T) {
		r := runCLI(t, 0, "cluster", "members", "--server", nodes[1].URL())
		for _, n := range nodes {
			if !strings.Contains(r.Stdout, n.ID) {
				t.Errorf("weft cluster members does not list %s:\n%s", n.ID, r.Stdout)
			}
		}
		if !strings.Contains(r.Stdout, "alive") {
			t.Errorf("weft cluster members shows no member alive:\n%s", r.Stdout)
		}
		// ASSUMPTION: --json prints the same document as the HTTP route.
		r = runCLI(t, 0, "cluster", "members", "--server", nodes[1].URL(), "--json")
		var md membersDoc
		if err := json.Unmarshal([]byte(r.Stdout), &md); err != nil || md.Self != nodes[1].ID || len(md.Members) != 3 {
			t.Errorf("weft cluster members --json: %v\n%s", err, r.Stdout)
		}
		r = runCLI(t, 0, "cluster", "partitions", "--server", nodes[2].URL(), "--json")
		var pd partitionsDoc
		if err := json.Unmarshal([]byte(r.Stdout), &pd); err != nil {
			t.Fatalf("weft cluster partitions --json: %v\n%s", err, r.Stdout)
		}
		rows, err := byPartition(pd)
		if err != nil {
			t.Fatalf("weft cluster partitions --json: %v", err)
		}
		if len(rows) != len(tb) {
			t.Fatalf("weft cluster partitions --json lists %d partitions, HTTP %d", len(rows), len(tb))
		}
		for i, row := range rows {
			if row.Owner != tb[i] || row.Holder != row.Owner || !row.Serving {
				t.Errorf("weft cluster partitions (via %s): %+v; n1's table says owner %s", nodes[2].ID, row, tb[i])
			}
		}
		r = runCLI(t, 0, "cluster", "partitions", "--server", nodes[0].URL())
		if !strings.Contains(r.Stdout, "n1") || !strings.Contains(r.Stdout, "n3") {
			t.Errorf("weft cluster partitions prints no owners:\n%s", r.Stdout)
		}
	})

	// For every entry node and every owner: a chain (with a retried step, so a
	// durable retry timer fires on the owner), a fan-out, an order (started with
	// Dapr's route) and a two-cycle monitor (a timer and continue-as-new).
	type started struct {
		job
		via, owner int
		dapr       bool
	}
	var all []started
	for v := range nodes {
		quota := map[string]int{}
		for _, o := range nodes {
			quota[o.ID] = 4
		}
		ids := tb.idsOwnedBy(fmt.Sprintf("seed-via-%s", nodes[v].ID), quota)
		for o, owner := range nodes {
			if len(ids[owner.ID]) < 4 {
				t.Fatalf("no ids for owner %s", owner.ID)
			}
			id := ids[owner.ID]
			all = append(all,
				started{job: chainJob(id[0], 10*v+o, "Step2", 1, 0.2), via: v, owner: o},
				started{job: fanOutJob(id[1], 20+v+o, 5, 2), via: v, owner: o},
				started{job: orderJob(id[2]), via: v, owner: o, dapr: true},
				started{job: monitorJob(id[3], fmt.Sprintf("db-%d-%d", v, o)), via: v, owner: o},
			)
		}
	}
	errs := parallel(len(all), 8, func(i int) error {
		s := all[i]
		if !s.dapr {
			return s.start(nodes[s.via])
		}
		r, err := nodes[s.via].do("POST", "/v1.0-alpha1/workflows/dapr/"+s.Name+"/start?instanceID="+s.ID, s.Input)
		if err != nil {
			return err
		}
		if r.Status != http.StatusAccepted || !strings.Contains(string(r.Body), s.ID) {
			return fmt.Errorf("%s; want 202 {\"instanceID\":%q}", r, s.ID)
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}

	// An order that waits for approval, owned by n3: started through n1, watched
	// and approved through n2, awaited through n3.
	approval := tb.idsOwnedBy("seed-approval", map[string]int{"n3": 1})["n3"][0]
	nodes[0].must("POST", "/api/v1/instances",
		`{"name":"OrderProcessingWorkflow","instanceId":"`+approval+`","input":{"Name":"Boat","Quantity":1,"TotalCost":2000}}`, http.StatusAccepted)
	await(t, 30*time.Second, "the order waiting for approval", func() string {
		st, err := getJSON[status](nodes[1], "/api/v1/instances/"+approval)
		if err != nil {
			return err.Error()
		}
		var custom string
		_ = json.Unmarshal(st.CustomStatus, &custom)
		if st.Status != "RUNNING" || custom != "waiting for ManagerApproval" {
			return fmt.Sprintf("%s %q", st.Status, custom)
		}
		return ""
	})
	nodes[1].must("POST", "/api/v1/instances/"+approval+"/events/ManagerApproval", `{"approved":true}`, http.StatusAccepted)

	deadline := time.Now().Add(60 * time.Second)
	errs = parallel(len(all), 16, func(i int) error {
		s := all[i]
		other := nodes[(s.via+1)%len(nodes)]
		st, err := waitFinished(s.ID, []*node{other}, deadline)
		if err != nil {
			return err
		}
		if err := s.check(st); err != nil {
			return fmt.Errorf("started via %s, owned by %s, read via %s: %w", nodes[s.via].ID, nodes[s.owner].ID, other.ID, err)
		}
		// Dapr's status route through the third node.
		third := nodes[(s.via+2)%len(nodes)]
		d, err := getJSON[struct {
			InstanceID    string            `json:"instanceID"`
			WorkflowName  string            `json:"workflowName"`
			RuntimeStatus string            `json:"runtimeStatus"`
			Properties    map[string]string `json:"properties"`
		}](third, "/v1.0/workflows/dapr/"+s.ID)
		if err != nil {
			return err
		}
		// (A monitor's input is its last generation's, after continue-as-new.)
		inputOK := s.Name == "MonitorWorkflow" || jsonEqual([]byte(d.Properties["dapr.workflow.input"]), []byte(s.Input))
		if d.InstanceID != s.ID || d.WorkflowName != s.Name || d.RuntimeStatus != "COMPLETED" || !inputOK ||
			!jsonEqual([]byte(d.Properties["dapr.workflow.output"]), []byte(s.Want)) {
			return fmt.Errorf("Dapr status of %s via %s: %+v; want COMPLETED with output %s", s.ID, third.ID, d, s.Want)
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}
	st, err := waitFinished(approval, []*node{nodes[2]}, deadline)
	if err != nil {
		t.Error(err)
	} else if st.Status != "COMPLETED" || !jsonEqual(st.Output, []byte(`{"Processed":true}`)) {
		t.Errorf("the approved order: %s %s", st.Status, st.Output)
	}

	// Every activity ran once: the histories (read through a node that does not own
	// the instance) have each task completed once.
	for _, s := range all {
		if s.Name == "MonitorWorkflow" {
			continue // continue-as-new keeps only the last generation's history
		}
		h, err := history(nodes[(s.owner+1)%len(nodes)], s.ID)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, p := range historyProblems(h) {
			t.Error(p)
		}
	}

	// Listing gathers from all nodes, through any node, with paging.
	jobs := []job{{ID: approval, Name: "OrderProcessingWorkflow"}}
	for _, s := range all {
		jobs = append(jobs, s.job)
	}
	for _, n := range nodes {
		got, err := listAll(n, 7)
		if err != nil {
			t.Errorf("listing via %s: %v", n.ID, err)
			continue
		}
		for _, p := range listingProblems(n.ID, got, jobs) {
			t.Error(p)
		}
	}
	counts, err := getJSON[map[string]int](nodes[1], "/api/v1/counts")
	if err != nil {
		t.Error(err)
	} else if counts["COMPLETED"] != len(jobs) {
		// ASSUMPTION: /api/v1/counts gathers from all nodes like the listing does.
		t.Errorf("counts via n2: %v; want COMPLETED %d (all nodes)", counts, len(jobs))
	}
}

// monitorJob runs MonitorWorkflow for two short cycles (simulated status): a
// timer and a continue-as-new on the owner. The expected output follows the
// seed's simulation: cycle c of entity e is unhealthy when (fnv32a(e)%3+c)%4 == 3.
func monitorJob(id, entity string) job {
	in := seed.MonitorInput{Entity: entity, HealthySeconds: 0.2, UnhealthySeconds: 0.2, MaxCycles: 2}
	inJSON, _ := json.Marshal(in)
	h := fnv.New32a()
	h.Write([]byte(entity))
	base := int(h.Sum32() % 3)
	out := in
	for c := range 2 {
		healthy := (base+c)%4 != 3
		if healthy {
			out.LastStatusChecked = "healthy"
		} else {
			out.LastStatusChecked = "unhealthy"
			if out.Healthy || c == 0 {
				out.Alerts++
			}
		}
		out.Healthy = healthy
	}
	out.Cycle = 2
	want, _ := json.Marshal(out)
	return job{ID: id, Name: "MonitorWorkflow", Input: string(inJSON), Want: string(want)}
}

// TestActivitiesSpread: activities run on all live nodes. A fan-out of 300 on
// three nodes runs a real share (≥ 15%) on each, seen in each node's
// weft_activity_executions_total counter and in its activity log lines; every
// item ran exactly once in all.
func TestActivitiesSpread(t *testing.T) {
	c := startCluster(t, 3)
	nodes := c.nodes
	before := map[string]float64{}
	for _, n := range nodes {
		v, err := activityExecutions(n)
		if err != nil {
			t.Fatal(err)
		}
		before[n.ID] = v
	}
	j := fanOutJob("spread-300", 300, 30, 5)
	if err := j.start(nodes[1]); err != nil {
		t.Fatal(err)
	}
	st, err := waitFinished(j.ID, []*node{nodes[2]}, time.Now().Add(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.check(st); err != nil {
		t.Fatal(err)
	}
	total := 0.0
	delta := map[string]float64{}
	for _, n := range nodes {
		v, err := activityExecutions(n)
		if err != nil {
			t.Fatal(err)
		}
		delta[n.ID] = v - before[n.ID]
		total += delta[n.ID]
	}
	t.Logf("weft_activity_executions_total rose by %v (total %v)", delta, total)
	if total < 302 {
		t.Errorf("the counters rose by %v in all, want ≥ 302 (GetWorkBatch, 300 items, PostResults)", total)
	}
	for _, n := range nodes {
		if delta[n.ID] < 0.15*total {
			t.Errorf("node %s ran %v of %v activities (< 15%%): activities are not spread over the live nodes", n.ID, delta[n.ID], total)
		}
	}
	// The log lines agree: each item ran once, somewhere.
	items := map[int64]int{}
	perNode := map[string]int{}
	for _, n := range nodes {
		for _, e := range n.executions() {
			if e.Instance == j.ID && e.Activity == "ProcessWorkItem" {
				items[e.Task]++
				perNode[n.ID]++
			}
		}
	}
	t.Logf("ProcessWorkItem executions logged per node: %v", perNode)
	if len(items) != 300 {
		t.Errorf("%d distinct item tasks logged as executed, want 300", len(items))
	}
	for task, k := range items {
		if k != 1 {
			t.Errorf("item task %d executed %d times", task, k)
		}
	}
	for _, n := range nodes {
		if perNode[n.ID] < 45 {
			t.Errorf("node %s logged %d of the 300 items (< 15%%)", n.ID, perNode[n.ID])
		}
	}
}
