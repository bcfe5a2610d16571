package durabletask

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/api/durabletask/protos"
	"github.com/weftrt/weft/workflow"
)

// GetWorkItems is a worker's stream: it receives the episodes and activity
// attempts that no in-process code runs, for as long as it stays connected. When
// the stream ends, whatever it had not answered goes to another worker.
func (s *Server) GetWorkItems(req *protos.GetWorkItemsRequest, stream grpc.ServerStreamingServer[protos.WorkItem]) error {
	if s.pool == nil {
		return status.Error(codes.FailedPrecondition, "remote workers are off on this server: run `weft serve` with gRPC enabled")
	}
	ctx := stream.Context()
	w := s.pool.ConnectApp(peerOf(ctx), appOf(ctx))
	defer w.Disconnect()
	var cache *workerCache
	if slices.Contains(req.GetCapabilities(), protos.WorkerCapability_WORKER_CAPABILITY_STATEFUL_HISTORY) {
		cache = newWorkerCache()
	}
	for {
		it, err := w.Next(ctx)
		if err != nil {
			if errors.Is(err, actors.ErrClosed) {
				return status.Error(codes.Unavailable, "weft is shutting down")
			}
			return nil // the worker went away
		}
		item := workItem(it, cache)
		// proto.Size walks the whole message, as the send does again: only
		// an item that may be near the limit is measured.
		if roughSize(it) > s.maxItem/2 {
			if size := proto.Size(item); size > s.maxItem {
				s.tooLarge(ctx, it, size)
				continue
			}
		}
		if err := stream.Send(item); err != nil {
			s.log.Debug("sending a work item failed; the worker's items go to another worker", "peer", peerOf(ctx), "err", err)
			return err
		}
	}
}

// CompleteOrchestratorTask hands a worker's answer to its episode's instance.
// On a single node it returns before the outcome is committed, as Dapr's
// sidecar does (see RemoteWorkers.AnswerOrchestration); on a cluster node,
// once committed.
func (s *Server) CompleteOrchestratorTask(ctx context.Context, res *protos.WorkflowResponse) (*protos.CompleteTaskResponse, error) {
	if s.pool == nil {
		return nil, status.Error(codes.FailedPrecondition, "remote workers are off on this server")
	}
	result, err := orchestrationResult(res)
	if err != nil {
		// The worker sent something weft cannot record: the workflow fails with
		// the reason rather than waiting forever for a better answer.
		s.log.Warn("a worker's answer cannot be recorded; the workflow fails", "instance", res.GetInstanceId(), "err", err)
		result = actors.OrchestrationResult{Actions: []workflow.Event{{Kind: workflow.WorkflowFailed,
			Failure: &workflow.Failure{Type: "UnsupportedAction", Message: err.Error(), NonRetriable: true}}}}
	}
	if err := s.pool.AnswerOrchestration(ctx, peerOf(ctx), res.GetInstanceId(), result); err != nil {
		return nil, completionStatus(err)
	}
	return &protos.CompleteTaskResponse{}, nil
}

// CompleteWorkflowTask is CompleteOrchestratorTask under the name current
// SDKs call it by.
func (s *Server) CompleteWorkflowTask(ctx context.Context, res *protos.WorkflowResponse) (*protos.CompleteTaskResponse, error) {
	return s.CompleteOrchestratorTask(ctx, res)
}

// CompleteActivityTask reports an activity attempt's outcome.
func (s *Server) CompleteActivityTask(ctx context.Context, res *protos.ActivityResponse) (*protos.CompleteTaskResponse, error) {
	if s.pool == nil {
		return nil, status.Error(codes.FailedPrecondition, "remote workers are off on this server")
	}
	var failure *workflow.Failure
	if fd := res.GetFailureDetails(); fd != nil {
		failure = failureOf(fd)
	}
	err := s.pool.CompleteActivity(peerOf(ctx), res.GetInstanceId(), int64(res.GetTaskId()), payload(res.GetResult()), failure)
	if err != nil {
		return nil, completionStatus(err)
	}
	return &protos.CompleteTaskResponse{}, nil
}

func completionStatus(err error) error {
	if errors.Is(err, actors.ErrNotAssigned) {
		return status.Error(codes.NotFound, err.Error()+" (it was answered already, withdrawn, or handed to another worker)")
	}
	return toStatus(err)
}

// roughSize bounds an item's encoded size from above, within a factor of
// about two: its payloads and names, and a generous allowance per event.
func roughSize(it *actors.WorkItem) int {
	const perEvent = 128 // tags, ids, timestamps, wrappers
	if a := it.Activity; a != nil {
		n := len(a.Input) + len(a.Name) + len(a.InstanceID) + 4*perEvent
		if r := a.Remote; r != nil {
			n += len(r.TaskExecutionID) + len(r.TraceParent) + len(r.TraceState)
		}
		return n
	}
	o := it.Orchestration
	n := len(o.InstanceID) + len(o.Name) + len(o.Version) + len(o.TraceParent) + len(o.TraceState) + 4*perEvent
	for _, evs := range [][]workflow.Event{o.Past, o.New} {
		for i := range evs {
			ev := &evs[i]
			n += perEvent + len(ev.Data) + len(ev.Name) + len(ev.Instance) + len(ev.Version) + len(ev.TaskExecutionID) + len(ev.App) + len(o.InstanceID)
			if f := ev.Failure; f != nil {
				n += len(f.Type) + len(f.Message) + len(f.Stack) + perEvent
			}
		}
	}
	return n
}

// tooLarge answers, in the worker's place, an item the stream cannot carry:
// an episode stalls its instance, an activity fails with the reason. Sending
// it would end the stream, and every worker's after it.
func (s *Server) tooLarge(ctx context.Context, it *actors.WorkItem, size int) {
	peer := peerOf(ctx)
	if o := it.Orchestration; o != nil {
		// The description stays the same while the history grows, so the
		// stall is marked once.
		why := fmt.Sprintf("the step's history and inputs are more than the %d bytes a worker may be sent (gRPC's message limit); "+
			"keep payloads smaller (store large data elsewhere and pass a reference), or terminate the instance", s.maxItem)
		s.log.Warn("a workflow step is too large to send to a worker; the instance stalls", "instance", o.InstanceID, "bytes", size, "limit", s.maxItem)
		if err := s.pool.CompleteOrchestration(ctx, peer, o.InstanceID, actors.OrchestrationResult{TooLarge: why}); err != nil {
			s.log.Warn("stalling an instance whose step is too large failed", "instance", o.InstanceID, "err", err)
		}
		return
	}
	a := it.Activity
	why := fmt.Sprintf("activity %s's input is %d bytes with its request, more than the %d a worker may be sent", a.Name, size, s.maxItem)
	s.log.Warn("an activity's input is too large to send to a worker; the attempt fails", "instance", a.InstanceID, "activity", a.Name, "bytes", size, "limit", s.maxItem)
	err := s.pool.CompleteActivity(peer, a.InstanceID, a.TaskID, nil, &workflow.Failure{Type: "PayloadTooLarge", Message: why, NonRetriable: true})
	if err != nil {
		s.log.Warn("failing an activity whose input is too large failed", "instance", a.InstanceID, "err", err)
	}
}

// appOf is the app a call names in its "dapr-app-id" metadata, as Dapr's
// gRPC calls name their app: a worker's own app on its stream, the app whose
// workflow a start is for.
func appOf(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("dapr-app-id"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// peerOf names the connection a call came on: a worker's responses come on the
// connection its stream uses.
func peerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// workItem turns a pool item into its protocol form; cache is the stream's
// record of what a stateful-history worker holds (nil: the worker does not
// announce the capability).
func workItem(it *actors.WorkItem, cache *workerCache) *protos.WorkItem {
	if o := it.Orchestration; o != nil {
		req := &protos.WorkflowRequest{InstanceId: o.InstanceID, ExecutionId: optString(o.ExecutionID)}
		if held, raw, warm := cache.held(o); warm {
			// Only the events since: converting the whole past every step
			// would make the server's cost per step grow with the history.
			req.PastEvents, req.NewEvents = deltaEvents(o, raw)
			req.CachedHistory = &protos.CachedHistory{EventCount: int32(held)}
			cache.sent(o, held+len(req.PastEvents))
		} else {
			cache.sent(o, setEncodedEpisode(req, o))
		}
		return &protos.WorkItem{Request: &protos.WorkItem_WorkflowRequest{WorkflowRequest: req}}
	}
	a := it.Activity
	return &protos.WorkItem{Request: &protos.WorkItem_ActivityRequest{ActivityRequest: &protos.ActivityRequest{
		Name:  a.Name,
		Input: stringValue(a.Input),
		WorkflowInstance: &protos.WorkflowInstance{
			InstanceId: a.InstanceID, ExecutionId: optString(actors.ExecutionID(a.Gen)),
		},
		TaskId:             int32(a.TaskID),
		TaskExecutionId:    a.Remote.GetTaskExecutionID(),
		ParentTraceContext: traceContext(a.Remote.GetTraceParent(), a.Remote.GetTraceState()),
	}}}
}
