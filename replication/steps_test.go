package replication_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/replication"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

const partitions = 8

// raftNode is one node whose steps commit through its raft groups: a store,
// a driver with a single-replica group per partition, and a host whose
// committer is the driver.
type raftNode struct {
	db *storage.DB
	d  *replication.Driver
	h  *actors.Host
}

func startRaftNode(t *testing.T, dir string) *raftNode {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := storage.Open(storage.Options{Dir: dir, Partitions: partitions, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sm := replication.NewStoreStateMachine(db, nil)
	net := replication.NewMemNetwork()
	d, err := replication.NewDriver(replication.DriverConfig{Groups: replication.Config{NodeID: 1}, Tick: 5 * time.Millisecond,
		Log: replication.NewPebbleLog(db), Transport: net.Transport(1), StateMachine: sm, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for g := range replication.GroupID(partitions) {
		applied, err := sm.AppliedIndex(g)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Create(g, []replication.NodeID{1}, applied); err != nil {
			t.Fatal(err)
		}
	}
	net.Attach(1, d)
	d.Start()
	deadline := time.Now().Add(10 * time.Second)
	for g := range replication.GroupID(partitions) {
		for d.Leader(g) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("group %d elected no leader", g)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	reg := workflow.NewRegistry()
	err = workflow.RegisterWorkflow(reg, func(ctx *workflow.Context, v int) (int, error) {
		for range 3 {
			if err := ctx.CallActivity("Inc", v).Await(&v); err != nil {
				return 0, err
			}
		}
		return v, nil
	}, workflow.WithName("Chain"))
	if err == nil {
		err = workflow.RegisterActivity(reg, func(_ context.Context, v int) (int, error) { return v + 1, nil }, workflow.WithName("Inc"))
	}
	if err != nil {
		t.Fatal(err)
	}
	h := actors.NewHost(actors.Options{DB: db, Registry: reg, Logger: quiet, Committer: d})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &raftNode{db: db, d: d, h: h}
}

func (n *raftNode) stop() {
	n.h.Close()
	n.d.Stop()
	n.db.Close()
}

func (n *raftNode) chain(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.h.Request(ctx, id, actors.StartRequest{Name: "Chain", Input: json.RawMessage("1")}); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	row, err := n.h.WaitFor(ctx, id, func(r *storage.InstanceRecord) bool { return r.Status.Terminal() })
	if err != nil || row.Status != storage.Completed || string(row.Output) != "4" {
		t.Fatalf("%s: %+v %v; want COMPLETED with 4", id, row, err)
	}
}

// Every step of a workflow is a raft entry: proposed by the partition's
// group, applied to the store with the partition's applied index, and only
// then carried out (an activity dispatched after the step that scheduled it
// is applied). After a restart the store and the logs go on from there.
func TestWorkflowStepsCommitThroughRaft(t *testing.T) {
	dir := t.TempDir()
	n := startRaftNode(t, dir)
	const instances = 24
	for i := range instances {
		n.chain(t, fmt.Sprintf("i-%d", i))
	}
	steps := uint64(0)
	for p := range uint16(partitions) {
		applied, err := n.db.AppliedIndex(p)
		if err != nil {
			t.Fatal(err)
		}
		_, last, _, err := n.db.RaftIndexes(p)
		if err != nil {
			t.Fatal(err)
		}
		if applied > last {
			t.Fatalf("partition %d applied %d past its log's end %d", p, applied, last)
		}
		steps += applied
	}
	// A chain of 3 is at least 4 steps (start, three results); the log also
	// holds each group's membership and its leaders' empty entries.
	if steps < instances*4 {
		t.Fatalf("the applied indexes add up to %d, want at least %d steps", steps, instances*4)
	}
	n.stop()

	n = startRaftNode(t, dir)
	defer n.stop()
	for i := range instances {
		row, err := n.db.Instance(n.h.Partition(fmt.Sprintf("i-%d", i)), fmt.Sprintf("i-%d", i))
		if err != nil || row.Status != storage.Completed {
			t.Fatalf("after the restart, i-%d: %+v %v", i, row, err)
		}
	}
	n.chain(t, "after-restart")
}
