package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftrt/weft/internal/activitylog"
)

// TestActivityLimitAcrossNodes: three nodes started with --activity-limit
// ProcessWorkItem=10 run a fan-out of 1,000 items that asks for all of them
// at once, the items spread over every node; one node is SIGKILLed mid-way.
// Across the cluster never more than 10 items run at once (by the items'
// own log of when they ran, on every node), the limit is reached, and every
// item completes, none twice but attempts that were in flight on the killed
// node.
func TestActivityLimitAcrossNodes(t *testing.T) {
	c := startCluster(t, 3, "--activity-limit", "ProcessWorkItem=10")
	n1, n2, victim := c.nodes[0], c.nodes[1], c.nodes[2]
	n1.must("POST", "/api/v1/instances", `{"name":"FanOutFanInWorkflow","instanceId":"limited-fan","input":{"count":1000,"maxParallel":1000,"itemDelayMs":20}}`, 202)
	awaitExecuted(t, 60*time.Second, c.nodes, "ProcessWorkItem", "limited-fan", 300)
	killAt := time.Now()
	victim.kill9()
	t.Logf("killed %s after %d items", victim.ID, countExecuted(c.nodes, "ProcessWorkItem", "limited-fan"))
	st, err := waitFinished("limited-fan", []*node{n1, n2}, time.Now().Add(3*time.Minute))
	if err != nil || st.Status != "COMPLETED" || string(st.Output) != "500500" {
		t.Fatalf("limited-fan: %+v, %v", st, err)
	}
	// The instance completes once the results are in, a moment before this
	// process may have read the last lines logged with them.
	await(t, 10*time.Second, "every item's execution logged", func() string {
		items := map[int64]bool{}
		for _, n := range c.nodes {
			for _, e := range n.executions() {
				if e.Activity == "ProcessWorkItem" && e.Instance == "limited-fan" {
					items[e.Task] = true
				}
			}
		}
		if len(items) < 1000 {
			return fmt.Sprintf("%d items so far", len(items))
		}
		return ""
	})
	var all []activitylog.Execution
	ranOn := map[string]int{}
	byItem := map[string][]string{}
	for _, n := range c.nodes {
		for _, e := range activitylog.Parse(n.allLines()) {
			if e.Activity != "ProcessWorkItem" || e.Instance != "limited-fan" {
				continue
			}
			all = append(all, e)
			ranOn[n.ID]++
		}
		for _, e := range n.executions() {
			if e.Activity == "ProcessWorkItem" && e.Instance == "limited-fan" {
				k := fmt.Sprint(e.Task)
				tag := n.ID
				if n == victim && !e.Time.After(killAt) {
					tag += "(killed)"
				}
				byItem[k] = append(byItem[k], tag)
			}
		}
	}
	if most := activitylog.MostAtOnce(all, "ProcessWorkItem"); most != 10 {
		t.Errorf("at most %d items ran at once across the nodes; want 10 (the limit, reached)", most)
	}
	if len(byItem) != 1000 {
		t.Errorf("%d items ran, want 1000", len(byItem))
	}
	for item, where := range byItem {
		again := 0
		for _, w := range where {
			if !strings.HasSuffix(w, "(killed)") {
				again++
			}
		}
		if again > 1 {
			t.Errorf("item %s ran %d times: %v", item, len(where), where)
		}
	}
	if len(ranOn) < 2 {
		t.Errorf("items ran on %v only; want them spread over the nodes", ranOn)
	}
	t.Logf("items per node: %v", ranOn)
}
