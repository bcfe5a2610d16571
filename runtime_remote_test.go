package weft_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// These tests drive the runtime's pool of remote workers directly, as
// api/durabletask does for a gRPC worker: a fake worker takes items and answers
// with actions it decides by hand. They pin what the protocol layer relies on:
// episodes carry the history and the new inputs, answers are applied once, a
// dropped worker's items go to another, and nothing is lost across a restart.

func openRemote(t *testing.T, dir string) *weft.Runtime {
	t.Helper()
	rt, err := weft.Open(weft.Options{Dir: dir, Logger: quiet, RemoteWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rt
}

// fakeWorker is one connected worker stream.
type fakeWorker struct {
	t    *testing.T
	pool *actors.RemoteWorkers
	w    *actors.RemoteWorker
	peer string
}

func connect(t *testing.T, rt *weft.Runtime, peer string) *fakeWorker {
	pool := rt.Host().RemoteWorkers()
	fw := &fakeWorker{t: t, pool: pool, w: pool.Connect(peer), peer: peer}
	t.Cleanup(fw.w.Disconnect)
	return fw
}

func (f *fakeWorker) next() *actors.WorkItem {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it, err := f.w.Next(ctx)
	if err != nil {
		f.t.Fatalf("worker %s: no work item: %v", f.peer, err)
	}
	return it
}

func (f *fakeWorker) nextEpisode() *actors.OrchestrationWork {
	f.t.Helper()
	it := f.next()
	if it.Orchestration == nil {
		f.t.Fatalf("worker %s: want an episode, got activity %+v", f.peer, it.Activity)
	}
	return it.Orchestration
}

func (f *fakeWorker) answer(id string, actions ...workflow.Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.pool.CompleteOrchestration(ctx, f.peer, id, actors.OrchestrationResult{Actions: actions})
}

func (f *fakeWorker) mustAnswer(id string, actions ...workflow.Event) {
	f.t.Helper()
	if err := f.answer(id, actions...); err != nil {
		f.t.Fatalf("worker %s: answer for %s: %v", f.peer, id, err)
	}
}

func kinds(evs []workflow.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Kind.String())
	}
	return out
}

func wantKinds(t *testing.T, what string, evs []workflow.Event, want ...string) {
	t.Helper()
	got := kinds(evs)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: kinds %v, want %v", what, got, want)
	}
}

func status(t *testing.T, rt *weft.Runtime, id string) *weft.InstanceStatus {
	t.Helper()
	st, err := rt.Status(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRemoteWorkflowLifecycle(t *testing.T) {
	rt := openRemote(t, t.TempDir())
	defer rt.Close()
	ctx := context.Background()
	id, err := rt.Schedule(ctx, "RemoteChain", 1, weft.WithInstanceID("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, rt, id); st.Status != weft.StatusPending {
		t.Fatalf("before its first episode: %s, want PENDING", st.Status)
	}
	w := connect(t, rt, "w1")

	ep := w.nextEpisode()
	wantKinds(t, "first episode past", ep.Past)
	wantKinds(t, "first episode new", ep.New, "episode-started", "workflow-started")
	if ep.Name != "RemoteChain" || string(ep.New[1].Data) != "1" || ep.ExecutionID != actors.ExecutionID(0) {
		t.Fatalf("first episode: %+v", ep)
	}
	w.mustAnswer(id, workflow.Event{Kind: workflow.ActivityScheduled, TaskID: 0, Name: "RemoteAdd", Data: []byte("1")})
	if st := status(t, rt, id); st.Status != weft.StatusRunning {
		t.Fatalf("after its first episode: %s, want RUNNING", st.Status)
	}

	act := w.next()
	if act.Activity == nil || act.Activity.Name != "RemoteAdd" || act.Activity.TaskID != 0 || string(act.Activity.Input) != "1" {
		t.Fatalf("want the RemoteAdd activity, got %+v", act)
	}
	if err := rt.RaiseEvent(ctx, id, "hello", "world"); err != nil {
		t.Fatal(err)
	}
	if err := w.pool.CompleteActivity("w1", id, 0, []byte("2"), nil); err != nil {
		t.Fatal(err)
	}
	// The event and the result arrive in one or two episodes, depending on timing.
	var seen []string
	for len(seen) < 2 {
		ep = w.nextEpisode()
		for _, ev := range ep.New[1:] {
			seen = append(seen, ev.Kind.String())
		}
		if len(seen) < 2 {
			w.mustAnswer(id)
		}
	}
	wantKinds(t, "history before the last episode", ep.Past[:3], "episode-started", "workflow-started", "activity-scheduled")
	w.mustAnswer(id, workflow.Event{Kind: workflow.WorkflowCompleted, Data: []byte(`"done"`)})

	st, err := rt.WaitForCompletion(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != weft.StatusCompleted || string(st.Output) != `"done"` {
		t.Fatalf("final: %s %s", st.Status, st.Output)
	}
	// A second answer to an episode that was applied is refused, not applied.
	if err := w.answer(id, workflow.Event{Kind: workflow.WorkflowFailed}); !errors.Is(err, actors.ErrNotAssigned) {
		t.Fatalf("answer to an applied episode: %v, want ErrNotAssigned", err)
	}
	h, err := rt.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if last := h[len(h)-1]; last.Kind != workflow.WorkflowCompleted {
		t.Fatalf("history ends with %s", last.Kind)
	}
}

func TestRemoteWorkerDropReassigns(t *testing.T) {
	rt := openRemote(t, t.TempDir())
	defer rt.Close()
	id, err := rt.Schedule(context.Background(), "RemoteOne", nil, weft.WithInstanceID("drop"))
	if err != nil {
		t.Fatal(err)
	}
	w1 := connect(t, rt, "w1")
	w1.nextEpisode()
	w2 := connect(t, rt, "w2")
	// w2 may not answer what w1 holds.
	if err := w2.answer(id, workflow.Event{Kind: workflow.WorkflowCompleted}); !errors.Is(err, actors.ErrNotAssigned) {
		t.Fatalf("answer from the wrong connection: %v, want ErrNotAssigned", err)
	}
	w1.w.Disconnect()
	ep := w2.nextEpisode() // the same episode, again
	wantKinds(t, "re-sent episode", ep.New, "episode-started", "workflow-started")
	if err := w1.answer(id, workflow.Event{Kind: workflow.WorkflowFailed}); !errors.Is(err, actors.ErrNotAssigned) {
		t.Fatalf("late answer from the dropped worker: %v, want ErrNotAssigned", err)
	}
	w2.mustAnswer(id, workflow.Event{Kind: workflow.WorkflowCompleted, Data: []byte("7")})
	if st := status(t, rt, id); st.Status != weft.StatusCompleted || string(st.Output) != "7" {
		t.Fatalf("final: %s %s", st.Status, st.Output)
	}
}

func TestRemoteWorkSpreadsOverWorkers(t *testing.T) {
	rt := openRemote(t, t.TempDir())
	defer rt.Close()
	ctx := context.Background()
	for i := range 6 {
		if _, err := rt.Schedule(ctx, "RemoteOne", nil, weft.WithInstanceID("s"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	w1, w2 := connect(t, rt, "w1"), connect(t, rt, "w2")
	got := map[string]string{}
	for range 3 {
		for _, w := range []*fakeWorker{w1, w2} {
			ep := w.nextEpisode()
			got[ep.InstanceID] = w.peer
		}
	}
	if len(got) != 6 {
		t.Fatalf("six episodes went to %d distinct instances: %v", len(got), got)
	}
	for id, peer := range got {
		w := map[string]*fakeWorker{"w1": w1, "w2": w2}[peer]
		w.mustAnswer(id, workflow.Event{Kind: workflow.WorkflowCompleted})
	}
}

// A worker holds at most Options.MaxItemsPerWorker (by default
// actors.DefaultMaxItemsPerWorker) unanswered items: past that it takes
// nothing more, the rest goes to another worker, and an answer makes room for
// one more.
func TestRemoteWorkerHoldsAtMostTheBound(t *testing.T) {
	for _, c := range []struct {
		option, bound int
	}{{0, actors.DefaultMaxItemsPerWorker}, {3, 3}} {
		t.Run(fmt.Sprintf("MaxItemsPerWorker=%d", c.option), func(t *testing.T) {
			rt, err := weft.Open(weft.Options{Dir: t.TempDir(), Logger: quiet, RemoteWorkers: true, MaxItemsPerWorker: c.option})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			ctx := context.Background()
			if err := rt.Start(ctx); err != nil {
				t.Fatal(err)
			}
			n := c.bound + 2
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Go(func() {
					for i := g; i < n; i += 16 {
						if _, err := rt.Schedule(ctx, "RemoteOne", nil, weft.WithInstanceID("b"+strconv.Itoa(i))); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			w1, w2 := connect(t, rt, "w1"), connect(t, rt, "w2")
			held := map[string]bool{}
			for range c.bound {
				held[w1.nextEpisode().InstanceID] = true
			}
			if len(held) != c.bound {
				t.Fatalf("w1 holds %d distinct episodes, want %d", len(held), c.bound)
			}
			wait, stop := context.WithTimeout(ctx, 10*time.Second)
			defer stop()
			waitUntil(t, wait, "the last two episodes queued", func() bool {
				_, queued := rt.Host().RemoteWorkers().Workers()
				return queued == 2
			})
			done, cancel := context.WithCancel(ctx)
			cancel()
			if it, err := w1.w.Next(done); !errors.Is(err, context.Canceled) {
				t.Fatalf("w1 at the bound took %+v (err %v); want it to wait", it, err)
			}
			if id := w2.nextEpisode().InstanceID; held[id] {
				t.Fatalf("w2 got %s, which w1 holds", id)
			}
			for id := range held {
				w1.mustAnswer(id, workflow.Event{Kind: workflow.WorkflowCompleted})
				break
			}
			if id := w1.nextEpisode().InstanceID; held[id] {
				t.Fatalf("w1 got %s again after answering one", id)
			}
		})
	}
}

func TestRemoteEpisodeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	rt := openRemote(t, dir)
	id, err := rt.Schedule(context.Background(), "RemoteTimer", nil, weft.WithInstanceID("restart"))
	if err != nil {
		t.Fatal(err)
	}
	w := connect(t, rt, "w1")
	w.nextEpisode()
	w.mustAnswer(id, workflow.Event{Kind: workflow.ActivityScheduled, TaskID: 0, Name: "RemoteSlow"})
	w.next() // the activity: taken, never answered before the node stops
	if err := rt.RaiseEvent(context.Background(), id, "e", 1); err != nil {
		t.Fatal(err)
	}
	ep := w.nextEpisode() // taken, never answered
	wantKinds(t, "episode before the restart", ep.New, "episode-started", "event-raised")
	w.w.Disconnect()
	// An instance whose first episode no worker has taken yet: only its held
	// start marks it as having work.
	if _, err := rt.Schedule(context.Background(), "RemoteOne", nil, weft.WithInstanceID("never-taken")); err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}

	rt = openRemote(t, dir)
	defer rt.Close()
	w = connect(t, rt, "w1-again")
	items := []*actors.WorkItem{w.next(), w.next(), w.next()}
	var sawActivity, sawEpisode, sawFirst bool
	for _, it := range items {
		switch {
		case it.Activity != nil && it.Activity.Name == "RemoteSlow":
			sawActivity = true
		case it.Orchestration != nil && it.Orchestration.InstanceID == "never-taken":
			sawFirst = true
			wantKinds(t, "never-taken's first episode", it.Orchestration.New, "episode-started", "workflow-started")
		case it.Orchestration != nil:
			sawEpisode = true
			wantKinds(t, "episode after the restart", it.Orchestration.New, "episode-started", "event-raised")
			wantKinds(t, "its past", it.Orchestration.Past, "episode-started", "workflow-started", "activity-scheduled")
		}
	}
	if !sawActivity || !sawEpisode || !sawFirst {
		t.Fatalf("after the restart the worker got %+v, want the activity and the episode again", items)
	}
	w.mustAnswer(id, workflow.Event{Kind: workflow.WorkflowCompleted})
	if st := status(t, rt, id); st.Status != weft.StatusCompleted {
		t.Fatalf("final: %s", st.Status)
	}
}

// An answer handed over (AnswerOrchestration, as the gRPC server gives it) is
// applied after the call returns; Close applies those handed over before it,
// so a graceful stop loses none.
func TestRemoteAnswersHandedOverAreAppliedByClose(t *testing.T) {
	dir := t.TempDir()
	rt := openRemote(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := connect(t, rt, "w1")
	const n = 50
	for i := range n {
		if _, err := rt.Schedule(ctx, "RemoteOne", nil, weft.WithInstanceID(fmt.Sprintf("handed-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		ep := w.nextEpisode()
		if err := w.pool.AnswerOrchestration(ctx, w.peer, ep.InstanceID, actors.OrchestrationResult{
			Actions: []workflow.Event{{Kind: workflow.WorkflowCompleted, Data: []byte(`"` + ep.InstanceID + `"`)}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}

	rt = openRemote(t, dir)
	defer rt.Close()
	for i := range n {
		id := fmt.Sprintf("handed-%d", i)
		if st := status(t, rt, id); st.Status != weft.StatusCompleted || string(st.Output) != `"`+id+`"` {
			t.Errorf("%s: %s %s after the restart, want COMPLETED %q", id, st.Status, st.Output, id)
		}
	}
}

// failNextCommit is a StepCommitter that fails one commit when armed.
type failNextCommit struct{ armed atomic.Bool }

func (c *failNextCommit) CommitStep(_ uint16, b *storage.Batch) error {
	if c.armed.CompareAndSwap(true, false) {
		return errors.New("disk on fire")
	}
	return b.Commit()
}

// An answer handed over whose step cannot be committed is not lost: its
// episode goes back to the workers, whole, and the next answer is applied once.
func TestRemoteAnswerNotCommittedGoesBackToTheWorkers(t *testing.T) {
	rt, err := weft.Open(weft.Options{Dir: t.TempDir(), Logger: quiet, RemoteWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	commits := &failNextCommit{}
	rt.Host().SetCommitter(commits)
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := rt.Schedule(ctx, "RemoteOne", nil, weft.WithInstanceID("unlucky"))
	if err != nil {
		t.Fatal(err)
	}
	w := connect(t, rt, "w1")
	first := w.nextEpisode()
	wantKinds(t, "first offer", first.New, "episode-started", "workflow-started")
	done := actors.OrchestrationResult{Actions: []workflow.Event{{Kind: workflow.WorkflowCompleted, Data: []byte(`1`)}}}
	commits.armed.Store(true)
	if err := w.pool.AnswerOrchestration(ctx, w.peer, id, done); err != nil {
		t.Fatalf("handing over the answer: %v", err)
	}
	again := w.nextEpisode()
	if again.InstanceID != id {
		t.Fatalf("offered %s, want %s's episode again", again.InstanceID, id)
	}
	wantKinds(t, "second offer", again.New, "episode-started", "workflow-started")
	if commits.armed.Load() {
		t.Fatal("the answer's commit was never tried")
	}
	if err := w.pool.AnswerOrchestration(ctx, w.peer, id, done); err != nil {
		t.Fatalf("handing over the answer again: %v", err)
	}
	st, err := rt.WaitForCompletion(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	h, err := rt.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != weft.StatusCompleted || string(st.Output) != "1" {
		t.Errorf("final: %s %s, want COMPLETED 1", st.Status, st.Output)
	}
	wantKinds(t, "history", h, "episode-started", "workflow-started", "workflow-completed")
}

// A remote instance's inputs wait in its inbox until an episode takes them.
// Once one has taken them all, the inbox is empty: its numbering starts over,
// so that loading the instance reads no inbox (a scan over deleted keys for
// every load of every instance that ever held one), and later inputs are
// numbered from 0 again and found, in order, after a restart.
func TestRemoteInboxStartsOverWhenEmpty(t *testing.T) {
	dir := t.TempDir()
	rt := openRemote(t, dir)
	ctx := context.Background()
	id, err := rt.Schedule(ctx, "RemoteWaiter", nil, weft.WithInstanceID("inbox"))
	if err != nil {
		t.Fatal(err)
	}
	db, part := rt.Host().DB(), rt.Host().Partition(id)
	inbox := func() (next uint64, entries []uint64) {
		t.Helper()
		row, err := db.Instance(part, id)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Inbox(part, id, func(seq uint64, _ []byte) error {
			entries = append(entries, seq)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return row.NextInboxSeq, entries
	}
	if next, entries := inbox(); next != 1 || !slices.Equal(entries, []uint64{0}) {
		t.Fatalf("before the first episode: next %d, entries %v; want the start held at 0", next, entries)
	}
	w := connect(t, rt, "w1")
	w.nextEpisode()
	w.mustAnswer(id) // waits for events
	if next, entries := inbox(); next != 0 || len(entries) != 0 {
		t.Fatalf("after the episode took the start: next %d, entries %v; want an empty inbox numbered from 0", next, entries)
	}
	for i, name := range []string{"a", "b"} {
		if err := rt.RaiseEvent(ctx, id, name, i); err != nil {
			t.Fatal(err)
		}
	}
	w.w.Disconnect()
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}

	rt = openRemote(t, dir)
	defer rt.Close()
	db = rt.Host().DB()
	if next, entries := inbox(); next != 2 || !slices.Equal(entries, []uint64{0, 1}) {
		t.Fatalf("two events held: next %d, entries %v; want 0 and 1", next, entries)
	}
	w = connect(t, rt, "w1-again")
	ep := w.nextEpisode()
	wantKinds(t, "episode after the restart", ep.New, "episode-started", "event-raised", "event-raised")
	if ep.New[1].Name != "a" || ep.New[2].Name != "b" {
		t.Fatalf("events after the restart: %+v", ep.New)
	}
	w.mustAnswer(id, workflow.Event{Kind: workflow.WorkflowCompleted})
	if st := status(t, rt, id); st.Status != weft.StatusCompleted {
		t.Fatalf("final: %s", st.Status)
	}
}

// Activity results of a remote instance wait in memory for the episode that
// takes them (one commit per result, not two); an instance that leaves memory
// before that episode is answered stores them in its inbox, in order with the
// inputs stored there, so that after a restart the results are there and the
// activities do not run again.
func TestRemoteResultsHeldInMemoryAreStoredOnClose(t *testing.T) {
	dir := t.TempDir()
	rt := openRemote(t, dir)
	ctx := context.Background()
	id, err := rt.Schedule(ctx, "RemoteFanOut", nil, weft.WithInstanceID("held"))
	if err != nil {
		t.Fatal(err)
	}
	w := connect(t, rt, "w1")
	w.nextEpisode()
	w.mustAnswer(id,
		workflow.Event{Kind: workflow.ActivityScheduled, TaskID: 0, Name: "RemoteA"},
		workflow.Event{Kind: workflow.ActivityScheduled, TaskID: 1, Name: "RemoteB"})
	w.next()
	w.next()
	commits := rt.Host().Stats().Commits.Load()
	if err := w.pool.CompleteActivity("w1", id, 0, []byte(`"a"`), nil); err != nil {
		t.Fatal(err)
	}
	ep := w.nextEpisode() // taken, never answered
	wantKinds(t, "episode with the first result", ep.New, "episode-started", "activity-completed")
	if n := rt.Host().Stats().Commits.Load() - commits; n != 0 {
		t.Fatalf("%d commits for a result that waits for its episode, want none", n)
	}
	if err := rt.RaiseEvent(ctx, id, "e", 1); err != nil { // stored in the inbox
		t.Fatal(err)
	}
	if err := w.pool.CompleteActivity("w1", id, 1, []byte(`"b"`), nil); err != nil {
		t.Fatal(err)
	}
	// The instance's mailbox takes this after the second result.
	if err := rt.RaiseEvent(ctx, id, "f", 2); err != nil {
		t.Fatal(err)
	}
	w.w.Disconnect()
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}

	rt = openRemote(t, dir)
	defer rt.Close()
	w = connect(t, rt, "w1-again")
	ep = w.nextEpisode()
	wantKinds(t, "episode after the restart", ep.New, "episode-started", "activity-completed", "event-raised", "activity-completed", "event-raised")
	if string(ep.New[1].Data) != `"a"` || ep.New[3].TaskID != 1 || string(ep.New[3].Data) != `"b"` {
		t.Fatalf("results after the restart: %+v", ep.New)
	}
	w.mustAnswer(id, workflow.Event{Kind: workflow.WorkflowCompleted})
	if st := status(t, rt, id); st.Status != weft.StatusCompleted {
		t.Fatalf("final: %s", st.Status)
	}
	if _, queued := w.pool.Workers(); queued != 0 {
		t.Fatalf("%d items queued after completion: an activity was sent again", queued)
	}
}

func TestRemoteContinueAsNewCarriesEvents(t *testing.T) {
	rt := openRemote(t, t.TempDir())
	defer rt.Close()
	ctx := context.Background()
	id, err := rt.Schedule(ctx, "RemoteLoop", 0, weft.WithInstanceID("can"))
	if err != nil {
		t.Fatal(err)
	}
	w := connect(t, rt, "w1")
	w.nextEpisode()
	carried := workflow.Event{Kind: workflow.EventRaised, Name: "kept", Data: []byte(`"x"`), Time: time.Now()}
	if err := w.pool.CompleteOrchestration(ctx, "w1", id, actors.OrchestrationResult{
		Actions: []workflow.Event{{Kind: workflow.ContinuedAsNew, Data: []byte("1")}},
		Carry:   []workflow.Event{carried},
	}); err != nil {
		t.Fatal(err)
	}
	ep := w.nextEpisode()
	wantKinds(t, "the next generation's first episode past", ep.Past)
	wantKinds(t, "its new events", ep.New, "episode-started", "workflow-started", "event-raised")
	if string(ep.New[1].Data) != "1" || ep.New[2].Name != "kept" || ep.ExecutionID != actors.ExecutionID(1) {
		t.Fatalf("next generation: %+v", ep)
	}
	w.mustAnswer(id, workflow.Event{Kind: workflow.WorkflowCompleted, Data: []byte("2")})
	st := status(t, rt, id)
	if st.Status != weft.StatusCompleted || st.Generation != 1 || string(st.Input) != "1" {
		t.Fatalf("final: %s gen %d input %s", st.Status, st.Generation, st.Input)
	}
	h, err := rt.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var inputs []string
	for _, ev := range h {
		if ev.Kind == workflow.WorkflowStarted {
			inputs = append(inputs, string(ev.Data))
		}
	}
	if len(inputs) != 1 || inputs[0] != "1" {
		t.Fatalf("the stored history is not the second generation's alone: %v", h)
	}
}

func TestRemoteTerminateWithdrawsWork(t *testing.T) {
	rt := openRemote(t, t.TempDir())
	defer rt.Close()
	ctx := context.Background()
	id, err := rt.Schedule(ctx, "RemoteOne", nil, weft.WithInstanceID("term"))
	if err != nil {
		t.Fatal(err)
	}
	w := connect(t, rt, "w1")
	w.nextEpisode()
	if err := rt.Terminate(ctx, id, weft.TerminateOptions{Reason: "stop"}); err != nil {
		t.Fatal(err)
	}
	if err := w.answer(id, workflow.Event{Kind: workflow.WorkflowCompleted}); !errors.Is(err, actors.ErrNotAssigned) {
		t.Fatalf("answer after terminate: %v, want ErrNotAssigned", err)
	}
	if st := status(t, rt, id); st.Status != weft.StatusTerminated {
		t.Fatalf("final: %s", st.Status)
	}
}

// A workflow registered in-process may call an activity that only a remote
// worker has.
func TestLocalWorkflowCallsRemoteActivity(t *testing.T) {
	rt, err := weft.Open(weft.Options{Dir: t.TempDir(), Logger: quiet, RemoteWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	err = weft.RegisterWorkflow(rt, func(ctx *workflow.Context, in int) (int, error) {
		var out int
		err := ctx.CallActivity("ElsewhereDouble", in).Await(&out)
		return out, err
	}, workflow.WithName("LocalCaller"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	id, err := rt.Schedule(context.Background(), "LocalCaller", 21)
	if err != nil {
		t.Fatal(err)
	}
	w := connect(t, rt, "w1")
	it := w.next()
	if it.Activity == nil || it.Activity.Name != "ElsewhereDouble" {
		t.Fatalf("want the remote activity, got %+v", it)
	}
	var in int
	_ = json.Unmarshal(it.Activity.Input, &in)
	if err := w.pool.CompleteActivity("w1", id, it.Activity.TaskID, []byte(strconv.Itoa(2*in)), nil); err != nil {
		t.Fatal(err)
	}
	st, err := rt.WaitForCompletion(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != weft.StatusCompleted || string(st.Output) != "42" {
		t.Fatalf("final: %s %s", st.Status, st.Output)
	}
}

// Without remote workers, an unregistered workflow is refused at once.
func TestUnregisteredWorkflowWithoutRemoteWorkers(t *testing.T) {
	rt, err := weft.Open(weft.Options{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Schedule(context.Background(), "Nowhere", nil); !errors.Is(err, weft.ErrWorkflowNotRegistered) {
		t.Fatalf("schedule of an unregistered workflow: %v, want ErrWorkflowNotRegistered", err)
	}
}

// With more instances in flight than may stay in memory, instances are
// passivated while their work is with the workers and loaded again when the
// answers come back. An answer that reaches an instance being loaded must not
// make it hand the same activity or episode out again: a worker of Dapr's SDKs
// would run the activity twice (found with 20,000 chains against the default
// cap of 10,000: every activity ran about twice).
func TestRemoteWorkUnderEviction(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(f *fakeWorker, ctx context.Context, id string, res actors.OrchestrationResult) error
	}{
		{"answers committed before they return", func(f *fakeWorker, ctx context.Context, id string, res actors.OrchestrationResult) error {
			return f.pool.CompleteOrchestration(ctx, f.peer, id, res)
		}},
		// Answers handed over, as the gRPC server does: many wait for an
		// instance that was evicted before it took them.
		{"answers handed over", func(f *fakeWorker, ctx context.Context, id string, res actors.OrchestrationResult) error {
			return f.pool.AnswerOrchestration(ctx, f.peer, id, res)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testRemoteWorkUnderEviction(t, func(f *fakeWorker, id string, actions []workflow.Event) error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return tc.answer(f, ctx, id, actors.OrchestrationResult{Actions: actions})
			})
		})
	}
}

func testRemoteWorkUnderEviction(t *testing.T, answer func(f *fakeWorker, id string, actions []workflow.Event) error) {
	rt, err := weft.Open(weft.Options{Dir: t.TempDir(), Logger: quiet, RemoteWorkers: true, MaxActiveInstances: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	const instances, steps = 60, 4
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := connect(t, rt, "w1")

	var mu sync.Mutex
	attempts := map[string]int{} // instance/task/attempt → times handed out
	refused := []string{}        // answers the pool did not take
	episodes := map[string]int{} // instance/completed steps → episodes handed out
	go func() {
		for {
			it, err := w.w.Next(ctx)
			if err != nil {
				return
			}
			go func() { // answers come back concurrently, as from an SDK worker
				if a := it.Activity; a != nil {
					mu.Lock()
					attempts[fmt.Sprintf("%s/%d/%d", a.InstanceID, a.TaskID, a.Attempt)]++
					mu.Unlock()
					var in int
					_ = json.Unmarshal(a.Input, &in)
					if err := w.pool.CompleteActivity("w1", a.InstanceID, a.TaskID, []byte(strconv.Itoa(in+1)), nil); err != nil {
						mu.Lock()
						refused = append(refused, err.Error())
						mu.Unlock()
					}
					return
				}
				ep := it.Orchestration
				done, scheduled, last := 0, 0, []byte("0")
				for _, ev := range slices.Concat(ep.Past, ep.New) {
					switch ev.Kind {
					case workflow.ActivityScheduled:
						scheduled++
					case workflow.ActivityCompleted:
						done++
						last = ev.Data
					}
				}
				mu.Lock()
				episodes[fmt.Sprintf("%s/%d", ep.InstanceID, done)]++
				mu.Unlock()
				var actions []workflow.Event
				switch {
				case done == steps:
					actions = []workflow.Event{{Kind: workflow.WorkflowCompleted, Data: last}}
				case scheduled == done:
					actions = []workflow.Event{{Kind: workflow.ActivityScheduled, TaskID: int64(done), Name: "RemoteAdd", Data: last}}
				}
				if err := answer(w, ep.InstanceID, actions); err != nil {
					mu.Lock()
					refused = append(refused, err.Error())
					mu.Unlock()
				}
			}()
		}
	}()

	ids := make([]string, instances)
	for i := range ids {
		if ids[i], err = rt.Schedule(ctx, "RemoteChain", 0, weft.WithInstanceID("evict-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		st, err := rt.WaitForCompletion(ctx, id)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			break
		}
		if st.Status != weft.StatusCompleted || string(st.Output) != strconv.Itoa(steps) {
			h, _ := rt.History(ctx, id)
			for _, ev := range h {
				t.Logf("%s task %d %s", ev.Kind, ev.TaskID, ev.Data)
			}
			t.Errorf("%s: %s %s, want COMPLETED %d", id, st.Status, st.Output, steps)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != instances*steps {
		t.Errorf("%d activity attempts handed out, want %d", len(attempts), instances*steps)
	}
	for k, n := range attempts {
		if n > 1 {
			t.Errorf("activity attempt %s handed out %d times", k, n)
		}
	}
	for k, n := range episodes {
		if n > 1 {
			t.Errorf("episode %s handed out %d times", k, n)
		}
	}
	if len(refused) > 0 {
		t.Errorf("%d answers refused, e.g. %s", len(refused), refused[0])
	}
	if s := rt.Host().Stats(); s.Passivations.Load() == 0 {
		t.Errorf("no instance was passivated: the test did not test eviction")
	}
}
