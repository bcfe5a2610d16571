package reminders

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftrt/weft/placement"
	"github.com/weftrt/weft/storage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait on the service; it is a failure deadline, not a sleep.
const guard = 10 * time.Second

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openDB(t testing.TB, dir string, parts int) *storage.DB {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: dir, Partitions: parts, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func rem(db *storage.DB, id, name string, due time.Time) storage.Reminder {
	return storage.Reminder{Partition: placement.PartitionOf(id, db.Partitions()), Instance: id, Name: name, Due: due, Payload: []byte(name)}
}

func store(t testing.TB, db *storage.DB, rs ...storage.Reminder) {
	t.Helper()
	for len(rs) > 0 {
		n := min(len(rs), 1000)
		b := db.NewBatch()
		for _, r := range rs[:n] {
			if err := b.PutReminder(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		b.Close()
		rs = rs[n:]
	}
}

// deleteDone does what an actor does after handling a fired reminder: delete it
// in a commit, then tell the service.
func deleteDone(t testing.TB, db *storage.DB, s *Service, rs ...storage.Reminder) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	for _, r := range rs {
		b.DeleteReminder(r)
	}
	if err := b.Commit(); err != nil {
		t.Error(err)
		return
	}
	s.Done(rs...)
}

type env struct {
	t     *testing.T
	dir   string
	db    *storage.DB
	clock *FakeClock
	fired chan storage.Reminder
	svc   *Service
}

func newEnv(t *testing.T, parts int, mod func(*Options)) *env {
	e := &env{t: t, dir: t.TempDir(), clock: NewFakeClock(t0), fired: make(chan storage.Reminder, 20000)}
	e.db = openDB(t, e.dir, parts)
	t.Cleanup(func() { _ = e.db.Close() })
	e.svc = e.newService(mod)
	return e
}

func (e *env) newService(mod func(*Options)) *Service {
	opts := Options{DB: e.db, Clock: e.clock, Fire: func(r storage.Reminder) { e.fired <- r }, Logger: quiet()}
	if mod != nil {
		mod(&opts)
	}
	s := New(opts)
	e.t.Cleanup(func() { _ = s.Close() })
	return s
}

func (e *env) start() {
	e.t.Helper()
	if err := e.svc.Start(); err != nil {
		e.t.Fatal(err)
	}
}

// advance moves the fake clock and waits until the service has acted on it:
// its timer is armed again, and the refill it started, if any, is merged and
// acted on too.
func (e *env) advance(d time.Duration) {
	e.t.Helper()
	e.clock.Advance(d)
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		armed, changed := e.clock.watch()
		if armed > 0 && e.svc.settled() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			e.t.Fatal("service did not settle: timer not re-armed or refill not merged")
		}
	}
}

func (e *env) recv() storage.Reminder {
	e.t.Helper()
	select {
	case r := <-e.fired:
		return r
	case <-time.After(guard):
		e.t.Fatal("no reminder fired")
		return storage.Reminder{}
	}
}

func (e *env) expectNone() {
	e.t.Helper()
	select {
	case r := <-e.fired:
		e.t.Fatalf("unexpected fire of %s/%s due %v", r.Instance, r.Name, r.Due)
	default:
	}
}

func (e *env) mark() time.Time {
	e.t.Helper()
	b, err := e.db.GetMeta(storage.LowWaterKey)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := storage.DecodeLowWater(b)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func TestFiresInDueOrder(t *testing.T) {
	e := newEnv(t, 8, nil)
	var rs []storage.Reminder
	for _, i := range rand.Perm(20) {
		rs = append(rs, rem(e.db, fmt.Sprintf("inst-%d", i), "t", t0.Add(time.Duration(i+1)*time.Second)))
	}
	store(t, e.db, rs...)
	e.start()
	e.expectNone()
	e.advance(30 * time.Second)
	var got []time.Time
	for range rs {
		got = append(got, e.recv().Due)
	}
	if !slices.IsSortedFunc(got, time.Time.Compare) {
		t.Fatalf("fired out of due order: %v", got)
	}
	e.expectNone()
}

func TestAddedAfterStartFiresAtDue(t *testing.T) {
	cases := []struct {
		name string
		in   time.Duration // due, from t0
	}{
		{"inside the window", 5 * time.Second},
		{"beyond the window", 2 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 8, nil)
			e.start()
			r := rem(e.db, "late", "timer", t0.Add(c.in))
			store(t, e.db, r)
			e.svc.Added(r)
			e.advance(c.in - time.Second)
			e.expectNone()
			e.advance(time.Second)
			if got := e.recv(); got.Instance != "late" || !got.Due.Equal(r.Due) || string(got.Payload) != "timer" {
				t.Fatalf("fired %+v", got)
			}
		})
	}
}

func TestAddedReplacesDue(t *testing.T) {
	e := newEnv(t, 8, nil)
	r := rem(e.db, "a", "t", t0.Add(5*time.Second))
	store(t, e.db, r)
	e.start()
	moved := r
	moved.Due = t0.Add(10 * time.Second)
	store(t, e.db, moved) // PutReminder deletes the old due key
	e.svc.Added(moved)
	if e.svc.Pending() != 1 {
		t.Fatalf("Pending = %d, want 1", e.svc.Pending())
	}
	e.advance(9 * time.Second)
	e.expectNone()
	e.advance(time.Second)
	if got := e.recv(); !got.Due.Equal(moved.Due) {
		t.Fatalf("fired due %v, want %v", got.Due, moved.Due)
	}
	e.svc.Done(r) // a Done for the old version must not drop the new one
	if e.svc.Pending() != 1 {
		t.Fatalf("Done of the old due dropped the replacement")
	}
}

func TestDonePreventsFiring(t *testing.T) {
	e := newEnv(t, 8, nil)
	keep := rem(e.db, "a", "keep", t0.Add(time.Second))
	drop := rem(e.db, "b", "drop", t0.Add(2*time.Second))
	store(t, e.db, keep, drop)
	e.start()
	if e.svc.Pending() != 2 {
		t.Fatalf("Pending = %d", e.svc.Pending())
	}
	deleteDone(t, e.db, e.svc, drop)
	e.advance(time.Minute)
	if got := e.recv(); got.Name != "keep" {
		t.Fatalf("fired %s", got.Name)
	}
	e.expectNone()
}

func TestRedeliversUntilDone(t *testing.T) {
	e := newEnv(t, 8, func(o *Options) { o.Redeliver = 10 * time.Second })
	r := rem(e.db, "a", "t", t0.Add(time.Second))
	store(t, e.db, r)
	e.start()
	e.advance(time.Second)
	e.recv()
	e.advance(9 * time.Second)
	e.expectNone()
	e.advance(time.Second)
	if got := e.recv(); got.Name != "t" {
		t.Fatalf("redelivered %+v", got)
	}
	e.advance(10 * time.Second)
	e.recv() // and again
	deleteDone(t, e.db, e.svc, r)
	e.advance(time.Minute)
	e.expectNone()
	if e.svc.Pending() != 0 {
		t.Fatalf("Pending = %d after Done", e.svc.Pending())
	}
}

func TestRestartAfterCrashRefires(t *testing.T) {
	e := newEnv(t, 8, nil)
	var rs []storage.Reminder
	for i := range 200 {
		rs = append(rs, rem(e.db, fmt.Sprintf("i%d", i%17), fmt.Sprintf("t%d", i), t0.Add(time.Duration(i+1)*time.Second)))
	}
	store(t, e.db, rs...)
	e.start()
	// Run for 150 s: 150 fire; the actor deletes only every other one.
	// (Undeleted ones are redelivered every 30 s meanwhile.)
	deleted := map[string]bool{}
	for range 150 {
		e.advance(time.Second)
		for len(e.fired) > 0 {
			r := <-e.fired
			if _, seen := deleted[r.Name]; seen {
				continue // a redelivery
			}
			deleted[r.Name] = len(deleted)%2 == 0
			if deleted[r.Name] {
				deleteDone(t, e.db, e.svc, r)
			}
		}
	}
	if len(deleted) != 150 {
		t.Fatalf("%d fired in 150 s, want 150", len(deleted))
	}
	if m := e.mark(); !m.After(t0.Add(-time.Hour)) {
		t.Fatalf("low-water mark did not advance while running: %v", m)
	}
	// Crash: the loop stops, nothing is persisted on the way out.
	e.svc.halt()
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}

	e.db = openDB(t, e.dir, 8)
	t.Cleanup(func() { _ = e.db.Close() })
	e.clock.Advance(time.Hour)
	e.svc = e.newService(nil)
	e.start()
	want := map[string]bool{}
	for _, r := range rs {
		if !deleted[r.Name] {
			want[r.Name] = true
		}
	}
	got := map[string]bool{}
	for len(got) < len(want) {
		r := e.recv()
		if !want[r.Name] {
			t.Fatalf("deleted reminder %s fired after restart", r.Name)
		}
		got[r.Name] = true
	}
}

func TestWindowCapFiresAllExactlyOnce(t *testing.T) {
	const n, maxMem = 10_000, 500
	e := newEnv(t, 16, func(o *Options) { o.MaxInMemory = maxMem })
	var rs []storage.Reminder
	for i := range n {
		// All due, spread over ~10 s before now.
		rs = append(rs, rem(e.db, fmt.Sprintf("w%d", i%997), fmt.Sprintf("t%d", i), t0.Add(-time.Duration(n-i)*time.Millisecond)))
	}
	store(t, e.db, rs...)

	var peak atomic.Int64
	fired := make(chan storage.Reminder, n)
	e.svc = e.newService(func(o *Options) {
		o.MaxInMemory = maxMem
		o.Fire = func(r storage.Reminder) {
			if p := int64(e.svc.Pending()); p > peak.Load() {
				peak.Store(p)
			}
			fired <- r
		}
	})
	e.start()

	// The consumer: delete what fired in small batches, then Done.
	var wg sync.WaitGroup
	count := map[string]int{}
	var order []time.Time
	wg.Add(1)
	go func() {
		defer wg.Done()
		for len(count) < n {
			var batch []storage.Reminder
			select {
			case r := <-fired:
				batch = append(batch, r)
			case <-time.After(guard):
				t.Errorf("stalled after %d of %d", len(count), n)
				return
			}
			for len(batch) < 100 && len(fired) > 0 {
				batch = append(batch, <-fired)
			}
			for _, r := range batch {
				count[r.Name]++
				order = append(order, r.Due)
			}
			deleteDone(t, e.db, e.svc, batch...)
		}
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	for name, c := range count {
		if c != 1 {
			t.Fatalf("%s fired %d times", name, c)
		}
	}
	if p := peak.Load(); p > maxMem || p == 0 {
		t.Fatalf("peak in memory %d, cap %d", p, maxMem)
	}
	if !slices.IsSortedFunc(order, time.Time.Compare) {
		t.Fatal("the capped window fired out of due order")
	}
	if e.svc.Pending() != 0 || len(fired) != 0 {
		t.Fatalf("Pending %d, %d extra fires", e.svc.Pending(), len(fired))
	}
}

// TestCommitsDuringARefillScan: a refill scans without the lock, so commits land
// between its snapshot and its merge. A reminder deleted meanwhile does not come
// back, one replaced fires only at its new time, one stored meanwhile in the
// range the scan covered (which Added leaves to the scan) is loaded all the same,
// and one of a partition dropped meanwhile (moved away) is not loaded.
func TestCommitsDuringARefillScan(t *testing.T) {
	e := newEnv(t, 8, nil)
	deleted := rem(e.db, "i1", "deleted", t0.Add(40*time.Second))
	replaced := rem(e.db, "i2", "replaced", t0.Add(38*time.Second))
	var moved2 storage.Reminder // a reminder of a partition none of the others is in
	for i := 0; moved2.Instance == ""; i++ {
		r := rem(e.db, fmt.Sprintf("m%d", i), "moved", t0.Add(36*time.Second))
		if r.Partition != deleted.Partition && r.Partition != replaced.Partition && r.Partition != rem(e.db, "i3", "", t0).Partition {
			moved2 = r
		}
	}
	store(t, e.db, deleted, replaced, moved2)
	e.start() // loads [t0, t0+30s): nothing
	e.advance(0)
	scanned, resume := make(chan struct{}), make(chan struct{})
	e.svc.mu.Lock()
	e.svc.afterScan = func() { scanned <- struct{}{}; <-resume }
	e.svc.mu.Unlock()

	e.clock.Advance(15 * time.Second) // the refill scans [t0+30s, t0+45s)
	select {
	case <-scanned:
	case <-time.After(guard):
		t.Fatal("no refill")
	}
	deleteDone(t, e.db, e.svc, deleted)
	moved := replaced
	moved.Due = t0.Add(100 * time.Second)
	b := e.db.NewBatch()
	b.DeleteReminder(replaced)
	if err := b.PutReminder(moved); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	e.svc.Done(replaced)
	e.svc.Added(moved)
	late := rem(e.db, "i3", "late", t0.Add(35*time.Second))
	store(t, e.db, late)
	e.svc.Added(late)
	e.svc.DropPartition(moved2.Partition) // moved to another node meanwhile
	e.svc.mu.Lock()
	e.svc.afterScan = nil
	e.svc.mu.Unlock()
	close(resume)
	e.advance(0)

	e.advance(35 * time.Second) // t0+50s
	if r := e.recv(); r.Name != "late" {
		t.Fatalf("fired %s, want late", r.Name)
	}
	e.expectNone()
	deleteDone(t, e.db, e.svc, late)
	e.advance(49 * time.Second) // t0+99s
	e.expectNone()
	e.advance(time.Second)
	if r := e.recv(); r.Name != "replaced" || !r.Due.Equal(moved.Due) {
		t.Fatalf("fired %s due %v, want replaced due %v", r.Name, r.Due, moved.Due)
	}
}

func TestLowWaterMarkNeverPassesLiveReminder(t *testing.T) {
	e := newEnv(t, 8, nil)
	a := rem(e.db, "a", "a", t0.Add(10*time.Second))
	b := rem(e.db, "b", "b", t0.Add(20*time.Second))
	c := rem(e.db, "c", "c", t0.Add(5*time.Minute))
	store(t, e.db, a, b, c)
	e.start()
	live := map[string]storage.Reminder{"a": a, "b": b, "c": c}
	var last time.Time
	check := func(step string) {
		t.Helper()
		m := e.mark()
		if m.Before(last) {
			t.Fatalf("%s: mark moved back from %v to %v", step, last, m)
		}
		last = m
		for _, r := range live {
			if m.After(r.Due) {
				t.Fatalf("%s: mark %v passed live reminder %s due %v", step, m, r.Name, r.Due)
			}
		}
	}

	e.advance(20 * time.Second) // a and b fire
	e.recv()
	e.recv()
	deleteDone(t, e.db, e.svc, a)
	delete(live, "a")
	for range 120 { // two minutes in 1 s refills; b is in flight and not Done
		e.advance(time.Second)
		check("b in flight")
		for len(e.fired) > 0 {
			<-e.fired // redeliveries of b
		}
	}
	if !last.Equal(b.Due) {
		t.Fatalf("mark %v, want it held at b's due %v", last, b.Due)
	}
	deleteDone(t, e.db, e.svc, b)
	delete(live, "b")
	e.advance(time.Second)
	check("b done")
	if want := e.clock.Now().Add(-markLag); !last.Equal(want) {
		t.Fatalf("mark %v, want now-1m = %v", last, want)
	}
	if f := e.svc.Floor(); f.Before(last) || !f.Equal(e.clock.Now().Add(-floorSlack)) {
		t.Fatalf("Floor %v, mark %v", f, last)
	}
	e.advance(5 * time.Minute) // c fires, stays in flight
	e.recv()
	for range 10 {
		e.advance(10 * time.Second)
		check("c in flight")
	}
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	check("after Close")
	if !last.Equal(c.Due) {
		t.Fatalf("mark %v after Close, want c's due %v", last, c.Due)
	}
}

// TestHoldKeepsTheMarkBehindASlowStep: a step that takes its floor, then takes
// minutes to commit (a long replay, a slow disk) stores its reminder at that
// floor; the mark persisted meanwhile must not pass it, or a crash after the
// commit would restart the scan past the reminder and never fire it.
func TestHoldKeepsTheMarkBehindASlowStep(t *testing.T) {
	e := newEnv(t, 8, nil)
	e.start()
	h := e.svc.Hold()
	if !h.Floor.Equal(t0.Add(-floorSlack)) {
		t.Fatalf("floor %v, want now-30s", h.Floor)
	}
	for range 5 { // five minutes of refills, each persisting the mark
		e.advance(time.Minute)
	}
	if m := e.mark(); m.After(h.Floor) {
		t.Fatalf("mark %v passed the floor %v of a step still holding it", m, h.Floor)
	}
	r := rem(e.db, "slow", "timer", h.Floor)
	store(t, e.db, r)
	e.svc.Added(r)
	e.svc.Release(h)
	if n := e.svc.heldCount(); n != 0 {
		t.Fatalf("%d holds left", n)
	}
	e.svc.Release(Hold{}) // the zero Hold: nothing held, nothing to release
	// Crash before the reminder is Done: it fires after the restart.
	e.svc.halt()
	e.svc = e.newService(nil)
	e.start()
	if got := e.recv(); got.Instance != "slow" {
		t.Fatalf("fired %s/%s", got.Instance, got.Name)
	}
	// Released, the hold lets the mark move on: at the next pass that
	// persists it (the Done may land after the pass the first advance makes).
	deleteDone(t, e.db, e.svc, r)
	for i := 0; ; i++ {
		e.advance(time.Second)
		m, want := e.mark(), e.clock.Now().Add(-markLag)
		if m.Equal(want) {
			break
		}
		if i == 9 {
			t.Fatalf("mark %v ten seconds after the release, want now-1m = %v", m, want)
		}
	}
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir, 4)
	s := New(Options{DB: db, Clock: NewFakeClock(t0), Fire: func(storage.Reminder) {}, Logger: quiet()})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("second Start accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t)
}

func TestStartNeedsDBAndFire(t *testing.T) {
	if err := New(Options{}).Start(); err == nil {
		t.Fatal("Start without DB and Fire accepted")
	}
}

// BenchmarkFire measures fires per second of a backlog of b.N reminders that
// are all due, with the real clock, default window and cap, 256 partitions.
func BenchmarkFire(b *testing.B) {
	db := openDB(b, b.TempDir(), 0)
	defer db.Close()
	now := time.Now()
	rs := make([]storage.Reminder, b.N)
	for i := range rs {
		rs[i] = rem(db, fmt.Sprintf("i%d", i), "t", now.Add(-time.Duration(b.N-i)*time.Microsecond))
	}
	store(b, db, rs...)
	var s *Service
	var n atomic.Int64
	all := make(chan struct{})
	s = New(Options{DB: db, Logger: quiet(), Fire: func(r storage.Reminder) {
		s.Done(r) // the benchmark measures the service, not the actors' deletes
		if n.Add(1) == int64(b.N) {
			close(all)
		}
	}})
	b.ResetTimer()
	start := time.Now()
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	<-all
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "fires/s")
	b.StopTimer()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFireFromFullWindow measures the service's in-memory work per fire
// with a full window (100,000 reminders in memory, as in the bench's scenario
// 3c): pop the earliest, Done it, add one due later. The reminders were added
// in random order, so the heap's entries are spread over the Go heap the way
// a refill leaves them.
func BenchmarkFireFromFullWindow(b *testing.B) {
	const inMemory = defaultMaxInMemory
	s := New(Options{Logger: quiet(), Fire: func(storage.Reminder) {}})
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := func(i int) storage.Reminder {
		return storage.Reminder{Partition: uint16(i % 256), Instance: fmt.Sprintf("instance-%08d", i), Name: "timer-1",
			Due: base.Add(time.Duration(i) * time.Microsecond)}
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(inMemory)
	for _, i := range order {
		s.pushLocked(&entry{r: r(i), fireAt: r(i).Due})
	}
	var due []storage.Reminder
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		due, _ = s.popDue(base.Add(time.Duration(i)*time.Microsecond), due[:0])
		if len(due) != 1 || due[0].Instance != r(i).Instance {
			b.Fatalf("fire %d: popped %d reminders, want %s", i, len(due), r(i).Instance)
		}
		s.Done(due[0])
		next := r(i + inMemory)
		s.mu.Lock()
		s.pushLocked(&entry{r: next, fireAt: next.Due})
		s.mu.Unlock()
	}
}
