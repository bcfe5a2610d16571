package reminders

import (
	"sync"
	"time"
)

// Clock is the service's source of time, injectable so tests control it.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of time.Timer the service uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// deadlineTimer is implemented by timers that can be armed at an absolute time.
// The fake clock's timers do, so a test advancing the clock while the service
// computes its next wake-up can never stretch that wake-up.
type deadlineTimer interface {
	resetAt(deadline time.Time)
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) } // Go ≥ 1.23: no stale tick survives Reset

// FakeClock is a manual clock for tests: time moves only on Advance, and timers
// fire when it passes their deadline.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced whenever a timer is armed or fires
}

// NewFakeClock returns a fake clock reading now.
func NewFakeClock(now time.Time) *FakeClock {
	return &FakeClock{now: now, changed: make(chan struct{})}
}

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *FakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d and fires every timer whose deadline it
// reaches.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.active && !t.when.After(c.now) {
			c.fireLocked(t)
		}
	}
}

// WaitForTimers blocks until at least n timers are armed, or the (real) timeout
// passes; it reports whether the count was reached. A service re-arms its timer
// at the end of every pass, so after an Advance that fired the timer,
// WaitForTimers(1) returns once the service has acted on the new time.
func (c *FakeClock) WaitForTimers(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		armed := 0
		for _, t := range c.timers {
			if t.active {
				armed++
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if armed >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// watch returns how many timers are armed and a channel closed at the next
// change (a timer armed or fired).
func (c *FakeClock) watch() (armed int, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if t.active {
			armed++
		}
	}
	return armed, c.changed
}

func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *FakeClock) fireLocked(t *fakeTimer) {
	t.active = false
	select {
	case t.ch <- c.now:
	default:
	}
	c.notifyLocked()
}

type fakeTimer struct {
	c      *FakeClock
	ch     chan time.Time
	when   time.Time
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	was := t.active
	t.c.mu.Unlock()
	t.resetAt(t.c.Now().Add(d))
	return was
}

func (t *fakeTimer) resetAt(deadline time.Time) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	select { // drop a tick nobody read, as time.Timer.Reset does
	case <-t.ch:
	default:
	}
	t.when = deadline
	t.active = true
	if !deadline.After(c.now) {
		c.fireLocked(t)
		return
	}
	c.notifyLocked()
}
