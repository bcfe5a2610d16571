package actors

import (
	"sync"
	"time"
)

// workerDispatcher runs actor mailboxes on reused goroutines. protoactor's
// default dispatcher starts a new goroutine for every mailbox run, and each one
// grows its stack again through pebble, msgpack and the executor (stack copying
// was ~10% of the chain benchmark's CPU). Here an idle worker takes the run; if
// none is idle a new worker starts, so a blocking run (a synced commit, a long
// activity) never holds up another, and concurrency stays unbounded as before.
// Workers idle for idleFor exit.
type workerDispatcher struct {
	throughput int
	idleFor    time.Duration

	mu    sync.Mutex
	idle  []chan func() // parked workers, each waiting on its own channel
	close bool
}

func newWorkerDispatcher(throughput int, idleFor time.Duration) *workerDispatcher {
	return &workerDispatcher{throughput: throughput, idleFor: idleFor}
}

func (d *workerDispatcher) Throughput() int { return d.throughput }

func (d *workerDispatcher) Schedule(fn func()) {
	d.mu.Lock()
	if n := len(d.idle); n > 0 && !d.close {
		w := d.idle[n-1]
		d.idle = d.idle[:n-1]
		d.mu.Unlock()
		w <- fn
		return
	}
	d.mu.Unlock()
	go d.work(fn)
}

func (d *workerDispatcher) work(fn func()) {
	inbox := make(chan func(), 1)
	timer := time.NewTimer(d.idleFor)
	defer timer.Stop()
	for {
		fn()
		d.mu.Lock()
		if d.close {
			d.mu.Unlock()
			return
		}
		d.idle = append(d.idle, inbox)
		d.mu.Unlock()
		var ok bool
		if fn, ok = d.park(inbox, timer); !ok {
			return
		}
	}
}

// parkedStack is the stack a parked worker keeps in use. The garbage collector
// halves the stack of any goroutine using less than a quarter of it, so a
// worker parked at the top of its stack lost the stack it had grown at every
// cycle and grew it again, copying, on its next run: in the fan-out benchmark
// that copying (mostly under encoding/json, decoding activity inputs) was ~10%
// of the CPU. Parked below a frame this deep, a worker keeps a stack of 16–32 KB.
const parkedStack = 8 << 10

// park waits for the worker's next run; false when it retires.
//
//go:noinline
func (d *workerDispatcher) park(inbox chan func(), timer *time.Timer) (func(), bool) {
	var pad [parkedStack]byte
	touch(&pad)
	timer.Reset(d.idleFor)
	select {
	case fn := <-inbox:
		return fn, true
	case <-timer.C:
		if d.retire(inbox) {
			return nil, false
		}
		return <-inbox, true // a Schedule took this worker just as the timer fired
	}
}

// touch keeps pad on the stack: the compiler cannot drop an array whose address
// is passed to a function it does not inline, and pad does not escape.
//
//go:noinline
func touch(pad *[parkedStack]byte) { pad[0] = 1 }

// retire removes a parked worker; false if a Schedule already claimed it.
func (d *workerDispatcher) retire(inbox chan func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, w := range d.idle {
		if w == inbox {
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			return true
		}
	}
	return false
}

// stop makes parked workers exit; running ones exit when their run ends.
func (d *workerDispatcher) stop() {
	d.mu.Lock()
	d.close = true
	idle := d.idle
	d.idle = nil
	d.mu.Unlock()
	for _, w := range idle {
		w <- func() {}
	}
}
