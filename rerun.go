package weft

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/workflow"
)

// RerunOptions configure Rerun.
type RerunOptions struct {
	// InstanceID is the new instance's id (default: a random UUID).
	InstanceID string
	// Input, with OverwriteInput, replaces the input of the call the rerun
	// starts from (the activity's or the child workflow's).
	Input          json.RawMessage
	OverwriteInput bool
	// ChildInstanceID is the id of the child workflow a rerun from a child
	// workflow's start runs (default: derived from the new instance's id, as
	// for any child).
	ChildInstanceID string
}

// Rerun starts a new instance that replays a finished instance's history up
// to one of its calls and runs again from that call: fromTask is the task id
// of an activity or a child workflow the source scheduled (the TASK column of
// `weft history`, the eventId of Dapr's RerunWorkflowFromEvent). Everything
// before the call is kept as it happened (results, events, timers); the call
// runs again, with a new input if opts say so, and the workflow goes on from
// there on the code registered now.
//
// The source must have finished (ErrNotFinished otherwise). What was in flight
// when the call was made (activities, child workflows, timers started before
// it and finished after it) is in flight again in the rerun: the activities
// and children run again (a child under a new id, derived from the new
// instance's), the timers fire when they were due.
func (r *Runtime) Rerun(ctx context.Context, sourceID string, fromTask int64, opts RerunOptions) (string, error) {
	if err := ValidateInstanceID(sourceID); err != nil {
		return "", err
	}
	id := opts.InstanceID
	if id == "" {
		id = newInstanceID()
	}
	if err := ValidateInstanceID(id); err != nil {
		return "", err
	}
	if opts.OverwriteInput && len(opts.Input) > 0 && !json.Valid(opts.Input) {
		return "", fmt.Errorf("rerun %s: the new input is not JSON: %w", sourceID, ErrInvalidInput)
	}
	st, err := r.Status(ctx, sourceID)
	if err != nil {
		return "", fmt.Errorf("rerun %s: %w", sourceID, err)
	}
	if !st.Status.Finished() {
		return "", fmt.Errorf("rerun %s: it is %s; only a finished instance (COMPLETED, FAILED, TERMINATED) can be rerun: %w", sourceID, st.Status, ErrNotFinished)
	}
	h, err := r.History(ctx, sourceID)
	if err != nil {
		return "", fmt.Errorf("rerun %s: %w", sourceID, err)
	}
	history, err := rerunHistory(h, fromTask, id, opts)
	if err != nil {
		return "", fmt.Errorf("rerun %s from task %d: %w", sourceID, fromTask, err)
	}
	if err := r.ready(); err != nil {
		return "", err
	}
	err = r.host.Request(ctx, id, actors.RerunRequest{Name: st.Name, Version: st.Version, App: st.App, Input: st.Input, History: history, Source: sourceID})
	if err != nil {
		return "", err
	}
	return id, nil
}

// rerunHistory is the new instance's history: the source's up to the call
// scheduled as fromTask, and that call.
func rerunHistory(h []workflow.Event, fromTask int64, newID string, opts RerunOptions) ([]workflow.Event, error) {
	cut := slices.IndexFunc(h, func(ev workflow.Event) bool {
		return (ev.Kind == workflow.ActivityScheduled || ev.Kind == workflow.ChildScheduled) && ev.TaskID == fromTask
	})
	if cut < 0 {
		return nil, fmt.Errorf("the history schedules no activity or child workflow as task %d (the TASK column of weft history): %w", fromTask, ErrInvalidInput)
	}
	// Children in flight at the cut start again in the rerun: under new ids,
	// since the source's children with their old ids belong to the source.
	childrenInFlight := map[int64]bool{}
	for _, ev := range h[:cut] {
		switch ev.Kind {
		case workflow.ChildScheduled:
			childrenInFlight[ev.TaskID] = true
		case workflow.ChildCompleted, workflow.ChildFailed:
			delete(childrenInFlight, ev.TaskID)
		}
	}
	target := h[cut]
	if opts.OverwriteInput {
		target.Data = opts.Input
	}
	switch {
	case target.Kind == workflow.ChildScheduled && opts.ChildInstanceID != "":
		if err := ValidateInstanceID(opts.ChildInstanceID); err != nil {
			return nil, err
		}
		target.Instance = opts.ChildInstanceID
	case target.Kind == workflow.ChildScheduled:
		target.Instance = workflow.ChildInstanceID(newID, fromTask)
	case opts.ChildInstanceID != "":
		return nil, fmt.Errorf("a new child instance id is for a rerun from a child workflow's start; task %d is %s: %w", fromTask, describeCall(target), ErrInvalidInput)
	}
	out := make([]workflow.Event, 0, cut+1)
	for _, ev := range h[:cut] {
		switch ev.Kind {
		case workflow.WorkflowSuspended, workflow.WorkflowResumed, workflow.ExecutionStalled, workflow.ActivityRetrying:
			continue // what happened to the source, not to the rerun
		case workflow.WorkflowStarted:
			ev.Instance, ev.TaskID = "", 0 // a rerun is a top-level instance
		case workflow.ChildScheduled:
			if childrenInFlight[ev.TaskID] {
				ev.Instance = workflow.ChildInstanceID(newID, ev.TaskID)
			}
		}
		out = append(out, ev)
	}
	return append(out, target), nil
}

func describeCall(ev workflow.Event) string {
	switch ev.Kind {
	case workflow.ActivityScheduled:
		return "activity " + ev.Name
	case workflow.ChildScheduled:
		return "child workflow " + ev.Name
	case workflow.TimerCreated:
		return "a timer"
	}
	return ev.Kind.String()
}
