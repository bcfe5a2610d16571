package workflow

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) {
	code := m.Run()
	close(deadlockRelease) // the Deadlocks workflow's goroutine may now unwind
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestEventEncodingGolden pins the stored bytes of every event kind: a change here
// breaks every history already on disk.
func TestEventEncodingGolden(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	golden := map[EventKind]string{
		WorkflowStarted:    "86a176cc01a16bcc01a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		ActivityCompleted:  "86a176cc01a16bcc02a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		ActivityFailed:     "87a176cc01a16bcc03a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317da16583a174a145a16da4626f6f6da26e72c3",
		TimerFired:         "86a176cc01a16bcc04a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		ChildCompleted:     "86a176cc01a16bcc05a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		ChildFailed:        "87a176cc01a16bcc06a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317da16583a174a145a16da4626f6f6da26e72c3",
		EventRaised:        "86a176cc01a16bcc07a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		ActivityScheduled:  "88a176cc01a16bcc08a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317da169a76368696c642d31a17283a16103a166d3000000003b9aca00a162cb4000000000000000",
		TimerCreated:       "87a176cc01a16bcc09a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317da166d7ff00000018695735e1",
		TimerCanceled:      "86a176cc01a16bcc0aa174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		ChildScheduled:     "88a176cc01a16bcc0ba174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317da169a76368696c642d31a17283a16103a166d3000000003b9aca00a162cb4000000000000000",
		EventSent:          "86a176cc01a16bcc0ca174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		WorkflowCompleted:  "86a176cc01a16bcc0da174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		WorkflowFailed:     "87a176cc01a16bcc0ea174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317da16583a174a145a16da4626f6f6da26e72c3",
		ContinuedAsNew:     "86a176cc01a16bcc0fa174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		WorkflowTerminated: "86a176cc01a16bcc10a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		WorkflowSuspended:  "86a176cc01a16bcc11a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		WorkflowResumed:    "86a176cc01a16bcc12a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		EpisodeStarted:     "86a176cc01a16bcc13a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		PatchRecorded:      "86a176cc01a16bcc14a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		ExecutionStalled:   "86a176cc01a16bcc15a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c4077b2261223a317d",
		ActivityRetrying:   "88a176cc01a16bcc16a174d7ff00000018695735a5a26964d30000000000000003a16ea55374657031a164c40131a166d7ff00000018695735a6a16582a174a145a16da4626f6f6d",
	}
	for k := KindInvalid + 1; k < kindCount; k++ {
		ev := Event{Kind: k, Time: at, TaskID: 3, Name: "Step1", Data: []byte(`{"a":1}`)}
		switch k {
		case ActivityFailed, ChildFailed, WorkflowFailed:
			ev.Failure = &Failure{Type: "E", Message: "boom", NonRetriable: true}
		case TimerCreated:
			ev.FireAt = at.Add(time.Minute)
		case ActivityRetrying:
			ev.Failure = &Failure{Type: "E", Message: "boom"}
			ev.FireAt, ev.Data = at.Add(time.Second), []byte("1")
		case ActivityScheduled, ChildScheduled:
			ev.Retry = &RetryPolicy{MaxAttempts: 3, FirstRetryInterval: time.Second, BackoffCoefficient: 2}
			ev.Instance = "child-1"
		}
		b, err := EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got := hex.EncodeToString(b)
		if want, ok := golden[k]; !ok || want != got {
			t.Errorf("%s: encoding changed\n got %s\nwant %s", k, got, want)
		}
		back, err := DecodeEvent(b)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if back.Kind != k || !back.Time.Equal(at) || back.TaskID != 3 || string(back.Data) != string(ev.Data) || back.Name != "Step1" {
			t.Errorf("%s: round trip lost data: %+v", k, back)
		}
		if (ev.Failure == nil) != (back.Failure == nil) || (ev.Retry != nil && (back.Retry == nil || back.Retry.MaxAttempts != 3 || back.Retry.FirstRetryInterval != time.Second)) || !back.FireAt.Equal(ev.FireAt) {
			t.Errorf("%s: round trip lost failure, retry or fire time: %+v", k, back)
		}
	}
	// A named version rides on the start event as one more key, "ver".
	b, _ := EncodeEvent(Event{Kind: WorkflowStarted, Time: at, Name: "Order", Version: "v2"})
	if got, want := hex.EncodeToString(b), "85a176cc01a16bcc01a174d7ff00000018695735a5a16ea54f72646572a3766572a27632"; got != want {
		t.Errorf("versioned start: encoding changed\n got %s\nwant %s", got, want)
	}
}

func TestDecodeEventRejects(t *testing.T) {
	future, _ := EncodeEvent(Event{Kind: WorkflowStarted})
	future[4] = 9 // the version byte: {"v": uint8 9, ...}
	for name, b := range map[string][]byte{
		"garbage":        []byte("not msgpack"),
		"future version": future,
	} {
		if _, err := DecodeEvent(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestRetryPolicyNextDelay(t *testing.T) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seed := &RetryPolicy{MaxAttempts: 10, FirstRetryInterval: time.Minute, BackoffCoefficient: 2, MaxRetryInterval: time.Hour}
	cases := []struct {
		name    string
		p       *RetryPolicy
		attempt int
		now     time.Time
		f       *Failure
		want    time.Duration
		ok      bool
	}{
		{"first retry", seed, 1, first, nil, time.Minute, true},
		{"doubles", seed, 3, first, nil, 4 * time.Minute, true},
		{"capped", seed, 8, first, nil, time.Hour, true},
		{"attempts exhausted", seed, 10, first, nil, 0, false},
		{"non-retriable", seed, 1, first, &Failure{NonRetriable: true}, 0, false},
		{"coefficient below one", &RetryPolicy{MaxAttempts: 5, FirstRetryInterval: time.Second, BackoffCoefficient: 0.5}, 4, first, nil, time.Second, true},
		{"retry timeout", &RetryPolicy{MaxAttempts: 5, FirstRetryInterval: time.Minute, RetryTimeout: 90 * time.Second}, 1, first.Add(time.Minute), nil, 0, false},
		{"handle refuses", &RetryPolicy{MaxAttempts: 5, Handle: func(f *Failure) bool { return f.Type != "Fatal" }}, 1, first, &Failure{Type: "Fatal"}, 0, false},
		{"handle accepts", &RetryPolicy{MaxAttempts: 5, FirstRetryInterval: time.Second, Handle: func(f *Failure) bool { return f.Type != "Fatal" }}, 1, first, &Failure{Type: "Busy"}, time.Second, true},
		{"nil policy", nil, 1, first, nil, 0, false},
		{"huge backoff saturates", &RetryPolicy{MaxAttempts: 1000, FirstRetryInterval: time.Hour, BackoffCoefficient: 10}, 500, first, nil, time.Duration(1<<63 - 1), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := c.p.NextDelay(c.attempt, first, c.now, c.f)
			if got != c.want || ok != c.ok {
				t.Errorf("NextDelay = %v, %v; want %v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	if err := RegisterWorkflow(r, Chain); err != nil {
		t.Fatal(err)
	}
	if !r.HasWorkflow("Chain") {
		t.Fatal("Chain not registered under its Go name")
	}
	if err := RegisterWorkflow(r, Chain); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate registration: %v", err)
	}
	if err := RegisterActivity(r, func(ctx context.Context, s string) (string, error) { return s, nil }); err == nil || !strings.Contains(err.Error(), "WithName") {
		t.Errorf("anonymous function without a name: %v", err)
	}
	if err := r.ValidateWorkflowInput("Chain", []byte(`"not a number"`)); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "workflow Chain") {
		t.Errorf("bad input: %v", err)
	}
	if err := r.ValidateWorkflowInput("Nope", nil); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("unknown workflow: %v", err)
	}
	if err := r.ValidateWorkflowInput("Chain", []byte("42")); err != nil {
		t.Errorf("good input: %v", err)
	}

	_ = RegisterActivity(r, func(ctx context.Context, n int) (int, error) {
		if n < 0 {
			return 0, NewError("Negative", "n must be ≥ 0")
		}
		var m map[int]int
		m[n] = n // panics
		return n, nil
	}, WithName("Risky"))
	if _, f := r.RunActivity(context.Background(), "Risky", []byte("-1")); f == nil || f.Type != "Negative" || f.Message != "n must be ≥ 0" {
		t.Errorf("typed failure: %+v", f)
	}
	if _, f := r.RunActivity(context.Background(), "Risky", []byte("1")); f == nil || f.Type != "panic" || !strings.Contains(f.Stack, "goroutine") {
		t.Errorf("panicking activity: %+v", f)
	}
	if _, f := r.RunActivity(context.Background(), "Risky", []byte("{")); f == nil || !f.NonRetriable || !strings.Contains(f.Message, "activity Risky: decode input") {
		t.Errorf("undecodable activity input: %+v", f)
	}
	if _, f := r.RunActivity(context.Background(), "Missing", nil); f == nil || f.Type != "ActivityNotRegistered" {
		t.Errorf("missing activity: %+v", f)
	}
}

// TestUndecodableWorkflowInput fails the instance with an error naming the workflow.
func TestUndecodableWorkflowInput(t *testing.T) {
	e := NewExecutor(testRegistry(), "bad", ExecutorOptions{})
	defer e.Close()
	o := e.Execute(nil, []Event{{Kind: WorkflowStarted, Name: "Chain", Data: []byte(`{"oops"`), Time: scriptEpoch}})
	if len(o.Actions) != 1 || o.Actions[0].Kind != WorkflowFailed || !strings.Contains(o.Actions[0].Failure.Message, "workflow Chain: decode input") {
		t.Fatalf("actions = %+v", o.Actions)
	}
	e2 := NewExecutor(testRegistry(), "unknown", ExecutorOptions{})
	defer e2.Close()
	o = e2.Execute(nil, []Event{{Kind: WorkflowStarted, Name: "NoSuchWorkflow", Time: scriptEpoch}})
	if len(o.Actions) != 1 || o.Actions[0].Failure.Type != "WorkflowNotRegistered" || o.NotRegistered {
		t.Fatalf("a new instance of an unregistered workflow: %+v", o)
	}
	// A history is not failed for it: the runtime waits for the registration.
	e3 := NewExecutor(testRegistry(), "unknown", ExecutorOptions{})
	defer e3.Close()
	o = e3.Execute([]Event{{Kind: WorkflowStarted, Name: "NoSuchWorkflow", Time: scriptEpoch},
		{Kind: ActivityScheduled, TaskID: 0, Name: "Step1", Time: scriptEpoch}}, nil)
	if len(o.Actions) != 0 || !o.NotRegistered {
		t.Fatalf("a replay of an unregistered workflow: %+v", o)
	}
}

// TestAwaitDecodeError reports which task's result did not fit the target.
func TestAwaitDecodeError(t *testing.T) {
	r := NewRegistry()
	_ = RegisterWorkflow(r, func(ctx *Context, _ any) (string, error) {
		var n int
		err := ctx.CallActivity("Step1", nil).Await(&n)
		return "", err
	}, WithName("W"))
	e := NewExecutor(r, "x", ExecutorOptions{})
	defer e.Close()
	e.Execute(nil, []Event{{Kind: WorkflowStarted, Name: "W", Time: scriptEpoch}})
	o := e.Execute(nil, []Event{{Kind: ActivityCompleted, TaskID: 0, Data: []byte(`"text"`), Time: scriptEpoch}})
	if len(o.Actions) != 1 || !strings.Contains(o.Actions[0].Failure.Message, "decode result of activity Step1 (task 0) into *int") {
		t.Fatalf("actions = %+v", o.Actions)
	}
}

// TestChildInstanceIDFits keeps derived child ids within the 64 characters allowed.
func TestChildInstanceIDFits(t *testing.T) {
	long := strings.Repeat("p", 64)
	a, b := childInstanceID(long, 7), childInstanceID(long, 8)
	if len(a) > 64 || len(b) > 64 || a == b || !strings.HasSuffix(a, "-7") {
		t.Fatalf("ids %q %q", a, b)
	}
	if got := childInstanceID("order", 3); got != "order-3" {
		t.Fatalf("short id %q", got)
	}
}

// Scripted is a workflow whose shape comes from its input, for the property test:
// "a" awaits an activity, "fN" fans out N activities, "t" awaits a timer, "e" waits
// for an event with a timeout, "x" races a timer against an event.
func Scripted(ctx *Context, ops []string) ([]string, error) {
	var log []string
	for i, op := range ops {
		switch op[0] {
		case 'a':
			var v string
			err := ctx.CallActivity("A", i).Await(&v)
			log = append(log, fmt.Sprint(v, err != nil))
		case 'f':
			n := int(op[1] - '0')
			tasks := make([]*Task, n)
			for j := range tasks {
				tasks[j] = ctx.CallActivity("F", j)
			}
			log = append(log, fmt.Sprint(WhenAll(tasks...) != nil))
		case 't':
			_ = ctx.CreateTimer(time.Minute).Await(nil)
			log = append(log, "t")
		case 'e':
			var v string
			err := ctx.WaitForExternalEvent("ev", time.Minute).Await(&v)
			log = append(log, v, fmt.Sprint(err != nil))
		case 'x':
			timer, ev := ctx.CreateTimer(time.Minute), ctx.WaitForExternalEvent("ev", 0)
			w, _ := WhenAny(timer, ev)
			if w == 0 {
				ev.Cancel()
			} else {
				timer.Cancel()
			}
			log = append(log, fmt.Sprint("x", w))
		}
	}
	return log, nil
}

type step struct{ in, actions []Event }

// TestReplayPrefixProperty: for random workflows driven by random event orders, a
// fresh executor that replays any prefix of the recorded history produces no new
// actions, and from there produces exactly the actions the live executor did.
func TestReplayPrefixProperty(t *testing.T) {
	reg := NewRegistry()
	if err := RegisterWorkflow(reg, Scripted); err != nil {
		t.Fatal(err)
	}
	rapid.Check(t, func(rt *rapid.T) {
		ops := rapid.SliceOfN(rapid.SampledFrom([]string{"a", "f3", "f1", "t", "e", "x"}), 1, 8).Draw(rt, "ops")
		input := []byte(`["` + strings.Join(ops, `","`) + `"]`)
		live := NewExecutor(reg, "p", ExecutorOptions{})
		defer live.Close()
		now := scriptEpoch
		first := []Event{{Kind: WorkflowStarted, Name: "Scripted", Data: input, Time: now}}
		steps := []step{{first, live.Execute(nil, first).Actions}}
		open := map[int64]Event{}
		track := func(actions []Event) {
			for _, a := range actions {
				switch a.Kind {
				case ActivityScheduled, TimerCreated:
					open[a.TaskID] = a
				case TimerCanceled:
					delete(open, a.TaskID)
				}
			}
		}
		track(steps[0].actions)
		for n := 0; !live.Finished() && n < 100; n++ {
			now = now.Add(time.Second)
			var ev Event
			if len(open) == 0 || rapid.Bool().Draw(rt, "raise") && rapid.IntRange(0, 3).Draw(rt, "p") == 0 {
				ev = Event{Kind: EventRaised, Name: "ev", Data: []byte(fmt.Sprintf(`"v%d"`, n)), Time: now}
			} else {
				ids := make([]int64, 0, len(open))
				for id := range open {
					ids = append(ids, id)
				}
				slicesSort(ids)
				id := rapid.SampledFrom(ids).Draw(rt, "task")
				a := open[id]
				delete(open, id)
				switch {
				case a.Kind == TimerCreated:
					ev = Event{Kind: TimerFired, TaskID: id, Time: now}
				case rapid.Bool().Draw(rt, "fail"):
					ev = Event{Kind: ActivityFailed, TaskID: id, Failure: &Failure{Type: "E", Message: "no"}, Time: now}
				default:
					ev = Event{Kind: ActivityCompleted, TaskID: id, Data: []byte(fmt.Sprintf(`"r%d"`, id)), Time: now}
				}
			}
			o := live.Execute(nil, []Event{ev})
			track(o.Actions)
			steps = append(steps, step{[]Event{ev}, o.Actions})
		}

		k := rapid.IntRange(1, len(steps)).Draw(rt, "prefix")
		var past []Event
		for _, s := range steps[:k] {
			past = append(append(past, s.in...), s.actions...)
		}
		fresh := NewExecutor(reg, "p", ExecutorOptions{})
		defer fresh.Close()
		if o := fresh.Execute(past, nil); len(o.Actions) != 0 {
			rt.Fatalf("replaying %d steps produced new actions %v", k, o.Actions)
		}
		for i, s := range steps[k:] {
			got := fresh.Execute(nil, s.in).Actions
			if fmt.Sprint(got) != fmt.Sprint(s.actions) {
				rt.Fatalf("step %d after replay: got %v, live produced %v", k+i, got, s.actions)
			}
		}
	})
}

func slicesSort(ids []int64) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

// TestDeadlockTimersAreReused: executors take their deadlock timer from a pool
// of stopped ones. A reused timer must not fire for an executor whose code
// yields in time (as a timer left armed, or holding a stale tick, would), and
// must fire for one whose code deadlocks.
func TestDeadlockTimersAreReused(t *testing.T) {
	reg := NewRegistry()
	for _, err := range []error{RegisterWorkflow(reg, Deadlocks), RegisterWorkflow(reg, Uuids)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	start := func(name string, timeout time.Duration) (*Executor, *Outcome) {
		e := NewExecutor(reg, "r", ExecutorOptions{DeadlockTimeout: timeout})
		return e, e.Execute(nil, []Event{{Kind: WorkflowStarted, Name: name, Time: scriptEpoch}})
	}
	deadlock := func() {
		e, out := start("Deadlocks", 20*time.Millisecond)
		defer e.Close()
		if out.Deadlocked || len(out.Actions) != 1 || out.Actions[0].Kind != ActivityScheduled {
			t.Fatalf("Deadlocks before its step: %+v", out)
		}
		out = e.Execute(nil, []Event{{Kind: ActivityCompleted, TaskID: out.Actions[0].TaskID, Data: []byte("null"), Time: scriptEpoch}})
		if !out.Deadlocked {
			t.Fatalf("Deadlocks blocked on a channel and was not found deadlocked: %+v", out)
		}
	}
	for range 20 {
		deadlock() // its timer fired, then went back to the pool
		e, out := start("Uuids", 10*time.Second)
		if out.Deadlocked {
			t.Fatal("Uuids yielded at once and was found deadlocked: a reused timer fired for it")
		}
		e.Close()
	}
}
