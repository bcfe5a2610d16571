// Command chaining runs the task-chaining pattern: four steps, each one's output
// the next one's input, every step retried with exponential backoff, and
// compensation once a step's retries have run out.
//
//	go run ./examples/chaining                    # step 2 fails twice, succeeds on attempt 3
//	go run ./examples/chaining -fail permanent    # step 2 never succeeds: compensation runs
//	go run ./examples/chaining -fail none         # every step succeeds at once
//
// The retry policy has the seed's shape (10 attempts, ×2 per attempt, capped),
// scaled down from 1 minute / 1 hour to -first-interval / -max-interval so the
// program ends in seconds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/workflow"
)

// The four steps' types: each step takes the previous step's output.
type (
	Order struct {
		ID   string
		Item string
		Cost float64
	}
	Reservation struct {
		Order Order
		ID    string
	}
	Payment struct {
		Reservation Reservation
		ChargeID    string
	}
	Shipment struct {
		Payment    Payment
		TrackingNo string
	}
	Receipt struct {
		OrderID    string
		ChargeID   string
		TrackingNo string
	}
)

// ChainInput is the workflow's input: the order and the retry policy of its steps.
type ChainInput struct {
	Order Order
	Retry workflow.RetryPolicy
}

// Compensation is what the Compensate activity undoes.
type Compensation struct {
	OrderID    string
	FailedStep string
	Undo       []string // the completed steps' effects, most recent first
}

// OrderChain is the workflow. weft saves each step's output in the instance's
// history before the next step starts, so after a crash the chain resumes at the
// first step without a saved outcome.
func OrderChain(ctx *workflow.Context, in ChainInput) (Receipt, error) {
	retry := workflow.WithRetryPolicy(&in.Retry)
	var (
		res  Reservation
		pay  Payment
		ship Shipment
		rcpt Receipt
	)
	if err := ctx.CallActivity("ReserveInventory", in.Order, retry).Await(&res); err != nil {
		return rcpt, compensate(ctx, in.Order.ID, err, retry)
	}
	if err := ctx.CallActivity("ChargePayment", res, retry).Await(&pay); err != nil {
		return rcpt, compensate(ctx, in.Order.ID, err, retry, "release "+res.ID)
	}
	if err := ctx.CallActivity("ShipOrder", pay, retry).Await(&ship); err != nil {
		return rcpt, compensate(ctx, in.Order.ID, err, retry, "refund "+pay.ChargeID, "release "+res.ID)
	}
	if err := ctx.CallActivity("NotifyCustomer", ship, retry).Await(&rcpt); err != nil {
		return rcpt, compensate(ctx, in.Order.ID, err, retry, "recall "+ship.TrackingNo, "refund "+pay.ChargeID, "release "+res.ID)
	}
	return rcpt, nil
}

// compensate runs once a step has failed for good (the runtime retried it as the
// policy allows and the last attempt failed too): it undoes what the completed
// steps did, then returns the step's error so that the instance fails with it.
func compensate(ctx *workflow.Context, orderID string, err error, retry workflow.CallOption, undo ...string) error {
	var failed *workflow.TaskFailedError
	if !errors.As(err, &failed) {
		return err // not a step failure (e.g. a result that did not decode): nothing ran to undo
	}
	c := Compensation{OrderID: orderID, FailedStep: failed.TaskName, Undo: undo}
	if cerr := ctx.CallActivity("Compensate", c, retry).Await(nil); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

func main() {
	fail := flag.String("fail", "transient", "how step -step behaves: none, transient (succeeds on attempt -succeed-on) or permanent")
	failStep := flag.Int("step", 2, "the step that fails (1-4)")
	succeedOn := flag.Int("succeed-on", 3, "with -fail transient: the attempt that succeeds")
	attempts := flag.Int("attempts", 10, "retry policy: attempts in all, the first included")
	first := flag.Duration("first-interval", 100*time.Millisecond, "retry policy: wait before the second attempt (the seed's 1 minute, scaled down)")
	coef := flag.Float64("coefficient", 2, "retry policy: backoff coefficient")
	maxInterval := flag.Duration("max-interval", time.Second, "retry policy: longest wait (the seed's 1 hour, scaled down)")
	dir := flag.String("dir", "", "data directory; run again on the same one to resume (default: a fresh temporary directory)")
	flag.Parse()
	if *fail != "none" && *fail != "transient" && *fail != "permanent" {
		exit(fmt.Errorf("-fail must be none, transient or permanent, not %q", *fail))
	}
	if *fail == "none" {
		*failStep = 0
	}

	if *dir == "" {
		d, err := os.MkdirTemp("", "weft-chaining-")
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

	// Activities are ordinary functions: this is where I/O happens. simulate
	// prints the attempt and fails it the way the flags say.
	start := time.Now()
	simulate := func(ctx context.Context, stepNo int) error {
		info, _ := workflow.ActivityInfoFrom(ctx)
		elapsed := time.Since(start).Seconds()
		if stepNo == *failStep && (*fail == "permanent" || info.Attempt < *succeedOn) {
			fmt.Printf("[%7.3fs] %s attempt %d: failed: service unavailable\n", elapsed, info.Name, info.Attempt)
			return workflow.NewError("Unavailable", "service unavailable")
		}
		fmt.Printf("[%7.3fs] %s attempt %d: ok\n", elapsed, info.Name, info.Attempt)
		return nil
	}
	must(weft.RegisterWorkflow(rt, OrderChain))
	must(weft.RegisterActivity(rt, func(ctx context.Context, o Order) (Reservation, error) {
		return Reservation{Order: o, ID: "res-" + o.ID}, simulate(ctx, 1)
	}, workflow.WithName("ReserveInventory")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, r Reservation) (Payment, error) {
		return Payment{Reservation: r, ChargeID: "ch-" + r.Order.ID}, simulate(ctx, 2)
	}, workflow.WithName("ChargePayment")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, p Payment) (Shipment, error) {
		return Shipment{Payment: p, TrackingNo: "trk-" + p.Reservation.Order.ID}, simulate(ctx, 3)
	}, workflow.WithName("ShipOrder")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, s Shipment) (Receipt, error) {
		return Receipt{OrderID: s.Payment.Reservation.Order.ID, ChargeID: s.Payment.ChargeID, TrackingNo: s.TrackingNo}, simulate(ctx, 4)
	}, workflow.WithName("NotifyCustomer")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, c Compensation) (any, error) {
		fmt.Printf("[%7.3fs] Compensate: %s failed for good; undoing %v\n", time.Since(start).Seconds(), c.FailedStep, c.Undo)
		return nil, nil
	}, workflow.WithName("Compensate")))

	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		exit(err)
	}
	in := ChainInput{
		Order: Order{ID: "po-1001", Item: "espresso machine", Cost: 849},
		Retry: workflow.RetryPolicy{MaxAttempts: *attempts, FirstRetryInterval: *first, BackoffCoefficient: *coef, MaxRetryInterval: *maxInterval},
	}
	fmt.Printf("order %s; step %d fails: %s; retry policy: %d attempts, first interval %s, coefficient %g, max interval %s\n",
		in.Order.ID, *failStep, *fail, *attempts, *first, *coef, *maxInterval)
	id, err := rt.Schedule(ctx, "OrderChain", in, weft.WithInstanceID("order-"+in.Order.ID), weft.WithReusePolicy(weft.ReuseIgnore))
	if err != nil {
		exit(err)
	}
	st, err := rt.WaitForCompletion(ctx, id)
	if err != nil {
		exit(err)
	}
	switch st.Status {
	case weft.StatusCompleted:
		fmt.Printf("result: %s %s\n", st.Status, st.Output)
	default:
		fmt.Printf("result: %s %s\n", st.Status, st.Failure)
	}
}

func must(err error) {
	if err != nil {
		exit(err)
	}
}

func exit(err error) {
	fmt.Fprintln(os.Stderr, "chaining:", err)
	os.Exit(1)
}
