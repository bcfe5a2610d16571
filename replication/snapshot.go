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
// the receiving node stages them in a SnapshotInbox, and only once the last
// chunk is in does it hand raft the MsgSnap. If raft accepts it, the
// driver's next pass installs the staged keys (StateMachine.InstallSnapshot)
// before it replaces the log, so the data is never behind what the log says.

// SnapshotInbox stages snapshots streamed to this node, by group and index.
type SnapshotInbox struct {
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
	chunks   [][]storage.KV
	complete bool
	started  time.Time
}

// stagedTTL drops a staged snapshot nobody installed (raft found it stale).
const stagedTTL = 5 * time.Minute

// NewSnapshotInbox returns an empty inbox.
func NewSnapshotInbox() *SnapshotInbox {
	return &SnapshotInbox{staged: map[snapKey]*stagedSnapshot{}}
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
			if time.Since(old.started) > stagedTTL {
				delete(in.staged, key)
			}
		}
		s = &stagedSnapshot{started: time.Now()}
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
	s.next++
	if len(kvs) > 0 {
		s.chunks = append(s.chunks, kvs)
	}
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
// the data at one index is the same on every replica), and every older one
// of g.
func (in *SnapshotInbox) take(g GroupID, index uint64) ([][]storage.KV, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	var found *stagedSnapshot
	for k, s := range in.staged {
		if k.g == g && k.index == index && s.complete && found == nil {
			found = s
		}
	}
	for k := range in.staged {
		if k.g == g && k.index <= index {
			delete(in.staged, k)
		}
	}
	if found == nil {
		return nil, false
	}
	return found.chunks, true
}
