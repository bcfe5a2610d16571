// Package messaging holds the workflows of the tests of messages between
// instances (events sent with SendEvent, child starts and results, recursive
// terminations): the in-process cluster tests of the root package and the
// multi-process ones of test/cluster (through the msgnode program) run the same.
package messaging

import (
	"context"
	"errors"

	"github.com/weftrt/weft/workflow"
)

// SendInput is Sender's input.
type SendInput struct {
	Target string `json:"target"`
	Data   string `json:"data"`
}

// ParentInput is Parent's input: the child's id, workflow and input.
type ParentInput struct {
	Child    string `json:"child"`
	Workflow string `json:"workflow"`
	Input    string `json:"input"`
}

// Register registers:
//   - Waiter: returns the data of the first "ping" event it receives;
//   - Sender: sends one "ping" with its input's data to its target, and
//     finishes at once with "sent";
//   - Echo: returns its input with "!" appended;
//   - Parent: runs one child workflow under the given id and returns the
//     child's output;
//   - FanParent: runs an Echo child under each of the given ids at once and
//     returns their outputs, in order;
//   - Collector: returns the data of the first n "ping" events it receives
//     (n its input), in order;
//   - ClusterInc: an activity that adds 1.
func Register(reg *workflow.Registry) error {
	return errors.Join(
		workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, n int) ([]string, error) {
			got := []string{}
			for range n {
				var s string
				if err := ctx.WaitForExternalEvent("ping", 0).Await(&s); err != nil {
					return nil, err
				}
				got = append(got, s)
			}
			return got, nil
		}, workflow.WithName("Collector")),
		workflow.RegisterActivity(reg, func(ctx context.Context, v int) (int, error) { return v + 1, nil }, workflow.WithName("ClusterInc")),
		workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, _ string) (string, error) {
			var v string
			err := ctx.WaitForExternalEvent("ping", 0).Await(&v)
			return v, err
		}, workflow.WithName("Waiter")),
		workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, in SendInput) (string, error) {
			return "sent", ctx.SendEvent(in.Target, "ping", in.Data)
		}, workflow.WithName("Sender")),
		workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, in string) (string, error) {
			return in + "!", nil
		}, workflow.WithName("Echo")),
		workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, in ParentInput) (string, error) {
			var out string
			err := ctx.CallChildWorkflow(in.Workflow, in.Input, workflow.WithInstanceID(in.Child)).Await(&out)
			return out, err
		}, workflow.WithName("Parent")),
		workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, children []string) ([]string, error) {
			tasks := make([]*workflow.Task, len(children))
			for i, id := range children {
				tasks[i] = ctx.CallChildWorkflow("Echo", id, workflow.WithInstanceID(id))
			}
			outs := make([]string, len(children))
			for i, t := range tasks {
				if err := t.Await(&outs[i]); err != nil {
					return nil, err
				}
			}
			return outs, nil
		}, workflow.WithName("FanParent")),
	)
}
