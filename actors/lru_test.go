package actors

import (
	"math/rand/v2"
	"slices"
	"testing"
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
