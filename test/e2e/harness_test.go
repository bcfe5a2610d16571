// Package e2e tests `weft serve` end to end: it builds cmd/weft once, starts the
// real binary on a free port with its own data directory, and drives it as a user
// would: Dapr's workflow routes (the seed's curl commands), weft's /api/v1 routes,
// health and metrics, every CLI subcommand with its exit code, the API token, TLS,
// a graceful SIGTERM, and a SIGKILL in the middle of a fan-out followed by a restart
// on the same directory.
//
// The server's stderr is read through a pipe and kept line by line: the tests learn
// the listening address from the "weft serving" line, wait for activity log lines,
// and print the whole log when they fail. Tests wait on conditions (the long-poll
// /wait route, log lines), not on fixed sleeps.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// weftBin is cmd/weft, built once by TestMain (without -race: the process under
// test should run at its real speed, so that a kill lands in the middle of its work).
var weftBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "weft-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	weftBin = filepath.Join(dir, "weft")
	build := exec.Command("go", "build", "-o", weftBin, "github.com/weftrt/weft/cmd/weft")
	build.Env = append(os.Environ(), "GOFLAGS=") // no -race inherited from the test's flags
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/weft: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if code == 0 {
		// Every server was reaped and every runtime closed: nothing may be left
		// running in the test process.
		plainHTTP.CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines leaked:", err)
			return 1
		}
	}
	return code
}

// cleanEnv is the test's environment without WEFT_* variables, so that a developer's
// settings cannot leak into the server or the CLI under test.
func cleanEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "WEFT_") })
	return append(env, extra...)
}

// server is one running `weft serve` process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	URL     string // http://127.0.0.1:PORT or https://...
	DataDir string

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line and at exit
	done    chan struct{} // closed once stderr hit EOF and the process was reaped
	exitErr error
}

// servingLine finds the address in the "weft serving" line, in the text or the
// JSON log format.
var servingLine = regexp.MustCompile(`msg="weft serving" http=(\S+)|"msg":"weft serving","http":"([^"]+)"`)

// startServer starts `weft serve --http 127.0.0.1:0 --data dataDir args...` and
// returns once the server logged its address. The process is SIGKILLed at the end
// of the test if it still runs; its log is printed if the test failed.
func startServer(t *testing.T, dataDir string, args ...string) *server {
	t.Helper()
	return startServerEnv(t, dataDir, nil, args...)
}

// startServerEnv is startServer with extra environment variables (WEFT_*).
func startServerEnv(t *testing.T, dataDir string, env []string, args ...string) *server {
	t.Helper()
	s := tryStartServer(t, dataDir, env, args...)
	if s.URL == "" {
		s.fatalf("the server did not log its address")
	}
	return s
}

// tryStartServer is startServer for servers that may refuse to start: URL stays
// empty if the process exited before logging its address.
func tryStartServer(t *testing.T, dataDir string, env []string, args ...string) *server {
	t.Helper()
	// gRPC is off: with it on, an unregistered workflow name waits for a remote
	// worker instead of being refused, and test/sdk covers it.
	all := append([]string{"serve", "--http", "127.0.0.1:0", "--grpc", "off", "--data", dataDir, "--samples"}, args...)
	cmd := exec.Command(weftBin, all...)
	cmd.Env = cleanEnv(env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", weftBin, err)
	}
	s := &server{t: t, cmd: cmd, DataDir: dataDir, changed: make(chan struct{}), done: make(chan struct{})}
	go s.read(stderr)
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("stderr of weft %s (pid %d):\n%s", strings.Join(all, " "), cmd.Process.Pid, s.summary())
		}
	})
	var url string
	s.waitUntil(15*time.Second, "the \"weft serving\" line", func(lines []string) bool {
		for _, l := range lines {
			if m := servingLine.FindStringSubmatch(l); m != nil {
				url = m[1] + m[2]
				return true
			}
		}
		return false
	}, true)
	s.URL = url
	return s
}

func (s *server) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
	err := s.cmd.Wait()
	s.mu.Lock()
	s.exitErr = err
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	close(s.done)
}

// Lines returns a copy of the stderr lines so far.
func (s *server) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

func (s *server) log() string { return strings.Join(s.Lines(), "\n") }

// summary is the log without the per-activity lines when there are many of them.
func (s *server) summary() string {
	lines := s.Lines()
	if i := slices.Index(lines, "SIGQUIT: quit"); i >= 0 {
		lines = append(lines[:i:i], "SIGQUIT: quit (goroutine dump left out)")
	}
	if len(lines) <= 100 {
		return strings.Join(lines, "\n")
	}
	kept := slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, `msg="activity executed"`) })
	return fmt.Sprintf("(%d \"activity executed\" lines left out)\n%s", len(lines)-len(kept), strings.Join(kept, "\n"))
}

func (s *server) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf(format+"\n--- server stderr ---\n%s", append(args, s.summary())...)
}

// waitUntil waits until cond holds on the stderr lines. If the process exits first
// it fails the test, unless exitOK (then it returns false).
func (s *server) waitUntil(timeout time.Duration, what string, cond func([]string) bool, exitOK bool) bool {
	s.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(s.lines), s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-s.done:
			s.mu.Lock()
			ok = cond(s.lines)
			s.mu.Unlock()
			if ok {
				return true
			}
			if exitOK {
				return false
			}
			s.fatalf("the server exited (%v) before %s", s.exitErr, what)
		case <-deadline.C:
			s.fatalf("no %s after %s", what, timeout)
		case <-ch:
		}
	}
}

// kill SIGKILLs the process (if it still runs) and waits until it is reaped.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop sends sig and waits up to timeout for the process to exit; it returns the
// exit error (nil for exit status 0).
func (s *server) stop(sig os.Signal, timeout time.Duration) error {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.fatalf("the server did not exit within %s of %v", timeout, sig)
	}
	return s.exitErr
}

// countLines counts the lines containing every one of parts.
func countLines(lines []string, parts ...string) int {
	n := 0
	for _, l := range lines {
		if containsAll(l, parts...) {
			n++
		}
	}
	return n
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// --- HTTP --------------------------------------------------------------------

// client calls one server's HTTP API.
type client struct {
	t      *testing.T
	base   string
	http   *http.Client
	header http.Header // sent on every request (the API token)
}

var plainHTTP = &http.Client{Timeout: 60 * time.Second}

func (s *server) client(t *testing.T) *client {
	return &client{t: t, base: s.URL, http: plainHTTP, header: http.Header{}}
}

// response is a read response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	req    string
}

func (r response) String() string {
	return fmt.Sprintf("%s → %d %s", r.req, r.Status, bytes.TrimSpace(r.Body))
}

// do sends a request; body "" sends none. hdr are header name/value pairs.
func (c *client) do(method, path, body string, hdr ...string) response {
	c.t.Helper()
	r, err := c.try(method, path, body, hdr...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (c *client) try(method, path, body string, hdr ...string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return response{}, err
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b, req: method + " " + path}, nil
}

// expect fails the test unless the response has status want.
func (c *client) expect(r response, want int) response {
	c.t.Helper()
	if r.Status != want {
		c.t.Fatalf("%s; want status %d", r, want)
	}
	return r
}

// wantError checks an error response: the status, a JSON content type, and a body
// that is exactly {"errorCode": code, "message": non-empty}.
func wantError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s; want %d %s", r, status, code)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Errorf("%s: the error body is not JSON: %v", r, err)
		return
	}
	if len(body) != 2 || body["errorCode"] != code {
		t.Errorf("%s: want exactly {\"errorCode\": %q, \"message\": ...}", r, code)
	}
	if msg, _ := body["message"].(string); msg == "" {
		t.Errorf("%s: the error message is empty", r)
	}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("%s: decode %T: %v", r, v, err)
	}
	return v
}

// v1Status is weft's /api/v1 status body.
type v1Status struct {
	ID               string          `json:"id"`
	Name             string          `json:"name"`
	Status           string          `json:"status"`
	CreatedAt        time.Time       `json:"createdAt"`
	LastUpdatedAt    time.Time       `json:"lastUpdatedAt"`
	ScheduledStartAt *time.Time      `json:"scheduledStartAt"`
	CompletedAt      *time.Time      `json:"completedAt"`
	Input            json.RawMessage `json:"input"`
	Output           json.RawMessage `json:"output"`
	CustomStatus     json.RawMessage `json:"customStatus"`
	Failure          *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"failure"`
	ParentID   string   `json:"parentId"`
	Generation uint32   `json:"generation"`
	WaitingOn  []v1Wait `json:"waitingOn"`
}

// v1Wait is one entry of a status's waitingOn.
type v1Wait struct {
	Kind           string     `json:"kind"`
	TaskID         int64      `json:"taskId"`
	Name           string     `json:"name"`
	Instance       string     `json:"instance"`
	Since          time.Time  `json:"since"`
	FireAt         *time.Time `json:"fireAt"`
	TimeoutAt      *time.Time `json:"timeoutAt"`
	Attempt        int        `json:"attempt"`
	AttemptAtLeast bool       `json:"attemptAtLeast"`
	LastFailure    *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"lastFailure"`
	NextAttemptAt *time.Time `json:"nextAttemptAt"`
}

// waitDone long-polls until the instance finished and returns its status.
func (c *client) waitDone(id string) v1Status {
	c.t.Helper()
	r := c.do("GET", "/api/v1/instances/"+id+"/wait?timeout=30s", "")
	if r.Status != http.StatusOK {
		c.t.Fatalf("%s; want 200 (finished within 30s)", r)
	}
	return decode[v1Status](c.t, r)
}

// status returns an instance's /api/v1 status.
func (c *client) status(id string) v1Status {
	c.t.Helper()
	return decode[v1Status](c.t, c.expect(c.do("GET", "/api/v1/instances/"+id, ""), http.StatusOK))
}

// eventually polls cond every 20 ms until it holds (for effects the API does not
// let a client wait on, such as child workflows appearing).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xa, yb)
}

// --- CLI ---------------------------------------------------------------------

// cliResult is one run of the weft CLI.
type cliResult struct {
	Code           int
	Stdout, Stderr string
	args           []string
}

func (r cliResult) String() string {
	return fmt.Sprintf("weft %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.Code, r.Stdout, r.Stderr)
}

// runCLI runs the weft binary with args and extra environment variables.
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, args...)
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{Stdout: stdout.String(), Stderr: stderr.String(), args: args}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("weft %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return res
}

// wantCLI runs the CLI and fails unless it exits with code.
func wantCLI(t *testing.T, code int, env []string, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, env, args...)
	if r.Code != code {
		t.Fatalf("%s\nwant exit %d", r, code)
	}
	return r
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
