package reminders

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftrt/weft/storage"
)

// TestFireQueueKeepsOrderAndIndexes drives the queue with random pushes,
// removals, re-timings and pops (times drawn from a few values, so ties are
// common and are broken by key), and checks it against a sorted model after
// every step: the first entry, every entry's index, and the 4-ary heap order.
func TestFireQueueKeepsOrderAndIndexes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	times := []time.Time{{}, base, base.Add(time.Nanosecond), base.Add(time.Second), base.Add(time.Hour)}
	var q fireQueue
	var live []*entry
	before := func(a, b *entry) int {
		return cmp.Or(a.fireAt.Compare(b.fireAt), cmp.Compare(a.r.Partition, b.r.Partition),
			strings.Compare(a.r.Instance, b.r.Instance), strings.Compare(a.r.Name, b.r.Name))
	}
	for step := range 20000 {
		switch op := rng.IntN(10); {
		case op < 4 || len(live) == 0: // push
			e := &entry{r: storage.Reminder{Partition: uint16(rng.IntN(3)), Instance: fmt.Sprintf("i%d", step), Name: "t"},
				fireAt: times[rng.IntN(len(times))]}
			q.push(e)
			live = append(live, e)
		case op < 6: // remove one anywhere
			i := rng.IntN(len(live))
			e := live[i]
			q.remove(e.index)
			if e.index != -1 {
				t.Fatalf("step %d: removed entry has index %d", step, e.index)
			}
			live = slices.Delete(live, i, i+1)
		case op < 8: // re-time one anywhere, earlier or later
			e := live[rng.IntN(len(live))]
			e.fireAt = times[rng.IntN(len(times))].Add(time.Duration(rng.IntN(3)) * time.Millisecond)
			q.fix(e.index)
		default: // pop the first, as the service's loop does
			want := slices.MinFunc(live, before)
			if got := q.first(); got != want {
				t.Fatalf("step %d: first is %s at %v, want %s at %v", step, got.r.Instance, got.fireAt, want.r.Instance, want.fireAt)
			}
			q.remove(0)
			live = slices.DeleteFunc(live, func(e *entry) bool { return e == want })
		}
		if len(q) != len(live) {
			t.Fatalf("step %d: queue holds %d, want %d", step, len(q), len(live))
		}
		for i, s := range q {
			if s.e.index != i {
				t.Fatalf("step %d: entry at %d has index %d", step, i, s.e.index)
			}
			if s.at != fireNanos(s.e.fireAt) {
				t.Fatalf("step %d: slot %d holds time %d, entry says %v", step, i, s.at, s.e.fireAt)
			}
			if p := (i - 1) / arity; i > 0 && before(q[p].e, s.e) > 0 {
				t.Fatalf("step %d: parent %d fires after child %d", step, p, i)
			}
		}
	}
}

func TestFireNanosClamps(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want int64
	}{
		{time.Time{}, fireNanos(time.Unix(0, -1<<63))},
		{time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), -1 << 63},
		{time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), 1<<63 - 1},
		{time.Unix(5, 6), 5_000_000_006},
	} {
		if got := fireNanos(c.t); got != c.want {
			t.Errorf("fireNanos(%v) = %d, want %d", c.t, got, c.want)
		}
	}
}
