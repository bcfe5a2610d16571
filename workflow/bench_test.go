package workflow

import (
	"fmt"
	"testing"
	"time"
)

// LongChain awaits n activities one after another.
func LongChain(ctx *Context, n int) (int, error) {
	v := 0
	for range n {
		if err := ctx.CallActivity("Inc", v).Await(&v); err != nil {
			return 0, err
		}
	}
	return v, nil
}

func benchRegistry() *Registry {
	r := NewRegistry()
	_ = RegisterWorkflow(r, LongChain)
	return r
}

// driveChain runs one LongChain of n steps through a live executor and returns
// the time each step took (completion in, next action out).
func driveChain(reg *Registry, n int, perStep []time.Duration) {
	e := NewExecutor(reg, "bench", ExecutorOptions{})
	defer e.Close()
	at := scriptEpoch
	e.Execute(nil, []Event{{Kind: WorkflowStarted, Name: "LongChain", Data: []byte(fmt.Sprint(n)), Time: at}})
	result := make([]byte, 0, 8)
	in := make([]Event, 1)
	for i := range n {
		result = fmt.Appendf(result[:0], "%d", i+1)
		in[0] = Event{Kind: ActivityCompleted, TaskID: int64(i), Data: result, Time: at}
		start := time.Now()
		o := e.Execute(nil, in)
		if perStep != nil {
			perStep[i] = time.Since(start)
		}
		if len(o.Actions) != 1 {
			panic(fmt.Sprintf("step %d: %d actions", i, len(o.Actions)))
		}
	}
}

// BenchmarkChain5 is the executor's cost per step of a 5-step chain, start and
// completion included (one op = one step).
func BenchmarkChain5(b *testing.B) {
	reg := benchRegistry()
	b.ReportAllocs()
	for b.Loop() {
		driveChain(reg, 5, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*5), "ns/step")
}

// BenchmarkLongChain drives a 10,000-step chain through one live executor and
// reports the median time per step over the first and the last 100 steps: a live
// coroutine keeps the cost per step flat (re-running from the top would grow it).
func BenchmarkLongChain(b *testing.B) {
	const n = 10_000
	reg := benchRegistry()
	perStep := make([]time.Duration, n)
	var first, last []time.Duration
	for b.Loop() {
		driveChain(reg, n, perStep)
		first = append(first, median(perStep[:100]))
		last = append(last, median(perStep[n-100:]))
	}
	f, l := median(first), median(last)
	b.ReportMetric(float64(f.Nanoseconds()), "first100-ns/step")
	b.ReportMetric(float64(l.Nanoseconds()), "last100-ns/step")
	b.ReportMetric(float64(l)/float64(f), "last/first")
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}
