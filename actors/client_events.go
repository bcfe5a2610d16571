package actors

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// A client's event sent again
//
// In a cluster, a client's raise-event can reach its instance twice: the node
// that took the request forwards it to the partition's leader and, when no
// answer comes (the leader died, or its leadership changed while the step was
// being committed), sends it again, to whichever replica leads now; the first
// attempt may have been applied. Events that instances send each other are
// recognised by their outbox position (MessageID); a client's event has none,
// and Dapr's API has no idempotency key. So the host that takes the request
// names it (RaiseEventRequest.RequestID) before the first attempt, every
// attempt carries that name, and the instance keeps the names it applied, in
// its partition's data (storage: i/<id>/e/<request>), for clientEventWindow:
// an attempt whose name is there was applied, and is answered as done.
//
// A node alone never sends a request twice, so it names none; it stores the
// names clients give their events themselves (WithIdempotencyKey, namespaced
// apart), which work the same way.

// clientEventWindow is how long an instance recognises a client event it
// applied: longer than any request is retried (MoveWait, 30 s by default,
// after attempts of at most a minute each).
const clientEventWindow = 10 * time.Minute

// requestNamer names the client events a host takes: a random prefix of this
// process and a counter, unique across the cluster and its restarts.
type requestNamer struct {
	prefix string
	next   atomic.Uint64
}

func newRequestNamer() *requestNamer {
	var b [9]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand's documentation)
	return &requestNamer{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (n *requestNamer) name() string {
	return n.prefix + strconv.FormatUint(n.next.Add(1), 36)
}

// nameClientEvent returns msg with a request id if it is a client's event that
// this host may send more than once (it has a router); other messages as they are.
func (h *Host) nameClientEvent(msg any) any {
	m, ok := msg.(RaiseEventRequest)
	if !ok || h.router == nil || m.From != nil || m.Create != nil || m.RequestID != "" {
		return msg
	}
	m.RequestID = h.requests.name()
	return m
}

// appliedAlready reports whether m is an event this instance applied
// already: one sent again by another instance's outbox, or a client's sent
// again (client_events.go). If not, t records it.
func (w *workflowActor) appliedAlready(t *txn, m RaiseEventRequest) (bool, error) {
	if m.From != nil {
		return w.received(t, m.From)
	}
	if m.RequestID != "" {
		return w.appliedClientEvent(t, m.RequestID)
	}
	return false, nil
}

// clientEventLog is what an instance remembers of the client events it
// applied within clientEventWindow.
type clientEventLog struct {
	applied map[string]struct{}
	order   []clientEvent // oldest first: what expires next
}

type clientEvent struct {
	request string
	at      time.Time
}

// clientEvents returns the instance's log, read from the store the first
// time an activation needs it.
func (w *workflowActor) clientEvents() (*clientEventLog, error) {
	if w.clientLog != nil {
		return w.clientLog, nil
	}
	l := &clientEventLog{applied: map[string]struct{}{}}
	err := w.h.db.ClientEvents(w.part, w.id, func(request string, at time.Time) {
		l.applied[request] = struct{}{}
		l.order = append(l.order, clientEvent{request, at})
	})
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", w.id, err)
	}
	// Stored in request id order: the log forgets by time.
	slices.SortFunc(l.order, func(a, b clientEvent) int { return a.at.Compare(b.at) })
	w.clientLog = l
	return l, nil
}

// appliedClientEvent reports whether the client event named request was
// applied already. If not, t records it, with the deletion of the names
// older than the window; the log itself changes in clientEventCommitted,
// once t is committed.
func (w *workflowActor) appliedClientEvent(t *txn, request string) (bool, error) {
	l, err := w.clientEvents()
	if err != nil {
		return false, err
	}
	if _, ok := l.applied[request]; ok {
		return true, nil
	}
	for _, e := range l.expired(w.now) {
		t.b.DeleteClientEvent(w.part, w.id, e.request)
	}
	return false, t.b.PutClientEvent(w.part, w.id, request, w.now)
}

// clientEventCommitted updates the log after a step that applied the client
// event named request was committed.
func (w *workflowActor) clientEventCommitted(request string) {
	l := w.clientLog
	if l == nil {
		return // unloaded meanwhile: read again when next needed
	}
	old := l.expired(w.now)
	for _, e := range old {
		delete(l.applied, e.request)
	}
	l.order = l.order[len(old):]
	l.applied[request] = struct{}{}
	l.order = append(l.order, clientEvent{request, w.now})
}

// expired returns the names applied longer than clientEventWindow before now.
func (l *clientEventLog) expired(now time.Time) []clientEvent {
	i := 0
	for i < len(l.order) && now.Sub(l.order[i].at) > clientEventWindow {
		i++
	}
	return l.order[:i]
}
