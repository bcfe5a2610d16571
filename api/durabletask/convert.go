package durabletask

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/api/durabletask/protos"
	"github.com/weftrt/weft/workflow"
)

// weft's history events and durabletask's are the same model under other names:
// weft's TaskID is durabletask's eventId of the scheduling event and the
// taskScheduledId / timerId of its completion. The runtime markers (terminated,
// suspended, resumed) have no place in what a worker replays: weft holds events
// while an instance is suspended and never sends a terminated one a step.

// episodeEvents converts an episode's past and new events for a worker; events
// with no protocol counterpart are left out.
//
// Versioning rides on the episodes' WorkflowStarted events as Dapr's SDKs read
// it: every one names the instance's version (so the SDK runs that one, or
// picks its default for a new instance), and each carries the patches first
// reported applied in its episode (recorded after the episode's inputs and
// actions). An SDK takes a patch as applied from the first such event it
// replays, which comes before the code asks in that episode. The conversion of
// an event depends only on what came before it and on its own episode, which
// is committed at once, so a worker's cached prefix (stateful history) stays
// the same as a fresh conversion.
//
// A remote instance's history has an ExecutionStalled event only when a
// worker answered WorkflowVersionNotAvailable, which only SDKs that know the
// event do, so episodes carry it as GetInstanceHistory does.
func episodeEvents(o *actors.OrchestrationWork) (past, news []*protos.HistoryEvent) {
	c := converter{o: o}
	return c.events(o.Past), c.events(o.New)
}

// deltaEvents converts an episode for a worker that holds the protocol form of
// o.Past[:from] already: the rest of the past, and the new events. The
// conversion of an event depends only on what came before it, through the
// task execution ids of the activities scheduled earlier, which are gathered
// from the held part.
func deltaEvents(o *actors.OrchestrationWork, from int) (past, news []*protos.HistoryEvent) {
	c := converter{o: o}
	for _, ev := range o.Past[:from] {
		if ev.Kind == workflow.ActivityScheduled && ev.TaskExecutionID != "" {
			if c.execIDs == nil {
				c.execIDs = map[int64]string{}
			}
			c.execIDs[ev.TaskID] = ev.TaskExecutionID
		}
	}
	return c.events(o.Past[from:]), c.events(o.New)
}

// episodePatches returns the patches recorded applied in the episode that
// starts at evs[0] (an EpisodeStarted event).
func episodePatches(evs []workflow.Event) []string {
	var patches []string
	for _, ev := range evs[1:] {
		if ev.Kind == workflow.EpisodeStarted {
			break
		}
		if ev.Kind == workflow.PatchRecorded && string(ev.Data) == "true" {
			patches = append(patches, ev.Name)
		}
	}
	return patches
}

type converter struct {
	o *actors.OrchestrationWork
	// execIDs are the task execution ids of the activities scheduled so far,
	// which their completions repeat.
	execIDs map[int64]string
}

func (c *converter) events(evs []workflow.Event) []*protos.HistoryEvent {
	out := make([]*protos.HistoryEvent, 0, len(evs))
	for i, ev := range evs {
		var patches []string
		if ev.Kind == workflow.EpisodeStarted {
			patches = episodePatches(evs[i:])
		}
		if he := c.event(ev, patches); he != nil {
			out = append(out, he)
		}
	}
	return out
}

func (c *converter) event(ev workflow.Event, patches []string) *protos.HistoryEvent {
	o := c.o
	he := &protos.HistoryEvent{EventId: -1, Timestamp: timestamppb.New(ev.Time)}
	task := int32(ev.TaskID)
	switch ev.Kind {
	case workflow.EpisodeStarted:
		ws := &protos.WorkflowStartedEvent{}
		if o.Version != "" || len(patches) > 0 {
			ws.Version = &protos.WorkflowVersion{Patches: patches}
			if o.Version != "" {
				ws.Version.Name = &o.Version
			}
		}
		he.EventType = &protos.HistoryEvent_WorkflowStarted{WorkflowStarted: ws}
	case workflow.WorkflowStarted:
		es := &protos.ExecutionStartedEvent{
			Name:             ev.Name,
			Version:          optString(ev.Version),
			Input:            stringValue(ev.Data),
			WorkflowInstance: &protos.WorkflowInstance{InstanceId: o.InstanceID, ExecutionId: optString(o.ExecutionID)},
		}
		es.ParentTraceContext = traceContext(o.TraceParent, o.TraceState)
		if ev.Instance != "" {
			es.ParentInstance = &protos.ParentInstanceInfo{TaskScheduledId: task,
				WorkflowInstance: &protos.WorkflowInstance{InstanceId: ev.Instance}}
		}
		he.EventType = &protos.HistoryEvent_ExecutionStarted{ExecutionStarted: es}
	case workflow.ActivityScheduled:
		he.EventId = task
		he.EventType = &protos.HistoryEvent_TaskScheduled{TaskScheduled: &protos.TaskScheduledEvent{Name: ev.Name, Input: stringValue(ev.Data),
			TaskExecutionId: ev.TaskExecutionID}}
		if ev.TaskExecutionID != "" {
			if c.execIDs == nil {
				c.execIDs = map[int64]string{}
			}
			c.execIDs[ev.TaskID] = ev.TaskExecutionID
		}
	case workflow.ActivityCompleted:
		he.EventType = &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: task, Result: stringValue(ev.Data),
			TaskExecutionId: c.execIDs[ev.TaskID]}}
	case workflow.ActivityFailed:
		he.EventType = &protos.HistoryEvent_TaskFailed{TaskFailed: &protos.TaskFailedEvent{TaskScheduledId: task, FailureDetails: failureDetails(ev.Failure),
			TaskExecutionId: c.execIDs[ev.TaskID]}}
	case workflow.TimerCreated:
		he.EventId = task
		he.EventType = &protos.HistoryEvent_TimerCreated{TimerCreated: &protos.TimerCreatedEvent{FireAt: timestamppb.New(ev.FireAt)}}
	case workflow.TimerFired:
		he.EventType = &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{TimerId: task, FireAt: timestamppb.New(ev.Time)}}
	case workflow.ChildScheduled:
		he.EventId = task
		he.EventType = &protos.HistoryEvent_ChildWorkflowInstanceCreated{ChildWorkflowInstanceCreated: &protos.ChildWorkflowInstanceCreatedEvent{
			InstanceId: ev.Instance, Name: ev.Name, Input: stringValue(ev.Data)}}
	case workflow.ChildCompleted:
		he.EventType = &protos.HistoryEvent_ChildWorkflowInstanceCompleted{ChildWorkflowInstanceCompleted: &protos.ChildWorkflowInstanceCompletedEvent{
			TaskScheduledId: task, Result: stringValue(ev.Data)}}
	case workflow.ChildFailed:
		he.EventType = &protos.HistoryEvent_ChildWorkflowInstanceFailed{ChildWorkflowInstanceFailed: &protos.ChildWorkflowInstanceFailedEvent{
			TaskScheduledId: task, FailureDetails: failureDetails(ev.Failure)}}
	case workflow.EventRaised:
		he.EventType = &protos.HistoryEvent_EventRaised{EventRaised: &protos.EventRaisedEvent{Name: ev.Name, Input: stringValue(ev.Data)}}
	case workflow.ExecutionStalled:
		reason := protos.StalledReason_VERSION_NOT_AVAILABLE
		switch ev.Name {
		case string(workflow.StallPatchMismatch):
			reason = protos.StalledReason_PATCH_MISMATCH
		case string(workflow.StallPayloadTooLarge):
			reason = protos.StalledReason_PAYLOAD_SIZE_EXCEEDED
		}
		var desc string
		_ = json.Unmarshal(ev.Data, &desc)
		he.EventType = &protos.HistoryEvent_ExecutionStalled{ExecutionStalled: &protos.ExecutionStalledEvent{Reason: reason, Description: &desc}}
	case workflow.EventSent:
		he.EventId = task
		he.EventType = &protos.HistoryEvent_EventSent{EventSent: &protos.EventSentEvent{InstanceId: ev.Instance, Name: ev.Name, Input: stringValue(ev.Data)}}
	default:
		return nil
	}
	return he
}

// orchestrationResult converts a worker's answer into the actions weft records.
// The action that ends the workflow is moved last, whatever order it came in.
func orchestrationResult(res *protos.WorkflowResponse) (actors.OrchestrationResult, error) {
	var out actors.OrchestrationResult
	if cs := res.GetCustomStatus(); cs != nil {
		out.CustomStatus, out.CustomStatusSet = []byte(cs.GetValue()), true
	}
	if v := res.GetVersion(); v != nil {
		out.Version, out.Patches = v.GetName(), v.GetPatches()
	}
	var end *workflow.Event
	for _, a := range res.GetActions() {
		task := int64(a.GetId())
		switch x := a.GetWorkflowActionType().(type) {
		case *protos.WorkflowAction_ScheduleTask:
			t := x.ScheduleTask
			if t.GetName() == "" {
				return out, fmt.Errorf("action %d schedules an activity without a name", task)
			}
			out.Actions = append(out.Actions, workflow.Event{Kind: workflow.ActivityScheduled, TaskID: task, Name: t.GetName(), Data: payload(t.GetInput()),
				TaskExecutionID: t.GetTaskExecutionId(), App: a.GetRouter().GetTargetAppID()})
		case *protos.WorkflowAction_CreateChildWorkflow:
			c := x.CreateChildWorkflow
			id := c.GetInstanceId()
			if id == "" {
				id = fmt.Sprintf("%s:%04x", res.GetInstanceId(), task) // what the SDKs derive
			}
			out.Actions = append(out.Actions, workflow.Event{Kind: workflow.ChildScheduled, TaskID: task, Name: c.GetName(), Instance: id, Data: payload(c.GetInput()),
				App: a.GetRouter().GetTargetAppID()})
		case *protos.WorkflowAction_CreateTimer:
			out.Actions = append(out.Actions, workflow.Event{Kind: workflow.TimerCreated, TaskID: task, FireAt: x.CreateTimer.GetFireAt().AsTime().UTC()})
		case *protos.WorkflowAction_SendEvent:
			e := x.SendEvent
			if e.GetInstance().GetInstanceId() == "" || e.GetName() == "" {
				return out, fmt.Errorf("action %d sends an event without a target instance or a name", task)
			}
			out.Actions = append(out.Actions, workflow.Event{Kind: workflow.EventSent, TaskID: task, Instance: e.GetInstance().GetInstanceId(), Name: e.GetName(), Data: payload(e.GetData())})
		case *protos.WorkflowAction_CompleteWorkflow:
			ev, carry, err := completion(x.CompleteWorkflow)
			if err != nil {
				return out, fmt.Errorf("action %d: %w", task, err)
			}
			end, out.Carry = &ev, carry
		case *protos.WorkflowAction_WorkflowVersionNotAvailable:
			// The worker lacks the instance's version: nothing else applies.
			return actors.OrchestrationResult{VersionNotAvailable: true}, nil
		case *protos.WorkflowAction_TerminateWorkflow:
			return out, fmt.Errorf("action %d terminates instance %s from a workflow, which weft does not support; terminate it through the client", task, x.TerminateWorkflow.GetInstanceId())
		default:
			return out, fmt.Errorf("action %d is of a kind weft does not know (%T)", task, x)
		}
	}
	if end != nil {
		out.Actions = append(out.Actions, *end)
	}
	return out, nil
}

func completion(c *protos.CompleteWorkflowAction) (workflow.Event, []workflow.Event, error) {
	switch c.GetWorkflowStatus() {
	case protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED:
		return workflow.Event{Kind: workflow.WorkflowCompleted, Data: payload(c.GetResult())}, nil, nil
	case protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED:
		f := failureOf(c.GetFailureDetails())
		if f == nil {
			f = &workflow.Failure{Type: "WorkflowFailed", Message: c.GetDetails().GetValue()}
		}
		return workflow.Event{Kind: workflow.WorkflowFailed, Failure: f}, nil, nil
	case protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
		var carry []workflow.Event
		for _, he := range c.GetCarryoverEvents() {
			er := he.GetEventRaised()
			if er == nil {
				return workflow.Event{}, nil, fmt.Errorf("continue-as-new carries a %T event; only raised events can be carried over", he.GetEventType())
			}
			carry = append(carry, workflow.Event{Kind: workflow.EventRaised, Name: er.GetName(), Data: payload(er.GetInput()), Time: he.GetTimestamp().AsTime().UTC()})
		}
		return workflow.Event{Kind: workflow.ContinuedAsNew, Data: payload(c.GetResult())}, carry, nil
	}
	return workflow.Event{}, nil, fmt.Errorf("the workflow ends with status %s, which a workflow cannot give itself", c.GetWorkflowStatus())
}

// traceContext is the protocol's form of a W3C trace context; nil for none.
func traceContext(parent, state string) *protos.TraceContext {
	if parent == "" {
		return nil
	}
	return &protos.TraceContext{TraceParent: parent, TraceState: optString(state)}
}

func failureDetails(f *workflow.Failure) *protos.TaskFailureDetails {
	if f == nil {
		return &protos.TaskFailureDetails{ErrorType: "Error", ErrorMessage: "failed"}
	}
	return &protos.TaskFailureDetails{ErrorType: f.Type, ErrorMessage: f.Message, StackTrace: optString(f.Stack), IsNonRetriable: f.NonRetriable}
}

func failureOf(fd *protos.TaskFailureDetails) *workflow.Failure {
	if fd == nil {
		return nil
	}
	msg := fd.GetErrorMessage()
	for in := fd.GetInnerFailure(); in != nil; in = in.GetInnerFailure() {
		msg += ": " + in.GetErrorType() + ": " + in.GetErrorMessage()
	}
	return &workflow.Failure{Type: fd.GetErrorType(), Message: msg, Stack: fd.GetStackTrace().GetValue(), NonRetriable: fd.GetIsNonRetriable()}
}
