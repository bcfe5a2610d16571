package durabletask

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/api/durabletask/protos"
)

// GetInstanceHistory returns an instance's history (its current generation) in
// the protocol's events, as a worker sees it: what the SDKs fetch when a
// worker's cached history does not match (Dapr 1.17).
func (s *Server) GetInstanceHistory(ctx context.Context, req *protos.GetInstanceHistoryRequest) (*protos.GetInstanceHistoryResponse, error) {
	id := req.GetInstanceId()
	st, err := s.rt.Status(ctx, id)
	if err != nil {
		return nil, toStatus(err)
	}
	h, err := s.rt.History(ctx, id)
	if err != nil {
		return nil, toStatus(err)
	}
	past, _ := episodeEvents(&actors.OrchestrationWork{InstanceID: id, ExecutionID: actors.ExecutionID(st.Generation), Name: st.Name, Version: st.Version,
		TraceParent: st.TraceParent, TraceState: st.TraceState, Past: h})
	return &protos.GetInstanceHistoryResponse{Events: past}, nil
}

// ListInstanceIDs pages through every instance's id, oldest first; the
// continuation token is weft's listing token.
func (s *Server) ListInstanceIDs(ctx context.Context, req *protos.ListInstanceIDsRequest) (*protos.ListInstanceIDsResponse, error) {
	q := weft.ListQuery{PageSize: int(req.GetPageSize()), PageToken: req.GetContinuationToken()}
	if q.PageSize <= 0 || q.PageSize > 1000 {
		q.PageSize = 1000
	}
	page, err := s.rt.List(ctx, q)
	if errors.Is(err, weft.ErrInvalidInput) {
		return nil, status.Errorf(codes.InvalidArgument, "continuation token %q is not one this server gave: %v", req.GetContinuationToken(), err)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &protos.ListInstanceIDsResponse{InstanceIds: make([]string, len(page.Instances))}
	for i, in := range page.Instances {
		resp.InstanceIds[i] = in.ID
	}
	if page.NextPageToken != "" {
		resp.ContinuationToken = &page.NextPageToken
	}
	return resp, nil
}

// RerunWorkflowFromEvent starts a new instance from one of a finished
// instance's calls (weft.Runtime.Rerun): eventID is the event id of the
// activity's or child workflow's scheduling event.
func (s *Server) RerunWorkflowFromEvent(ctx context.Context, req *protos.RerunWorkflowFromEventRequest) (*protos.RerunWorkflowFromEventResponse, error) {
	opts := weft.RerunOptions{InstanceID: req.GetNewInstanceID(), ChildInstanceID: req.GetNewChildWorkflowInstanceID()}
	if req.GetOverwriteInput() {
		opts.Input, opts.OverwriteInput = payload(req.GetInput()), true
	}
	id, err := s.rt.Rerun(ctx, req.GetSourceInstanceID(), int64(req.GetEventID()), opts)
	if err != nil {
		return nil, toStatus(err)
	}
	return &protos.RerunWorkflowFromEventResponse{NewInstanceID: id}, nil
}
