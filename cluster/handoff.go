package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/storage"
)

// Handoff moves a partition from the node that holds it to the node placement
// now says owns it, on a graceful join or leave:
//
//  1. the holder marks the partition moving (requests for it wait), stops its
//     actors and drops its reminders from memory;
//  2. it copies every key of the partition to the new owner in chunks; the new
//     owner writes them without marking the partition held;
//  3. the new owner commits (the last chunk's keys and its held record, epoch+1,
//     in one synced batch), fires the partition's reminders and wakes its
//     instances with work in flight, and answers;
//  4. only then does the holder delete the partition and its held record (one
//     synced batch) and forward what waited.
//
// A crash before 3 leaves the holder holding (the receiver's partial keys are
// cleared by the next attempt); a crash between 3 and 4 leaves two copies, and
// the older epoch is dropped as soon as its node hears of the newer one.

const chunkBytes = 1 << 20

type chunkReq struct {
	Part  uint16       `msgpack:"p"`
	Epoch uint64       `msgpack:"e"`
	Seq   int          `msgpack:"s"`
	KVs   []storage.KV `msgpack:"kv"`
	From  string       `msgpack:"f"`
}

type commitReq struct {
	Part   uint16 `msgpack:"p"`
	Epoch  uint64 `msgpack:"e"`
	Chunks int    `msgpack:"n"`
	From   string `msgpack:"f"`
}

// incoming is a partition being received.
type incoming struct {
	epoch uint64
	next  int
	from  string
	// committing: the commit is being written; another commit or chunk waits
	// for the sender's next attempt.
	committing bool
}

// reconcileLoop hands off held partitions whose owner is another live node, and
// drops copies another node holds at a newer epoch. It runs on every registry
// or membership change, and every few seconds in case a handoff failed.
func (n *Node) reconcileLoop() {
	every := 2 * time.Second
	if n.rep != nil {
		every = time.Second // replica moves take one conf change at a time
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	failures := map[uint16]time.Time{}
	rejoined := map[string]*rejoinAttempt{}
	down := map[string]time.Time{} // since when each registered node is unreachable
	var gcLast time.Time           // when replicas were last checked against their leaders
	var saved []byte               // the registry as last persisted
	busy, quiet := true, 0         // replicated: ticks since the replica plan last had work
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
		if n.rep != nil {
			// Replicated partitions move by raft, not by handoff. While nothing
			// moves, the plan runs on a change of the registry or membership and
			// every reconcileIdle ticks, not every tick: an idle node stays idle.
			if quiet++; busy || kicked || quiet >= reconcileIdle {
				busy, quiet = n.rep.reconcile(), 0
			}
			n.rep.collectGarbage(&gcLast)
			continue
		}
		n.dropStale()
		table := n.Table()
		n.mu.Lock()
		parts := slices.Sorted(maps.Keys(n.held))
		n.mu.Unlock()
		for _, p := range parts {
			owner := string(table.Owners[p])
			if owner == n.id || owner == "" || !n.alive(owner) {
				continue
			}
			if until, ok := failures[p]; ok && time.Now().Before(until) {
				continue
			}
			select {
			case <-n.stop:
				return
			default:
			}
			if err := n.handOff(p, owner); err != nil {
				n.log.Warn("partition handoff failed; retrying shortly", "partition", p, "to", owner, "err", err)
				failures[p] = time.Now().Add(2 * time.Second)
				continue
			}
			delete(failures, p)
		}
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

// dropStale forgets partitions another node holds at a newer epoch: this copy
// survived a crash between a handoff's two commits.
func (n *Node) dropStale() {
	n.mu.Lock()
	var stale []uint16
	for p, ep := range n.held {
		if n.moving[p] != nil {
			continue
		}
		if e, ok := n.holderOf(p); ok {
			if theirs, _ := e.Holds(p); theirs > ep {
				stale = append(stale, p)
			}
		}
	}
	n.mu.Unlock()
	for _, p := range stale {
		n.log.Warn("dropping a stale copy of a partition: another node holds a newer one", "partition", p)
		n.dropCopy(p)
	}
}

// dropCopy forgets this node's copy of partition p: its actors stop (and stay
// fenced), its reminders leave memory, its keys and its held record are
// deleted in one synced batch. Requests for p wait meanwhile, then go to the
// node that holds it.
func (n *Node) dropCopy(p uint16) {
	done := make(chan struct{})
	n.mu.Lock()
	if _, held := n.held[p]; !held || n.moving[p] != nil {
		n.mu.Unlock()
		return
	}
	n.moving[p] = done
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.moving, p)
		n.mu.Unlock()
		close(done)
	}()
	_ = n.h.StopPartition(context.Background(), p)
	n.h.Reminders().DropPartition(p)
	n.persist.Lock()
	n.mu.Lock()
	delete(n.held, p)
	n.mu.Unlock()
	b := n.db.NewBatch()
	b.DeletePartition(p)
	b.PutMeta(heldKey, n.heldBytes())
	if err := b.Commit(); err != nil {
		n.log.Error("dropping a stale partition failed", "partition", p, "err", err)
	}
	b.Close()
	n.persist.Unlock()
	n.publish()
}

// handOff moves partition p to node to (steps 1, 2 and 4 above).
func (n *Node) handOff(p uint16, to string) error {
	target, ok := n.reg.Get(to)
	if !ok {
		return fmt.Errorf("node %s is not in the registry", to)
	}
	start := time.Now()
	done := make(chan struct{})
	n.mu.Lock()
	epoch, held := n.held[p]
	if !held || n.moving[p] != nil {
		n.mu.Unlock()
		return nil
	}
	n.moving[p] = done
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.moving, p)
		n.mu.Unlock()
		close(done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := n.h.StopPartition(ctx, p); err != nil {
		return err
	}
	n.h.Reminders().DropPartition(p)
	seq, keys := 0, 0
	err := n.db.ScanPartition(p, chunkBytes, func(kvs []storage.KV) error {
		keys += len(kvs)
		_, err := n.tr.call(ctx, target.ActorAddr, kindChunk, chunkReq{Part: p, Epoch: epoch + 1, Seq: seq, KVs: kvs, From: n.id}, 0)
		seq++
		return err
	})
	if err == nil {
		_, err = n.tr.call(ctx, target.ActorAddr, kindHandoff, commitReq{Part: p, Epoch: epoch + 1, Chunks: seq, From: n.id}, 0)
	}
	if err != nil {
		// Still ours: its actors may run again, its reminders fire here again,
		// and its instances with work in flight (their actors were stopped)
		// re-send it.
		n.h.ServePartition(p)
		n.reloadReminders(p)
		n.wakePartition(p)
		return err
	}
	// The new owner has it: forget it here, in one synced batch (unless a newer
	// copy arrived meanwhile, which refuseLocked prevents: never delete that).
	n.persist.Lock()
	n.mu.Lock()
	if n.held[p] != epoch {
		n.mu.Unlock()
		n.persist.Unlock()
		return fmt.Errorf("partition %d changed epoch during its handoff (%d → %d): kept", p, epoch, n.held[p])
	}
	delete(n.held, p)
	n.mu.Unlock()
	b := n.db.NewBatch()
	b.DeletePartition(p)
	b.PutMeta(heldKey, n.heldBytes())
	err = b.Commit()
	b.Close()
	n.persist.Unlock()
	if err != nil {
		return fmt.Errorf("forget partition %d after handing it off: %w", p, err)
	}
	n.publish()
	for id, rs := range n.h.TakePartitionResults(p) {
		for _, r := range rs {
			n.h.Report(r, id) // results that arrived during the move: to the new owner
		}
	}
	n.log.Info("partition handed off", "partition", p, "to", to, "epoch", epoch+1, "keys", keys, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// refuseLocked says why this node cannot take partition p now: it is leaving
// (its sender's view of the cluster is behind: it would hand the partition
// back and forth), or it is handing p over itself. The sender retries later,
// when views have converged.
func (n *Node) refuseLocked(p uint16) error {
	if !n.registered {
		return fmt.Errorf("node %s is leaving the cluster and takes no partitions", n.id)
	}
	if n.moving[p] != nil {
		return fmt.Errorf("node %s is handing partition %d over itself", n.id, p)
	}
	return nil
}

// receiveChunk writes one chunk of a partition being received (step 2).
func (n *Node) receiveChunk(c chunkReq) error {
	n.mu.Lock()
	if err := n.refuseLocked(c.Part); err != nil {
		n.mu.Unlock()
		return err
	}
	if ep, ok := n.held[c.Part]; ok && ep >= c.Epoch {
		n.mu.Unlock()
		return fmt.Errorf("partition %d: this node already holds epoch %d", c.Part, ep)
	} else if ok {
		// An older copy of ours, still served: its actors must stop before the
		// keys under them are replaced, or a step they commit afterwards would
		// mix their history into the new copy.
		n.mu.Unlock()
		n.log.Warn("dropping a stale copy of a partition: another node hands over a newer one", "partition", c.Part, "ours", ep, "theirs", c.Epoch, "from", c.From)
		n.dropCopy(c.Part)
		n.mu.Lock()
		if _, still := n.held[c.Part]; still {
			n.mu.Unlock()
			return fmt.Errorf("partition %d: this node's own copy is still being dropped; retry", c.Part)
		}
	}
	in := n.receiving[c.Part]
	if in != nil && in.committing {
		n.mu.Unlock()
		return fmt.Errorf("partition %d: a commit of it is in progress", c.Part)
	}
	if c.Seq == 0 || in == nil || in.epoch != c.Epoch || in.from != c.From {
		in = &incoming{epoch: c.Epoch, from: c.From}
		n.receiving[c.Part] = in
	}
	if c.Seq != in.next {
		n.mu.Unlock()
		return fmt.Errorf("partition %d: chunk %d arrived, %d expected", c.Part, c.Seq, in.next)
	}
	in.next++
	n.mu.Unlock()
	b := n.db.NewBatch()
	defer b.Close()
	if c.Seq == 0 {
		b.DeletePartition(c.Part) // leftovers of an earlier, interrupted attempt
	}
	if err := b.PutPartitionKeys(c.Part, c.KVs); err != nil {
		return err
	}
	return b.Commit()
}

// receiveCommit makes a received partition this node's (step 3).
func (n *Node) receiveCommit(c commitReq) error {
	n.mu.Lock()
	in := n.receiving[c.Part]
	if ep, ok := n.held[c.Part]; ok && ep >= c.Epoch {
		n.mu.Unlock()
		return nil // a repeated commit: done already
	}
	if err := n.refuseLocked(c.Part); err != nil {
		n.mu.Unlock()
		return err
	}
	if in != nil && in.committing {
		n.mu.Unlock()
		return fmt.Errorf("partition %d: its commit is in progress", c.Part)
	}
	if c.Chunks > 0 && (in == nil || in.epoch != c.Epoch || in.next != c.Chunks) {
		n.mu.Unlock()
		return fmt.Errorf("partition %d: commit of %d chunks, but the chunks received do not match", c.Part, c.Chunks)
	}
	if in == nil { // an empty partition: no chunks came
		in = &incoming{epoch: c.Epoch, from: c.From}
		n.receiving[c.Part] = in
	}
	in.committing = true
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		if n.receiving[c.Part] == in {
			delete(n.receiving, c.Part)
		}
		n.mu.Unlock()
	}()

	// The partition is committed before it is served, so nothing writes to it
	// meanwhile. Reminders due before this node's scan floor would be missed by
	// its next scan after a crash: they move to the floor (and fire at once
	// either way), in their rows too.
	n.persist.Lock()
	b := n.db.NewBatch()
	defer b.Close()
	if c.Chunks == 0 {
		b.DeletePartition(c.Part) // an empty partition: clear any leftovers
	}
	if _, err := n.db.MoveRemindersUp(b, c.Part, n.h.Reminders().Floor()); err != nil {
		n.persist.Unlock()
		return err
	}
	n.mu.Lock()
	held := maps.Clone(n.held)
	n.mu.Unlock()
	held[c.Part] = c.Epoch
	b.PutMeta(heldKey, encodeHeld(held))
	if err := b.Commit(); err != nil {
		n.persist.Unlock()
		return err
	}
	n.h.ServePartition(c.Part) // before it is held: nothing routes here until then
	n.mu.Lock()
	n.held[c.Part] = c.Epoch
	n.mu.Unlock()
	n.persist.Unlock()
	n.publish()
	n.reloadReminders(c.Part)
	n.wakePartition(c.Part)
	n.log.Info("partition received", "partition", c.Part, "from", c.From, "epoch", c.Epoch)
	return nil
}

// reloadReminders hands the partition's stored reminders to the reminder
// service (it skips those beyond its window; its scans find them later).
func (n *Node) reloadReminders(p uint16) {
	rs, err := n.db.RemindersIn(p, time.Time{})
	if err != nil {
		n.log.Error("reading a partition's reminders failed", "partition", p, "err", err)
		return
	}
	n.h.Reminders().Added(rs...)
}

// wakePartition activates the partition's instances that have work in flight.
func (n *Node) wakePartition(p uint16) {
	_ = n.db.AwakeIn(p, func(id string) error {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := n.h.Wake(ctx, id); err != nil && !errors.Is(err, actors.ErrClosed) {
				n.log.Debug("waking a received instance failed; its next message wakes it", "instance", id, "err", err)
			}
		}()
		return nil
	})
}

// ownedNotServed returns the partitions placement gives this node that it does
// not serve yet (their data has not arrived, or is moving).
func (n *Node) ownedNotServed() []uint16 {
	table := n.Table()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []uint16
	for p, owner := range table.Owners {
		if string(owner) != n.id {
			continue
		}
		if _, ok := n.held[uint16(p)]; !ok || n.moving[uint16(p)] != nil {
			out = append(out, uint16(p))
		}
	}
	return out
}
