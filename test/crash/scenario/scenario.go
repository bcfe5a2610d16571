// Package scenario holds the workflows and the workloads of the crash tests, shared
// by the worker process (test/crash/worker) and the tests that kill it, so both
// agree on instance ids, inputs and expected outputs.
package scenario

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/weftrt/weft/workflow"
)

// Job is the input of every workflow of the crash tests.
type Job struct {
	N       int `json:"n"`     // activities (chain steps, fan-out width)
	Base    int `json:"base"`  // value of item 0
	DelayMS int `json:"delay"` // TimerFlow: the timer's duration
}

// Item is the input of the Work activity: which item of its instance it is, and
// the value it adds one to.
type Item struct {
	Item  int `json:"item"`
	Value int `json:"value"`
}

// Chain runs N Work steps one after the other, each on the previous output.
func Chain(ctx *workflow.Context, job Job) (int, error) {
	v := job.Base
	for i := range job.N {
		if err := ctx.CallActivity("Work", Item{Item: i, Value: v}).Await(&v); err != nil {
			return 0, err
		}
	}
	return v, nil
}

// FanOut runs N Work activities at once and sums their outputs.
func FanOut(ctx *workflow.Context, job Job) (int, error) {
	tasks := make([]*workflow.Task, job.N)
	for i := range job.N {
		tasks[i] = ctx.CallActivity("Work", Item{Item: i, Value: job.Base + i})
	}
	if err := workflow.WhenAll(tasks...); err != nil {
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
	return sum, nil
}

// TimerFlow runs one activity, waits on a durable timer of DelayMS, then runs a
// second activity.
func TimerFlow(ctx *workflow.Context, job Job) (int, error) {
	v := job.Base
	if err := ctx.CallActivity("Work", Item{Item: 0, Value: v}).Await(&v); err != nil {
		return 0, err
	}
	if err := ctx.CreateTimer(time.Duration(job.DelayMS) * time.Millisecond).Await(nil); err != nil {
		return 0, err
	}
	if err := ctx.CallActivity("Work", Item{Item: 1, Value: v}).Await(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// Instance is one workflow instance of a scenario.
type Instance struct {
	ID       string
	Workflow string // Chain, FanOut or TimerFlow
	Job      Job
}

// Items is how many Work activities the instance runs.
func (in Instance) Items() int {
	if in.Workflow == "TimerFlow" {
		return 2
	}
	return in.Job.N
}

// Value is the input value of item i: Base+i for every workflow (a chain's step i
// gets the previous step's Base+i, and so does TimerFlow's second activity).
func (in Instance) Value(i int) int { return in.Job.Base + i }

// Expected is the instance's output.
func (in Instance) Expected() int {
	switch in.Workflow {
	case "FanOut":
		n := in.Job.N
		return n*in.Job.Base + n*(n+1)/2
	case "TimerFlow":
		return in.Job.Base + 2
	}
	return in.Job.Base + in.Job.N
}

// Get returns the instances of a scenario; timer is the TimerFlow's timer. The
// mixed scenario is a set of instances of staggered sizes (so they complete at
// different times), repeated rounds times under other ids: a test that runs out of
// work before it has killed the worker often enough adds a round.
func Get(name string, timer time.Duration, rounds int) ([]Instance, error) {
	ms := int(timer / time.Millisecond)
	switch name {
	case "fanout":
		return []Instance{{"fanout-1", "FanOut", Job{N: 100}}}, nil
	case "chain":
		return []Instance{{"chain-1", "Chain", Job{N: 20}}}, nil
	case "timer":
		return []Instance{{"timer-1", "TimerFlow", Job{DelayMS: ms}}}, nil
	case "mixed":
		var out []Instance
		for r := range max(rounds, 1) {
			prefix := fmt.Sprintf("r%d-", r)
			for k, n := range []int{5, 10, 20, 30} {
				out = append(out, Instance{fmt.Sprintf("%smix-chain-%d", prefix, k), "Chain", Job{N: n, Base: 100 * k}})
			}
			for k, n := range []int{10, 20, 30, 40, 60} {
				out = append(out, Instance{fmt.Sprintf("%smix-fan-%d", prefix, k), "FanOut", Job{N: n, Base: 1000 * k}})
			}
			out = append(out, Instance{prefix + "mix-timer-0", "TimerFlow", Job{Base: 7, DelayMS: ms}})
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown scenario %q (fanout, chain, timer, mixed)", name)
}

// Event is the compact form of a history event that the worker prints in its
// HIST and FINAL lines.
type Event struct {
	Kind   string          `json:"k"`
	Task   int64           `json:"id"`
	Name   string          `json:"n,omitempty"`
	Data   json.RawMessage `json:"d,omitempty"`
	Time   time.Time       `json:"t"`
	FireAt *time.Time      `json:"f,omitempty"`
	Fail   string          `json:"e,omitempty"`
}

// Compact converts a history to its printed form.
func Compact(evs []workflow.Event) []Event {
	out := make([]Event, len(evs))
	for i, ev := range evs {
		e := Event{Kind: ev.Kind.String(), Task: ev.TaskID, Name: ev.Name, Time: ev.Time}
		if len(ev.Data) > 0 {
			e.Data = json.RawMessage(ev.Data)
		}
		if !ev.FireAt.IsZero() {
			f := ev.FireAt
			e.FireAt = &f
		}
		if ev.Failure != nil {
			e.Fail = ev.Failure.String()
		}
		out[i] = e
	}
	return out
}
