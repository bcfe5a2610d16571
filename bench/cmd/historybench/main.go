// Command historybench measures what a long chain costs per step over the
// durabletask protocol, with a worker that gets the whole history every
// episode (as Dapr's Go SDK v1.11 does) and with one that announces stateful
// history (Dapr 1.17: only the events since its last episode). Per step: the
// wall time from one episode's dispatch to the next (the episode, its
// activity, and the commits between), averaged over the first and the last
// -window steps of -n chains of -steps steps run one after another; the ratio
// last/first says how the cost grows with the history.
//
// weft runs in process (weft.Open with RemoteWorkers, api/durabletask's server
// on a loopback port); the worker is a client generated from the current
// protocol, playing a chain (schedule step k+1 once step k completed, end
// after the last), in this process too. Both sides' CPU is the process's.
//
//	go run ./cmd/historybench -n 5 -steps 100 -window 10
//
// This binary links weft's api/durabletask/protos and so must never link
// durabletask-go (the SDK): both register the protocol's messages under the
// same names.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api/durabletask"
	"github.com/weftrt/weft/api/durabletask/protos"
)

func main() {
	n := flag.Int("n", 5, "chains, run one after another")
	steps := flag.Int("steps", 100, "activities per chain")
	window := flag.Int("window", 10, "steps averaged at each end")
	flag.Parse()
	for _, stateful := range []bool{false, true} {
		first, last, sent, err := run(*n, *steps, *window, stateful)
		if err != nil {
			fmt.Fprintln(os.Stderr, "historybench:", err)
			os.Exit(1)
		}
		mode := "whole history (Dapr Go SDK v1.11's worker)"
		if stateful {
			mode = "stateful history (Dapr 1.17's capability)"
		}
		fmt.Printf("%-45s first %d steps %7.1f µs/step, last %d %7.1f µs/step: %.2fx; past events sent per chain %d\n",
			mode, *window, first, *window, last, last/first, sent)
	}
}

// run returns the mean µs per step over the first and the last window steps
// (medians over the chains), and the past events sent per chain.
func run(n, steps, window int, stateful bool) (first, last float64, sent int, err error) {
	dir, err := os.MkdirTemp("", "historybench-")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	rt, err := weft.Open(weft.Options{Dir: dir, RemoteWorkers: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, 0, 0, err
	}
	defer rt.Close()
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		return 0, 0, 0, err
	}
	opts := durabletask.Options{Logger: slog.New(slog.DiscardHandler)}
	g := durabletask.NewGRPCServer(durabletask.New(rt, opts), opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, 0, err
	}
	go g.Serve(ln)
	defer g.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close()
	c := protos.NewTaskHubSidecarServiceClient(conn)
	req := &protos.GetWorkItemsRequest{}
	if stateful {
		req.Capabilities = []protos.WorkerCapability{protos.WorkerCapability_WORKER_CAPABILITY_STATEFUL_HISTORY}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.GetWorkItems(sctx, req)
	if err != nil {
		return 0, 0, 0, err
	}
	cache := map[string]int{} // events held per instance (their count is what the worker checks)
	var firsts, lasts []float64
	for i := range n {
		id := fmt.Sprintf("chain-%d", i)
		if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Chain", InstanceId: id}); err != nil {
			return 0, 0, 0, err
		}
		var at []time.Time
		for step := 0; ; {
			wi, err := stream.Recv()
			if err != nil {
				return 0, 0, 0, err
			}
			if ar := wi.GetActivityRequest(); ar != nil {
				if _, err := c.CompleteActivityTask(ctx, &protos.ActivityResponse{InstanceId: id, TaskId: ar.GetTaskId(), Result: wrapperspb.String(`"ok"`)}); err != nil {
					return 0, 0, 0, err
				}
				continue
			}
			at = append(at, time.Now())
			wr := wi.GetWorkflowRequest()
			held := 0
			if ch := wr.GetCachedHistory(); ch != nil {
				held = int(ch.GetEventCount())
				if cache[id] != held {
					return 0, 0, 0, fmt.Errorf("%s: the worker holds %d events, the server thinks %d", id, cache[id], held)
				}
			}
			cache[id] = held + len(wr.GetPastEvents())
			sent += len(wr.GetPastEvents())
			action := &protos.WorkflowAction{Id: int32(step), WorkflowActionType: &protos.WorkflowAction_ScheduleTask{
				ScheduleTask: &protos.ScheduleTaskAction{Name: "Step", Input: wrapperspb.String(fmt.Sprint(step))}}}
			if step == steps {
				action = &protos.WorkflowAction{Id: int32(step), WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
					CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}
			}
			if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: id, Actions: []*protos.WorkflowAction{action}}); err != nil {
				return 0, 0, 0, err
			}
			if step == steps {
				break
			}
			step++
		}
		delete(cache, id)
		per := func(from, to int) float64 { return float64(at[to].Sub(at[from]).Microseconds()) / float64(to-from) }
		firsts = append(firsts, per(0, window))
		lasts = append(lasts, per(len(at)-1-window, len(at)-1))
	}
	return median(firsts), median(lasts), sent / n, nil
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}
