// Command approval runs the external-interaction pattern: a purchase order above
// a cost threshold asks a manager for approval, waits for the ManagerApproval
// event with a timeout, and is cancelled when the manager rejects it or does not
// answer in time.
//
//	go run ./examples/approval
//	go run ./examples/approval -timeout 2s
//
// The program plays the manager itself: it reads the approval requests the
// RequestApproval activity "sends" and answers with rt.RaiseEvent, approving one
// order, rejecting another and leaving a third unanswered.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/workflow"
)

// ApprovalThreshold is the cost above which an order needs a manager's approval.
const ApprovalThreshold = 1000

type Order struct {
	ID   string
	Item string
	Cost float64
}

// OrderInput is the workflow's input.
type OrderInput struct {
	Order           Order
	ApprovalTimeout time.Duration // the seed's 3 days, scaled down
}

// ApprovalResult is the data of the ManagerApproval event.
type ApprovalResult string

const (
	Approved ApprovalResult = "Approved"
	Rejected ApprovalResult = "Rejected"
)

type OrderResult struct {
	Processed bool
	Reason    string
}

// PurchaseOrder is the workflow. While it waits for the event it holds no
// goroutine and no memory of its own: the wait and its timeout are in its
// history and in a durable timer, so a restart in the middle of the wait resumes
// it with the time already waited counted.
func PurchaseOrder(ctx *workflow.Context, in OrderInput) (OrderResult, error) {
	if in.Order.Cost > ApprovalThreshold {
		if err := ctx.CallActivity("RequestApproval", in.Order).Await(nil); err != nil {
			return OrderResult{}, err
		}
		var approval ApprovalResult
		err := ctx.WaitForExternalEvent("ManagerApproval", in.ApprovalTimeout).Await(&approval)
		switch {
		case errors.Is(err, workflow.ErrTimeout):
			return cancelOrder(ctx, in.Order, "no approval within "+in.ApprovalTimeout.String())
		case err != nil:
			return OrderResult{}, err
		case approval != Approved:
			return cancelOrder(ctx, in.Order, "rejected by the manager")
		}
	}
	if err := ctx.CallActivity("PlaceOrder", in.Order).Await(nil); err != nil {
		return OrderResult{}, err
	}
	if in.Order.Cost > ApprovalThreshold {
		return OrderResult{Processed: true, Reason: "approved by the manager"}, nil
	}
	return OrderResult{Processed: true, Reason: fmt.Sprintf("at most %d: no approval needed", ApprovalThreshold)}, nil
}

func cancelOrder(ctx *workflow.Context, o Order, reason string) (OrderResult, error) {
	if err := ctx.CallActivity("CancelOrder", o).Await(nil); err != nil {
		return OrderResult{}, err
	}
	return OrderResult{Processed: false, Reason: reason}, nil
}

func main() {
	timeout := flag.Duration("timeout", 500*time.Millisecond, "how long an order waits for the manager")
	dir := flag.String("dir", "", "data directory; run again on the same one to resume (default: a fresh temporary directory)")
	flag.Parse()

	if *dir == "" {
		d, err := os.MkdirTemp("", "weft-approval-")
		if err != nil {
			exit(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	rt, err := weft.Open(weft.Options{
		Dir:    *dir,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		exit(err)
	}
	defer rt.Close()

	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Printf("[%6.3fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	// The manager's inbox: RequestApproval "emails" the request here.
	inbox := make(chan Order, 16)
	must(weft.RegisterWorkflow(rt, PurchaseOrder))
	must(weft.RegisterActivity(rt, func(ctx context.Context, o Order) (any, error) {
		say("RequestApproval: asking the manager to approve %s (%s, $%.2f)", o.ID, o.Item, o.Cost)
		select {
		case inbox <- o:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, workflow.WithName("RequestApproval")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, o Order) (any, error) {
		say("PlaceOrder: %s placed", o.ID)
		return nil, nil
	}, workflow.WithName("PlaceOrder")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, o Order) (any, error) {
		say("CancelOrder: %s cancelled", o.ID)
		return nil, nil
	}, workflow.WithName("CancelOrder")))

	ctx, cancelManager := context.WithCancel(context.Background())
	defer cancelManager()
	if err := rt.Start(ctx); err != nil {
		exit(err)
	}

	orders := []Order{
		{ID: "po-1001", Item: "paperclips", Cost: 9.95},
		{ID: "po-1002", Item: "laptop", Cost: 2400},
		{ID: "po-1003", Item: "espresso machine", Cost: 18000},
		{ID: "po-1004", Item: "standing desk", Cost: 1250},
	}
	decisions := map[string]ApprovalResult{"po-1002": Approved, "po-1003": Rejected} // po-1004: no answer

	// The manager: answers each request by raising ManagerApproval on the
	// instance the request came from (here the instance id is the order id).
	go func() {
		for {
			select {
			case o := <-inbox:
				d, ok := decisions[o.ID]
				if !ok {
					say("manager: ignores %s", o.ID)
					continue
				}
				say("manager: %s %s", d, o.ID)
				if err := rt.RaiseEvent(ctx, o.ID, "ManagerApproval", d); err != nil && ctx.Err() == nil {
					exit(err)
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	for _, o := range orders {
		_, err := rt.Schedule(ctx, "PurchaseOrder", OrderInput{Order: o, ApprovalTimeout: *timeout},
			weft.WithInstanceID(o.ID), weft.WithReusePolicy(weft.ReuseIgnore))
		if err != nil {
			exit(err)
		}
	}
	results := make([]*weft.InstanceStatus, len(orders))
	for i, o := range orders {
		if results[i], err = rt.WaitForCompletion(ctx, o.ID); err != nil {
			exit(err)
		}
	}
	fmt.Println("results:")
	for i, o := range orders {
		st := results[i]
		if st.Status != weft.StatusCompleted {
			exit(fmt.Errorf("%s: %s %v", o.ID, st.Status, st.Failure))
		}
		var res OrderResult
		must(json.Unmarshal(st.Output, &res))
		outcome := "cancelled"
		if res.Processed {
			outcome = "processed"
		}
		fmt.Printf("%s $%9.2f %-9s %s (took %s)\n", o.ID, o.Cost, outcome, res.Reason,
			st.CompletedAt.Sub(st.CreatedAt).Round(time.Millisecond))
	}
}

func must(err error) {
	if err != nil {
		exit(err)
	}
}

func exit(err error) {
	fmt.Fprintln(os.Stderr, "approval:", err)
	os.Exit(1)
}
