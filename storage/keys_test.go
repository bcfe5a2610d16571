package storage

import (
	"bytes"
	"math"
	"slices"
	"testing"
	"time"
)

func TestReminderKeyRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		part uint16
		due  time.Time
		id   string
		rem  string
	}{
		{"zero time", 0, time.Time{}, "a", "t"},
		{"epoch", 1, time.Unix(0, 0).UTC(), "order-1", "timer:1"},
		{"negative", 255, time.Unix(-1000, 5).UTC(), "x_Y-z", "retry 3"},
		{"future", math.MaxUint16, time.Date(2200, 1, 2, 3, 4, 5, 6, time.UTC), "ID", "n"},
		{"name with spaces and colons", 7, time.Unix(1, 1).UTC(), "abc", "a:b c#d"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := reminderKey(c.part, c.due, c.id, c.rem)
			part, due, id, name, err := parseReminderKey(k)
			if err != nil {
				t.Fatal(err)
			}
			if part != c.part || !due.Equal(c.due) || id != c.id || name != c.rem {
				t.Fatalf("got (%d, %v, %q, %q), want (%d, %v, %q, %q)", part, due, id, name, c.part, c.due, c.id, c.rem)
			}
		})
	}
}

func TestCreatedIndexKeyRoundTrip(t *testing.T) {
	for _, created := range []time.Time{time.Unix(-5, 0).UTC(), time.Unix(1700000000, 123).UTC()} {
		k := createdIndexKey(42, created, "inst-1")
		part, c, id, err := parseCreatedIndexKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if part != 42 || !c.Equal(created) || id != "inst-1" {
			t.Fatalf("got (%d, %v, %q)", part, c, id)
		}
	}
}

func TestParseMalformedKeys(t *testing.T) {
	for _, k := range [][]byte{nil, []byte("p/"), []byte("n/meta"), append(reminderDueBound(1, time.Unix(1, 0)), '/')} {
		if _, _, _, _, err := parseReminderKey(k); err == nil {
			t.Errorf("parseReminderKey(%q) accepted", k)
		}
		if _, _, _, err := parseCreatedIndexKey(k); err == nil {
			t.Errorf("parseCreatedIndexKey(%q) accepted", k)
		}
	}
}

func TestKeyOrdering(t *testing.T) {
	times := []time.Time{
		{},
		time.Unix(-1<<40, 0),
		time.Unix(-1, 0),
		time.Unix(0, -1),
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Unix(1, 0),
		time.Unix(1<<40, 0),
	}
	t.Run("reminders by due", func(t *testing.T) {
		var keys [][]byte
		for _, tm := range times {
			keys = append(keys, reminderKey(3, tm, "a", "n"))
		}
		if !slices.IsSortedFunc(keys, bytes.Compare) {
			t.Fatal("reminder keys are not in due order")
		}
	})
	t.Run("index by created", func(t *testing.T) {
		var keys [][]byte
		for _, tm := range times {
			keys = append(keys, createdIndexKey(3, tm, "a"))
		}
		if !slices.IsSortedFunc(keys, bytes.Compare) {
			t.Fatal("index keys are not in created order")
		}
	})
	t.Run("history by seq", func(t *testing.T) {
		seqs := []uint64{0, 1, 255, 256, 1 << 32, math.MaxUint64}
		var keys [][]byte
		for _, s := range seqs {
			keys = append(keys, historyKey(0, "a", s))
		}
		if !slices.IsSortedFunc(keys, bytes.Compare) {
			t.Fatal("history keys are not in seq order")
		}
	})
	t.Run("activities by task", func(t *testing.T) {
		var keys [][]byte
		for _, task := range []int64{math.MinInt64, -1, 0, 1, 256, math.MaxInt64} {
			keys = append(keys, activityKey(0, "a", task))
		}
		if !slices.IsSortedFunc(keys, bytes.Compare) {
			t.Fatal("activity keys are not in task order")
		}
	})
}

// A prefix scan of instance "ab" must never include keys of "abc" or "ab-" etc.
func TestInstancePrefixIsolation(t *testing.T) {
	p := instancePrefix(9, "ab")
	lo, hi := p, prefixEnd(p)
	for _, other := range []string{"abc", "ab-", "ab_", "aB", "a", "abZ", "ab0"} {
		for _, k := range [][]byte{
			instanceKey(9, other), historyKey(9, other, 0), historyKey(9, other, math.MaxUint64),
			activityKey(9, other, 1), inboxKey(9, other, 1), reverseReminderKey(9, other, "zzz"),
		} {
			if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
				t.Errorf("key %q of %q falls inside the prefix range of \"ab\"", k, other)
			}
		}
	}
	for _, k := range [][]byte{instanceKey(9, "ab"), historyKey(9, "ab", math.MaxUint64), reverseReminderKey(9, "ab", "~~~")} {
		if bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
			t.Errorf("key %q of \"ab\" falls outside its own prefix range", k)
		}
	}
}

func TestValidateInstanceID(t *testing.T) {
	cases := []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"Order_42-x", true},
		{"parent-1:0001", true}, // Dapr SDKs' child ids
		{"order.42", true},
		{"a\\b", false},
		{string(bytes.Repeat([]byte("a"), 64)), true},
		{"", false},
		{string(bytes.Repeat([]byte("a"), 65)), false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
	}
	for _, c := range cases {
		if err := ValidateInstanceID(c.id); (err == nil) != c.ok {
			t.Errorf("ValidateInstanceID(%q) = %v, want ok=%v", c.id, err, c.ok)
		}
	}
	for name, ok := range map[string]bool{"t": true, "timer:1 x": true, "": false, "a/b": false, "a\x00": false} {
		if err := ValidateReminderName(name); (err == nil) != ok {
			t.Errorf("ValidateReminderName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestLowWaterRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{{}, time.Unix(-3, 0).UTC(), time.Unix(1700000000, 9).UTC()} {
		got, err := DecodeLowWater(EncodeLowWater(tm))
		if err != nil || !got.Equal(tm) {
			t.Fatalf("round trip of %v: got %v, %v", tm, got, err)
		}
	}
	if _, err := DecodeLowWater([]byte{1}); err == nil {
		t.Fatal("short mark accepted")
	}
}
