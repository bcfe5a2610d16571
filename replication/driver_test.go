package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/weftrt/weft/storage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testSM records what a node applied and which groups it leads.
type testSM struct {
	mu        sync.Mutex
	applied   map[GroupID][]Applied
	leading   map[GroupID]bool
	forgotten []GroupID
}

func newTestSM() *testSM {
	return &testSM{applied: map[GroupID][]Applied{}, leading: map[GroupID]bool{}}
}

func (s *testSM) Apply(es []Applied) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range es {
		if e.Data != nil { // a step, not a conf change or a leader's empty entry
			s.applied[e.Group] = append(s.applied[e.Group], e)
		}
	}
	return nil
}

// InstallSnapshot records the snapshot in place of what it replaces.
func (s *testSM) InstallSnapshot(g GroupID, meta *pb.SnapshotMetadata) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied[g] = []Applied{{Group: g, Index: meta.GetIndex(), Data: fmt.Appendf(nil, "snapshot@%d", meta.GetIndex())}}
	return nil
}

func (s *testSM) LeadershipChanged(lc LeaderChange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leading[lc.Group] = lc.Leading
}

func (s *testSM) Forget(g GroupID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.applied, g)
	s.forgotten = append(s.forgotten, g)
}

func (s *testSM) forgot(g GroupID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.forgotten, g)
}

func (s *testSM) data(g GroupID) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.applied[g] {
		out = append(out, string(a.Data))
	}
	return out
}

func (s *testSM) leads(g GroupID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leading[g]
}

// testCluster is nodes 1..n on one in-memory network, each with a replica of
// every group; a node's log survives its crash, its state machine does not
// (it applies the whole log again when it restarts).
type testCluster struct {
	mu      sync.Mutex // guards drivers against the drivers' Departed hooks
	t       *testing.T
	net     *MemNetwork
	peers   []NodeID
	groups  []GroupID
	newLog  func() LogStore
	logs    map[NodeID]LogStore
	drivers map[NodeID]*Driver
	sms     map[NodeID]*testSM
}

// logKinds are the LogStores every cluster test runs on.
var logKinds = []struct {
	name string
	new  func(t *testing.T) LogStore
}{
	{"memory", func(*testing.T) LogStore { return NewMemLog() }},
	{"pebble", func(t *testing.T) LogStore { return NewPebbleLog(openStore(t)) }},
}

// forEachLog runs a cluster test on every kind of log.
func forEachLog(t *testing.T, nodes, groups int, test func(c *testCluster)) {
	for _, k := range logKinds {
		t.Run(k.name, func(t *testing.T) {
			test(newTestCluster(t, nodes, groups, func() LogStore { return k.new(t) }))
		})
	}
}

func openStore(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Partitions: 8, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newTestCluster(t *testing.T, nodes, groups int, newLog func() LogStore) *testCluster {
	c := &testCluster{t: t, net: NewMemNetwork(), newLog: newLog, logs: map[NodeID]LogStore{}, drivers: map[NodeID]*Driver{}, sms: map[NodeID]*testSM{}}
	for i := 1; i <= nodes; i++ {
		c.peers = append(c.peers, NodeID(i))
		c.logs[NodeID(i)] = newLog()
	}
	for g := range groups {
		c.groups = append(c.groups, GroupID(g))
	}
	for _, id := range c.peers {
		c.start(id, c.peers)
	}
	t.Cleanup(func() {
		for id := range c.drivers {
			c.crash(id)
		}
	})
	return c
}

// start starts node id (again) on its log, with a replica of every group
// (bootstrapped with peers if the log is empty).
func (c *testCluster) start(id NodeID, peers []NodeID) {
	c.t.Helper()
	sm := newTestSM()
	d, err := NewDriver(c.config(id, sm))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, g := range c.groups {
		if err := d.Create(g, peers, 0); err != nil {
			c.t.Fatal(err)
		}
	}
	c.mu.Lock()
	c.drivers[id], c.sms[id] = d, sm
	c.mu.Unlock()
	c.net.Attach(id, d)
	d.Start()
}

// config is node id's driver configuration. A replica removed from a group
// is told so by its leader's node, as the cluster does.
func (c *testCluster) config(id NodeID, sm *testSM) DriverConfig {
	return DriverConfig{Groups: Config{NodeID: id}, Tick: 5 * time.Millisecond,
		Log: c.logs[id], Transport: c.net.Transport(id), StateMachine: sm,
		Departed: func(dep Departure) {
			if dep.Node == id {
				return
			}
			c.mu.Lock()
			self, gone := c.drivers[id], c.drivers[dep.Node]
			c.mu.Unlock()
			if self != nil && gone != nil && self.Leader(dep.Group) == id {
				gone.RemoveReplica(dep.Group)
			}
		}}
}

// wakeAll wakes every running node's groups, as a node's liveness loop does
// when a peer falls silent: a quiesced group does not notice on its own.
func (c *testCluster) wakeAll() {
	for _, d := range c.drivers {
		d.Wake()
	}
}

func (c *testCluster) crash(id NodeID) {
	c.net.Detach(id)
	c.drivers[id].Stop()
	c.mu.Lock()
	delete(c.drivers, id)
	c.mu.Unlock()
}

func (c *testCluster) eventually(what string, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// leader waits until exactly one running node leads g and every running node
// agrees on it.
func (c *testCluster) leader(g GroupID) NodeID {
	c.t.Helper()
	var lead NodeID
	c.eventually(fmt.Sprintf("one leader of group %d", g), func() error {
		lead = 0
		for id, sm := range c.sms {
			if c.drivers[id] == nil || !sm.leads(g) {
				continue
			}
			if lead != 0 {
				return fmt.Errorf("nodes %d and %d both lead", lead, id)
			}
			lead = id
		}
		if lead == 0 {
			return errors.New("no leader")
		}
		for id, d := range c.drivers {
			if seen := d.Leader(g); seen != lead {
				return fmt.Errorf("node %d sees %d as leader, not %d", id, seen, lead)
			}
		}
		return nil
	})
	return lead
}

func (c *testCluster) propose(id NodeID, g GroupID, data string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.drivers[id].Propose(ctx, g, []byte(data))
	return err
}

// applies waits until node id applied exactly want to group g, in order.
func (c *testCluster) applies(id NodeID, g GroupID, want []string) {
	c.t.Helper()
	c.eventually(fmt.Sprintf("node %d applies %v to group %d", id, want, g), func() error {
		got := c.sms[id].data(g)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("applied %v", got)
		}
		return nil
	})
}

// Every group elects one leader, which every node knows; proposals to it are
// applied on every node, in the same order, once each.
func TestGroupsElectAndReplicate(t *testing.T) { forEachLog(t, 3, 4, groupsElectAndReplicate) }

func groupsElectAndReplicate(c *testCluster) {
	t := c.t
	for _, g := range c.groups {
		lead := c.leader(g)
		var want []string
		for i := range 5 {
			v := fmt.Sprintf("g%d-%d", g, i)
			if err := c.propose(lead, g, v); err != nil {
				t.Fatalf("propose %s to the leader: %v", v, err)
			}
			want = append(want, v)
		}
		for _, id := range c.peers {
			c.applies(id, g, want)
		}
		follower := c.peers[0]
		if follower == lead {
			follower = c.peers[1]
		}
		if err := c.propose(follower, g, "x"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("a proposal to follower %d: %v, want ErrNotLeader", follower, err)
		}
	}
}

// A step commits with a quorum: with one of three nodes cut off, proposals go
// on; the leader cut off from both others cannot commit, steps down within the
// election timeout (CheckQuorum), and fails what it had not applied, while the
// majority elects a leader and goes on. The cut-off node rejoins and catches up.
func TestQuorumCommitAndDeposedLeader(t *testing.T) {
	forEachLog(t, 3, 1, quorumCommitAndDeposedLeader)
}

func quorumCommitAndDeposedLeader(c *testCluster) {
	t := c.t
	g := c.groups[0]
	lead := c.leader(g)
	var follower NodeID
	for _, id := range c.peers {
		if id != lead {
			follower = id
			break
		}
	}
	c.net.Isolate(follower)
	if err := c.propose(lead, g, "with two of three"); err != nil {
		t.Fatalf("a proposal with one follower cut off: %v", err)
	}
	c.net.Heal()
	c.applies(follower, g, []string{"with two of three"})

	c.net.Isolate(lead)
	c.wakeAll()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.drivers[lead].Propose(ctx, g, []byte("alone"))
	if !errors.Is(err, ErrLeadershipLost) && !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a proposal on a leader cut off from the others: %v, want ErrLeadershipLost", err)
	}
	if c.sms[lead].leads(g) {
		t.Fatal("the cut-off leader still believes it leads")
	}
	var newLead NodeID
	c.eventually("the majority elects a leader", func() error {
		for _, id := range c.peers {
			if id != lead && c.sms[id].leads(g) {
				newLead = id
				return nil
			}
		}
		return errors.New("no leader among the majority")
	})
	if err := c.propose(newLead, g, "after the partition"); err != nil {
		t.Fatal(err)
	}
	c.net.Heal()
	want := []string{"with two of three", "after the partition"}
	for _, id := range c.peers {
		c.applies(id, g, want) // "alone" was never committed: the old leader's log is overwritten
	}
}

// A node that crashes keeps its log; restarted, it applies the whole log again,
// what was committed while it was down included.
func TestRestartedNodeCatchesUp(t *testing.T) { forEachLog(t, 3, 2, restartedNodeCatchesUp) }

func restartedNodeCatchesUp(c *testCluster) {
	t := c.t
	g := c.groups[1]
	lead := c.leader(g)
	if err := c.propose(lead, g, "before"); err != nil {
		t.Fatal(err)
	}
	var down NodeID
	for _, id := range c.peers {
		if id != lead {
			down = id
			break
		}
	}
	c.applies(down, g, []string{"before"})
	c.crash(down)
	want := []string{"before"}
	for i := range 20 {
		v := "while down " + strconv.Itoa(i)
		if err := c.propose(lead, g, v); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	c.start(down, c.peers)
	c.applies(down, g, want)
}

// A group grows into a new replica by a configuration change: the new node
// starts with an empty log and no peers, and catches up from the leader.
func TestConfChangeAddsAReplica(t *testing.T) { forEachLog(t, 2, 1, confChangeAddsAReplica) }

func confChangeAddsAReplica(c *testCluster) {
	t := c.t
	g := c.groups[0]
	lead := c.leader(g)
	for _, v := range []string{"a", "b"} {
		if err := c.propose(lead, g, v); err != nil {
			t.Fatal(err)
		}
	}
	c.logs[3] = c.newLog()
	c.start(3, nil)
	c.peers = append(c.peers, 3)
	err := c.drivers[lead].ProposeConfChange(g, &pb.ConfChange{Type: pb.ConfChangeAddNode.Enum(), NodeId: new(uint64(3))})
	if err != nil {
		t.Fatal(err)
	}
	c.applies(3, g, []string{"a", "b"})
	if err := c.propose(lead, g, "c"); err != nil {
		t.Fatal(err)
	}
	c.applies(3, g, []string{"a", "b", "c"})
}

// One Ready pass persists every group's entries in one write: proposals to
// eight single-replica groups made together take one Save.
func TestOneSavePerPassAcrossGroups(t *testing.T) {
	gs, err := NewGroups(Config{NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	log := NewMemLog()
	drain := func() {
		for b := gs.Ready(); !b.Empty(); b = gs.Ready() {
			if err := log.Save(b.Saves, b.MustSync); err != nil {
				t.Fatal(err)
			}
			if err := gs.Advance(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	for g := range GroupID(8) {
		if err := gs.Create(g, log.Storage(g), []NodeID{1}, 0); err != nil {
			t.Fatal(err)
		}
	}
	drain() // the bootstrap's membership is applied before anyone campaigns
	for g := range GroupID(8) {
		if err := gs.Campaign(g); err != nil {
			t.Fatal(err)
		}
	}
	drain()
	var ps []*Proposal
	for g := range GroupID(8) {
		p, err := gs.Propose(g, []byte("step"))
		if err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		ps = append(ps, p)
	}
	b := gs.Ready()
	if len(b.Saves) != 8 || !b.MustSync {
		t.Fatalf("one pass: %d group saves (synced: %v), want all 8 in one synced write", len(b.Saves), b.MustSync)
	}
	if err := log.Save(b.Saves, b.MustSync); err != nil {
		t.Fatal(err)
	}
	if err := gs.Advance(b); err != nil {
		t.Fatal(err)
	}
	drain() // the commits: a single replica's own append is its quorum
	for i, p := range ps {
		select {
		case <-p.Done():
		default:
			t.Fatalf("proposal %d not resolved after its pass", i)
		}
	}
}

// PebbleLog reads back what raft's own MemoryStorage does after the same
// saves: random appends, some replacing a tail a new leader overwrote, hard
// states and memberships; and again after the store is closed and reopened.
func TestPebbleLogMatchesMemoryStorage(t *testing.T) {
	dir := t.TempDir()
	open := func() *storage.DB {
		db, err := storage.Open(storage.Options{Dir: dir, Partitions: 8, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	pl, ml := NewPebbleLog(db), NewMemLog()
	rng := rand.New(rand.NewPCG(1, 2))
	const g = GroupID(3)
	last, term := uint64(0), uint64(1)
	for step := range 300 {
		var sv Save
		sv.Group = g
		first := last + 1
		if last > 0 && rng.IntN(4) == 0 {
			first = 1 + rng.Uint64N(last) // overwrite a tail, as a new leader does
			term++
		}
		n := rng.IntN(5)
		for i := range n {
			sv.Entries = append(sv.Entries, &pb.Entry{Index: new(first + uint64(i)), Term: new(term),
				Type: pb.EntryType_EntryNormal.Enum(), Data: fmt.Appendf(nil, "step %d entry %d", step, i)})
		}
		if n > 0 {
			last = first + uint64(n) - 1
		}
		if rng.IntN(3) == 0 {
			sv.HardState = &pb.HardState{Term: new(term), Vote: new(uint64(rng.IntN(3) + 1)), Commit: new(min(last, uint64(step)))}
		}
		if rng.IntN(10) == 0 {
			sv.ConfState = &pb.ConfState{Voters: []uint64{1, 2, uint64(3 + rng.IntN(3))}}
		}
		for _, l := range []LogStore{pl, ml} {
			if err := l.Save([]Save{sv}, true); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		if step%50 == 49 || step == 299 {
			sameView(t, fmt.Sprintf("step %d", step), pl.Storage(g), ml.Storage(g))
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	defer db.Close()
	sameView(t, "reopened", NewPebbleLog(db).Storage(g), ml.Storage(g))
}

// sameView compares what raft reads of two storages.
func sameView(t *testing.T, when string, got, want raft.Storage) {
	t.Helper()
	ghs, gcs, gerr := got.InitialState()
	whs, wcs, werr := want.InitialState()
	if gerr != nil || werr != nil || !proto.Equal(ghs, whs) && !(raft.IsEmptyHardState(ghs) && raft.IsEmptyHardState(whs)) ||
		fmt.Sprint(gcs.GetVoters()) != fmt.Sprint(wcs.GetVoters()) {
		t.Fatalf("%s: initial state %v %v %v, want %v %v %v", when, ghs, gcs, gerr, whs, wcs, werr)
	}
	gl, _ := got.LastIndex()
	wl, _ := want.LastIndex()
	gf, _ := got.FirstIndex()
	wf, _ := want.FirstIndex()
	if gl != wl || gf != wf {
		t.Fatalf("%s: first/last %d/%d, want %d/%d", when, gf, gl, wf, wl)
	}
	for i := wf; i <= wl; i++ {
		gt, gerr := got.Term(i)
		wt, werr := want.Term(i)
		if gt != wt || gerr != nil || werr != nil {
			t.Fatalf("%s: term of %d: %d %v, want %d %v", when, i, gt, gerr, wt, werr)
		}
	}
	if wl >= wf {
		ge, gerr := got.Entries(wf, wl+1, 1<<20)
		we, werr := want.Entries(wf, wl+1, 1<<20)
		if gerr != nil || werr != nil || len(ge) != len(we) {
			t.Fatalf("%s: entries: %d %v, want %d %v", when, len(ge), gerr, len(we), werr)
		}
		for i := range we {
			if !proto.Equal(ge[i], we[i]) {
				t.Fatalf("%s: entry %d: %v, want %v", when, we[i].GetIndex(), ge[i], we[i])
			}
		}
		if ge, err := got.Entries(wf, wl+1, 1); err != nil || len(ge) != 1 {
			t.Fatalf("%s: entries with a size limit: %d entries, %v; want exactly 1", when, len(ge), err)
		}
	}
	if _, err := got.Entries(wl+1, wl+3, 1<<20); err == nil {
		t.Fatalf("%s: entries past the end: no error", when)
	}
}
