package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weftrt/weft/placement"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t *testing.T, dir string, parts int) *DB {
	t.Helper()
	db, err := Open(Options{Dir: dir, Partitions: parts, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func commit(t *testing.T, db *DB, fill func(b *Batch)) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	fill(b)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// putLegacyReminder writes r as a store of version 1 did: its due-time key and
// a reverse entry under its instance, which a row of version 1 is read with.
func putLegacyReminder(t *testing.T, b *Batch, r Reminder) {
	t.Helper()
	must(t, b.PutReminder(r))
	due := encodeTime(r.Due)
	b.set("put reminder", r.Instance, reverseReminderKey(r.Partition, r.Instance, r.Name), due[:])
}

// rowWith is a running instance's row listing reminders rs inline (version 2),
// with its history in keys.
func rowWith(id string, created time.Time, rs ...Reminder) *InstanceRecord {
	row := &InstanceRecord{ID: id, Name: "W", Status: Running, CreatedAt: created}
	in := &Inline{HistoryKeys: true}
	for _, r := range rs {
		in.Reminders = append(in.Reminders, InlineReminder{Name: r.Name, Due: r.Due})
	}
	row.SetInline(in)
	return row
}

// allKeys returns every key in the store, for tests that must prove something is gone.
func allKeys(t *testing.T, db *DB) []string {
	t.Helper()
	var keys []string
	must(t, db.scan(nil, nil, func(k, _ []byte) error {
		keys = append(keys, string(k))
		return nil
	}))
	return keys
}

func TestReopenKeepsDataAndRefusesOtherPartitionCount(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, Partitions: 16, Logger: quietLogger()})
	must(t, err)
	if db.Partitions() != 16 {
		t.Fatalf("Partitions() = %d", db.Partitions())
	}
	commit(t, db, func(b *Batch) {
		must(t, b.PutInstance(3, &InstanceRecord{ID: "a", Name: "W", CreatedAt: t0}))
		b.AppendHistory(3, "a", 0, []byte("e0"))
	})
	must(t, db.PutMeta("custom", []byte("v"), true))
	must(t, db.Close())
	if err := db.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := db.Instance(3, "a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}

	_, err = Open(Options{Dir: dir, Partitions: 32, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "16") || !strings.Contains(err.Error(), "32") {
		t.Fatalf("open with another partition count: %v; want an error naming 16 and 32", err)
	}
	_, err = Open(Options{Dir: dir, Logger: quietLogger()}) // default 256
	if err == nil {
		t.Fatal("open with the default partition count accepted a 16-partition store")
	}

	db = openTest(t, dir, 16)
	rec, err := db.Instance(3, "a")
	must(t, err)
	if rec.Name != "W" || !rec.CreatedAt.Equal(t0) {
		t.Fatalf("reopened row: %+v", rec)
	}
	v, err := db.GetMeta("custom")
	if err != nil || string(v) != "v" {
		t.Fatalf("GetMeta = %q, %v", v, err)
	}
	if _, err := db.GetMeta("nothing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing meta: %v", err)
	}
	if err := db.PutMeta("meta", nil, false); err == nil {
		t.Fatal("PutMeta overwrote the store's own meta record")
	}
}

func TestInstanceNotFound(t *testing.T) {
	db := openTest(t, t.TempDir(), 4)
	if _, err := db.Instance(1, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if _, err := db.Instance(4, "nope"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("out-of-range partition: %v", err)
	}
}

func TestHistoryInSeqOrder(t *testing.T) {
	db := openTest(t, t.TempDir(), 4)
	const n = 1000 // well past 256, where a little-endian or varint key would misorder
	seqs := rand.Perm(n)
	for i := 0; i < n; i += 100 {
		commit(t, db, func(b *Batch) {
			for _, s := range seqs[i : i+100] {
				b.AppendHistory(2, "h", uint64(s), []byte(fmt.Sprintf("ev%d", s)))
			}
			b.AppendHistory(2, "h2", uint64(i), []byte("other")) // neighbour id, must not show up
		})
	}
	var got []uint64
	must(t, db.History(2, "h", func(seq uint64, ev []byte) error {
		if string(ev) != fmt.Sprintf("ev%d", seq) {
			return fmt.Errorf("seq %d has %q", seq, ev)
		}
		got = append(got, seq)
		return nil
	}))
	if len(got) != n || !slices.IsSorted(got) || got[0] != 0 || got[n-1] != n-1 {
		t.Fatalf("got %d events, sorted=%v", len(got), slices.IsSorted(got))
	}

	stop := errors.New("stop")
	calls := 0
	if err := db.History(2, "h", func(uint64, []byte) error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("callback error: got %v after %d calls, want it unwrapped after 1", err, calls)
	}

	commit(t, db, func(b *Batch) { b.DeleteHistory(2, "h", uint64(n)) }) // long: one range deletion
	must(t, db.History(2, "h", func(seq uint64, _ []byte) error { return fmt.Errorf("seq %d left after DeleteHistory", seq) }))
	// Short histories are deleted key by key; the neighbour must survive that too.
	commit(t, db, func(b *Batch) {
		for seq := range uint64(5) {
			b.AppendHistory(2, "h", seq, []byte("short"))
		}
	})
	commit(t, db, func(b *Batch) { b.DeleteHistory(2, "h", 5) })
	must(t, db.History(2, "h", func(seq uint64, _ []byte) error { return fmt.Errorf("seq %d left after a short DeleteHistory", seq) }))
	count := 0
	must(t, db.History(2, "h2", func(uint64, []byte) error { count++; return nil }))
	if count != n/100 {
		t.Fatalf("neighbour lost history: %d events", count)
	}
}

func TestActivitiesInboxAwake(t *testing.T) {
	db := openTest(t, t.TempDir(), 8)
	commit(t, db, func(b *Batch) {
		for _, task := range []int64{300, 2, 17} {
			must(t, b.PutActivity(5, "w", &ActivityRecord{TaskID: task, Name: "A", Attempt: 1, NextAttemptAt: t0}))
		}
		b.PutInbox(5, "w", 1, []byte("q1"))
		b.PutInbox(5, "w", 0, []byte("q0"))
		b.SetAwake(5, "w", true)
		b.SetAwake(0, "z", true)
		b.SetAwake(7, "y", true)
	})
	acts, err := db.Activities(5, "w")
	must(t, err)
	if len(acts) != 3 || acts[0].TaskID != 2 || acts[1].TaskID != 17 || acts[2].TaskID != 300 || !acts[0].NextAttemptAt.Equal(t0) {
		t.Fatalf("activities: %+v", acts)
	}
	var inbox []string
	must(t, db.Inbox(5, "w", func(seq uint64, b []byte) error {
		inbox = append(inbox, fmt.Sprintf("%d=%s", seq, b))
		return nil
	}))
	if !slices.Equal(inbox, []string{"0=q0", "1=q1"}) {
		t.Fatalf("inbox: %v", inbox)
	}
	awake := func() []string {
		var out []string
		must(t, db.Awake(func(p uint16, id string) error {
			out = append(out, fmt.Sprintf("%d/%s", p, id))
			return nil
		}))
		return out
	}
	if got := awake(); !slices.Equal(got, []string{"0/z", "5/w", "7/y"}) {
		t.Fatalf("awake: %v", got)
	}
	commit(t, db, func(b *Batch) {
		b.DeleteActivity(5, "w", 17)
		b.DeleteInbox(5, "w", 2)
		b.SetAwake(5, "w", false)
	})
	acts, err = db.Activities(5, "w")
	must(t, err)
	if len(acts) != 2 {
		t.Fatalf("after delete: %+v", acts)
	}
	must(t, db.Inbox(5, "w", func(seq uint64, _ []byte) error { return fmt.Errorf("inbox %d left", seq) }))
	if got := awake(); !slices.Equal(got, []string{"0/z", "7/y"}) {
		t.Fatalf("awake after clear: %v", got)
	}
}

func TestBatchRecordsFirstError(t *testing.T) {
	db := openTest(t, t.TempDir(), 4)
	cases := []struct {
		name string
		fill func(b *Batch)
	}{
		{"bad id", func(b *Batch) { b.AppendHistory(0, "a/b", 0, nil) }},
		{"bad partition", func(b *Batch) { b.SetAwake(4, "a", true) }},
		{"bad reminder name", func(b *Batch) { _ = b.PutReminder(Reminder{Instance: "a", Name: "x/y", Due: t0}) }},
		{"zero created", func(b *Batch) { _ = b.PutInstance(0, &InstanceRecord{ID: "a"}) }},
		{"nil record", func(b *Batch) { _ = b.PutActivity(0, "a", nil) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := db.NewBatch()
			defer b.Close()
			b.AppendHistory(0, "ok", 0, []byte("x")) // a valid change that must not commit either
			c.fill(b)
			if err := b.Commit(); err == nil {
				t.Fatal("Commit succeeded")
			}
			must(t, db.History(0, "ok", func(uint64, []byte) error { return errors.New("half a batch committed") }))
		})
	}
	b := db.NewBatch()
	if !b.Empty() {
		t.Fatal("new batch not empty")
	}
	b.Close()
	b.Close()
}

func TestRemindersOfAndReplace(t *testing.T) {
	db := openTest(t, t.TempDir(), 4)
	r1 := Reminder{Partition: 1, Instance: "ab", Name: "timer-1", Due: t0, Payload: []byte("p1")}
	r2 := Reminder{Partition: 1, Instance: "ab", Name: "retry", Due: t1, Payload: []byte("p2")}
	other := Reminder{Partition: 1, Instance: "abc", Name: "timer-1", Due: t0}
	commit(t, db, func(b *Batch) {
		must(t, b.PutInstance(1, rowWith("ab", t0, r2, r1)))
		must(t, b.PutInstance(1, rowWith("abc", t0, other)))
		must(t, b.PutReminder(r1))
		must(t, b.PutReminder(r2))
		must(t, b.PutReminder(other))
	})
	rs, err := db.RemindersOf(1, "ab")
	must(t, err)
	if len(rs) != 2 || rs[0].Name != "retry" || rs[1].Name != "timer-1" || string(rs[1].Payload) != "p1" || !rs[1].Due.Equal(t0) {
		t.Fatalf("RemindersOf: %+v", rs)
	}

	// Moving a reminder to a new due time: the caller deletes the old one in the
	// same batch (and lists the new one in the row), and the old due key is gone.
	moved := r1
	moved.Due = t1.Add(time.Hour)
	commit(t, db, func(b *Batch) {
		b.DeleteReminder(r1)
		must(t, b.PutReminder(moved))
		must(t, b.PutInstanceRow(1, rowWith("ab", t0, r2, moved)))
	})
	var due []string
	must(t, db.ScanDue(1, time.Time{}, time.Time{}, 0, func(r Reminder) error {
		due = append(due, r.Instance+"/"+r.Name)
		return nil
	}))
	if !slices.Equal(due, []string{"abc/timer-1", "ab/retry", "ab/timer-1"}) {
		t.Fatalf("after move, due order: %v", due)
	}

	commit(t, db, func(b *Batch) {
		b.DeleteReminder(moved)
		b.DeleteReminder(r2)
		must(t, b.PutInstanceRow(1, rowWith("ab", t0)))
	})
	rs, err = db.RemindersOf(1, "ab")
	must(t, err)
	if len(rs) != 0 {
		t.Fatalf("after delete: %+v", rs)
	}

	// A row of version 1 finds its reminders through reverse entries.
	commit(t, db, func(b *Batch) {
		must(t, b.PutInstance(1, &InstanceRecord{ID: "old", Name: "W", Status: Running, CreatedAt: t0}))
		putLegacyReminder(t, b, Reminder{Partition: 1, Instance: "old", Name: "timer:0:1", Due: t1, Payload: []byte("p")})
	})
	rs, err = db.RemindersOf(1, "old")
	must(t, err)
	if len(rs) != 1 || rs[0].Name != "timer:0:1" || !rs[0].Due.Equal(t1) || string(rs[0].Payload) != "p" {
		t.Fatalf("version 1 row's reminders: %+v", rs)
	}
}

func TestScanDue(t *testing.T) {
	db := openTest(t, t.TempDir(), 4)
	base := time.Unix(0, 0).UTC()
	commit(t, db, func(b *Batch) {
		for i := -50; i < 50; i++ {
			must(t, b.PutReminder(Reminder{Partition: 2, Instance: fmt.Sprintf("i%d", (i+50)%7), Name: fmt.Sprintf("n%d", i+50), Due: base.Add(time.Duration(i) * time.Second)}))
		}
		must(t, b.PutReminder(Reminder{Partition: 3, Instance: "elsewhere", Name: "n", Due: base}))
	})
	sec := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	cases := []struct {
		name      string
		from, to  time.Time
		limit     int
		wantFirst int
		wantN     int
	}{
		{"all", time.Time{}, time.Time{}, 0, -50, 100},
		{"from inclusive, to exclusive", sec(-10), sec(10), 0, -10, 20},
		{"negative range", sec(-50), sec(-40), 0, -50, 10},
		{"limit", sec(-5), time.Time{}, 7, -5, 7},
		{"limit larger than range", sec(45), sec(100), 100, 45, 5},
		{"empty", sec(60), sec(70), 0, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []time.Time
			must(t, db.ScanDue(2, c.from, c.to, c.limit, func(r Reminder) error {
				if r.Partition != 2 {
					return fmt.Errorf("reminder of partition %d", r.Partition)
				}
				got = append(got, r.Due)
				return nil
			}))
			if len(got) != c.wantN {
				t.Fatalf("got %d reminders, want %d", len(got), c.wantN)
			}
			for i, d := range got {
				if want := sec(c.wantFirst + i); !d.Equal(want) {
					t.Fatalf("reminder %d due %v, want %v", i, d, want)
				}
			}
		})
	}
}

// TestEarliestDue checks the merge across partitions against the reminders
// sorted by due time, with due times shared between partitions and ranges and
// limits that cut through them; in a store of 5 partitions (one left empty),
// merged at once, and in one of 600, merged in groups of mergeWidth.
func TestEarliestDue(t *testing.T) {
	base := time.Unix(0, 0).UTC()
	sec := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	for _, parts := range []int{5, 2*mergeWidth + 88} {
		t.Run(fmt.Sprintf("%d partitions", parts), func(t *testing.T) {
			db := openTest(t, t.TempDir(), parts)
			rng := rand.New(rand.NewPCG(3, uint64(parts)))
			var all []Reminder
			commit(t, db, func(b *Batch) {
				for i := range 300 {
					r := Reminder{Partition: uint16(rng.IntN(parts - 1)), Instance: fmt.Sprintf("i%d", i), Name: "t",
						Due: sec(rng.IntN(100) - 50), Payload: []byte(fmt.Sprint(i))}
					must(t, b.PutReminder(r))
					all = append(all, r)
				}
			})
			slices.SortStableFunc(all, func(a, b Reminder) int { return a.Due.Compare(b.Due) })
			cases := []struct {
				name     string
				from, to time.Time
				limit    int
			}{
				{"all", time.Time{}, time.Time{}, 1000},
				{"from inclusive, to exclusive", sec(-10), sec(10), 1000},
				{"limit inside one due time", sec(-50), time.Time{}, 7},
				{"limit of one", sec(-20), time.Time{}, 1},
				{"limit larger than range", sec(45), sec(100), 100},
				{"empty", sec(60), sec(70), 10},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					var want []Reminder
					for _, r := range all {
						if !r.Due.Before(c.from) && (c.to.IsZero() || r.Due.Before(c.to)) && len(want) < c.limit {
							want = append(want, r)
						}
					}
					got, err := db.EarliestDue(c.from, c.to, c.limit)
					must(t, err)
					if len(got) != len(want) {
						t.Fatalf("got %d reminders, want %d", len(got), len(want))
					}
					for i := range got {
						if !got[i].Due.Equal(want[i].Due) {
							t.Fatalf("reminder %d due %v, want %v", i, got[i].Due, want[i].Due)
						}
						if got[i].Instance != "i"+string(got[i].Payload) {
							t.Fatalf("reminder %d: %s with payload %q", i, got[i].Instance, got[i].Payload)
						}
					}
				})
			}
		})
	}
	t.Run("limit must be positive", func(t *testing.T) {
		db := openTest(t, t.TempDir(), 2)
		if _, err := db.EarliestDue(time.Time{}, time.Time{}, 0); err == nil || !strings.Contains(err.Error(), "limit 0") {
			t.Fatalf("err %v, want one naming the limit", err)
		}
	})
}

func TestPurgeInstance(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("version 1 row=%v", legacy), func(t *testing.T) { testPurgeInstance(t, legacy) })
	}
}

func testPurgeInstance(t *testing.T, legacy bool) {
	db := openTest(t, t.TempDir(), 4)
	write := func(b *Batch, id string, created time.Time) {
		rs := []Reminder{
			{Partition: 1, Instance: id, Name: "t1", Due: created.Add(time.Second)},
			{Partition: 1, Instance: id, Name: "t2", Due: created.Add(-time.Hour)},
		}
		if legacy {
			must(t, b.PutInstance(1, &InstanceRecord{ID: id, Name: "W", Status: Running, CreatedAt: created}))
			for _, r := range rs {
				putLegacyReminder(t, b, r)
			}
		} else {
			must(t, b.PutInstance(1, rowWith(id, created, rs...)))
			for _, r := range rs {
				must(t, b.PutReminder(r))
			}
		}
		for s := uint64(0); s < 300; s++ {
			b.AppendHistory(1, id, s, []byte("e"))
		}
		must(t, b.PutActivity(1, id, &ActivityRecord{TaskID: 1}))
		must(t, b.PutActivity(1, id, &ActivityRecord{TaskID: 2}))
		b.PutInbox(1, id, 0, []byte("q"))
		must(t, b.PutClientEvent(1, id, "req-1", created))
		b.SetAwake(1, id, true)
	}
	// The neighbour's id has the purged id as a prefix, same partition.
	commit(t, db, func(b *Batch) { write(b, "abc", t1) })
	before := allKeys(t, db)

	for _, passCreated := range []bool{true, false} {
		t.Run(fmt.Sprintf("createdAt given=%v", passCreated), func(t *testing.T) {
			commit(t, db, func(b *Batch) { write(b, "ab", t0) })
			if n := len(allKeys(t, db)); n <= len(before) {
				t.Fatalf("instance not written: %d keys", n)
			}
			created := time.Time{}
			if passCreated {
				created = t0
			}
			commit(t, db, func(b *Batch) { must(t, db.PurgeInstance(b, 1, "ab", created)) })
			if after := allKeys(t, db); !slices.Equal(after, before) {
				t.Fatalf("keys after purge differ from the neighbour-only store:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
	if _, err := db.Instance(1, "abc"); err != nil {
		t.Fatalf("neighbour row: %v", err)
	}
	rs, err := db.RemindersOf(1, "abc")
	if err != nil || len(rs) != 2 {
		t.Fatalf("neighbour reminders: %v, %v", rs, err)
	}
}

// Client event request ids are kept per instance, listed with when they were
// applied, deleted one by one; a malformed one is refused.
func TestClientEvents(t *testing.T) {
	db := openTest(t, t.TempDir(), 4)
	commit(t, db, func(b *Batch) {
		must(t, b.PutClientEvent(1, "ab", "r2", t1))
		must(t, b.PutClientEvent(1, "ab", "r1", t0))
		must(t, b.PutClientEvent(1, "abc", "r3", t0)) // the neighbour whose id has "ab" as a prefix
	})
	list := func(id string) map[string]time.Time {
		got := map[string]time.Time{}
		must(t, db.ClientEvents(1, id, func(r string, at time.Time) { got[r] = at }))
		return got
	}
	if got := list("ab"); len(got) != 2 || !got["r1"].Equal(t0) || !got["r2"].Equal(t1) {
		t.Fatalf("ab: %v", got)
	}
	commit(t, db, func(b *Batch) { b.DeleteClientEvent(1, "ab", "r1") })
	if got := list("ab"); len(got) != 1 || !got["r2"].Equal(t1) {
		t.Fatalf("ab after deleting r1: %v", got)
	}
	if got := list("abc"); len(got) != 1 {
		t.Fatalf("abc: %v", got)
	}
	b := db.NewBatch()
	defer b.Close()
	if err := b.PutClientEvent(1, "ab", "a/b", t0); err == nil || !strings.Contains(err.Error(), "request id") {
		t.Fatalf("request id with a '/': %v", err)
	}
}

func TestPebbleLogsGoToSlog(t *testing.T) {
	var buf bytes.Buffer
	dir := t.TempDir()
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, err := Open(Options{Dir: dir, Partitions: 2, Logger: l, CacheSize: 1 << 20})
	must(t, err)
	must(t, db.Close())
	db, err = Open(Options{Dir: dir, Partitions: 2, Logger: l}) // replays the WAL
	must(t, err)
	must(t, db.Close())
	if !strings.Contains(buf.String(), "component=pebble") {
		t.Fatalf("no pebble log line reached slog:\n%s", buf.String())
	}
}

func TestDefaultPartitions(t *testing.T) {
	db := openTest(t, t.TempDir(), 0)
	if db.Partitions() != placement.DefaultPartitions {
		t.Fatalf("Partitions() = %d", db.Partitions())
	}
	if db.Metrics() == nil {
		t.Fatal("no metrics")
	}
}

// TestLoadInstance: a row of version 2 with its history inline is read alone;
// one whose history moved to keys, with retry and outbox records, is read with
// them; a row of version 1 is read with all its keys in one pass. None sees
// anything of a neighbour whose id extends its own.
func TestLoadInstance(t *testing.T) {
	db := openTest(t, t.TempDir(), 4)
	events := func(id string) [][]byte {
		return [][]byte{[]byte(id + "-ev0"), []byte(id + "-ev1"), []byte(id + "-ev2")}
	}
	rem := func(id string) Reminder { return Reminder{Partition: 1, Instance: id, Name: "timer:0:1", Due: t1} }
	for _, id := range []string{"in", "inx", "keys", "keysx", "old", "oldx"} {
		commit(t, db, func(b *Batch) {
			row := &InstanceRecord{ID: id, Name: "W", Status: Running, CreatedAt: t0, NextSeq: 3}
			switch id {
			case "in", "inx":
				row.SetInline(&Inline{History: events(id), Reminders: []InlineReminder{{Name: "timer:0:1", Due: t1}}})
				must(t, b.PutReminder(rem(id)))
			case "keys", "keysx":
				row.SetInline(&Inline{HistoryKeys: true, Retrying: 1, Outbox: 1, Reminders: []InlineReminder{{Name: "timer:0:1", Due: t1}}})
				must(t, b.PutReminder(rem(id)))
			default:
				putLegacyReminder(t, b, rem(id))
			}
			must(t, b.PutInstance(1, row))
			if id != "in" && id != "inx" {
				for seq, ev := range events(id) {
					b.AppendHistory(1, id, uint64(seq), ev)
				}
				must(t, b.PutActivity(1, id, &ActivityRecord{TaskID: 7, Name: "A", Attempt: 2}))
				must(t, b.PutOutbox(1, id, &OutboxRecord{Seq: 3, Target: "x", Name: "ping"}))
			}
			b.PutInbox(1, id, 0, []byte("held"))
		})
	}
	for _, tc := range []struct {
		id                  string
		historyKeys, legacy bool
		records             int
	}{
		{"in", false, false, 0},
		{"keys", true, false, 1},
		{"old", true, true, 1},
	} {
		st, err := db.LoadInstance(1, tc.id)
		must(t, err)
		if st.Row.ID != tc.id || len(st.History) != 3 || string(st.History[2]) != tc.id+"-ev2" {
			t.Fatalf("%s: row or history: %+v", tc.id, st)
		}
		if st.HistoryKeys != tc.historyKeys || st.Legacy != tc.legacy {
			t.Fatalf("%s: HistoryKeys %v Legacy %v, want %v %v", tc.id, st.HistoryKeys, st.Legacy, tc.historyKeys, tc.legacy)
		}
		if len(st.Activities) != tc.records || len(st.Outbox) != tc.records {
			t.Fatalf("%s: activities or outbox: %+v %+v", tc.id, st.Activities, st.Outbox)
		}
		if tc.records > 0 && (st.Activities[0].Attempt != 2 || st.Outbox[0].Target != "x") {
			t.Fatalf("%s: activities or outbox: %+v %+v", tc.id, st.Activities, st.Outbox)
		}
		if len(st.Reminders) != 1 || st.Reminders[0].Name != "timer:0:1" || !st.Reminders[0].Due.Equal(t1) {
			t.Fatalf("%s: reminders: %+v", tc.id, st.Reminders)
		}
		var hist []string
		must(t, db.History(1, tc.id, func(_ uint64, ev []byte) error { hist = append(hist, string(ev)); return nil }))
		if len(hist) != 3 || hist[0] != tc.id+"-ev0" {
			t.Fatalf("%s: History read %q", tc.id, hist)
		}
	}
	if _, err := db.LoadInstance(1, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing instance: %v", err)
	}
}

func TestSyncVisible(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, 4)
	must(t, db.SyncVisible())
	must(t, db.Close())
	if err := db.SyncVisible(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// A write stall is logged when it begins, with pebble's reason, and when it
// ends, with how long it lasted.
func TestWriteStallsAreLogged(t *testing.T) {
	var buf bytes.Buffer
	l := stallListener(slog.New(slog.NewTextHandler(&buf, nil)))
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "L0 file count limit exceeded"})
	l.WriteStallEnd()
	out := buf.String()
	for _, want := range []string{`level=WARN msg="storage: writes stalled`, `reason="L0 file count limit exceeded"`, `msg="storage: writes resumed"`, "stalled="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestShortDeletionsAreKeyByKey: deleting an instance's inbox or history writes
// point deletions while they are short and one range deletion past
// pointDeleteLimit; both leave nothing behind and spare the neighbour id. A
// range deletion costs every read that crosses the memtable until it is
// flushed, and every finished remote instance clears its inbox.
func TestShortDeletionsAreKeyByKey(t *testing.T) {
	for _, tc := range []struct {
		what   string
		n      uint64
		ranges int
	}{
		{"inbox", 3, 0},
		{"inbox", pointDeleteLimit, 0},
		{"inbox", pointDeleteLimit + 1, 1},
		{"history", 5, 0},
		{"history", pointDeleteLimit + 1, 1},
	} {
		t.Run(fmt.Sprintf("%s of %d", tc.what, tc.n), func(t *testing.T) {
			db := openTest(t, t.TempDir(), 4)
			commit(t, db, func(b *Batch) {
				for seq := range tc.n {
					if tc.what == "inbox" {
						b.PutInbox(1, "w", seq, []byte("held"))
					} else {
						b.AppendHistory(1, "w", seq, []byte("event"))
					}
				}
				b.PutInbox(1, "w2", 0, []byte("neighbour"))
				b.AppendHistory(1, "w2", 0, []byte("neighbour"))
			})
			b := db.NewBatch()
			defer b.Close()
			if tc.what == "inbox" {
				b.DeleteInbox(1, "w", tc.n)
			} else {
				b.DeleteHistory(1, "w", tc.n)
			}
			ranges, points := 0, 0
			r := b.b.Reader()
			for {
				kind, _, _, ok, err := r.Next()
				must(t, err)
				if !ok {
					break
				}
				switch kind {
				case pebble.InternalKeyKindRangeDelete:
					ranges++
				case pebble.InternalKeyKindDelete:
					points++
				}
			}
			if ranges != tc.ranges || (ranges == 0 && uint64(points) != tc.n) {
				t.Fatalf("%d range and %d point deletions; want %d range deletions", ranges, points, tc.ranges)
			}
			must(t, b.Commit())
			left := func(seq uint64, _ []byte) error { return fmt.Errorf("entry %d left", seq) }
			if tc.what == "inbox" {
				must(t, db.Inbox(1, "w", left))
			} else {
				must(t, db.History(1, "w", left))
			}
			for _, read := range []func(uint16, string, func(uint64, []byte) error) error{db.Inbox, db.History} {
				n := 0
				must(t, read(1, "w2", func(uint64, []byte) error { n++; return nil }))
				if n != 1 {
					t.Fatalf("the neighbour has %d entries, want 1", n)
				}
			}
		})
	}
}
