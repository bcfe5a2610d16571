package cluster

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// The registry is the cluster's replicated record of its members: who is
// registered (owns partitions by placement's rule, live or not), where each is
// reached, and which partitions' data each holds. Membership liveness says
// whether a node answers; the registry says what it owns and has, and outlives
// memberlist's memory of dead nodes (each node persists it).
//
// Each entry is written only by its own node, with a version it increments on
// every change; merging keeps the higher version per node. Removals (a node
// gone for good, see removal.go) are a set that only grows, merged by union.
// That makes the registry a state-based CRDT: every node converges on the same
// entries and removals whatever order updates and full syncs arrive in.

// Entry is one node's record.
type Entry struct {
	Node       string   `msgpack:"n"`
	Version    uint64   `msgpack:"ver"`
	Registered bool     `msgpack:"r,omitempty"` // false once the node left gracefully
	ActorAddr  string   `msgpack:"aa,omitempty"`
	HTTPAddr   string   `msgpack:"ha,omitempty"`
	GossipAddr string   `msgpack:"gsa,omitempty"`
	Held       []uint16 `msgpack:"h,omitempty"` // partitions the node serves (leads their groups), sorted
	// Epochs[i] is the raft term in which the node leads Held[i]: of two
	// nodes that both still publish a partition (a deposed leader whose news
	// has not spread yet), the higher term names the leader.
	Epochs []uint64 `msgpack:"e,omitempty"`
	// Draining: the node is stopping for a restart; it keeps its replicas
	// but hands the leadership of its groups to others and takes none.
	Draining bool `msgpack:"dr,omitempty"`
	// Removed is set (by Entries and Get, never stored) when the node was
	// removed from the cluster for good; Registered is false then.
	Removed bool `msgpack:"-"`
}

// Holds reports whether e holds partition p, and at which epoch.
func (e *Entry) Holds(p uint16) (uint64, bool) {
	i, ok := slices.BinarySearch(e.Held, p)
	if !ok {
		return 0, false
	}
	return e.Epochs[i], true
}

type registryWire struct {
	V        uint8     `msgpack:"v"`
	Entries  []Entry   `msgpack:"es"`
	Removals []Removal `msgpack:"rm,omitempty"`
}

const registryV = 1

// EncodeEntries is the wire and disk form of a set of entries.
func EncodeEntries(es []Entry) []byte { return encodeState(es, nil) }

func encodeState(es []Entry, rm []Removal) []byte {
	b, err := msgpack.Marshal(&registryWire{V: registryV, Entries: es, Removals: rm})
	if err != nil {
		panic(fmt.Errorf("cluster: encode registry: %w", err)) // plain data: cannot fail
	}
	return b
}

// DecodeEntries parses EncodeEntries' output.
func DecodeEntries(b []byte) ([]Entry, error) {
	es, _, err := decodeState(b)
	return es, err
}

func decodeState(b []byte) ([]Entry, []Removal, error) {
	var w registryWire
	if err := msgpack.Unmarshal(b, &w); err != nil {
		return nil, nil, fmt.Errorf("cluster: decode registry: %w", err)
	}
	if w.V == 0 || w.V > registryV {
		return nil, nil, fmt.Errorf("cluster: registry version %d unknown to this build: %w", w.V, ErrUnknownMetaVersion)
	}
	for i := range w.Entries {
		if len(w.Entries[i].Held) != len(w.Entries[i].Epochs) {
			return nil, nil, fmt.Errorf("cluster: registry entry of %s: %d partitions, %d epochs", w.Entries[i].Node, len(w.Entries[i].Held), len(w.Entries[i].Epochs))
		}
	}
	return w.Entries, w.Removals, nil
}

// Registry holds the entries. It is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	entries  map[string]Entry
	removed  map[string]Removal
	onChange func() // called (without the lock) after a merge changed something
}

// NewRegistry returns a registry holding es.
func NewRegistry(es []Entry, onChange func()) *Registry {
	r := &Registry{entries: map[string]Entry{}, removed: map[string]Removal{}, onChange: onChange}
	r.merge(es)
	return r
}

// Remove records that nodes were removed for good; it reports whether any
// was new.
func (r *Registry) Remove(rm ...Removal) bool {
	changed := r.mergeRemovals(rm)
	if changed && r.onChange != nil {
		r.onChange()
	}
	return changed
}

// mergeRemovals adds removals; of two records of one node's removal, the
// earlier (then the smaller remover) is kept, so every node keeps the same.
func (r *Registry) mergeRemovals(rm []Removal) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, x := range rm {
		if x.Node == "" {
			continue
		}
		old, ok := r.removed[x.Node]
		if ok && (old.At < x.At || old.At == x.At && old.By <= x.By) {
			continue
		}
		r.removed[x.Node] = x
		changed = true
	}
	return changed
}

// Removal returns the record of a node's removal, if it was removed.
func (r *Registry) Removal(node string) (Removal, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x, ok := r.removed[node]
	return x, ok
}

// Removals returns every removal, sorted by node.
func (r *Registry) Removals() []Removal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.SortedFunc(maps.Values(r.removed), func(a, b Removal) int { return strings.Compare(a.Node, b.Node) })
}

// Merge keeps, per node, the entry with the higher version. It reports whether
// anything changed.
func (r *Registry) Merge(es []Entry) bool {
	changed := r.merge(es)
	if changed && r.onChange != nil {
		r.onChange()
	}
	return changed
}

func (r *Registry) merge(es []Entry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, e := range es {
		if e.Node == "" {
			continue
		}
		if old, ok := r.entries[e.Node]; ok && old.Version >= e.Version {
			continue
		}
		r.entries[e.Node] = e
		changed = true
	}
	return changed
}

// Entries returns every entry, sorted by node.
func (r *Registry) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Entry, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, r.markLocked(e))
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if a.Node < b.Node {
			return -1
		}
		if a.Node > b.Node {
			return 1
		}
		return 0
	})
	return out
}

// Get returns a node's entry.
func (r *Registry) Get(node string) (Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[node]
	return r.markLocked(e), ok
}

// markLocked sets e's Removed (and clears Registered) if its node was removed.
func (r *Registry) markLocked(e Entry) Entry {
	if _, gone := r.removed[e.Node]; gone {
		e.Removed, e.Registered = true, false
	}
	return e
}

// Registered returns the ids of the registered nodes, sorted.
func (r *Registry) Registered() []string {
	var ids []string
	for _, e := range r.Entries() {
		if e.Registered {
			ids = append(ids, e.Node)
		}
	}
	return ids
}

// LocalState and MergeRemoteState make the registry a StateDelegate.
func (r *Registry) LocalState() []byte {
	r.mu.Lock()
	es := make([]Entry, 0, len(r.entries))
	for _, e := range r.entries {
		es = append(es, e)
	}
	r.mu.Unlock()
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Node, b.Node) })
	return encodeState(es, r.Removals())
}

func (r *Registry) MergeRemoteState(buf []byte) {
	es, rm, err := decodeState(buf)
	if err != nil {
		return // a newer build's format: its full state comes again once both run one version
	}
	changed := r.merge(es)
	changed = r.mergeRemovals(rm) || changed
	if changed && r.onChange != nil {
		r.onChange()
	}
}
