package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpExporter is the exporter of --otlp-endpoint: OTLP over gRPC, plain
// for host:port or http://, TLS for https://.
func otlpExporter(endpoint string) (sdktrace.SpanExporter, error) {
	// The exporter only logs an endpoint it cannot read, and then sends
	// nowhere: it is checked here, so that a typo stops the start.
	if strings.HasPrefix(endpoint, "https://") || strings.HasPrefix(endpoint, "http://") {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("want https://host:port, http://host:port or host:port")
		}
		return otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpointURL(endpoint))
	}
	if _, port, err := net.SplitHostPort(endpoint); err != nil || port == "" {
		return nil, fmt.Errorf("want host:port (a collector's OTLP/gRPC port, usually 4317), https://host:port or http://host:port")
	}
	return otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
}

// traceResource names this process in its spans: service weft, and the node.
func traceResource(node string) *resource.Resource {
	attrs := []attribute.KeyValue{attribute.String("service.name", "weft")}
	if node != "" {
		attrs = append(attrs, attribute.String("service.instance.id", node))
	}
	return resource.NewSchemaless(attrs...)
}
