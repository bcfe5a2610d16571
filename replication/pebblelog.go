package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weftrt/weft/storage"
)

// PebbleLog keeps the raft logs of a node's groups in its pebble store (the
// g/<part>/ keys of storage/keys.go), every Ready pass in one synced batch.
// Entries are raft's protobuf encoding; the hard state, the membership and
// where the log starts are records of their own.
//
// A log starts after its truncation point: the index and term of the entry
// before its first, left by a truncation behind what was applied (Compact),
// by a snapshot that replaced it, or by Bootstrap. A replica that needs what
// was truncated gets a snapshot: raft asks Snapshot for one, and what it gets
// names a consistent view of the partition's data (storage.PartitionSnapshot)
// that the transport streams; the data never rides in raft's message.
type PebbleLog struct {
	db *storage.DB

	mu     sync.Mutex
	groups map[GroupID]*pebbleStorage

	snapMu    sync.Mutex
	snaps     map[uint64]*heldSnapshot // token → view, until the transport takes it
	nextToken uint64
}

type heldSnapshot struct {
	s     *storage.PartitionSnapshot
	taken time.Time
}

// NewPebbleLog returns the raft logs kept in db.
func NewPebbleLog(db *storage.DB) *PebbleLog {
	return &PebbleLog{db: db, groups: map[GroupID]*pebbleStorage{}, snaps: map[uint64]*heldSnapshot{}}
}

// Names of a group's state records.
const (
	hardStateName = "h"
	confStateName = "c"
	confIndexName = "ci" // the index of the conf change that made the membership "c" holds, 8 bytes
	truncatedName = "t"  // the truncation point: index and term, 8 bytes each
)

// Bootstrap creates group g's log as if a snapshot at index had been applied:
// the partition's data (whatever it holds now) is the state at index, voters
// are its members. A replica added later is caught up by snapshot, since the
// log starts after index. It refuses a group that has raft state.
func (l *PebbleLog) Bootstrap(g GroupID, voters []NodeID, index, term uint64) error {
	if has, err := l.HasState(g); err != nil || has {
		if err == nil {
			err = fmt.Errorf("replication: bootstrap group %d: it has raft state already", g)
		}
		return err
	}
	b := l.db.NewBatch()
	defer b.Close()
	part := uint16(g)
	hs, err := proto.Marshal(&pb.HardState{Term: new(term), Commit: new(index)})
	if err != nil {
		return err
	}
	cs, err := proto.Marshal(&pb.ConfState{Voters: voters})
	if err != nil {
		return err
	}
	b.PutRaftState(part, hardStateName, hs)
	b.PutRaftState(part, confStateName, cs)
	b.PutRaftState(part, truncatedName, encodeTruncated(index, term))
	b.PutAppliedIndex(part, index)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("replication: bootstrap group %d: %w", g, err)
	}
	l.mu.Lock()
	delete(l.groups, g) // reloaded from what was just written
	l.mu.Unlock()
	return nil
}

// HasState reports whether group g has raft state in the store.
func (l *PebbleLog) HasState(g GroupID) (bool, error) {
	_, err := l.db.RaftState(uint16(g), hardStateName)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Storage implements LogStore.
func (l *PebbleLog) Storage(g GroupID) raft.Storage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.storage(g)
}

func (l *PebbleLog) storage(g GroupID) *pebbleStorage {
	s, ok := l.groups[g]
	if !ok {
		s = &pebbleStorage{l: l, db: l.db, part: uint16(g)}
		l.groups[g] = s
	}
	return s
}

// Save implements LogStore: one batch for every group, committed synced when
// raft says it must be (new entries, a new term or vote); a pass that only
// moves commit indexes is written without waiting for the disk.
func (l *PebbleLog) Save(saves []Save, sync bool) error {
	b := l.db.NewBatch()
	defer b.Close()
	type after struct {
		last                 uint64
		snapIndex, snapTerm  uint64
		hasLast, snapshotted bool
		entries              []*pb.Entry
	}
	updates := make(map[GroupID]after, len(saves))
	for _, sv := range saves {
		s := l.Storage(sv.Group).(*pebbleStorage)
		u := updates[sv.Group]
		if snap := sv.Snapshot; snap != nil {
			// The data was installed first (StateMachine.InstallSnapshot): the
			// log now starts after the snapshot.
			m := snap.GetMetadata()
			b.DeleteRaftEntriesFrom(s.part, 0)
			b.PutRaftState(s.part, truncatedName, encodeTruncated(m.GetIndex(), m.GetTerm()))
			v, err := proto.Marshal(m.GetConfState())
			if err != nil {
				return err
			}
			b.PutRaftState(s.part, confStateName, v)
			b.PutRaftState(s.part, confIndexName, binary.BigEndian.AppendUint64(nil, m.GetIndex()))
			u.snapshotted, u.snapIndex, u.snapTerm = true, m.GetIndex(), m.GetTerm()
			u.last, u.hasLast = m.GetIndex(), true
		}
		if n := len(sv.Entries); n > 0 {
			first := sv.Entries[0].GetIndex()
			last, err := s.LastIndex()
			if err != nil {
				return err
			}
			if first <= last && !u.snapshotted {
				b.DeleteRaftEntriesFrom(s.part, first) // a new leader's entries replace a conflicting tail
			}
			for _, e := range sv.Entries {
				v, err := proto.Marshal(e)
				if err != nil {
					return fmt.Errorf("replication: group %d: encode entry %d: %w", sv.Group, e.GetIndex(), err)
				}
				b.PutRaftEntry(s.part, e.GetIndex(), v)
			}
			u.last, u.hasLast = sv.Entries[n-1].GetIndex(), true
			u.entries = sv.Entries
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
			b.PutRaftState(s.part, confIndexName, binary.BigEndian.AppendUint64(nil, sv.ConfIndex))
		}
		updates[sv.Group] = u
	}
	commit := b.Commit
	if !sync {
		commit = b.CommitUnsynced
	}
	if err := commit(); err != nil {
		return fmt.Errorf("replication: save raft logs: %w", err)
	}
	for g, u := range updates {
		s := l.Storage(g).(*pebbleStorage)
		s.mu.Lock()
		if u.snapshotted {
			s.recent = s.recent[:0]
		}
		s.remember(u.entries)
		if s.loaded {
			if u.snapshotted {
				s.truncIndex, s.truncTerm = u.snapIndex, u.snapTerm
			}
			if u.hasLast {
				s.last = u.last
			}
		}
		s.mu.Unlock()
	}
	return nil
}

// Compact truncates group g's log up to and including index, which must have
// been applied. Replicas that still need those entries get a snapshot.
//
// The log is truncated in memory first, then on disk, without s.mu held
// across the write: raft reads the log with the driver's lock held, which
// must not wait for a write. Meanwhile reads find the entries compacted,
// which they are about to be.
func (l *PebbleLog) Compact(g GroupID, index uint64) error {
	s := l.Storage(g).(*pebbleStorage)
	s.mu.Lock()
	if err := s.loadLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	if index <= s.truncIndex {
		s.mu.Unlock()
		return nil
	}
	if index > s.last {
		s.mu.Unlock()
		return fmt.Errorf("replication: group %d: compact to %d, beyond the log's end %d", g, index, s.last)
	}
	term, err := s.termLocked(index)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.truncIndex, s.truncTerm = index, term
	for len(s.recent) > 0 && s.recent[0].GetIndex() <= index {
		s.recent = s.recent[1:]
	}
	s.mu.Unlock()
	b := l.db.NewBatch()
	defer b.Close()
	b.DeleteRaftEntriesTo(s.part, index)
	b.PutRaftState(s.part, truncatedName, encodeTruncated(index, term))
	if err := b.Commit(); err != nil {
		return fmt.Errorf("replication: compact group %d: %w", g, err)
	}
	return nil
}

// Destroy implements LogStore: the group's log and state and the
// partition's data go in one synced write.
//
// The write is made without l.mu: Storage, which takes it, is called with the
// driver's lock held (a message creating another group's replica), and must
// not wait for this group's synced write. Nothing asks for g's storage
// meanwhile: the driver adopts no replica of a group being destroyed.
func (l *PebbleLog) Destroy(g GroupID) error {
	if err := l.db.DestroyReplica(uint16(g)); err != nil {
		return fmt.Errorf("replication: destroy group %d: %w", g, err)
	}
	l.mu.Lock()
	delete(l.groups, g)
	l.mu.Unlock()
	return nil
}

// TakeSnapshot returns the partition view a snapshot message names (its
// Data), for the transport to stream; the caller closes it. ok is false when
// the view is gone (taken already, or expired).
func (l *PebbleLog) TakeSnapshot(data []byte) (*storage.PartitionSnapshot, bool) {
	if len(data) != 8 {
		return nil, false
	}
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	h, ok := l.snaps[binary.BigEndian.Uint64(data)]
	if !ok {
		return nil, false
	}
	delete(l.snaps, binary.BigEndian.Uint64(data))
	return h.s, true
}

// snapshotTTL: a view raft asked for and nobody streamed is released after it.
const snapshotTTL = 2 * time.Minute

func (l *PebbleLog) holdSnapshot(s *storage.PartitionSnapshot) []byte {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	for t, h := range l.snaps {
		if time.Since(h.taken) > snapshotTTL {
			_ = h.s.Close()
			delete(l.snaps, t)
		}
	}
	l.nextToken++
	l.snaps[l.nextToken] = &heldSnapshot{s: s, taken: time.Now()}
	return binary.BigEndian.AppendUint64(nil, l.nextToken)
}

// Close releases the snapshot views not streamed.
func (l *PebbleLog) Close() {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	for t, h := range l.snaps {
		_ = h.s.Close()
		delete(l.snaps, t)
	}
}

func encodeTruncated(index, term uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, index), term)
}

// pebbleStorage is raft's view of one group's log in pebble; its bounds are
// cached. Reads and truncations hold mu, so no read finds entries gone that
// the bounds it checked promised.
type pebbleStorage struct {
	l    *PebbleLog
	db   *storage.DB
	part uint16

	mu                    sync.Mutex
	loaded                bool
	last                  uint64 // the last index: an entry's, or the truncation point's
	truncIndex, truncTerm uint64
	// recent are the last entries written, contiguous up to last: raft asks
	// for their terms on every append and commit, and for the entries
	// themselves when a follower is a little behind; reading them back from
	// pebble each time cost a memtable seek apiece.
	recent []*pb.Entry
}

// recentEntries is how many of a group's last entries stay in memory.
const recentEntries = 64

// remember records entries just written (contiguous, the log's new tail).
func (s *pebbleStorage) remember(es []*pb.Entry) {
	if len(es) == 0 {
		return
	}
	first := es[0].GetIndex()
	if n := len(s.recent); n > 0 && s.recent[0].GetIndex() <= first && first <= s.recent[n-1].GetIndex()+1 {
		s.recent = s.recent[:first-s.recent[0].GetIndex()] // a conflicting tail is replaced
	} else {
		s.recent = s.recent[:0]
	}
	s.recent = append(s.recent, es...)
	if extra := len(s.recent) - recentEntries; extra > 0 {
		s.recent = append(s.recent[:0:0], s.recent[extra:]...)
	}
}

// cached returns entries [lo, hi) from memory, if they are all there.
func (s *pebbleStorage) cached(lo, hi, maxSize uint64) ([]*pb.Entry, bool) {
	if len(s.recent) == 0 || lo < s.recent[0].GetIndex() || hi-1 > s.recent[len(s.recent)-1].GetIndex() || hi <= lo {
		return nil, false
	}
	es := s.recent[lo-s.recent[0].GetIndex() : hi-s.recent[0].GetIndex()]
	var size uint64
	for i, e := range es {
		size += uint64(proto.Size(e))
		if i > 0 && size > maxSize {
			return es[:i:i], true
		}
	}
	return es[:len(es):len(es)], true
}

func (s *pebbleStorage) loadLocked() error {
	if s.loaded {
		return nil
	}
	v, err := s.db.RaftState(s.part, truncatedName)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return err
	case len(v) != 16:
		return fmt.Errorf("replication: group %d: truncation record of %d bytes, want 16", s.part, len(v))
	default:
		s.truncIndex, s.truncTerm = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	}
	_, last, ok, err := s.db.RaftIndexes(s.part)
	if err != nil {
		return err
	}
	s.last = s.truncIndex
	if ok && last > s.last {
		s.last = last
	}
	s.loaded = true
	return nil
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
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entriesLocked(lo, hi, maxSize)
}

func (s *pebbleStorage) entriesLocked(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	if err := s.loadLocked(); err != nil {
		return nil, err
	}
	if lo <= s.truncIndex {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 {
		return nil, fmt.Errorf("replication: group %d: entries [%d, %d) asked, the log ends at %d: %w", s.part, lo, hi, s.last, raft.ErrUnavailable)
	}
	if es, ok := s.cached(lo, hi, maxSize); ok {
		return es, nil
	}
	var out []*pb.Entry
	var size uint64
	var decodeErr error
	err := s.db.RaftEntries(s.part, lo, hi, func(index uint64, v []byte) bool {
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
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.termLocked(i)
}

func (s *pebbleStorage) termLocked(i uint64) (uint64, error) {
	if err := s.loadLocked(); err != nil {
		return 0, err
	}
	switch {
	case i == s.truncIndex:
		return s.truncTerm, nil
	case i < s.truncIndex:
		return 0, raft.ErrCompacted
	case i > s.last:
		return 0, raft.ErrUnavailable
	}
	es, err := s.entriesLocked(i, i+1, 0)
	if err != nil {
		return 0, err
	}
	return es[0].GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (s *pebbleStorage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(); err != nil {
		return 0, err
	}
	return s.last, nil
}

// FirstIndex implements raft.Storage.
func (s *pebbleStorage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(); err != nil {
		return 0, err
	}
	return s.truncIndex + 1, nil
}

// Snapshot implements raft.Storage: a view of the partition's data as of its
// applied index, which the log still covers (it is truncated only behind what
// was applied), with the membership as of that index. A conf change is saved
// with the log, before the entries committed with it are applied: while the
// saved membership is newer than the applied index, there is no snapshot to
// take yet (raft asks again). Data is the view's token for TakeSnapshot.
func (s *pebbleStorage) Snapshot() (*pb.Snapshot, error) {
	view, err := s.db.SnapshotPartition(s.part)
	if err != nil {
		return nil, err
	}
	index := view.Applied
	if index == 0 { // nothing applied yet: no state to send
		_ = view.Close()
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	term, err := s.Term(index)
	if err != nil {
		_ = view.Close()
		if errors.Is(err, raft.ErrCompacted) || errors.Is(err, raft.ErrUnavailable) {
			return nil, raft.ErrSnapshotTemporarilyUnavailable
		}
		return nil, err
	}
	cs := &pb.ConfState{}
	if v, err := view.RaftState(confStateName); err == nil {
		if err := proto.Unmarshal(v, cs); err != nil {
			_ = view.Close()
			return nil, err
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		_ = view.Close()
		return nil, err
	}
	if v, err := view.RaftState(confIndexName); err == nil && len(v) == 8 && binary.BigEndian.Uint64(v) > index {
		_ = view.Close()
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		_ = view.Close()
		return nil, err
	}
	return &pb.Snapshot{
		Data:     s.l.holdSnapshot(view),
		Metadata: &pb.SnapshotMetadata{ConfState: cs, Index: new(index), Term: new(term)},
	}, nil
}
