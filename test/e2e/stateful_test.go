package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft/api/durabletask/protos"
)

// TestStatefulWorkerKilledMidChain: workers with stateful history
// (./statefulworker, which checks every history it rebuilds from its cache and
// the events sent) run chains of Add; one is SIGKILLed mid-chain, with
// activities and episodes of it in flight, and a new worker process joins the
// one left. Every chain completes with the sum of all its steps: no result
// lost, none applied twice, and the workers that take over the killed one's
// instances, holding none of their history, are sent all of it. The workers
// were sent only the new events while they held an instance's history.
func TestStatefulWorkerKilledMidChain(t *testing.T) {
	t.Parallel()
	_, addr, c := startGRPCServer(t)
	bin := buildCommand(t, "./statefulworker")
	ws := &workerLines{changed: make(chan struct{}, 1)}
	a := ws.start(t, bin, addr, "a")
	ws.start(t, bin, addr, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const chains, steps = 20, 12
	for i := range chains {
		if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Count", InstanceId: fmt.Sprintf("count-%d", i),
			Input: wrapperspb.String(strconv.Itoa(steps))}); err != nil {
			t.Fatal(err)
		}
	}
	// Kill a once it is well into the chains, but far from their end.
	ws.await(t, ctx, "worker a ran 20 activities", func() bool { return ws.count("a", "activity ") >= 20 })
	if err := a.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()
	killedAt := len(ws.snapshot())
	before := ws.count("", "activity ")
	if before >= chains*steps {
		t.Fatalf("%d activities ran before the kill: the chains were over, nothing was killed mid-chain", before)
	}
	ws.start(t, bin, addr, "c")

	for i := range chains {
		id := fmt.Sprintf("count-%d", i)
		res, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: id, GetInputsAndOutputs: true})
		if err != nil {
			t.Fatalf("%s: %v\nworkers:\n%s", id, err, ws.all())
		}
		st := res.GetWorkflowState()
		if st.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED || st.GetOutput().GetValue() != strconv.Itoa(steps) {
			t.Fatalf("%s: %v output %q failure %v, want COMPLETED with %d\nworkers:\n%s", id, st.GetWorkflowStatus(),
				st.GetOutput().GetValue(), st.GetFailureDetails(), steps, ws.all())
		}
	}
	// The stateful path ran: episodes sent to a worker holding the instance's
	// history carried only the events since; and after the kill, the workers
	// left were sent whole histories of running instances they did not hold.
	var deltas, whole int
	for i, l := range ws.snapshot() {
		who, held, sent, ok := episodeLine(l)
		switch {
		case !ok:
		case held > 0:
			deltas++
		case i >= killedAt && who != "a" && held < 0 && sent > 0:
			whole++
		}
	}
	t.Logf("%d of %d activities ran before the kill; %d episodes went as deltas, %d as whole histories to the workers left after it", before, chains*steps, deltas, whole)
	if deltas < chains {
		t.Errorf("only %d episodes were sent as a delta to a worker holding the history, want at least %d\nworkers:\n%s", deltas, chains, ws.all())
	}
	if whole == 0 {
		t.Errorf("no worker was sent a whole history of a running instance after the kill\nworkers:\n%s", ws.all())
	}
}

// episodeLine parses a worker's "NAME: episode ID held N sent M" line.
func episodeLine(l string) (who string, held, sent int, ok bool) {
	f := strings.Fields(l)
	if len(f) != 7 || f[1] != "episode" || f[3] != "held" || f[5] != "sent" {
		return "", 0, 0, false
	}
	held, err1 := strconv.Atoi(f[4])
	sent, err2 := strconv.Atoi(f[6])
	return strings.TrimSuffix(f[0], ":"), held, sent, err1 == nil && err2 == nil
}

// workerLines collects the output lines of worker processes, each prefixed
// with the worker's name.
type workerLines struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

// start runs a worker process and returns once it says its stream is open.
func (ws *workerLines) start(t *testing.T, bin, addr, name string) *exec.Cmd {
	t.Helper()
	cmd, out := startProcess(t, bin, "-server", addr, "-activity-delay", "10ms")
	connected := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "connected" {
				close(connected)
			}
			ws.mu.Lock()
			ws.lines = append(ws.lines, name+": "+sc.Text())
			ws.mu.Unlock()
			select {
			case ws.changed <- struct{}{}:
			default:
			}
		}
	}()
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatalf("worker %s never said it was connected", name)
	}
	return cmd
}

// count is the number of lines of worker name ("" for any) starting with prefix.
func (ws *workerLines) count(name, prefix string) int {
	return ws.countFunc(func(l string) bool {
		who, rest, _ := strings.Cut(l, ": ")
		return (name == "" || who == name) && strings.HasPrefix(rest, prefix)
	})
}

func (ws *workerLines) countFunc(match func(string) bool) int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	n := 0
	for _, l := range ws.lines {
		if match(l) {
			n++
		}
	}
	return n
}

func (ws *workerLines) snapshot() []string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]string(nil), ws.lines...)
}

func (ws *workerLines) all() string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.lines) > 200 {
		return strings.Join(ws.lines[len(ws.lines)-200:], "\n")
	}
	return strings.Join(ws.lines, "\n")
}

// await waits, without polling sleeps, until cond holds after some output.
func (ws *workerLines) await(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ws.changed:
		case <-ctx.Done():
			t.Fatalf("%s: never\nworkers:\n%s", what, ws.all())
		}
	}
}
