package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/weftrt/weft/workflow"
)

// The seed's task chain: four steps, each output the next input, with an
// exponential retry policy that survives long outages, and compensation when the
// retries run out.
func OrderChain(ctx *workflow.Context, order string) (string, error) {
	retry := workflow.WithRetryPolicy(&workflow.RetryPolicy{
		MaxAttempts:        10,
		FirstRetryInterval: time.Minute,
		BackoffCoefficient: 2,
		MaxRetryInterval:   time.Hour,
	})
	v := order
	for _, step := range []string{"Step1", "Step2", "Step3", "Step4"} {
		if err := ctx.CallActivity(step, v, retry).Await(&v); err != nil {
			var failed *workflow.TaskFailedError
			if errors.As(err, &failed) {
				// Retries expired: undo what the earlier steps did.
				_ = ctx.CallActivity("MyCompensation", failed.TaskName, retry).Await(nil)
			}
			return "", err
		}
	}
	return v, nil
}

// Step1 is an activity: ordinary Go, free to do I/O.
func Step1(ctx context.Context, in string) (string, error) { return strings.ToUpper(in), nil }

// Example_chaining registers the chain and drives it through an Executor, playing
// the activity outcomes a runtime would deliver: Step3 fails for good, so the
// compensation runs and the workflow fails. weft.Open runs the same code for real.
func Example_chaining() {
	reg := workflow.NewRegistry()
	_ = workflow.RegisterWorkflow(reg, OrderChain)
	_ = workflow.RegisterActivity(reg, Step1)

	exec := workflow.NewExecutor(reg, "order-42", workflow.ExecutorOptions{})
	defer exec.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	show := func(o *workflow.Outcome) {
		for _, a := range o.Actions {
			switch a.Kind {
			case workflow.ActivityScheduled:
				fmt.Printf("schedule %s(%s)\n", a.Name, a.Data)
			case workflow.WorkflowFailed:
				fmt.Printf("failed: %s\n", a.Failure.Message)
			}
		}
	}
	show(exec.Execute(nil, []workflow.Event{{Kind: workflow.WorkflowStarted, Name: "OrderChain", Data: []byte(`"paperclips"`), Time: now}}))
	show(exec.Execute(nil, []workflow.Event{{Kind: workflow.ActivityCompleted, TaskID: 0, Data: []byte(`"PAPERCLIPS"`), Time: now}}))
	show(exec.Execute(nil, []workflow.Event{{Kind: workflow.ActivityCompleted, TaskID: 1, Data: []byte(`"reserved"`), Time: now}}))
	show(exec.Execute(nil, []workflow.Event{{Kind: workflow.ActivityFailed, TaskID: 2,
		Failure: &workflow.Failure{Type: "PaymentDeclined", Message: "card expired"}, Time: now}}))
	show(exec.Execute(nil, []workflow.Event{{Kind: workflow.ActivityCompleted, TaskID: 3, Time: now}}))
	// Output:
	// schedule Step1("paperclips")
	// schedule Step2("PAPERCLIPS")
	// schedule Step3("reserved")
	// schedule MyCompensation("Step3")
	// failed: activity Step3 (task 2) failed: PaymentDeclined: card expired
}
