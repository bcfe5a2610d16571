// Package cluster_test tests a weft cluster made of real processes: it builds
// cmd/weft once, starts three (or four) `weft serve` nodes on 127.0.0.1 with their
// own data directories and fixed gossip and actor ports, and drives them over
// HTTP and the CLI as an operator would.
//
// What is tested:
//
//   - TestSeedPatternsThroughEachNode: every seed workflow (chaining, fan-out/fan-in,
//     order processing with and without approval, the monitor) started through each
//     node, for instances owned by each node, completes with the right output, read
//     back through other nodes and both APIs; listing gathers from all nodes; the
//     `weft cluster members|partitions` commands.
//   - TestActivitiesSpread: a fan-out of 300 on three nodes runs a real share of its
//     activities on every node (the weft_activity_executions_total counters and
//     the activity log lines agree).
//   - TestKillNodeUnderLoad: SIGKILL one node during fan-outs and chains; its
//     instances answer 503 ERR_PARTITION_UNAVAILABLE with Retry-After, naming it,
//     quickly; the other partitions keep completing; after a restart on the same
//     data directory everything completes and no activity whose completion was
//     recorded before the kill ran again.
//   - TestJoinAndLeaveUnderLoad: a fourth node joins under load, then a node leaves
//     with SIGTERM under load; requests keep being answered during the moves, only
//     the partitions of the joining or leaving node move, all nodes' placement
//     tables agree, and every workflow completed exactly once with its output.
//   - TestIsolation: nodes with different cluster names or gossip keys never see
//     each other, even when one is told to join the other.
//
// Each node's stderr is read line by line: the tests learn the HTTP address from
// the "weft serving" line and count "activity executed" lines; logs are printed
// when a test fails. Tests await conditions (HTTP state, long-polls, log lines)
// with deadlines instead of sleeping.
package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftrt/weft/placement"
)

// weftBin is cmd/weft, built once by TestMain (without -race, so the nodes run at
// their real speed); msgnodeBin is test/cluster/msgnode, built likewise.
var weftBin, msgnodeBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "weft-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	weftBin, msgnodeBin = filepath.Join(dir, "weft"), filepath.Join(dir, "msgnode")
	for bin, pkg := range map[string]string{weftBin: "github.com/weftrt/weft/cmd/weft", msgnodeBin: "github.com/weftrt/weft/test/cluster/msgnode"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Env = append(os.Environ(), "GOFLAGS=") // no -race inherited from the test's flags
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "cluster: go build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		httpClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "cluster: goroutines leaked:", err)
			return 1
		}
	}
	return code
}

// cleanEnv is the test's environment without WEFT_* variables.
func cleanEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "WEFT_") })
	return append(env, extra...)
}

// --- processes ---------------------------------------------------------------

// proc is one run of the weft binary; its stderr is kept line by line.
type proc struct {
	args []string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line and at exit
	done    chan struct{} // closed once stderr hit EOF and the process was reaped
	exitErr error
}

func startProc(bin string, args []string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{args: args, cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	go p.read(stderr)
	return p, nil
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	p.exitErr = err
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(p.done)
}

func (p *proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// await waits until cond holds on the lines, the process exits, or timeout.
func (p *proc) await(timeout time.Duration, cond func([]string) bool) (ok, exited bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok, ch := cond(p.lines), p.changed
		p.mu.Unlock()
		if ok {
			return true, false
		}
		select {
		case <-p.done:
			p.mu.Lock()
			ok = cond(p.lines)
			p.mu.Unlock()
			return ok, true
		case <-deadline.C:
			return false, false
		case <-ch:
		}
	}
}

// kill SIGKILLs the process if it still runs and waits until it is reaped.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// dump asks a live process for its goroutines (SIGQUIT: Go prints them and
// exits), so that a test that failed on a node that stopped answering shows
// where it is stuck; a process that does not exit in time is killed.
func (p *proc) dump() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.kill()
	}
}

// summary is the log without the per-activity lines, cut to its last 300 lines;
// then, whole, of a goroutine dump, only the goroutines blocked for a minute
// or more (a deadlock's) and those of the code a hang has been seen in, at
// most 60.
func (p *proc) summary() string {
	lines := p.Lines()
	var dump []string // the goroutines of a dump, kept whole: the one a hang is about may come first
	if i := slices.Index(lines, "SIGQUIT: quit"); i >= 0 {
		stuck := stuckGoroutines(lines[i:], 60)
		dump = append(dump, fmt.Sprintf("SIGQUIT: quit (goroutine dump: %d goroutine(s) blocked for minutes or in the code a hang was seen in follow, the rest left out)", len(stuck)))
		for _, g := range stuck {
			dump = append(dump, g...)
		}
		lines = lines[:i:i]
	}
	kept := slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
		return strings.Contains(l, `msg="activity executed"`)
	})
	head := fmt.Sprintf("(%d \"activity executed\" lines left out)", len(lines)-len(kept))
	if keep := 300; len(kept) > keep {
		head += fmt.Sprintf(" (%d earlier lines left out)", len(kept)-keep)
		kept = kept[len(kept)-keep:]
	}
	return head + "\n" + strings.Join(append(kept, dump...), "\n")
}

// --- nodes -------------------------------------------------------------------

// node is one cluster member: its identity, ports and data directory, which stay
// the same across restarts, and every process run for it.
type node struct {
	t      *testing.T
	ID     string
	Dir    string
	Gossip string   // 127.0.0.1:PORT, fixed
	Actor  string   // 127.0.0.1:PORT, fixed
	Join   []string // gossip addresses to join through; empty founds a cluster
	Extra  []string // more serve flags (--cluster-name, --gossip-key)
	Bin    string   // the program run: weftBin, or msgnodeBin

	mu    sync.Mutex
	procs []*proc
	url   string // the current process's http://127.0.0.1:PORT ("" when not serving)
}

// servingLine finds the HTTP address in the "weft serving" line (text format).
var servingLine = regexp.MustCompile(`msg="weft serving" http=(\S+)`)

// newNode prepares a node (it does not start it). Its processes are SIGKILLed at
// the end of the test; their logs are printed if the test failed.
func newNode(t *testing.T, id string, join []string, extra ...string) *node {
	t.Helper()
	n := &node{t: t, ID: id, Dir: t.TempDir(), Gossip: freeAddr(t), Actor: freeAddr(t), Join: join, Extra: extra, Bin: weftBin}
	// Registered after TempDir's cleanup, so it runs first: processes die before
	// their directories are removed.
	t.Cleanup(func() {
		n.mu.Lock()
		procs := slices.Clone(n.procs)
		n.mu.Unlock()
		for _, p := range procs {
			if t.Failed() {
				p.dump()
			}
			p.kill()
		}
		if t.Failed() {
			for i, p := range procs {
				t.Logf("--- stderr of node %s, process %d (pid %d, %v): weft %s ---\n%s",
					n.ID, i+1, p.cmd.Process.Pid, p.exitErr, strings.Join(p.args, " "), p.summary())
			}
		}
	})
	return n
}

func (n *node) args() []string {
	a := []string{"serve", "--http", "127.0.0.1:0", "--grpc", "off", "--data", n.Dir,
		"--node-id", n.ID, "--gossip", n.Gossip, "--actor", n.Actor}
	if n.Bin == weftBin {
		a = append(a, "--samples") // the seed's workflows, which the tests run
	}
	if len(n.Join) > 0 {
		a = append(a, "--join", strings.Join(n.Join, ","))
	}
	return append(a, n.Extra...)
}

// start starts a process for the node and returns once it logged "weft serving".
func (n *node) start() {
	n.t.Helper()
	if !n.tryStart(30 * time.Second) {
		p := n.cur()
		n.t.Fatalf("node %s exited (%v) before serving\n%s", n.ID, p.exitErr, p.summary())
	}
}

// restart starts the node again: same id, data directory, gossip and actor ports
// and join addresses (the HTTP port is picked anew).
func (n *node) restart() {
	n.t.Helper()
	if p := n.cur(); p != nil && !p.exited() {
		n.t.Fatalf("restart of node %s while it runs", n.ID)
	}
	n.start()
}

// tryStart is start for a node that may refuse to start: it returns false if the
// process exited before logging "weft serving". It fails the test if the process
// neither serves nor exits within timeout.
func (n *node) tryStart(timeout time.Duration) bool {
	n.t.Helper()
	p, err := startProc(n.Bin, n.args())
	if err != nil {
		n.t.Fatal(err)
	}
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.url = ""
	n.mu.Unlock()
	var addr, line string
	ok, exited := p.await(timeout, func(lines []string) bool {
		for _, l := range lines {
			if m := servingLine.FindStringSubmatch(l); m != nil {
				addr, line = m[1], l
				return true
			}
		}
		return false
	})
	switch {
	case ok:
		if !strings.Contains(line, " node="+n.ID) || !strings.Contains(line, " gossip=") || !strings.Contains(line, " actor=") {
			n.t.Errorf("node %s: the \"weft serving\" line lacks node=%s gossip=... actor=...: %s", n.ID, n.ID, line)
		}
		n.mu.Lock()
		n.url = addr
		n.mu.Unlock()
		return true
	case exited:
		return false
	}
	n.t.Fatalf("node %s neither served nor exited within %s\n%s", n.ID, timeout, p.summary())
	return false
}

// cur is the node's latest process (nil before the first start).
func (n *node) cur() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.procs) == 0 {
		return nil
	}
	return n.procs[len(n.procs)-1]
}

// URL is the current process's HTTP base URL.
func (n *node) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.url
}

// allLines are the stderr lines of every process run for the node, in order.
func (n *node) allLines() []string {
	n.mu.Lock()
	procs := slices.Clone(n.procs)
	n.mu.Unlock()
	var all []string
	for _, p := range procs {
		all = append(all, p.Lines()...)
	}
	return all
}

// kill9 SIGKILLs the node's process and waits until it is reaped.
func (n *node) kill9() {
	n.t.Helper()
	p := n.cur()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		n.t.Fatalf("SIGKILL node %s: %v", n.ID, err)
	}
	<-p.done
	n.mu.Lock()
	n.url = ""
	n.mu.Unlock()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		n.t.Fatalf("node %s was not killed by SIGKILL: %v", n.ID, p.exitErr)
	}
}

// term sends SIGTERM and waits up to timeout for the process to exit; it returns
// the exit error (nil for status 0). A process still running after timeout gets
// SIGQUIT (its goroutine dump goes to the log) and the test fails.
func (n *node) term(timeout time.Duration) error {
	n.t.Helper()
	p := n.cur()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		n.t.Fatalf("SIGTERM node %s: %v", n.ID, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.kill()
		}
		n.t.Fatalf("node %s did not exit within %s of SIGTERM", n.ID, timeout)
	}
	n.mu.Lock()
	n.url = ""
	n.mu.Unlock()
	n.t.Logf("node %s exited %s after SIGTERM (%v)", n.ID, time.Since(start).Round(time.Millisecond), p.exitErr)
	return p.exitErr
}

// usedPorts keeps freeAddr from handing out a port twice in one test run.
var usedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// freeAddr returns 127.0.0.1:PORT with PORT free for both TCP and UDP
// (memberlist uses both). The port lies outside the kernel's ephemeral range
// (ip_local_port_range): a node keeps its gossip and actor ports across
// restarts, and a port from :0 is one the kernel also hands to outgoing
// connections, so any connection on the machine could take it between the
// pick and the node's bind ("address already in use"; seen in make test).
func freeAddr(t *testing.T) string {
	t.Helper()
	lo, hi := fixedPortRange()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		usedPorts.Lock()
		taken := usedPorts.m[port]
		usedPorts.Unlock()
		if taken {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		usedPorts.Lock()
		taken = usedPorts.m[port]
		usedPorts.m[port] = true
		usedPorts.Unlock()
		if !taken {
			return addr
		}
	}
	t.Fatal("no free port for TCP and UDP outside the ephemeral range")
	return ""
}

// fixedPortRange is the larger stretch of [10000, 65536) that the kernel's
// ephemeral range leaves out (Linux's default 32768–60999: below it).
func fixedPortRange() (lo, hi int) {
	ephLo, ephHi := 32768, 60999
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(raw)); len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			b, errB := strconv.Atoi(f[1])
			if errA == nil && errB == nil && a <= b {
				ephLo, ephHi = a, b
			}
		}
	}
	below, above := ephLo-10000, 65535-ephHi
	if below >= above && below > 0 {
		return 10000, ephLo
	}
	if above > 0 {
		return ephHi + 1, 65536
	}
	return 10000, 65536 // the ephemeral range covers everything: take the chance
}

// --- clusters ----------------------------------------------------------------

// cluster is a set of nodes started together: n1 founds it, the others join n1.
type cluster struct {
	t     *testing.T
	nodes []*node
	extra []string
}

// startCluster starts size nodes (n1 without --join, the others joining n1) and
// waits until they all see each other alive, serve all they own and agree on
// placement.
func startCluster(t *testing.T, size int, extra ...string) *cluster {
	t.Helper()
	start := time.Now()
	c := &cluster{t: t, extra: extra}
	first := newNode(t, "n1", nil, extra...)
	first.start()
	c.nodes = append(c.nodes, first)
	for i := 2; i <= size; i++ {
		c.join(fmt.Sprintf("n%d", i))
	}
	awaitSettled(t, 60*time.Second, c.nodes, nil)
	t.Logf("%d-node cluster up and settled in %s", size, time.Since(start).Round(time.Millisecond))
	return c
}

// join starts a new node that joins through n1's gossip address. It does not
// wait for placement to settle.
func (c *cluster) join(id string) *node {
	c.t.Helper()
	n := newNode(c.t, id, []string{c.nodes[0].Gossip}, c.extra...)
	n.start()
	c.nodes = append(c.nodes, n)
	return n
}

// --- HTTP --------------------------------------------------------------------

var httpClient = &http.Client{Timeout: 2 * time.Minute}

// response is a read response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	Took   time.Duration
	req    string
}

func (r response) String() string {
	return fmt.Sprintf("%s → %d %s (%s)", r.req, r.Status, bytes.TrimSpace(r.Body), r.Took.Round(time.Millisecond))
}

// doURL sends one request with its own timeout. Safe from any goroutine.
func doURL(method, u, body string, timeout time.Duration) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b, Took: time.Since(start), req: method + " " + u}, nil
}

// do sends a request to the node's current process. Safe from any goroutine.
func (n *node) do(method, path, body string) (response, error) {
	u := n.URL()
	if u == "" {
		return response{}, fmt.Errorf("node %s is not serving", n.ID)
	}
	return doURL(method, u+path, body, 60*time.Second)
}

// must sends a request and fails the test unless the status is want. Test
// goroutine only.
func (n *node) must(method, path, body string, want int) response {
	n.t.Helper()
	r, err := n.do(method, path, body)
	if err != nil {
		n.t.Fatal(err)
	}
	if r.Status != want {
		n.t.Fatalf("%s; want %d", r, want)
	}
	return r
}

func decodeJSON[T any](r response) (T, error) {
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return v, fmt.Errorf("%s: decode %T: %w", r, v, err)
	}
	return v, nil
}

func getJSON[T any](n *node, path string) (T, error) {
	r, err := n.do("GET", path, "")
	if err != nil {
		var zero T
		return zero, err
	}
	if r.Status != http.StatusOK {
		var zero T
		return zero, fmt.Errorf("%s; want 200", r)
	}
	return decodeJSON[T](r)
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xa, yb)
}

// --- cluster state over HTTP -------------------------------------------------

type membersDoc struct {
	Self    string   `json:"self"`
	Members []member `json:"members"`
}

type member struct {
	ID         string `json:"id"`
	State      string `json:"state"` // alive, dead, left
	Registered bool   `json:"registered"`
	Gossip     string `json:"gossip"`
	Actor      string `json:"actor"`
	HTTP       string `json:"http"`
	Partitions int    `json:"partitions"`
}

func (d membersDoc) find(id string) (member, bool) {
	for _, m := range d.Members {
		if m.ID == id {
			return m, true
		}
	}
	return member{}, false
}

type partitionsDoc struct {
	Partitions []partitionRow `json:"partitions"`
}

type partitionRow struct {
	Partition int      `json:"partition"`
	Owner     string   `json:"owner"`
	Holder    string   `json:"holder"`
	Serving   bool     `json:"serving"`
	Replicas  []string `json:"replicas"`
	Quorum    bool     `json:"quorum"`
}

func (n *node) members() (membersDoc, error) {
	return getJSON[membersDoc](n, "/api/v1/cluster/members")
}

func (n *node) partitions() (partitionsDoc, error) {
	return getJSON[partitionsDoc](n, "/api/v1/cluster/partitions")
}

// table is a placement table: owners[p] owns partition p.
type table []string

// byPartition orders a partitions document by partition number; it reports rows
// that are missing, repeated or out of range.
func byPartition(d partitionsDoc) ([]partitionRow, error) {
	rows := make([]partitionRow, len(d.Partitions))
	seen := make([]bool, len(d.Partitions))
	for _, r := range d.Partitions {
		if r.Partition < 0 || r.Partition >= len(rows) || seen[r.Partition] {
			return nil, fmt.Errorf("partition %d is out of range or listed twice (%d rows)", r.Partition, len(rows))
		}
		seen[r.Partition] = true
		rows[r.Partition] = r
	}
	if len(rows) == 0 {
		return nil, errors.New("no partitions listed")
	}
	return rows, nil
}

// ownerTable reads n's placement table. Test goroutine only.
func ownerTable(t *testing.T, n *node) table {
	t.Helper()
	d, err := n.partitions()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := byPartition(d)
	if err != nil {
		t.Fatalf("node %s: %v", n.ID, err)
	}
	tb := make(table, len(rows))
	for i, r := range rows {
		tb[i] = r.Owner
	}
	return tb
}

// ownerOf is the owner of id's partition. The partition of an instance id is
// placement.PartitionOf(id, P), the documented placement rule (P is the length
// of the partitions listing).
func (tb table) ownerOf(id string) string {
	return tb[placement.PartitionOf(id, len(tb))]
}

// count is how many partitions each member owns.
func (tb table) count() map[string]int {
	m := map[string]int{}
	for _, o := range tb {
		m[o]++
	}
	return m
}

// idsOwnedBy returns, for each owner in want, want[owner] ids prefix-K whose
// partition that owner owns in tb, in order.
func (tb table) idsOwnedBy(prefix string, want map[string]int) map[string][]string {
	out := map[string][]string{}
	left := 0
	for _, k := range want {
		left += k
	}
	for k := 0; left > 0 && k < 1_000_000; k++ {
		id := fmt.Sprintf("%s-%d", prefix, k)
		o := tb.ownerOf(id)
		if len(out[o]) < want[o] {
			out[o] = append(out[o], id)
			left--
		}
	}
	return out
}

// settleProblem returns "" when the nodes form a settled cluster: each sees
// exactly these nodes alive with their current addresses (and the gone ones, if
// listed at all, as left and owning nothing), /readyz is 200 on each, all have
// identical owner columns in which only these nodes own partitions, and every
// partition's holder is its owner and serves it. Otherwise it says what is not
// so.
func settleProblem(nodes []*node, gone []string) string {
	ids := map[string]*node{}
	for _, n := range nodes {
		ids[n.ID] = n
	}
	var ref []partitionRow
	var refNode string
	for _, n := range nodes {
		md, err := n.members()
		if err != nil {
			return err.Error()
		}
		if md.Self != n.ID {
			return fmt.Sprintf("node %s calls itself %q", n.ID, md.Self)
		}
		var alive []string
		for _, m := range md.Members {
			if m.State == "alive" {
				alive = append(alive, m.ID)
			}
			want, ours := ids[m.ID]
			switch {
			case ours:
				if m.State != "alive" {
					continue
				}
				if m.HTTP != want.URL() || m.Gossip != want.Gossip || m.Actor != want.Actor {
					return fmt.Sprintf("node %s lists %s at http=%s gossip=%s actor=%s, want %s %s %s",
						n.ID, m.ID, m.HTTP, m.Gossip, m.Actor, want.URL(), want.Gossip, want.Actor)
				}
			case slices.Contains(gone, m.ID):
				// Settled means the departed node is not alive and owns nothing; that
				// it shows as "left" is checked apart (leftProblem), so that a wrong
				// state does not hide what the test checks after settling.
				if m.State == "alive" || m.Partitions != 0 {
					return fmt.Sprintf("node %s lists the departed %s as %s owning %d partitions, want it gone owning 0",
						n.ID, m.ID, m.State, m.Partitions)
				}
			default:
				return fmt.Sprintf("node %s lists an unexpected member %+v", n.ID, m)
			}
		}
		slices.Sort(alive)
		wantAlive := make([]string, 0, len(ids))
		for id := range ids {
			wantAlive = append(wantAlive, id)
		}
		slices.Sort(wantAlive)
		if !slices.Equal(alive, wantAlive) {
			return fmt.Sprintf("node %s sees %v alive, want %v", n.ID, alive, wantAlive)
		}
		pd, err := n.partitions()
		if err != nil {
			return err.Error()
		}
		rows, err := byPartition(pd)
		if err != nil {
			return fmt.Sprintf("node %s: %v", n.ID, err)
		}
		owned := map[string]int{}
		for _, r := range rows {
			owned[r.Owner]++
			if _, ok := ids[r.Owner]; !ok {
				return fmt.Sprintf("node %s: partition %d is owned by %q, not a live member", n.ID, r.Partition, r.Owner)
			}
			if r.Holder != r.Owner || !r.Serving {
				return fmt.Sprintf("node %s: partition %d owner %s holder %s serving %v", n.ID, r.Partition, r.Owner, r.Holder, r.Serving)
			}
		}
		for _, m := range md.Members {
			if _, ok := ids[m.ID]; ok && m.Partitions != owned[m.ID] {
				return fmt.Sprintf("node %s: members says %s owns %d partitions, its table %d", n.ID, m.ID, m.Partitions, owned[m.ID])
			}
		}
		for id := range ids {
			if owned[id] == 0 {
				return fmt.Sprintf("node %s: %s owns no partition", n.ID, id)
			}
		}
		if ref == nil {
			ref, refNode = rows, n.ID
		} else {
			if len(rows) != len(ref) {
				return fmt.Sprintf("node %s lists %d partitions, node %s %d", n.ID, len(rows), refNode, len(ref))
			}
			for i := range rows {
				if rows[i].Owner != ref[i].Owner {
					return fmt.Sprintf("nodes %s and %s disagree on partition %d: owner %s vs %s", refNode, n.ID, i, ref[i].Owner, rows[i].Owner)
				}
			}
		}
		r, err := n.do("GET", "/readyz", "")
		if err != nil {
			return err.Error()
		}
		if r.Status != http.StatusOK {
			return fmt.Sprintf("node %s: %s", n.ID, r)
		}
	}
	return ""
}

// leftProblem returns "" when every node lists the gracefully departed node as
// left, unregistered and owning nothing, or no longer lists it.
// ASSUMPTION: either is fine; "dead" is not (it did not fail, it left).
func leftProblem(nodes []*node, gone string) string {
	var out []string
	for _, n := range nodes {
		md, err := n.members()
		if err != nil {
			return err.Error()
		}
		if m, ok := md.find(gone); ok && (m.State != "left" || m.Registered || m.Partitions != 0) {
			out = append(out, fmt.Sprintf("node %s lists %s as %+v", n.ID, gone, m))
		}
	}
	return strings.Join(out, "; ")
}

// awaitSettled waits until settleProblem reports nothing; it returns how long
// that took.
func awaitSettled(t *testing.T, timeout time.Duration, nodes []*node, gone []string) time.Duration {
	t.Helper()
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.ID
	}
	return await(t, timeout, fmt.Sprintf("settled cluster of %v", names), func() string { return settleProblem(nodes, gone) })
}

// await polls problem every 100 ms until it returns ""; it fails the test with
// the last problem after timeout. It returns how long it waited.
func await(t *testing.T, timeout time.Duration, what string, problem func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		last := problem()
		if last == "" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("no %s after %s; last: %s", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wantUnavailable checks a response for an instance whose partition's holder is
// down: 503, a Retry-After header, and {"errorCode":"ERR_PARTITION_UNAVAILABLE",
// "message": naming the node}.
func wantUnavailable(r response, node string) error {
	if r.Status != http.StatusServiceUnavailable {
		return fmt.Errorf("%s; want 503 ERR_PARTITION_UNAVAILABLE", r)
	}
	ra := r.Header.Get("Retry-After")
	if ra == "" {
		return fmt.Errorf("%s: no Retry-After header", r)
	}
	if s, err := strconv.Atoi(ra); err != nil || s < 1 {
		if _, err := http.ParseTime(ra); err != nil {
			return fmt.Errorf("%s: Retry-After %q is neither seconds ≥ 1 nor a date", r, ra)
		}
	}
	var body struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return fmt.Errorf("%s: the body is not JSON: %v", r, err)
	}
	if body.ErrorCode != "ERR_PARTITION_UNAVAILABLE" {
		return fmt.Errorf("%s: errorCode %q, want ERR_PARTITION_UNAVAILABLE", r, body.ErrorCode)
	}
	if !regexp.MustCompile(`\b` + regexp.QuoteMeta(node) + `\b`).MatchString(body.Message) {
		return fmt.Errorf("%s: the message does not name node %s", r, node)
	}
	return nil
}

// --- metrics -----------------------------------------------------------------

// activityExecutions sums every weft_activity_executions_total series of n.
func activityExecutions(n *node) (float64, error) {
	r, err := n.do("GET", "/metrics", "")
	if err != nil {
		return 0, err
	}
	if r.Status != http.StatusOK {
		return 0, fmt.Errorf("%s", r)
	}
	sum, found := 0.0, false
	for _, l := range strings.Split(string(r.Body), "\n") {
		if !strings.HasPrefix(l, "weft_activity_executions_total{") && !strings.HasPrefix(l, "weft_activity_executions_total ") {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("node %s: metrics line %q: %v", n.ID, l, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, nil // no activity ran yet: the counter vector has no series
	}
	return sum, nil
}

// --- workflows ---------------------------------------------------------------

// job is one workflow instance a test starts, with the output it must end with.
type job struct {
	ID    string
	Name  string
	Input string
	Want  string // the expected output, JSON
}

func fanOutJob(id string, count, maxParallel, delayMs int) job {
	return job{ID: id, Name: "FanOutFanInWorkflow",
		Input: fmt.Sprintf(`{"count":%d,"maxParallel":%d,"itemDelayMs":%d}`, count, maxParallel, delayMs),
		Want:  strconv.Itoa(count * (count + 1) / 2)}
}

// chainJob: Step1..Step4 each add 1. failStep fails failTimes times first (each
// retry waits retrySeconds, doubling), which stays below the seed's 3 attempts.
func chainJob(id string, value int, failStep string, failTimes int, retrySeconds float64) job {
	in := map[string]any{"value": value}
	if failStep != "" {
		in["failStep"], in["failTimes"], in["retrySeconds"] = failStep, failTimes, retrySeconds
	}
	b, _ := json.Marshal(in)
	return job{ID: id, Name: "ChainingWorkflow", Input: string(b), Want: strconv.Itoa(value + 4)}
}

func orderJob(id string) job {
	return job{ID: id, Name: "OrderProcessingWorkflow", Input: `{"Name":"Paperclips","Quantity":1,"TotalCost":9.95}`,
		Want: `{"Processed":true}`}
}

// start starts the job through n with POST /api/v1/instances. Safe from any goroutine.
func (j job) start(n *node) error {
	body, _ := json.Marshal(map[string]any{"name": j.Name, "instanceId": j.ID, "input": json.RawMessage(j.Input)})
	r, err := n.do("POST", "/api/v1/instances", string(body))
	if err != nil {
		return err
	}
	if r.Status != http.StatusAccepted {
		return fmt.Errorf("%s; want 202", r)
	}
	return nil
}

// startJobs starts the jobs, job i through via[i%len(via)], a few at a time, and
// fails the test if any start failed.
func startJobs(t *testing.T, jobs []job, via []*node) {
	t.Helper()
	errs := parallel(len(jobs), 8, func(i int) error { return jobs[i].start(via[i%len(via)]) })
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
}

// parallel runs fn(0..n-1) with at most width at once and returns the errors.
func parallel(n, width int, fn func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, width)
	)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// status is weft's /api/v1 status body (the fields the tests read).
type status struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Status       string          `json:"status"`
	Input        json.RawMessage `json:"input"`
	Output       json.RawMessage `json:"output"`
	CustomStatus json.RawMessage `json:"customStatus"`
	Failure      *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"failure"`
}

// waitFinished long-polls /wait through the nodes in turn until the instance
// finished or the deadline passed. 503s (a partition moving or down) and
// connection errors are retried. Safe from any goroutine.
func waitFinished(id string, via []*node, deadline time.Time) (status, error) {
	last := "nothing yet"
	for i := 0; ; i++ {
		left := time.Until(deadline)
		if left <= 0 {
			return status{}, fmt.Errorf("instance %s did not finish in time; last answer: %s", id, last)
		}
		n := via[i%len(via)]
		secs := max(1, min(20, int(left/time.Second)))
		u := n.URL()
		if u == "" {
			last = "node " + n.ID + " not serving"
			time.Sleep(200 * time.Millisecond)
			continue
		}
		r, err := doURL("GET", fmt.Sprintf("%s/api/v1/instances/%s/wait?timeout=%ds", u, id, secs), "", time.Duration(secs+30)*time.Second)
		switch {
		case err != nil:
			last = err.Error()
			time.Sleep(200 * time.Millisecond)
		case r.Status == http.StatusOK:
			return decodeJSON[status](r)
		case r.Status == http.StatusAccepted:
			last = r.String()
		default:
			last = r.String()
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// check verifies a finished job's status.
func (j job) check(st status) error {
	if st.Status != "COMPLETED" || !jsonEqual(st.Output, []byte(j.Want)) {
		return fmt.Errorf("instance %s (%s %s): %s output %s failure %+v; want COMPLETED %s",
			j.ID, j.Name, j.Input, st.Status, st.Output, st.Failure, j.Want)
	}
	return nil
}

// waitJobs waits for every job through the nodes and checks its output; errors
// fail the test (not fatally).
func waitJobs(t *testing.T, jobs []job, via []*node, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	start := time.Now()
	errs := parallel(len(jobs), 24, func(i int) error {
		// Spread the long-polls: job i starts with node i.
		rot := append(slices.Clone(via[i%len(via):]), via[:i%len(via)]...)
		st, err := waitFinished(jobs[i].ID, rot, deadline)
		if err != nil {
			return err
		}
		return jobs[i].check(st)
	})
	for _, err := range errs {
		t.Error(err)
	}
	t.Logf("%d instances finished (%d wrong) within %s", len(jobs), len(errs), time.Since(start).Round(time.Millisecond))
}

// --- histories and activity logs ---------------------------------------------

type histEvent struct {
	Seq    int             `json:"seq"`
	Kind   string          `json:"kind"`
	Time   time.Time       `json:"time"`
	TaskID *int64          `json:"taskId"`
	Name   string          `json:"name"`
	Data   json.RawMessage `json:"data"`
}

type historyDoc struct {
	ID     string      `json:"id"`
	Events []histEvent `json:"events"`
}

func history(n *node, id string) (historyDoc, error) {
	return getJSON[historyDoc](n, "/api/v1/instances/"+id+"/history")
}

// completedTasks are the task ids with an activity-completed event.
func (h historyDoc) completedTasks() map[int64]bool {
	m := map[int64]bool{}
	for _, ev := range h.Events {
		if ev.Kind == "activity-completed" && ev.TaskID != nil {
			m[*ev.TaskID] = true
		}
	}
	return m
}

func (h historyDoc) finished() bool {
	return slices.ContainsFunc(h.Events, func(ev histEvent) bool {
		return ev.Kind == "workflow-completed" || ev.Kind == "workflow-failed"
	})
}

// historyProblems checks a finished instance's history: every activity scheduled
// once and completed once, none failed (history records only final outcomes and
// the tests' retries succeed), and exactly one workflow-completed event.
func historyProblems(h historyDoc) []string {
	var out []string
	scheduled, completed := map[int64]int{}, map[int64]int{}
	terminal := 0
	for _, ev := range h.Events {
		switch ev.Kind {
		case "activity-scheduled":
			scheduled[*ev.TaskID]++
		case "activity-completed":
			completed[*ev.TaskID]++
		case "activity-failed":
			out = append(out, fmt.Sprintf("%s: task %d failed: %s", h.ID, *ev.TaskID, ev.Data))
		case "workflow-completed", "workflow-failed", "workflow-terminated":
			terminal++
			if ev.Kind != "workflow-completed" {
				out = append(out, fmt.Sprintf("%s: %s", h.ID, ev.Kind))
			}
		}
	}
	if terminal != 1 {
		out = append(out, fmt.Sprintf("%s: %d terminal events, want exactly one workflow-completed", h.ID, terminal))
	}
	for task, k := range scheduled {
		if k != 1 || completed[task] != 1 {
			out = append(out, fmt.Sprintf("%s: task %d scheduled %d times, completed %d times", h.ID, task, k, completed[task]))
		}
	}
	for task := range completed {
		if scheduled[task] == 0 {
			out = append(out, fmt.Sprintf("%s: task %d completed but never scheduled", h.ID, task))
		}
	}
	if len(out) > 0 {
		out = append(out, h.ID+"'s history: "+h.summary())
	}
	return out
}

// summary is the history on one line, for failure messages: seq:kind[#task].
func (h historyDoc) summary() string {
	var b strings.Builder
	for i, ev := range h.Events {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d:%s", ev.Seq, ev.Kind)
		if ev.TaskID != nil {
			fmt.Fprintf(&b, "#%d", *ev.TaskID)
		}
	}
	return b.String()
}

// execution is one "activity executed" log line.
type execution struct {
	Node     string
	Time     time.Time
	Activity string
	Instance string
	Task     int64
	Attempt  int
}

var (
	logTime     = regexp.MustCompile(`^time=(\S+)`)
	logActivity = regexp.MustCompile(` activity=(\S+)`)
	logInstance = regexp.MustCompile(` instance=(\S+)`)
	logTask     = regexp.MustCompile(` task=(\d+)`)
	logAttempt  = regexp.MustCompile(` attempt=(\d+)`)
)

// executions parses the node's "activity executed" lines, of every process run
// for it (slog's text format: time=RFC3339 with milliseconds).
func (n *node) executions() []execution {
	var out []execution
	for _, l := range n.allLines() {
		if !strings.Contains(l, `msg="activity executed"`) {
			continue
		}
		e := execution{Node: n.ID}
		if m := logTime.FindStringSubmatch(l); m != nil {
			e.Time, _ = time.Parse(time.RFC3339Nano, m[1])
		}
		if m := logActivity.FindStringSubmatch(l); m != nil {
			e.Activity = m[1]
		}
		if m := logInstance.FindStringSubmatch(l); m != nil {
			e.Instance = strings.Trim(m[1], `"`)
		}
		if m := logTask.FindStringSubmatch(l); m != nil {
			e.Task, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if m := logAttempt.FindStringSubmatch(l); m != nil {
			e.Attempt, _ = strconv.Atoi(m[1])
		}
		out = append(out, e)
	}
	return out
}

// countExecuted counts "activity executed" lines of activity for instances whose
// id starts with prefix, over the nodes' current and past processes.
func countExecuted(nodes []*node, activity, prefix string) int {
	k := 0
	for _, n := range nodes {
		for _, l := range n.allLines() {
			if strings.Contains(l, `msg="activity executed"`) && strings.Contains(l, " activity="+activity+" ") &&
				strings.Contains(l, " instance="+prefix) {
				k++
			}
		}
	}
	return k
}

// awaitExecuted waits until at least k executions of activity for prefix-ids
// were logged across the nodes.
func awaitExecuted(t *testing.T, timeout time.Duration, nodes []*node, activity, prefix string, k int) {
	t.Helper()
	await(t, timeout, fmt.Sprintf("%d executions of %s for %s*", k, activity, prefix), func() string {
		if got := countExecuted(nodes, activity, prefix); got < k {
			return fmt.Sprintf("%d so far", got)
		}
		return ""
	})
}

// listAll pages through GET /api/v1/instances on n and returns every summary.
func listAll(n *node, pageSize int) ([]summary, error) {
	var all []summary
	q := url.Values{"pageSize": {strconv.Itoa(pageSize)}}
	for range 10_000 {
		page, err := getJSON[struct {
			Instances     []summary `json:"instances"`
			NextPageToken string    `json:"nextPageToken"`
		}](n, "/api/v1/instances?"+q.Encode())
		if err != nil {
			return all, err
		}
		all = append(all, page.Instances...)
		if page.NextPageToken == "" {
			return all, nil
		}
		q.Set("pageToken", page.NextPageToken)
	}
	return all, errors.New("listing: too many pages")
}

type summary struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// listingProblems compares a listing with the jobs: each job exactly once,
// COMPLETED, under its workflow name, and nothing else.
func listingProblems(via string, got []summary, jobs []job) []string {
	var out []string
	want := map[string]job{}
	for _, j := range jobs {
		want[j.ID] = j
	}
	seen := map[string]int{}
	for _, s := range got {
		seen[s.ID]++
		j, ok := want[s.ID]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("listing via %s: unexpected instance %+v", via, s))
		case seen[s.ID] == 2:
			out = append(out, fmt.Sprintf("listing via %s: %s listed more than once", via, s.ID))
		case s.Status != "COMPLETED" || s.Name != j.Name:
			out = append(out, fmt.Sprintf("listing via %s: %+v, want %s COMPLETED", via, s, j.Name))
		}
	}
	for _, j := range jobs {
		if seen[j.ID] == 0 {
			out = append(out, fmt.Sprintf("listing via %s: %s missing", via, j.ID))
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("... and %d more", len(out)-20))
	}
	return out
}

// --- CLI ---------------------------------------------------------------------

type cliResult struct {
	Code           int
	Stdout, Stderr string
	args           []string
}

func (r cliResult) String() string {
	return fmt.Sprintf("weft %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.Code, r.Stdout, r.Stderr)
}

// runCLI runs the weft binary as a client and fails unless it exits with code.
func runCLI(t *testing.T, code int, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{Stdout: stdout.String(), Stderr: stderr.String(), args: args}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("weft %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if res.Code != code {
		t.Fatalf("%s\nwant exit %d", res, code)
	}
	return res
}

// checkNothingRanTwice: no activity whose completion was recorded before the
// kill ran again after it: activity log lines (of all nodes, restarted
// processes included) stamped at or after the kill, for tasks already
// completed in snapshot (the histories of jobs[:len(snapshot)] read just before
// the kill). It fails the test if no activity ran after the kill at all.
func checkNothingRanTwice(t *testing.T, nodes []*node, killAt time.Time, jobs []job, snapshot []historyDoc, owner map[string]string) {
	t.Helper()
	type key struct {
		instance string
		task     int64
	}
	after := map[key][]execution{}
	executedBefore := map[key]bool{}
	afterCount := 0
	for _, n := range nodes {
		for _, e := range n.executions() {
			if e.Time.IsZero() {
				t.Fatalf("node %s: an \"activity executed\" line without a time", n.ID)
			}
			k := key{e.Instance, e.Task}
			if e.Time.Before(killAt) {
				executedBefore[k] = true
				continue
			}
			after[k] = append(after[k], e)
			afterCount++
		}
	}
	recorded, reran := 0, 0
	for i, h := range snapshot { // jobs[i] for the instances started before the kill
		j := jobs[i]
		for task := range h.completedTasks() {
			recorded++
			if es := after[key{j.ID, task}]; len(es) > 0 {
				t.Errorf("task %d of %s (owned by %s) was recorded as completed before the kill, yet ran again after it: %+v",
					task, j.ID, owner[j.ID], es)
			}
		}
	}
	for k := range after {
		if executedBefore[k] {
			reran++ // in flight at the kill: allowed
		}
	}
	t.Logf("%d task completions recorded before the kill; %d executions after it, %d of them of tasks that had run before (in flight at the kill)",
		recorded, afterCount, reran)
	if afterCount == 0 {
		t.Errorf("no activity ran after the kill: the kill was not in the middle of the load")
	}
}

// debugUnfinished logs, when WEFT_TEST_DEBUG is set, every line of every node
// that names an instance of jobs that has not finished: what a stuck workflow
// did last.
func debugUnfinished(t *testing.T, jobs []job, nodes []*node) {
	t.Helper()
	if os.Getenv("WEFT_TEST_DEBUG") == "" {
		return
	}
	for _, j := range jobs {
		st, err := waitFinished(j.ID, nodes, time.Now().Add(2*time.Second))
		if err == nil && (st.Status == "COMPLETED" || st.Status == "FAILED" || st.Status == "TERMINATED") {
			continue
		}
		if h, err := history(nodes[0], j.ID); err == nil {
			t.Logf("%s: history %s", j.ID, h.summary())
		}
		for _, n := range nodes {
			for _, l := range n.allLines() {
				if strings.Contains(l, j.ID+" ") || strings.Contains(l, j.ID+"\"") {
					t.Logf("%s: %s", n.ID, l)
				}
			}
		}
	}
}

// loadOnOwners makes fan-outs (items items, 2 at a time, 100 ms each) and
// chains whose Step2 fails once and retries after 2 s, in partitions each node
// owns in tb: fans[node] fan-outs (ids prefix-fan-K) and chains[node] chains
// (prefix-chain-K, values from chainBase). It returns the jobs and each job's owner.
func loadOnOwners(tb table, nodes []*node, prefix string, fans, chains map[string]int, items, chainBase int) ([]job, map[string]string) {
	fanIDs := tb.idsOwnedBy(prefix+"-fan", fans)
	chainIDs := tb.idsOwnedBy(prefix+"-chain", chains)
	var jobs []job
	owner := map[string]string{}
	for _, n := range nodes {
		for _, id := range fanIDs[n.ID] {
			jobs = append(jobs, fanOutJob(id, items, 2, 100))
			owner[id] = n.ID
		}
		for i, id := range chainIDs[n.ID] {
			jobs = append(jobs, chainJob(id, chainBase+i, "Step2", 1, 2))
			owner[id] = n.ID
		}
	}
	return jobs, owner
}

// histories reads every job's history, job i through via[i%len(via)], and
// fails the test if one cannot be read.
func histories(t *testing.T, jobs []job, via []*node, when string) []historyDoc {
	t.Helper()
	out := make([]historyDoc, len(jobs))
	if errs := parallel(len(jobs), 8, func(i int) error {
		h, err := history(via[i%len(via)], jobs[i].ID)
		out[i] = h
		return err
	}); len(errs) > 0 {
		t.Fatalf("histories %s: %v", when, errs)
	}
	return out
}

// stuckGoroutines picks, from a goroutine dump, the goroutines whose header
// says they have been blocked for minutes ("goroutine 7 [sync.Mutex.Lock, 2
// minutes]:") and those in the replication, cluster and storage code, or in
// pebble's flushes, compactions and write stalls, whatever their state (the
// one holding a lock the others wait for may be running), each as
// its lines without the frame addresses, at most max of them.
func stuckGoroutines(dump []string, max int) [][]string {
	var out [][]string
	var cur []string
	flush := func() {
		ours := slices.ContainsFunc(cur, func(l string) bool {
			return strings.Contains(l, "weftrt/weft/replication.") || strings.Contains(l, "weftrt/weft/cluster.") ||
				strings.Contains(l, "weftrt/weft/storage.") || strings.Contains(l, "pebble/v2.(*DB).flush") ||
				strings.Contains(l, "pebble/v2.(*DB).compact") || strings.Contains(l, "pebble/v2.(*DB).makeRoomForWrite")
		})
		if len(cur) > 0 && (strings.Contains(cur[0], " minutes]:") || ours) && len(out) < max {
			for k, l := range cur {
				if at := strings.Index(l, " fp=0x"); at >= 0 {
					cur[k] = l[:at] // the file and line stay, the frame's addresses go
				}
			}
			out = append(out, cur)
		}
		cur = nil
	}
	for _, l := range dump {
		if strings.HasPrefix(l, "goroutine ") {
			flush()
		}
		if cur != nil || strings.HasPrefix(l, "goroutine ") {
			cur = append(cur, l)
		}
	}
	flush()
	return out
}
