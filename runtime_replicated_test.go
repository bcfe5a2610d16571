// In-process nodes: no race detector (see runtime_cluster_test.go).

//go:build !race

package weft_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/cluster"
	"github.com/weftrt/weft/placement"
	"github.com/weftrt/weft/test/messaging"
	"github.com/weftrt/weft/workflow"
)

// replicatedNode starts a node of a cluster that keeps 3 replicas of every
// partition; inc is its ClusterInc activity.
func replicatedNode(t *testing.T, id, dir string, join []string, inc func(context.Context, int) (int, error)) *clusterNode {
	t.Helper()
	return openClusterNodeReplicas(t, id, dir, join, func(reg *workflow.Registry) error {
		return workflow.RegisterActivity(reg, inc, workflow.WithName("ClusterInc"))
	}, 3)
}

// fullyReplicated reports whether every node is ready: every partition has a
// live leader and three voters.
func fullyReplicated(nodes ...*clusterNode) error { return replicatedOn(len(nodes), nodes...) }

// replicatedOn reports whether every node is ready and every partition has
// want voters.
func replicatedOn(want int, nodes ...*clusterNode) error {
	for _, n := range nodes {
		if err := n.rt.Cluster().Ready(); err != nil {
			return err
		}
		for _, p := range n.rt.Cluster().Partitions() {
			if len(p.Replicas) != want {
				return fmt.Errorf("node %s: partition %d has replicas %v", n.id, p.Partition, p.Replicas)
			}
		}
	}
	return nil
}

// A founder grows into three replicas per partition as two nodes join; then
// one node dies and its data directory is deleted: every instance, finished
// or running at the kill, is still there and completes, served by the two
// others, and new instances run.
func TestClusterReplicatedSurvivesALostDisk(t *testing.T) {
	ctx := context.Background()
	inc := func(ctx context.Context, v int) (int, error) { // slow enough that chains are in flight at the kill
		time.Sleep(100 * time.Millisecond)
		return v + 1, nil
	}
	a := replicatedNode(t, "a", t.TempDir(), nil, inc)
	defer a.rt.Close()
	b := replicatedNode(t, "b", t.TempDir(), []string{a.gossipAddr()}, inc)
	defer b.rt.Close()
	cdir := t.TempDir()
	c := replicatedNode(t, "c", cdir, []string{a.gossipAddr()}, inc)
	eventually(t, "every partition has three replicas", 60*time.Second, func() error { return fullyReplicated(a, b, c) })

	// Leadership spreads: each partition is led by its owner in the table.
	eventually(t, "every partition led by its owner", 60*time.Second, func() error {
		for _, p := range a.rt.Cluster().Partitions() {
			if p.Holder != p.Owner {
				return fmt.Errorf("partition %d: owner %s, leader %q", p.Partition, p.Owner, p.Holder)
			}
		}
		return nil
	})

	const n = 60
	nodes := []*clusterNode{a, b, c}
	for i := range n {
		id := fmt.Sprintf("done-%d", i)
		if _, err := nodes[i%3].rt.Schedule(ctx, "ClusterChain", i, weft.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		st, err := a.rt.WaitForCompletion(ctx, fmt.Sprintf("done-%d", i))
		if err != nil || st.Status != weft.StatusCompleted {
			t.Fatalf("done-%d: %v %v", i, st, err)
		}
	}
	// Instances in flight at the kill.
	for i := range n {
		if _, err := nodes[i%2].rt.Schedule(ctx, "ClusterChain", i, weft.WithInstanceID(fmt.Sprintf("flying-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.rt.Close(); err != nil { // no leave: as a crash, then the disk is gone
		t.Fatal(err)
	}
	if err := os.RemoveAll(cdir); err != nil {
		t.Fatal(err)
	}

	check := func(prefix string) {
		start := time.Now()
		defer func() {
			t.Logf("%s: every instance completed within %s", prefix, time.Since(start).Round(time.Millisecond))
		}()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				defer cancel()
				id := fmt.Sprintf("%s-%d", prefix, i)
				st, err := nodes[i%2].rt.WaitForCompletion(wctx, id)
				if err == nil && (st.Status != weft.StatusCompleted || string(st.Output) != fmt.Sprint(i+3)) {
					err = fmt.Errorf("status %s output %s, want COMPLETED %d", st.Status, st.Output, i+3)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	check("done")
	check("flying")
	for i := range n {
		if _, err := nodes[i%2].rt.Schedule(ctx, "ClusterChain", i, weft.WithInstanceID(fmt.Sprintf("after-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	check("after")
	if _, err := a.rt.Status(ctx, "no-such-instance"); !errors.Is(err, weft.ErrInstanceNotFound) {
		t.Fatalf("status of an unknown instance: %v", err)
	}
}

// A cluster that kept one copy of each partition (handoff) is restarted with
// replicas: each node's partitions become raft groups with it as the only
// replica, which grow to both nodes; every instance is still there.
func TestClusterOneCopyStoreBecomesReplicated(t *testing.T) {
	ctx := context.Background()
	inc := func(_ context.Context, v int) (int, error) { return v + 1, nil }
	adir, bdir := t.TempDir(), t.TempDir()
	a := startClusterNodeWith(t, "a", adir, nil, inc)
	b := startClusterNodeWith(t, "b", bdir, []string{a.gossipAddr()}, inc)
	eventually(t, "placement settles", 30*time.Second, func() error { return settled(a, b) })
	const n = 40
	for i := range n {
		if _, err := a.rt.Schedule(ctx, "ClusterChain", i, weft.WithInstanceID(fmt.Sprintf("old-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	onB := 0
	for i := range n {
		id := fmt.Sprintf("old-%d", i)
		if st, err := a.rt.WaitForCompletion(ctx, id); err != nil || st.Status != weft.StatusCompleted {
			t.Fatalf("%s: %v %v", id, st, err)
		}
		if a.rt.Cluster().Partitions()[a.rt.Host().Partition(id)].Holder == "b" {
			onB++
		}
	}
	if onB == 0 || onB == n {
		t.Fatalf("%d of %d instances on b: want both nodes holding some", onB, n)
	}
	agossip := a.gossipAddr()
	if err := b.rt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.rt.Close(); err != nil {
		t.Fatal(err)
	}

	a = replicatedNode(t, "a", adir, nil, inc)
	defer a.rt.Close()
	b = replicatedNode(t, "b", bdir, []string{agossip, a.gossipAddr()}, inc)
	defer b.rt.Close()
	eventually(t, "every partition on both nodes", 60*time.Second, func() error { return replicatedOn(2, a, b) })
	for i := range n {
		id := fmt.Sprintf("old-%d", i)
		for _, via := range []*clusterNode{a, b} {
			st, err := via.rt.Status(ctx, id)
			if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != fmt.Sprint(i+3) {
				t.Fatalf("%s via %s after the upgrade: %+v %v", id, via.id, st, err)
			}
		}
	}
	for i := range 10 {
		id := fmt.Sprintf("new-%d", i)
		if _, err := b.rt.Schedule(ctx, "ClusterChain", i, weft.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		if st, err := a.rt.WaitForCompletion(ctx, id); err != nil || st.Status != weft.StatusCompleted {
			t.Fatalf("%s: %v %v", id, st, err)
		}
	}
}

// A client's event whose first attempt was applied but not answered is sent
// again by the cluster and applied once: forwarded to the partition's leader
// and its answer lost (the leader died after applying it, or the connection
// failed), or committed on the node that took it, whose leadership was lost
// before it knew the outcome. A purge whose answer was lost is answered as
// done, not "not found", when it is sent again.
func TestClusterClientEventsAppliedOnceAfterALostAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const id = "collector"
	var (
		mu        sync.Mutex
		attempted = map[string]bool{} // request ids (or "purge") that had an attempt
		lostCount int
		losePart  = -1 // LoseCommitOutcome: the partition whose next step is lost
	)
	loseFirst := func(key string) bool {
		mu.Lock()
		defer mu.Unlock()
		if attempted[key] {
			return false
		}
		attempted[key], lostCount = true, lostCount+1
		return true
	}
	knobs := &cluster.TestingKnobs{
		LoseAnswer: func(instance string, msg any) bool {
			switch m := msg.(type) {
			case actors.RaiseEventRequest:
				return instance == id && m.RequestID != "" && loseFirst(m.RequestID)
			case actors.PurgeRequest:
				return instance == id && loseFirst("purge")
			}
			return false
		},
		LoseCommitOutcome: func(part uint16) bool {
			mu.Lock()
			defer mu.Unlock()
			if int(part) != losePart {
				return false
			}
			losePart, lostCount = -1, lostCount+1
			return true
		},
	}
	open := func(name string, join []string) *clusterNode {
		return openClusterNodeConfig(t, name, t.TempDir(), join, messaging.Register, func(c *cluster.NodeConfig) {
			c.Replicas, c.Testing = 3, knobs
		})
	}
	a := open("a", nil)
	defer a.rt.Close()
	b := open("b", []string{a.gossipAddr()})
	defer b.rt.Close()
	c := open("c", []string{a.gossipAddr()})
	defer c.rt.Close()
	eventually(t, "every partition has three replicas", 60*time.Second, func() error { return fullyReplicated(a, b, c) })

	nodes := []*clusterNode{a, b, c}
	if _, err := a.rt.Schedule(ctx, "Collector", 4, weft.WithInstanceID(id)); err != nil {
		t.Fatal(err)
	}
	part := placement.PartitionOf(id, len(a.rt.Cluster().Partitions()))
	var leader, follower *clusterNode
	eventually(t, "the instance's partition has a leader", 30*time.Second, func() error {
		holder := a.rt.Cluster().Partitions()[part].Holder
		for _, n := range nodes {
			if n.id == holder {
				leader = n
			} else {
				follower = n
			}
		}
		if leader == nil {
			return fmt.Errorf("partition %d has no leader", part)
		}
		return nil
	})
	raise := func(via *clusterNode, data string) {
		t.Helper()
		if err := via.rt.RaiseEvent(ctx, id, "ping", data); err != nil {
			t.Fatalf("raise %q through node %s: %v", data, via.id, err)
		}
	}
	raise(follower, "forwarded, answer lost")
	mu.Lock()
	losePart = int(part)
	mu.Unlock()
	raise(leader, "committed, outcome lost")
	raise(follower, "forwarded, answer lost again")
	raise(leader, "plain")

	st, err := follower.rt.WaitForCompletion(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := `["forwarded, answer lost","committed, outcome lost","forwarded, answer lost again","plain"]`
	if st.Status != weft.StatusCompleted || string(st.Output) != want {
		t.Fatalf("%s %s, want COMPLETED %s: each event once", st.Status, st.Output, want)
	}
	if err := follower.rt.Purge(ctx, id, weft.PurgeOptions{}); err != nil {
		t.Fatalf("purge whose first answer was lost: %v", err)
	}
	if _, err := leader.rt.Status(ctx, id); !errors.Is(err, weft.ErrInstanceNotFound) {
		t.Fatalf("after the purge: %v, want not found", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if lostCount != 4 {
		t.Fatalf("%d answers lost, want 4 (two forwarded events, one commit, one purge): the test did not exercise every path", lostCount)
	}
}
