// Command worker is a durabletask-go worker in a process of its own, for the test
// that SIGKILLs a worker in the middle of its workflows (kill_test.go).
//
// It registers SdkKillChain, a chain of five SdkKillStep activities that append
// the digits 2…6 to the workflow's input (1 → 123456). Each activity takes
// -delay and then appends one line "<instance id> <digit>" to the -out file, so
// the test can see how far the workflows got and which steps ran more than once.
// It prints "worker ready" once connected to weft and runs until it is killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/microsoft/durabletask-go/client"
	"github.com/microsoft/durabletask-go/task"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type step struct {
	ID   string
	V, D int
}

func main() {
	addr := flag.String("addr", "", "weft's gRPC address (host:port)")
	out := flag.String("out", "", "file to append a line to per activity execution")
	delay := flag.Duration("delay", 200*time.Millisecond, "how long each activity takes")
	flag.Parse()
	if *addr == "" || *out == "" {
		log.Fatal("worker: -addr and -out are required")
	}

	r := task.NewTaskRegistry()
	if err := r.AddOrchestratorN("SdkKillChain", func(ctx *task.OrchestrationContext) (any, error) {
		var v int
		if err := ctx.GetInput(&v); err != nil {
			return nil, err
		}
		for d := 2; d <= 6; d++ {
			in := task.WithActivityInput(step{ID: string(ctx.ID), V: v, D: d})
			if err := ctx.CallActivity("SdkKillStep", in).Await(&v); err != nil {
				return nil, err
			}
		}
		return v, nil
	}); err != nil {
		log.Fatal(err)
	}
	if err := r.AddActivityN("SdkKillStep", func(ctx task.ActivityContext) (any, error) {
		var s step
		if err := ctx.GetInput(&s); err != nil {
			return nil, err
		}
		select {
		case <-time.After(*delay):
		case <-ctx.Context().Done():
			return nil, ctx.Context().Err()
		}
		if err := appendLine(*out, fmt.Sprintf("%s %d\n", s.ID, s.D)); err != nil {
			return nil, err
		}
		return s.V*10 + s.D, nil
	}); err != nil {
		log.Fatal(err)
	}

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := client.NewTaskHubGrpcClient(conn, stderrLogger{})
	if err := c.StartWorkItemListener(ctx, r); err != nil {
		log.Fatalf("worker: StartWorkItemListener: %v", err)
	}
	fmt.Println("worker ready")
	<-ctx.Done()
}

// appendLine appends line to the file in one write (O_APPEND: lines of
// concurrent activities do not interleave).
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stderrLogger prints the SDK's warnings and errors (the test shows them if it fails).
type stderrLogger struct{}

func (stderrLogger) Debug(v ...any)                 {}
func (stderrLogger) Debugf(format string, v ...any) {}
func (stderrLogger) Info(v ...any)                  { log.Print(append([]any{"INFO "}, v...)...) }
func (stderrLogger) Infof(format string, v ...any)  { log.Printf("INFO "+format, v...) }
func (stderrLogger) Warn(v ...any)                  { log.Print(append([]any{"WARN "}, v...)...) }
func (stderrLogger) Warnf(format string, v ...any)  { log.Printf("WARN "+format, v...) }
func (stderrLogger) Error(v ...any)                 { log.Print(append([]any{"ERROR "}, v...)...) }
func (stderrLogger) Errorf(format string, v ...any) { log.Printf("ERROR "+format, v...) }
