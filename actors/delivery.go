package actors

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Messages from one instance to another (an event sent with SendEvent, a child
// start, a child's result, a recursive terminate reaching a child), a fired
// reminder to its instance and an acknowledgement back to a sender all travel
// as deliveries. A delivery ends only when the receiver has decided: it
// committed the message, or refused it for good (no such instance, ...). Every
// other outcome — the receiving partition's node is down, a move outlasted its
// wait, no answer in time, a commit that failed — parks the delivery, and it is
// tried again with backoff for as long as it takes, at once when the cluster
// says a node came back (RetryDeliveries).
//
// Nothing here is durable, and nothing needs to be: each message is durable at
// its sender until the delivery's acknowledgement is committed (an outbox
// record, a child's "parent not told" flag, a parent's outstanding child, a
// stored reminder), and the sender is in its partition's awake set, so a
// restart loads it and it sends again. Receivers make a second copy harmless:
// events carry their outbox position (MessageID), child results and starts are
// matched to the outstanding task, a terminate or a reminder applies once.

// delivery is one message on its way to an instance.
type delivery struct {
	target string
	msg    any
	// then is delivered once msg is settled: the acknowledgement that lets
	// the sender forget the message.
	then *delivery

	since time.Time // when the first attempt failed
	tries int
	due   time.Time // next attempt, while parked
	index int       // in deliveryQueue.parked
}

// deliveryQueue holds the deliveries waiting for their next attempt.
type deliveryQueue struct {
	sem     chan struct{} // bounds the attempts running at once
	mu      sync.Mutex
	parked  parkedHeap
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	pending atomic.Int64 // deliveries not settled: being attempted or parked
	retries atomic.Int64
	started atomic.Bool
}

// The first retry waits retryFirst, each next one twice as long, up to retryMax;
// a jitter of up to a fifth spreads the retries of a node's many messages to a
// partition that was down.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = 10 * time.Second
	// warnAfterTries: a delivery still refused after this many attempts (about a
	// minute) is logged at WARN, once.
	warnAfterTries = 12
)

func newDeliveryQueue() *deliveryQueue {
	return &deliveryQueue{sem: make(chan struct{}, 1024), kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// deliverAsync sends msg to an instance in the background until the instance
// decides on it (see settled) or the host closes.
func (h *Host) deliverAsync(id string, msg any) { h.deliverThen(id, msg, "", nil) }

// deliverThen is deliverAsync, then (once msg is settled) the acknowledgement
// ack to ackTo.
func (h *Host) deliverThen(id string, msg any, ackTo string, ack any) {
	var then *delivery
	if ack != nil {
		then = newDelivery(ackTo, ack, nil)
	}
	h.startDelivery(newDelivery(id, msg, then))
}

// Deliveries are pooled: every reminder that fires is one, and a timer's
// fire allocated one more object than it did before deliveries were parked.
var deliveryPool = sync.Pool{New: func() any { return new(delivery) }}

func newDelivery(target string, msg any, then *delivery) *delivery {
	d := deliveryPool.Get().(*delivery)
	d.target, d.msg, d.then = target, msg, then
	return d
}

// free returns a settled (or dropped) delivery to the pool.
func (d *delivery) free() {
	*d = delivery{}
	deliveryPool.Put(d)
}

func (h *Host) startDelivery(d *delivery) {
	if h.closing.Load() {
		d.dropChain()
		return
	}
	h.deliveries.pending.Add(1)
	h.attempt(d)
}

// attempt makes one attempt on a goroutine of its own; at most
// cap(sem) attempts run at once, and a caller waits for a free one.
func (h *Host) attempt(d *delivery) {
	h.deliveries.sem <- struct{}{}
	h.background.Add(1)
	go func() {
		defer h.background.Done()
		err := h.Request(h.activityCtx, d.target, d.msg)
		<-h.deliveries.sem // before the acknowledgement takes a slot of its own
		switch {
		case settled(err):
			if err != nil {
				h.log.Debug("message refused by its instance", "instance", d.target, "message", fmt.Sprintf("%T", d.msg), "err", err)
			}
			h.deliveries.pending.Add(-1)
			then := d.then
			d.free()
			if then != nil {
				h.startDelivery(then)
			}
		case h.closing.Load():
			h.deliveries.pending.Add(-1) // durable at its sender: sent again after the next start
			d.dropChain()
		default:
			h.park(d, err)
		}
	}()
}

// dropChain frees a delivery that will not be attempted again, and the
// acknowledgement that would have followed it.
func (d *delivery) dropChain() {
	for d != nil {
		next := d.then
		d.free()
		d = next
	}
}

// settled reports whether err is the receiver's decision on a message (it took
// it, or refused it for good), rather than a failure to reach the receiver or
// to commit there.
func settled(err error) bool {
	return err == nil || errors.Is(err, ErrInstanceNotFound) || errors.Is(err, ErrInstanceExists) ||
		errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNotFinished)
}

// park schedules d's next attempt.
func (h *Host) park(d *delivery, err error) {
	q := h.deliveries
	d.tries++
	q.retries.Add(1)
	wait := retryFirst << min(d.tries-1, 16)
	wait = min(wait, retryMax)
	wait -= time.Duration(rand.Int64N(int64(wait)/5 + 1))
	now := h.opts.Now()
	if d.tries == 1 {
		d.since = now
	}
	d.due = now.Add(wait)
	if d.tries == warnAfterTries {
		h.log.Warn("message not delivered yet; retrying until its instance takes it",
			"instance", d.target, "message", fmt.Sprintf("%T", d.msg), "since", d.since, "tries", d.tries, "err", err)
	} else {
		h.log.Debug("message not delivered; retrying", "instance", d.target, "message", fmt.Sprintf("%T", d.msg),
			"tries", d.tries, "retry_in", wait, "err", err)
	}
	q.mu.Lock()
	heap.Push(&q.parked, d)
	first := d.index == 0
	q.mu.Unlock()
	if first {
		q.poke()
	}
}

func (q *deliveryQueue) poke() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// RetryDeliveries makes every parked delivery due now: the cluster calls it
// when a node comes back, so messages to its partitions do not wait out their
// backoff.
func (h *Host) RetryDeliveries() {
	q := h.deliveries
	now := h.opts.Now()
	q.mu.Lock()
	for _, d := range q.parked {
		d.due = now
	}
	heap.Init(&q.parked)
	n := len(q.parked)
	q.mu.Unlock()
	if n > 0 {
		q.poke()
	}
}

// runDeliveries attempts parked deliveries as they come due, until the host
// closes; what is still parked then is dropped (durable at its sender).
func (h *Host) runDeliveries() {
	q := h.deliveries
	defer close(q.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		var due []*delivery
		now := h.opts.Now()
		for len(q.parked) > 0 && !q.parked[0].due.After(now) {
			due = append(due, heap.Pop(&q.parked).(*delivery))
		}
		wait := time.Hour
		if len(q.parked) > 0 {
			wait = q.parked[0].due.Sub(now)
		}
		q.mu.Unlock()
		for _, d := range due {
			if h.closing.Load() {
				h.deliveries.pending.Add(-1)
				d.dropChain()
				continue
			}
			h.attempt(d)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-q.kick:
		case <-q.stop:
			q.mu.Lock()
			h.deliveries.pending.Add(-int64(len(q.parked)))
			for _, d := range q.parked {
				d.dropChain()
			}
			q.parked = nil
			q.mu.Unlock()
			return
		}
	}
}

// startDeliveries starts runDeliveries; stopDeliveries ends it and waits for it.
func (h *Host) startDeliveries() {
	if h.deliveries.started.CompareAndSwap(false, true) {
		go h.runDeliveries()
	}
}

func (h *Host) stopDeliveries() {
	close(h.deliveries.stop)
	if h.deliveries.started.Load() {
		<-h.deliveries.done
	}
}

// PendingDeliveries is the number of messages on their way to instances and
// not yet decided on: being attempted, or waiting for their next attempt.
func (h *Host) PendingDeliveries() int { return int(h.deliveries.pending.Load()) }

// oldestParked is how long the longest-waiting parked delivery has been on
// its way (0: none is parked).
func (h *Host) oldestParked() time.Duration {
	q := h.deliveries
	q.mu.Lock()
	defer q.mu.Unlock()
	var oldest time.Time
	for _, d := range q.parked {
		if oldest.IsZero() || d.since.Before(oldest) {
			oldest = d.since
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return h.opts.Now().Sub(oldest)
}

// parkedHeap orders parked deliveries by due time.
type parkedHeap []*delivery

func (p parkedHeap) Len() int           { return len(p) }
func (p parkedHeap) Less(i, j int) bool { return p[i].due.Before(p[j].due) }
func (p parkedHeap) Swap(i, j int) {
	p[i], p[j] = p[j], p[i]
	p[i].index, p[j].index = i, j
}
func (p *parkedHeap) Push(x any) {
	d := x.(*delivery)
	d.index = len(*p)
	*p = append(*p, d)
}
func (p *parkedHeap) Pop() any {
	old := *p
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*p = old[:len(old)-1]
	d.index = -1
	return d
}
