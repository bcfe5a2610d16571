package cluster

import (
	"sync"
)

// EventType says what happened to a member.
type EventType uint8

const (
	EventJoin   EventType = iota + 1 // a member appeared, or came back after leaving or dying
	EventUpdate                      // a live member's metadata changed (Leave sets Meta.Leaving first)
	EventLeave                       // a member left gracefully
	EventFail                        // a member was declared dead
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFail:
		return "fail"
	}
	return "unknown"
}

// Event is a change of one member, with the member as it is after the change.
type Event struct {
	Type   EventType
	Member Member
}

// subscription hands events to one subscriber without ever blocking the
// memberlist goroutine that reports them: push appends to a queue and a pump
// goroutine feeds the channel. The queue holds at most one event per member —
// a newer event about a member replaces an undelivered older one — so a slow
// subscriber costs memory bounded by the cluster's size and always catches up
// to the latest state of every member.
type subscription struct {
	ch   chan Event
	wake chan struct{} // capacity 1: "the queue may be non-empty"
	stop chan struct{}
	done chan struct{}
	once sync.Once // close is called by cancel and by Shutdown, in either order

	mu    sync.Mutex
	queue []Event // oldest first; at most one per member
}

// newSubscription returns a subscription whose pump is not running yet: start
// it with go s.run().
func newSubscription() *subscription {
	return &subscription{
		ch:   make(chan Event),
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
}

func (s *subscription) push(e Event) {
	s.mu.Lock()
	for i, q := range s.queue {
		if q.Member.ID == e.Member.ID {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			break
		}
	}
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscription) pop() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return Event{}, false
	}
	e := s.queue[0]
	s.queue = s.queue[1:]
	return e, true
}

func (s *subscription) run() {
	defer close(s.done)
	defer close(s.ch)
	for {
		e, ok := s.pop()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		select {
		case s.ch <- e:
		case <-s.stop:
			return
		}
	}
}

// close stops the pump and waits for it; undelivered events are dropped and
// the channel is closed.
func (s *subscription) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}
