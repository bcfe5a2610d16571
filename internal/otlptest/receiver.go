// Package otlptest is an OTLP trace receiver for tests: a gRPC server in the
// test's process that keeps the spans exporters send it, and the tree they
// form.
package otlptest

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is a received span, its ids in hex.
type Span struct {
	TraceID, SpanID, ParentID string
	Name                      string
	Kind                      string
	Start, End                time.Time
	Attrs                     map[string]string
	Error                     string // the status message of a span whose status is an error
	Service                   string // the resource's service.name
}

// Receiver collects spans.
type Receiver struct {
	collector.UnimplementedTraceServiceServer
	Addr string // host:port, for an exporter's endpoint

	srv     *grpc.Server
	mu      sync.Mutex
	spans   []Span
	changed chan struct{}
}

// Start listens on a loopback port.
func Start() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Receiver{Addr: ln.Addr().String(), srv: grpc.NewServer(), changed: make(chan struct{})}
	collector.RegisterTraceServiceServer(r.srv, r)
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// StartWithExporter starts a receiver and an OTLP exporter that sends to it
// (what weft.Options.TraceExporter takes).
func StartWithExporter() (*Receiver, sdktrace.SpanExporter, error) {
	r, err := Start()
	if err != nil {
		return nil, nil, err
	}
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(r.Addr), otlptracegrpc.WithInsecure())
	if err != nil {
		r.Stop()
		return nil, nil, err
	}
	return r, exp, nil
}

// Stop stops the server.
func (r *Receiver) Stop() { r.srv.Stop() }

// Export is the OTLP TraceService's call.
func (r *Receiver) Export(_ context.Context, req *collector.ExportTraceServiceRequest) (*collector.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Kind: s.GetKind().String(),
					Start: time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano())),
					Attrs: attrs(s.GetAttributes()), Service: service}
				if s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
					sp.Error = s.GetStatus().GetMessage()
					if sp.Error == "" {
						sp.Error = "error"
					}
				}
				r.spans = append(r.spans, sp)
			}
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
	return &collector.ExportTraceServiceResponse{}, nil
}

func attrs(kvs []*common.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *common.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *common.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(v.IntValue)
		case *common.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(v.BoolValue)
		default:
			m[kv.GetKey()] = fmt.Sprint(kv.GetValue())
		}
	}
	return m
}

// Spans returns the spans received so far, in the order they came.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Await waits until cond holds for the spans received, or ctx ends.
func (r *Receiver) Await(ctx context.Context, cond func([]Span) bool) ([]Span, error) {
	for {
		r.mu.Lock()
		spans, changed := slices.Clone(r.spans), r.changed
		r.mu.Unlock()
		if cond(spans) {
			return spans, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return spans, fmt.Errorf("spans: %w; have:\n%s", ctx.Err(), Tree(spans))
		}
	}
}

// Tree renders spans as an indented tree, children by start time, one line
// per span: name, then the attributes given in keys.
func Tree(spans []Span, keys ...string) string {
	children := map[string][]Span{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	var roots []Span
	for _, s := range spans {
		if s.ParentID == "" || s.ParentID == "0000000000000000" || !ids[s.ParentID] {
			roots = append(roots, s)
		} else {
			children[s.ParentID] = append(children[s.ParentID], s)
		}
	}
	byStart := func(ss []Span) {
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].Start.Before(ss[j].Start) })
	}
	var b strings.Builder
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		b.WriteString(strings.Repeat("  ", depth) + s.Name)
		for _, k := range keys {
			if v, ok := s.Attrs[k]; ok {
				fmt.Fprintf(&b, " %s=%s", k, v)
			}
		}
		if s.Error != "" {
			b.WriteString(" (error)")
		}
		b.WriteString("\n")
		kids := children[s.SpanID]
		byStart(kids)
		for _, c := range kids {
			walk(c, depth+1)
		}
	}
	byStart(roots)
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}
