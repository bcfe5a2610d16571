package cluster

import (
	"errors"
	"fmt"
	"time"
)

// Removing a node for good. A node that stops answering may only be
// restarting: its replicas wait for it. Once it has been unreachable for
// NodeConfig.ReplaceAfter (its disk is presumed lost), or when an operator
// says so (RemoveNode, `weft cluster remove`), it is removed: the registry
// records the removal (a set every node merges by union), placement forgets
// the node, and the leader of each of its groups replaces its replica by the
// next node of the partition's rendezvous order (replicas.go).
//
// A removed node never comes back under its id: its data directory holds
// partitions it no longer replicates. When it hears of its removal (at start,
// from the registry it saved, or from the gossip once it rejoins) it stops
// with a RemovedError; started again with an empty data directory it gets a
// new id and joins as a new node. Raft keeps it from doing harm meanwhile:
// its groups no longer count it, and its logs are behind theirs.
//
// Only a node that sees a majority of the registered nodes alive removes
// another by itself: of two sides of a network partition, the minority never
// removes the majority.

// DefaultReplaceAfter is how long a node stays unreachable before the others
// replace its replicas, unless configured.
const DefaultReplaceAfter = time.Minute

// Removal records that a node was removed from the cluster.
type Removal struct {
	Node   string `msgpack:"n" json:"node"`
	By     string `msgpack:"by" json:"by"` // the node that decided it
	At     int64  `msgpack:"at" json:"at"` // Unix milliseconds
	Reason string `msgpack:"why" json:"reason"`
}

// trustViewAfter: a node decides no removal in its first seconds, while the
// gossip tells it who is alive.
const trustViewAfter = 10 * time.Second

// ErrNodeRemoved is wrapped by RemovedError.
var ErrNodeRemoved = errors.New("node removed from the cluster")

// RemovedError stops a node that was removed from its cluster.
type RemovedError struct{ Removal Removal }

func (e *RemovedError) Error() string {
	return fmt.Sprintf("node %s was removed from the cluster by node %s at %s (%s): its data directory holds partitions it no longer replicates, and it cannot rejoin under its id. "+
		"To bring this machine back, start it with an empty data directory: it joins as a new node and receives replicas again",
		e.Removal.Node, e.Removal.By, time.UnixMilli(e.Removal.At).UTC().Format(time.RFC3339), e.Removal.Reason)
}

func (e *RemovedError) Unwrap() error { return ErrNodeRemoved }

// RemoveNode removes a node for good, at once: an operator who knows its disk
// is gone need not wait for ReplaceAfter. It refuses a node that is alive
// (stop it first: a node that stops gracefully leaves on its own), this node,
// and any node of a cluster whose partitions have one copy (its partitions
// would be lost). Removing a removed node again does nothing.
func (n *Node) RemoveNode(node, reason string) error {
	if _, done := n.reg.Removal(node); done {
		return nil
	}
	e, ok := n.reg.Get(node)
	switch {
	case !ok:
		return fmt.Errorf("%w: node %q is not in this cluster's registry (see `weft cluster members`)", ErrBadRemoval, node)
	case node == n.id:
		return fmt.Errorf("%w: node %s cannot remove itself; stop it (it leaves gracefully) or remove it from another node", ErrBadRemoval, node)
	case n.rep.oneCopy():
		return fmt.Errorf("%w: this cluster keeps one copy of each partition (--replicas 1): removing %s would lose the partitions it holds; start it again instead", ErrBadRemoval, node)
	case n.alive(node):
		return fmt.Errorf("%w: node %s is alive; stop it first (a node that stops gracefully leaves the cluster by itself)", ErrBadRemoval, node)
	case !e.Registered:
		// It left gracefully: its replicas moved already; recording the
		// removal keeps it from coming back with its old data.
	}
	if reason == "" {
		reason = "removed by an operator"
	}
	n.remove(Removal{Node: node, By: n.id, At: time.Now().UnixMilli(), Reason: reason})
	return nil
}

// ErrBadRemoval is wrapped by RemoveNode's refusals.
var ErrBadRemoval = errors.New("cannot remove the node")

// remove records a removal and sends it to the others.
func (n *Node) remove(r Removal) {
	if !n.reg.Remove(r) {
		return
	}
	n.log.Warn("node removed from the cluster: its replicas are replaced", "removed", r.Node, "reason", r.Reason)
	if n.ms != nil {
		n.ms.Broadcast(encodeState(nil, []Removal{r}))
	}
}

// removeLost removes the registered nodes the gossip has held dead for
// ReplaceAfter, if this node sees a majority of the registered nodes alive. A
// removal cannot be undone, so it rests on the gossip's verdict (probes,
// indirect probes, suspicion) rather than on missed pings, and a node that
// started less than trustViewAfter (or ReplaceAfter) ago removes nobody: its
// view of the others is still filling in. down is when each node was first
// seen dead (kept by the caller between calls).
func (n *Node) removeLost(down map[string]time.Time) {
	if n.rep.oneCopy() {
		return // one copy: a dead node's partitions wait for it
	}
	now := time.Now()
	if now.Sub(n.started) < max(n.cfg.ReplaceAfter, trustViewAfter) {
		clear(down)
		return
	}
	registered := n.reg.Registered()
	alive := 0
	for _, id := range registered {
		if n.alive(id) {
			alive++
			delete(down, id)
		} else if _, ok := down[id]; !ok {
			down[id] = now
		}
	}
	for id := range down {
		if e, ok := n.reg.Get(id); !ok || !e.Registered {
			delete(down, id) // left or removed
		}
	}
	if alive <= len(registered)/2 {
		return // perhaps the minority side of a network partition
	}
	for id, since := range down {
		if gone := now.Sub(since); gone >= n.cfg.ReplaceAfter {
			n.remove(Removal{Node: id, By: n.id, At: now.UnixMilli(),
				Reason: fmt.Sprintf("unreachable for %s (replace-after %s)", gone.Round(time.Second), n.cfg.ReplaceAfter)})
			delete(down, id)
		}
	}
}

// checkRemoved stops this node if the registry says it was removed.
func (n *Node) checkRemoved() {
	r, gone := n.reg.Removal(n.id)
	if !gone {
		return
	}
	n.mu.Lock()
	first := n.removedErr == nil
	if first {
		n.removedErr = &RemovedError{Removal: r}
		close(n.removedCh)
	}
	n.mu.Unlock()
	if first {
		n.log.Error("this node was removed from the cluster; it stops serving", "err", n.removedErr)
	}
}

// Removed is closed when this node learns it was removed from the cluster;
// RemovedErr then says by whom and why. The node serves nothing more: its
// process should stop (weft serve exits with the error).
func (n *Node) Removed() <-chan struct{} { return n.removedCh }

// RemovedErr is the *RemovedError once Removed is closed, nil before.
func (n *Node) RemovedErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.removedErr == nil {
		return nil
	}
	return n.removedErr
}

// Known reports whether a node is in the registry (registered, left or removed).
func (n *Node) Known(node string) bool {
	_, ok := n.reg.Get(node)
	return ok
}
