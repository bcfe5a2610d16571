package workflow

import (
	"reflect"
	"testing"
	"time"
)

func TestOutstandingWaits(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ptr := func(tm time.Time) *time.Time { return &tm }
	boom := &Failure{Type: "StepFailed", Message: "boom"}
	started := Event{Kind: WorkflowStarted, Name: "W", Time: at(0)}
	retrying := func(task int64, failed string, s, next int) Event {
		return Event{Kind: ActivityRetrying, TaskID: task, Name: "Step", Data: []byte(failed), Failure: boom, Time: at(s), FireAt: at(next)}
	}
	cases := []struct {
		name    string
		history []Event
		want    []Wait
	}{
		{name: "nothing scheduled", history: []Event{started}},
		{
			name: "an activity running, its first attempt",
			history: []Event{started,
				{Kind: ActivityScheduled, TaskID: 0, Name: "Step", Time: at(1)}},
			want: []Wait{{Kind: WaitActivity, TaskID: 0, Name: "Step", Since: at(1), Attempt: 1}},
		},
		{
			name: "completed calls and fired or canceled timers wait on nothing",
			history: []Event{started,
				{Kind: ActivityScheduled, TaskID: 0, Name: "A", Time: at(1)},
				{Kind: ActivityCompleted, TaskID: 0, Time: at(2)},
				{Kind: TimerCreated, TaskID: 1, FireAt: at(5), Time: at(2)},
				{Kind: TimerFired, TaskID: 1, Time: at(5)},
				{Kind: ChildScheduled, TaskID: 2, Name: "C", Instance: "c-1", Time: at(5)},
				{Kind: ChildFailed, TaskID: 2, Failure: boom, Time: at(6)},
				{Kind: TimerCreated, TaskID: 3, Name: "wait:Approval", FireAt: at(60), Time: at(6)},
				{Kind: EventRaised, Name: "Approval", Time: at(7)},
				{Kind: TimerCanceled, TaskID: 3, Time: at(7)},
				{Kind: ActivityScheduled, TaskID: 4, Name: "B", Time: at(7)},
				{Kind: ActivityFailed, TaskID: 4, Failure: boom, Time: at(8)}},
		},
		{
			name: "a retried call: the attempt it is on, why the last one failed, when the next starts",
			history: []Event{started,
				{Kind: ActivityScheduled, TaskID: 0, Name: "Step", Time: at(1)},
				retrying(0, "1", 2, 3),
				retrying(0, "2", 4, 6)},
			want: []Wait{{Kind: WaitActivity, TaskID: 0, Name: "Step", Since: at(1), Attempt: 3, LastFailure: boom, NextAttemptAt: ptr(at(6))}},
		},
		{
			name: "from the tenth failed attempt markers thin out: the attempt is a lower bound",
			history: []Event{started,
				{Kind: ActivityScheduled, TaskID: 0, Name: "Step", Time: at(1)},
				retrying(0, "10", 20, 30)},
			want: []Wait{{Kind: WaitActivity, TaskID: 0, Name: "Step", Since: at(1), Attempt: 11, AttemptAtLeast: true, LastFailure: boom, NextAttemptAt: ptr(at(30))}},
		},
		{
			name: "a marker without a number leaves the attempt as it was",
			history: []Event{started,
				{Kind: ActivityScheduled, TaskID: 0, Name: "Step", Time: at(1)},
				retrying(0, "x", 2, 3)},
			want: []Wait{{Kind: WaitActivity, TaskID: 0, Name: "Step", Since: at(1), Attempt: 1}},
		},
		{
			name: "timers, event waits with a timeout and children, in the order they began",
			history: []Event{started,
				{Kind: TimerCreated, TaskID: 0, FireAt: at(3600), Time: at(1)},
				{Kind: ChildScheduled, TaskID: 1, Name: "Child", Instance: "w-1:0", Time: at(1)},
				{Kind: TimerCreated, TaskID: 2, Name: "wait:ManagerApproval", FireAt: at(86400), Time: at(1)},
				{Kind: ActivityScheduled, TaskID: 3, Name: "Notify", Time: at(1)},
				{Kind: ActivityCompleted, TaskID: 3, Time: at(2)}},
			want: []Wait{
				{Kind: WaitTimer, TaskID: 0, Since: at(1), FireAt: ptr(at(3600))},
				{Kind: WaitChild, TaskID: 1, Name: "Child", Child: "w-1:0", Since: at(1)},
				{Kind: WaitEvent, TaskID: 2, Name: "ManagerApproval", Since: at(1), TimeoutAt: ptr(at(86400))},
			},
		},
		{
			name: "a finished generation waits on nothing, whatever was left open",
			history: []Event{started,
				{Kind: ActivityScheduled, TaskID: 0, Name: "Step", Time: at(1)},
				{Kind: WorkflowTerminated, Data: []byte(`"stop"`), Time: at(2)}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := OutstandingWaits(tc.history)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("OutstandingWaits:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestEventWaits(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	reg := NewRegistry()
	register := func(name string, fn func(ctx *Context, _ int) (int, error)) {
		if err := RegisterWorkflow(reg, fn, WithName(name)); err != nil {
			t.Fatal(err)
		}
	}
	register("Approver", func(ctx *Context, _ int) (int, error) {
		return 0, ctx.WaitForExternalEvent("Approval", 0).Await(nil)
	})
	register("Both", func(ctx *Context, _ int) (int, error) {
		b, a := ctx.WaitForExternalEvent("Beta", 0), ctx.WaitForExternalEvent("Alpha", 0)
		if err := a.Await(nil); err != nil {
			return 0, err
		}
		return 0, b.Await(nil)
	})
	register("Timed", func(ctx *Context, _ int) (int, error) {
		return 0, ctx.WaitForExternalEvent("Approval", time.Hour).Await(nil)
	})
	register("StepThenGo", func(ctx *Context, _ int) (int, error) {
		if err := ctx.CallActivity("Step", 1).Await(nil); err != nil {
			return 0, err
		}
		return 0, ctx.WaitForExternalEvent("Go", 0).Await(nil)
	})
	started := func(name string) Event {
		return Event{Kind: WorkflowStarted, Name: name, Data: []byte("0"), Time: at(0)}
	}
	cases := []struct {
		name    string
		history []Event
		want    []Wait
	}{
		{name: "a wait without a timeout", history: []Event{started("Approver")},
			want: []Wait{{Kind: WaitEvent, TaskID: -1, Name: "Approval", Since: at(0)}}},
		{name: "two at once, in the order they began, then by name", history: []Event{started("Both")},
			want: []Wait{{Kind: WaitEvent, TaskID: -1, Name: "Alpha", Since: at(0)}, {Kind: WaitEvent, TaskID: -1, Name: "Beta", Since: at(0)}}},
		{name: "one of two arrived", history: []Event{started("Both"), {Kind: EventRaised, Name: "Alpha", Data: []byte("1"), Time: at(3)}},
			want: []Wait{{Kind: WaitEvent, TaskID: -1, Name: "Beta", Since: at(0)}}},
		{name: "begun at the step after an activity", history: []Event{started("StepThenGo"),
			{Kind: ActivityScheduled, TaskID: 0, Name: "Step", Time: at(0)},
			{Kind: ActivityCompleted, TaskID: 0, Data: []byte("2"), Time: at(5)}},
			want: []Wait{{Kind: WaitEvent, TaskID: -1, Name: "Go", Since: at(5)}}},
		{name: "still on the activity: no event wait yet", history: []Event{started("StepThenGo"),
			{Kind: ActivityScheduled, TaskID: 0, Name: "Step", Time: at(0)}}},
		{name: "a wait with a timeout is its timer's (OutstandingWaits)", history: []Event{started("Timed"),
			{Kind: TimerCreated, TaskID: 0, Name: "wait:Approval", FireAt: at(3600), Time: at(0)}}},
		{name: "the event came: the workflow finishes, nothing waits", history: []Event{started("Approver"),
			{Kind: EventRaised, Name: "Approval", Data: []byte("1"), Time: at(2)}}},
		{name: "not started", history: nil},
		{name: "a remote worker's workflow", history: []Event{{Kind: EpisodeStarted, Time: at(0)}, started("Approver")}},
		{name: "code not registered here", history: []Event{started("Elsewhere")}},
		{name: "history diverges from the code", history: []Event{started("Approver"),
			{Kind: ActivityScheduled, TaskID: 0, Name: "Step", Time: at(0)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := EventWaits(reg, "i-1", tc.history); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("EventWaits:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
