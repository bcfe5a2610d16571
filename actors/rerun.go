package actors

import (
	"fmt"
	"slices"
	"time"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// RerunRequest creates an instance whose history is given: a rerun of another
// instance from one of its events (Dapr's RerunWorkflowFromEvent). The
// history ends with the call the rerun starts from (an activity or child
// scheduled, not completed); the instance then loads as after a restart:
// its code replays the history and the calls still outstanding in it (that
// one, and any in flight when it was made) are sent again; its outstanding
// timers are set here.
type RerunRequest struct {
	Name    string
	Version string `msgpack:",omitempty"`
	App     string `msgpack:",omitempty"`
	Input   []byte
	History []workflow.Event
	// Source names the instance rerun, for the log.
	Source string
}

func (w *workflowActor) rerun(m RerunRequest) error {
	if err := storage.ValidateInstanceID(w.id); err != nil {
		return err
	}
	if w.row != nil {
		return fmt.Errorf("rerun into instance %s (%s, %s): %w", w.id, w.row.Name, w.row.Status, ErrInstanceExists)
	}
	if !slices.ContainsFunc(m.History, func(ev workflow.Event) bool { return ev.Kind == workflow.WorkflowStarted }) {
		return fmt.Errorf("rerun into %s: the history lacks the workflow's start: %w", w.id, workflow.ErrInvalidInput)
	}
	t := w.newTxn()
	w.row = &storage.InstanceRecord{
		ID: w.id, Name: m.Name, Status: storage.Running, CreatedAt: w.now, Input: m.Input, Version: m.Version, App: m.App,
		Remote: w.h.remote != nil && !w.h.reg.HasWorkflow(m.Name),
	}
	t.started = m.Name
	if err := w.appendHistory(t, m.History...); err != nil {
		t.close()
		return err
	}
	timers := map[int64]time.Time{}
	for _, ev := range m.History {
		switch ev.Kind {
		case workflow.TimerCreated:
			timers[ev.TaskID] = ev.FireAt
		case workflow.TimerFired, workflow.TimerCanceled:
			delete(timers, ev.TaskID)
		}
	}
	for task, at := range timers {
		w.putReminder(t, timerName(w.row.Generation, task), at)
	}
	if err := w.commit(t); err != nil {
		return err
	}
	w.h.log.Info("workflow instance rerun", "instance", w.id, "from", m.Source, "workflow", m.Name, "events", len(m.History))
	// Loading replays the history and sends the outstanding call, as after a
	// restart.
	w.unload()
	return w.load()
}
