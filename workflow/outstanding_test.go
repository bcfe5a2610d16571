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
