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
