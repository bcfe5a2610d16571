package weft_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/workflow"
)

// Runtime.Waits: a sleeping instance waits on its timer, due when it was set
// for; one waiting for an event without a timeout waits on that event; once
// finished it waits on nothing; an unknown id is ErrInstanceNotFound.
func TestWaits(t *testing.T) {
	a := newApp(t, "", weft.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := a.rt.Schedule(ctx, "Sleeper", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var waits []workflow.Wait
	waitUntil(t, ctx, "the instance to wait on its timer", func() bool {
		waits, err = a.rt.Waits(ctx, id)
		return err == nil && len(waits) > 0
	})
	if w := waits[0]; len(waits) != 1 || w.Kind != workflow.WaitTimer || w.FireAt == nil || w.FireAt.Sub(w.Since) != time.Hour {
		t.Fatalf("waits %+v; want one timer due an hour after it was created", waits)
	}

	// A wait for an event without a timeout leaves nothing in history: it is
	// found by replaying the instance's history against the code.
	waiter, err := a.rt.Schedule(ctx, "Waiter", "go")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.WaitForStart(ctx, waiter); err != nil {
		t.Fatal(err)
	}
	waits, err = a.rt.Waits(ctx, waiter)
	if err != nil {
		t.Fatal(err)
	}
	if len(waits) != 1 || waits[0].Kind != workflow.WaitEvent || waits[0].TaskID != -1 || waits[0].Name != "go" || waits[0].Since.IsZero() {
		t.Fatalf("waits %+v; want one for event go, without a task", waits)
	}
	if err := a.rt.RaiseEvent(ctx, waiter, "go", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.WaitForCompletion(ctx, waiter); err != nil {
		t.Fatal(err)
	}
	if waits, err := a.rt.Waits(ctx, waiter); err != nil || len(waits) != 0 {
		t.Fatalf("after the event came: %+v (err %v); want nothing", waits, err)
	}

	if err := a.rt.Terminate(ctx, id, weft.TerminateOptions{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.WaitForCompletion(ctx, id); err != nil {
		t.Fatal(err)
	}
	if waits, err := a.rt.Waits(ctx, id); err != nil || len(waits) != 0 {
		t.Fatalf("a terminated instance waits on %+v (err %v); want nothing", waits, err)
	}
	if _, err := a.rt.Waits(ctx, "no-such-instance"); !errors.Is(err, weft.ErrInstanceNotFound) {
		t.Fatalf("an unknown id: %v, want ErrInstanceNotFound", err)
	}
}
