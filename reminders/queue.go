package reminders

import (
	"math"
	"time"
)

// fireQueue is the service's reminders in memory, ordered by fire time (then by
// key, so equal times fire in a stable order): a 4-ary min-heap whose slots
// hold the fire time next to the entry.
//
// Both choices are about the cache. With 100,000 reminders in memory the
// entries are spread over the Go heap, and a binary heap comparing through
// its pointers missed the cache at every one of its 17 levels: re-queuing the
// fired root was 8% of the CPU of a fire in the bench's scenario 3c. Here a
// comparison reads only the slots, and a node's four children share one
// cache line; the only entry touched per level is the one moved, to update
// its index.
type fireQueue []queued

type queued struct {
	at int64 // the entry's fireAt in unix nanos
	e  *entry
}

const arity = 4

// fireNanos maps t to unix nanos, clamped (UnixNano is undefined outside
// 1678–2262; a zero due time fires first).
func fireNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

func (q fireQueue) less(a, b queued) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if c := a.e.fireAt.Compare(b.e.fireAt); c != 0 {
		return c < 0 // equal in nanos only when clamped
	}
	x, y := a.e.r, b.e.r
	if x.Partition != y.Partition {
		return x.Partition < y.Partition
	}
	if x.Instance != y.Instance {
		return x.Instance < y.Instance
	}
	return x.Name < y.Name
}

// first is the entry that fires next; the queue must not be empty.
func (q fireQueue) first() *entry { return q[0].e }

func (q *fireQueue) push(e *entry) {
	*q = append(*q, queued{at: fireNanos(e.fireAt), e: e})
	q.up(len(*q) - 1)
}

// remove takes out the entry at index i and sets its index to -1.
func (q *fireQueue) remove(i int) {
	h := *q
	e := h[i].e
	last := len(h) - 1
	if i != last {
		h[i] = h[last]
		h[i].e.index = i
	}
	h[last] = queued{}
	*q = h[:last]
	if i != last {
		q.fix(i)
	}
	e.index = -1
}

// fix restores the order after the fireAt of the entry at index i changed.
func (q fireQueue) fix(i int) {
	q[i].at = fireNanos(q[i].e.fireAt)
	if !q.down(i) {
		q.up(i)
	}
}

func (q fireQueue) up(i int) {
	x := q[i]
	for i > 0 {
		p := (i - 1) / arity
		if !q.less(x, q[p]) {
			break
		}
		q[i] = q[p]
		q[i].e.index = i
		i = p
	}
	q[i] = x
	x.e.index = i
}

// down sifts the slot at i down and reports whether it moved.
func (q fireQueue) down(i int) bool {
	start, n, x := i, len(q), q[i]
	for {
		c := arity*i + 1
		if c >= n {
			break
		}
		least := c
		for k := c + 1; k < c+arity && k < n; k++ {
			if q.less(q[k], q[least]) {
				least = k
			}
		}
		if !q.less(q[least], x) {
			break
		}
		q[i] = q[least]
		q[i].e.index = i
		i = least
	}
	q[i] = x
	x.e.index = i
	return i != start
}
