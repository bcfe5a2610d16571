package cluster_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestKillAndWipeUnderLoad: three nodes keeping three replicas of every
// partition (the default); fan-outs and chains with durable retry timers run
// on every partition; one node is SIGKILLed and its data directory deleted (a
// dead disk).
//
//   - Requests for the dead node's partitions wait while another replica is
//     elected and then succeed: no 503, no failed request, through either
//     survivor, during the whole failover.
//   - Every instance, those the dead node led included, completes with the
//     right output on the survivors, and its history is whole.
//   - No activity whose completion was recorded before the kill ran again
//     after it (the survivors had it, committed by a quorum).
//   - The partitions list every partition led by a survivor, with a quorum.
func TestKillAndWipeUnderLoad(t *testing.T) {
	c := startCluster(t, 3)
	n1, n2, victim := c.nodes[0], c.nodes[1], c.nodes[2]
	survivors := []*node{n1, n2}
	tb := ownerTable(t, n1) // settled: every partition is led by its owner

	jobs, owner := loadOnOwners(tb, c.nodes, "wipe", map[string]int{"n1": 5, "n2": 5, "n3": 6}, map[string]int{"n1": 4, "n2": 4, "n3": 4}, 40, 100)
	startJobs(t, jobs, c.nodes)
	awaitExecuted(t, 60*time.Second, c.nodes, "ProcessWorkItem", "wipe-fan", 16*40/4)

	snapshot := histories(t, jobs, c.nodes, "before the kill")
	var victimJobs []job
	unfinished := 0
	for i, j := range jobs {
		if owner[j.ID] == victim.ID {
			victimJobs = append(victimJobs, j)
			if !snapshot[i].finished() {
				unfinished++
			}
		}
	}
	if unfinished == 0 {
		t.Fatalf("killed too late: every instance %s led had finished", victim.ID)
	}

	pr := newProber(t, "wipe-live", jobs, n1, n2)
	killAt := time.Now()
	victim.kill9()
	if err := os.RemoveAll(victim.Dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s and deleted its data directory at %s, %d of its instances unfinished", victim.ID, killAt.Format(time.StampMilli), unfinished)

	// Failover: the first successful read of an instance the victim led.
	probe := victimJobs[0].ID
	failover := await(t, 30*time.Second, "a read of "+probe+" (led by the killed node) via n1", func() string {
		r, err := n1.do("GET", "/api/v1/instances/"+probe, "")
		if err != nil {
			return err.Error()
		}
		if r.Status != http.StatusOK {
			return r.String()
		}
		return ""
	})
	t.Logf("%s read %s after the kill", probe, failover.Round(time.Millisecond))

	// Fresh work on every partition while the node is gone.
	var fresh []job
	for i := range 12 {
		fresh = append(fresh, chainJob(fmt.Sprintf("wipe-after-%d", i), 300+i, "", 0, 0))
	}
	startJobs(t, fresh, survivors)
	jobs = append(jobs, fresh...)
	waitJobs(t, jobs, survivors, 120*time.Second)
	if t.Failed() {
		debugUnfinished(t, jobs, survivors)
		t.FailNow()
	}
	started := pr.stop()
	pr.report() // no request failed: they waited for the new leaders
	waitJobs(t, started, survivors, 60*time.Second)

	final := histories(t, jobs, survivors, "after the kill")
	for _, h := range final {
		for _, p := range historyProblems(h) {
			t.Error(p)
		}
	}
	checkNothingRanTwice(t, c.nodes, killAt, jobs, snapshot, owner)

	// A group whose leader was the victim elects a survivor within a few
	// election timeouts of its replicas noticing the silence.
	took := await(t, 20*time.Second, "every partition led by a survivor, with a quorum", func() string {
		for _, n := range survivors {
			pd, err := n.partitions()
			if err != nil {
				return err.Error()
			}
			for _, row := range pd.Partitions {
				if (row.Holder != n1.ID && row.Holder != n2.ID) || !row.Serving || !row.Quorum {
					return fmt.Sprintf("node %s: %+v", n.ID, row)
				}
			}
		}
		return ""
	})
	t.Logf("every partition led by a survivor %s after the kill (waited %s for it)", time.Since(killAt).Round(time.Millisecond), took.Round(time.Millisecond))
}

// TestRollingRestart: the three nodes of a replicated cluster are restarted
// one at a time (SIGTERM, as a deploy does: the node hands over the leadership
// of its partitions, then stops; then it starts again on its data directory),
// under a load of fan-outs and chains on every partition: every instance
// completes with the right output, no request through the nodes that are up
// fails, and the cluster settles after each restart.
func TestRollingRestart(t *testing.T) {
	c := startCluster(t, 3)
	tb := ownerTable(t, c.nodes[0])
	jobs, _ := loadOnOwners(tb, c.nodes, "roll", map[string]int{"n1": 3, "n2": 3, "n3": 3}, map[string]int{"n1": 3, "n2": 3, "n3": 3}, 60, 400)
	startJobs(t, jobs, c.nodes)
	for _, n := range c.nodes {
		var up []*node
		for _, o := range c.nodes {
			if o != n {
				up = append(up, o)
			}
		}
		pr := newProber(t, "roll-live-"+n.ID, jobs, up...)
		if err := n.term(60 * time.Second); err != nil {
			t.Fatalf("node %s exited with %v after SIGTERM", n.ID, err)
		}
		n.restart()
		took := awaitSettled(t, 90*time.Second, c.nodes, nil)
		started := pr.stop()
		pr.report()
		jobs = append(jobs, started...)
		t.Logf("%s restarted; settled %s after its start", n.ID, took.Round(time.Millisecond))
	}
	waitJobs(t, jobs, c.nodes, 120*time.Second)
	for _, h := range histories(t, jobs, c.nodes, "after the restarts") {
		for _, p := range historyProblems(h) {
			t.Error(p)
		}
	}
}
