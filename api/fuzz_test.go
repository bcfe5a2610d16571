package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/examples/seed"
)

// openPaths answer in their own formats (text, Prometheus exposition), not JSON.
var openPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// isOpen reports whether a path is exempt from the JSON error rule: the open
// endpoints and the web UI's static files (served to browsers, under /ui/).
func isOpen(path string) bool { return openPaths[path] || strings.HasPrefix(path, "/ui/") }

// noNetwork refuses every request: MonitorWorkflow's URL checks must not leave the
// test whatever URL the fuzzer writes.
type noNetwork struct{}

func (noNetwork) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("fuzz test: no network")
}

// FuzzHandler sends arbitrary methods, paths and bodies to the HTTP handler of a
// real runtime hosting the seed workflows, and checks that it never panics (the
// handler's recover turns a panic into a 500, so a 500 ERR_INTERNAL fails too),
// answers with a status from 200 to 599, and answers every 4xx and 5xx with a JSON
// body {"errorCode": non-empty, ...} (package api: "Every error is JSON"), except
// on /healthz, /readyz and /metrics (and the web UI's static files under /ui/).
// Paths outside the API ("/nope", "/favicon.ico", "/api") once fell through to
// http.ServeMux's text/plain 404; the seed corpus keeps them.
func FuzzHandler(f *testing.F) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	errLog := &errorLog{}
	handlerLogger := slog.New(slog.NewTextHandler(errLog, &slog.HandlerOptions{Level: slog.LevelError}))
	rt, err := weft.Open(weft.Options{Dir: f.TempDir(), Partitions: 4, Logger: logger, ActivityConcurrency: 16})
	if err != nil {
		f.Fatal(err)
	}
	err = seed.Register(rt, seed.Config{ApprovalTimeout: time.Hour, Logger: logger,
		HTTPClient: &http.Client{Transport: noNetwork{}, Timeout: time.Second}})
	if err != nil {
		f.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		if err := rt.Close(); err != nil {
			f.Errorf("close runtime: %v", err)
		}
	})
	h := api.NewHandler(rt, api.Options{MaxBodyBytes: 64 << 10, Logger: handlerLogger})

	// Instances for the corpus to address: one running (waiting for approval), one
	// finished.
	serve(h, "POST", "/v1.0/workflows/dapr/OrderProcessingWorkflow/start?instanceID=running", `{"Name":"Boat","Quantity":1,"TotalCost":5000}`)
	serve(h, "POST", "/v1.0/workflows/dapr/ChainingWorkflow/start?instanceID=done", `{"value":1}`)
	serve(h, "GET", "/api/v1/instances/done/wait?timeout=10s", "")

	for _, c := range [][3]string{
		// valid Dapr requests
		{"POST", "/v1.0-alpha1/workflows/dapr/OrderProcessingWorkflow/start?instanceID=12345678", `{"Name":"Paperclips","Quantity":1,"TotalCost":9.95}`},
		{"POST", "/v1.0-beta1/workflows/dapr/ChainingWorkflow/start", `{"value":3}`},
		{"POST", "/v1.0/workflows/dapr/FanOutFanInWorkflow/start", `{"count":5,"maxParallel":2}`},
		{"POST", "/v1.0/workflows/dapr/MonitorWorkflow/start", `{"entity":"db","maxCycles":1,"healthySeconds":0.01}`},
		{"GET", "/v1.0-alpha1/workflows/dapr/running", ""},
		{"GET", "/v1.0/workflows/dapr/done", ""},
		{"POST", "/v1.0/workflows/dapr/running/raiseEvent/ManagerApproval", `{"approved":false}`},
		{"POST", "/v1.0/workflows/dapr/running/pause", ""},
		{"POST", "/v1.0/workflows/dapr/running/resume", ""},
		{"POST", "/v1.0/workflows/dapr/running/terminate", `"stop"`},
		{"POST", "/v1.0/workflows/dapr/done/purge?non_recursive=true", ""},
		// valid weft requests
		{"GET", "/api/v1/workflows", ""},
		{"GET", "/api/v1/instances?status=RUNNING,COMPLETED&name=ChainingWorkflow&pageSize=2", ""},
		{"GET", "/api/v1/instances?createdFrom=2026-01-02T15:04:05Z&createdTo=2099-01-01T00:00:00Z", ""},
		{"POST", "/api/v1/instances", `{"name":"ChainingWorkflow","instanceId":"c1","input":{"value":1},"reusePolicy":"ignore"}`},
		{"POST", "/api/v1/instances", `{"name":"ChainingWorkflow","startAt":"2099-01-01T00:00:00Z"}`},
		{"GET", "/api/v1/instances/done", ""},
		{"GET", "/api/v1/instances/done/history", ""},
		{"GET", "/api/v1/instances/running/wait?timeout=10ms&for=start", ""},
		{"POST", "/api/v1/instances/running/events/ManagerApproval", `{"approved":true}`},
		{"POST", "/api/v1/instances/running/suspend", `{"reason":"x"}`},
		{"POST", "/api/v1/instances/running/resume", `{"reason":"y"}`},
		{"POST", "/api/v1/instances/running/terminate", `{"reason":"z","recursive":true}`},
		{"DELETE", "/api/v1/instances/done?recursive=true", ""},
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/metrics", ""},
		// invalid requests
		{"POST", "/v1.0/workflows/dapr//start", ""},
		{"POST", "/v1.0/workflows/dapr/X/start?instanceID=" + strings.Repeat("a", 65), "{}"},
		{"POST", "/v1.0/workflows/dapr/OrderProcessingWorkflow/start?instanceID=a%20b", "{"},
		{"POST", "/v1.0/workflows/dapr/OrderProcessingWorkflow/start", `"x"`},
		{"POST", "/v1.0/workflows/nodapr/x/start", ""},
		{"POST", "/v1.0/workflows/dapr/running/raiseEvent/", ""},
		{"GET", "/v1.0/workflows/dapr/running/raiseEvent/x/y", ""},
		{"PUT", "/v1.0/workflows/dapr/running", "\x00\xff"},
		{"GET", "/v1.0/workflows", ""},
		{"GET", "/v1.0/", ""},
		{"POST", "/api/v1/instances", `{"name":1}`},
		{"POST", "/api/v1/instances", `{"name":"ChainingWorkflow","reusePolicy":"maybe"}`},
		{"POST", "/api/v1/instances", `{"name":"ChainingWorkflow","startAt":"tomorrow"}`},
		{"GET", "/api/v1/instances?pageSize=-1&pageToken=@@", ""},
		{"GET", "/api/v1/instances?status=NOPE&createdFrom=x", ""},
		{"GET", "/api/v1/instances/running/wait?timeout=1h", ""},
		{"GET", "/api/v1/instances/%2e%2e/history", ""},
		{"POST", "/api/v1/instances/running/events", ""},
		{"POST", "/api/v1/instances/running/terminate", `{"reason":`},
		{"DELETE", "/api/v1/instances/running", ""},
		{"PATCH", "/api/v1/workflows", ""},
		{"GET", "/api/v2", ""},
		{"POST", "/healthz", ""},
		// outside the API (the known bug)
		{"GET", "/nope", ""},
		{"GET", "/favicon.ico", ""},
		{"GET", "/api", ""},
	} {
		f.Add(c[0], c[1], c[2])
	}

	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// A server request's Body is never nil (net/http gives http.NoBody).
		var rd io.Reader = http.NoBody
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://weft.test"+path, rd)
		if err != nil {
			return // not an HTTP request a server could receive
		}
		rec := httptest.NewRecorder()
		mark := errLog.len()
		h.ServeHTTP(rec, req) // a panic here fails the fuzz test
		res := rec.Result()
		if res.StatusCode < 200 || res.StatusCode > 599 {
			t.Fatalf("%s %q: status %d", method, path, res.StatusCode)
		}
		if res.StatusCode < 400 || isOpen(req.URL.Path) {
			return
		}
		b := rec.Body.Bytes()
		var e struct {
			ErrorCode *string `json:"errorCode"`
			Message   *string `json:"message"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.ErrorCode == nil || *e.ErrorCode == "" || e.Message == nil {
			t.Fatalf("%s %q → %d %q (Content-Type %q): want a JSON error {\"errorCode\": ..., \"message\": ...}",
				method, path, res.StatusCode, b, res.Header.Get("Content-Type"))
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %q → %d: Content-Type %q", method, path, res.StatusCode, ct)
		}
		if *e.ErrorCode == api.CodeInternal {
			t.Fatalf("%s %q → %d %s: an internal error (a handler panicked or the runtime failed); the handler logged:\n%s",
				method, path, res.StatusCode, b, errLog.since(mark))
		}
	})
}

// errorLog keeps what the handler logs at error level (failed requests, recovered
// panics), to show with a failure.
type errorLog struct {
	mu  sync.Mutex
	buf []byte
}

func (l *errorLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *errorLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buf)
}

func (l *errorLog) since(mark int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf[mark:])
}

// serve sends one request to h and returns the recorder.
func serve(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}
