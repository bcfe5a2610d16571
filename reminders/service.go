// Package reminders decides when durable reminders fire. Callers persist and
// delete reminders in their own storage batches (so a reminder is created and
// removed atomically with the history change that wants it) and tell the Service
// afterwards; the Service keeps only the reminders due soon in memory, refilled
// by range scans from a persisted low-water mark, and fires each at least once.
package reminders

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weftrt/weft/storage"
)

const (
	defaultWindow      = 30 * time.Second
	defaultMaxInMemory = 100_000
	defaultRefill      = time.Second
	defaultRedeliver   = 30 * time.Second

	// markLag keeps the low-water mark at least this far behind the clock, so a
	// reminder committed right now with a due time near now is never behind it.
	markLag = time.Minute
	// floorSlack is how far behind now Floor is: a reminder due before it is
	// stored at it (it fires at once either way).
	floorSlack = 30 * time.Second
)

// Options configures a Service.
type Options struct {
	DB    *storage.DB
	Clock Clock // nil means RealClock
	// Fire is called from the service goroutine, one reminder at a time, in due
	// order. It must not block for long: enqueue and return. Fire may call Done.
	Fire func(storage.Reminder)
	// Window: reminders due before now+Window are loaded (default 30 s).
	Window time.Duration
	// MaxInMemory caps the reminders held in memory, fired-but-not-done ones
	// included (default 100,000).
	MaxInMemory int
	// RefillInterval is how often the window is refilled (default 1 s). It is
	// refilled sooner when a capped window drains.
	RefillInterval time.Duration
	// Redeliver: a fired reminder not Done within this is fired again (default 30 s).
	Redeliver time.Duration
	Logger    *slog.Logger
}

// Service fires durable reminders. Create it with New, then Start; Close stops it.
type Service struct {
	db        *storage.DB
	clock     Clock
	fire      func(storage.Reminder)
	window    time.Duration
	max       int
	refillInt time.Duration
	redeliver time.Duration
	log       *slog.Logger

	mu       sync.Mutex
	q        fireQueue      // by fireAt: due time, or next redelivery when in flight
	byKey    map[key]*entry // every reminder in memory
	inFlight flightList     // those fired and not Done yet
	horizon  time.Time      // every live reminder due before it is in memory (or its Added is on its way)
	capped   bool           // the last refill stopped at MaxInMemory
	mark     time.Time      // the low-water mark last persisted; only moves forward
	holds    map[int64]int  // floors handed out by Hold and not released (unix nanos → count)
	state    int            // stateNew, stateRunning, stateClosed
	// A refill scans the store without the lock (firing, Added and Done go on
	// meanwhile); what Added and Done report during the scan is kept in touched
	// and reconciled with the scan's result when it is merged.
	refilling    bool
	touched      map[key]touch
	spareTouched map[key]touch   // touched's storage between refills
	dropped      map[uint16]bool // partitions dropped during the scan
	refills      sync.WaitGroup
	refillSeq    uint64 // refills merged
	passSeq      uint64 // refillSeq when the loop's last finished pass began
	passes       uint64 // the loop's passes so far
	afterScan    func() // tests: runs between a refill's scan and its merge

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

const (
	stateNew = iota
	stateRunning
	stateClosed
)

type key struct {
	part           uint16
	instance, name string
}

// touch is the last thing Added or Done said about a key during a refill scan.
type touch struct {
	added bool
	r     storage.Reminder // added: the reminder; done: the version deleted
}

type entry struct {
	r       storage.Reminder
	fireAt  time.Time
	firedAt time.Time // zero until fired
	index   int       // in Service.q

	flightPrev, flightNext *entry // in Service.inFlight, once fired
}

// flightList is an intrusive list of the entries fired and not Done: the low-
// water mark looks at each of them. A map cost a hash of the key on every fire
// and on every Done.
type flightList struct{ head *entry }

func (l *flightList) add(e *entry) {
	e.flightPrev, e.flightNext = nil, l.head
	if l.head != nil {
		l.head.flightPrev = e
	}
	l.head = e
}

func (l *flightList) remove(e *entry) {
	if e.flightPrev != nil {
		e.flightPrev.flightNext = e.flightNext
	} else {
		l.head = e.flightNext
	}
	if e.flightNext != nil {
		e.flightNext.flightPrev = e.flightPrev
	}
	e.flightPrev, e.flightNext = nil, nil
}

func keyOf(r storage.Reminder) key { return key{r.Partition, r.Instance, r.Name} }

// New returns a stopped Service with defaults filled in.
func New(opts Options) *Service {
	s := &Service{
		db:        opts.DB,
		clock:     opts.Clock,
		fire:      opts.Fire,
		window:    opts.Window,
		max:       opts.MaxInMemory,
		refillInt: opts.RefillInterval,
		redeliver: opts.Redeliver,
		log:       opts.Logger,
		byKey:     make(map[key]*entry),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = RealClock{}
	}
	if s.window <= 0 {
		s.window = defaultWindow
	}
	if s.max <= 0 {
		s.max = defaultMaxInMemory
	}
	if s.refillInt <= 0 {
		s.refillInt = defaultRefill
	}
	if s.redeliver <= 0 {
		s.redeliver = defaultRedeliver
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "reminders")
	return s
}

// Start loads the persisted low-water mark, fills the window and starts the
// service goroutine.
func (s *Service) Start() error {
	if s.db == nil || s.fire == nil {
		return errors.New("reminders: start: Options.DB and Options.Fire are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return errors.New("reminders: start: already started")
	}
	b, err := s.db.GetMeta(storage.LowWaterKey)
	switch {
	case err == nil:
		if s.mark, err = storage.DecodeLowWater(b); err != nil {
			return fmt.Errorf("reminders: start: %w", err)
		}
	case errors.Is(err, storage.ErrNotFound):
		// A new store: scan from the beginning.
	default:
		return fmt.Errorf("reminders: start: read low-water mark: %w", err)
	}
	s.horizon = s.mark
	now := s.clock.Now()
	plan := s.planRefillLocked(now)
	cand, err := s.scan(plan)
	if err != nil {
		return fmt.Errorf("reminders: start: %w", err)
	}
	s.loadLocked(cand, appendEntries(nil, cand))
	if err := s.finishRefillLocked(plan, cand, now); err != nil {
		return fmt.Errorf("reminders: start: %w", err)
	}
	s.state = stateRunning
	go s.run()
	s.log.Debug("started", "lowwater", s.mark, "loaded", len(s.byKey))
	return nil
}

// Close stops the service goroutine, waits for it and persists the low-water mark.
func (s *Service) Close() error {
	if !s.halt() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.persistMarkLocked(s.clock.Now())
}

// halt stops the goroutine without persisting anything (what a crash leaves
// behind); it reports whether the service was running.
func (s *Service) halt() bool {
	s.mu.Lock()
	running := s.state == stateRunning
	s.state = stateClosed
	s.mu.Unlock()
	if !running {
		return false
	}
	close(s.stop)
	<-s.done
	s.refills.Wait()
	return true
}

// Added tells the service about reminders just committed. One with the same
// (partition, instance, name) as a reminder in memory replaces it. Reminders due
// beyond the loaded window are left to a later scan.
func (s *Service) Added(rs ...storage.Reminder) { s.AddedAndRelease(Hold{}, rs...) }

// AddedAndRelease is Added, then Release(h), under one lock: a step that held
// the mark for its reminders lets go of it as soon as the service knows them.
func (s *Service) AddedAndRelease(h Hold, rs ...storage.Reminder) {
	// The entries are made before the lock is taken: an allocation can make the
	// goroutine assist the garbage collector, or wait for it, and every commit
	// and the firing loop would wait for the lock meanwhile.
	var small [4]*entry // most commits add one reminder: no slice to allocate
	fresh := appendEntries(small[:0], rs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(h)
	wake := false
	for i, r := range rs {
		if s.refilling {
			s.touched[keyOf(r)] = touch{added: true, r: r}
		}
		s.removeLocked(keyOf(r))
		if r.Due.Before(s.mark) {
			s.log.Warn("reminder stored behind the low-water mark; it may not survive a restart (store it at Floor())",
				"instance", r.Instance, "name", r.Name, "due", r.Due, "lowwater", s.mark)
		}
		if !r.Due.Before(s.horizon) {
			continue // the refill scan will find it
		}
		if len(s.byKey) >= s.max {
			// No room: forget it and pull the horizon back so the scan finds it.
			s.horizon = r.Due
			s.capped = true
			continue
		}
		e := fresh[i]
		s.pushLocked(e)
		wake = wake || e.index == 0
	}
	if wake {
		s.wake()
	}
}

// Done tells the service that reminders were deleted (typically after they
// fired): they are dropped from memory and never redelivered. r.Due must be the
// due time it was stored with, so a Done for an old version does not drop a
// replacement.
func (s *Service) Done(rs ...storage.Reminder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		k := keyOf(r)
		if e, ok := s.byKey[k]; ok && e.r.Due.Equal(r.Due) {
			s.removeLocked(k)
		}
		if s.refilling {
			if t, ok := s.touched[k]; !ok || !t.added || t.r.Due.Equal(r.Due) {
				s.touched[k] = touch{r: r}
			}
		}
	}
	if s.wantRefillLocked() {
		s.wake()
	}
}

// DropPartition forgets the in-memory reminders of partition part: it moved to
// another node, whose service fires them now.
func (s *Service) DropPartition(part uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.byKey {
		if e.r.Partition == part {
			s.removeLocked(k)
		}
	}
	if s.refilling {
		s.dropped[part] = true
	}
	if s.wantRefillLocked() {
		s.wake()
	}
}

// Pending is the number of reminders in memory, in flight included.
func (s *Service) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}

// Floor is the earliest due time a new reminder may be stored with: callers
// store a reminder due before Floor() at Floor() instead (it fires at once
// either way). A caller that stores reminders takes a Hold instead, so the
// low-water mark cannot pass its floor before it has called Added, however
// long it takes.
func (s *Service) Floor() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.floorLocked()
}

func (s *Service) floorLocked() time.Time {
	f := s.clock.Now().Add(-floorSlack)
	if f.Before(s.mark) {
		f = s.mark // a clock that went back must not let a reminder fall behind the mark
	}
	return f
}

// A Hold keeps the low-water mark at or below its Floor until it is released.
type Hold struct {
	Floor time.Time
	at    int64
	held  bool
}

// Hold returns the floor for reminders about to be stored and keeps the
// low-water mark from passing it until Release: the persisted mark is where a
// restart starts scanning, so a reminder committed behind it would never fire.
// Release it after Added (or once nothing was stored), or pass it to
// AddedAndRelease.
func (s *Service) Hold() Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.floorLocked()
	at := f.UnixNano()
	if s.holds == nil {
		s.holds = make(map[int64]int)
	}
	s.holds[at]++
	return Hold{Floor: f, at: at, held: true}
}

// Release ends a Hold; releasing the zero Hold does nothing.
func (s *Service) Release(h Hold) {
	if !h.held {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(h)
}

func (s *Service) releaseLocked(h Hold) {
	if !h.held {
		return
	}
	if s.holds[h.at]--; s.holds[h.at] <= 0 {
		delete(s.holds, h.at)
	}
}

// heldCount is the number of holds not released.
func (s *Service) heldCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.holds {
		n += c
	}
	return n
}

func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// maxReusedPass bounds the firing pass kept for reuse by the service loop.
const maxReusedPass = 4096

func (s *Service) run() {
	defer close(s.done)
	timer := s.clock.NewTimer(s.refillInt)
	defer timer.Stop()
	nextRefill := s.clock.Now().Add(s.refillInt)
	var due []storage.Reminder // reused pass after pass: it was 3% of a fire's bytes
	for {
		now := s.clock.Now()
		var seen uint64
		due, seen = s.popDue(now, due[:0])
		for i, r := range due {
			s.fire(r)
			due[i] = storage.Reminder{} // let the fired reminder's strings go
		}
		if cap(due) > maxReusedPass {
			due = nil // a catch-up pass after an outage: do not keep its size
		}
		s.mu.Lock()
		s.passSeq = seen
		s.passes++
		if !s.refilling && (!now.Before(nextRefill) || s.wantRefillLocked()) {
			s.startRefillLocked(now)
			nextRefill = now.Add(s.refillInt)
		}
		next := nextRefill
		if len(s.q) > 0 && s.q.first().fireAt.Before(next) {
			next = s.q.first().fireAt
		}
		s.mu.Unlock()
		if dt, ok := timer.(deadlineTimer); ok {
			dt.resetAt(next)
		} else {
			timer.Reset(next.Sub(now))
		}
		select {
		case <-timer.C():
		case <-s.kick:
		case <-s.stop:
			return
		}
	}
}

// popDue marks every reminder due at now as in flight, schedules its
// redelivery, and appends them to out in due order for firing outside the
// lock; it returns them with the count of refills merged so far.
func (s *Service) popDue(now time.Time, out []storage.Reminder) ([]storage.Reminder, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.q) > 0 && !s.q.first().fireAt.After(now) {
		e := s.q.first()
		if e.firedAt.IsZero() {
			s.inFlight.add(e)
		} else {
			s.log.Debug("redelivering reminder", "instance", e.r.Instance, "name", e.r.Name, "fired", e.firedAt)
		}
		e.firedAt = now
		e.fireAt = now.Add(s.redeliver)
		s.q.fix(0)
		out = append(out, e.r)
	}
	return out, s.refillSeq
}

// settled reports that the loop has run (a test that moves a FakeClock before
// the loop read it first would have its move missed), no refill is running,
// and the loop has made a pass since the last one was merged (tests with a
// FakeClock wait for it).
func (s *Service) settled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.passes > 0 && !s.refilling && s.passSeq == s.refillSeq && len(s.kick) == 0
}

// wantRefillLocked: a capped window refills as soon as half of it has drained
// instead of waiting for the next interval. Half, not one: each refill scans
// every partition, so refilling per Done would thrash.
func (s *Service) wantRefillLocked() bool {
	return s.capped && s.state == stateRunning && len(s.byKey) <= s.max/2
}

// refillPlan is what a refill scans for: at most room reminders due in
// [from, to).
type refillPlan struct {
	from, to time.Time
	room     int
}

func (s *Service) planRefillLocked(now time.Time) refillPlan {
	return refillPlan{from: s.horizon, to: now.Add(s.window), room: s.max - len(s.byKey)}
}

// startRefillLocked scans for the next reminders on a goroutine of its own: a
// scan of every partition takes long enough (100 ms and more with a million
// pending) that firing, and every commit's Added and Done, must not wait on it.
func (s *Service) startRefillLocked(now time.Time) {
	plan := s.planRefillLocked(now)
	s.refilling = true
	// The map of keys touched during the scan is kept from refill to refill:
	// grown afresh each time, it grew under the lock, in Done and Added.
	if s.spareTouched == nil {
		s.spareTouched = make(map[key]touch)
	}
	s.touched, s.dropped = s.spareTouched, make(map[uint16]bool)
	s.refills.Add(1)
	afterScan := s.afterScan
	go func() {
		defer s.refills.Done()
		cand, err := s.scan(plan)
		if afterScan != nil {
			afterScan()
		}
		var fresh []*entry
		for i := 0; err == nil && i < len(cand); i += mergeChunk {
			chunk := cand[i:min(i+mergeChunk, len(cand))]
			fresh = appendEntries(fresh[:0], chunk) // outside the lock, like Added's
			s.mu.Lock()
			s.loadLocked(chunk, fresh)
			s.mu.Unlock()
		}
		s.mu.Lock()
		if err == nil {
			err = s.finishRefillLocked(plan, cand, now)
		}
		clear(s.touched)
		s.refilling, s.touched, s.dropped = false, nil, nil
		s.refillSeq++
		s.mu.Unlock()
		if err != nil {
			s.log.Warn("refill failed; retrying", "err", err, "in", s.refillInt)
		}
		s.wake() // what was loaded may be due before the timer the loop set
	}()
}

// scan returns the plan.room reminders due earliest in [plan.from, plan.to)
// over all partitions (fewer if there are fewer), in due order. It reads only
// the store: reminders already in memory may be among them.
func (s *Service) scan(plan refillPlan) ([]storage.Reminder, error) {
	if plan.room <= 0 || !plan.from.Before(plan.to) {
		return nil, nil
	}
	cand, err := s.db.EarliestDue(plan.from, plan.to, plan.room)
	if err != nil {
		return nil, fmt.Errorf("refill: %w", err)
	}
	return cand, nil
}

// mergeChunk bounds how many of a scan's reminders are loaded per hold of the
// lock: loading 20,000 at once held it for 15 ms and more, while every
// commit's Done and Added and the firing loop waited.
const mergeChunk = 1024

// loadLocked loads reminders a scan found. The scan's snapshot may predate
// commits whose Added or Done came during it: a key touched meanwhile is taken
// from touched, not from the scan (nothing deleted comes back, nothing replaced
// is lost), and a partition dropped meanwhile (moved to another node) is not
// loaded. Until finishRefillLocked, the scan's range stays beyond the horizon,
// so Added keeps leaving it to touched: loading may take several holds of the
// lock.
func (s *Service) loadLocked(rs []storage.Reminder, fresh []*entry) {
	for i, r := range rs {
		k := keyOf(r)
		if t, ok := s.touched[k]; ok && (t.added || t.r.Due.Equal(r.Due)) {
			continue
		}
		if _, ok := s.byKey[k]; ok || s.dropped[r.Partition] {
			continue
		}
		s.pushLocked(fresh[i])
	}
}

// appendEntries appends to dst the entries for rs, to be pushed under the lock.
func appendEntries(dst []*entry, rs []storage.Reminder) []*entry {
	for _, r := range rs {
		dst = append(dst, &entry{r: r, fireAt: r.Due})
	}
	return dst
}

// finishRefillLocked moves the horizon past a loaded scan, loads what was
// added in its range during it, and persists the low-water mark.
func (s *Service) finishRefillLocked(plan refillPlan, cand []storage.Reminder, now time.Time) error {
	if plan.room <= 0 {
		s.capped = true
		return s.persistMarkLocked(now)
	}
	if !plan.from.Before(plan.to) {
		return s.persistMarkLocked(now)
	}
	horizon, capped := plan.to, false
	if len(cand) == plan.room {
		// Full: everything due before the latest loaded one is in memory;
		// others due at that same time are found by the next scan.
		horizon, capped = cand[len(cand)-1].Due, true
	}
	if s.horizon.Before(plan.from) {
		// Added found no room during the scan and pulled the horizon back.
		horizon, capped = minTime(horizon, s.horizon), true
	}
	for k, t := range s.touched {
		if !t.added || s.byKey[k] != nil || !t.r.Due.Before(horizon) {
			continue // in memory already, deleted, or for a later scan
		}
		if len(s.byKey) >= s.max {
			horizon, capped = t.r.Due, true // no room: the next scan finds it
			continue
		}
		s.pushLocked(&entry{r: t.r, fireAt: t.r.Due})
	}
	s.horizon, s.capped = horizon, capped
	s.log.Debug("refilled", "scanned", len(cand), "pending", len(s.byKey), "horizon", s.horizon, "capped", s.capped)
	return s.persistMarkLocked(now)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// persistMarkLocked writes min(earliest due in memory, horizon, now−markLag,
// the floor of every Hold) as
// the low-water mark if that moves it forward. The write is not synced: a lost
// mark is only too low, which costs a longer first scan after a crash. The
// earliest due is bounded without a pass over every reminder in memory: one
// not fired is due at its place in the heap, no earlier than the heap's root;
// the fired ones, few, are looked at one by one.
func (s *Service) persistMarkLocked(now time.Time) error {
	m := now.Add(-markLag)
	if s.horizon.Before(m) {
		m = s.horizon
	}
	if len(s.q) > 0 && s.q.first().fireAt.Before(m) {
		m = s.q.first().fireAt
	}
	for e := s.inFlight.head; e != nil; e = e.flightNext {
		if e.r.Due.Before(m) {
			m = e.r.Due
		}
	}
	for at := range s.holds {
		if h := time.Unix(0, at); h.Before(m) {
			m = h
		}
	}
	if !m.After(s.mark) {
		return nil
	}
	if err := s.db.PutMeta(storage.LowWaterKey, storage.EncodeLowWater(m), false); err != nil {
		return fmt.Errorf("persist low-water mark: %w", err)
	}
	s.mark = m
	return nil
}

func (s *Service) pushLocked(e *entry) {
	s.byKey[keyOf(e.r)] = e
	s.q.push(e)
}

func (s *Service) removeLocked(k key) {
	e, ok := s.byKey[k]
	if !ok {
		return
	}
	delete(s.byKey, k)
	if !e.firedAt.IsZero() {
		s.inFlight.remove(e)
	}
	s.q.remove(e.index)
}
