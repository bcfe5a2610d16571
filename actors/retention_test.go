package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/weftrt/weft/reminders"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

func TestParseRetention(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Retention
		wantErr bool
	}{
		{in: "", want: Retention{}},
		{in: "off", want: Retention{}},
		{in: "completed=720h", want: Retention{Completed: 720 * time.Hour}},
		{in: "any=24h", want: Retention{Completed: 24 * time.Hour, Failed: 24 * time.Hour, Terminated: 24 * time.Hour}},
		{in: "completed=1h, any=90m", want: Retention{Completed: time.Hour, Failed: 90 * time.Minute, Terminated: 90 * time.Minute}},
		{in: "Failed=2h,terminated=3h", want: Retention{Failed: 2 * time.Hour, Terminated: 3 * time.Hour}},
		{in: "anyTerminal=5m", want: Retention{Completed: 5 * time.Minute, Failed: 5 * time.Minute, Terminated: 5 * time.Minute}},
		{in: "completed", wantErr: true},
		{in: "completed=forever", wantErr: true},
		{in: "completed=-1h", wantErr: true},
		{in: "completed=0s", wantErr: true},
		{in: "running=1h", wantErr: true},
		{in: "completed=1h,completed=2h", wantErr: true},
	} {
		got, err := ParseRetention(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseRetention(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// Finished instances are purged by their reminder once their retention ran
// out, on the host's clock: a completed parent with its child (which has no
// reminder of its own), and nothing whose status the retention keeps for
// ever. weft_instances_purged_total counts them.
func TestRetentionPurgesFinishedInstances(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := reminders.NewFakeClock(t0)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Partitions: 8, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	reg := workflow.NewRegistry()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, in int) (int, error) { return in + 1, nil }, workflow.WithName("Child")))
	must(workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, in int) (int, error) {
		var out int
		err := ctx.CallChildWorkflow("Child", in, workflow.WithInstanceID(ctx.InstanceID()+"-child")).Await(&out)
		return out, err
	}, workflow.WithName("Parent")))
	must(workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, in int) (int, error) {
		return 0, errors.New("no")
	}, workflow.WithName("Fails")))
	h := NewHost(Options{DB: db, Registry: reg, Logger: quiet, Now: clock.Now,
		Reminders: reminders.Options{Clock: clock}, Retention: Retention{Completed: time.Hour}})
	must(h.Start(context.Background()))
	t.Cleanup(func() {
		h.Close()
		db.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	finished := func(r *storage.InstanceRecord) bool { return r.Status.Terminal() }
	for _, start := range []struct{ id, name string }{{"p", "Parent"}, {"f", "Fails"}} {
		must(h.Request(ctx, start.id, StartRequest{Name: start.name, Input: []byte("1")}))
		if _, err := h.WaitFor(ctx, start.id, finished); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(id string) bool {
		_, err := h.ReadInstance(id)
		if err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, ErrInstanceNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	purged := func() float64 {
		var m dto.Metric
		if err := h.metrics.purged.WithLabelValues("retention").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}

	// Nothing is due yet: for half a second of real time after the clock
	// moved (the service acts on a move within milliseconds), all is kept.
	clock.Advance(59 * time.Minute)
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for _, id := range []string{"p", "p-child", "f"} {
			if !exists(id) {
				t.Fatalf("%s was purged before its retention ran out", id)
			}
		}
	}

	clock.Advance(2 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for exists("p") || exists("p-child") {
		if time.Now().After(deadline) {
			t.Fatalf("not purged an hour after it completed: parent %v, child %v", exists("p"), exists("p-child"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !exists("f") {
		t.Fatal("a failed instance was purged: the retention keeps failed instances for ever")
	}
	if got := purged(); got != 2 {
		t.Fatalf("weft_instances_purged_total{reason=retention} = %v, want 2 (the parent and its child)", got)
	}
}
