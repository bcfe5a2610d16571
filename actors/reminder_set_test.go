package actors

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weftrt/weft/storage"
)

// reminderSet behaves as a map by name, below and above indexFrom.
func TestReminderSetIsAMapByName(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var s reminderSet
	model := map[string]storage.Reminder{}
	for step := range 20_000 {
		name := fmt.Sprintf("timer:0:%d", r.IntN(3*indexFrom))
		switch r.IntN(3) {
		case 0, 1:
			rem := storage.Reminder{Name: name, Due: time.Unix(int64(step), 0)}
			s.set(rem)
			model[name] = rem
		default:
			s.remove(name)
			delete(model, name)
		}
		if s.len() != len(model) {
			t.Fatalf("step %d: %d reminders, want %d", step, s.len(), len(model))
		}
		probe := fmt.Sprintf("timer:0:%d", r.IntN(3*indexFrom))
		got, ok := s.get(probe)
		want, wantOK := model[probe]
		if ok != wantOK || got.Name != want.Name || !got.Due.Equal(want.Due) {
			t.Fatalf("step %d: get(%s) = %v %v, want %v %v", step, probe, got, ok, want, wantOK)
		}
	}
	for _, rem := range s.all() {
		if m := model[rem.Name]; m.Name != rem.Name || !m.Due.Equal(rem.Due) {
			t.Fatalf("all() has %v, the model %v", rem, model[rem.Name])
		}
	}
	s.reset()
	if s.len() != 0 {
		t.Fatal("reset left reminders")
	}
}
