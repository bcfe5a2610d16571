package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/replay"
	"github.com/weftrt/weft/workflow"
)

// The code as deployed: Order runs A, waits for "go", runs B; Report (version
// v1) runs A and waits for "go".

func orderDeployed(ctx *workflow.Context, _ any) (string, error) {
	if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
		return "", err
	}
	if err := ctx.WaitForExternalEvent("go", 0).Await(nil); err != nil {
		return "", err
	}
	return "done", ctx.CallActivity("B", nil).Await(nil)
}

func reportV1(ctx *workflow.Context, _ any) (string, error) {
	if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
		return "", err
	}
	return "v1", ctx.WaitForExternalEvent("go", 0).Await(nil)
}

// The candidates for the next deploy.

// orderPatched adds C under a patch: compatible.
func orderPatched(ctx *workflow.Context, _ any) (string, error) {
	if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
		return "", err
	}
	if ctx.IsPatched("add-c") {
		if err := ctx.CallActivity("C", nil).Await(nil); err != nil {
			return "", err
		}
	}
	if err := ctx.WaitForExternalEvent("go", 0).Await(nil); err != nil {
		return "", err
	}
	return "done", ctx.CallActivity("B", nil).Await(nil)
}

// orderRenamed renames the first step without a patch: divergent.
func orderRenamed(ctx *workflow.Context, _ any) (string, error) {
	if err := ctx.CallActivity("A2", nil).Await(nil); err != nil {
		return "", err
	}
	return "done", ctx.WaitForExternalEvent("go", 0).Await(nil)
}

// orderPanics fails on replay: a bug.
func orderPanics(ctx *workflow.Context, _ any) (string, error) {
	if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
		return "", err
	}
	panic("nil map")
}

func reportV2(ctx *workflow.Context, _ any) (string, error) { return "v2", nil }

func registry(t *testing.T, order func(*workflow.Context, any) (string, error), reportVersions ...string) *workflow.Registry {
	t.Helper()
	reg := workflow.NewRegistry()
	errs := []error{workflow.RegisterWorkflow(reg, order, workflow.WithName("Order"))}
	for _, v := range reportVersions {
		fn := reportV1
		if v == "v2" {
			fn = reportV2
		}
		errs = append(errs, workflow.RegisterWorkflow(reg, fn, workflow.WithName("Report"), workflow.WithVersion(v)))
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return reg
}

// deployed runs the deployed code over dir: o-1 and r-1 wait for "go",
// o-done has finished; it returns the runtime and its HTTP API.
func deployed(t *testing.T, dir string) (*weft.Runtime, *httptest.Server) {
	t.Helper()
	rt, err := weft.Open(weft.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	noop := func(context.Context, any) (any, error) { return nil, nil }
	if err := errors.Join(
		weft.RegisterWorkflow(rt, orderDeployed, workflow.WithName("Order")),
		weft.RegisterWorkflow(rt, reportV1, workflow.WithName("Report"), workflow.WithVersion("v1")),
		weft.RegisterActivity(rt, noop, workflow.WithName("A")),
		weft.RegisterActivity(rt, noop, workflow.WithName("B")),
	); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for id, name := range map[string]string{"o-1": "Order", "r-1": "Report", "o-done": "Order"} {
		if _, err := rt.Schedule(ctx, name, nil, weft.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"o-1", "r-1", "o-done"} {
		for { // waiting for "go": A completed, nothing more recorded
			h, err := rt.History(ctx, id)
			if err == nil && len(h) == 3 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s never reached its wait: %v %v", id, h, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if err := rt.RaiseEvent(ctx, "o-done", "go", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.WaitForCompletion(ctx, "o-done"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(rt, api.Options{}))
	t.Cleanup(srv.Close)
	return rt, srv
}

type verdicts map[string]string // instance → "verdict" or "verdict detail"

func verdictsOf(results []replay.Result) verdicts {
	out := verdicts{}
	for _, r := range results {
		v := string(r.Verdict)
		switch r.Verdict {
		case replay.Diverge:
			v += " " + r.Recorded + " → " + r.Replayed
		case replay.Stall:
			v += " " + r.Reason
		}
		out[r.InstanceID] = v
	}
	return out
}

var cases = []struct {
	name     string
	order    func(*workflow.Context, any) (string, error)
	reports  []string
	finished time.Duration
	want     verdicts
	exit     int
}{
	{"compatible", orderPatched, []string{"v1", "v2"}, 0, verdicts{"o-1": "ok", "r-1": "ok"}, 0},
	{"with finished ones", orderPatched, []string{"v1"}, time.Hour, verdicts{"o-1": "ok", "r-1": "ok", "o-done": "ok"}, 0},
	{"divergent", orderRenamed, []string{"v1"}, 0, verdicts{"o-1": `diverge activity-scheduled "A" → activity-scheduled "A2"`, "r-1": "ok"}, 1},
	{"version missing", orderDeployed, []string{"v2"}, 0, verdicts{"o-1": "ok", "r-1": "stall VERSION_NOT_AVAILABLE"}, 0},
	{"panics", orderPanics, []string{"v1"}, 0, verdicts{"o-1": "fail", "r-1": "ok"}, 1},
}

// TestCheckAgainstAServerAndItsData: the same verdicts through a live
// server's API and from its data directory once it stopped, with the exit
// status `replay` gives; the instances are untouched.
func TestCheckAgainstAServerAndItsData(t *testing.T) {
	dir := t.TempDir()
	rt, srv := deployed(t, dir)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run("server/"+tc.name, func(t *testing.T) {
			reg := registry(t, tc.order, tc.reports...)
			res, err := replay.Check(ctx, reg, replay.FromServer(api.NewClient(srv.URL, "", false)), replay.Options{Finished: tc.finished})
			if err != nil {
				t.Fatal(err)
			}
			if got := verdictsOf(res); !equal(got, tc.want) {
				t.Fatalf("verdicts %v, want %v", got, tc.want)
			}
			args := []string{"--server", srv.URL, "--json"}
			if tc.finished > 0 {
				args = append(args, "--finished", tc.finished.String())
			}
			code, out, errOut := run(reg, args...)
			if code != tc.exit {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.exit, out, errOut)
			}
			var report struct {
				Results []replay.Result        `json:"results"`
				Summary map[replay.Verdict]int `json:"summary"`
			}
			if err := json.Unmarshal([]byte(out), &report); err != nil || !equal(verdictsOf(report.Results), tc.want) {
				t.Fatalf("--json: %v\n%s", err, out)
			}
		})
	}
	// Nothing was run or written: the waiting instances are as they were.
	for _, id := range []string{"o-1", "r-1"} {
		if h, err := rt.History(ctx, id); err != nil || len(h) != 3 {
			t.Fatalf("%s after the checks: %d events, %v; want the 3 it had", id, len(h), err)
		}
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run("data/"+tc.name, func(t *testing.T) {
			reg := registry(t, tc.order, tc.reports...)
			args := []string{"--data", dir}
			if tc.finished > 0 {
				args = append(args, "--finished", tc.finished.String())
			}
			code, out, errOut := run(reg, args...)
			if code != tc.exit {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.exit, out, errOut)
			}
			for id, v := range tc.want {
				if !strings.Contains(out, id) || !strings.Contains(out, strings.Fields(v)[0]) {
					t.Errorf("the table does not give %s %s:\n%s", id, v, out)
				}
			}
		})
	}
}

// TestFile: a history exported as `weft history ID --json` writes it replays
// in a unit test with the same verdicts, and names where it diverges.
func TestFile(t *testing.T) {
	_, srv := deployed(t, t.TempDir())
	resp, err := http.Get(srv.URL + "/api/v1/instances/o-1/history")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	path := filepath.Join(t.TempDir(), "o-1.json")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	// o-1 recorded nothing after A (it waits): the patch point is new ground
	// for it, so the patched code takes the patch there.
	ok, err := replay.File(registry(t, orderPatched, "v1"), path)
	if err != nil || ok.Verdict != replay.OK || !ok.Patches["add-c"] {
		t.Fatalf("patched code: %+v %v, want ok with add-c patched", ok, err)
	}
	bad, err := replay.File(registry(t, orderRenamed, "v1"), path)
	if err != nil || bad.Verdict != replay.Diverge || bad.Event != 1 || bad.TaskID != 0 ||
		!strings.Contains(bad.String(), `would diverge at event 1: history has activity-scheduled "A", the code made activity-scheduled "A2"`) {
		t.Fatalf("renamed step: %+v %v", bad, err)
	}
	if _, _, err := replay.ReadHistoryJSON(bytes.NewReader([]byte(`{"id":"x","events":[{"kind":"activity-scheduled"}]}`))); err == nil {
		t.Error("a history without its start: accepted")
	}
	if _, _, err := replay.ReadHistoryJSON(bytes.NewReader([]byte(`{"id":"x","events":[{"kind":"no-such-kind"}]}`))); err == nil {
		t.Error("an unknown event kind: accepted")
	}
}

func TestMainUsage(t *testing.T) {
	reg := registry(t, orderDeployed, "v1")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--workflow", "Nope"}, 2, `workflow "Nope" is not registered`},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"--data", filepath.Join(t.TempDir(), "none")}, 2, "no weft store there"},
		{[]string{"--server", "http://127.0.0.1:1"}, 2, "list instances"},
	} {
		code, _, errOut := run(reg, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d %q, want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

func run(reg *workflow.Registry, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := replay.Main(reg, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func equal(a, b verdicts) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
