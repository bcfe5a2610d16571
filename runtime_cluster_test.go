// These tests run without the race detector (make test runs them in a second,
// plain pass): each in-process node starts protoactor's remote transport, whose
// Start replaces grpc's global logger (remote/server.go) while the other nodes'
// gRPC goroutines read it. One node per process, as weft serve runs, starts its
// transport before any other gRPC in the process and does not race.

//go:build !race

package weft_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/cluster"
	"github.com/weftrt/weft/workflow"
)

// In-process clusters: several runtimes in one test process, each with its own
// store, gossip and actor transport on loopback. test/cluster runs the real
// binary as separate processes; these pin the rules with less machinery.

var fastGossip = cluster.Timing{ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond,
	GossipInterval: 50 * time.Millisecond, PushPullInterval: 2 * time.Second, SuspicionMult: 2}

type clusterNode struct {
	rt  *weft.Runtime
	dir string
	id  string
}

func startClusterNode(t *testing.T, id, dir string, join []string) *clusterNode {
	t.Helper()
	return startClusterNodeWith(t, id, dir, join, func(ctx context.Context, v int) (int, error) { return v + 1, nil })
}

// startClusterNodeWith registers inc as this node's ClusterInc activity.
func startClusterNodeWith(t *testing.T, id, dir string, join []string, inc func(context.Context, int) (int, error)) *clusterNode {
	t.Helper()
	return openClusterNode(t, id, dir, join, func(reg *workflow.Registry) error {
		return workflow.RegisterActivity(reg, inc, workflow.WithName("ClusterInc"))
	})
}

// openClusterNode starts a node with the ClusterChain workflow and what
// register adds (ClusterChain's ClusterInc activity among it).
func openClusterNode(t *testing.T, id, dir string, join []string, register func(*workflow.Registry) error) *clusterNode {
	t.Helper()
	return openClusterNodeReplicas(t, id, dir, join, register, 0)
}

// openClusterNodeReplicas is openClusterNode with NodeConfig.Replicas set.
func openClusterNodeReplicas(t *testing.T, id, dir string, join []string, register func(*workflow.Registry) error, replicas int) *clusterNode {
	t.Helper()
	return openClusterNodeConfig(t, id, dir, join, register, func(c *cluster.NodeConfig) { c.Replicas = replicas })
}

// openClusterNodeConfig is openClusterNode with the node's configuration as
// configure leaves it.
func openClusterNodeConfig(t *testing.T, id, dir string, join []string, register func(*workflow.Registry) error, configure func(*cluster.NodeConfig)) *clusterNode {
	t.Helper()
	logger := quiet
	if f := os.Getenv("WEFT_TEST_CLUSTER_LOG"); f != "" { // a debugging aid: every node's log in one file
		w, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test_node", id)
	}
	cfg := &cluster.NodeConfig{
		Gossip:    cluster.Config{NodeID: id, BindAddr: "127.0.0.1:0", Join: join, Timing: fastGossip},
		ActorAddr: "127.0.0.1:0",
		Founder:   len(join) == 0,
		MoveWait:  10 * time.Second,
	}
	configure(cfg)
	rt, err := weft.Open(weft.Options{Dir: dir, Logger: logger, RemoteWorkers: true, Cluster: cfg})
	if err != nil {
		t.Fatal(err)
	}
	reg := rt.Registry()
	if err := workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, in int) (int, error) {
		v := in
		for range 3 {
			if err := ctx.CallActivity("ClusterInc", v).Await(&v); err != nil {
				return 0, err
			}
		}
		return v, nil
	}, workflow.WithName("ClusterChain")); err != nil {
		t.Fatal(err)
	}
	if err := register(reg); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &clusterNode{rt: rt, dir: dir, id: id}
}

func (n *clusterNode) gossipAddr() string {
	for _, m := range n.rt.Cluster().Members() {
		if m.ID == n.id {
			return m.Gossip
		}
	}
	return ""
}

// settled reports whether every node's table agrees and every partition is
// held by its owner, which serves it.
func settled(nodes ...*clusterNode) error {
	var first []cluster.PartitionView
	for _, n := range nodes {
		ps := n.rt.Cluster().Partitions()
		for _, p := range ps {
			if p.Holder != p.Owner || !p.Serving {
				return fmt.Errorf("node %s: partition %d owned by %s, held by %q (serving %v)", n.id, p.Partition, p.Owner, p.Holder, p.Serving)
			}
		}
		if first == nil {
			first = ps
			continue
		}
		for i := range ps {
			if ps[i].Owner != first[i].Owner {
				return fmt.Errorf("nodes disagree on partition %d: %s vs %s", i, ps[i].Owner, first[i].Owner)
			}
		}
	}
	return nil
}

func eventually(t *testing.T, what string, limit time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClusterInProcess(t *testing.T) {
	ctx := context.Background()
	a := startClusterNode(t, "a", t.TempDir(), nil)
	defer a.rt.Close()
	// Instances started before anyone joins: they move with their partitions.
	var early []string
	for i := range 30 {
		id, err := a.rt.Schedule(ctx, "ClusterChain", i, weft.WithInstanceID(fmt.Sprintf("early-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		early = append(early, id)
	}
	b := startClusterNode(t, "b", t.TempDir(), []string{a.gossipAddr()})
	defer b.rt.Close()
	c := startClusterNode(t, "c", t.TempDir(), []string{b.gossipAddr()})
	eventually(t, "placement settles on three nodes", 30*time.Second, func() error { return settled(a, b, c) })
	for _, n := range []*clusterNode{a, b, c} {
		if got := len(n.rt.Cluster().Members()); got != 3 {
			t.Fatalf("node %s sees %d members", n.id, got)
		}
		if err := n.rt.Cluster().Ready(); err != nil {
			t.Fatalf("node %s not ready: %v", n.id, err)
		}
	}

	// Any node takes any request; results read anywhere.
	var ids []string
	for i, n := range []*clusterNode{a, b, c, a, b, c} {
		id, err := n.rt.Schedule(ctx, "ClusterChain", 100*i, weft.WithInstanceID(fmt.Sprintf("late-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, id := range append(early, ids...) {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := []*clusterNode{c, a, b}[i%3].rt.WaitForCompletion(wctx, id)
		cancel()
		if err != nil {
			t.Fatalf("wait for %s: %v", id, err)
		}
		if st.Status != weft.StatusCompleted {
			t.Fatalf("%s: %s %v", id, st.Status, st.Failure)
		}
	}
	page, err := b.rt.List(ctx, weft.ListQuery{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Instances) != 36 {
		t.Fatalf("the listing through b gathered %d instances, want 36", len(page.Instances))
	}
	// Paging across nodes: pages of 7 cover everything once.
	seen := map[string]bool{}
	q := weft.ListQuery{PageSize: 7}
	for {
		p, err := c.rt.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range p.Instances {
			if seen[in.ID] {
				t.Fatalf("%s listed twice", in.ID)
			}
			seen[in.ID] = true
		}
		if p.NextPageToken == "" {
			break
		}
		q.PageToken = p.NextPageToken
	}
	if len(seen) != 36 {
		t.Fatalf("paging saw %d instances, want 36", len(seen))
	}

	// A graceful leave: c's partitions move to a and b, its instances stay readable.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := c.rt.LeaveCluster(lctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	c.rt.Close()
	eventually(t, "placement settles on two nodes", 30*time.Second, func() error {
		err := settled(a, b)
		if err != nil {
			return fmt.Errorf("%w; b sees %+v; a's members %+v", err, b.rt.Cluster().Partitions()[4], a.rt.Cluster().Members())
		}
		return nil
	})
	for _, id := range append(early, ids...) {
		st, err := a.rt.Status(ctx, id)
		if err != nil || st.Status != weft.StatusCompleted {
			t.Fatalf("after c left, %s: %v %v", id, st, err)
		}
	}
}

// A node that dies keeps its partitions: their requests fail fast with
// ErrUnavailable naming it, the others keep working; when it comes back it
// serves them again.
func TestClusterDeadNodeKeepsItsPartitions(t *testing.T) {
	ctx := context.Background()
	a := startClusterNode(t, "a", t.TempDir(), nil)
	defer a.rt.Close()
	bdir := t.TempDir()
	b := startClusterNode(t, "b", bdir, []string{a.gossipAddr()})
	eventually(t, "placement settles", 30*time.Second, func() error { return settled(a, b) })
	// One instance id on each node.
	var onA, onB string
	for i := 0; onA == "" || onB == ""; i++ {
		id := fmt.Sprintf("inst-%d", i)
		if _, err := a.rt.Schedule(ctx, "ClusterChain", 1, weft.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		if _, err := a.rt.WaitForCompletion(ctx, id); err != nil {
			t.Fatal(err)
		}
		p := a.rt.Cluster().Partitions()[a.rt.Host().Partition(id)]
		if p.Holder == "a" && onA == "" {
			onA = id
		}
		if p.Holder == "b" && onB == "" {
			onB = id
		}
	}
	// b dies (no leave).
	if err := b.rt.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees b dead", 10*time.Second, func() error {
		for _, m := range a.rt.Cluster().Members() {
			if m.ID == "b" && m.State != "alive" {
				return nil
			}
		}
		return errors.New("b still alive")
	})
	start := time.Now()
	_, err := a.rt.Status(ctx, onB)
	var unavailable *cluster.UnavailableError
	if !errors.As(err, &unavailable) || unavailable.Node != "b" || !errors.Is(err, weft.ErrUnavailable) {
		t.Fatalf("status of an instance on dead b: %v, want ErrUnavailable naming b", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the unavailable answer took %s", took)
	}
	if st, err := a.rt.Status(ctx, onA); err != nil || st.Status != weft.StatusCompleted {
		t.Fatalf("an instance on a: %v %v", st, err)
	}
	// b comes back with its data: its instances are served again.
	b = startClusterNode(t, "b", bdir, []string{a.gossipAddr()})
	defer b.rt.Close()
	eventually(t, "b serves again", 30*time.Second, func() error {
		_, err := a.rt.Status(ctx, onB)
		if err != nil {
			return fmt.Errorf("%w; a's members: %+v", err, a.rt.Cluster().Members())
		}
		return err
	})
}

// Activities run on every live node; those running on a node that dies are
// re-sent to the live ones, and their workflows complete.
func TestClusterActivitiesOfADeadNodeAreResent(t *testing.T) {
	ctx := context.Background()
	ran := make(chan struct{}, 1000)
	a := startClusterNodeWith(t, "a", t.TempDir(), nil, func(ctx context.Context, v int) (int, error) {
		ran <- struct{}{}
		return v + 1, nil
	})
	defer a.rt.Close()
	stuck := make(chan struct{}, 1000)
	b := startClusterNodeWith(t, "b", t.TempDir(), []string{a.gossipAddr()}, func(ctx context.Context, v int) (int, error) {
		stuck <- struct{}{}
		<-ctx.Done() // never finishes: its node dies first
		return 0, ctx.Err()
	})
	eventually(t, "placement settles", 30*time.Second, func() error { return settled(a, b) })
	// Instances whose partitions a holds, so they outlive b.
	var ids []string
	for i := 0; len(ids) < 20; i++ {
		id := fmt.Sprintf("act-%d", i)
		if a.rt.Cluster().Partitions()[a.rt.Host().Partition(id)].Holder != "a" {
			continue
		}
		if _, err := a.rt.Schedule(ctx, "ClusterChain", 0, weft.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	select {
	case <-stuck: // at least one activity was placed on b
	case <-time.After(20 * time.Second):
		t.Fatal("no activity ran on b: placement did not spread them")
	}
	if err := b.rt.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := a.rt.WaitForCompletion(wctx, id)
		cancel()
		if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != "3" {
			t.Fatalf("%s: %v %v", id, st, err)
		}
	}
	if len(ran) == 0 {
		t.Fatal("no activity ran on a")
	}
}

// Remote (SDK) workers connected to a node run the work of that node's
// partitions, as each Dapr app replica serves its own sidecar's; a workflow
// started through any node reaches the holder's workers.
func TestClusterRemoteWorkersServeTheirNode(t *testing.T) {
	ctx := context.Background()
	a := startClusterNode(t, "a", t.TempDir(), nil)
	defer a.rt.Close()
	b := startClusterNode(t, "b", t.TempDir(), []string{a.gossipAddr()})
	defer b.rt.Close()
	eventually(t, "placement settles", 30*time.Second, func() error { return settled(a, b) })
	onB := ""
	for i := 0; onB == ""; i++ {
		id := fmt.Sprintf("sdk-%d", i)
		if a.rt.Cluster().Partitions()[a.rt.Host().Partition(id)].Holder == "b" {
			onB = id
		}
	}
	wa, wb := connect(t, a.rt, "worker-a"), connect(t, b.rt, "worker-b")
	if _, err := a.rt.Schedule(ctx, "SdkOnly", 1, weft.WithInstanceID(onB)); err != nil { // through a
		t.Fatal(err)
	}
	ep := wb.nextEpisode() // b's worker gets it
	if ep.InstanceID != onB {
		t.Fatalf("b's worker got %s", ep.InstanceID)
	}
	wb.mustAnswer(onB, workflow.Event{Kind: workflow.WorkflowCompleted, Data: []byte("7")})
	st, err := a.rt.WaitForCompletion(ctx, onB)
	if err != nil || st.Status != weft.StatusCompleted || string(st.Output) != "7" {
		t.Fatalf("through a: %v %v", st, err)
	}
	if n, _ := a.rt.Host().RemoteWorkers().Workers(); n != 1 {
		t.Fatalf("a has %d workers", n)
	}
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if it, err := wa.w.Next(wctx); err == nil {
		t.Fatalf("a's worker got work of b's partition: %+v", it)
	}
}
