package replication

import (
	"fmt"
	"runtime"
	"time"
)

// A driver that stops making progress stops every partition of its node: no
// step commits, no message is taken, and the node's status calls wait on its
// lock. The watchdog says so in the log, once per such stall, with every
// goroutine's stack, so that whoever runs the node can see where it waits
// (a disk that stopped answering, a write stall, a bug) without attaching a
// debugger to a production process.
//
// Stuck means: a Ready pass has been running for StuckAfter, or the
// driver's lock was found held at every check for StuckAfter (checked 30
// times in that span; a lock merely busy is free at some of them).

// watch runs until the driver stops.
func (d *Driver) watch() {
	defer close(d.watched)
	every := max(d.cfg.StuckAfter/30, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	held := time.Duration(0) // how long the lock was found held at every check
	reported := false
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		if d.mu.TryLock() {
			d.mu.Unlock()
			held = 0
		} else {
			held += every
		}
		why := ""
		if began := d.passBegan.Load(); began != 0 {
			if ran := time.Since(time.Unix(0, began)); ran >= d.cfg.StuckAfter {
				why = fmt.Sprintf("a Ready pass (persist, send, apply) has been running for %s", ran.Round(time.Millisecond))
			}
		}
		if why == "" && held >= d.cfg.StuckAfter {
			why = fmt.Sprintf("its lock has been held for %s", held.Round(time.Millisecond))
		}
		if why == "" {
			reported = false
			continue
		}
		if !reported {
			reported = true
			d.metrics.stalls.Inc()
			d.log.Error("replication: the driver is stuck, and with it every partition of this node: "+why+"; every goroutine's stack follows",
				"goroutines", stacks())
		}
	}
}

// stacks returns every goroutine's stack, at most 8 MiB of them.
func stacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 8<<20 {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}
