package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weftrt/weft/storage"
)

// removeReplica proposes on the leader lead that node id leave group g, and
// waits until the leader's membership no longer has it.
func (c *testCluster) removeReplica(lead NodeID, g GroupID, id NodeID) {
	c.t.Helper()
	c.changeMembership(c.drivers[lead], g, &pb.ConfChange{Type: pb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: new(id)},
		fmt.Sprintf("node %d leaves group %d", id, g), func(st GroupStatus) error {
			if slices.Contains(st.Voters, id) || slices.Contains(st.Learners, id) {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
}

// A replica moves: a fourth node is added as a learner, caught up, promoted;
// then a follower is removed. The removed node destroys its replica (log,
// state and data), the three others go on committing, and the removed node
// hears nothing more of the group.
func TestReplicaMovesToAnotherNode(t *testing.T) { forEachLog(t, 3, 1, replicaMovesToAnotherNode) }

func replicaMovesToAnotherNode(c *testCluster) {
	t := c.t
	g := c.groups[0]
	lead := c.leader(g)
	if err := c.propose(lead, g, "before"); err != nil {
		t.Fatal(err)
	}
	c.startAdopting(4)
	c.addReplica(lead, g, 4)
	var gone NodeID
	for _, id := range c.peers {
		if id != lead {
			gone = id
			break
		}
	}
	c.removeReplica(lead, g, gone)
	c.eventually(fmt.Sprintf("node %d destroys its replica", gone), func() error {
		if c.drivers[gone].Has(g) {
			return errors.New("still has it")
		}
		if !c.sms[gone].forgot(g) {
			return errors.New("its state machine was not told")
		}
		if last, _ := c.logs[gone].Storage(g).LastIndex(); last != 0 {
			return fmt.Errorf("its log still ends at %d", last)
		}
		return nil
	})
	if err := c.propose(lead, g, "after"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []NodeID{lead, 4} {
		c.eventually(fmt.Sprintf("node %d applies the entry after the move", id), func() error {
			got := c.sms[id].data(g)
			if len(got) == 0 || got[len(got)-1] != "after" {
				return fmt.Errorf("applied %v", got)
			}
			return nil
		})
	}
	if c.drivers[gone].Has(g) {
		t.Fatal("the removed node took the group back")
	}
}

// Leadership moves five times while proposals stream in: a proposal is
// applied once or refused as never committed (its caller proposes it again
// to the new leader), never left with an unknown outcome.
func TestLeadershipTransfersLoseNoProposal(t *testing.T) {
	forEachLog(t, 3, 1, leadershipTransfersLoseNoProposal)
}

func leadershipTransfersLoseNoProposal(c *testCluster) {
	t := c.t
	g := c.groups[0]
	c.leader(g)
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		applied  []string
		unknown  []error
		retried  atomic.Int64
		proposer = func(w int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				data := fmt.Sprintf("w%d-%d", w, i)
				for !stop.Load() {
					lead := NodeID(0)
					for id, sm := range c.sms {
						if sm.leads(g) {
							lead = id
						}
					}
					if lead == 0 {
						time.Sleep(time.Millisecond)
						continue
					}
					err := c.propose(lead, g, data)
					if err == nil {
						mu.Lock()
						applied = append(applied, data)
						mu.Unlock()
						break
					}
					if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNotCommitted) || isDropped(err) {
						retried.Add(1)
						time.Sleep(time.Millisecond)
						continue
					}
					mu.Lock()
					unknown = append(unknown, err)
					mu.Unlock()
					break
				}
			}
		}
	)
	for w := range 4 {
		wg.Add(1)
		go proposer(w)
	}
	for range 5 {
		time.Sleep(50 * time.Millisecond)
		lead := c.leader(g)
		next := c.peers[(slices.Index(c.peers, lead)+1)%len(c.peers)]
		c.eventually(fmt.Sprintf("node %d caught up for the transfer", next), func() error {
			st, _ := c.drivers[lead].Status(g)
			if st.Match[next] < st.LastIndex {
				return fmt.Errorf("match %d of %d", st.Match[next], st.LastIndex)
			}
			return nil
		})
		if err := c.drivers[lead].TransferLeadership(g, next); err != nil {
			t.Fatal(err)
		}
		c.eventually(fmt.Sprintf("node %d leads", next), func() error {
			if !c.sms[next].leads(g) {
				return errors.New("not yet")
			}
			return nil
		})
	}
	stop.Store(true)
	wg.Wait()
	if len(unknown) > 0 {
		t.Fatalf("%d proposals ended with an unknown outcome, e.g. %v", len(unknown), unknown[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(applied) < 20 {
		t.Fatalf("only %d proposals applied", len(applied))
	}
	t.Logf("%d proposals applied, %d refused and proposed again", len(applied), retried.Load())
	for _, id := range c.peers {
		c.eventually(fmt.Sprintf("node %d applies every acknowledged proposal once", id), func() error {
			seen := map[string]int{}
			for _, d := range c.sms[id].data(g) {
				seen[d]++
			}
			for _, a := range applied {
				if seen[a] != 1 {
					return fmt.Errorf("%s applied %d times", a, seen[a])
				}
			}
			return nil
		})
	}
}

func isDropped(err error) bool { return errors.Is(err, raft.ErrProposalDropped) }

// A replica created for a leader's message but never made a member (the
// message was sent before its removal) is dropped after strayTicks.
func TestStrayReplicaIsDropped(t *testing.T) {
	c := newTestCluster(t, 1, 1, func() LogStore { return NewMemLog() })
	g := c.groups[0]
	if err := c.drivers[1].Campaign(g); err != nil {
		t.Fatal(err)
	}
	lead := c.leader(g)
	c.startAdopting(2)
	st, _ := c.drivers[lead].Status(g)
	c.drivers[2].Receive([]Envelope{{Group: g, Message: &pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(),
		From: new(lead), To: new(NodeID(2)), Term: new(st.Term)}}})
	if !c.drivers[2].Has(g) {
		t.Fatal("the leader's heartbeat did not create a replica")
	}
	c.eventually("the stray replica is dropped", func() error {
		if c.drivers[2].Has(g) {
			return errors.New("still there")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.drivers[1].Propose(ctx, g, []byte("still served")); err != nil {
		t.Fatal(err)
	}
}

// A leader cut off with an entry that only one follower received steps down;
// that follower, elected, commits the entry. The deposed leader's proposal
// resolves as applied once it hears so, not as a failure: its caller acted
// on a committed step.
func TestDeposedLeaderLearnsItsProposalCommitted(t *testing.T) {
	c := newTestCluster(t, 3, 1, func() LogStore { return NewMemLog() })
	g := c.groups[0]
	for _, id := range c.peers { // wait long for the outcome: the test heals the network late
		c.crash(id)
		sm := newTestSM()
		cfg := c.config(id, sm)
		cfg.Groups.OrphanTicks = 4000
		d, err := NewDriver(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Create(g, nil, 0); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.drivers[id], c.sms[id] = d, sm
		c.mu.Unlock()
		c.net.Attach(id, d)
		d.Start()
	}
	c.wakeAll()
	lead := c.leader(g)
	if err := c.propose(lead, g, "first"); err != nil {
		t.Fatal(err)
	}
	var keeper, other NodeID
	for _, id := range c.peers {
		if id != lead {
			if keeper == 0 {
				keeper = id
			} else {
				other = id
			}
		}
	}
	// The entry reaches keeper, whose answer does not come back; other
	// hears nothing from the leader.
	c.net.Cut(keeper, lead)
	c.net.Cut(lead, other)
	c.net.Cut(other, lead)
	done := make(chan error, 1)
	go func() {
		_, err := c.drivers[lead].Propose(context.Background(), g, []byte("orphan"))
		done <- err
	}()
	before, _ := c.logs[lead].Storage(g).LastIndex()
	c.eventually("keeper has the entry in its log", func() error {
		if last, _ := c.logs[keeper].Storage(g).LastIndex(); last <= before {
			return fmt.Errorf("its log ends at %d", last)
		}
		return nil
	})
	c.net.Cut(lead, keeper)
	c.wakeAll()
	c.eventually("keeper is elected", func() error {
		if !c.sms[keeper].leads(g) {
			return errors.New("not yet")
		}
		if c.sms[lead].leads(g) {
			return errors.New("the old leader has not stepped down")
		}
		return nil
	})
	select {
	case err := <-done:
		t.Fatalf("the proposal resolved before its outcome could be known: %v", err)
	default:
	}
	c.net.Heal()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the deposed leader's committed proposal failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deposed leader never learned its proposal was committed")
	}
	for _, id := range c.peers {
		c.applies(id, g, []string{"first", "orphan"})
	}
}

// A snapshot stream interrupted mid-way resumes: a chunk sent again because
// its answer was lost is taken as a repeat, a gap is refused (the sender
// starts over), and a stream started over from chunk 0 replaces what was
// staged; only a stream that reached its last chunk is complete. The staged
// file, installed, holds each chunk's keys once.
func TestSnapshotStreamResumes(t *testing.T) {
	db := openStore(t)
	in := NewSnapshotInbox(db)
	// Keys of partition 7 (p/<part>/<rest>, as storage lays them out).
	kv := func(k string) []storage.KV {
		if k == "" {
			return nil
		}
		return []storage.KV{{K: append([]byte{'p', '/', 0, 7, '/'}, k...), V: []byte("v")}}
	}
	installed := func(index uint64) []string {
		t.Helper()
		f, ok := in.take(7, index)
		if !ok {
			t.Fatalf("the complete snapshot at %d was not taken", index)
		}
		if err := db.InstallSnapshotFile(f); err != nil {
			t.Fatal(err)
		}
		view, err := db.SnapshotPartition(7)
		if err != nil {
			t.Fatal(err)
		}
		defer view.Close()
		var keys []string
		if err := view.Scan(1<<20, func(kvs []storage.KV) error {
			for _, x := range kvs {
				keys = append(keys, string(x.K[5:]))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	steps := []struct {
		seq     int
		data    string
		last    bool
		wantErr bool
	}{
		{0, "a", false, false},
		{1, "b", false, false},
		{1, "b", false, false}, // its answer was lost: sent again
		{3, "d", false, true},  // a gap
		{2, "c", false, false}, // resumed where it stopped
		{3, "", true, false},
	}
	for i, s := range steps {
		err := in.Add(7, 40, 1, s.seq, kv(s.data), s.last)
		if (err != nil) != s.wantErr {
			t.Fatalf("step %d (chunk %d): err %v, want error %v", i, s.seq, err, s.wantErr)
		}
		if got := in.Complete(7, 40, 1); got != s.last {
			t.Fatalf("step %d: complete %v", i, got)
		}
	}
	if keys, want := installed(40), []string{"a", "b", "c"}; !slices.Equal(keys, want) {
		t.Fatalf("installed keys %q, want %q (each chunk once)", keys, want)
	}
	// Started over: what was staged before is dropped; the install replaces
	// the partition's keys.
	for seq, k := range []string{"x", "y"} {
		if err := in.Add(7, 41, 1, seq, kv(k), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Add(7, 41, 1, 0, kv("z"), true); err != nil {
		t.Fatal(err)
	}
	if keys := installed(41); !slices.Equal(keys, []string{"z"}) {
		t.Fatalf("after starting over: installed %q, want [z]", keys)
	}
	// A key out of order, or outside the partition, fails the stream.
	if err := in.Add(7, 42, 1, 0, append(kv("m"), kv("k")...), false); err == nil {
		t.Fatal("keys out of order were staged")
	}
	if err := in.Add(7, 43, 1, 0, []storage.KV{{K: []byte("p/\x00\x08/a"), V: nil}}, false); err == nil {
		t.Fatal("a key of another partition was staged")
	}
	if in.Complete(7, 42, 1) || in.Complete(7, 43, 1) {
		t.Fatal("a failed stream is complete")
	}
}

// hookedLog calls onDestroy before it destroys a group's state.
type hookedLog struct {
	LogStore
	mu        sync.Mutex
	onDestroy func(GroupID)
}

func (l *hookedLog) Destroy(g GroupID) error {
	l.mu.Lock()
	hook := l.onDestroy
	l.mu.Unlock()
	if hook != nil {
		hook(g)
	}
	return l.LogStore.Destroy(g)
}

// A message that arrives for a replica while its state is being destroyed
// does not adopt the group again: the new replica would have loaded the old
// state and lost its own with the destroy (a zombie its leader waits on for
// ever; seen as a leave that never finished).
func TestRemovedReplicaIsNotAdoptedWhileDestroyed(t *testing.T) {
	var hooked *hookedLog
	c := newTestCluster(t, 1, 1, func() LogStore {
		l := &hookedLog{LogStore: NewMemLog()}
		hooked = l
		return l
	})
	g := c.groups[0]
	if err := c.drivers[1].Campaign(g); err != nil {
		t.Fatal(err)
	}
	lead := c.leader(g)
	c.startAdopting(2) // its log is the last one made: hooked
	c.addReplica(lead, g, 2)
	st, _ := c.drivers[lead].Status(g)
	d := c.drivers[2]
	adopted := make(chan bool, 1)
	hooked.mu.Lock()
	hooked.onDestroy = func(GroupID) {
		d.Receive([]Envelope{{Group: g, Message: &pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(),
			From: new(lead), To: new(NodeID(2)), Term: new(st.Term)}}})
		adopted <- d.Has(g)
	}
	hooked.mu.Unlock()
	d.RemoveReplica(g)
	select {
	case again := <-adopted:
		if again {
			t.Fatal("a heartbeat that arrived during the destroy adopted the group again")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the replica was not destroyed")
	}
}
