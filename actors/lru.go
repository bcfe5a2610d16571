package actors

// lruList orders the activations in memory, most recently used first, for
// MaxActive's evictions. Its links live in the activations, so adding one
// allocates nothing: the host's lock is held meanwhile, and a goroutine that
// allocates can be made to assist the garbage collector, or to wait for it,
// while every activation and request of the node waits for that lock.
type lruList struct {
	root activation // sentinel: root.next is the most recently used, root.prev the least
}

func (l *lruList) init() { l.root.next, l.root.prev = &l.root, &l.root }

func (l *lruList) pushFront(a *activation) {
	a.prev, a.next = &l.root, l.root.next
	l.root.next.prev = a
	l.root.next = a
}

func (l *lruList) remove(a *activation) {
	a.prev.next, a.next.prev = a.next, a.prev
	a.prev, a.next = nil, nil
}

func (l *lruList) moveToFront(a *activation) {
	if l.root.next != a {
		l.remove(a)
		l.pushFront(a)
	}
}

// leastRecent returns the least recently used activation that is not stopping,
// other than except, or nil.
func (l *lruList) leastRecent(except *activation) *activation {
	for a := l.root.prev; a != &l.root; a = a.prev {
		if a != except && !a.stopping {
			return a
		}
	}
	return nil
}

// victimProbe bounds how far from the least recently used end victim looks
// for an instance that waits on no queued work.
const victimProbe = 64

// victim returns the activation MaxActive passivates, other than except (the
// one just made), or nil. It takes the least recently used one that waits on
// no work the node serves: its next message is a timer, an event or a child's
// result, about as far off as it has been idle. When the least recently used
// ones all wait on work (more instances have activities or episodes queued
// than fit in memory), it takes the most recently used instance that has
// queued its work: work is served in the order it was queued, so that
// instance is answered last, where the least recently used one is answered
// next and would be loaded again at once, so that nearly every answer loads
// its instance (with 14,000 SDK chains against a cap of 10,000: 236 µs of
// server CPU per activity that way, 183 this way, ~160 below the cap;
// sdkbench).
func (l *lruList) victim(except *activation) *activation {
	probed := 0
	for a := l.root.prev; a != &l.root && probed < victimProbe; a = a.prev {
		if a == except || a.stopping {
			continue
		}
		probed++
		if !a.awaitsWork.Load() {
			return a
		}
	}
	probed = 0
	for a := l.root.next; a != &l.root && probed < victimProbe; a = a.next {
		if a == except || a.stopping {
			continue
		}
		probed++
		if a.awaitsWork.Load() {
			return a
		}
	}
	return l.leastRecent(except)
}
