package replication

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weftrt/weft/storage"
)

// startAdopting starts node id on a fresh memory log with no groups: it
// creates a replica of a group when that group's leader reaches out.
func (c *testCluster) startAdopting(id NodeID) {
	c.t.Helper()
	c.logs[id] = c.newLog()
	sm := newTestSM()
	cfg := c.config(id, sm)
	cfg.Adopt = func(GroupID) bool { return true }
	d, err := NewDriver(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.drivers[id], c.sms[id] = d, sm
	c.mu.Unlock()
	c.net.Attach(id, d)
	d.Start()
}

// addReplica makes node id a learner of g, waits until its log caught up,
// then promotes it to voter.
func (c *testCluster) addReplica(lead NodeID, g GroupID, id NodeID) {
	c.t.Helper()
	d := c.drivers[lead]
	c.changeMembership(d, g, &pb.ConfChange{Type: pb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: new(id)},
		fmt.Sprintf("node %d catches up as a learner of group %d", id, g), func(st GroupStatus) error {
			if len(st.Learners) != 1 || st.Learners[0] != id || st.Match[id] < st.Commit {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
	c.changeMembership(d, g, &pb.ConfChange{Type: pb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: new(id)},
		fmt.Sprintf("node %d votes in group %d", id, g), func(st GroupStatus) error {
			if len(st.Learners) != 0 || !slices.Contains(st.Voters, id) {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
}

// changeMembership proposes cc on d, the leader of g, until done holds. raft
// ignores a conf change proposed while the one before is not applied yet (it
// appends an empty entry instead, and the proposal answers no error): the
// membership the status shows changes when the change is committed, a
// moment before raft counts it applied. Callers in cluster/ re-plan the same
// way: a change that did not happen is proposed again.
func (c *testCluster) changeMembership(d *Driver, g GroupID, cc *pb.ConfChange, what string, done func(GroupStatus) error) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := d.ProposeConfChange(g, cc); err != nil {
			c.t.Fatal(err)
		}
		var err error
		for again := time.Now().Add(time.Second); time.Now().Before(again); time.Sleep(2 * time.Millisecond) {
			st, _ := d.Status(g)
			if err = done(st); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %v", what, err)
		}
	}
}

// A group of one grows to three: each new node is adopted when the leader
// reaches out, caught up by a snapshot since the log was truncated behind it,
// and promoted; then the first node dies and the two others elect a leader
// that commits with their quorum.
func TestGroupsGrowBySnapshotAndSurviveTheirFounder(t *testing.T) {
	c := newTestCluster(t, 1, 1, func() LogStore { return NewMemLog() })
	c.crash(1)
	// Node 1 again, truncating its log after a few entries.
	sm := newTestSM()
	d, err := NewDriver(DriverConfig{Groups: Config{NodeID: 1}, Tick: 5 * time.Millisecond, Log: c.logs[1],
		Transport: c.net.Transport(1), StateMachine: sm, CompactAbove: 4, CompactKeep: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(0, []NodeID{1}, 0); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.drivers[1], c.sms[1] = d, sm
	c.mu.Unlock()
	c.net.Attach(1, d)
	d.Start()
	if err := d.Campaign(0); err != nil {
		t.Fatal(err)
	}
	if lead := c.leader(0); lead != 1 {
		t.Fatalf("leader %d", lead)
	}
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprint("e", i))
		if err := c.propose(1, 0, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if first, _ := c.logs[1].Storage(0).FirstIndex(); first < 5 {
		t.Fatalf("the log was not truncated: it starts at %d", first)
	}

	for _, id := range []NodeID{2, 3} {
		c.startAdopting(id)
		c.addReplica(1, 0, id)
		got := c.sms[id].data(0)
		if len(got) == 0 || got[0][:9] != "snapshot@" {
			t.Fatalf("node %d applied %v; want a snapshot first (the log was truncated)", id, got)
		}
	}
	if err := c.propose(1, 0, "after"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []NodeID{2, 3} {
		c.eventually(fmt.Sprintf("node %d applies the entry after the growth", id), func() error {
			got := c.sms[id].data(0)
			if got[len(got)-1] != "after" {
				return fmt.Errorf("applied %v", got)
			}
			return nil
		})
	}

	c.crash(1)
	c.wakeAll()
	lead := c.leader(0)
	if lead == 1 {
		t.Fatal("the dead node still leads")
	}
	if err := c.propose(lead, 0, "two of three"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []NodeID{2, 3} {
		c.eventually(fmt.Sprintf("node %d applies with two of three", id), func() error {
			got := c.sms[id].data(0)
			if got[len(got)-1] != "two of three" {
				return fmt.Errorf("applied %v", got)
			}
			return nil
		})
	}
}

// Idle groups quiesce on every node; a proposal wakes its group; after the
// leader's node dies and the others are woken (as a membership change does),
// they elect a new leader.
func TestIdleGroupsQuiesceAndWake(t *testing.T) {
	c := newTestCluster(t, 3, 4, func() LogStore { return NewMemLog() })
	leads := map[GroupID]NodeID{}
	for _, g := range c.groups {
		leads[g] = c.leader(g)
	}
	quiet := func(want int) func() error {
		return func() error {
			for id, d := range c.drivers {
				if q := d.Quiesced(); q != want {
					var sts []GroupStatus
					for _, g := range c.groups {
						st, _ := d.Status(g)
						sts = append(sts, st)
					}
					return fmt.Errorf("node %d: %d groups quiesced, want %d: %+v", id, q, want, sts)
				}
			}
			return nil
		}
	}
	c.eventually("every group quiesced", quiet(len(c.groups)))

	if err := c.propose(leads[0], 0, "wake"); err != nil {
		t.Fatal(err)
	}
	for id := range c.drivers {
		c.applies(id, 0, []string{"wake"})
	}
	c.eventually("every group quiesced again", quiet(len(c.groups)))

	dead := leads[1]
	c.crash(dead)
	c.wakeAll()
	lead := c.leader(1)
	if lead == dead {
		t.Fatal("the dead node still leads")
	}
	if err := c.propose(lead, 1, "after the failover"); err != nil {
		t.Fatal(err)
	}
	for id := range c.drivers {
		c.applies(id, 1, []string{"after the failover"})
	}
}

// The pebble log: a bootstrapped group starts its log after the bootstrap
// index; truncation moves its start; a snapshot replaces it; all of it
// survives a reopen, and raft's reads below the start say ErrCompacted.
func TestPebbleLogBoundsAndSnapshots(t *testing.T) {
	db := openStore(t)
	l := NewPebbleLog(db)
	if err := l.Bootstrap(3, []NodeID{7}, 10, 5); err != nil {
		t.Fatal(err)
	}
	if err := l.Bootstrap(3, []NodeID{7}, 10, 5); err == nil {
		t.Fatal("a second bootstrap of the same group was accepted")
	}
	s := l.Storage(3)
	check := func(what string, first, last uint64) {
		t.Helper()
		if f, _ := s.FirstIndex(); f != first {
			t.Fatalf("%s: first index %d, want %d", what, f, first)
		}
		if la, _ := s.LastIndex(); la != last {
			t.Fatalf("%s: last index %d, want %d", what, la, last)
		}
	}
	check("bootstrapped", 11, 10)
	if term, err := s.Term(10); err != nil || term != 5 {
		t.Fatalf("term at the bootstrap index: %d %v", term, err)
	}
	if applied, _ := db.AppliedIndex(3); applied != 10 {
		t.Fatalf("applied index after bootstrap %d, want 10", applied)
	}
	var entries []*pb.Entry
	for i := uint64(11); i <= 20; i++ {
		entries = append(entries, &pb.Entry{Index: new(i), Term: new(uint64(6)), Data: []byte("x")})
	}
	if err := l.Save([]Save{{Group: 3, Entries: entries, HardState: &pb.HardState{Term: new(uint64(6)), Commit: new(uint64(20))}}}, true); err != nil {
		t.Fatal(err)
	}
	check("appended", 11, 20)
	if err := l.Compact(3, 15); err != nil {
		t.Fatal(err)
	}
	check("truncated", 16, 20)
	if _, err := s.Entries(12, 14, 1<<20); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("entries below the start: %v, want ErrCompacted", err)
	}
	if es, err := s.Entries(16, 21, 1<<20); err != nil || len(es) != 5 {
		t.Fatalf("entries after the start: %d %v", len(es), err)
	}

	// Reopened: the bounds come from the store.
	check2 := NewPebbleLog(db).Storage(3)
	if f, _ := check2.FirstIndex(); f != 16 {
		t.Fatalf("reopened: first index %d, want 16", f)
	}

	// A snapshot at 40 replaces the log.
	cs := &pb.ConfState{Voters: []NodeID{7, 8, 9}}
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(40)), Term: new(uint64(9)), ConfState: cs}}
	if err := l.Save([]Save{{Group: 3, Snapshot: snap, HardState: &pb.HardState{Term: new(uint64(9)), Commit: new(uint64(40))}}}, true); err != nil {
		t.Fatal(err)
	}
	check("snapshot", 41, 40)
	_, gotCS, err := NewPebbleLog(db).Storage(3).InitialState()
	if err != nil || !proto.Equal(gotCS, cs) {
		t.Fatalf("membership after the snapshot: %v %v", gotCS, err)
	}

	// raft's view for a snapshot to send: the data as applied, with its term.
	b := db.NewBatch()
	b.PutAppliedIndex(3, 40)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	out, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if out.GetMetadata().GetIndex() != 40 || out.GetMetadata().GetTerm() != 9 {
		t.Fatalf("snapshot metadata %v, want index 40 term 9", out.GetMetadata())
	}
	view, ok := l.TakeSnapshot(out.GetData())
	if !ok || view.Applied != 40 {
		t.Fatalf("the snapshot's view: %v %v", view, ok)
	}
	view.Close()
	if _, ok := l.TakeSnapshot(out.GetData()); ok {
		t.Fatal("a snapshot's view was handed out twice")
	}
}

// A snapshot streamed to a replica is installed in its store, replacing the
// partition's keys, at the snapshot's index; a snapshot that did not arrive
// whole is refused.
func TestStoreStateMachineInstallsStagedSnapshots(t *testing.T) {
	db := openStore(t)
	sm := NewStoreStateMachine(db, nil)
	old := db.NewBatch()
	old.PutAppliedIndex(2, 3)
	if err := old.Commit(); err != nil {
		t.Fatal(err)
	}
	old.Close()
	in := sm.Inbox()
	// The leader's partition 2 at index 50, as its snapshot's scan yields it.
	leader := openStore(t)
	lb := leader.NewBatch()
	lb.PutAppliedIndex(2, 50)
	if err := lb.Commit(); err != nil {
		t.Fatal(err)
	}
	lb.Close()
	view, err := leader.SnapshotPartition(2)
	if err != nil {
		t.Fatal(err)
	}
	var chunk []storage.KV
	if err := view.Scan(1<<20, func(kvs []storage.KV) error { chunk = append(chunk, kvs...); return nil }); err != nil {
		t.Fatal(err)
	}
	view.Close()
	kvs := func(uint64) []storage.KV { return chunk }
	if err := in.Add(2, 50, 1, 1, nil, false); err == nil {
		t.Fatal("a chunk out of order was accepted")
	}
	if err := in.Add(2, 50, 1, 0, kvs(50), false); err != nil {
		t.Fatal(err)
	}
	if in.Complete(2, 50, 1) {
		t.Fatal("complete before the last chunk")
	}
	if err := sm.InstallSnapshot(2, &pb.SnapshotMetadata{Index: new(uint64(50))}); err == nil {
		t.Fatal("an incomplete snapshot was installed")
	}
	if err := in.Add(2, 50, 1, 0, kvs(50), false); err != nil {
		t.Fatal(err)
	}
	if err := in.Add(2, 50, 1, 1, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := sm.InstallSnapshot(2, &pb.SnapshotMetadata{Index: new(uint64(50))}); err != nil {
		t.Fatal(err)
	}
	if applied, _ := db.AppliedIndex(2); applied != 50 {
		t.Fatalf("applied index after the snapshot %d, want 50", applied)
	}
	// Entries the snapshot covers are not applied again.
	if err := sm.Apply([]Applied{{Group: 2, Index: 49, Data: []byte("not a batch")}}); err != nil {
		t.Fatalf("an entry below the snapshot was not skipped: %v", err)
	}
}

// A snapshot's membership is the one at its index. A conf change is saved
// with the log before the entries committed with it are applied; a snapshot
// taken in between would pair the new membership with an older index, and a
// replica that installs it would apply the change again on top (adding a
// voter as a learner demotes it: raft panics when that leaves no voter).
// So there is no snapshot until the change's index is applied, and applying
// an entry without a step (the conf change itself) advances the index.
func TestSnapshotMembershipMatchesItsIndex(t *testing.T) {
	db := openStore(t)
	l := NewPebbleLog(db)
	if err := l.Bootstrap(3, []NodeID{7}, 10, 5); err != nil {
		t.Fatal(err)
	}
	s := l.Storage(3)
	if snap, err := s.Snapshot(); err != nil || snap.GetMetadata().GetIndex() != 10 || !slices.Equal(snap.GetMetadata().GetConfState().GetVoters(), []NodeID{7}) {
		t.Fatalf("the bootstrap's snapshot: %v %v", snap.GetMetadata(), err)
	}
	cc := &pb.Entry{Index: new(uint64(11)), Term: new(uint64(5)), Type: pb.EntryType_EntryConfChange.Enum()}
	grown := &pb.ConfState{Voters: []NodeID{7}, Learners: []NodeID{8}}
	if err := l.Save([]Save{{Group: 3, Entries: []*pb.Entry{cc}, ConfState: grown, ConfIndex: 11,
		HardState: &pb.HardState{Term: new(uint64(5)), Commit: new(uint64(11))}}}, true); err != nil {
		t.Fatal(err)
	}
	if snap, err := s.Snapshot(); !errors.Is(err, raft.ErrSnapshotTemporarilyUnavailable) {
		t.Fatalf("a snapshot while the conf change at 11 is saved but not applied: %v %v, want ErrSnapshotTemporarilyUnavailable", snap.GetMetadata(), err)
	}
	sm := NewStoreStateMachine(db, nil)
	if err := sm.Apply([]Applied{{Group: 3, Index: 11}}); err != nil {
		t.Fatal(err)
	}
	if applied, _ := db.AppliedIndex(3); applied != 11 {
		t.Fatalf("applied index after the conf change %d, want 11", applied)
	}
	snap, err := s.Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() != 11 || !proto.Equal(snap.GetMetadata().GetConfState(), grown) {
		t.Fatalf("the snapshot after the conf change: %v %v; want index 11 with learner 8", snap.GetMetadata(), err)
	}
	if view, ok := l.TakeSnapshot(snap.GetData()); ok {
		view.Close()
	}
}

// TestHeartbeatBeyondAFreshLog: a replica made anew, its log empty, that
// hears a heartbeat whose commit is the leader's idea of the replica it
// replaced (a removed replica destroyed while its leader still counted it)
// takes no commit beyond its log, where raft would panic
// ("tocommit(4) is out of range [lastIndex(0)]", seen in
// TestReplicaMovesToAnotherNode); it answers, and waits for entries.
func TestHeartbeatBeyondAFreshLog(t *testing.T) {
	gs, err := NewGroups(Config{NodeID: 2})
	if err != nil {
		t.Fatal(err)
	}
	log := NewMemLog()
	if err := gs.Create(0, log.Storage(0), nil, 0); err != nil {
		t.Fatal(err)
	}
	term, commit := uint64(2), uint64(4)
	hb := &pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(), From: ptr(uint64(1)), To: ptr(uint64(2)), Term: &term, Commit: &commit}
	if err := gs.Step(Envelope{Group: 0, Message: hb}); err != nil {
		t.Fatal(err)
	}
	if hb.GetCommit() != 4 {
		t.Errorf("the sender's message was changed: commit %d", hb.GetCommit())
	}
	b := gs.Ready()
	answered := false
	for _, msgs := range b.Messages {
		for _, m := range msgs {
			answered = answered || m.Message.GetType() == pb.MessageType_MsgHeartbeatResp
		}
	}
	if !answered {
		t.Errorf("no heartbeat response: %+v", b.Messages)
	}
}

func ptr[T any](v T) *T { return &v }
