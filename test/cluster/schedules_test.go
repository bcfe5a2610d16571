package cluster_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// scheduleDoc is the part of GET /api/v1/schedules/{id} the test reads.
type scheduleDoc struct {
	CreatedAt time.Time `json:"createdAt"`
	LastTick  time.Time `json:"lastTick"`
	Paused    bool      `json:"paused"`
	Counts    struct{ Started, Skipped, Missed, Failed, Buffered int }
}

// TestScheduleAcrossNodeLoss: a schedule ticking every second in a 3-node
// cluster, created through one node, its instance led by another; that node
// is SIGKILLed and its disk deleted mid-way. The schedule goes on from a
// surviving replica, and in the end every tick from its creation to its last
// has exactly one run (the ticks of the failover started late, within the
// catch-up window), no other run exists, every run completes, and no
// activity of a run ran twice but for attempts in flight on the killed node.
func TestScheduleAcrossNodeLoss(t *testing.T) {
	c := startCluster(t, 3)
	n1, n2, victim := c.nodes[0], c.nodes[1], c.nodes[2]
	tb := ownerTable(t, n1)
	id := ""
	for i := range 1000 {
		if cand := fmt.Sprintf("tick-%d", i); tb.ownerOf("schedule:"+cand) == victim.ID {
			id = cand
			break
		}
	}
	n1.must("POST", "/api/v1/schedules", `{"id":"`+id+`","workflow":"ChainingWorkflow","input":{"value":1},"every":"1s","overlap":"allow-all"}`, 201)
	started := func(n *node) (scheduleDoc, string) {
		d, err := getJSON[scheduleDoc](n, "/api/v1/schedules/"+id)
		if err != nil {
			return d, err.Error()
		}
		return d, ""
	}
	await(t, 30*time.Second, "4 runs of "+id, func() string {
		d, problem := started(n2)
		if problem == "" && d.Counts.Started < 4 {
			problem = fmt.Sprintf("%d started", d.Counts.Started)
		}
		return problem
	})
	before, _ := started(n1)
	killAt := time.Now()
	victim.kill9()
	if err := os.RemoveAll(victim.Dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s (leading %s) and deleted its disk after %d runs", victim.ID, id, before.Counts.Started)
	took := await(t, 60*time.Second, "4 more runs of "+id+" after the kill", func() string {
		d, problem := started(n1)
		if problem == "" && d.Counts.Started < before.Counts.Started+4 {
			problem = fmt.Sprintf("%d started", d.Counts.Started)
		}
		return problem
	})
	t.Logf("the schedule ran 4 more after %s", took.Round(time.Millisecond))
	n2.must("POST", "/api/v1/schedules/"+id+"/pause", `{"note":"end of test"}`, 200)
	final, problem := started(n1)
	if problem != "" {
		t.Fatal(problem)
	}

	// Every tick from the creation to the last has its run, and nothing else.
	want := map[string]bool{}
	for tick := final.CreatedAt.Add(time.Second); !tick.After(final.LastTick); tick = tick.Add(time.Second) {
		want[id+"-"+tick.UTC().Format("20060102T150405Z")] = true
	}
	all, err := listAll(n1, 500)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range all {
		if !strings.HasPrefix(s.ID, id+"-") {
			continue
		}
		if got[s.ID] {
			t.Errorf("run %s listed twice", s.ID)
		}
		got[s.ID] = true
		if !want[s.ID] {
			t.Errorf("run %s is of no tick from %s to %s", s.ID, final.CreatedAt.Format(time.StampMilli), final.LastTick.Format(time.StampMilli))
		}
	}
	for run := range want {
		if !got[run] {
			t.Errorf("tick %s has no run (lost)", run)
		}
	}
	if final.Counts.Started != len(want) || final.Counts.Missed != 0 || final.Counts.Failed != 0 {
		t.Errorf("counts %+v; want %d started, none missed or failed", final.Counts, len(want))
	}
	deadline := time.Now().Add(60 * time.Second)
	for run := range got {
		st, err := waitFinished(run, []*node{n1, n2}, deadline)
		if err != nil || st.Status != "COMPLETED" || string(st.Output) != "5" {
			t.Errorf("run %s: %+v, %v", run, st, err)
		}
	}

	// No activity of a run ran twice, but an attempt in flight on the killed node.
	type call struct {
		instance string
		task     int64
	}
	ran := map[call][]execution{}
	for _, n := range c.nodes {
		for _, e := range n.executions() {
			if strings.HasPrefix(e.Instance, id+"-") {
				k := call{e.Instance, e.Task}
				ran[k] = append(ran[k], e)
			}
		}
	}
	for k, es := range ran {
		if len(es) < 2 {
			continue
		}
		inFlight := 0
		for _, e := range es {
			if e.Node == victim.ID && !e.Time.After(killAt) {
				inFlight++
			}
		}
		if len(es)-inFlight > 1 {
			t.Errorf("%s task %d ran %d times: %+v", k.instance, k.task, len(es), es)
		}
	}
	t.Logf("%d ticks, %d runs, all completed", len(want), len(got))
}
