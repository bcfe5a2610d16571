package storage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func TestSplitKey(t *testing.T) {
	for _, tc := range []struct {
		key    []byte
		prefix []byte
	}{
		{instanceKey(3, "ab"), instancePrefix(3, "ab")},
		{historyKey(3, "ab", 7), instancePrefix(3, "ab")},
		{reverseReminderKey(3, "x:1.y-z", "timer:0:1"), instancePrefix(3, "x:1.y-z")},
		{instancePrefix(3, "ab"), instancePrefix(3, "ab")},
		{instanceKey(uint16('/')<<8|'/', "ab"), instancePrefix(uint16('/')<<8|'/', "ab")}, // partition bytes that are '/'
		{reminderKey(3, time.Unix(5, 0), "ab", "timer:0:1"), nil},
		{awakeKey(3, "ab"), nil},
		{createdIndexKey(3, time.Unix(5, 0), "ab"), nil},
		{nodeKey("meta"), nil},
		{[]byte("p/\x00\x03/i/ab"), nil}, // a separator pebble may make: no '/' after the id
		{[]byte("p"), nil},
		{nil, nil},
	} {
		want := len(tc.key)
		if tc.prefix != nil {
			want = len(tc.prefix)
		}
		if got := splitKey(tc.key); got != want {
			t.Errorf("splitKey(%q) = %d, want %d", tc.key, got, want)
		}
	}
}

// randomKey returns a key of the layout, or (one time in four) arbitrary bytes
// near it, as pebble's index separators are.
func randomKey(r *rand.Rand) []byte {
	ids := []string{"a", "ab", "abc", "a-b", "a.b", "a:b", "a_b", "b", "Z9"}
	id := ids[r.IntN(len(ids))]
	part := uint16(r.IntN(4))
	if r.IntN(8) == 0 {
		part = uint16('/')<<8 | uint16(r.IntN(256))
	}
	var k []byte
	switch r.IntN(6) {
	case 0:
		k = instanceKey(part, id)
	case 1:
		k = historyKey(part, id, uint64(r.IntN(300)))
	case 2:
		k = reverseReminderKey(part, id, fmt.Sprintf("timer:0:%d", r.IntN(3)))
	case 3:
		k = reminderKey(part, time.Unix(int64(r.IntN(3)), 0), id, "start")
	case 4:
		k = createdIndexKey(part, time.Unix(int64(r.IntN(3)), 0), id)
	default:
		k = awakeKey(part, id)
	}
	if r.IntN(4) == 0 { // cut and perturb, like a separator
		k = k[:r.IntN(len(k)+1)]
		if len(k) > 0 && r.IntN(2) == 0 {
			k[len(k)-1] += byte(r.IntN(3))
		}
	}
	return k
}

// The order pebble derives from prefixes and suffixes (Split's contract) must be
// byte order, which keyComparer's Compare is, for every pair of keys.
func TestKeyComparerOrderIsByteOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	split := keyComparer.Split
	for range 50_000 {
		a, b := randomKey(r), randomKey(r)
		pa, pb := a[:split(a)], b[:split(b)]
		sa, sb := a[len(pa):], b[len(pb):]
		if len(sa) > 0 && bytes.Compare(pa, a) >= 0 {
			t.Fatalf("prefix %q does not sort before its key %q", pa, a)
		}
		derived := bytes.Compare(pa, pb)
		if derived == 0 {
			derived = bytes.Compare(sa, sb)
		}
		if got := keyComparer.Compare(a, b); got != derived {
			t.Fatalf("Compare(%q, %q) = %d, but prefix %q vs %q then suffix %q vs %q gives %d", a, b, got, pa, pb, sa, sb, derived)
		}
	}
}

// A store created before weft split keys at instances (pebble's default
// comparer) opens as it was and reads its instances.
func TestStoreWithDefaultComparerOpens(t *testing.T) {
	dir := t.TempDir()
	pdb, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: pebbleLogger{quietLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pdb.Close(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		db, err := Open(Options{Dir: dir, Partitions: 4, Logger: quietLogger()})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if db.prefixSeek {
			t.Fatalf("round %d: a store with pebble's default comparer is read with prefix seeks", round)
		}
		if round == 0 {
			commit(t, db, func(b *Batch) {
				must(t, b.PutInstance(1, &InstanceRecord{ID: "ab", Name: "W", Status: Running, CreatedAt: t0}))
				b.AppendHistory(1, "ab", 0, []byte("ev0"))
			})
		}
		st, err := db.LoadInstance(1, "ab")
		if err != nil || len(st.History) != 1 {
			t.Fatalf("round %d: load: %+v %v", round, st, err)
		}
		must(t, db.Close())
	}
	// A new store uses keyComparer and prefix seeks.
	db := openTest(t, t.TempDir(), 4)
	if !db.prefixSeek {
		t.Fatal("a new store is read without prefix seeks")
	}
}
