// In-process clusters, like runtime_cluster_test.go: no race detector.

//go:build !race

package weft_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/test/messaging"
)

// Messages between instances whose receiver's node is down: each waits at its
// sender, through the sender's own restart if need be, and arrives once the
// receiver's node is back. Node b is the one that goes down; every case runs
// once with node a (the sender's) left alone and once restarted while b is down.

// deliveryCluster is nodes a and b, b the one that goes down.
type deliveryCluster struct {
	t          *testing.T
	a, b       *clusterNode
	adir, bdir string
}

func newDeliveryCluster(t *testing.T) *deliveryCluster {
	c := &deliveryCluster{t: t, adir: t.TempDir(), bdir: t.TempDir()}
	c.a = openClusterNode(t, "a", c.adir, nil, messaging.Register)
	c.b = openClusterNode(t, "b", c.bdir, []string{c.a.gossipAddr()}, messaging.Register)
	t.Cleanup(func() {
		c.b.rt.Close()
		c.a.rt.Close()
	})
	eventually(t, "placement settles", 30*time.Second, func() error { return settled(c.a, c.b) })
	return c
}

// idOn returns an instance id, starting with prefix, whose partition node holds.
func (c *deliveryCluster) idOn(node, prefix string) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if c.a.rt.Cluster().Partitions()[c.a.rt.Host().Partition(id)].Holder == node {
			return id
		}
	}
}

// stopB stops node b (no leave: it keeps its partitions) and waits until a
// sees it dead.
func (c *deliveryCluster) stopB() {
	c.t.Helper()
	if err := c.b.rt.Close(); err != nil {
		c.t.Fatal(err)
	}
	eventually(c.t, "a sees b dead", 10*time.Second, func() error {
		for _, m := range c.a.rt.Cluster().Members() {
			if m.ID == "b" && m.State != "alive" {
				return nil
			}
		}
		return errors.New("b still alive")
	})
}

// restartA stops node a and starts it again on its store, alone: b is down.
func (c *deliveryCluster) restartA() {
	c.t.Helper()
	if err := c.a.rt.Close(); err != nil {
		c.t.Fatal(err)
	}
	c.a = openClusterNode(c.t, "a", c.adir, nil, messaging.Register)
}

// startB brings b back on its store, joining a.
func (c *deliveryCluster) startB() {
	c.t.Helper()
	c.b = openClusterNode(c.t, "b", c.bdir, []string{c.a.gossipAddr()}, messaging.Register)
}

func (c *deliveryCluster) schedule(name, id string, input any) {
	c.t.Helper()
	if _, err := c.a.rt.Schedule(context.Background(), name, input, weft.WithInstanceID(id)); err != nil {
		c.t.Fatalf("schedule %s %s: %v", name, id, err)
	}
}

// waitFor waits (through a) until instance id has started, or finished,
// asking again while its partition is unavailable or it does not exist yet.
func (c *deliveryCluster) waitFor(id string, finished bool) *weft.InstanceStatus {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var st *weft.InstanceStatus
		var err error
		if finished {
			st, err = c.a.rt.WaitForCompletion(ctx, id)
		} else {
			st, err = c.a.rt.WaitForStart(ctx, id)
		}
		cancel()
		if err == nil {
			return st
		}
		retry := errors.Is(err, weft.ErrUnavailable) || errors.Is(err, weft.ErrInstanceNotFound) || errors.Is(err, context.DeadlineExceeded)
		if !retry || time.Now().After(deadline) {
			c.t.Fatalf("wait for %s (finished: %v): %v", id, finished, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// completes waits until instance id completed with output want.
func (c *deliveryCluster) completes(id, want string) {
	c.t.Helper()
	st := c.waitFor(id, true)
	if st.Status != weft.StatusCompleted || string(st.Output) != want {
		c.t.Fatalf("%s: %s, output %s, failure %v; want COMPLETED with %s", id, st.Status, st.Output, st.Failure, want)
	}
}

func (c *deliveryCluster) started(id string) {
	c.t.Helper()
	c.waitFor(id, false)
}

func forBothSenders(t *testing.T, run func(t *testing.T, restartSender bool)) {
	for _, restart := range []bool{false, true} {
		name := "sender stays up"
		if restart {
			name = "sender restarts while the message waits"
		}
		t.Run(name, func(t *testing.T) { run(t, restart) })
	}
}

// An event sent with SendEvent to an instance whose node is down arrives when
// the node is back.
func TestClusterEventToADownNodeArrives(t *testing.T) {
	forBothSenders(t, func(t *testing.T, restartSender bool) {
		c := newDeliveryCluster(t)
		target, sender := c.idOn("b", "waiter"), c.idOn("a", "sender")
		c.schedule("Waiter", target, "")
		c.started(target)
		c.stopB()
		c.schedule("Sender", sender, messaging.SendInput{Target: target, Data: "hello"})
		c.completes(sender, `"sent"`) // the sender finishes; its event waits in its outbox
		if n := c.a.rt.Host().PendingDeliveries(); n == 0 {
			t.Fatal("no message pending on a while b is down")
		}
		if restartSender {
			c.restartA()
		}
		c.startB()
		c.completes(target, `"hello"`)
	})
}

// A child that finishes while its parent's node is down reaches the parent
// when the node is back.
func TestClusterChildResultToADownParentArrives(t *testing.T) {
	forBothSenders(t, func(t *testing.T, restartSender bool) {
		c := newDeliveryCluster(t)
		parent, child := c.idOn("b", "parent"), c.idOn("a", "child")
		c.schedule("Parent", parent, messaging.ParentInput{Child: child, Workflow: "Waiter"})
		c.started(child)
		c.stopB()
		if err := c.a.rt.RaiseEvent(context.Background(), child, "ping", "from the child"); err != nil {
			t.Fatal(err)
		}
		c.completes(child, `"from the child"`)
		if restartSender {
			c.restartA()
		}
		c.startB()
		c.completes(parent, `"from the child"`)
	})
}

// A child started while the child's node is down starts when the node is back.
func TestClusterChildStartToADownNodeArrives(t *testing.T) {
	forBothSenders(t, func(t *testing.T, restartSender bool) {
		c := newDeliveryCluster(t)
		parent, child := c.idOn("a", "parent"), c.idOn("b", "child")
		c.stopB()
		c.schedule("Parent", parent, messaging.ParentInput{Child: child, Workflow: "Echo", Input: "x"})
		c.started(parent)
		if restartSender {
			c.restartA()
		}
		c.startB()
		c.completes(parent, `"x!"`)
		c.completes(child, `"x!"`)
	})
}

// A recursive terminate reaches a child whose node is down when it is back.
func TestClusterTerminateToADownChildArrives(t *testing.T) {
	forBothSenders(t, func(t *testing.T, restartSender bool) {
		c := newDeliveryCluster(t)
		parent, child := c.idOn("a", "parent"), c.idOn("b", "child")
		c.schedule("Parent", parent, messaging.ParentInput{Child: child, Workflow: "Waiter"})
		c.started(child)
		c.stopB()
		if err := c.a.rt.Terminate(context.Background(), parent, weft.TerminateOptions{Recursive: true}); err != nil {
			t.Fatal(err)
		}
		if restartSender {
			c.restartA()
		}
		c.startB()
		if st := c.waitFor(child, true); st.Status != weft.StatusTerminated {
			t.Fatalf("child %s: %s; want TERMINATED", child, st.Status)
		}
	})
}

// Three nodes: a parent on a starts a child on b and one on c while both are
// down, one after the other comes back (c first), and a is restarted between:
// both children start, finish and reach the parent.
func TestClusterChildrenOnTwoDownNodesArrive(t *testing.T) {
	adir, bdir, cdir := t.TempDir(), t.TempDir(), t.TempDir()
	a := openClusterNode(t, "a", adir, nil, messaging.Register)
	b := openClusterNode(t, "b", bdir, []string{a.gossipAddr()}, messaging.Register)
	c := openClusterNode(t, "c", cdir, []string{a.gossipAddr()}, messaging.Register)
	dc := &deliveryCluster{t: t, a: a, b: b, adir: adir, bdir: bdir}
	t.Cleanup(func() { // the nodes running at the end: a restarts, b and c come back
		c.rt.Close()
		b.rt.Close()
		dc.a.rt.Close()
	})
	eventually(t, "placement settles on three nodes", 30*time.Second, func() error { return settled(a, b, c) })
	parent, onB, onC := dc.idOn("a", "fan"), dc.idOn("b", "kid"), dc.idOn("c", "kid")
	for _, n := range []*clusterNode{b, c} {
		if err := n.rt.Close(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a sees b and c dead", 10*time.Second, func() error {
		for _, m := range a.rt.Cluster().Members() {
			if m.ID != "a" && m.State == "alive" {
				return fmt.Errorf("%s still alive", m.ID)
			}
		}
		return nil
	})
	dc.schedule("FanParent", parent, []string{onB, onC})
	dc.started(parent)
	dc.restartA()
	c = openClusterNode(t, "c", cdir, []string{dc.a.gossipAddr()}, messaging.Register)
	dc.completes(onC, fmt.Sprintf("%q", onC+"!"))
	b = openClusterNode(t, "b", bdir, []string{dc.a.gossipAddr()}, messaging.Register)
	dc.b = b
	dc.completes(parent, fmt.Sprintf(`[%q,%q]`, onB+"!", onC+"!"))
}
