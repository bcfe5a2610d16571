package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/weftrt/weft/storage"
)

// storeNode is one node whose raft logs and partition data share its pebble
// store, as they will in weft: the log under g/, the data under p/.
type storeNode struct {
	id NodeID
	db *storage.DB
	d  *Driver
	sm *StoreStateMachine
}

func startStoreNode(t *testing.T, net *MemNetwork, id NodeID, dir string, g GroupID, peers []NodeID) *storeNode {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: dir, Partitions: 8, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	n := &storeNode{id: id, db: db, sm: NewStoreStateMachine(db, nil)}
	n.d, err = NewDriver(DriverConfig{Groups: Config{NodeID: id}, Tick: 5 * time.Millisecond,
		Log: NewPebbleLog(db), Transport: net.Transport(id), StateMachine: n.sm})
	if err != nil {
		t.Fatal(err)
	}
	applied, err := n.sm.AppliedIndex(g)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.d.Create(g, peers, applied); err != nil {
		t.Fatal(err)
	}
	net.Attach(id, n.d)
	n.d.Start()
	return n
}

func (n *storeNode) stop(net *MemNetwork) {
	net.Detach(n.id)
	n.d.Stop()
	n.db.Close()
}

// A step's batch proposed on the leader lands in every replica's store with
// the same applied index; a replica that was down applies what it missed from
// its applied index on, once.
func TestStepsApplyToEveryReplicasStore(t *testing.T) {
	net := NewMemNetwork()
	const g = GroupID(5)
	peers := []NodeID{1, 2, 3}
	dirs := map[NodeID]string{}
	nodes := map[NodeID]*storeNode{}
	for _, id := range peers {
		dirs[id] = t.TempDir()
		nodes[id] = startStoreNode(t, net, id, dirs[id], g, peers)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop(net)
		}
	})
	leader := func() *storeNode {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, n := range nodes {
				if n.d.Leader(g) == n.id { // what Propose goes by, not raft's state of a moment ago
					return n
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Fatal("no leader")
		return nil
	}
	step := func(id string) {
		t.Helper()
		lead := leader()
		b := lead.db.NewBatch()
		defer b.Close()
		if err := b.PutInstanceRow(uint16(g), &storage.InstanceRecord{ID: id, Name: "W", Status: storage.Running, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		repr, err := b.Repr()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			_, err := lead.d.Propose(ctx, g, repr)
			if err == nil {
				return
			}
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) || ctx.Err() != nil {
				t.Fatalf("propose %s: %v", id, err)
			}
			lead = leader() // leadership moved: propose to the new leader
		}
	}
	has := func(n *storeNode, ids ...string) error {
		for _, id := range ids {
			row, err := n.db.Instance(uint16(g), id)
			if err != nil || row.Name != "W" {
				return fmt.Errorf("node %d: %s: %+v %v", n.id, id, row, err)
			}
		}
		return nil
	}
	eventually := func(what string, cond func() error) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for err := cond(); err != nil; err = cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	step("a")
	step("b")
	lead := leader()
	var down *storeNode
	for _, n := range nodes {
		if n != lead {
			down = n
			break
		}
	}
	eventually("every replica applies a and b", func() error {
		for _, n := range nodes {
			if err := has(n, "a", "b"); err != nil {
				return err
			}
		}
		return nil
	})
	before, _ := down.db.AppliedIndex(uint16(g))
	down.stop(net)
	delete(nodes, down.id)
	step("c")
	lead = leader()
	down = startStoreNode(t, net, down.id, dirs[down.id], g, peers)
	nodes[down.id] = down
	eventually("the restarted replica applies c", func() error { return has(down, "a", "b", "c") })
	after, _ := down.db.AppliedIndex(uint16(g))
	want, _ := lead.db.AppliedIndex(uint16(g))
	if after <= before || after != want {
		t.Fatalf("applied index %d before the restart, %d after; the leader's %d", before, after, want)
	}
}

// An entry that writes outside its partition is refused: a replica never
// lets one group's log change another partition's data.
func TestEntryOutsideItsPartitionIsRefused(t *testing.T) {
	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Partitions: 8, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	defer b.Close()
	if err := b.PutInstanceRow(2, &storage.InstanceRecord{ID: "x", Name: "W", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	repr, _ := b.Repr()
	sm := NewStoreStateMachine(db, nil)
	if err := sm.Apply([]Applied{{Group: 1, Index: 7, Data: repr}}); !errors.Is(err, storage.ErrForeignKey) {
		t.Fatalf("an entry of group 1 writing partition 2: %v, want ErrForeignKey", err)
	}
	if err := sm.Apply([]Applied{{Group: 2, Index: 7, Data: repr}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := sm.AppliedIndex(2); got != 7 {
		t.Fatalf("applied index %d, want 7", got)
	}
	if got, _ := sm.AppliedIndex(1); got != 0 {
		t.Fatalf("group 1's applied index %d after its refused entry, want 0", got)
	}
}
