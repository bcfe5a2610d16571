// Package durabletask serves the durabletask "sidecar" gRPC protocol
// (TaskHubSidecarService), the one protocol through which Dapr's workflow SDKs
// (Go, .NET, Java, Python, JavaScript) and durabletask-go's client talk to their
// engine. With it, an existing Dapr workflow app runs on weft by pointing its
// SDK at weft's gRPC address instead of the Dapr sidecar's.
//
// Two halves: the client calls (start, get, wait, raise, terminate, suspend,
// resume, purge, query) map onto weft.Runtime's client methods; the worker calls
// (GetWorkItems, CompleteOrchestratorTask or its current name CompleteWorkflowTask,
// CompleteActivityTask) connect the app's workers to the runtime's pool of remote
// workers (actors.RemoteWorkers), which runs every workflow and activity not
// registered in this process.
package durabletask

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/api/durabletask/protos"
)

// Options configure a Server.
type Options struct {
	// Token, when set, is required in the "dapr-api-token" metadata of every call
	// (as Dapr's sidecar requires it when DAPR_API_TOKEN is set).
	Token  string
	Logger *slog.Logger
	// MaxWorkItemBytes is the largest work item sent to a worker (default and
	// most: MaxSendBytes). A larger episode stalls its instance
	// (PAYLOAD_SIZE_EXCEEDED) and a larger activity input fails the activity,
	// instead of tearing the worker's stream down.
	MaxWorkItemBytes int
}

// MaxSendBytes is the largest message the server sends.
const MaxSendBytes = 64 << 20

// Server implements TaskHubSidecarService on a weft runtime.
type Server struct {
	protos.UnimplementedTaskHubSidecarServiceServer
	rt      *weft.Runtime
	pool    *actors.RemoteWorkers // nil: the runtime was opened without RemoteWorkers
	log     *slog.Logger
	maxItem int
}

// New returns a server for rt. Remote workers can connect only if rt was opened
// with Options.RemoteWorkers; without it the client calls still work.
func New(rt *weft.Runtime, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxWorkItemBytes <= 0 || opts.MaxWorkItemBytes > MaxSendBytes {
		opts.MaxWorkItemBytes = MaxSendBytes
	}
	return &Server{rt: rt, pool: rt.Host().RemoteWorkers(), log: opts.Logger, maxItem: opts.MaxWorkItemBytes}
}

// NewGRPCServer returns a grpc.Server serving s, with the token check when
// opts.Token is set. Extra grpc options (TLS credentials) come last.
func NewGRPCServer(s *Server, opts Options, extra ...grpc.ServerOption) *grpc.Server {
	all := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(16 << 20), // histories of long workflows travel in one message
		grpc.MaxSendMsgSize(MaxSendBytes),
		// Fixed flow-control windows, large enough for any item a worker
		// answers with: grpc's dynamic window sends a ping per round trip for
		// as long as the connection is busy, which a worker's stream and its
		// small unary answers always are (3% of the server's and of the SDK
		// worker's CPU per activity, sdkbench).
		grpc.InitialWindowSize(4 << 20),
		grpc.InitialConnWindowSize(16 << 20),
		// A pool of goroutines takes the unary calls (two per activity from an
		// SDK worker) instead of a new goroutine each, whose stack grows anew
		// every call: 3-4% of the server's CPU per activity (sdkbench, 4
		// pairs). A stream arriving while all are busy, as a worker's
		// long-lived GetWorkItems does, still gets its own goroutine.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	}
	// Outermost: a panic in a handler ends the call with Internal, not the
	// process with every workflow on it (grpc-go does not recover handlers).
	all = append(all, grpc.ChainUnaryInterceptor(s.recoverUnary), grpc.ChainStreamInterceptor(s.recoverStream))
	if opts.Token != "" {
		all = append(all, grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := checkToken(ctx, opts.Token); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}), grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if err := checkToken(ss.Context(), opts.Token); err != nil {
				return err
			}
			return next(srv, ss)
		}))
	}
	g := grpc.NewServer(append(all, extra...)...)
	desc := serviceDesc(s)
	g.RegisterService(&desc, s)
	return g
}

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
	defer s.recovered(info.FullMethod, &err)
	return next(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) (err error) {
	defer s.recovered(info.FullMethod, &err)
	return next(srv, ss)
}

// recovered turns a handler's panic into the call's error, logged with its stack.
func (s *Server) recovered(method string, err *error) {
	p := recover()
	if p == nil {
		return
	}
	s.log.Error("a gRPC handler panicked; the call fails and the server goes on", "method", method, "panic", p, "stack", string(debug.Stack()))
	*err = status.Errorf(codes.Internal, "internal error in %s: %v (a bug in weft: the server's log has the stack)", method, p)
}

func checkToken(ctx context.Context, want string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	got := md.Get("dapr-api-token")
	if len(got) == 0 {
		return status.Error(codes.Unauthenticated, "missing dapr-api-token metadata: this server requires an API token (set DAPR_API_TOKEN in the app)")
	}
	if subtle.ConstantTimeCompare([]byte(got[0]), []byte(want)) != 1 {
		return status.Error(codes.Unauthenticated, "invalid dapr-api-token")
	}
	return nil
}

// Hello is the SDKs' connectivity check.
func (s *Server) Hello(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// StartInstance schedules a workflow. The id-reuse policy applies its action when
// the existing instance's status is one of the listed ones; otherwise an
// existing id is AlreadyExists, as in durabletask's own backends.
func (s *Server) StartInstance(ctx context.Context, req *protos.CreateInstanceRequest) (*protos.CreateInstanceResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "workflow name is empty: set the name of the workflow to start")
	}
	id := req.GetInstanceId()
	opts := []weft.ScheduleOption{}
	if id != "" {
		opts = append(opts, weft.WithInstanceID(id))
	}
	if ts := req.GetScheduledStartTimestamp(); ts != nil {
		opts = append(opts, weft.WithStartTime(ts.AsTime()))
	}
	if v := req.GetVersion().GetValue(); v != "" {
		opts = append(opts, weft.WithVersion(v))
	}
	if app := appOf(ctx); app != "" {
		opts = append(opts, weft.WithApp(app))
	}
	if tc := req.GetParentTraceContext(); tc != nil {
		opts = append(opts, weft.WithTraceContext(tc.GetTraceParent(), tc.GetTraceState().GetValue()))
	}
	if p := legacyReusePolicy(req); p != nil && id != "" {
		st, err := s.rt.Status(ctx, id)
		switch {
		case errors.Is(err, weft.ErrInstanceNotFound):
		case err != nil:
			return nil, toStatus(err)
		case !statusListed(p.GetOperationStatus(), st.Status):
			return nil, status.Errorf(codes.AlreadyExists, "%s: instance %s is %s, a status the id-reuse policy does not list", duplicateInstance, id, st.Status)
		case p.GetAction() == protos.CreateOrchestrationAction_IGNORE:
			return &protos.CreateInstanceResponse{InstanceId: id}, nil
		case p.GetAction() == protos.CreateOrchestrationAction_TERMINATE:
			opts = append(opts, weft.WithReusePolicy(weft.ReuseTerminate))
		}
	}
	got, err := s.rt.Schedule(ctx, req.GetName(), payload(req.GetInput()), opts...)
	if err != nil {
		return nil, toStatus(err)
	}
	return &protos.CreateInstanceResponse{InstanceId: got}, nil
}

func statusListed(list []protos.OrchestrationStatus, st weft.RuntimeStatus) bool {
	for _, s := range list {
		if s == protoStatus(st) {
			return true
		}
	}
	return false
}

// GetInstance returns an instance's state; a missing instance is exists=false,
// which the SDKs turn into their own not-found error.
func (s *Server) GetInstance(ctx context.Context, req *protos.GetInstanceRequest) (*protos.GetInstanceResponse, error) {
	st, err := s.rt.Status(ctx, req.GetInstanceId())
	return instanceResponse(st, err, req.GetGetInputsAndOutputs())
}

// WaitForInstanceStart returns once the instance left PENDING: for a workflow run
// by a remote worker, once its first episode is committed.
func (s *Server) WaitForInstanceStart(ctx context.Context, req *protos.GetInstanceRequest) (*protos.GetInstanceResponse, error) {
	st, err := untilItExists(ctx, req.GetInstanceId(), s.rt.WaitForStart)
	return instanceResponse(st, err, req.GetGetInputsAndOutputs())
}

// WaitForInstanceCompletion returns once the instance finished. Both waits are
// woken by the runtime's commits, not by polling.
func (s *Server) WaitForInstanceCompletion(ctx context.Context, req *protos.GetInstanceRequest) (*protos.GetInstanceResponse, error) {
	st, err := untilItExists(ctx, req.GetInstanceId(), s.rt.WaitForCompletion)
	return instanceResponse(st, err, req.GetGetInputsAndOutputs())
}

// untilItExists runs wait, and again while the instance does not exist yet:
// as the reference server does, a wait for an instance scheduled a moment
// later (by another client, or a start still in flight) waits for it to
// appear, until the call's deadline.
func untilItExists(ctx context.Context, id string, wait func(context.Context, string) (*weft.InstanceStatus, error)) (*weft.InstanceStatus, error) {
	pause := 10 * time.Millisecond
	for {
		st, err := wait(ctx, id)
		if !errors.Is(err, weft.ErrInstanceNotFound) || ctx.Err() != nil {
			return st, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("instance %s does not exist: %w", id, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 250*time.Millisecond)
	}
}

func instanceResponse(st *weft.InstanceStatus, err error, payloads bool) (*protos.GetInstanceResponse, error) {
	if errors.Is(err, weft.ErrInstanceNotFound) {
		return &protos.GetInstanceResponse{Exists: false}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &protos.GetInstanceResponse{Exists: true, WorkflowState: orchestrationState(st, payloads)}, nil
}

func orchestrationState(st *weft.InstanceStatus, payloads bool) *protos.WorkflowState {
	o := &protos.WorkflowState{
		InstanceId:           st.ID,
		Name:                 st.Name,
		WorkflowStatus:       protoStatus(st.Status),
		CreatedTimestamp:     timestamp(st.CreatedAt),
		LastUpdatedTimestamp: timestamp(st.LastUpdatedAt),
		Version:              optString(st.Version),
	}
	if !st.ScheduledStartAt.IsZero() {
		o.ScheduledStartTimestamp = timestamp(st.ScheduledStartAt)
	}
	if payloads { // the SDKs count the custom status among the payloads
		o.Input, o.Output, o.CustomStatus = stringValue(st.Input), stringValue(st.Output), stringValue(st.CustomStatus)
	}
	if st.Failure != nil {
		o.FailureDetails = &protos.TaskFailureDetails{ErrorType: st.Failure.Type, ErrorMessage: st.Failure.Message,
			StackTrace: optString(st.Failure.Stack), IsNonRetriable: st.Failure.NonRetriable}
	}
	return o
}

// RaiseEvent delivers an event; events for a finished instance are dropped.
// The protocol has no idempotency key: a call that carries one as metadata
// (IdempotencyKeyMetadata) is applied once however often it is sent.
func (s *Server) RaiseEvent(ctx context.Context, req *protos.RaiseEventRequest) (*protos.RaiseEventResponse, error) {
	var opts []weft.RaiseOption
	if keys := metadata.ValueFromIncomingContext(ctx, IdempotencyKeyMetadata); len(keys) > 0 && keys[0] != "" {
		opts = append(opts, weft.WithIdempotencyKey(keys[0]))
	}
	if err := s.rt.RaiseEvent(ctx, req.GetInstanceId(), req.GetName(), payload(req.GetInput()), opts...); err != nil {
		return nil, toStatus(err)
	}
	return &protos.RaiseEventResponse{}, nil
}

// IdempotencyKeyMetadata is the gRPC metadata key that names a raised event,
// as the Idempotency-Key header does over HTTP.
const IdempotencyKeyMetadata = "idempotency-key"

// TerminateInstance terminates an instance and, if recursive, its children.
func (s *Server) TerminateInstance(ctx context.Context, req *protos.TerminateRequest) (*protos.TerminateResponse, error) {
	opts := weft.TerminateOptions{Recursive: req.GetRecursive()}
	if out := payload(req.GetOutput()); out != nil {
		opts.Reason = out
	}
	if err := s.rt.Terminate(ctx, req.GetInstanceId(), opts); err != nil {
		return nil, toStatus(err)
	}
	return &protos.TerminateResponse{}, nil
}

// SuspendInstance pauses an instance.
func (s *Server) SuspendInstance(ctx context.Context, req *protos.SuspendRequest) (*protos.SuspendResponse, error) {
	if err := s.rt.Suspend(ctx, req.GetInstanceId(), req.GetReason().GetValue()); err != nil {
		return nil, toStatus(err)
	}
	return &protos.SuspendResponse{}, nil
}

// ResumeInstance resumes a suspended instance.
func (s *Server) ResumeInstance(ctx context.Context, req *protos.ResumeRequest) (*protos.ResumeResponse, error) {
	if err := s.rt.Resume(ctx, req.GetInstanceId(), req.GetReason().GetValue()); err != nil {
		return nil, toStatus(err)
	}
	return &protos.ResumeResponse{}, nil
}

// PurgeInstances deletes one finished instance (recursively with its children if
// asked) or every finished instance a filter matches. A missing instance is a
// count of 0, which the SDKs report as not found; a running one is refused.
func (s *Server) PurgeInstances(ctx context.Context, req *protos.PurgeInstancesRequest) (*protos.PurgeInstancesResponse, error) {
	opts := weft.PurgeOptions{Recursive: req.GetRecursive(), Force: req.GetForce()}
	if f := req.GetPurgeInstanceFilter(); f != nil {
		n, err := s.purgeMatching(ctx, f, opts)
		if err != nil {
			return nil, toStatus(err)
		}
		return &protos.PurgeInstancesResponse{DeletedInstanceCount: n}, nil
	}
	err := s.rt.Purge(ctx, req.GetInstanceId(), opts)
	switch {
	case errors.Is(err, weft.ErrInstanceNotFound):
		return &protos.PurgeInstancesResponse{DeletedInstanceCount: 0}, nil
	case err != nil:
		return nil, toStatus(err)
	}
	return &protos.PurgeInstancesResponse{DeletedInstanceCount: 1}, nil
}

func (s *Server) purgeMatching(ctx context.Context, f *protos.PurgeInstanceFilter, opts weft.PurgeOptions) (int32, error) {
	q := weft.ListQuery{PageSize: 1000}
	if f.GetCreatedTimeFrom() != nil {
		q.CreatedFrom = f.GetCreatedTimeFrom().AsTime()
	}
	if f.GetCreatedTimeTo() != nil {
		q.CreatedTo = f.GetCreatedTimeTo().AsTime()
	}
	for _, st := range f.GetRuntimeStatus() {
		ws, ok := weftStatus(st)
		if !ok {
			return 0, status.Errorf(codes.InvalidArgument, "purge filter: unsupported status %s", st)
		}
		if ws.Finished() || opts.Force {
			q.Statuses = append(q.Statuses, ws)
		}
	}
	if len(f.GetRuntimeStatus()) == 0 {
		q.Statuses = []weft.RuntimeStatus{weft.StatusCompleted, weft.StatusFailed, weft.StatusTerminated}
	}
	if len(q.Statuses) == 0 {
		return 0, nil // only running statuses: nothing can be purged
	}
	var ids []string
	for {
		page, err := s.rt.List(ctx, q)
		if err != nil {
			return 0, err
		}
		for _, in := range page.Instances {
			ids = append(ids, in.ID)
		}
		if page.NextPageToken == "" {
			break
		}
		q.PageToken = page.NextPageToken
	}
	var n int32
	for _, id := range ids {
		err := s.rt.Purge(ctx, id, opts)
		switch {
		case err == nil:
			n++
		case errors.Is(err, weft.ErrInstanceNotFound):
			// purged meanwhile, e.g. as a child of another match
		default:
			return n, err
		}
	}
	return n, nil
}

// QueryInstances lists instances with weft's filters and paging; the page token
// is weft's listing token. An id prefix filters each page.
func (s *Server) QueryInstances(ctx context.Context, req *protos.QueryInstancesRequest) (*protos.QueryInstancesResponse, error) {
	qq := req.GetQuery()
	q := weft.ListQuery{PageSize: int(qq.GetMaxInstanceCount()), PageToken: qq.GetContinuationToken().GetValue()}
	if q.PageSize <= 0 || q.PageSize > 1000 {
		q.PageSize = 100
	}
	if qq.GetCreatedTimeFrom() != nil {
		q.CreatedFrom = qq.GetCreatedTimeFrom().AsTime()
	}
	if qq.GetCreatedTimeTo() != nil {
		q.CreatedTo = qq.GetCreatedTimeTo().AsTime()
	}
	for _, st := range qq.GetRuntimeStatus() {
		ws, ok := weftStatus(st)
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "query: unsupported status %s", st)
		}
		q.Statuses = append(q.Statuses, ws)
	}
	page, err := s.rt.List(ctx, q)
	if err != nil {
		return nil, toStatus(err)
	}
	prefix := qq.GetInstanceIdPrefix().GetValue()
	resp := &protos.QueryInstancesResponse{}
	for _, in := range page.Instances {
		if !strings.HasPrefix(in.ID, prefix) {
			continue
		}
		st, err := s.rt.Status(ctx, in.ID)
		if errors.Is(err, weft.ErrInstanceNotFound) {
			continue // purged since the listing
		}
		if err != nil {
			return nil, toStatus(err)
		}
		resp.OrchestrationState = append(resp.OrchestrationState, orchestrationState(st, qq.GetFetchInputsAndOutputs()))
	}
	if page.NextPageToken != "" {
		resp.ContinuationToken = wrapperspb.String(page.NextPageToken)
	}
	return resp, nil
}

// duplicateInstance leads the message of AlreadyExists as the reference server
// words it (durabletask-go's api.ErrDuplicateInstance): clients written
// against it match the text.
const duplicateInstance = "orchestration instance already exists"

// toStatus maps weft's errors onto gRPC codes.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, weft.ErrInstanceNotFound):
		code = codes.NotFound
	case errors.Is(err, weft.ErrInstanceExists):
		return status.Error(codes.AlreadyExists, duplicateInstance+": "+err.Error())
	case errors.Is(err, weft.ErrNotFinished), errors.Is(err, weft.ErrNotRunning):
		code = codes.FailedPrecondition
	case errors.Is(err, weft.ErrInvalidInstanceID), errors.Is(err, weft.ErrInvalidInput),
		errors.Is(err, weft.ErrEventNameMissing), errors.Is(err, weft.ErrWorkflowNotRegistered):
		code = codes.InvalidArgument
	case errors.Is(err, weft.ErrClosed), errors.Is(err, weft.ErrNotStarted):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

// statuses pairs weft's runtime statuses with the protocol's; the protocol's
// CONTINUED_AS_NEW and CANCELED have no weft counterpart.
var statuses = [...]struct {
	weft  weft.RuntimeStatus
	proto protos.OrchestrationStatus
}{
	{weft.StatusPending, protos.OrchestrationStatus_ORCHESTRATION_STATUS_PENDING},
	{weft.StatusRunning, protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING},
	{weft.StatusCompleted, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED},
	{weft.StatusFailed, protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED},
	{weft.StatusTerminated, protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED},
	{weft.StatusSuspended, protos.OrchestrationStatus_ORCHESTRATION_STATUS_SUSPENDED},
	{weft.StatusStalled, protos.OrchestrationStatus_ORCHESTRATION_STATUS_STALLED},
}

func protoStatus(st weft.RuntimeStatus) protos.OrchestrationStatus {
	for _, s := range statuses {
		if s.weft == st {
			return s.proto
		}
	}
	return protos.OrchestrationStatus_ORCHESTRATION_STATUS_PENDING
}

func weftStatus(st protos.OrchestrationStatus) (weft.RuntimeStatus, bool) {
	for _, s := range statuses {
		if s.proto == st {
			return s.weft, true
		}
	}
	return "", false
}

// payload is a protocol payload (JSON text by the SDKs' convention) as the
// bytes weft stores; absent is nil.
func payload(v *wrapperspb.StringValue) []byte {
	if v == nil {
		return nil
	}
	return []byte(v.GetValue())
}

func stringValue(b []byte) *wrapperspb.StringValue {
	if b == nil {
		return nil
	}
	return wrapperspb.String(string(b))
}

func optString(s string) *wrapperspb.StringValue {
	if s == "" {
		return nil
	}
	return wrapperspb.String(s)
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
