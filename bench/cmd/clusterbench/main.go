// Command clusterbench measures weft as a cluster, with real `weft serve`
// processes on 127.0.0.1 (the binary of this tree, built through the bench
// module's replace), and prints a Markdown report:
//
//  1. restart (one copy of each partition, --replicas 1): a 3-node cluster runs
//     300 ChainingWorkflow instances; the node
//     holding most of them is SIGKILLed and started again on the same data
//     directory, ports and node id (with --join naming the two survivors); the
//     report gives the time from that process start until its /readyz is 200, and
//     until a status request for one of its instances answers 200 through
//     another node, and whether all 300 completed;
//  2. join (--replicas 1): a 4th node joins the running 3-node cluster (under a light load of
//     chains); the time from its process start until every node's placement table
//     agrees on the owners and every partition is served by its owner, and how
//     many partitions moved;
//  3. throughput: 1000 chains (4 activities each) started over HTTP from 64
//     goroutines, round-robin over the nodes, each awaited with the long-poll
//     wait route, on one node, on three with one replica and on three with
//     three replicas, alternating, 3 runs each;
//  4. failover (--replicas 3): a partition's leader SIGKILLed, the time until
//     one of its instances is read through another node, 10 rounds;
//  5. idle: the CPU of an idle 3-node cluster with one replica and with three.
//
// Every node writes its log to a file in a temporary directory (printed); every
// process is killed at the end, also on failure.
//
//	cd bench && go run ./cmd/clusterbench [-out FILE] [-only restart,join,throughput,failover,idle]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftrt/weft/bench/internal/harness"
	"github.com/weftrt/weft/placement"
)

const (
	workflowName = "ChainingWorkflow"
	chainInput   = `{"value":1}`
	chainOutput  = "5" // value 1 through Step1..Step4, each adding 1
	// activitiesPerChain: ChainingWorkflow (examples/seed) calls Step1, Step2,
	// Step3 and Step4 in turn; MyCompensation only runs when a step fails for good.
	activitiesPerChain = 4
)

var (
	binPath   = flag.String("bin", "", "weft binary (default: built from this tree into the log directory)")
	outFile   = flag.String("out", "", "also write the report to this file")
	only      = flag.String("only", "restart,join,throughput,failover,idle,repair", "parts to run, comma-separated: restart, join, throughput, failover, idle, repair")
	failoverN = flag.Int("failover-n", 10, "failover: leader kills")
	poll      = flag.Duration("poll", 20*time.Millisecond, "poll interval of the readiness and placement checks")
	restartN  = flag.Int("restart-n", 300, "restart: instances")
	chainN    = flag.Int("n", 1000, "throughput: instances per run")
	conc      = flag.Int("conc", 64, "throughput: goroutines starting instances")
	runs      = flag.Int("runs", 3, "throughput: runs per setup")
	joinRate  = flag.Int("join-rate", 20, "join: the light load, instances started per second")
	keep      = flag.Bool("keep", false, "keep the nodes' data directories")
	usedPorts = map[int]bool{}
)

func main() {
	flag.Parse()
	b := &bench{
		client: &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 2048, IdleConnTimeout: 30 * time.Second}},
		live:   map[*node]bool{},
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "clusterbench: %v: killing every node\n", s)
		b.killAll()
		os.Exit(130)
	}()
	err := b.run()
	b.killAll()
	report := b.rep.String()
	if err != nil {
		report += fmt.Sprintf("\n**clusterbench stopped: %v**\n", err)
	}
	fmt.Print(report)
	if *outFile != "" {
		if werr := os.WriteFile(*outFile, []byte(report), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "clusterbench:", werr)
		}
	}
	if err != nil {
		os.Exit(1)
	}
}

// ---- nodes ----

type node struct {
	replicas  int    // --replicas of a cluster node
	name      string // n1…; the node id of a cluster node
	label     string // the part it belongs to, for its log file's name
	clustered bool
	http      string // host:port
	gossip    string
	actor     string
	dir       string
	starts    int
	cmd       *exec.Cmd
	done      chan struct{}
	startedAt time.Time
	logPath   string
}

func (n *node) url(path string) string { return "http://" + n.http + path }

func (n *node) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

type bench struct {
	bin    string
	tmp    string
	client *http.Client
	rep    strings.Builder

	// extraArgs are added to every node's serve flags (a part sets them).
	extraArgs []string

	mu   sync.Mutex
	live map[*node]bool
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(&b.rep, format, args...) }

// progress goes to stderr as the parts run; the report goes to stdout at the end.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// freePort is a port of 127.0.0.1 free for TCP and UDP (gossip uses both), not
// handed out before in this run.
func freePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, uerr := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if uerr != nil || usedPorts[port] {
			continue
		}
		u.Close()
		usedPorts[port] = true
		return port, nil
	}
	return 0, errors.New("no free port found")
}

func (b *bench) newNode(label, name string, clustered bool) (*node, error) {
	n := &node{name: name, label: label, clustered: clustered, dir: filepath.Join(b.tmp, "data", label+"-"+name)}
	addr := func() (string, error) {
		p, err := freePort()
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), err
	}
	var err error
	if n.http, err = addr(); err != nil {
		return nil, err
	}
	if clustered {
		if n.gossip, err = addr(); err != nil {
			return nil, err
		}
		if n.actor, err = addr(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// start launches the node's process; join lists gossip addresses (none: found
// a cluster). startedAt is taken just before the fork.
func (b *bench) start(n *node, join []string) error {
	args := []string{"serve", "--http", n.http, "--grpc", "off", "--data", n.dir, "--log-format", "text", "--samples"}
	if n.clustered {
		args = append(args, "--node-id", n.name, "--gossip", n.gossip, "--actor", n.actor, "--replicas", strconv.Itoa(n.replicas))
		if len(join) > 0 {
			args = append(args, "--join", strings.Join(join, ","))
		}
	}
	args = append(args, b.extraArgs...)
	n.starts++
	n.logPath = filepath.Join(b.tmp, fmt.Sprintf("%s-%s.%d.log", n.label, n.name, n.starts))
	f, err := os.Create(n.logPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "# %s %s\n", b.bin, strings.Join(args, " "))
	cmd := exec.Command(b.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	n.startedAt = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	b.mu.Lock()
	b.live[n] = true
	b.mu.Unlock()
	go func(done chan struct{}) {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}(n.done)
	return nil
}

// kill SIGKILLs the node and waits for its process to end.
func (b *bench) kill(n *node) {
	if n.cmd == nil || !n.running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
	b.mu.Lock()
	delete(b.live, n)
	b.mu.Unlock()
}

func (b *bench) killAll() {
	b.mu.Lock()
	nodes := slices.Collect(maps.Keys(b.live))
	b.mu.Unlock()
	for _, n := range nodes {
		b.kill(n)
	}
}

func (b *bench) removeData(nodes ...*node) {
	if *keep {
		return
	}
	for _, n := range nodes {
		_ = os.RemoveAll(n.dir)
	}
}

// ---- HTTP ----

func (b *bench) do(ctx context.Context, method, url, body string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

func (b *bench) getJSON(ctx context.Context, url string, v any) error {
	code, body, err := b.do(ctx, http.MethodGet, url, "", 5*time.Second)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, code, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

func (b *bench) startChain(ctx context.Context, n *node, id string) (int, []byte, error) {
	body := fmt.Sprintf(`{"name":%q,"instanceId":%q,"input":%s}`, workflowName, id, chainInput)
	return b.do(ctx, http.MethodPost, n.url("/api/v1/instances"), body, 30*time.Second)
}

type status struct {
	ID      string          `json:"id"`
	Status  string          `json:"status"`
	Output  json.RawMessage `json:"output"`
	Failure json.RawMessage `json:"failure"`
}

// await long-polls the wait route on n until the instance finished. With
// tolerate503, a 503 (the instance's node is down) is retried and counted;
// otherwise anything but 200 and 202 is an error.
func (b *bench) await(ctx context.Context, n *node, id string, tolerate503 bool, retried *atomic.Int64) (status, error) {
	for {
		code, body, err := b.do(ctx, http.MethodGet, n.url("/api/v1/instances/"+id+"/wait?timeout=60s"), "", 70*time.Second)
		if err != nil {
			return status{}, fmt.Errorf("wait %s via %s: %w", id, n.name, err)
		}
		switch {
		case code == http.StatusOK:
			var st status
			if err := json.Unmarshal(body, &st); err != nil {
				return status{}, fmt.Errorf("wait %s: %w", id, err)
			}
			return st, nil
		case code == http.StatusAccepted:
			continue
		case code == http.StatusServiceUnavailable && tolerate503:
			if retried != nil {
				retried.Add(1)
			}
			select {
			case <-ctx.Done():
				return status{}, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		default:
			return status{}, fmt.Errorf("wait %s via %s: %d %s", id, n.name, code, strings.TrimSpace(string(body)))
		}
	}
}

func checkDone(st status) error {
	if st.Status != "COMPLETED" || strings.TrimSpace(string(st.Output)) != chainOutput {
		return fmt.Errorf("instance %s ended %s with output %s, failure %s", st.ID, st.Status, st.Output, st.Failure)
	}
	return nil
}

// ---- readiness and placement ----

// waitReady polls /readyz until 200; it returns the time since the node's
// process start.
func (b *bench) waitReady(ctx context.Context, n *node, limit time.Duration) (time.Duration, error) {
	deadline := n.startedAt.Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		if !n.running() {
			return 0, fmt.Errorf("%s exited before it was ready; its log %s ends:\n%s", n.name, n.logPath, tail(n.logPath, 15))
		}
		code, body, err := b.do(ctx, http.MethodGet, n.url("/readyz"), "", 2*time.Second)
		if err == nil && code == http.StatusOK {
			return time.Since(n.startedAt), nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body)))
		}
		if err := sleep(ctx, *poll); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%s not ready %v after its start (last /readyz: %s)", n.name, limit, last)
}

type partitionView struct {
	Partition int    `json:"partition"`
	Owner     string `json:"owner"`
	Holder    string `json:"holder"`
	Epoch     uint64 `json:"epoch"`
	Serving   bool   `json:"serving"`
}

type partitions struct {
	Self       string          `json:"self"`
	Partitions []partitionView `json:"partitions"`
}

type memberView struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Registered bool   `json:"registered"`
	Partitions int    `json:"partitions"`
	Held       int    `json:"held"`
}

type members struct {
	Self    string       `json:"self"`
	Members []memberView `json:"members"`
}

func (b *bench) partitions(ctx context.Context, n *node) ([]partitionView, error) {
	var p partitions
	if err := b.getJSON(ctx, n.url("/api/v1/cluster/partitions"), &p); err != nil {
		return nil, err
	}
	return p.Partitions, nil
}

// converged is nil once every node's table names the same owner for each
// partition, and every node sees each partition held by its owner and served.
// It returns the first node's table.
func (b *bench) converged(ctx context.Context, nodes []*node) ([]partitionView, error) {
	var first []partitionView
	for i, n := range nodes {
		ps, err := b.partitions(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.name, err)
		}
		if i == 0 {
			first = ps
		} else if len(ps) != len(first) {
			return nil, fmt.Errorf("%s lists %d partitions, %s %d", n.name, len(ps), nodes[0].name, len(first))
		}
		for j, p := range ps {
			switch {
			case i > 0 && p.Owner != first[j].Owner:
				return nil, fmt.Errorf("partition %d: owner %s on %s, %s on %s", p.Partition, first[j].Owner, nodes[0].name, p.Owner, n.name)
			case p.Holder != p.Owner || !p.Serving:
				return nil, fmt.Errorf("%s sees partition %d owned by %s, held by %q, serving %v", n.name, p.Partition, p.Owner, p.Holder, p.Serving)
			}
		}
	}
	return first, nil
}

// waitConverged polls converged; it returns the time since since.
func (b *bench) waitConverged(ctx context.Context, nodes []*node, since time.Time, limit time.Duration) ([]partitionView, time.Duration, error) {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.cmd != nil && !n.running() {
				return nil, 0, fmt.Errorf("%s exited; its log %s ends:\n%s", n.name, n.logPath, tail(n.logPath, 15))
			}
		}
		table, err := b.converged(ctx, nodes)
		if err == nil {
			return table, time.Since(since), nil
		}
		last = err
		if err := sleep(ctx, *poll); err != nil {
			return nil, 0, err
		}
	}
	return nil, 0, fmt.Errorf("placement not converged %v after the start: last check: %v", limit, last)
}

// startCluster starts n1 (founder), then each next node joining the ones before,
// each once the previous ones agree.
func (b *bench) startCluster(ctx context.Context, label string, size, replicas int) ([]*node, time.Duration, error) {
	var nodes []*node
	t0 := time.Now()
	for i := range size {
		n, err := b.newNode(label, fmt.Sprintf("n%d", i+1), true)
		if err != nil {
			return nodes, 0, err
		}
		n.replicas = replicas
		var join []string
		for _, o := range nodes {
			join = append(join, o.gossip)
		}
		if err := b.start(n, join); err != nil {
			return nodes, 0, err
		}
		nodes = append(nodes, n)
		if _, err := b.waitReady(ctx, n, 60*time.Second); err != nil {
			return nodes, 0, err
		}
		if _, _, err := b.waitConverged(ctx, nodes, n.startedAt, 60*time.Second); err != nil {
			return nodes, 0, err
		}
	}
	return nodes, time.Since(t0), nil
}

// ---- the run ----

func (b *bench) run() error {
	parts := strings.Split(*only, ",")
	for _, p := range parts {
		if !slices.Contains([]string{"restart", "join", "throughput", "failover", "idle", "repair"}, p) {
			return fmt.Errorf("-only: unknown part %q (restart, join, throughput, failover, idle, repair)", p)
		}
	}
	var err error
	if b.tmp, err = os.MkdirTemp("", "clusterbench-"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "clusterbench: node logs in %s\n", b.tmp)
	b.bin = *binPath
	if b.bin == "" {
		b.bin = filepath.Join(b.tmp, "weft")
		progress("building %s", b.bin)
		build := exec.Command("go", "build", "-o", b.bin, "github.com/weftrt/weft/cmd/weft")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build (run from bench/): %w", err)
		}
	}
	ctx := context.Background()

	b.printf("# weft cluster bench\n\n")
	b.printf("- %s; %d CPUs (%s); %s; weft at %s\n", time.Now().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), cpuModel(), runtime.Version(), commit())
	b.printf("- load at start: `%s`\n", uptime())
	b.printf("- every node is a `weft serve` process on 127.0.0.1 (`--grpc off --log-format text`), binary built from this tree; node logs: `%s`\n", b.tmp)
	b.printf("- readiness (`/readyz`), placement (`/api/v1/cluster/partitions` of every node) and status checks poll every %v, so times are upper bounds within about that much (plus one request's latency)\n", *poll)
	b.printf("- all nodes and this driver share the machine's %d cores\n", runtime.NumCPU())

	var cl []*node
	var errs []error
	if slices.Contains(parts, "restart") {
		cl, err = b.partRestart(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("restart: %w", err))
			b.printf("\n**Part 1 failed: %v**\n", err)
		}
	}
	if slices.Contains(parts, "join") {
		if err := b.partJoin(ctx, cl); err != nil {
			errs = append(errs, fmt.Errorf("join: %w", err))
			b.printf("\n**Part 2 failed: %v**\n", err)
		}
	}
	b.killAll()
	if slices.Contains(parts, "throughput") {
		if err := b.partThroughput(ctx); err != nil {
			errs = append(errs, fmt.Errorf("throughput: %w", err))
			b.printf("\n**Part 3 failed: %v**\n", err)
		}
	}
	if slices.Contains(parts, "failover") {
		if err := b.partFailover(ctx); err != nil {
			errs = append(errs, fmt.Errorf("failover: %w", err))
			b.printf("\n**Part 4 failed: %v**\n", err)
		}
		b.killAll()
	}
	if slices.Contains(parts, "idle") {
		if err := b.partIdle(ctx); err != nil {
			errs = append(errs, fmt.Errorf("idle: %w", err))
			b.printf("\n**Part 5 failed: %v**\n", err)
		}
		b.killAll()
	}
	if slices.Contains(parts, "repair") {
		if err := b.partRepair(ctx); err != nil {
			errs = append(errs, fmt.Errorf("repair: %w", err))
			b.printf("\n**Part 6 failed: %v**\n", err)
		}
		b.killAll()
	}
	b.printf("\n- load at end: `%s`\n", uptime())
	b.printf("- node logs: `%s`\n", b.tmp)
	if !*keep {
		_ = os.RemoveAll(filepath.Join(b.tmp, "data"))
	}
	if *binPath == "" {
		_ = os.Remove(b.bin)
	}
	return errors.Join(errs...)
}

// ---- part 1: restart after SIGKILL ----

func (b *bench) partRestart(ctx context.Context) ([]*node, error) {
	b.printf("\n## 1. Restart after SIGKILL (`--replicas 1`)\n\n")
	b.printf("One copy of each partition (a raft group of one voter): a killed node's partitions wait for it (with replicas, another replica takes over: part 4).\n\n")
	progress("restart: starting a 3-node cluster")
	nodes, setup, err := b.startCluster(ctx, "restart", 3, 1)
	if err != nil {
		return nodes, err
	}
	progress("restart: cluster up in %v", setup.Round(time.Millisecond))
	table, err := b.partitions(ctx, nodes[0])
	if err != nil {
		return nodes, err
	}
	byNode := map[string]*node{}
	for _, n := range nodes {
		byNode[n.name] = n
	}
	ids := make([]string, *restartN)
	holderOf := map[string]string{}
	count := map[string]int{}
	for i := range ids {
		ids[i] = fmt.Sprintf("restart-%04d", i)
		h := table[placement.PartitionOf(ids[i], len(table))].Holder
		holderOf[ids[i]] = h
		count[h]++
	}
	victim := nodes[0]
	for _, n := range nodes {
		if count[n.name] > count[victim.name] {
			victim = n
		}
	}
	var others []*node
	for _, n := range nodes {
		if n != victim {
			others = append(others, n)
		}
	}
	var victimIDs []string
	for _, id := range ids {
		if holderOf[id] == victim.name {
			victimIDs = append(victimIDs, id)
		}
	}

	// The load: every start through the nodes in turn, 32 at a time.
	progress("restart: starting %d instances", len(ids))
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	startErrs := make([]error, len(ids))
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				code, body, err := b.startChain(ctx, nodes[i%len(nodes)], ids[i])
				if err == nil && code != http.StatusAccepted {
					err = fmt.Errorf("%d %s", code, strings.TrimSpace(string(body)))
				}
				if err != nil {
					startErrs[i] = fmt.Errorf("start %s via %s: %w", ids[i], nodes[i%len(nodes)].name, err)
				}
			}
		})
	}
	wg.Wait()
	startTook := time.Since(t0)
	if err := errors.Join(startErrs...); err != nil {
		return nodes, err
	}
	var counts map[string]int
	countsErr := b.getJSON(ctx, others[0].url("/api/v1/counts"), &counts)

	progress("restart: SIGKILL %s (holds %d of the %d instances)", victim.name, count[victim.name], len(ids))
	killedAt := time.Now()
	b.kill(victim)

	// Until another node answers 503 for one of the victim's instances. Each
	// request may take up to 40 s (longer than a request waits for a partition).
	probe := victimIDs[0]
	var down trace
	var first503 time.Duration
	var body503 string
	for time.Since(killedAt) < 60*time.Second {
		code, body := down.probe(ctx, b, others[0].url("/api/v1/instances/"+probe), killedAt)
		if code == http.StatusServiceUnavailable {
			first503, body503 = time.Since(killedAt), strings.TrimSpace(string(body))
			break
		}
		_ = sleep(ctx, *poll)
	}
	var mem members
	_ = b.getJSON(ctx, others[0].url("/api/v1/cluster/members"), &mem)
	victimState := "?"
	for _, m := range mem.Members {
		if m.ID == victim.name {
			victimState = m.State
		}
	}
	downFor := time.Since(killedAt)

	// The restart: same data directory, ports and node id; --join names the survivors.
	var join []string
	for _, o := range others {
		join = append(join, o.gossip)
	}
	progress("restart: starting %s again", victim.name)
	if err := b.start(victim, join); err != nil {
		return nodes, err
	}
	restartAt := victim.startedAt
	var readyTook, statusTook time.Duration
	var readyErr, statusErr error
	var up trace
	var pw sync.WaitGroup
	pw.Go(func() { readyTook, readyErr = b.waitReady(ctx, victim, 120*time.Second) })
	pw.Go(func() {
		for time.Since(restartAt) < 120*time.Second {
			if code, _ := up.probe(ctx, b, others[0].url("/api/v1/instances/"+probe), restartAt); code == http.StatusOK {
				statusTook = time.Since(restartAt)
				return
			}
			_ = sleep(ctx, *poll)
		}
		statusErr = fmt.Errorf("no 200 for %s through %s within 120 s of the restart (answers: %s)", probe, others[0].name, &up)
	})
	pw.Wait()

	// Every instance, awaited through the nodes in turn.
	progress("restart: awaiting all %d instances", len(ids))
	var retried atomic.Int64
	var lastDone atomic.Int64
	results := make([]status, len(ids))
	waitErrs := make([]error, len(ids))
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	next.Store(0)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				st, err := b.await(wctx, nodes[i%len(nodes)], ids[i], true, &retried)
				results[i], waitErrs[i] = st, err
				if err == nil {
					d := int64(time.Since(restartAt))
					for {
						cur := lastDone.Load()
						if d <= cur || lastDone.CompareAndSwap(cur, d) {
							break
						}
					}
				}
			}
		})
	}
	wg.Wait()
	cancel()
	completed := 0
	var bad, badIDs []string
	for i, st := range results {
		switch {
		case waitErrs[i] != nil:
			bad, badIDs = append(bad, waitErrs[i].Error()), append(badIDs, ids[i])
		case checkDone(st) == nil:
			completed++
		default:
			bad, badIDs = append(bad, checkDone(st).Error()), append(badIDs, ids[i])
		}
	}

	b.printf("3 nodes (n1 founded the cluster, n2 and n3 joined; up and agreeing on placement after %v). %d `%s` instances (`%s`, ids `restart-0000`…) started through the nodes in turn from 32 goroutines in %v; by holder of their partition: %s.\n\n",
		setup.Round(time.Millisecond), len(ids), workflowName, chainInput, startTook.Round(time.Millisecond), holderCounts(nodes, count))
	if countsErr == nil {
		b.printf("Just before the kill, `GET /api/v1/counts` on %s: `%s`.\n\n", others[0].name, compactJSON(counts))
	} else {
		b.printf("`GET /api/v1/counts` just before the kill failed: %v\n\n", countsErr)
	}
	b.printf("SIGKILL **%s** (holds %d of them). Then `GET /api/v1/instances/%s` (one of its instances) through %s, every %v: ",
		victim.name, count[victim.name], probe, others[0].name, *poll)
	if first503 > 0 {
		b.printf("the first 503 came %v after the kill; the answers (time sent after the kill: answer, latency): %s. The 503's body: `%s`; %s then listed %s as `%s`. ",
			first503.Round(time.Millisecond), &down, body503, others[0].name, victim.name, victimState)
	} else {
		b.printf("no 503 within 60 s (answers: %s); %s lists %s as `%s`. ", &down, others[0].name, victim.name, victimState)
	}
	b.printf("%s was restarted %v after the kill, same data directory, ports and node id, with `--join` naming the two survivors' gossip addresses.\n\n",
		victim.name, downFor.Round(time.Millisecond))
	b.printf("| from the restart's process start until | time |\n|---|---|\n")
	b.printf("| %s's `/readyz` answers 200 | %s |\n", victim.name, durOrErr(readyTook, readyErr))
	b.printf("| `GET /api/v1/instances/%s` through %s answers 200 | %s |\n", probe, others[0].name, durOrErr(statusTook, statusErr))
	if lastDone.Load() > 0 {
		b.printf("| the last of the %d instances is seen completed (waits started after both of the above) | %v |\n", len(ids), time.Duration(lastDone.Load()).Round(time.Millisecond))
	}
	b.printf("\nThe status requests through %s after the restart (time sent after the restart: answer, latency): %s.\n\n", others[0].name, &up)
	b.printf("What the survivors logged about %s from the kill on:\n\n```\n%s\n```\n\n", victim.name, victimLines(others, victim.name, killedAt, 25))
	b.printf("Completion: **%d of %d** instances COMPLETED with output %s", completed, len(ids), chainOutput)
	if retried.Load() > 0 {
		b.printf(" (%d wait requests answered 503 and were retried)", retried.Load())
	}
	b.printf(".\n")
	if len(bad) > 0 {
		b.printf("\nNot completed (%d, first 10):\n\n```\n%s\n```\n", len(bad), strings.Join(bad[:min(10, len(bad))], "\n"))
		for _, id := range badIDs[:min(5, len(badIDs))] {
			b.printf("\n%s\n", b.diagnose(ctx, others[0], id, "restart-"))
		}
		b.printf("\nWarnings and errors in the node logs:\n\n```\n%s\n```\n", logExcerpt(b.tmp, "restart-", 20))
	}
	var errs []error
	if readyErr != nil {
		errs = append(errs, readyErr)
	}
	if statusErr != nil {
		errs = append(errs, statusErr)
	}
	if len(bad) > 0 {
		errs = append(errs, fmt.Errorf("%d of %d instances did not complete", len(bad), len(ids)))
	}
	return nodes, errors.Join(errs...)
}

// ---- part 2: graceful join ----

func (b *bench) partJoin(ctx context.Context, cl []*node) error {
	b.printf("\n## 2. Graceful join of a 4th node (`--replicas 1`)\n\n")
	reuse := len(cl) == 3
	for _, n := range cl {
		reuse = reuse && n.running()
	}
	var setup time.Duration
	if reuse {
		if _, _, err := b.waitConverged(ctx, cl, time.Now(), 60*time.Second); err != nil {
			b.printf("The restart part's cluster did not settle (%v); a fresh one is used.\n\n", err)
			reuse = false
		}
	}
	if !reuse {
		b.killAll()
		var err error
		progress("join: starting a 3-node cluster")
		if cl, setup, err = b.startCluster(ctx, "join", 3, 1); err != nil {
			return err
		}
	}
	before, err := b.partitions(ctx, cl[0])
	if err != nil {
		return err
	}

	// The light load: chains started at a steady rate through the three nodes
	// in turn, each awaited.
	type sample struct {
		startAt time.Time
		start   time.Duration
		total   time.Duration
		err     error
	}
	var (
		smu     sync.Mutex
		samples []sample
		loadWG  sync.WaitGroup
		waitWG  sync.WaitGroup
		retried atomic.Int64
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadWG.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(*joinRate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("join-%05d", i)
			via := cl[i%len(cl)]
			waitWG.Go(func() {
				t := time.Now()
				s := sample{startAt: t}
				code, body, err := b.startChain(ctx, via, id)
				s.start = time.Since(t)
				if err == nil && code != http.StatusAccepted {
					err = fmt.Errorf("start %s via %s: %d %s", id, via.name, code, strings.TrimSpace(string(body)))
				}
				if err == nil {
					wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
					var st status
					st, err = b.await(wctx, via, id, true, &retried)
					cancel()
					if err == nil {
						err = checkDone(st)
					}
				}
				s.total = time.Since(t)
				s.err = err
				smu.Lock()
				samples = append(samples, s)
				smu.Unlock()
			})
		}
	})
	if err := sleep(ctx, time.Second); err != nil {
		stopLoad()
		return err
	}

	n4, err := b.newNode("join", "n4", true)
	if err != nil {
		stopLoad()
		return err
	}
	n4.replicas = cl[0].replicas
	progress("join: starting n4")
	if err := b.start(n4, []string{cl[0].gossip}); err != nil {
		stopLoad()
		return err
	}
	all := append(slices.Clone(cl), n4)
	var readyTook time.Duration
	var readyErr error
	var rw sync.WaitGroup
	rw.Go(func() { readyTook, readyErr = b.waitReady(ctx, n4, 120*time.Second) })
	after, took, convErr := b.waitConverged(ctx, all, n4.startedAt, 120*time.Second)
	convergedAt := time.Now()
	rw.Wait()
	_ = sleep(ctx, time.Second)
	stopLoad()
	loadWG.Wait()
	waitWG.Wait()

	if reuse {
		b.printf("The 3-node cluster of part 1 (after the restart)")
	} else {
		b.printf("A fresh 3-node cluster (up in %v)", setup.Round(time.Millisecond))
	}
	b.printf(", under a light load: `%s` started at %d/s through n1, n2, n3 in turn (each awaited), from 1 s before n4's start until 1 s after the placement converged. n4 starts with `--join` %s's gossip address.\n\n", workflowName, *joinRate, cl[0].name)
	b.printf("| from n4's process start until | time |\n|---|---|\n")
	b.printf("| n4's `/readyz` answers 200 | %s |\n", durOrErr(readyTook, readyErr))
	b.printf("| all 4 nodes' `/api/v1/cluster/partitions` agree on every owner, and every partition has `holder == owner` and `serving: true` on each | %s |\n", durOrErr(took, convErr))
	if convErr == nil {
		moved := map[string]int{}
		total := 0
		for i, p := range after {
			if p.Owner != before[i].Owner {
				moved[before[i].Owner+" → "+p.Owner]++
				total++
			}
		}
		owned := map[string]int{}
		for _, p := range after {
			owned[p.Owner]++
		}
		b.printf("\nPartitions moved: **%d of %d** (%s); owned afterwards: %s.\n", total, len(after), fmtSeen(moved), fmtSeen(owned))
	}
	smu.Lock()
	defer smu.Unlock()
	var failed []string
	var during []float64
	var startLat, totalLat []float64
	for _, s := range samples {
		if s.err != nil {
			failed = append(failed, s.err.Error())
			continue
		}
		startLat = append(startLat, harness.Ms(s.start))
		totalLat = append(totalLat, harness.Ms(s.total))
		if !s.startAt.Before(n4.startedAt) && s.startAt.Before(convergedAt) {
			during = append(during, harness.Ms(s.total))
		}
	}
	b.printf("\nThe load: %d instances, %d completed with output %s", len(samples), len(samples)-len(failed), chainOutput)
	if retried.Load() > 0 {
		b.printf(" (%d waits answered 503 and were retried)", retried.Load())
	}
	b.printf("; start → completion p50 %.0f ms, max %.0f ms overall; for the %d started between n4's start and convergence p50 %.0f ms, max %.0f ms; the start request alone max %.0f ms.\n",
		harness.Percentile(totalLat, 0.5), harness.Percentile(totalLat, 1), len(during), harness.Percentile(during, 0.5), harness.Percentile(during, 1), harness.Percentile(startLat, 1))
	if len(failed) > 0 {
		b.printf("\nFailed (%d, first 10):\n\n```\n%s\n```\n", len(failed), strings.Join(failed[:min(10, len(failed))], "\n"))
	}
	if convErr != nil || readyErr != nil || len(failed) > 0 {
		b.printf("\nWarnings and errors in the node logs:\n\n```\n%s\n```\n", logExcerpt(b.tmp, "", 30))
	}
	var errs []error
	if readyErr != nil {
		errs = append(errs, readyErr)
	}
	if convErr != nil {
		errs = append(errs, convErr)
	}
	if len(failed) > 0 {
		errs = append(errs, fmt.Errorf("%d of %d load instances failed", len(failed), len(samples)))
	}
	return errors.Join(errs...)
}

// ---- part 3: throughput ----

type tputRun struct {
	setup     string
	run       int
	elapsed   time.Duration
	starting  time.Duration
	cpu       []time.Duration
	acts      []int
	bootstrap time.Duration
	err       error
}

func (b *bench) partThroughput(ctx context.Context) error {
	b.printf("\n## 3. Chain throughput: 1 node vs 3 nodes (1 and 3 replicas)\n\n")
	var out []tputRun
	for r := 1; r <= *runs; r++ {
		for _, setup := range tputSetups {
			progress("throughput: %s, run %d", setup, r)
			res := b.tputOnce(ctx, setup, r)
			b.killAll()
			if res.err != nil {
				progress("throughput: %s, run %d: %v", setup, r, res.err)
			} else {
				progress("throughput: %s, run %d: %v, %.0f activities/s", setup, r, res.elapsed.Round(time.Millisecond), actsPerSec(res.elapsed))
			}
			out = append(out, res)
		}
	}
	b.printf("%d `%s` instances (`%s`: %d activities each — Step1…Step4 — so %d activities per run) started with `POST /api/v1/instances` from %d goroutines, the i-th through node i mod N; as each start returns, a goroutine of its own awaits it with `GET /api/v1/instances/{id}/wait?timeout=60s` on the same node (and checks COMPLETED, output %s). Time from the first start to the last completion. Single node: `weft serve` without cluster flags; 1 cluster node: `weft serve --gossip` alone (default replicas, capped at 1: every partition a one-member raft group); 3 nodes: a cluster started fresh for each run (n1 founds it, n2 and n3 join), with `--replicas 1` (one copy of each partition) or `--replicas 3` (every partition a raft group over the three nodes), measured once every node is ready, agrees on placement and every partition is served (led) by its owner. Alternating 1 node, 3 nodes; %d runs each; fresh data directories every run.\n\n",
		*chainN, workflowName, chainInput, activitiesPerChain, *chainN*activitiesPerChain, *conc, chainOutput, *runs)
	b.printf("| run | setup | first start → last completion | activities/s | starts took | CPU s per node | activities run per node |\n|---|---|---|---|---|---|---|\n")
	med := map[string][]float64{}
	var errs []error
	for _, r := range out {
		if r.err != nil {
			b.printf("| %d | %s | failed: %s | | | | |\n", r.run, r.setup, strings.ReplaceAll(r.err.Error(), "\n", " "))
			errs = append(errs, fmt.Errorf("%s run %d: %w", r.setup, r.run, r.err))
			continue
		}
		var cpu, acts []string
		for i := range r.cpu {
			cpu = append(cpu, fmt.Sprintf("%.1f", r.cpu[i].Seconds()))
			acts = append(acts, strconv.Itoa(r.acts[i]))
		}
		b.printf("| %d | %s | %v | %.0f | %v | %s | %s |\n", r.run, r.setup, r.elapsed.Round(time.Millisecond), actsPerSec(r.elapsed),
			r.starting.Round(time.Millisecond), strings.Join(cpu, " / "), strings.Join(acts, " / "))
		med[r.setup] = append(med[r.setup], actsPerSec(r.elapsed))
	}
	b.printf("\n| setup | runs | activities/s, median | min–max |\n|---|---|---|---|\n")
	for _, s := range tputSetups {
		xs := med[s]
		if len(xs) == 0 {
			b.printf("| %s | 0 | – | – |\n", s)
			continue
		}
		b.printf("| %s | %d | **%.0f** | %.0f–%.0f |\n", s, len(xs), median(xs), slices.Min(xs), slices.Max(xs))
	}
	if len(med["1 node"]) > 0 && len(med["1 cluster node"]) > 0 {
		b.printf("\nRatio 1 cluster node / 1 node (medians): **%.2f×** (a node alone with `--gossip` commits each step through a one-member raft group: its log write, then the apply).\n",
			median(med["1 cluster node"])/median(med["1 node"]))
	}
	if len(med["1 node"]) > 0 && len(med["3 nodes, 1 replica"]) > 0 {
		b.printf("\nRatio 3 nodes (1 replica) / 1 node (medians): **%.2f×**.\n", median(med["3 nodes, 1 replica"])/median(med["1 node"]))
	}
	if len(med["3 nodes, 3 replicas"]) > 0 && len(med["3 nodes, 1 replica"]) > 0 {
		b.printf("\nRatio 3 replicas / 1 replica on 3 nodes (medians): **%.2f×** (every step committed by a quorum of 2 of 3 replicas, each fsyncing its raft log, and applied on all three).\n",
			median(med["3 nodes, 3 replicas"])/median(med["3 nodes, 1 replica"]))
	}
	b.printf("\nCaveat: the three nodes are three processes on one machine with %d cores, shared with this driver (and whatever else runs on it; see the load figures), each with its own pebble store on the same disk — so this measures the cost of placement, routing and cross-node activity dispatch, not the gain of three machines. CPU s per node is user+system time of each `weft serve` process over its whole life (start-up and placement included).\n", runtime.NumCPU())
	return errors.Join(errs...)
}

var tputSetups = []string{"1 node", "1 cluster node", "3 nodes, 1 replica", "3 nodes, 3 replicas"}

func actsPerSec(d time.Duration) float64 {
	return float64(*chainN*activitiesPerChain) / d.Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) tputOnce(ctx context.Context, setup string, run int) (res tputRun) {
	res = tputRun{setup: setup, run: run}
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			b.kill(n)
		}
		b.removeData(nodes...)
	}()
	label := fmt.Sprintf("tput-%s-r%d", strings.NewReplacer(" ", "", ",", "").Replace(setup), run)
	if setup == "1 node" {
		n, err := b.newNode(label, "n1", false)
		if err != nil {
			res.err = err
			return res
		}
		if err := b.start(n, nil); err != nil {
			res.err = err
			return res
		}
		nodes = []*node{n}
		if res.bootstrap, res.err = b.waitReady(ctx, n, 60*time.Second); res.err != nil {
			return res
		}
	} else if setup == "1 cluster node" {
		// A cluster of one with the default replicas: one-member raft groups.
		nodes, res.bootstrap, res.err = b.startCluster(ctx, label, 1, 3)
		if res.err != nil {
			return res
		}
	} else {
		replicas := 1
		if strings.HasSuffix(setup, "3 replicas") {
			replicas = 3
		}
		nodes, res.bootstrap, res.err = b.startCluster(ctx, label, 3, replicas)
		if res.err != nil {
			return res
		}
	}
	prefix := fmt.Sprintf("chain-%s-", strings.TrimPrefix(label, "tput-"))
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	res.elapsed, res.starting, res.err = harness.Batch(rctx, *chainN, *conc,
		func(ctx context.Context, i int) error {
			code, body, err := b.startChain(ctx, nodes[i%len(nodes)], fmt.Sprintf("%s%04d", prefix, i))
			if err == nil && code != http.StatusAccepted {
				err = fmt.Errorf("via %s: %d %s", nodes[i%len(nodes)].name, code, strings.TrimSpace(string(body)))
			}
			return err
		},
		func(ctx context.Context, i int) error {
			st, err := b.await(ctx, nodes[i%len(nodes)], fmt.Sprintf("%s%04d", prefix, i), false, nil)
			if err != nil {
				return err
			}
			return checkDone(st)
		})
	if res.err != nil {
		res.err = fmt.Errorf("%w; warnings and errors in the logs: %s", res.err, logExcerpt(b.tmp, label, 10))
		return res
	}
	for _, n := range nodes {
		res.acts = append(res.acts, b.activities(ctx, n))
		res.cpu = append(res.cpu, harness.ProcCPU(n.cmd.Process.Pid))
	}
	return res
}

// activities sums weft_activity_executions_total of n's /metrics.
func (b *bench) activities(ctx context.Context, n *node) int {
	code, body, err := b.do(ctx, http.MethodGet, n.url("/metrics"), "", 5*time.Second)
	if err != nil || code != http.StatusOK {
		return -1
	}
	total := 0.0
	s := bufio.NewScanner(bytes.NewReader(body))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, "weft_activity_executions_total") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		total += v
	}
	return int(total)
}

// diagnose describes an instance that did not finish: where its partition is,
// its status and history as node via answers them, and every log line naming it.
func (b *bench) diagnose(ctx context.Context, via *node, id, logPrefix string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "`%s`", id)
	if ps, err := b.partitions(ctx, via); err == nil && len(ps) > 0 {
		p := ps[placement.PartitionOf(id, len(ps))]
		fmt.Fprintf(&sb, " (partition %d: owner %s, holder %s, epoch %d, serving %v as %s sees it)", p.Partition, p.Owner, p.Holder, p.Epoch, p.Serving, via.name)
	}
	code, body, err := b.do(ctx, http.MethodGet, via.url("/api/v1/instances/"+id), "", 10*time.Second)
	if err != nil {
		fmt.Fprintf(&sb, "; status through %s: %v", via.name, err)
	} else {
		var st status
		_ = json.Unmarshal(body, &st)
		fmt.Fprintf(&sb, "; status through %s: %d %s", via.name, code, st.Status)
	}
	sb.WriteString("\n\n```\n")
	var hist struct {
		Events []struct {
			Seq    int       `json:"seq"`
			Kind   string    `json:"kind"`
			Time   time.Time `json:"time"`
			TaskID *int64    `json:"taskId"`
			Name   string    `json:"name"`
		} `json:"events"`
	}
	if err := b.getJSON(ctx, via.url("/api/v1/instances/"+id+"/history"), &hist); err != nil {
		fmt.Fprintf(&sb, "history: %v\n", err)
	} else {
		for _, e := range hist.Events {
			task := ""
			if e.TaskID != nil {
				task = fmt.Sprintf(" task=%d", *e.TaskID)
			}
			fmt.Fprintf(&sb, "history %2d %s %s%s %s\n", e.Seq, e.Time.Format("15:04:05.000"), e.Kind, task, e.Name)
		}
	}
	files, _ := filepath.Glob(filepath.Join(b.tmp, logPrefix+"*.log"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, id) {
				fmt.Fprintf(&sb, "%s: %s\n", filepath.Base(f), l)
			}
		}
	}
	sb.WriteString("```")
	return sb.String()
}

// ---- helpers ----

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func durOrErr(d time.Duration, err error) string {
	if err != nil {
		return "not reached: " + strings.ReplaceAll(err.Error(), "\n", " ")
	}
	return fmt.Sprintf("**%v**", d.Round(time.Millisecond))
}

func shortErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "connection refused"
	}
	return err.Error()
}

// trace records probe answers: when each request was sent (after a reference
// time), its answer and its latency.
type trace struct{ answers []answer }

type answer struct {
	sent, took time.Duration
	what       string
}

func (t *trace) probe(ctx context.Context, b *bench, url string, since time.Time) (int, []byte) {
	sent := time.Now()
	code, body, err := b.do(ctx, http.MethodGet, url, "", 40*time.Second)
	what := strconv.Itoa(code)
	if err != nil {
		what = shortErr(err)
	}
	t.answers = append(t.answers, answer{sent: sent.Sub(since), took: time.Since(sent), what: what})
	return code, body
}

// String groups consecutive equal answers: "at 0.72s–0.95s: 503 ×7 (1–3 ms)".
func (t *trace) String() string {
	var parts []string
	for i := 0; i < len(t.answers); {
		j := i
		lo, hi := t.answers[i].took, t.answers[i].took
		for j+1 < len(t.answers) && t.answers[j+1].what == t.answers[i].what {
			j++
			lo, hi = min(lo, t.answers[j].took), max(hi, t.answers[j].took)
		}
		at := fmt.Sprintf("%.2fs", t.answers[i].sent.Seconds())
		if j > i {
			at += fmt.Sprintf("–%.2fs", t.answers[j].sent.Seconds())
		}
		lat := fmt.Sprintf("%v", lo.Round(time.Millisecond))
		if hi.Round(time.Millisecond) != lo.Round(time.Millisecond) {
			lat = fmt.Sprintf("%v–%v", lo.Round(time.Millisecond), hi.Round(time.Millisecond))
		}
		parts = append(parts, fmt.Sprintf("at %s: %s ×%d (%s)", at, t.answers[i].what, j-i+1, lat))
		i = j + 1
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// victimLines is what the nodes logged from since on about the node named
// victim (membership, re-sent activities, unreachable partitions), the last
// limit of them.
func victimLines(nodes []*node, victim string, since time.Time, limit int) string {
	var out []string
	keys := []string{"member=" + victim + " ", "peer=" + victim + " ", "gone=" + victim + " ", "which is not reachable"}
	for _, n := range nodes {
		b, err := os.ReadFile(n.logPath)
		if err != nil {
			continue
		}
		var reqFailed int
		for _, l := range strings.Split(string(b), "\n") {
			ts, _, ok := strings.Cut(strings.TrimPrefix(l, "time="), " ")
			t, err := time.Parse(time.RFC3339Nano, ts)
			if !ok || err != nil || t.Before(since) {
				continue
			}
			for _, k := range keys {
				if strings.Contains(l, k) {
					if strings.Contains(l, "request failed") {
						reqFailed++
						if reqFailed > 2 {
							break
						}
					}
					out = append(out, n.name+": "+l)
					break
				}
			}
		}
		if reqFailed > 2 {
			out = append(out, fmt.Sprintf("%s: (%d \"request failed … not reachable\" lines in all; the first 2 shown)", n.name, reqFailed))
		}
	}
	if len(out) == 0 {
		return "(none)"
	}
	if len(out) > limit {
		out = append([]string{fmt.Sprintf("(%d lines; the last %d)", len(out), limit)}, out[len(out)-limit:]...)
	}
	return strings.Join(out, "\n")
}

func fmtSeen(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func holderCounts(nodes []*node, count map[string]int) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%s %d", n.name, count[n.name]))
	}
	return strings.Join(parts, ", ")
}

func compactJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// logExcerpt is the last limit WARN and ERROR lines of the logs in dir whose
// names start with prefix, each prefixed with its file's name.
func logExcerpt(dir, prefix string, limit int) string {
	files, _ := filepath.Glob(filepath.Join(dir, prefix+"*.log"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "panic") {
				out = append(out, filepath.Base(f)+": "+l)
			}
		}
	}
	if len(out) == 0 {
		return "(none)"
	}
	if len(out) > limit {
		out = append([]string{fmt.Sprintf("(%d lines; the last %d)", len(out), limit)}, out[len(out)-limit:]...)
	}
	return strings.Join(out, "\n")
}

func uptime() string {
	out, err := exec.Command("uptime").Output()
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(out))
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	c := strings.TrimSpace(string(out))
	if st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(bytes.TrimSpace(st)) > 0 {
		c += " with uncommitted changes"
	}
	return c
}
