package harness

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBatchWaitsForEveryInstance: every started instance is waited for once,
// the batch ends only after the last one completes, and the waiting uses a
// fixed pool of goroutines however many instances there are.
func TestBatchWaitsForEveryInstance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, conc int
	}{
		{"one", 1, 64},
		{"fewer than the waiters", 100, 8},
		{"many more than the waiters", 20 * waiters, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Instance i completes when done[i] is closed; they complete in
			// reverse order, so every waiter but the last waits behind others.
			done := make([]chan struct{}, tc.n)
			for i := range done {
				done[i] = make(chan struct{})
			}
			waited := make([]atomic.Int32, tc.n)
			var inWait, peak atomic.Int64
			var started atomic.Int64
			result := make(chan time.Duration, 1)
			go func() {
				total, _, err := Batch(context.Background(), tc.n, tc.conc,
					func(context.Context, int) error { started.Add(1); return nil },
					func(ctx context.Context, i int) error {
						k := inWait.Add(1)
						for p := peak.Load(); k > p && !peak.CompareAndSwap(p, k); p = peak.Load() {
						}
						defer inWait.Add(-1)
						waited[i].Add(1)
						<-done[i]
						return nil
					})
				if err != nil {
					t.Error(err)
				}
				result <- total
			}()
			for started.Load() < int64(tc.n) {
				time.Sleep(time.Millisecond)
			}
			for i := tc.n - 1; i >= 0; i-- {
				select {
				case <-result:
					t.Fatalf("the batch ended before instance %d completed", i)
				default:
				}
				close(done[i])
			}
			<-result
			for i := range waited {
				if got := waited[i].Load(); got != 1 {
					t.Fatalf("instance %d waited for %d times, want 1", i, got)
				}
			}
			if p := peak.Load(); p > waiters {
				t.Fatalf("%d waits at once; the pool has %d waiters", p, waiters)
			}
		})
	}
}

// TestBatchReportsTheFirstError: a failed start or wait ends the batch with
// its error, naming the instance, and the other waiters are cancelled.
func TestBatchReportsTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name        string
		start, wait func(ctx context.Context, i int) error
		want        string
	}{
		{
			name:  "start",
			start: func(_ context.Context, i int) error { return errIf(i == 7, boom) },
			wait:  func(context.Context, int) error { return nil },
			want:  "start 7: boom",
		},
		{
			name:  "wait",
			start: func(context.Context, int) error { return nil },
			wait: func(ctx context.Context, i int) error {
				if i == 3 {
					return boom
				}
				<-ctx.Done() // the others never complete: the error must cancel them
				return ctx.Err()
			},
			want: "wait for 3: boom",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Batch(context.Background(), 50, 4, tc.start, tc.wait)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func errIf(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

// TestWriteTimeline: a line per timer that fired (due time, lateness), none
// for one that did not, after the header.
func TestWriteTimeline(t *testing.T) {
	due, fired := NewStamps(3, 3), NewStamps(3, 2)
	at := time.Unix(1_800_000_000, 0)
	due.Mark(0, at)
	fired.Mark(0, at.Add(1500*time.Microsecond))
	due.Mark(1, at.Add(time.Second)) // never fired
	due.Mark(2, at.Add(2*time.Second))
	fired.Mark(2, at.Add(2*time.Second+40*time.Millisecond))
	p := Params{Timeline: t.TempDir() + "/timeline"}
	p.WriteTimeline(due, fired)
	b, err := os.ReadFile(p.Timeline)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{"1800000000000000000 1.500", "1800000002000000000 40.000"}
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "# process start") || !slices.Equal(lines[2:], want) {
		t.Fatalf("timeline:\n%s\nwant the two header lines, then %q", b, want)
	}
}
