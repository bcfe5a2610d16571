package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftrt/weft/internal/otlptest"
)

// TestTracingThroughServe: `weft serve --otlp-endpoint` sends its spans over
// OTLP to a receiver in this process: a workflow started over HTTP with a
// traceparent header has its span under the caller's, its activities under
// it, all in the caller's trace and from service weft. A malformed endpoint
// is refused at start.
func TestTracingThroughServe(t *testing.T) {
	t.Parallel()
	recv, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Stop()
	s := startServer(t, t.TempDir(), "--otlp-endpoint", recv.Addr)
	if !strings.Contains(s.log(), "otlp="+recv.Addr) {
		t.Errorf("the serving line does not name the OTLP endpoint:\n%s", s.log())
	}
	c := s.client(t)
	const caller, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	c.expect(c.do("POST", "/api/v1/instances", `{"name":"ChainingWorkflow","instanceId":"traced-chain","input":{"value":1}}`,
		"traceparent", "00-"+caller+"-"+callerSpan+"-01"), 202)
	if st := c.waitDone("traced-chain"); st.Status != "COMPLETED" {
		t.Fatalf("traced-chain: %+v", st)
	}
	if err := s.stop(syscall.SIGTERM, 30*time.Second); err != nil { // flushes the spans
		t.Fatalf("stop: %v", err)
	}
	var chain []otlptest.Span
	for _, sp := range recv.Spans() {
		if sp.TraceID == caller {
			chain = append(chain, sp)
		}
	}
	tree := otlptest.Tree(chain)
	if !strings.HasPrefix(tree, "workflow ChainingWorkflow\n  activity ") || strings.Count(tree, "\n  activity ") < 3 {
		t.Errorf("the caller's trace:\n%s\nwant the workflow's span with its activities under it", tree)
	}
	for _, sp := range chain {
		if sp.Service != "weft" {
			t.Errorf("span %s from service %q", sp.Name, sp.Service)
		}
		if sp.Name == "workflow ChainingWorkflow" && sp.ParentID != callerSpan {
			t.Errorf("the workflow's span has parent %s, want the caller's %s", sp.ParentID, callerSpan)
		}
	}

	for _, bad := range []string{"https://%zz", "collector"} {
		r := runCLI(t, nil, "serve", "--http", "127.0.0.1:0", "--grpc", "off", "--data", t.TempDir(), "--otlp-endpoint", bad)
		if r.Code != 2 || !strings.Contains(r.Stderr, "--otlp-endpoint") {
			t.Errorf("a malformed endpoint: %s; want exit 2 naming --otlp-endpoint", r)
		}
	}
}
