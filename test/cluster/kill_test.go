package cluster_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestKillNodeUnderLoad: SIGKILL one of three nodes while fan-outs and chains
// (with durable retry timers) run on every partition.
//
//   - A killed node keeps its partitions: requests for its instances, through
//     either survivor, answer 503 ERR_PARTITION_UNAVAILABLE with Retry-After and a
//     message naming it, quickly once it is known dead; starting an instance in
//     one of its partitions is refused the same way (and does not happen later).
//   - Meanwhile the survivors stay ready and every instance of their partitions
//     completes with the right output (activities that were running on the dead
//     node are run again elsewhere).
//   - After a restart on the same data directory, ports and id, the node serves
//     its partitions again and their instances complete with the right outputs.
//   - No activity whose completion was recorded before the kill (it is in the
//     history read just before the kill) ran again after it, on any node.
func TestKillNodeUnderLoad(t *testing.T) {
	c := startCluster(t, 3, "--replicas", "1") // one copy per partition: a dead node keeps its partitions
	n1, n2, victim := c.nodes[0], c.nodes[1], c.nodes[2]
	survivors := []*node{n1, n2}
	tb := ownerTable(t, n1)

	// Fan-outs of 40 items, 2 at a time, 100 ms each (≈ 2 s apiece), and chains
	// whose Step2 fails once and retries after 2 s, spread evenly over the owners,
	// started round-robin through all three nodes.
	jobs, owner := loadOnOwners(tb, c.nodes, "kill", map[string]int{"n1": 5, "n2": 5, "n3": 6}, map[string]int{"n1": 4, "n2": 4, "n3": 4}, 40, 100)
	startJobs(t, jobs, c.nodes)
	totalItems := 16 * 40
	awaitExecuted(t, 60*time.Second, c.nodes, "ProcessWorkItem", "kill-fan", totalItems/4)

	// Just before the kill: every instance's history. A task completed there was
	// recorded before the kill.
	snapshot := histories(t, jobs, c.nodes, "before the kill")
	killAt := time.Now()
	victim.kill9()
	t.Logf("killed %s at %s, after %d item executions", victim.ID, killAt.Format(time.StampMilli),
		countExecuted(c.nodes, "ProcessWorkItem", "kill-fan"))

	var victimJobs, otherJobs []job
	unfinished := 0
	for i, j := range jobs {
		if owner[j.ID] == victim.ID {
			victimJobs = append(victimJobs, j)
			if !snapshot[i].finished() {
				unfinished++
			}
		} else {
			otherJobs = append(otherJobs, j)
		}
	}
	if unfinished == 0 {
		t.Fatalf("killed too late: every instance of %s had finished before the kill", victim.ID)
	}

	// The victim's instances answer 503 naming it (first through n1, as soon as
	// the cluster notices).
	probe := victimJobs[0].ID
	var first response
	waited := await(t, 30*time.Second, "a 503 for "+probe+" (owned by the killed node) via n1", func() string {
		r, err := n1.do("GET", "/api/v1/instances/"+probe, "")
		if err != nil {
			return err.Error()
		}
		first = r
		if r.Status != http.StatusServiceUnavailable {
			return r.String()
		}
		return ""
	})
	t.Logf("first 503 %s after the kill: %s", waited.Round(time.Millisecond), first)
	if err := wantUnavailable(first, victim.ID); err != nil {
		t.Error(err)
	}

	// The survivors know it is dead (but still registered, owning its partitions),
	// and the table shows its partitions held by it and not served.
	await(t, 30*time.Second, "the survivors seeing "+victim.ID+" dead", func() string {
		for _, n := range survivors {
			md, err := n.members()
			if err != nil {
				return err.Error()
			}
			m, ok := md.find(victim.ID)
			if !ok || m.State != "dead" {
				return fmt.Sprintf("node %s lists %s as %+v", n.ID, victim.ID, m)
			}
		}
		return ""
	})
	for _, n := range survivors {
		md, err := n.members()
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := md.find(victim.ID); !m.Registered || m.Partitions != tb.count()[victim.ID] {
			t.Errorf("node %s lists the dead %s as %+v; want registered, still owning its %d partitions", n.ID, victim.ID, m, tb.count()[victim.ID])
		}
		pd, err := n.partitions()
		if err != nil {
			t.Fatal(err)
		}
		rows, err := byPartition(pd)
		if err != nil {
			t.Fatal(err)
		}
		for i, row := range rows {
			wantServing := tb[i] != victim.ID
			if row.Owner != tb[i] || row.Holder != tb[i] || row.Serving != wantServing {
				t.Errorf("node %s while %s is dead: %+v; want owner=holder=%s serving=%v", n.ID, victim.ID, row, tb[i], wantServing)
			}
		}
		// ASSUMPTION: a survivor is ready: it serves every partition it owns.
		if r, err := n.do("GET", "/readyz", ""); err != nil || r.Status != http.StatusOK {
			t.Errorf("node %s /readyz while %s is dead: %v %v; want 200", n.ID, victim.ID, r, err)
		}
	}

	// Quickly, through both survivors, for every instance of the dead node: its
	// status and its history answer 503 naming the node.
	var mu sync.Mutex
	slowest := time.Duration(0)
	errs := parallel(len(victimJobs)*2, 4, func(i int) error {
		j, n := victimJobs[i/2], survivors[i%2]
		for _, path := range []string{"/api/v1/instances/" + j.ID, "/api/v1/instances/" + j.ID + "/history"} {
			r, err := n.do("GET", path, "")
			if err != nil {
				return err
			}
			if err := wantUnavailable(r, victim.ID); err != nil {
				return err
			}
			mu.Lock()
			slowest = max(slowest, r.Took)
			mu.Unlock()
			if r.Took > 3*time.Second {
				return fmt.Errorf("%s: the 503 took %s, want it quick (< 3s)", r, r.Took)
			}
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}
	t.Logf("slowest 503 once %s was known dead: %s", victim.ID, slowest.Round(time.Millisecond))

	// Starting an instance in a dead partition is refused the same way.
	refused := tb.idsOwnedBy("kill-refused", map[string]int{victim.ID: 1})[victim.ID][0]
	if r, err := n2.do("POST", "/api/v1/instances", `{"name":"ChainingWorkflow","instanceId":"`+refused+`","input":{"value":1}}`); err != nil {
		t.Error(err)
	} else if err := wantUnavailable(r, victim.ID); err != nil {
		t.Errorf("start in a dead partition: %v", err)
	}

	// The other partitions keep completing while the node is down: the load in
	// flight at the kill, and new fan-outs and chains started now on the
	// survivors' partitions (their activities run on the live nodes only).
	var fresh []job
	for _, ids := range tb.idsOwnedBy("kill-during-fan", map[string]int{"n1": 3, "n2": 3}) {
		for _, id := range ids {
			fresh = append(fresh, fanOutJob(id, 30, 5, 5))
		}
	}
	for _, ids := range tb.idsOwnedBy("kill-during-chain", map[string]int{"n1": 3, "n2": 3}) {
		for i, id := range ids {
			fresh = append(fresh, chainJob(id, 500+i, "", 0, 0))
		}
	}
	startJobs(t, fresh, survivors)
	otherJobs = append(otherJobs, fresh...)
	jobs = append(jobs, fresh...)
	waitJobs(t, otherJobs, survivors, 90*time.Second)
	if t.Failed() {
		t.FailNow()
	}
	if r, err := n2.do("GET", "/api/v1/instances/"+probe, ""); err != nil {
		t.Error(err)
	} else if err := wantUnavailable(r, victim.ID); err != nil {
		t.Errorf("after the other partitions completed: %v", err)
	}

	// Restart on the same data directory: it serves its partitions again and
	// their workflows resume.
	restartAt := time.Now()
	victim.restart()
	awaitSettled(t, 60*time.Second, c.nodes, nil)
	t.Logf("%s back and the cluster settled %s after the restart", victim.ID, time.Since(restartAt).Round(time.Millisecond))
	if after := ownerTable(t, n1); !slices.Equal(after, tb) {
		t.Errorf("the placement table changed across the kill and restart")
	}
	waitJobs(t, jobs, c.nodes, 90*time.Second)
	if r, err := n1.do("GET", "/api/v1/instances/"+refused, ""); err != nil || r.Status != http.StatusNotFound {
		t.Errorf("the start refused with 503 while %s was dead: %v %v; want 404 (never created)", victim.ID, r, err)
	}

	// The histories are whole: every task scheduled and completed once.
	final := histories(t, jobs, c.nodes, "after the restart")
	for _, h := range final {
		for _, p := range historyProblems(h) {
			t.Error(p)
		}
	}

	checkNothingRanTwice(t, c.nodes, killAt, jobs, snapshot, owner)
}
