package cluster

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/weftrt/weft/actors"
)

// reconcileLoop keeps the node's view of the cluster acted on: it forgets
// activities whose results came back, rejoins the gossip of nodes it sees
// dead, removes nodes lost for ReplaceAfter, saves the registry, moves
// replicas by the replica plan and collects replicas their groups removed.
// It runs every second (replica moves take one configuration change at a
// time) and on every registry or membership change.
func (n *Node) reconcileLoop() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	rejoined := map[string]*rejoinAttempt{}
	down := map[string]time.Time{} // since when each registered node is unreachable
	var gcLast time.Time           // when replicas were last checked against their leaders
	var saved []byte               // the registry as last persisted
	busy, quiet := true, 0         // ticks since the replica plan last had work
	for {
		kicked := false
		select {
		case <-n.stop:
			return
		case <-n.kick:
			kicked = true
		case <-tick.C:
		}
		n.prunePlaced()
		n.rejoinLost(rejoined)
		n.removeLost(down)
		if state := n.reg.LocalState(); !slices.Equal(state, saved) {
			if n.db.PutMeta(registryKey, state, false) == nil { // a hint: the peers hold it too
				saved = state
			}
		}
		// While nothing moves, the plan runs on a change of the registry or
		// membership and every reconcileIdle ticks, not every tick: an idle
		// node stays idle.
		if quiet++; busy || kicked || quiet >= reconcileIdle {
			busy, quiet = n.rep.reconcile(), 0
		}
		n.rep.collectGarbage(&gcLast)
	}
}

// reconcileIdle: with no replica change under way, the replica plan runs every
// this many ticks (and on every registry or membership change).
const reconcileIdle = 5

// rejoinInterval is how often a node tries to reach a registered node that
// the gossip declared dead.
const rejoinInterval = 5 * time.Second

// rejoinLost tries to join the gossip of each registered node it sees dead,
// every rejoinInterval: after a network partition heals, memberlist alone
// stops looking for members it declared dead once GossipToTheDeadTime has
// passed, and the two sides would stay apart.
func (n *Node) rejoinLost(attempts map[string]*rejoinAttempt) {
	for _, e := range n.reg.Entries() {
		if e.Node == n.id || !e.Registered || e.GossipAddr == "" || n.alive(e.Node) {
			continue
		}
		a := attempts[e.Node]
		if a == nil {
			a = &rejoinAttempt{}
			attempts[e.Node] = a
		}
		if a.running.Load() || time.Since(a.last) < rejoinInterval {
			continue
		}
		a.last = time.Now()
		a.running.Store(true)
		n.wg.Add(1)
		go func() { // a join may wait for its TCP timeout: not in this loop, one at a time per node
			defer n.wg.Done()
			defer a.running.Store(false)
			if err := n.ms.Join([]string{e.GossipAddr}); err == nil {
				n.log.Info("rejoined a node the gossip had declared dead", "member", e.Node, "gossip", e.GossipAddr)
			}
		}()
	}
}

// rejoinAttempt is rejoinLost's record of one node.
type rejoinAttempt struct {
	last    time.Time
	running atomic.Bool
}

// prunePlaced forgets the activities placed on other nodes whose results came
// back: only those still in flight need re-sending if their node goes.
func (n *Node) prunePlaced() {
	n.mu.Lock()
	placed := make(map[string][]actors.Invocation, len(n.placed))
	for node, m := range n.placed {
		placed[node] = slices.Collect(maps.Values(m))
	}
	n.mu.Unlock()
	for node, invs := range placed {
		for _, inv := range invs {
			if !n.h.InFlight(inv) {
				n.unplace(node, inv)
			}
		}
	}
}
