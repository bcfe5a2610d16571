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

// Removals merge by union, whatever path they take (a broadcast of one, a
// full sync); a removed node is no longer registered, and of two records of
// one removal every node keeps the same one.
func TestRegistryRemovals(t *testing.T) {
	entries := []Entry{{Node: "n1", Version: 3, Registered: true}, {Node: "n2", Version: 2, Registered: true}, {Node: "n3", Version: 7, Registered: true}}
	a, b := NewRegistry(entries, nil), NewRegistry(entries, nil)
	early := Removal{Node: "n3", By: "n2", At: 100, Reason: "unreachable"}
	late := Removal{Node: "n3", By: "n1", At: 200, Reason: "operator"}
	if !a.Remove(late) || !b.Remove(early) {
		t.Fatal("a new removal changed nothing")
	}
	if a.Remove(late) {
		t.Fatal("a repeated removal changed something")
	}
	a.MergeRemoteState(b.LocalState())
	b.MergeRemoteState(a.LocalState())
	for name, r := range map[string]*Registry{"a": a, "b": b} {
		if got, _ := r.Removal("n3"); got != early {
			t.Errorf("%s keeps %+v, want the earlier %+v", name, got, early)
		}
		if got := r.Registered(); !slices.Equal(got, []string{"n1", "n2"}) {
			t.Errorf("%s: registered %v after n3's removal", name, got)
		}
		e, _ := r.Get("n3")
		if !e.Removed || e.Registered {
			t.Errorf("%s: n3's entry %+v, want removed and unregistered", name, e)
		}
	}
	// n3's own later entry (it came back) does not undo its removal.
	a.Merge([]Entry{{Node: "n3", Version: 9, Registered: true}})
	if e, _ := a.Get("n3"); !e.Removed || e.Registered {
		t.Errorf("n3 undid its removal by publishing: %+v", e)
	}
	// The disk form keeps the removals.
	es, rm, err := decodeState(a.LocalState())
	if err != nil || len(es) != 3 || len(rm) != 1 || rm[0] != early {
		t.Fatalf("decoded %v %v %v", es, rm, err)
	}
}
