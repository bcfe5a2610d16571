package weft

import (
	"context"
	"testing"
	"time"

	"github.com/weftrt/weft/workflow"
)

func TestSmokeChain(t *testing.T) {
	rt, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	_ = RegisterActivity(rt, func(ctx context.Context, n int) (int, error) { return n + 1, nil }, workflow.WithName("Inc"))
	_ = RegisterWorkflow(rt, func(ctx *workflow.Context, n int) (int, error) {
		for range 5 {
			if err := ctx.CallActivity("Inc", n).Await(&n); err != nil {
				return 0, err
			}
		}
		return n, nil
	}, workflow.WithName("Chain"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := rt.Schedule(ctx, "Chain", 1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := rt.WaitForCompletion(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusCompleted || string(st.Output) != "6" {
		t.Fatalf("status %+v", st)
	}
}
