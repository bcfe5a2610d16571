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
