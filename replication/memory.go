package replication

import (
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// MemLog is an in-memory LogStore: what survives a "restart" of a driver in
// tests is what it saved here.
type MemLog struct {
	mu     sync.Mutex
	groups map[GroupID]*memStorage
	saves  int
}

// NewMemLog returns an empty MemLog.
func NewMemLog() *MemLog { return &MemLog{groups: map[GroupID]*memStorage{}} }

// memStorage is raft's MemoryStorage with the membership last saved and the
// index of the conf change that made it.
type memStorage struct {
	*raft.MemoryStorage
	conf      *pb.ConfState
	confIndex uint64
}

// Snapshot is the last one made (by Compact), or, when the membership changed
// after it, one at that change's index: a snapshot's membership is the one at
// its index, as PebbleLog's are, and a replica added after the compaction
// finds itself in it (raft ignores a snapshot that does not name its
// receiver). The tests' state machines keep no data, so any applied index
// will do.
func (s *memStorage) Snapshot() (*pb.Snapshot, error) {
	snap, err := s.MemoryStorage.Snapshot()
	if err != nil || s.conf == nil || snap.GetMetadata().GetIndex() == 0 {
		return snap, err
	}
	out := proto.Clone(snap).(*pb.Snapshot)
	out.Metadata.ConfState = proto.Clone(s.conf).(*pb.ConfState)
	if s.confIndex > out.GetMetadata().GetIndex() {
		term, err := s.Term(s.confIndex)
		if err != nil {
			return nil, err
		}
		out.Metadata.Index, out.Metadata.Term = new(s.confIndex), new(term)
	}
	return out, nil
}

func (s *memStorage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	hs, cs, err := s.MemoryStorage.InitialState()
	if s.conf != nil {
		cs = s.conf
	}
	return hs, cs, err
}

// Storage implements LogStore.
func (l *MemLog) Storage(g GroupID) raft.Storage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.storage(g)
}

func (l *MemLog) storage(g GroupID) *memStorage {
	s, ok := l.groups[g]
	if !ok {
		s = &memStorage{MemoryStorage: raft.NewMemoryStorage()}
		l.groups[g] = s
	}
	return s
}

// Save implements LogStore.
func (l *MemLog) Save(saves []Save, _ bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.saves++
	for _, sv := range saves {
		s := l.storage(sv.Group)
		if sv.Snapshot != nil {
			if err := s.ApplySnapshot(sv.Snapshot); err != nil {
				return err
			}
			s.conf, s.confIndex = sv.Snapshot.GetMetadata().GetConfState(), sv.Snapshot.GetMetadata().GetIndex()
		}
		if err := s.Append(sv.Entries); err != nil {
			return err
		}
		if sv.HardState != nil {
			if err := s.SetHardState(sv.HardState); err != nil {
				return err
			}
		}
		if sv.ConfState != nil {
			s.conf, s.confIndex = sv.ConfState, sv.ConfIndex
		}
	}
	return nil
}

// Compact implements LogStore: the log up to index is replaced by a snapshot
// there (without data: the state machines of the tests keep none).
func (l *MemLog) Compact(g GroupID, index uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.storage(g)
	_, cs, err := s.InitialState()
	if err != nil {
		return err
	}
	if _, err := s.CreateSnapshot(index, cs, nil); err != nil && err != raft.ErrSnapOutOfDate {
		return err
	}
	if err := s.MemoryStorage.Compact(index); err != nil && err != raft.ErrCompacted {
		return err
	}
	return nil
}

// Destroy implements LogStore.
func (l *MemLog) Destroy(g GroupID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.groups, g)
	return nil
}

// Saves is how many Save calls (writes) the log took.
func (l *MemLog) Saves() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.saves
}

// MemNetwork connects drivers in one process. Links can be cut, in one
// direction or both, to make network partitions.
type MemNetwork struct {
	mu    sync.Mutex
	nodes map[NodeID]*Driver
	cut   map[[2]NodeID]bool // from → to
}

// NewMemNetwork returns a network without nodes.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{nodes: map[NodeID]*Driver{}, cut: map[[2]NodeID]bool{}}
}

// Transport is node id's end of the network.
func (n *MemNetwork) Transport(id NodeID) Transport { return memTransport{n, id} }

// Attach makes a driver node id on the network (replacing an earlier one:
// a restart); Detach takes it off (a crash).
func (n *MemNetwork) Attach(id NodeID, d *Driver) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[id] = d
}

// Detach takes node id off the network.
func (n *MemNetwork) Detach(id NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.nodes, id)
}

// Isolate cuts every link from and to node id; Heal restores every link.
func (n *MemNetwork) Isolate(id NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for other := range n.nodes {
		n.cut[[2]NodeID{id, other}] = true
		n.cut[[2]NodeID{other, id}] = true
	}
}

// Cut cuts the link from one node to another, in that direction only.
func (n *MemNetwork) Cut(from, to NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]NodeID{from, to}] = true
}

// Heal restores every link.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
}

type memTransport struct {
	n    *MemNetwork
	from NodeID
}

func (t memTransport) Send(to NodeID, msgs []Envelope) {
	t.n.mu.Lock()
	d := t.n.nodes[to]
	blocked := t.n.cut[[2]NodeID{t.from, to}]
	t.n.mu.Unlock()
	if d == nil || blocked {
		return // lost, as on a network: raft sends again
	}
	copies := make([]Envelope, len(msgs))
	for i, m := range msgs {
		copies[i] = Envelope{Group: m.Group, Message: proto.Clone(m.Message).(*pb.Message), Quiesce: m.Quiesce}
	}
	d.Receive(copies)
}
