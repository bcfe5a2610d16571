package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftrt/weft/placement"
)

// Replica sets that repair themselves: a node lost for good is replaced, a
// node that joins or leaves gets or gives replicas by raft configuration
// changes, and a removed node cannot come back with its old data.

// replicaRow is a partition as the partitions listing shows it, with the
// replication fields the repair tests read.
type replicaRow struct {
	Partition       int      `json:"partition"`
	Holder          string   `json:"holder"`
	Serving         bool     `json:"serving"`
	Replicas        []string `json:"replicas"`
	Learners        []string `json:"learners"`
	Quorum          bool     `json:"quorum"`
	UnderReplicated bool     `json:"under_replicated"`
}

// replicatedProblem returns "" when every partition has exactly want voters,
// all of them live nodes, no learner, and a serving leader among them, as
// every live node with a replica of it sees it.
func replicatedProblem(live []*node, want int) string {
	p, _ := replicatedProblemAt(live, want)
	return p
}

// awaitReplicated waits until replicatedProblem reports nothing; on timeout it
// logs every line of nodes that names the partition last found wrong, then
// fails the test.
func awaitReplicated(t *testing.T, timeout time.Duration, what string, live, nodes []*node, want int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, part := replicatedProblemAt(live, want)
		if p == "" {
			return
		}
		if time.Now().After(deadline) {
			if part >= 0 {
				for _, n := range nodes {
					for _, l := range n.allLines() {
						if strings.Contains(l, fmt.Sprintf(" partition=%d ", part)) || strings.Contains(l, fmt.Sprintf(" group=%d ", part)) ||
							strings.Contains(l, "node removed") || strings.Contains(l, "failed") {
							t.Logf("%s: %s", n.ID, l)
						}
					}
				}
			}
			t.Fatalf("no %s after %s; last: %s", what, timeout, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func replicatedProblemAt(live []*node, want int) (string, int) {
	ids := make([]string, len(live))
	for i, l := range live {
		ids[i] = l.ID
	}
	seen := map[int]bool{}
	total := 0
	for _, n := range live {
		d, err := getJSON[struct {
			Partitions []replicaRow `json:"partitions"`
		}](n, "/api/v1/cluster/partitions")
		if err != nil {
			return err.Error(), -1
		}
		total = len(d.Partitions)
		for _, r := range d.Partitions {
			if len(r.Replicas) == 0 {
				continue // no replica on this node
			}
			seen[r.Partition] = true
			bad := len(r.Replicas) != want || len(r.Learners) > 0 || !r.Serving || !slices.Contains(ids, r.Holder) || r.UnderReplicated
			for _, rep := range r.Replicas {
				bad = bad || !slices.Contains(ids, rep)
			}
			if bad {
				return fmt.Sprintf("node %s: partition %d: leader %s serving %v, replicas %v, learners %v, under-replicated %v; want %d replicas on %v",
					n.ID, r.Partition, r.Holder, r.Serving, r.Replicas, r.Learners, r.UnderReplicated, want, ids), r.Partition
			}
		}
	}
	if len(seen) != total {
		return fmt.Sprintf("%d of %d partitions have a replica on a live node", len(seen), total), -1
	}
	return "", -1
}

// steadyLoad starts chains (one in four of its requests) and reads instances
// through the live nodes, and starts a fan-out every second, until stopped;
// it records every failed request.
type steadyLoad struct {
	t      *testing.T
	prefix string

	mu       sync.Mutex
	targets  []*node
	inflight map[*node]int
	jobs     []job
	failures []string
	requests int

	quit, done chan struct{}
	halted     sync.Once
}

func startSteadyLoad(t *testing.T, prefix string, targets ...*node) *steadyLoad {
	l := &steadyLoad{t: t, prefix: prefix, targets: targets, inflight: map[*node]int{}, quit: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	t.Cleanup(l.halt) // a test that fails before stop leaves no load running
	return l
}

func (l *steadyLoad) halt() {
	l.halted.Do(func() { close(l.quit) })
	<-l.done
}

// setTargets sends the next requests to ns only, and returns once no request
// is under way to another node (one about to be killed).
func (l *steadyLoad) setTargets(ns ...*node) {
	l.mu.Lock()
	l.targets = slices.Clone(ns)
	l.mu.Unlock()
	for {
		l.mu.Lock()
		busy := false
		for n, k := range l.inflight {
			busy = busy || k > 0 && !slices.Contains(ns, n)
		}
		l.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *steadyLoad) run() {
	defer close(l.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
		l.mu.Lock()
		n := l.targets[rand.IntN(len(l.targets))]
		l.inflight[n]++
		var read job
		if len(l.jobs) > 0 {
			read = l.jobs[rand.IntN(len(l.jobs))]
		}
		l.mu.Unlock()
		var nj job
		switch {
		case i%20 == 0:
			nj = fanOutJob(fmt.Sprintf("%s-fan-%d", l.prefix, i), 8, 4, 50)
		case i%4 == 0 || read.ID == "":
			nj = chainJob(fmt.Sprintf("%s-chain-%d", l.prefix, i), i, "Step3", 1, 1)
		}
		var r response
		var err error
		if nj.ID != "" {
			body := fmt.Sprintf(`{"name":%q,"instanceId":%q,"input":%s}`, nj.Name, nj.ID, nj.Input)
			if r, err = n.do("POST", "/api/v1/instances", body); err == nil && r.Status != http.StatusAccepted {
				err = fmt.Errorf("%s; want 202", r)
			}
		} else if r, err = n.do("GET", "/api/v1/instances/"+read.ID, ""); err == nil && r.Status != http.StatusOK {
			err = fmt.Errorf("%s; want 200", r)
		}
		l.mu.Lock()
		l.inflight[n]--
		l.requests++
		if err != nil {
			l.failures = append(l.failures, fmt.Sprintf("%s via %s: %v", time.Now().Format(time.StampMilli), n.ID, err))
		}
		if nj.ID != "" && r.Status == http.StatusAccepted {
			l.jobs = append(l.jobs, nj)
		}
		l.mu.Unlock()
	}
}

// stop stops the load and returns the instances it started; failed requests
// fail the test.
func (l *steadyLoad) stop() []job {
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("load %s: %d requests, %d instances started, %d failed", l.prefix, l.requests, len(l.jobs), len(l.failures))
	for i, f := range l.failures {
		if i == 20 {
			l.t.Errorf("... and %d more failed requests", len(l.failures)-20)
			break
		}
		l.t.Errorf("a request failed: %s", f)
	}
	return slices.Clone(l.jobs)
}

// TestReplaceLostNodes: 20 times, under a steady load of chains and
// fan-outs, a node is SIGKILLed and its data directory deleted (a lost
// disk), and a fresh node (a new id) joins. The others remove the lost node
// after --replace-after and replace its replicas (the fresh node is added,
// caught up by snapshot, promoted; the lost one removed): after each cycle
// every partition has 3 replicas on the live nodes again. No request through
// the live nodes fails; every instance completes with the right output; an
// activity ran twice only if a node died between its two runs (it was in
// flight).
func TestReplaceLostNodes(t *testing.T) {
	cycles := 20
	if testing.Short() {
		cycles = 3
	}
	const replaceAfter = "1s"
	c := startCluster(t, 3, "--replace-after", replaceAfter)
	live := slices.Clone(c.nodes)
	all := slices.Clone(c.nodes) // every node that ran, for the activity logs
	load := startSteadyLoad(t, "repair", live...)
	var kills []time.Time
	var gone []string
	start := time.Now()
	for cycle := range cycles {
		victim := live[cycle%len(live)]
		var rest []*node
		for _, n := range live {
			if n != victim {
				rest = append(rest, n)
			}
		}
		load.setTargets(rest...)
		kills = append(kills, time.Now())
		victim.kill9()
		if err := os.RemoveAll(victim.Dir); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, victim.ID)
		fresh := newNode(t, fmt.Sprintf("r%d", cycle+1), []string{rest[0].Gossip}, "--replace-after", replaceAfter)
		fresh.start()
		all = append(all, fresh)
		live = append(rest, fresh)
		cycleStart := kills[len(kills)-1]
		awaitReplicated(t, 120*time.Second, fmt.Sprintf("cycle %d: every partition with 3 replicas on %v", cycle+1, ids(live)), live, all, 3)
		load.setTargets(live...)
		t.Logf("cycle %d: %s killed and wiped, %s joined; fully replicated again %s after the kill",
			cycle+1, victim.ID, fresh.ID, time.Since(cycleStart).Round(time.Millisecond))
	}
	t.Logf("%d cycles in %s", cycles, time.Since(start).Round(time.Second))
	jobs := load.stop()
	waitJobs(t, jobs, live, 180*time.Second)
	if t.Failed() {
		debugUnfinished(t, jobs, live)
		t.FailNow()
	}
	awaitSettled(t, 60*time.Second, live, gone)
	checkRerunsStraddleKills(t, all, kills)
}

func ids(ns []*node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

// checkRerunsStraddleKills fails the test for a task that ran more than once
// without a failure between its runs: a run may repeat only when the attempt
// was in flight when a node was lost or when its instance's partition
// changed leader (the new leader sends again what it finds in flight: it
// cannot know whether the old leader's attempt still runs).
func checkRerunsStraddleKills(t *testing.T, nodes []*node, kills []time.Time) {
	t.Helper()
	type key struct {
		instance string
		task     int64
	}
	runs := map[key][]execution{}
	moves := map[int][]time.Time{} // partition → when its leader changed
	total := 0
	for _, n := range nodes {
		for _, e := range n.executions() {
			k := key{e.Instance, e.Task}
			runs[k] = append(runs[k], e)
			total++
		}
		for _, l := range n.allLines() {
			if !strings.Contains(l, `msg="partition no longer served here`) && !strings.Contains(l, `msg="partition served here`) {
				continue
			}
			m, p := logTime.FindStringSubmatch(l), logPartition.FindStringSubmatch(l)
			if m == nil || p == nil {
				continue
			}
			at, err1 := time.Parse(time.RFC3339Nano, m[1])
			part, err2 := strconv.Atoi(p[1])
			if err1 == nil && err2 == nil {
				moves[part] = append(moves[part], at)
			}
		}
	}
	reran, afterKill := 0, 0
	for k, es := range runs {
		if len(es) < 2 {
			continue
		}
		slices.SortFunc(es, func(a, b execution) int { return a.Time.Compare(b.Time) })
		between := func(events []time.Time, a, b time.Time) bool {
			return slices.ContainsFunc(events, func(at time.Time) bool { return !at.Before(a.Add(-time.Second)) && !at.After(b) })
		}
		for i := 1; i < len(es); i++ {
			if es[i].Attempt != es[i-1].Attempt {
				continue // a retry the workflow asked for
			}
			reran++
			switch {
			case between(kills, es[i-1].Time, es[i].Time):
				afterKill++
			case between(moves[int(placement.PartitionOf(k.instance, placement.DefaultPartitions))], es[i-1].Time, es[i].Time):
			default:
				t.Errorf("task %d of %s ran twice with no node lost and no leader change in between: %+v and %+v", k.task, k.instance, es[i-1], es[i])
			}
		}
	}
	t.Logf("%d activity executions; %d repeated (%d in flight when a node was lost, the others when their partition changed leader)", total, reran, afterKill)
}

var logPartition = regexp.MustCompile(` partition=(\d+)`)

// TestGracefulJoinAndLeave: under load, a fourth node joins (replicas move to
// it: learner, snapshot, promotion, removal of the replica it displaces,
// leadership transferred first), then leaves for good (weft cluster leave:
// its replicas move back, its leadership first), then stops. No request
// fails at any point.
func TestGracefulJoinAndLeave(t *testing.T) {
	c := startCluster(t, 3)
	load := startSteadyLoad(t, "moves", c.nodes...)
	n4 := c.join("n4")
	took := await(t, 120*time.Second, "n4 gets its share of replicas and the cluster settles", func() string {
		if p := replicatedProblem(c.nodes, 3); p != "" {
			return p
		}
		return settleProblem(c.nodes, nil)
	})
	t.Logf("join: n4 holds its replicas and leads its partitions %s after it started", took.Round(time.Millisecond))
	load.setTargets(c.nodes[:3]...)
	r, err := n4.do("POST", "/api/v1/cluster/leave?timeout=50s", "")
	if err != nil || r.Status != http.StatusOK {
		d, _ := getJSON[struct {
			Partitions []replicaRow `json:"partitions"`
		}](n4, "/api/v1/cluster/partitions")
		stuck := -1
		for _, row := range d.Partitions {
			if len(row.Replicas) > 0 {
				t.Logf("n4 still has partition %d: %+v", row.Partition, row)
				if stuck < 0 {
					stuck = row.Partition
				}
			}
		}
		for _, n := range c.nodes {
			for _, l := range n.allLines() {
				if strings.Contains(l, fmt.Sprintf(" partition=%d ", stuck)) || strings.Contains(l, fmt.Sprintf(" group=%d ", stuck)) {
					t.Logf("%s: %s", n.ID, l)
				}
			}
		}
		t.Fatalf("n4's leave: %v %s", err, r)
	}
	t.Logf("leave: n4 answered %s", r)
	if err := n4.term(30 * time.Second); err != nil {
		t.Fatalf("n4 exited with %v after leaving", err)
	}
	rest := c.nodes[:3]
	await(t, 60*time.Second, "every partition on n1..n3 again", func() string {
		if p := replicatedProblem(rest, 3); p != "" {
			return p
		}
		return leftProblem(rest, "n4")
	})
	jobs := load.stop()
	waitJobs(t, jobs, rest, 120*time.Second)
}

// TestRemovedNodeCannotReturn: a stopped node removed by an operator (weft
// cluster remove) is refused when it starts again with its old data: it exits
// with a message naming its removal, and the others, having replaced its
// replicas, go on. Removing a live node or an unknown one is refused.
func TestRemovedNodeCannotReturn(t *testing.T) {
	c := startCluster(t, 4)
	n1, n4 := c.nodes[0], c.nodes[3]
	if r := n1.must("POST", "/api/v1/cluster/members/n4/remove", `{"reason":"test"}`, http.StatusConflict); !strings.Contains(string(r.Body), "alive") {
		t.Errorf("removing a live node: %s", r)
	}
	n1.must("POST", "/api/v1/cluster/members/nobody/remove", "", http.StatusNotFound)
	n1.must("POST", "/api/v1/cluster/members/n4/remove", "not json", http.StatusBadRequest)
	n1.must("GET", "/api/v1/cluster/members/n4/remove", "", http.StatusMethodNotAllowed)
	startJobs(t, []job{chainJob("removed-before", 1, "", 0, 0)}, c.nodes)
	n4.kill9()
	rest := c.nodes[:3]
	await(t, 30*time.Second, "n4 seen dead", func() string {
		md, err := n1.members()
		if err != nil {
			return err.Error()
		}
		if m, _ := md.find("n4"); m.State != "dead" {
			return fmt.Sprintf("n4 is %s", m.State)
		}
		return ""
	})
	n1.must("POST", "/api/v1/cluster/members/n4/remove", `{"reason":"disk replaced"}`, http.StatusOK)
	await(t, 90*time.Second, "n4's replicas replaced", func() string {
		return replicatedProblem(rest, 3)
	})
	if n4.tryStart(30 * time.Second) {
		t.Fatal("the removed node started serving again with its old data")
	}
	p := n4.cur()
	if !slices.ContainsFunc(p.Lines(), func(l string) bool { return strings.Contains(l, "was removed from the cluster") }) {
		t.Errorf("the removed node's refusal does not say why:\n%s", p.summary())
	}
	md, err := n1.members()
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := md.find("n4"); m.State != "removed" || m.Registered {
		t.Errorf("n4 listed as %+v, want removed", m)
	}
	jobs := []job{chainJob("removed-after", 2, "", 0, 0), chainJob("removed-before", 1, "", 0, 0)}
	startJobs(t, jobs[:1], rest)
	waitJobs(t, jobs, rest, 60*time.Second)
}
