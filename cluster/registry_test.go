package cluster

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The registry must converge whatever order updates and full syncs arrive in,
// and however often they repeat: every node applies the same set of entries.
func TestRegistryConvergesInAnyOrder(t *testing.T) {
	var updates []Entry
	for v := uint64(1); v <= 5; v++ {
		for _, node := range []string{"n1", "n2", "n3"} {
			updates = append(updates, Entry{Node: node, Version: v, Registered: v != 5 || node != "n2",
				Held: []uint16{uint16(v)}, Epochs: []uint64{v}})
		}
	}
	want := NewRegistry(updates, nil).Entries()
	for seed := range 50 {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		shuffled := slices.Clone(updates)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		r := NewRegistry(nil, nil)
		for i, e := range shuffled {
			r.Merge([]Entry{e})
			if i%4 == 0 { // a full sync of what it has so far, merged into a copy and back
				other := NewRegistry(nil, nil)
				other.MergeRemoteState(r.LocalState())
				r.MergeRemoteState(other.LocalState())
			}
			r.Merge([]Entry{e}) // repeated messages change nothing
		}
		if got := r.Entries(); !slices.EqualFunc(got, want, func(a, b Entry) bool {
			return a.Node == b.Node && a.Version == b.Version && a.Registered == b.Registered && slices.Equal(a.Held, b.Held)
		}) {
			t.Fatalf("seed %d: converged to %+v, want %+v", seed, got, want)
		}
	}
	if got := NewRegistry(updates, nil).Registered(); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Fatalf("registered after n2's leave: %v", got)
	}
}

func TestRegistryRefusesMalformedState(t *testing.T) {
	bad := EncodeEntries([]Entry{{Node: "n1", Version: 1, Held: []uint16{1, 2}, Epochs: []uint64{1}}})
	if _, err := DecodeEntries(bad); err == nil {
		t.Fatal("entries with more partitions than epochs decoded")
	}
	r := NewRegistry(nil, nil)
	r.MergeRemoteState([]byte("not msgpack"))
	r.MergeRemoteState(bad)
	if len(r.Entries()) != 0 {
		t.Fatalf("malformed state merged: %+v", r.Entries())
	}
	e := Entry{Node: "n1", Held: []uint16{3, 7, 9}, Epochs: []uint64{1, 4, 2}}
	if ep, ok := e.Holds(7); !ok || ep != 4 {
		t.Fatalf("Holds(7) = %d %v", ep, ok)
	}
	if _, ok := e.Holds(8); ok {
		t.Fatal("Holds(8) on an entry without it")
	}
}
