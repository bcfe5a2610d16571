// Three protoactor remotes in one process: no race detector (see
// runtime_cluster_test.go in the root package); make test runs this file in
// its second, plain pass.

//go:build !race

package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weftrt/weft/cluster/wire"
	"github.com/weftrt/weft/replication"
)

// countingSM records what a node applied.
type countingSM struct {
	mu      sync.Mutex
	applied []string
}

func (s *countingSM) Apply(es []replication.Applied) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range es {
		if e.Data != nil {
			s.applied = append(s.applied, string(e.Data))
		}
	}
	return nil
}

func (s *countingSM) LeadershipChanged(replication.LeaderChange) {}
func (s *countingSM) Forget(replication.GroupID)                 {}

func (s *countingSM) InstallSnapshot(replication.GroupID, *pb.SnapshotMetadata) error { return nil }

func (s *countingSM) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.applied)
}

// TestClusterRaftOverTheActorTransport: three nodes, each a protoactor remote
// on loopback and a replication driver, run 16 raft groups over raftTransport:
// each group elects a leader and every node applies what its leaders propose;
// idle, the groups quiesce; with one node's transport stopped and the two
// others woken, they go on.
func TestClusterRaftOverTheActorTransport(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const nodes, groups = 3, 16
	type node struct {
		id  replication.NodeID
		tr  *transport
		d   *replication.Driver
		sm  *countingSM
		sys *actor.ActorSystem
	}
	var mu sync.Mutex
	addrs := map[replication.NodeID]string{}
	addrOf := func(id replication.NodeID) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		a, ok := addrs[id]
		return a, ok
	}
	var all []*node
	var peers []replication.NodeID
	for i := 1; i <= nodes; i++ {
		peers = append(peers, replication.NodeID(i))
	}
	for _, id := range peers {
		n := &node{id: id, sm: &countingSM{}, sys: actor.NewActorSystem()}
		var d *replication.Driver
		handle := func(_ context.Context, env *wire.Envelope) *wire.Envelope {
			if env.Kind != kindRaft {
				return reply(nil, fmt.Errorf("unexpected %s", env.Kind))
			}
			_, msgs, err := decodeRaftBatch(env.Payload)
			if err != nil {
				t.Error(err)
				return nil
			}
			d.Receive(msgs)
			return nil
		}
		tr, err := startTransport(n.sys, "127.0.0.1:0", "", nil, nil, handle, quiet)
		if err != nil {
			t.Fatal(err)
		}
		n.tr = tr
		mu.Lock()
		addrs[id] = tr.addr
		mu.Unlock()
		d, err = replication.NewDriver(replication.DriverConfig{Groups: replication.Config{NodeID: id}, Tick: 10 * time.Millisecond,
			Log: replication.NewMemLog(), Transport: &raftTransport{tr: tr, addrOf: addrOf, log: quiet}, StateMachine: n.sm, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		for g := range replication.GroupID(groups) {
			if err := d.Create(g, peers, 0); err != nil {
				t.Fatal(err)
			}
		}
		n.d = d
		d.Start()
		all = append(all, n)
	}
	stopped := map[replication.NodeID]bool{}
	t.Cleanup(func() {
		for _, n := range all {
			n.d.Stop()
			if !stopped[n.id] {
				n.tr.stop()
			}
			n.sys.Shutdown()
		}
	})
	propose := func(want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for g := range replication.GroupID(groups) {
			for {
				var lead *node
				for _, n := range all {
					if !stopped[n.id] && n.d.Leader(g) == n.id {
						lead = n
					}
				}
				if lead != nil {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					_, err := lead.d.Propose(ctx, g, fmt.Appendf(nil, "g%d-%d", g, want))
					cancel()
					if err == nil {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("group %d: no leader took a proposal", g)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		for _, n := range all {
			if stopped[n.id] {
				continue
			}
			for n.sm.count() < want*groups {
				if time.Now().After(deadline) {
					t.Fatalf("node %d applied %d entries, want %d", n.id, n.sm.count(), want*groups)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	propose(1)
	// Idle, every group goes quiet: the case where only a wake-up gets the two
	// others to replace node 3's leaders.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		quiet := true
		for _, n := range all {
			quiet = quiet && n.d.Quiesced() == groups
		}
		if quiet {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle groups did not quiesce")
		}
	}
	all[2].tr.stop() // node 3 is cut off: nothing reaches it, nothing leaves it
	stopped[all[2].id] = true
	for _, n := range all[:2] {
		n.d.Wake() // as a node's liveness loop does when a peer falls silent: quiet groups tick again
	}
	propose(2)
}
