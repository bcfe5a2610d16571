package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// lruList keeps the order of a model slice (front first) through random
// pushes, moves and removals, and leastRecent skips stopping activations and
// the one it is told to.
func TestLRUListKeepsUseOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var l lruList
	l.init()
	var model []*activation // most recently used first
	order := func() []*activation {
		var got []*activation
		for a := l.root.next; a != &l.root; a = a.next {
			got = append(got, a)
		}
		return got
	}
	for step := range 5_000 {
		switch op := r.IntN(4); {
		case op == 0 || len(model) == 0:
			a := &activation{}
			l.pushFront(a)
			model = slices.Insert(model, 0, a)
		case op == 1:
			i := r.IntN(len(model))
			a := model[i]
			l.moveToFront(a)
			model = slices.Insert(slices.Delete(model, i, i+1), 0, a)
		case op == 2:
			i := r.IntN(len(model))
			l.remove(model[i])
			model = slices.Delete(model, i, i+1)
		default:
			i := r.IntN(len(model))
			model[i].stopping = !model[i].stopping
		}
		if got := order(); !slices.Equal(got, model) {
			t.Fatalf("step %d: list order differs from the model", step)
		}
		except := (*activation)(nil)
		if len(model) > 0 && r.IntN(2) == 0 {
			except = model[r.IntN(len(model))]
		}
		var want *activation
		for i := len(model) - 1; i >= 0; i-- {
			if model[i] != except && !model[i].stopping {
				want = model[i]
				break
			}
		}
		if got := l.leastRecent(except); got != want {
			t.Fatalf("step %d: leastRecent is not the last non-stopping activation", step)
		}
	}
}

// Requests racing for the same instances, with room for few in memory, each
// find one live activation: the host's table and its LRU agree throughout,
// whichever request made the activation that was kept.
func TestRacingActivationsKeepTableAndLRUInStep(t *testing.T) {
	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Partitions: 8, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHost(Options{DB: db, Registry: workflow.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxActive: 3})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		db.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checkTable := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		live := 0
		for id, a := range h.actors {
			if a.id != id {
				t.Errorf("activation of %s filed under %s", a.id, id)
			}
			if !a.stopping {
				live++
			}
		}
		inLRU := 0
		for a := h.lru.root.next; a != &h.lru.root; a = a.next {
			if h.actors[a.id] != a || a.stopping {
				t.Errorf("the LRU holds %s, which is not a live activation", a.id)
			}
			inLRU++
		}
		if inLRU != live {
			t.Errorf("%d activations in the LRU, %d live in the table", inLRU, live)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for range 300 {
				// wake on an instance that was never started: it loads nothing
				// and passivates at once, so activations come and go.
				if err := h.Request(ctx, fmt.Sprintf("i-%d", r.IntN(6)), wake{}); err != nil {
					t.Error(err)
					return
				}
				if r.IntN(10) == 0 {
					checkTable()
				}
			}
		})
	}
	wg.Wait()
	checkTable()
	// An activation leaves the table before its passivation is counted: the
	// last ones may still be on their way out.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, p := h.stats.Activations.Load(), h.stats.Passivations.Load()
		if a >= 100 && a-p == int64(h.Active()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d activations, %d passivations, %d active: want many activations, all accounted for", a, p, h.Active())
		}
		time.Sleep(time.Millisecond)
	}
}

// victim takes the least recently used instance that waits on no queued
// work; when the probed tail all waits on work, the most recently used one
// that has queued its work (not one with a message just routed to it, whose
// flag is cleared until the actor handled it); past both probes, the least
// recently used.
func TestLRUVictim(t *testing.T) {
	// A spec lists activations most recently used first: w waits on work,
	// i waits on nothing queued, s is stopping, x is the one just made.
	repeat := func(c byte, n int) string { return string(slices.Repeat([]byte{c}, n)) }
	for _, c := range []struct {
		name string
		spec string
		want int // index into spec; -1: none
	}{
		{"least recently used idle one", "xwiwi", 4},
		{"idle one nearest the tail", "xiwwiww", 4},
		{"all wait: the most recently used", "xwwww", 1},
		{"all wait: skips stopping and just routed", "xsi" + repeat('w', victimProbe), 3},
		{"only the new one", "x", -1},
		{"only stopping ones", "xss", -1},
		{"idle one past the tail probe", "x" + "w" + "i" + repeat('w', victimProbe), 1},
		{"past both probes: the least recently used", "x" + repeat('i', victimProbe) + repeat('w', victimProbe), 2 * victimProbe},
		{"the only other one, idle", "xi", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l lruList
			l.init()
			acts := make([]*activation, len(c.spec))
			var except *activation
			for i := len(c.spec) - 1; i >= 0; i-- { // pushed oldest first
				a := &activation{id: fmt.Sprint(i)}
				switch c.spec[i] {
				case 'w':
					a.awaitsWork.Store(true)
				case 's':
					a.stopping = true
				case 'x':
					except = a
				}
				acts[i] = a
				l.pushFront(a)
			}
			var want *activation
			if c.want >= 0 {
				want = acts[c.want]
			}
			if got := l.victim(except); got != want {
				name := func(a *activation) string {
					if a == nil {
						return "none"
					}
					return a.id
				}
				t.Errorf("victim = %s, want %s", name(got), name(want))
			}
		})
	}
}
