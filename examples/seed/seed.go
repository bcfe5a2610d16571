// Package seed holds the workflows of the seed document (the Dapr workflow
// patterns) that `weft serve` hosts, so every pattern can be tried with curl:
// OrderProcessingWorkflow, ChainingWorkflow, FanOutFanInWorkflow and
// MonitorWorkflow, with their activities. Every activity logs each execution with
// the instance id, task id and attempt.
package seed

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/workflow"
)

// Config tunes the seed workflows.
type Config struct {
	// ApprovalThreshold: orders costing more wait for ManagerApproval (default 1000).
	ApprovalThreshold float64
	// ApprovalTimeout: how long an order waits for approval (default 24 h).
	ApprovalTimeout time.Duration
	// Logger receives the activities' execution logs.
	Logger *slog.Logger
	// HTTPClient checks monitor URLs (default: 5 s timeout).
	HTTPClient *http.Client
}

// Register registers the seed workflows and activities on rt.
func Register(rt *weft.Runtime, cfg Config) error { return RegisterIn(rt.Registry(), cfg) }

// RegisterIn registers the seed workflows and activities in reg.
func RegisterIn(reg *workflow.Registry, cfg Config) error {
	if cfg.ApprovalThreshold == 0 {
		cfg.ApprovalThreshold = 1000
	}
	if cfg.ApprovalTimeout == 0 {
		cfg.ApprovalTimeout = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	s := &samples{cfg: cfg}
	return errors.Join(
		workflow.RegisterWorkflow(reg, s.OrderProcessingWorkflow),
		workflow.RegisterWorkflow(reg, ChainingWorkflow),
		workflow.RegisterWorkflow(reg, FanOutFanInWorkflow),
		workflow.RegisterWorkflow(reg, MonitorWorkflow),
		workflow.RegisterActivity(reg, logged(s, "ReserveInventoryActivity", reserveInventory), workflow.WithName("ReserveInventoryActivity")),
		workflow.RegisterActivity(reg, logged(s, "RequestApprovalActivity", requestApproval), workflow.WithName("RequestApprovalActivity")),
		workflow.RegisterActivity(reg, logged(s, "ProcessPaymentActivity", processPayment), workflow.WithName("ProcessPaymentActivity")),
		workflow.RegisterActivity(reg, logged(s, "ShipOrderActivity", shipOrder), workflow.WithName("ShipOrderActivity")),
		workflow.RegisterActivity(reg, logged(s, "Step1", step("Step1")), workflow.WithName("Step1")),
		workflow.RegisterActivity(reg, logged(s, "Step2", step("Step2")), workflow.WithName("Step2")),
		workflow.RegisterActivity(reg, logged(s, "Step3", step("Step3")), workflow.WithName("Step3")),
		workflow.RegisterActivity(reg, logged(s, "Step4", step("Step4")), workflow.WithName("Step4")),
		workflow.RegisterActivity(reg, logged(s, "MyCompensation", compensate), workflow.WithName("MyCompensation")),
		workflow.RegisterActivity(reg, logged(s, "GetWorkBatch", getWorkBatch), workflow.WithName("GetWorkBatch")),
		workflow.RegisterActivity(reg, logged(s, "ProcessWorkItem", processWorkItem), workflow.WithName("ProcessWorkItem")),
		workflow.RegisterActivity(reg, logged(s, "PostResults", postResults), workflow.WithName("PostResults")),
		workflow.RegisterActivity(reg, logged(s, "GetStatus", s.getStatus), workflow.WithName("GetStatus")),
		workflow.RegisterActivity(reg, logged(s, "SendAlert", sendAlert), workflow.WithName("SendAlert")),
	)
}

type samples struct{ cfg Config }

// logged wraps an activity so each execution is logged with its identity.
func logged[I, O any](s *samples, name string, fn func(context.Context, I) (O, error)) func(context.Context, I) (O, error) {
	return func(ctx context.Context, in I) (O, error) {
		info, _ := workflow.ActivityInfoFrom(ctx)
		start := time.Now()
		out, err := fn(ctx, in)
		attrs := []any{"activity", name, "instance", info.InstanceID, "task", info.TaskID, "attempt", info.Attempt, "took", time.Since(start),
			"started", start.UTC().Format(time.RFC3339Nano)}
		if err != nil {
			s.cfg.Logger.Info("activity failed", append(attrs, "err", err)...)
		} else {
			s.cfg.Logger.Info("activity executed", attrs...)
		}
		return out, err
	}
}

// --- the purchase order (async HTTP API and human interaction patterns) ------

// Order is the seed's order payload.
type Order struct {
	Name              string
	Quantity          int
	TotalCost         float64
	ApprovalThreshold float64 `json:",omitempty"` // overrides the server's threshold for this order
}

// OrderResult is the seed's result.
type OrderResult struct{ Processed bool }

// Approval is the ManagerApproval event's payload.
type Approval struct {
	Approved bool `json:"approved"`
}

// OrderProcessingWorkflow reserves stock, asks a manager to approve expensive
// orders (waiting for the ManagerApproval event, cancelling on rejection or
// timeout), charges and ships.
func (s *samples) OrderProcessingWorkflow(ctx *workflow.Context, order Order) (OrderResult, error) {
	if order.Quantity <= 0 || order.Name == "" {
		return OrderResult{}, workflow.NonRetriable(fmt.Errorf("order needs a Name and a positive Quantity, got %+v", order))
	}
	if err := ctx.CallActivity("ReserveInventoryActivity", order).Await(nil); err != nil {
		return OrderResult{Processed: false}, err
	}
	threshold := s.cfg.ApprovalThreshold
	if order.ApprovalThreshold > 0 {
		threshold = order.ApprovalThreshold
	}
	if order.TotalCost > threshold {
		_ = ctx.SetCustomStatus("waiting for ManagerApproval")
		if err := ctx.CallActivity("RequestApprovalActivity", order).Await(nil); err != nil {
			return OrderResult{}, err
		}
		var approval Approval
		err := ctx.WaitForExternalEvent("ManagerApproval", s.cfg.ApprovalTimeout).Await(&approval)
		if errors.Is(err, workflow.ErrTimeout) {
			ctx.Logger().Info("approval timed out; order cancelled", "order", order.Name)
			_ = ctx.SetCustomStatus("cancelled: approval timed out")
			return OrderResult{Processed: false}, nil
		}
		if err != nil {
			return OrderResult{}, err
		}
		if !approval.Approved {
			_ = ctx.SetCustomStatus("rejected by manager")
			return OrderResult{Processed: false}, nil
		}
		_ = ctx.SetCustomStatus("approved")
	}
	retry := workflow.WithRetryPolicy(&workflow.RetryPolicy{MaxAttempts: 3, FirstRetryInterval: time.Second, BackoffCoefficient: 2})
	if err := ctx.CallActivity("ProcessPaymentActivity", order, retry).Await(nil); err != nil {
		return OrderResult{Processed: false}, err
	}
	if err := ctx.CallActivity("ShipOrderActivity", order, retry).Await(nil); err != nil {
		return OrderResult{Processed: false}, err
	}
	return OrderResult{Processed: true}, nil
}

func reserveInventory(ctx context.Context, o Order) (bool, error)  { return true, nil }
func requestApproval(ctx context.Context, o Order) (string, error) { return "approval requested", nil }
func processPayment(ctx context.Context, o Order) (string, error)  { return "charged", nil }
func shipOrder(ctx context.Context, o Order) (string, error)       { return "shipped", nil }

// --- task chaining -----------------------------------------------------------

// ChainInput drives ChainingWorkflow. FailStep makes that step fail: FailTimes
// times (then succeed), or on every attempt when FailTimes is 0.
type ChainInput struct {
	Value     int    `json:"value"`
	FailStep  string `json:"failStep,omitempty"`
	FailTimes int    `json:"failTimes,omitempty"`
	// RetrySeconds is the first retry interval (default 1; the seed uses a minute).
	RetrySeconds float64 `json:"retrySeconds,omitempty"`
}

type stepInput struct {
	Value     int
	FailStep  string
	FailTimes int
}

// ChainingWorkflow runs Step1..Step4, each output the next input, with the seed's
// retry policy shape, and runs MyCompensation when retries run out.
func ChainingWorkflow(ctx *workflow.Context, in ChainInput) (int, error) {
	first := time.Second
	if in.RetrySeconds > 0 {
		first = time.Duration(in.RetrySeconds * float64(time.Second))
	}
	retry := workflow.WithRetryPolicy(&workflow.RetryPolicy{
		MaxAttempts: 3, FirstRetryInterval: first, BackoffCoefficient: 2, MaxRetryInterval: time.Hour})
	v := in.Value
	for _, s := range []string{"Step1", "Step2", "Step3", "Step4"} {
		if err := ctx.CallActivity(s, stepInput{v, in.FailStep, in.FailTimes}, retry).Await(&v); err != nil {
			var failed *workflow.TaskFailedError
			if errors.As(err, &failed) {
				_ = ctx.CallActivity("MyCompensation", failed.TaskName, retry).Await(nil)
			}
			return 0, err
		}
	}
	return v, nil
}

func step(name string) func(context.Context, stepInput) (int, error) {
	return func(ctx context.Context, in stepInput) (int, error) {
		info, _ := workflow.ActivityInfoFrom(ctx)
		if in.FailStep == name && (in.FailTimes == 0 || info.Attempt <= in.FailTimes) {
			return 0, workflow.NewError("StepFailed", fmt.Sprintf("%s failed on attempt %d", name, info.Attempt))
		}
		return in.Value + 1, nil
	}
}

func compensate(ctx context.Context, failedStep string) (string, error) {
	return "compensated after " + failedStep, nil
}

// --- fan-out/fan-in ----------------------------------------------------------

// FanOutInput drives FanOutFanInWorkflow.
type FanOutInput struct {
	Count       int `json:"count"`
	MaxParallel int `json:"maxParallel"`
	ItemDelayMs int `json:"itemDelayMs"`
}

type workItem struct {
	Index   int
	DelayMs int
}

// FanOutFanInWorkflow gets Count work items, processes them with at most
// MaxParallel in flight, sums the results and posts the sum.
func FanOutFanInWorkflow(ctx *workflow.Context, in FanOutInput) (int, error) {
	var items []workItem
	if err := ctx.CallActivity("GetWorkBatch", in).Await(&items); err != nil {
		return 0, err
	}
	tasks, err := workflow.Parallel(ctx, len(items), in.MaxParallel, func(i int) *workflow.Task {
		return ctx.CallActivity("ProcessWorkItem", items[i])
	})
	if err != nil {
		return 0, err
	}
	sum := 0
	for _, t := range tasks {
		var v int
		if err := t.Await(&v); err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, ctx.CallActivity("PostResults", sum).Await(nil)
}

func getWorkBatch(ctx context.Context, in FanOutInput) ([]workItem, error) {
	if in.Count < 0 || in.Count > 100_000 {
		return nil, workflow.NonRetriable(fmt.Errorf("count must be between 0 and 100000, got %d", in.Count))
	}
	items := make([]workItem, in.Count)
	for i := range items {
		items[i] = workItem{Index: i + 1, DelayMs: in.ItemDelayMs}
	}
	return items, nil
}

// processWorkItem returns the item's index, so the sum of N items is N(N+1)/2.
func processWorkItem(ctx context.Context, it workItem) (int, error) {
	if it.DelayMs > 0 {
		select {
		case <-time.After(time.Duration(it.DelayMs) * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return it.Index, nil
}

func postResults(ctx context.Context, sum int) (int, error) { return sum, nil }

// --- monitor -----------------------------------------------------------------

// MonitorInput is the eternal monitor's state, carried across continue-as-new.
type MonitorInput struct {
	Entity string `json:"entity"`
	// URL, when set, is checked with GET: 2xx is healthy. Otherwise the status is
	// simulated from the entity and the cycle.
	URL               string  `json:"url,omitempty"`
	HealthySeconds    float64 `json:"healthySeconds,omitempty"`   // default 60
	UnhealthySeconds  float64 `json:"unhealthySeconds,omitempty"` // default 5
	MaxCycles         int     `json:"maxCycles,omitempty"`        // 0: forever
	Cycle             int     `json:"cycle"`
	Healthy           bool    `json:"healthy"`
	Alerts            int     `json:"alerts"`
	LastStatusChecked string  `json:"lastStatus,omitempty"`
}

// MonitorWorkflow checks an entity, alerts once on a healthy→unhealthy
// transition, sleeps longer when healthy, and continues as new with its state.
func MonitorWorkflow(ctx *workflow.Context, st MonitorInput) (MonitorInput, error) {
	if st.Entity == "" {
		return st, workflow.NonRetriable(errors.New(`monitor needs an "entity"`))
	}
	var status string
	if err := ctx.CallActivity("GetStatus", st).Await(&status); err != nil {
		status = "unhealthy: " + err.Error()
	}
	st.LastStatusChecked = status
	sleep := secondsOr(st.UnhealthySeconds, 5)
	if status == "healthy" {
		st.Healthy = true
		sleep = secondsOr(st.HealthySeconds, 60)
	} else {
		if st.Healthy || st.Cycle == 0 {
			st.Alerts++
			if err := ctx.CallActivity("SendAlert", st).Await(nil); err != nil {
				return st, err
			}
		}
		st.Healthy = false
	}
	_ = ctx.SetCustomStatus(map[string]any{"cycle": st.Cycle, "status": status, "alerts": st.Alerts})
	if err := ctx.CreateTimer(sleep).Await(nil); err != nil {
		return st, err
	}
	st.Cycle++
	if st.MaxCycles > 0 && st.Cycle >= st.MaxCycles {
		return st, nil
	}
	ctx.ContinueAsNew(st, true)
	return st, nil
}

func secondsOr(s, def float64) time.Duration {
	if s <= 0 {
		s = def
	}
	return time.Duration(s * float64(time.Second))
}

func (s *samples) getStatus(ctx context.Context, st MonitorInput) (string, error) {
	if st.URL == "" {
		// Simulated: each entity is healthy for a few cycles, then unhealthy for one.
		h := fnv.New32a()
		h.Write([]byte(st.Entity))
		if (int(h.Sum32()%3)+st.Cycle)%4 == 3 {
			return "unhealthy", nil
		}
		return "healthy", nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.URL, nil)
	if err != nil {
		return "", workflow.NonRetriable(err)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return "unhealthy", nil
	}
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return "healthy", nil
	}
	return "unhealthy", nil
}

func sendAlert(ctx context.Context, st MonitorInput) (string, error) {
	return fmt.Sprintf("ALERT: %s is unhealthy (cycle %d)", st.Entity, st.Cycle), nil
}
