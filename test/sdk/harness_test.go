package sdk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// waitTimeout bounds every wait on a workflow: the longest workflow here runs a
// few seconds, so hitting it means the server lost track of an instance.
const waitTimeout = 30 * time.Second

var (
	weftBin   string // cmd/weft of the main module, built by TestMain
	workerBin string // ./internal/worker, built by TestMain
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "weft-sdk-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdk: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	mainRoot, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdk:", err)
		return 1
	}
	weftBin = filepath.Join(dir, "weft")
	workerBin = filepath.Join(dir, "sdkworker")
	// Built without -race or any other flag inherited from the test's GOFLAGS: the
	// processes under test run at their real speed. The weft binary is built in the
	// main module (its own go.mod), never linked into this one.
	for _, b := range []struct{ dir, out, pkg string }{
		{mainRoot, weftBin, "./cmd/weft"},
		{".", workerBin, "./internal/worker"},
	} {
		build := exec.Command("go", "build", "-o", b.out, b.pkg)
		build.Dir = b.dir
		build.Env = append(os.Environ(), "GOFLAGS=")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "sdk: go build %s (in %s): %v\n%s", b.pkg, b.dir, err, out)
			return 1
		}
	}
	return m.Run()
}

// cleanEnv is the test's environment without WEFT_* and DAPR_* variables, so that
// a developer's settings cannot leak into the processes under test.
func cleanEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "WEFT_") || strings.HasPrefix(kv, "DAPR_")
	})
	return append(env, extra...)
}

// --- processes ---------------------------------------------------------------

// proc is a child process whose output is kept line by line.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line and at exit
	done    chan struct{} // closed once the output hit EOF and the process was reaped
	exitErr error
}

// startProc starts cmd with stdout and stderr both captured. The process is
// SIGKILLed at the end of the test if it still runs; its output is printed if the
// test failed.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		err := cmd.Wait() // returns once the process exited and its output was copied
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		pw.Close()
	}()
	go p.read(pr)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %s (%s):\n%s", name, strings.Join(cmd.Args, " "), p.summary())
		}
	})
	return p
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
	// The pipe is closed only after Wait returned: exitErr is set.
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(p.done)
}

// Lines returns a copy of the output lines so far.
func (p *proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// summary is the output, without the most repetitive lines when it is long.
func (p *proc) summary() string {
	lines := p.Lines()
	if len(lines) <= 200 {
		return strings.Join(lines, "\n")
	}
	head, tail := lines[:50], lines[len(lines)-150:]
	return fmt.Sprintf("%s\n… (%d lines left out) …\n%s", strings.Join(head, "\n"), len(lines)-200, strings.Join(tail, "\n"))
}

// waitLine waits until some output line matches re and returns its submatches.
// It fails the test if the process exits first or timeout passes.
func (p *proc) waitLine(t *testing.T, timeout time.Duration, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		var m []string
		for _, l := range p.lines {
			if m = re.FindStringSubmatch(l); m != nil {
				break
			}
		}
		ch := p.changed
		p.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-p.done:
			p.mu.Lock()
			err := p.exitErr
			p.mu.Unlock()
			// One last look: the line may have come with the exit.
			for _, l := range p.Lines() {
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			}
			t.Fatalf("%s exited (%v) before printing a line matching %q\n--- output ---\n%s", p.name, err, re, p.summary())
		case <-deadline.C:
			t.Fatalf("%s printed no line matching %q within %s\n--- output ---\n%s", p.name, re, timeout, p.summary())
		case <-ch:
		}
	}
}

// kill SIGKILLs the process (if it still runs) and waits until it is reaped.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// --- the server --------------------------------------------------------------

// server is one running `weft serve` with its gRPC listener.
type server struct {
	*proc
	GRPCAddr string // host:port of the durabletask gRPC service
	DataDir  string
}

// servingLine is the "weft serving" line of the text log format; the gRPC address
// may come with a scheme.
var servingLine = regexp.MustCompile(`msg="weft serving".* grpc=(?:[a-z]+://)?(\S+)`)

// startServer starts `weft serve --http 127.0.0.1:0 --grpc 127.0.0.1:0 --data
// <temp dir>` and returns once it logged its addresses.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	dataDir := t.TempDir()
	all := append([]string{"serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--data", dataDir, "--log-format", "text"}, args...)
	cmd := exec.Command(weftBin, all...)
	cmd.Env = cleanEnv()
	p := startProc(t, "weft serve", cmd)
	m := p.waitLine(t, 15*time.Second, servingLine)
	return &server{proc: p, GRPCAddr: strings.Trim(m[1], `"`), DataDir: dataDir}
}

// dial opens a plain-text gRPC connection, closed at the end of the test.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// --- small helpers -------------------------------------------------------------

// waitCtx is a context bounded by waitTimeout.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 20 ms until it holds, for states the SDKs offer no
// wait for (a child instance appearing, a SUSPENDED status, a custom status).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s; last seen: %s", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isNotFound reports whether err says that an instance does not exist: the SDK's
// sentinel (for an empty GetInstance or PurgeInstances answer) or gRPC NotFound.
func isNotFound(err error, sentinel error) bool {
	if errors.Is(err, sentinel) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := status.FromError(e); ok && s.Code() == codes.NotFound {
			return true
		}
	}
	return false
}

// counters counts executions per key across the activities of all tests; the
// keys are instance ids made with unique.
var counters sync.Map // string → *atomic.Int64

var seq atomic.Int64

// unique is prefix made unique in the test process (across -count runs too), for
// instance ids that key counters.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, seq.Add(1))
}

// count adds one execution under key and returns the count so far.
func count(key string) int {
	v, _ := counters.LoadOrStore(key, new(atomic.Int64))
	return int(v.(*atomic.Int64).Add(1))
}

// counted is the number of executions under key.
func counted(key string) int {
	v, ok := counters.Load(key)
	if !ok {
		return 0
	}
	return int(v.(*atomic.Int64).Load())
}

// logSink is a logger for the SDKs' own logs: kept in memory and printed only if
// the test failed (the SDK's goroutines may log after the test ended, so they
// must not call t.Log).
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func newLogSink(t *testing.T, name string) *logSink {
	s := &logSink{}
	t.Cleanup(func() {
		if t.Failed() {
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Logf("%s log:\n%s", name, strings.Join(s.lines, "\n"))
		}
	})
	return s
}

func (s *logSink) add(level, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lines) < 2000 {
		s.lines = append(s.lines, time.Now().Format("15:04:05.000 ")+level+" "+msg)
	}
}

func (s *logSink) Debug(v ...any)                 {}
func (s *logSink) Debugf(format string, v ...any) {}
func (s *logSink) Info(v ...any)                  { s.add("INFO", fmt.Sprint(v...)) }
func (s *logSink) Infof(format string, v ...any)  { s.add("INFO", fmt.Sprintf(format, v...)) }
func (s *logSink) Warn(v ...any)                  { s.add("WARN", fmt.Sprint(v...)) }
func (s *logSink) Warnf(format string, v ...any)  { s.add("WARN", fmt.Sprintf(format, v...)) }
func (s *logSink) Error(v ...any)                 { s.add("ERROR", fmt.Sprint(v...)) }
func (s *logSink) Errorf(format string, v ...any) { s.add("ERROR", fmt.Sprintf(format, v...)) }

// --- the protocol, raw ---------------------------------------------------------

// rawFailure reads an instance's failure details with a plain GetInstance call.
// The durabletask-go client (v0.5.0 and v0.6.0, hence the Dapr Go SDK) does not
// copy OrchestrationState.failureDetails into its metadata, but other SDKs read
// it: the message is built from the descriptors durabletask-go registers.
func rawFailure(t *testing.T, conn grpc.ClientConnInterface, id string) (errType, msg string) {
	t.Helper()
	desc := func(name string) protoreflect.MessageDescriptor {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			t.Fatalf("the protocol's %s is not registered: %v", name, err)
		}
		return d.(protoreflect.MessageDescriptor)
	}
	reqDesc, respDesc := desc("GetInstanceRequest"), desc("GetInstanceResponse")
	req := dynamicpb.NewMessage(reqDesc)
	req.Set(reqDesc.Fields().ByName("instanceId"), protoreflect.ValueOfString(id))
	req.Set(reqDesc.Fields().ByName("getInputsAndOutputs"), protoreflect.ValueOfBool(true))
	resp := dynamicpb.NewMessage(respDesc)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := conn.Invoke(ctx, "/TaskHubSidecarService/GetInstance", req, resp); err != nil {
		t.Fatalf("GetInstance(%s): %v", id, err)
	}
	state := resp.Get(respDesc.Fields().ByName("orchestrationState")).Message()
	fdField := state.Descriptor().Fields().ByName("failureDetails")
	if !state.Has(fdField) {
		return "", ""
	}
	fd := state.Get(fdField).Message()
	fields := fd.Descriptor().Fields()
	return fd.Get(fields.ByName("errorType")).String(), fd.Get(fields.ByName("errorMessage")).String()
}
