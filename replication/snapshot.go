package replication

import (
	"fmt"
	"sync"
	"time"

	"github.com/weftrt/weft/storage"
)

// A snapshot's data travels apart from raft's MsgSnap, which carries only
// where it stands (index, term, membership): the sending node streams the
// partition's keys from a consistent view (PebbleLog.TakeSnapshot) in chunks,
// the receiving node stages them on disk in a SnapshotInbox (an sstable per
// stream, storage.SnapshotFile), and only once the last chunk is in does it
// hand raft the MsgSnap. If raft accepts it, the driver's next pass installs
// the staged file (StateMachine.InstallSnapshot: pebble ingests it in place
// of the partition's keys) before it replaces the log, so the data is never
// behind what the log says.

// SnapshotInbox stages snapshots streamed to this node, by group and index.
type SnapshotInbox struct {
	db     *storage.DB
	mu     sync.Mutex
	staged map[snapKey]*stagedSnapshot
}

// snapKey names one stream: two leaders (one just deposed) may stream a
// snapshot at the same index to one replica at once, and their chunks must
// not mix.
type snapKey struct {
	g     GroupID
	index uint64
	from  NodeID
}

type stagedSnapshot struct {
	next     int
	file     *storage.SnapshotFile
	complete bool
	started  time.Time
}

// stagedTTL drops a staged snapshot nobody installed (raft found it stale).
const stagedTTL = 5 * time.Minute

// NewSnapshotInbox returns an empty inbox that stages in db's staging
// directory.
func NewSnapshotInbox(db *storage.DB) *SnapshotInbox {
	return &SnapshotInbox{db: db, staged: map[snapKey]*stagedSnapshot{}}
}

// Add stages chunk seq of group g's snapshot at index streamed by node from;
// seq 0 starts it over.
// Chunks must come in order (the last one again is taken as a repeat: its
// sender did not hear the answer); last marks the final one.
func (in *SnapshotInbox) Add(g GroupID, index uint64, from NodeID, seq int, kvs []storage.KV, last bool) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	k := snapKey{g, index, from}
	s := in.staged[k]
	if seq == 0 {
		for key, old := range in.staged {
			if key == k || time.Since(old.started) > stagedTTL {
				old.file.Discard()
				delete(in.staged, key)
			}
		}
		f, err := in.db.NewSnapshotFile(uint16(g), fmt.Sprintf("g%d-i%d-n%x-%d", g, index, from, time.Now().UnixNano()))
		if err != nil {
			return err
		}
		s = &stagedSnapshot{file: f, started: time.Now()}
		in.staged[k] = s
	}
	if s != nil && seq > 0 && seq == s.next-1 {
		return nil // sent again: its first delivery landed, its answer did not
	}
	if s == nil || s.next != seq {
		want := 0
		if s != nil {
			want = s.next
		}
		return fmt.Errorf("replication: snapshot of group %d at %d: chunk %d arrived, %d expected", g, index, seq, want)
	}
	if err := s.file.Add(kvs); err != nil {
		s.file.Discard()
		delete(in.staged, k)
		return err
	}
	if last {
		if err := s.file.Finish(); err != nil {
			s.file.Discard()
			delete(in.staged, k)
			return err
		}
	}
	s.next++
	s.complete = last
	return nil
}

// Complete reports whether group g's snapshot at index streamed by from
// arrived whole.
func (in *SnapshotInbox) Complete(g GroupID, index uint64, from NodeID) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := in.staged[snapKey{g, index, from}]
	return s != nil && s.complete
}

// take removes a complete snapshot of group g at index (whoever streamed it:
// the data at one index is the same on every replica), and discards every
// other one of g at or below index.
func (in *SnapshotInbox) take(g GroupID, index uint64) (*storage.SnapshotFile, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	var found *stagedSnapshot
	for k, s := range in.staged {
		if k.g == g && k.index == index && s.complete && found == nil {
			found = s
		}
	}
	for k, s := range in.staged {
		if k.g == g && k.index <= index {
			if s != found {
				s.file.Discard()
			}
			delete(in.staged, k)
		}
	}
	if found == nil {
		return nil, false
	}
	return found.file, true
}
