package actors

import (
	"fmt"
	"slices"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// The part of a workflow actor's lifecycle that differs when the workflow's code
// runs on a remote worker (row.Remote). Inputs are held in the inbox; an
// "episode" hands the worker the history so far plus the held inputs, and its
// answer is recorded like the in-process executor's outcome: the inputs and the
// actions appended to history, the actions turned into records and effects, all
// in one commit. At most one episode is outstanding; inputs that arrive meanwhile
// wait for the next one.

// loadHeld reads the held inputs and makes sure the pending episode is with the
// workers (after a restart, nothing is).
func (w *workflowActor) loadHeld() error {
	held, err := w.readHeld()
	if err != nil {
		return err
	}
	w.held = held
	return w.offerEpisode()
}

// readHeld reads the inputs held in the inbox (none when nothing was ever
// held).
func (w *workflowActor) readHeld() ([]heldEvent, error) {
	if w.row.NextInboxSeq == 0 {
		return nil, nil
	}
	var held []heldEvent
	err := w.h.db.Inbox(w.part, w.id, func(seq uint64, b []byte) error {
		ev, err := workflow.DecodeEvent(b)
		if err != nil {
			return err
		}
		held = append(held, heldEvent{seq: seq, ev: ev})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load held events of %s: %w", w.id, err)
	}
	return held, nil
}

// offerEpisode makes sure the pending episode of a loaded instance is with
// the workers: still there from before a passivation, or handed out anew.
func (w *workflowActor) offerEpisode() error {
	if w.h.remote == nil {
		w.h.log.Warn("instance runs on remote workers, but they are off on this node (serve with --grpc)", "instance", w.id, "workflow", w.row.Name)
		return nil
	}
	if ep := w.h.remote.outstandingEpisode(w.id); ep != nil && ep.gen == w.row.Generation && ep.episode == w.row.Episode && ep.inputs <= len(w.held) {
		w.episode = ep // still with the workers from before the passivation
		return nil
	}
	w.dispatchEpisode()
	return nil
}

// episodeReady reports whether the instance may run an episode now.
func (w *workflowActor) episodeReady() bool {
	if w.row == nil || !w.row.Remote || w.h.remote == nil || w.episode != nil || len(w.held) == 0 {
		return false
	}
	if _, waits := w.reminders.get("unstall"); waits {
		return false // stalled: offered again when the reminder fires
	}
	switch w.row.Status {
	case storage.Running, storage.Stalled:
		return true
	case storage.Pending:
		_, scheduled := w.reminders.get("start")
		return !scheduled // started, waiting for its first episode
	}
	return false
}

// dispatchEpisode hands the next episode to the workers, if one is due.
func (w *workflowActor) dispatchEpisode() {
	if !w.episodeReady() {
		return
	}
	news := make([]workflow.Event, 0, len(w.held)+1)
	news = append(news, workflow.Event{Kind: workflow.EpisodeStarted, Time: w.now})
	for _, h := range w.held {
		news = append(news, h.ev)
	}
	if w.pastCache == nil {
		w.pastCache = &EpisodeCache{}
	}
	w.episode = &OrchestrationWork{
		InstanceID:  w.id,
		ExecutionID: ExecutionID(w.row.Generation),
		Name:        w.row.Name,
		Version:     w.row.Version,
		TraceParent: w.row.TraceParent,
		TraceState:  w.row.TraceState,
		App:         w.row.App,
		Created:     w.row.CreatedAt,
		Past:        slices.Clip(w.past), // w.past only grows past this length
		New:         news,
		Cache:       w.pastCache,
		gen:         w.row.Generation,
		episode:     w.row.Episode,
		inputs:      len(w.held),
	}
	w.h.remote.submitEpisode(w.episode)
}

// episodeDone records a worker's answer to the outstanding episode.
func (w *workflowActor) episodeDone(m episodeDone) error {
	e := m.work
	if w.row == nil || !w.row.Remote || w.row.Status.Terminal() ||
		e.gen != w.row.Generation || e.episode != w.row.Episode || e.inputs > len(w.held) {
		w.h.stats.IgnoredDuplicates.Add(1)
		return nil // an answer to an episode that no longer applies
	}
	w.episode = nil
	t := w.newTxn()
	var stall *workflow.Stall
	switch {
	case m.result.VersionNotAvailable:
		stall = &workflow.Stall{Reason: workflow.StallVersionNotAvailable,
			Description: fmt.Sprintf("the worker that took the step has no version %q of workflow %q", w.row.Version, w.row.Name)}
	case m.result.TooLarge != "":
		stall = &workflow.Stall{Reason: workflow.StallPayloadTooLarge, Description: m.result.TooLarge}
	}
	if stall != nil {
		// The episode is not taken: its inputs stay held for the next offer.
		if err := w.stall(t, stall); err != nil {
			t.close()
			return err
		}
		return w.commit(t)
	}
	w.unstall()
	for _, h := range w.held[:e.inputs] {
		if !h.mem {
			t.b.DeleteInboxEntry(w.part, w.id, h.seq)
		}
	}
	w.held = w.held[e.inputs:]
	if len(w.held) == 0 {
		// Every stored input was just deleted: numbering starts over, and a
		// load need not scan an inbox of deleted keys.
		w.row.NextInboxSeq = 0
	}
	w.row.Episode++
	if w.row.Status == storage.Pending {
		w.row.Status = storage.Running
	}
	for i := range m.result.Actions {
		m.result.Actions[i].Time = w.now // the worker's actions happen at this commit
	}
	o := &workflow.Outcome{Actions: m.result.Actions, CustomStatus: m.result.CustomStatus,
		CustomStatusSet: m.result.CustomStatusSet, Carry: m.result.Carry}
	if err := w.record(t, e.New, o); err != nil {
		t.close()
		return err
	}
	if err := w.recordVersion(t, m.result); err != nil {
		t.close()
		return err
	}
	if n := len(o.Actions); n > 0 && o.Actions[n-1].Kind == workflow.ContinuedAsNew && !w.row.Status.Terminal() {
		last := o.Actions[n-1]
		w.dropOutstanding(t)
		w.dropHistory(t)
		w.row.NextSeq, w.row.Episode, w.past, w.pastCache = 0, 0, nil, nil
		w.row.Generation++
		w.row.Input = last.Data
		w.children = map[int64]string{}
		w.childInput = map[int64]childCall{}
		if err := w.rehold(t, append([]workflow.Event{w.startedEvent(last.Data)}, o.Carry...)); err != nil {
			t.close()
			return err
		}
	}
	return w.commit(t)
}

// applyAnswer records the answer a worker handed over for the outstanding
// episode (RemoteWorkers.AnswerOrchestration), if one waits. An answer that is
// not applied leaves the episode to run again: put back to the workers, or,
// if the failed step withdrew it (a completion forgets the instance's work),
// offered anew by the reload that the wake posted here brings about.
func (w *workflowActor) applyAnswer() error {
	it, res := w.h.remote.takeAnswer(w.id)
	if it == nil {
		return nil // taken by an earlier message
	}
	if err := w.episodeDone(episodeDone{work: it.Orchestration, result: res}); err != nil {
		w.h.remote.putBack(it)
		w.h.post(w.id, wake{})
		return err
	}
	w.h.remote.answered(it)
	return nil
}

// recordVersion keeps what a worker reported of its code: the version it
// chose (a new instance takes the worker's default) and the patches it found
// applied, each recorded once in the generation's history.
func (w *workflowActor) recordVersion(t *txn, r OrchestrationResult) error {
	if r.Version != "" && w.row.Version == "" {
		w.row.Version = r.Version
	}
	for _, p := range r.Patches {
		if p == "" || slices.ContainsFunc(w.past, func(ev workflow.Event) bool { return ev.Kind == workflow.PatchRecorded && ev.Name == p }) {
			continue
		}
		if err := w.appendHistory(t, workflow.Event{Kind: workflow.PatchRecorded, Name: p, Data: []byte("true"), Time: w.now}); err != nil {
			return err
		}
	}
	return nil
}

// rehold puts evs in front of the held inputs: the start of a generation must be
// the first thing its first episode sees.
func (w *workflowActor) rehold(t *txn, evs []workflow.Event) error {
	rest := w.held
	for _, h := range rest {
		if !h.mem {
			t.b.DeleteInboxEntry(w.part, w.id, h.seq)
		}
	}
	w.held = nil
	all := slices.Concat(evs, heldEvents(rest))
	return w.hold(t, all)
}

func heldEvents(hs []heldEvent) []workflow.Event {
	evs := make([]workflow.Event, len(hs))
	for i, h := range hs {
		evs[i] = h.ev
	}
	return evs
}

// holdResultsInMemory keeps the activity results of a running remote instance
// in memory for the next episode instead of committing them to the inbox
// first: the episode's answer commits them into history with the worker's
// decisions, one commit per result where there were two, as an in-process
// workflow applies a result in the step it decides on. A crash before that
// commit loses the result, and the attempt, still outstanding in the stored
// history, runs again: the guarantee in-process activities have. When the
// instance leaves memory before the answer, persistHeld writes them to the
// inbox. It reports false, and changes nothing, when the results' step has
// more to store (a retry record or reminder to delete, a permit to give
// back), or the instance is not simply running.
func (w *workflowActor) holdResultsInMemory(t *txn, results []workflow.Event) bool {
	if !w.row.Remote || w.h.remote == nil || w.row.Status != storage.Running || !t.b.Empty() || len(t.sends) > 0 {
		return false
	}
	if _, stalled := w.reminders.get("unstall"); stalled {
		return false
	}
	for _, ev := range results {
		if w.retried[ev.TaskID] || w.h.limited(w.activities[ev.TaskID].Name) {
			return false
		}
		if _, retry := w.reminders.getTask(retryKind, w.row.Generation, ev.TaskID); retry {
			return false
		}
	}
	for _, ev := range results {
		w.settle(t, ev)
		w.held = append(w.held, heldEvent{ev: ev, mem: true})
	}
	t.close()
	w.dispatchEpisode()
	return true
}

// persistHeld writes the results held in memory to the inbox, in order with
// the inputs stored there, before the instance leaves memory.
func (w *workflowActor) persistHeld() {
	if w.row == nil || !slices.ContainsFunc(w.held, func(h heldEvent) bool { return h.mem }) {
		return
	}
	t := w.newTxn()
	err := w.rehold(t, nil)
	if err == nil {
		err = w.commit(t)
	} else {
		t.close()
	}
	if err != nil {
		w.h.log.Debug("activity results held in memory not stored; their attempts run again", "instance", w.id, "err", err)
	}
}

// forgetRemoteWork withdraws the instance's unanswered items from the workers:
// it finished, continued as new, or is being replaced.
func (w *workflowActor) forgetRemoteWork() {
	if w.h.remote == nil {
		return
	}
	tasks := make([]int64, 0, len(w.activities))
	for task := range w.activities {
		tasks = append(tasks, task)
	}
	w.h.remote.forget(w.id, tasks, true)
	w.episode = nil
}
