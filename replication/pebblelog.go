package replication

import (
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weftrt/weft/storage"
)

// PebbleLog keeps the raft logs of a node's groups in its pebble store (the
// g/<part>/ keys of storage/keys.go), every Ready pass in one synced batch.
// Entries are raft's protobuf encoding; the hard state and the membership are
// records of their own.
//
// Not done yet: log truncation after apply and snapshots (a follower too far
// behind for the log is caught up by streaming the partition); Save refuses a
// snapshot rather than pretend to apply it.
type PebbleLog struct {
	db *storage.DB

	mu     sync.Mutex
	groups map[GroupID]*pebbleStorage
}

// NewPebbleLog returns the raft logs kept in db.
func NewPebbleLog(db *storage.DB) *PebbleLog {
	return &PebbleLog{db: db, groups: map[GroupID]*pebbleStorage{}}
}

// Names of a group's state records.
const (
	hardStateName = "h"
	confStateName = "c"
)

// Storage implements LogStore.
func (l *PebbleLog) Storage(g GroupID) raft.Storage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.storage(g)
}

func (l *PebbleLog) storage(g GroupID) *pebbleStorage {
	s, ok := l.groups[g]
	if !ok {
		s = &pebbleStorage{db: l.db, part: uint16(g)}
		l.groups[g] = s
	}
	return s
}

// Save implements LogStore: one batch for every group, committed synced.
func (l *PebbleLog) Save(saves []Save, _ bool) error {
	b := l.db.NewBatch()
	defer b.Close()
	lasts := make(map[GroupID]uint64, len(saves))
	for _, sv := range saves {
		s := l.storage(sv.Group)
		if sv.Snapshot != nil {
			return fmt.Errorf("replication: group %d: a snapshot at index %d: snapshots are not supported by this log yet", sv.Group, sv.Snapshot.GetMetadata().GetIndex())
		}
		if n := len(sv.Entries); n > 0 {
			first := sv.Entries[0].GetIndex()
			last, err := s.LastIndex()
			if err != nil {
				return err
			}
			if first <= last {
				b.DeleteRaftEntriesFrom(s.part, first) // a new leader's entries replace a conflicting tail
			}
			for _, e := range sv.Entries {
				v, err := proto.Marshal(e)
				if err != nil {
					return fmt.Errorf("replication: group %d: encode entry %d: %w", sv.Group, e.GetIndex(), err)
				}
				b.PutRaftEntry(s.part, e.GetIndex(), v)
			}
			lasts[sv.Group] = sv.Entries[n-1].GetIndex()
		}
		if sv.HardState != nil {
			v, err := proto.Marshal(sv.HardState)
			if err != nil {
				return fmt.Errorf("replication: group %d: encode hard state: %w", sv.Group, err)
			}
			b.PutRaftState(s.part, hardStateName, v)
		}
		if sv.ConfState != nil {
			v, err := proto.Marshal(sv.ConfState)
			if err != nil {
				return fmt.Errorf("replication: group %d: encode membership: %w", sv.Group, err)
			}
			b.PutRaftState(s.part, confStateName, v)
		}
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("replication: save raft logs: %w", err)
	}
	for g, last := range lasts {
		l.storage(g).setLast(last)
	}
	return nil
}

// pebbleStorage is raft's view of one group's log in pebble. The log starts at
// index 1 (no snapshot, no truncation yet); its last index is cached.
type pebbleStorage struct {
	db   *storage.DB
	part uint16

	mu    sync.Mutex
	known bool // last is loaded
	last  uint64
}

func (s *pebbleStorage) setLast(last uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.known = last, true
}

// InitialState implements raft.Storage.
func (s *pebbleStorage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	hs := &pb.HardState{}
	if err := s.state(hardStateName, hs); err != nil {
		return nil, nil, err
	}
	cs := &pb.ConfState{}
	if err := s.state(confStateName, cs); err != nil {
		return nil, nil, err
	}
	return hs, cs, nil
}

func (s *pebbleStorage) state(name string, m proto.Message) error {
	v, err := s.db.RaftState(s.part, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("replication: group %d: decode raft state %s: %w", s.part, name, err)
	}
	return nil
}

// Entries implements raft.Storage.
func (s *pebbleStorage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	last, err := s.LastIndex()
	if err != nil {
		return nil, err
	}
	if lo < 1 {
		return nil, raft.ErrCompacted
	}
	if hi > last+1 {
		return nil, fmt.Errorf("replication: group %d: entries [%d, %d) asked, the log ends at %d: %w", s.part, lo, hi, last, raft.ErrUnavailable)
	}
	var out []*pb.Entry
	var size uint64
	var decodeErr error
	err = s.db.RaftEntries(s.part, lo, hi, func(index uint64, v []byte) bool {
		e := &pb.Entry{}
		if decodeErr = proto.Unmarshal(v, e); decodeErr != nil {
			decodeErr = fmt.Errorf("replication: group %d: decode entry %d: %w", s.part, index, decodeErr)
			return false
		}
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			return false
		}
		out = append(out, e)
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0].GetIndex() != lo {
		return nil, fmt.Errorf("replication: group %d: entry %d missing: %w", s.part, lo, raft.ErrUnavailable)
	}
	return out, nil
}

// Term implements raft.Storage.
func (s *pebbleStorage) Term(i uint64) (uint64, error) {
	if i == 0 {
		return 0, nil
	}
	es, err := s.Entries(i, i+1, 0)
	if err != nil {
		return 0, err
	}
	return es[0].GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (s *pebbleStorage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known {
		_, last, ok, err := s.db.RaftIndexes(s.part)
		if err != nil {
			return 0, err
		}
		if ok {
			s.last = last
		}
		s.known = true
	}
	return s.last, nil
}

// FirstIndex implements raft.Storage.
func (s *pebbleStorage) FirstIndex() (uint64, error) { return 1, nil }

// Snapshot implements raft.Storage: there is none yet.
func (s *pebbleStorage) Snapshot() (*pb.Snapshot, error) {
	_, cs, err := s.InitialState()
	if err != nil {
		return nil, err
	}
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{ConfState: cs, Index: new(uint64(0)), Term: new(uint64(0))}}, nil
}
