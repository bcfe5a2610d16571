// Command versioning changes a workflow's code under a running instance, the
// way a deploy does, and checks the change before it goes out:
//
//  1. The deployed code of OrderWorkflow reserves stock, charges the card and
//     waits for the "shipped" event. order-1 starts and waits.
//
//  2. Before the next deploy, `replay` checks two candidate changes against
//     order-1's history: a fraud check before the charge, added under
//     ctx.IsPatched, passes; the same step added in place (no patch) would
//     diverge, and is caught.
//
//  3. The patched code is deployed (the runtime reopened on the same data).
//     order-2 starts on it and takes the patched branch; order-1, which had
//     already passed that point, keeps to the old one. Both complete.
//
//     go run ./examples/versioning
//
// Everything happens in one process over one temporary data directory; in
// production the steps are two deploys of your program, and step 2 is
// `yourprogram replay --server URL` (replay.Main) in the pipeline between them.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/replay"
	"github.com/weftrt/weft/workflow"
)

// deployed is OrderWorkflow as it runs today.
func deployed(ctx *workflow.Context, order string) (string, error) {
	if err := ctx.CallActivity("Reserve", order).Await(nil); err != nil {
		return "", err
	}
	if err := ctx.CallActivity("Charge", order).Await(nil); err != nil {
		return "", err
	}
	var tracking string
	err := ctx.WaitForExternalEvent("shipped", 0).Await(&tracking)
	return order + " shipped as " + tracking, err
}

// patched adds a fraud check before the charge, under a patch: instances that
// already charged keep going without it.
func patched(ctx *workflow.Context, order string) (string, error) {
	if err := ctx.CallActivity("Reserve", order).Await(nil); err != nil {
		return "", err
	}
	checked := "not fraud-checked (started before the patch)"
	if ctx.IsPatched("fraud-check") {
		if err := ctx.CallActivity("FraudCheck", order).Await(&checked); err != nil {
			return "", err
		}
	}
	if err := ctx.CallActivity("Charge", order).Await(nil); err != nil {
		return "", err
	}
	var tracking string
	err := ctx.WaitForExternalEvent("shipped", 0).Await(&tracking)
	return order + " shipped as " + tracking + ", " + checked, err
}

// inPlace adds the same check without a patch: the replay check must catch it.
func inPlace(ctx *workflow.Context, order string) (string, error) {
	if err := ctx.CallActivity("Reserve", order).Await(nil); err != nil {
		return "", err
	}
	var checked string
	if err := ctx.CallActivity("FraudCheck", order).Await(&checked); err != nil {
		return "", err
	}
	if err := ctx.CallActivity("Charge", order).Await(nil); err != nil {
		return "", err
	}
	var tracking string
	err := ctx.WaitForExternalEvent("shipped", 0).Await(&tracking)
	return order + " shipped as " + tracking + ", " + checked, err
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "versioning:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "weft-versioning-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	fmt.Println("1. deployed code: order-1 starts and waits for \"shipped\"")
	rt, err := open(dir, deployed)
	if err != nil {
		return err
	}
	if _, err := rt.Schedule(ctx, "OrderWorkflow", "order-1", weft.WithInstanceID("order-1")); err != nil {
		return err
	}
	if err := awaitSteps(ctx, rt, "order-1", "Charge"); err != nil {
		return err
	}
	if err := rt.Close(); err != nil {
		return err
	}

	fmt.Println("2. checking the candidate changes against the running instances")
	for _, c := range []struct {
		name string
		fn   func(*workflow.Context, string) (string, error)
	}{{"fraud check under a patch", patched}, {"fraud check in place", inPlace}} {
		reg := workflow.NewRegistry()
		if err := workflow.RegisterWorkflow(reg, c.fn, workflow.WithName("OrderWorkflow")); err != nil {
			return err
		}
		src, closeData, err := replay.FromData(dir)
		if err != nil {
			return err
		}
		results, err := replay.Check(ctx, reg, src, replay.Options{})
		closeData()
		if err != nil {
			return err
		}
		for _, r := range results {
			fmt.Printf("   %-27s %s\n", c.name+":", r)
		}
	}

	fmt.Println("3. the patched code is deployed: order-2 starts on it; both get \"shipped\"")
	rt, err = open(dir, patched)
	if err != nil {
		return err
	}
	defer rt.Close()
	if _, err := rt.Schedule(ctx, "OrderWorkflow", "order-2", weft.WithInstanceID("order-2")); err != nil {
		return err
	}
	if err := awaitSteps(ctx, rt, "order-2", "Charge"); err != nil {
		return err
	}
	for i, id := range []string{"order-1", "order-2"} {
		if err := rt.RaiseEvent(ctx, id, "shipped", fmt.Sprintf("TRACK-%d", i+1)); err != nil {
			return err
		}
	}
	for _, id := range []string{"order-1", "order-2"} {
		st, err := rt.WaitForCompletion(ctx, id)
		if err != nil {
			return err
		}
		fmt.Printf("   %s %s: %s\n", id, st.Status, st.Output)
	}
	return nil
}

// open opens the runtime over dir with OrderWorkflow's code fn.
func open(dir string, fn func(*workflow.Context, string) (string, error)) (*weft.Runtime, error) {
	rt, err := weft.Open(weft.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	step := func(name string) func(context.Context, string) (string, error) {
		return func(_ context.Context, order string) (string, error) { return name + " for " + order, nil }
	}
	err = errors.Join(
		weft.RegisterWorkflow(rt, fn, workflow.WithName("OrderWorkflow")),
		weft.RegisterActivity(rt, step("reserved"), workflow.WithName("Reserve")),
		weft.RegisterActivity(rt, step("charged"), workflow.WithName("Charge")),
		weft.RegisterActivity(rt, step("fraud-checked"), workflow.WithName("FraudCheck")),
	)
	if err == nil {
		err = rt.Start(context.Background())
	}
	if err != nil {
		_ = rt.Close()
		return nil, err
	}
	return rt, nil
}

// awaitSteps waits until instance id has completed activity name.
func awaitSteps(ctx context.Context, rt *weft.Runtime, id, name string) error {
	for {
		h, err := rt.History(ctx, id)
		if err != nil {
			return err
		}
		task := int64(-1)
		for _, ev := range h {
			switch {
			case ev.Kind == workflow.ActivityScheduled && ev.Name == name:
				task = ev.TaskID
			case ev.Kind == workflow.ActivityCompleted && ev.TaskID == task:
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never completed %s", id, name)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
