// Command statefulworker is a worker as Dapr 1.17's SDKs are with stateful
// history, written on a client generated from the current durabletask
// protocol (api/durabletask/protos): it announces
// WORKER_CAPABILITY_STATEFUL_HISTORY, keeps each instance's committed history
// between episodes, and rebuilds an episode's history from the prefix it holds
// (cachedHistory.eventCount) and the events sent; when it does not hold that
// prefix it fetches the whole history with GetInstanceHistory, as the protocol
// says. It plays one program:
//
//   - workflow Count: its input is a number of steps S; it calls activity Add
//     S times in sequence, each on the previous result (the first on 0), and
//     ends with the last result, so a complete run ends with S;
//   - activity Add: answers its input + 1, after -activity-delay.
//
// Before every decision Count checks the history it rebuilt: one
// ExecutionStarted first, task ids scheduled in order and once each, at most
// one completion per scheduled task and none for a task not scheduled. A
// history that breaks that (an event lost, or applied twice, or a prefix that
// does not fit the delta) fails the instance with the reason, for the test to
// read. It prints "connected" once its stream is open, "activity ID TASK" for
// every activity it runs and "episode ID held N sent M" for every episode (N:
// the past events the server says it holds, -1 for none; M: those sent).
//
//	statefulworker -server 127.0.0.1:50001 -activity-delay 20ms
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft/api/durabletask/protos"
)

func main() {
	server := flag.String("server", "", "weft serve's gRPC address")
	delay := flag.Duration("activity-delay", 0, "how long each activity takes")
	flag.Parse()
	if err := run(*server, *delay); err != nil {
		fmt.Fprintln(os.Stderr, "statefulworker:", err)
		os.Exit(1)
	}
}

func run(server string, delay time.Duration) error {
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := protos.NewTaskHubSidecarServiceClient(conn)
	ctx := context.Background()
	stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{
		Capabilities: []protos.WorkerCapability{protos.WorkerCapability_WORKER_CAPABILITY_STATEFUL_HISTORY}})
	if err != nil {
		return err
	}
	fmt.Println("connected")
	// Episodes run one at a time on this goroutine, so the cache needs no lock;
	// activities run on their own goroutines, as the SDKs run them.
	cache := map[string][]*protos.HistoryEvent{} // committed history held per instance
	for {
		wi, err := stream.Recv()
		if err != nil {
			return err
		}
		if ar := wi.GetActivityRequest(); ar != nil {
			go func() {
				id := ar.GetWorkflowInstance().GetInstanceId()
				fmt.Printf("activity %s %d\n", id, ar.GetTaskId())
				time.Sleep(delay)
				n, _ := strconv.Atoi(ar.GetInput().GetValue())
				_, err := c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: id, TaskId: ar.GetTaskId(),
					Result: wrapperspb.String(strconv.Itoa(n + 1)), CompletionToken: wi.GetCompletionToken()})
				if err != nil {
					fmt.Fprintln(os.Stderr, "statefulworker: complete activity:", err)
				}
			}()
			continue
		}
		wr := wi.GetWorkflowRequest()
		id := wr.GetInstanceId()
		held := -1
		if ch := wr.GetCachedHistory(); ch != nil {
			held = int(ch.GetEventCount())
		}
		fmt.Printf("episode %s held %d sent %d\n", id, held, len(wr.GetPastEvents()))
		past, err := pastOf(ctx, c, wr, cache[id])
		if err != nil {
			return err
		}
		res := &protos.WorkflowResponse{InstanceId: id, CompletionToken: wi.GetCompletionToken(),
			Actions: count(append(append([]*protos.HistoryEvent(nil), past...), wr.GetNewEvents()...))}
		if _, err := c.CompleteWorkflowTask(ctx, res); err != nil {
			// Not applied: what this worker holds of the instance is unknown now.
			delete(cache, id)
			fmt.Fprintln(os.Stderr, "statefulworker: complete episode:", err)
			continue
		}
		if finished(res) {
			delete(cache, id)
		} else {
			cache[id] = past
		}
	}
}

// pastOf is the episode's committed history: the prefix held plus the events
// sent when the server says the worker holds that prefix, else the whole.
func pastOf(ctx context.Context, c protos.TaskHubSidecarServiceClient, wr *protos.WorkflowRequest, held []*protos.HistoryEvent) ([]*protos.HistoryEvent, error) {
	ch := wr.GetCachedHistory()
	if ch == nil {
		return wr.GetPastEvents(), nil
	}
	if int(ch.GetEventCount()) == len(held) {
		return append(append([]*protos.HistoryEvent(nil), held...), wr.GetPastEvents()...), nil
	}
	h, err := c.GetInstanceHistory(ctx, &protos.GetInstanceHistoryRequest{InstanceId: wr.GetInstanceId()})
	if err != nil {
		return nil, fmt.Errorf("cache miss on %s (held %d, server says %d): GetInstanceHistory: %w", wr.GetInstanceId(), len(held), ch.GetEventCount(), err)
	}
	return h.GetEvents(), nil
}

func finished(res *protos.WorkflowResponse) bool {
	for _, a := range res.GetActions() {
		if a.GetCompleteWorkflow() != nil {
			return true
		}
	}
	return false
}

// count is workflow Count's decision on the whole history.
func count(history []*protos.HistoryEvent) []*protos.WorkflowAction {
	steps, results, outstanding, err := replay(history)
	if err != nil {
		return []*protos.WorkflowAction{complete(protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED, nil,
			&protos.TaskFailureDetails{ErrorType: "BadHistory", ErrorMessage: err.Error()})}
	}
	last := 0
	if len(results) > 0 {
		last = results[len(results)-1]
	}
	switch {
	case len(results) == steps:
		return []*protos.WorkflowAction{complete(protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, wrapperspb.String(strconv.Itoa(last)), nil)}
	case outstanding:
		return nil // the scheduled Add has not answered yet
	default:
		return []*protos.WorkflowAction{{Id: int32(len(results)), WorkflowActionType: &protos.WorkflowAction_ScheduleTask{
			ScheduleTask: &protos.ScheduleTaskAction{Name: "Add", Input: wrapperspb.String(strconv.Itoa(last))}}}}
	}
}

func complete(status protos.OrchestrationStatus, result *wrapperspb.StringValue, failure *protos.TaskFailureDetails) *protos.WorkflowAction {
	return &protos.WorkflowAction{Id: -1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
		WorkflowStatus: status, Result: result, FailureDetails: failure}}}
}

// replay checks the history and returns Count's steps, the results so far in
// task order, and whether a scheduled Add has no result yet.
func replay(history []*protos.HistoryEvent) (steps int, results []int, outstanding bool, err error) {
	scheduled := 0
	started := false
	for i, ev := range history {
		switch {
		case ev.GetExecutionStarted() != nil:
			if started || i > 1 {
				return 0, nil, false, fmt.Errorf("event %d: ExecutionStarted again or late", i)
			}
			started = true
			if steps, err = strconv.Atoi(ev.GetExecutionStarted().GetInput().GetValue()); err != nil {
				return 0, nil, false, fmt.Errorf("input %q: %w", ev.GetExecutionStarted().GetInput().GetValue(), err)
			}
		case ev.GetTaskScheduled() != nil:
			if ev.GetEventId() != int32(scheduled) {
				return 0, nil, false, fmt.Errorf("event %d: task %d scheduled where task %d was next", i, ev.GetEventId(), scheduled)
			}
			scheduled++
		case ev.GetTaskCompleted() != nil:
			task := int(ev.GetTaskCompleted().GetTaskScheduledId())
			if task != len(results) || task >= scheduled {
				return 0, nil, false, fmt.Errorf("event %d: a result for task %d, with %d scheduled and %d answered", i, task, scheduled, len(results))
			}
			n, err := strconv.Atoi(ev.GetTaskCompleted().GetResult().GetValue())
			if err != nil {
				return 0, nil, false, fmt.Errorf("event %d: result %q: %w", i, ev.GetTaskCompleted().GetResult().GetValue(), err)
			}
			if n != task+1 {
				return 0, nil, false, fmt.Errorf("event %d: task %d answered %d, want %d", i, task, n, task+1)
			}
			results = append(results, n)
		case ev.GetWorkflowStarted() != nil:
		default:
			return 0, nil, false, fmt.Errorf("event %d: unexpected %T", i, ev.GetEventType())
		}
	}
	if !started {
		return 0, nil, false, fmt.Errorf("no ExecutionStarted in %d events", len(history))
	}
	return steps, results, scheduled > len(results), nil
}
