package examples_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestAsyncHTTP: the client saw 202 Accepted with a Location and a Retry-After,
// then RUNNING, then COMPLETED with {"Processed":true}, in that order.
func TestAsyncHTTP(t *testing.T) {
	out, code := run(t, build(t, "asynchttp"))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	steps := []*regexp.Regexp{
		regexp.MustCompile(`< HTTP/1.1 202 Accepted\n< Location: /v1.0-beta1/workflows/dapr/order-42\n< Retry-After: 1\n< \{"instanceID":"order-42"\}`),
		regexp.MustCompile(`"runtimeStatus":"RUNNING"`),
		regexp.MustCompile(`raiseEvent/ManagerApproval[^\n]*\n[^\n]*\n< HTTP/1.1 202 Accepted`),
		regexp.MustCompile(`"runtimeStatus":"COMPLETED"[^\n]*"dapr.workflow.output":"\{\\"Processed\\":true\}"`),
		regexp.MustCompile(`final status COMPLETED`),
	}
	rest := out
	for _, re := range steps {
		loc := re.FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("expected %s after what came before; output:\n%s", re, out)
		}
		rest = rest[loc[1]:]
	}
	if strings.Count(out, `"runtimeStatus":"COMPLETED"`) != 1 {
		t.Fatalf("polled past completion:\n%s", out)
	}
}
