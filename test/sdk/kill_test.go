package sdk

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/microsoft/durabletask-go/api"
	"github.com/microsoft/durabletask-go/client"
)

// TestWorkerKilledMidWorkflow runs five chains of five 200 ms activities on a
// worker process (internal/worker), SIGKILLs it once the chains are under way, and
// starts a second worker: weft must hand the work the first one held (orchestrator
// and activity work items in flight) to the second, and every chain must complete
// with its full result. Activities run at least once: a step in flight at the kill
// may run twice, none may be skipped.
func TestWorkerKilledMidWorkflow(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	steps := filepath.Join(t.TempDir(), "steps.log")
	ready := regexp.MustCompile(`^worker ready$`)
	startWorker := func(n int) *proc {
		cmd := exec.Command(workerBin, "-addr", srv.GRPCAddr, "-out", steps, "-delay", "200ms")
		cmd.Env = cleanEnv()
		p := startProc(t, fmt.Sprintf("worker %d", n), cmd)
		p.waitLine(t, 15*time.Second, ready)
		return p
	}
	readSteps := func() []string {
		b, err := os.ReadFile(steps)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if len(b) == 0 {
			return nil
		}
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") // "<instance id> <digit>"
	}

	c := client.NewTaskHubGrpcClient(dial(t, srv.GRPCAddr), newLogSink(t, "durabletask-go client"))
	first := startWorker(1)
	var ids []api.InstanceID
	for i := range 5 {
		id, err := c.ScheduleNewOrchestration(waitCtx(t), "SdkKillChain",
			api.WithInstanceID(api.InstanceID(fmt.Sprintf("kill-%d", i))), api.WithInput(1))
		if err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		ids = append(ids, id)
	}

	// About one step of each chain done (of 25): kill the worker mid-flight.
	eventually(t, 20*time.Second, "5 steps done by the first worker", func() (bool, string) {
		n := len(readSteps())
		return n >= 5, fmt.Sprintf("%d steps", n)
	})
	first.kill()
	atKill := len(readSteps())
	running := 0
	for _, id := range ids {
		md, err := c.FetchOrchestrationMetadata(waitCtx(t), id)
		if err != nil {
			t.Fatalf("GetInstance(%s): %v", id, err)
		}
		if !md.IsComplete() {
			running++
		}
	}
	if running == 0 {
		t.Fatalf("all chains finished before the worker was killed (%d steps): the test proved nothing", atKill)
	}
	t.Logf("killed the first worker after %d of 25 steps, %d of 5 chains unfinished", atKill, running)

	startWorker(2)
	for _, id := range ids {
		md, err := c.WaitForOrchestrationCompletion(waitCtx(t), id)
		if err != nil {
			now, ferr := c.FetchOrchestrationMetadata(waitCtx(t), id)
			t.Fatalf("WaitForOrchestrationCompletion(%s) after the second worker started: %v (GetInstance: %v %v)", id, err, now, ferr)
		}
		wantDone(t, md, api.RUNTIME_STATUS_COMPLETED, 123456)
	}

	ran := map[string]int{}
	for _, s := range readSteps() {
		ran[s]++
	}
	again := 0
	for _, id := range ids {
		for d := 2; d <= 6; d++ {
			n := ran[fmt.Sprintf("%s %d", id, d)]
			if n == 0 {
				t.Errorf("%s step %d never ran, yet the chain completed", id, d)
			}
			again += max(n-1, 0)
		}
	}
	t.Logf("%d step executions in all, %d of them repeats of a step that had run", len(readSteps()), again)
}
