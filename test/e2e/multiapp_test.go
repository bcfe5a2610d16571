package e2e

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/weftrt/weft/api/durabletask/protos"
)

var grpcLine = regexp.MustCompile(`grpc=(127\.0\.0\.1:\d+)`)

// TestMultiAppWorkers: two worker processes of different apps (./appworker,
// on a client generated from the current protocol) against `weft serve`: an
// Order started for app "orders" runs on the orders worker, its Ship activity,
// routed to app "shipping", on the shipping worker; started before the
// shipping worker is up, it waits for it rather than failing or going to the
// wrong app.
func TestMultiAppWorkers(t *testing.T) {
	t.Parallel()
	s, addr, c := startGRPCServer(t)
	bin := buildCommand(t, "./appworker")
	worker := func(app string) {
		t.Helper()
		_, out := startProcess(t, bin, "-server", addr, "-app", app)
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "connected" {
			t.Fatalf("worker %s: %q %v", app, line, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	worker("orders")
	if _, err := c.StartInstance(metadata.AppendToOutgoingContext(ctx, "dapr-app-id", "orders"),
		&protos.CreateInstanceRequest{Name: "Order", InstanceId: "order-1"}); err != nil {
		t.Fatal(err)
	}
	// Ship waits for a shipping worker (the server says so); the order is not
	// failed meanwhile.
	for !strings.Contains(s.log(), `msg="work waits for a remote worker`) || !strings.Contains(s.log(), "app=shipping") {
		if ctx.Err() != nil {
			t.Fatalf("the server never said Ship waits for a shipping worker:\n%s", s.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, err := c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: "order-1"})
	if err != nil || st.GetWorkflowState().GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING {
		t.Fatalf("order-1 while Ship waits: %v %v", st, err)
	}
	worker("shipping")
	done, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "order-1", GetInputsAndOutputs: true})
	if err != nil || done.GetWorkflowState().GetOutput().GetValue() != `"shipped by shipping"` {
		t.Fatalf("order-1: %v %v, want Ship run by the shipping worker", done, err)
	}
}

// startGRPCServer starts `weft serve` with gRPC on a free port and returns
// it, its gRPC address and a client of the protocol on it.
func startGRPCServer(t *testing.T) (*server, string, protos.TaskHubSidecarServiceClient) {
	t.Helper()
	s := startServer(t, t.TempDir(), "--grpc", "127.0.0.1:0")
	m := grpcLine.FindStringSubmatch(s.log())
	if m == nil {
		t.Fatalf("no gRPC address in the log:\n%s", s.log())
	}
	conn, err := grpc.NewClient(m[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return s, m[1], protos.NewTaskHubSidecarServiceClient(conn)
}

// buildCommand builds the command in dir (a package of this module) into a
// temporary directory and returns the binary's path.
func buildCommand(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	if out, err := exec.Command("go", "build", "-o", bin, dir).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

// startProcess starts bin with args and returns it and its standard output;
// it is killed when the test ends.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, out
}
