package weft_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// testdata/store-v1 was written by weft before rows carried their history and
// reminders (record version 1, pebble's default key comparer): "sleep" waits on
// a 2 s timer, "retry" on the retry of a failed activity attempt, "wait" for an
// event. These workflows are the ones that wrote it.

// legacySleep sleeps d on a durable timer.
func legacySleep(ctx *workflow.Context, d time.Duration) (string, error) {
	if err := ctx.CreateTimer(d).Await(nil); err != nil {
		return "", err
	}
	return "woke", nil
}

// legacyRetry calls LegacyFlaky with retries a few seconds apart.
func legacyRetry(ctx *workflow.Context, n int) (int, error) {
	var v int
	err := ctx.CallActivity("LegacyFlaky", n, workflow.WithRetryPolicy(&workflow.RetryPolicy{
		MaxAttempts: 5, FirstRetryInterval: 3 * time.Second, BackoffCoefficient: 1})).Await(&v)
	return v, err
}

// legacyWait calls LegacyStep, then waits for the event "go" (a century at most: the
// timeout is a stored reminder that must never come due while the test runs).
func legacyWait(ctx *workflow.Context, n int) (string, error) {
	var v int
	if err := ctx.CallActivity("LegacyStep", n).Await(&v); err != nil {
		return "", err
	}
	var s string
	if err := ctx.WaitForExternalEvent("go", 100*365*24*time.Hour).Await(&s); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %s", v, s), nil
}

// TestStoreOfVersion1Opens: a store written by that version opens, its
// instances go on where they were (their timers and retries are long due) and
// finish, and each is rewritten in the current layout: no reverse reminder
// entry is left.
func TestStoreOfVersion1Opens(t *testing.T) {
	dir := t.TempDir()
	files, err := os.ReadDir("testdata/store-v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata/store-v1", f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rt, err := weft.Open(weft.Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(weft.RegisterWorkflow(rt, legacySleep, workflow.WithName("LegacySleep")))
	must(weft.RegisterWorkflow(rt, legacyRetry, workflow.WithName("LegacyRetry")))
	must(weft.RegisterWorkflow(rt, legacyWait, workflow.WithName("LegacyWait")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, n int) (int, error) { return 10 * n, nil }, workflow.WithName("LegacyFlaky")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, n int) (int, error) { return n + 1, nil }, workflow.WithName("LegacyStep")))
	must(rt.Start(context.Background()))
	ctx := ctxT(t)
	must(rt.RaiseEvent(ctx, "wait", "go", "now"))
	for id, want := range map[string]string{"sleep": `"woke"`, "retry": "50", "wait": `"8 now"`} {
		st, err := rt.WaitForCompletion(ctx, id)
		if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != want {
			t.Fatalf("%s: %+v %v; want COMPLETED %s", id, st, err, want)
		}
		h, err := rt.History(ctx, id)
		must(err)
		if len(h) < 3 || h[0].Kind != workflow.WorkflowStarted || h[len(h)-1].Kind != workflow.WorkflowCompleted {
			t.Fatalf("%s: history %v", id, h)
		}
	}
	db := rt.Host().DB()
	for _, id := range []string{"sleep", "retry", "wait"} {
		p := rt.Host().Partition(id)
		st, err := db.LoadInstance(p, id)
		must(err)
		if st.Legacy || len(st.Reminders) != 0 {
			t.Errorf("%s: still of version 1 (%v) or with reminders %+v", id, st.Legacy, st.Reminders)
		}
		must(db.ScanPartition(p, 1<<20, func(kvs []storage.KV) error {
			for _, kv := range kvs {
				if bytes.Contains(kv.K, []byte("/i/"+id+"/rm/")) || bytes.Contains(kv.K, []byte("/r/")) && bytes.Contains(kv.K, []byte("/"+id+"/")) {
					return fmt.Errorf("%s: key %q left", id, kv.K)
				}
			}
			return nil
		}))
	}
}
