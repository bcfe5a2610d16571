// Package versioning deploys a program that embeds weft (./app) in turn with
// three states of its code over one data directory, as a rolling deploy and a
// rollback do, and checks each change with the program's replay subcommand.
package versioning

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftrt/weft/api"
)

var appBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weft-versioning-")
	if err != nil {
		panic(err)
	}
	appBin = filepath.Join(dir, "app")
	if out, err := exec.Command("go", "build", "-o", appBin, "./app").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// deploy runs the app with code over dir until stop is called.
func deploy(t *testing.T, code, dir string) (c *api.Client, stop func()) {
	t.Helper()
	cmd := exec.Command(appBin, "-code", code, "-data", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "serving ")
	if err != nil || !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("app -code %s did not serve: %v\n%s", code, err, &stderr)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("app -code %s exited: %v\n%s", code, err, &stderr)
		}
	}
	t.Cleanup(stop)
	return api.NewClient(url, "", false), stop
}

// replayCheck runs the app's replay subcommand and returns its exit status
// and report.
func replayCheck(t *testing.T, code string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(appBin, append([]string{"-code", code, "replay"}, args...)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	case err != nil:
		t.Fatal(err)
	}
	return 0, string(out)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// awaitStatus polls id's status until it is want.
func awaitStatus(t *testing.T, c *api.Client, id, want string) *api.Status {
	t.Helper()
	ctx := ctxT(t)
	for {
		st, err := c.Status(ctx, id)
		if err == nil && st.Status == want {
			return st
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never %s: %+v %v", id, want, st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// awaitWaiting polls until id's history has n events (it waits for "go").
func awaitEvents(t *testing.T, c *api.Client, id string, n int) {
	t.Helper()
	ctx := ctxT(t)
	for {
		h, err := c.History(ctx, id)
		if err == nil && len(h.Events) >= n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never reached %d events: %v %v", id, n, h, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start(t *testing.T, c *api.Client, id string) {
	t.Helper()
	if _, err := c.Start(ctxT(t), api.StartRequest{Name: "Order", InstanceID: id, Input: json.RawMessage(`"` + id + `"`)}); err != nil {
		t.Fatal(err)
	}
}

// TestRollingDeploy: v1 → v2 → v1 again (a node not yet upgraded, or a
// rollback) → v2, with the replay check before each change.
func TestRollingDeploy(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)

	c, stop := deploy(t, "v1", dir)
	start(t, c, "o1")
	awaitEvents(t, c, "o1", 3) // started, Reserve scheduled and completed: waits for "go"
	if st := awaitStatus(t, c, "o1", "RUNNING"); st.Version != "v1" {
		t.Fatalf("o1 runs version %q, want v1", st.Version)
	}
	stop()

	// The checks before the next deploy: v2 keeps v1, so o1 is fine; v1
	// changed in place would fail it.
	if code, out := replayCheck(t, "v2", "--data", dir); code != 0 || !strings.Contains(out, "1 checked: 1 ok") {
		t.Fatalf("replay with v2: exit %d\n%s", code, out)
	}
	if code, out := replayCheck(t, "renamed", "--data", dir); code != 1 ||
		!strings.Contains(out, `at event 1 (task 0): history has activity-scheduled "Reserve", the code made activity-scheduled "Hold"`) {
		t.Fatalf("replay with the in-place change: exit %d, want 1 naming the event\n%s", code, out)
	}

	c, stop = deploy(t, "v2", dir)
	start(t, c, "o2")
	awaitEvents(t, c, "o2", 5) // Reserve and Audit done: waits for "go"
	if st := awaitStatus(t, c, "o2", "RUNNING"); st.Version != "v2" {
		t.Fatalf("o2 runs version %q, want the new default v2", st.Version)
	}
	stop()

	// Back on v1 (a rollback, or a node not yet upgraded): o1 goes on; o2,
	// started on v2, stalls and keeps the event it gets meanwhile.
	if code, out := replayCheck(t, "v1", "--data", dir, "--json"); code != 0 ||
		!strings.Contains(out, `"verdict": "stall"`) || !strings.Contains(out, `"reason": "VERSION_NOT_AVAILABLE"`) {
		t.Fatalf("replay with v1: exit %d, want 0 with o2 stalling\n%s", code, out)
	}
	c, stop = deploy(t, "v1", dir)
	for _, id := range []string{"o1", "o2"} {
		if err := c.Raise(ctx, id, "go", json.RawMessage(`"now"`)); err != nil {
			t.Fatal(err)
		}
	}
	if st, done, err := c.Wait(ctx, "o1", 30*time.Second); err != nil || !done || st.Status != "COMPLETED" || string(st.Output) != `"v1 now"` {
		t.Fatalf("o1 on v1: %+v %v %v", st, done, err)
	}
	st := awaitStatus(t, c, "o2", "STALLED")
	if st.Stall == nil || st.Stall.Reason != "VERSION_NOT_AVAILABLE" || !strings.Contains(st.Stall.Description, `version "v2"`) {
		t.Fatalf("o2 on v1: %+v, want STALLED for want of v2", st)
	}
	if code, out := replayCheck(t, "v1", "--server", c.Base); code != 0 || !strings.Contains(out, "VERSION_NOT_AVAILABLE") {
		t.Fatalf("replay against the live server: exit %d\n%s", code, out)
	}
	stop()

	c, _ = deploy(t, "v2", dir)
	if st, done, err := c.Wait(ctx, "o2", 30*time.Second); err != nil || !done || st.Status != "COMPLETED" || string(st.Output) != `"v2 now"` || st.Stall != nil {
		t.Fatalf("o2 back on v2: %+v %v %v, want COMPLETED with the event it held", st, done, err)
	}
}
