package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestJoinAndLeaveUnderLoad: a fourth node joins three under load, then one of
// the original three leaves gracefully (SIGTERM) under load.
//
//   - Each move settles: all nodes agree on the owners, every partition is held
//     and served by its owner, and /readyz is 200 everywhere.
//   - Only about 1/N of the partitions move, and only to the joining node or away
//     from the leaving one (rendezvous placement).
//   - Requests during the moves (status reads and new starts, through the nodes
//     that stay) wait instead of failing: all of them succeed.
//   - In-flight workflows continue on their new owners: every workflow, started
//     before, during and between the moves, completed exactly once with the right
//     output (listing through each node shows each once; each history has one
//     completion and each task completed once).
//   - The leaving node exits 0.
func TestJoinAndLeaveUnderLoad(t *testing.T) {
	c := startCluster(t, 3, "--replicas", "1") // one copy per partition, moved by raft configuration changes
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	before := ownerTable(t, n1)

	// Phase A, in flight when n4 joins: fan-outs (≈ 2.5 s each) and chains whose
	// Step3 fails once and retries after 1.5 s, on every owner.
	var jobs []job
	for _, ids := range before.idsOwnedBy("jl-a-fan", map[string]int{"n1": 4, "n2": 4, "n3": 4}) {
		for _, id := range ids {
			jobs = append(jobs, fanOutJob(id, 40, 2, 60))
		}
	}
	for _, ids := range before.idsOwnedBy("jl-a-chain", map[string]int{"n1": 3, "n2": 3, "n3": 3}) {
		for i, id := range ids {
			jobs = append(jobs, chainJob(id, 200+i, "Step3", 1, 1.5))
		}
	}
	startJobs(t, jobs, c.nodes)

	// Requests keep flowing through the nodes that stay (n1, n3, later n4).
	pr := newProber(t, "jl-live", jobs, n1, n3)
	defer pr.stop()

	awaitExecuted(t, 60*time.Second, c.nodes, "ProcessWorkItem", "jl-a-fan", 60)

	// n4 joins, with workflows in flight.
	if k := inFlight(t, n1, jobs); k == 0 {
		t.Fatal("joined too late: no workflow was running any more")
	} else {
		t.Logf("n4 joins with %d of %d workflows running", k, len(jobs))
	}
	joinAt := time.Now()
	n4 := c.join("n4")
	pr.addTarget(n4)
	awaitSettled(t, 90*time.Second, c.nodes, nil)
	t.Logf("n4 joined and the cluster settled in %s", time.Since(joinAt).Round(time.Millisecond))
	afterJoin := ownerTable(t, n1)
	moved := 0
	for p := range afterJoin {
		if afterJoin[p] != before[p] {
			moved++
			if afterJoin[p] != "n4" {
				t.Errorf("partition %d moved from %s to %s when n4 joined; only moves to n4 are expected", p, before[p], afterJoin[p])
			}
		}
	}
	P := len(before)
	t.Logf("join: %d of %d partitions moved to n4 (owners now %v)", moved, P, afterJoin.count())
	if moved < P/4/2 || moved > P/4*3/2 {
		t.Errorf("join: %d of %d partitions moved, want about 1/4 (%d)", moved, P, P/4)
	}

	// Phase B, in flight when n2 leaves: more on every owner, more on n2.
	var phaseB []job
	for _, ids := range afterJoin.idsOwnedBy("jl-b-fan", map[string]int{"n1": 2, "n2": 5, "n3": 2, "n4": 3}) {
		for _, id := range ids {
			phaseB = append(phaseB, fanOutJob(id, 40, 2, 60))
		}
	}
	for _, ids := range afterJoin.idsOwnedBy("jl-b-chain", map[string]int{"n1": 2, "n2": 3, "n3": 2, "n4": 2}) {
		for i, id := range ids {
			phaseB = append(phaseB, chainJob(id, 300+i, "Step3", 1, 1.5))
		}
	}
	startJobs(t, phaseB, []*node{n1, n3, n4})
	jobs = append(jobs, phaseB...)
	pr.addJobs(phaseB)
	awaitExecuted(t, 60*time.Second, c.nodes, "ProcessWorkItem", "jl-b-fan", 60)

	// n2 leaves gracefully, with workflows of its partitions in flight.
	var onN2 []job
	for _, j := range phaseB {
		if afterJoin.ownerOf(j.ID) == "n2" {
			onN2 = append(onN2, j)
		}
	}
	if k := inFlight(t, n1, onN2); k == 0 {
		t.Fatal("left too late: no workflow of n2's partitions was running any more")
	} else {
		t.Logf("n2 leaves with %d of its %d phase-B workflows running", k, len(onN2))
	}
	leaveAt := time.Now()
	if err := n2.term(60 * time.Second); err != nil {
		t.Errorf("n2 exited with %v after SIGTERM, want status 0 (a graceful leave)", err)
	}
	stay := []*node{n1, n3, n4}
	awaitSettled(t, 90*time.Second, stay, []string{"n2"})
	t.Logf("n2 left and the cluster settled %s after SIGTERM", time.Since(leaveAt).Round(time.Millisecond))
	// Every node tells a graceful leave from a death (given a few seconds of gossip).
	leftDeadline := time.Now().Add(10 * time.Second)
	for leftProblem(stay, "n2") != "" && time.Now().Before(leftDeadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if p := leftProblem(stay, "n2"); p != "" {
		t.Errorf("n2 left gracefully, but: %s; want it listed as left (unregistered, owning nothing) or not at all", p)
	}
	afterLeave := ownerTable(t, n3)
	moved = 0
	for p := range afterLeave {
		if afterLeave[p] != afterJoin[p] {
			moved++
			if afterJoin[p] != "n2" {
				t.Errorf("partition %d moved from %s to %s when n2 left; only n2's partitions should move", p, afterJoin[p], afterLeave[p])
			}
		}
		if afterLeave[p] == "n2" {
			t.Errorf("partition %d is still owned by n2 after it left", p)
		}
	}
	t.Logf("leave: %d of %d partitions moved off n2 (owners now %v)", moved, P, afterLeave.count())
	if moved != afterJoin.count()["n2"] {
		t.Errorf("leave: %d partitions moved, n2 owned %d", moved, afterJoin.count()["n2"])
	}

	// A few more requests on the settled cluster, then stop the prober.
	k := pr.count()
	await(t, 30*time.Second, "8 more prober requests", func() string {
		if pr.count() < k+8 {
			return fmt.Sprintf("%d", pr.count()-k)
		}
		return ""
	})
	live := pr.stop()
	jobs = append(jobs, live...)
	pr.report()

	// Every workflow completed once with its output.
	waitJobs(t, jobs, stay, 90*time.Second)
	for _, n := range stay {
		got, err := listAll(n, 25)
		if err != nil {
			t.Errorf("listing via %s: %v", n.ID, err)
			continue
		}
		for _, p := range listingProblems(n.ID, got, jobs) {
			t.Error(p)
		}
	}
	r := runCLI(t, 0, "list", "--server", n4.URL(), "--limit", "10000")
	listed := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n")[1:] {
		if f := strings.Fields(l); len(f) >= 3 {
			listed[f[0]]++
			if f[2] != "COMPLETED" {
				t.Errorf("weft list: %s", l)
			}
		}
	}
	for _, j := range jobs {
		if listed[j.ID] != 1 {
			t.Errorf("weft list via n4 shows %s %d times, want once", j.ID, listed[j.ID])
		}
	}
	if len(listed) != len(jobs) {
		t.Errorf("weft list via n4 shows %d instances, want %d", len(listed), len(jobs))
	}
	errs := parallel(len(jobs), 8, func(i int) error {
		h, err := history(stay[i%3], jobs[i].ID)
		if err != nil {
			return err
		}
		if p := historyProblems(h); len(p) > 0 {
			return fmt.Errorf("%s", strings.Join(p, "; "))
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}
}

// inFlight counts the jobs that are PENDING or RUNNING, read through n.
func inFlight(t *testing.T, n *node, jobs []job) int {
	t.Helper()
	var mu sync.Mutex
	k := 0
	errs := parallel(len(jobs), 8, func(i int) error {
		st, err := getJSON[status](n, "/api/v1/instances/"+jobs[i].ID)
		if err != nil {
			return err
		}
		if st.Status == "PENDING" || st.Status == "RUNNING" {
			mu.Lock()
			k++
			mu.Unlock()
		}
		return nil
	})
	if len(errs) > 0 {
		t.Fatalf("statuses: %v", errs)
	}
	return k
}

// prober sends requests through some nodes all along a test: a status read of a
// random known instance every 50 ms and a new chain start every 200 ms. Every
// answer must be a success; it records failures and the slowest answer.
type prober struct {
	t      *testing.T
	prefix string // of the chains it starts: prefix-K

	mu       sync.Mutex
	targets  []*node
	jobs     []job
	started  []job // chains the prober started
	failures []string
	reads    int
	slowest  response
	stopped  bool

	quit chan struct{}
	done chan struct{}
}

func newProber(t *testing.T, prefix string, jobs []job, targets ...*node) *prober {
	p := &prober{t: t, prefix: prefix, targets: targets, jobs: append([]job(nil), jobs...), quit: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *prober) addTarget(n *node) {
	p.mu.Lock()
	p.targets = append(p.targets, n)
	p.mu.Unlock()
}

func (p *prober) addJobs(js []job) {
	p.mu.Lock()
	p.jobs = append(p.jobs, js...)
	p.mu.Unlock()
}

func (p *prober) run() {
	defer close(p.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		n := p.targets[rand.IntN(len(p.targets))]
		j := p.jobs[rand.IntN(len(p.jobs))]
		p.mu.Unlock()
		var r response
		var err error
		if i%4 == 3 {
			nj := chainJob(fmt.Sprintf("%s-%d", p.prefix, i/4), i/4, "", 0, 0)
			body := fmt.Sprintf(`{"name":%q,"instanceId":%q,"input":%s}`, nj.Name, nj.ID, nj.Input)
			r, err = n.do("POST", "/api/v1/instances", body)
			if err == nil && r.Status == http.StatusAccepted {
				p.mu.Lock()
				p.started = append(p.started, nj)
				p.jobs = append(p.jobs, nj)
				p.mu.Unlock()
			} else if err == nil {
				err = fmt.Errorf("%s; want 202", r)
			}
		} else {
			r, err = n.do("GET", "/api/v1/instances/"+j.ID, "")
			if err == nil && r.Status != http.StatusOK {
				err = fmt.Errorf("%s; want 200", r)
			}
		}
		p.mu.Lock()
		p.reads++
		if err != nil {
			p.failures = append(p.failures, fmt.Sprintf("%s via %s: %v", time.Now().Format(time.StampMilli), n.ID, err))
		}
		if r.Took > p.slowest.Took {
			p.slowest = r
		}
		p.mu.Unlock()
	}
}

func (p *prober) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reads
}

// stop stops the prober (once) and returns the chains it started.
func (p *prober) stop() []job {
	p.mu.Lock()
	already := p.stopped
	p.stopped = true
	p.mu.Unlock()
	if !already {
		close(p.quit)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]job(nil), p.started...)
}

// report fails the test for failed requests or an unbounded wait.
func (p *prober) report() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.t.Logf("prober: %d requests (%d starts), %d failed; slowest %s", p.reads, len(p.started), len(p.failures), p.slowest)
	for i, f := range p.failures {
		if i == 20 {
			p.t.Errorf("... and %d more failed requests", len(p.failures)-20)
			break
		}
		p.t.Errorf("a request during the moves failed instead of waiting: %s", f)
	}
	// ASSUMPTION: "wait (bounded)" means a request never waits longer than a
	// partition move takes; 30 s is far more than moving these partitions needs.
	if p.slowest.Took > 30*time.Second {
		p.t.Errorf("a request waited %s during the moves: %s", p.slowest.Took, p.slowest)
	}
}
