package durabletask

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/weftrt/weft/api/durabletask/protos"
)

// The current protocol (dapr/durabletask-protobuf) dropped calls that older
// SDKs (durabletask-go v0.6, @dapr/durabletask-js 1.0) still make. weft keeps
// answering them: QueryInstances works as before, the others say why weft does
// not do them. Their messages are in protos/legacy.proto; the methods are
// added to TaskHubSidecarService's descriptor here, since the generated one no
// longer lists them.

// serviceDesc is TaskHubSidecarService's descriptor with the dropped methods.
func serviceDesc(s *Server) grpc.ServiceDesc {
	desc := protos.TaskHubSidecarService_ServiceDesc
	desc.Methods = append(append([]grpc.MethodDesc(nil), desc.Methods...),
		legacyMethod("QueryInstances", func() *protos.QueryInstancesRequest { return new(protos.QueryInstancesRequest) }, s.QueryInstances),
		refused("RewindInstance", "weft does not rewind failed instances; start a new instance instead"),
		refused("CreateTaskHub", "weft has no task hubs to create: its data directory is the one store"),
		refused("DeleteTaskHub", "weft has no task hubs to delete; purge instances instead"),
		refused("SignalEntity", noEntities),
		refused("GetEntity", noEntities),
		refused("QueryEntities", noEntities),
		refused("CleanEntityStorage", noEntities),
		refused("CompleteEntityTask", noEntities),
	)
	return desc
}

const noEntities = "weft does not implement durable entities; use a workflow per entity (see docs/patterns.md, the monitor pattern)"

// legacyMethod serves a unary method through the server's interceptors (the
// token check).
func legacyMethod[Req proto.Message, Resp any](name string, newReq func() Req, call func(context.Context, Req) (Resp, error)) grpc.MethodDesc {
	full := "/" + protos.TaskHubSidecarService_ServiceDesc.ServiceName + "/" + name
	return grpc.MethodDesc{MethodName: name, Handler: func(_ any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
		req := newReq()
		if err := dec(req); err != nil {
			return nil, err
		}
		handle := func(ctx context.Context, req any) (any, error) { return call(ctx, req.(Req)) }
		if intercept == nil {
			return handle(ctx, req)
		}
		return intercept(ctx, req, &grpc.UnaryServerInfo{FullMethod: full}, handle)
	}}
}

// refused answers a method weft does not implement with Unimplemented and why.
func refused(name, why string) grpc.MethodDesc {
	return legacyMethod(name, func() *emptypb.Empty { return new(emptypb.Empty) },
		func(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
			return nil, status.Error(codes.Unimplemented, why)
		})
}

// legacyReusePolicy reads the id-reuse policy an older SDK puts in field 6 of
// CreateInstanceRequest, which the current protocol reserved: it arrives among
// the request's unknown fields.
func legacyReusePolicy(req *protos.CreateInstanceRequest) *protos.OrchestrationIdReusePolicy {
	raw := req.ProtoReflect().GetUnknown()
	if len(raw) == 0 {
		return nil
	}
	var legacy protos.LegacyCreateInstanceFields
	if err := proto.Unmarshal(raw, &legacy); err != nil {
		return nil
	}
	return legacy.GetOrchestrationIdReusePolicy()
}
