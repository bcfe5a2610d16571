package weft_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/schedules"
	"github.com/weftrt/weft/storage"
)

// awaitSchedule reads schedule id until cond holds (or fails the test after
// timeout, showing the schedule).
func awaitSchedule(t *testing.T, rt *weft.Runtime, id string, timeout time.Duration, what string, cond func(*weft.ScheduleInfo) bool) *weft.ScheduleInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info, err := rt.GetSchedule(context.Background(), id)
		if err != nil {
			t.Fatalf("schedule %s: %v", id, err)
		}
		if cond(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s: not %s after %s: %+v", id, what, timeout, info.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runsOf(info *weft.ScheduleInfo, outcome schedules.Outcome) []string {
	var runs []string
	for _, a := range info.Recent {
		if a.Outcome == outcome {
			runs = append(runs, a.Run)
		}
	}
	return runs
}

// TestScheduleLifecycle: a schedule every second starts one run per tick,
// named by its tick, each of which completes and tells the schedule so;
// pause stops the ticks, trigger starts a run anyway, resume goes on, and
// delete removes the schedule and leaves its runs.
func TestScheduleLifecycle(t *testing.T) {
	t.Parallel()
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	info, err := a.rt.CreateSchedule(ctx, weft.Schedule{ID: "ticker", Workflow: "Sleeper", Input: []byte(`0`), Every: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != weft.StatusRunning || info.Spec.Overlap != weft.OverlapSkip || info.Next.IsZero() {
		t.Fatalf("created: %+v", info)
	}
	created := info.CreatedAt
	info = awaitSchedule(t, a.rt, "ticker", 20*time.Second, "2 runs started", func(i *weft.ScheduleInfo) bool { return i.Counts.Started >= 2 })
	for n, run := range runsOf(info, schedules.Started)[:2] {
		if want := schedules.RunID("ticker", created.Add(time.Duration(n+1)*time.Second), ""); run != want {
			t.Errorf("run %d is %s, want %s (a tick every second from the creation at %s)", n, run, want, created)
		}
		st, err := a.rt.WaitForCompletion(ctx, run)
		if err != nil || st.Status != weft.StatusCompleted {
			t.Fatalf("run %s: %+v, %v", run, st, err)
		}
	}

	info, err = a.rt.PauseSchedule(ctx, "ticker", "maintenance")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Paused || info.Note != "maintenance" || !info.Next.IsZero() {
		t.Fatalf("paused: %+v", info.State)
	}
	// Every run ends and tells the schedule: nothing is left running.
	info = awaitSchedule(t, a.rt, "ticker", 20*time.Second, "without runs", func(i *weft.ScheduleInfo) bool { return len(i.Running) == 0 })
	started := info.Counts.Started
	// A schedule keeps no received mark per run: it would keep one of each
	// run it ever started.
	if marks := receivedSenders(t, a.rt, schedules.InstanceID("ticker")); len(marks) != 0 {
		t.Errorf("the schedule keeps received marks of its runs: %v", marks)
	}

	action, err := a.rt.TriggerSchedule(ctx, "ticker")
	if err != nil {
		t.Fatal(err)
	}
	if action.Outcome != schedules.Started || !action.Manual || !strings.HasPrefix(action.Run, "ticker-") {
		t.Fatalf("trigger: %+v", action)
	}
	if st, err := a.rt.WaitForCompletion(ctx, action.Run); err != nil || st.Status != weft.StatusCompleted {
		t.Fatalf("triggered run %s: %+v, %v", action.Run, st, err)
	}
	info, err = a.rt.GetSchedule(ctx, "ticker")
	if err != nil || info.Counts.Started != started+1 {
		t.Fatalf("after a trigger while paused: %+v, %v; want %d started (no tick ran while paused)", info, err, started+1)
	}

	resumed := time.Now()
	if info, err = a.rt.ResumeSchedule(ctx, "ticker", ""); err != nil || info.Paused || info.Next.Before(resumed) {
		t.Fatalf("resumed: %+v, %v; want the next tick after %s", info, err, resumed)
	}
	awaitSchedule(t, a.rt, "ticker", 20*time.Second, "ticking again", func(i *weft.ScheduleInfo) bool { return i.Counts.Started > started+1 })

	list, err := a.rt.ListSchedules(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "ticker" {
		t.Fatalf("ListSchedules: %+v, %v", list, err)
	}
	if slices.Contains(a.rt.Registry().Workflows(), schedules.WorkflowName) {
		t.Errorf("the registry lists weft's own schedule workflow as the app's: %v", a.rt.Registry().Workflows())
	}

	if err := a.rt.DeleteSchedule(ctx, "ticker"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rt.GetSchedule(ctx, "ticker"); !errors.Is(err, weft.ErrScheduleNotFound) || !errors.Is(err, weft.ErrInstanceNotFound) {
		t.Fatalf("deleted schedule: %v", err)
	}
	if _, err := a.rt.Status(ctx, action.Run); err != nil {
		t.Errorf("a run of the deleted schedule: %v; runs stay", err)
	}
	if err := a.rt.DeleteSchedule(ctx, "ticker"); !errors.Is(err, weft.ErrScheduleNotFound) {
		t.Errorf("deleted twice: %v", err)
	}
	if _, err := a.rt.PauseSchedule(ctx, "ticker", ""); !errors.Is(err, weft.ErrScheduleNotFound) {
		t.Errorf("pause of a deleted schedule: %v", err)
	}
}

func TestCreateScheduleRefuses(t *testing.T) {
	t.Parallel()
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	if _, err := a.rt.CreateSchedule(ctx, weft.Schedule{ID: "dup", Workflow: "Sleeper", Input: []byte(`0`), Cron: "@daily"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec weft.Schedule
		want error
		text string
	}{
		{weft.Schedule{ID: "dup", Workflow: "Sleeper", Cron: "@daily"}, weft.ErrInstanceExists, `schedule "dup" already exists`},
		{weft.Schedule{ID: "ghost", Workflow: "NoSuchWorkflow", Cron: "@daily"}, weft.ErrWorkflowNotRegistered, "NoSuchWorkflow"},
		{weft.Schedule{ID: "typed", Workflow: "Sleeper", Input: []byte(`"soon"`), Cron: "@daily"}, weft.ErrInvalidInput, "Sleeper"},
		{weft.Schedule{ID: "bad", Workflow: "Sleeper", Cron: "0 25 * * *"}, weft.ErrInvalidInput, "cron expression"},
		{weft.Schedule{ID: "bad id", Workflow: "Sleeper", Every: time.Hour}, weft.ErrInvalidInput, "may only contain"},
	} {
		_, err := a.rt.CreateSchedule(ctx, tc.spec)
		if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.text) {
			t.Errorf("CreateSchedule(%+v): %v; want %v naming %q", tc.spec, err, tc.want, tc.text)
		}
	}
}

// TestScheduleOverlap: what each policy does with ticks that come while a
// run (a Waiter, waiting for its event "go") still runs.
func TestScheduleOverlap(t *testing.T) {
	t.Parallel()
	a := newApp(t, "", weft.Options{})
	for _, tc := range []struct {
		overlap schedules.Overlap
		check   func(t *testing.T, id string)
	}{
		{weft.OverlapSkip, func(t *testing.T, id string) {
			info := awaitSchedule(t, a.rt, id, 20*time.Second, "skipping", func(i *weft.ScheduleInfo) bool { return i.Counts.Skipped >= 2 })
			if info.Counts.Started != 1 || len(info.Running) != 1 {
				t.Fatalf("skip: %+v; want one run, the others skipped", info.State)
			}
			first := info.Running[0]
			release(t, a, first)
			awaitSchedule(t, a.rt, id, 20*time.Second, "starting once the run ended", func(i *weft.ScheduleInfo) bool { return i.Counts.Started == 2 })
		}},
		{weft.OverlapBufferOne, func(t *testing.T, id string) {
			info := awaitSchedule(t, a.rt, id, 20*time.Second, "buffering", func(i *weft.ScheduleInfo) bool { return i.Buffered != nil && i.Counts.Skipped >= 1 })
			if info.Counts.Started != 1 || info.Counts.Buffered != 1 {
				t.Fatalf("buffer-one: %+v; want one run, one buffered, the others skipped", info.State)
			}
			buffered := info.Buffered.Run
			release(t, a, info.Running[0])
			// The buffered run starts when the running one ends, not at a tick.
			info = awaitSchedule(t, a.rt, id, 20*time.Second, "starting the buffered run", func(i *weft.ScheduleInfo) bool { return slices.Contains(i.Running, buffered) })
			if st, err := a.rt.Status(ctxT(t), buffered); err != nil || st.Status != weft.StatusRunning {
				t.Fatalf("buffered run %s: %+v, %v", buffered, st, err)
			}
		}},
		{weft.OverlapAllowAll, func(t *testing.T, id string) {
			info := awaitSchedule(t, a.rt, id, 20*time.Second, "running 3 at once", func(i *weft.ScheduleInfo) bool { return len(i.Running) >= 3 })
			for _, run := range info.Running {
				if st, err := a.rt.Status(ctxT(t), run); err != nil || st.Status != weft.StatusRunning {
					t.Fatalf("allow-all: run %s: %+v, %v", run, st, err)
				}
			}
		}},
		{weft.OverlapTerminatePrevious, func(t *testing.T, id string) {
			info := awaitSchedule(t, a.rt, id, 20*time.Second, "2 runs started", func(i *weft.ScheduleInfo) bool { return i.Counts.Started >= 2 })
			first := runsOf(info, schedules.Started)[0]
			st, err := a.rt.WaitForCompletion(ctxT(t), first)
			if err != nil || st.Status != weft.StatusTerminated {
				t.Fatalf("terminate-previous: first run %s: %+v, %v", first, st, err)
			}
			if len(info.Running) != 1 {
				t.Errorf("terminate-previous: running %v; want the latest only", info.Running)
			}
		}},
	} {
		t.Run(string(tc.overlap), func(t *testing.T) {
			t.Parallel()
			id := "overlap-" + string(tc.overlap)
			if _, err := a.rt.CreateSchedule(ctxT(t), weft.Schedule{ID: id, Workflow: "Waiter", Input: []byte(`"go"`), Every: time.Second, Overlap: tc.overlap}); err != nil {
				t.Fatal(err)
			}
			tc.check(t, id)
			if err := a.rt.DeleteSchedule(ctxT(t), id); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func release(t *testing.T, a *app, run string) {
	t.Helper()
	if err := a.rt.RaiseEvent(ctxT(t), run, "go", nil); err != nil {
		t.Fatal(err)
	}
	if st, err := a.rt.WaitForCompletion(ctxT(t), run); err != nil || st.Status != weft.StatusCompleted {
		t.Fatalf("released run %s: %+v, %v", run, st, err)
	}
}

// TestScheduleCatchUpAfterDowntime: a schedule survives a restart; of the
// ticks that fell due while the runtime was down, those within the catch-up
// window start runs when it is back, the older ones are counted as missed.
func TestScheduleCatchUpAfterDowntime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := newApp(t, dir, weft.Options{})
	ctx := ctxT(t)
	_, err := a.rt.CreateSchedule(ctx, weft.Schedule{ID: "catchup", Workflow: "Sleeper", Input: []byte(`0`), Every: time.Second,
		CatchupWindow: 2500 * time.Millisecond, Overlap: weft.OverlapAllowAll})
	if err != nil {
		t.Fatal(err)
	}
	before := awaitSchedule(t, a.rt, "catchup", 20*time.Second, "started", func(i *weft.ScheduleInfo) bool { return i.Counts.Started >= 1 })
	if err := a.rt.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second) // the downtime: ticks fall due with nobody to run them
	back := time.Now()
	a = newApp(t, dir, weft.Options{})
	info := awaitSchedule(t, a.rt, "catchup", 20*time.Second, "caught up", func(i *weft.ScheduleInfo) bool { return i.LastTick.After(back) })
	if missed := info.Counts.Missed - before.Counts.Missed; missed < 2 {
		t.Errorf("%d ticks missed over 6 s down with a window of 2.5 s; want at least 2: %+v", missed, info.State)
	}
	var caughtUp int
	for _, a := range info.Recent {
		if a.Outcome == schedules.Started && a.Tick.Before(back) && a.Tick.After(before.LastTick) {
			caughtUp++
			if back.Sub(a.Tick) > 3500*time.Millisecond {
				t.Errorf("run %s of a tick %s before the restart started; the window is 2.5 s", a.Run, back.Sub(a.Tick))
			}
		}
	}
	if caughtUp == 0 {
		t.Errorf("no tick of the downtime within the catch-up window ran: %+v", info.Recent)
	}
}

// The schedule learns of its runs' ends through the runtime's finish
// notices: both must name the same event.
func TestFinishNoticeEventName(t *testing.T) {
	if schedules.RunFinishedEvent != actors.FinishNoticeEvent {
		t.Fatalf("schedules listen for %q, instances send %q", schedules.RunFinishedEvent, actors.FinishNoticeEvent)
	}
}

// Received marks an older binary left on a schedule (one per run it started)
// are deleted by the next event it takes: it keeps none now.
func TestScheduleDropsOldReceivedMarks(t *testing.T) {
	t.Parallel()
	a := newApp(t, "", weft.Options{})
	ctx := ctxT(t)
	if _, err := a.rt.CreateSchedule(ctx, weft.Schedule{ID: "old", Workflow: "Sleeper", Input: []byte(`0`), Every: time.Hour, Paused: true}); err != nil {
		t.Fatal(err)
	}
	id := schedules.InstanceID("old")
	h := a.rt.Host()
	b := h.DB().NewBatch()
	for _, run := range []string{"old-run-1", "old-run-2"} {
		if err := b.PutReceivedMark(h.Partition(id), id, run, storage.ReceivedMark{Incarnation: 1, Seq: 0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if marks := receivedSenders(t, a.rt, id); len(marks) != 2 {
		t.Fatalf("marks written: %v", marks)
	}
	if _, err := a.rt.TriggerSchedule(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if marks := receivedSenders(t, a.rt, id); len(marks) != 0 {
		t.Fatalf("the schedule still keeps received marks after an event: %v", marks)
	}
}
