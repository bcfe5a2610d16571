package cluster

import (
	"fmt"
	"slices"
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
// every change; merging keeps the higher version per node. That makes the
// registry a state-based CRDT: every node converges on the same entries whatever
// order updates and full syncs arrive in.

// Entry is one node's record.
type Entry struct {
	Node       string   `msgpack:"n"`
	Version    uint64   `msgpack:"ver"`
	Registered bool     `msgpack:"r,omitempty"` // false once the node left gracefully
	ActorAddr  string   `msgpack:"aa,omitempty"`
	HTTPAddr   string   `msgpack:"ha,omitempty"`
	GossipAddr string   `msgpack:"gsa,omitempty"`
	Held       []uint16 `msgpack:"h,omitempty"` // partitions whose data the node holds, sorted
	// Epochs[i] is the ownership epoch of Held[i]: it grows on every handoff, so
	// of two copies of a partition (a crash between a handoff's two commits) the
	// older one is recognised and dropped.
	Epochs []uint64 `msgpack:"e,omitempty"`
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
	V       uint8   `msgpack:"v"`
	Entries []Entry `msgpack:"es"`
}

const registryV = 1

// EncodeEntries is the wire and disk form of a set of entries.
func EncodeEntries(es []Entry) []byte {
	b, err := msgpack.Marshal(&registryWire{V: registryV, Entries: es})
	if err != nil {
		panic(fmt.Errorf("cluster: encode registry: %w", err)) // plain data: cannot fail
	}
	return b
}

// DecodeEntries parses EncodeEntries' output.
func DecodeEntries(b []byte) ([]Entry, error) {
	var w registryWire
	if err := msgpack.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("cluster: decode registry: %w", err)
	}
	if w.V == 0 || w.V > registryV {
		return nil, fmt.Errorf("cluster: registry version %d unknown to this build: %w", w.V, ErrUnknownMetaVersion)
	}
	for i := range w.Entries {
		if len(w.Entries[i].Held) != len(w.Entries[i].Epochs) {
			return nil, fmt.Errorf("cluster: registry entry of %s: %d partitions, %d epochs", w.Entries[i].Node, len(w.Entries[i].Held), len(w.Entries[i].Epochs))
		}
	}
	return w.Entries, nil
}

// Registry holds the entries. It is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	entries  map[string]Entry
	onChange func() // called (without the lock) after a merge changed something
}

// NewRegistry returns a registry holding es.
func NewRegistry(es []Entry, onChange func()) *Registry {
	r := &Registry{entries: map[string]Entry{}, onChange: onChange}
	r.merge(es)
	return r
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
		out = append(out, e)
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
	return e, ok
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
func (r *Registry) LocalState() []byte { return EncodeEntries(r.Entries()) }

func (r *Registry) MergeRemoteState(buf []byte) {
	es, err := DecodeEntries(buf)
	if err != nil {
		return // a newer build's format: its full state comes again once both run one version
	}
	r.Merge(es)
}
