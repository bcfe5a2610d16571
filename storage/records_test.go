package storage

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

var (
	t0 = time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	t1 = t0.Add(time.Minute)
)

func sampleInstance() *InstanceRecord {
	return &InstanceRecord{
		ID: "order-1", Name: "ProcessOrder", Status: Failed,
		CreatedAt: t0, UpdatedAt: t1, ScheduledStartAt: t0, CompletedAt: t1,
		Input: []byte(`{"a": 1}`), Output: []byte(`null`), CustomStatus: []byte(`"x"`),
		Failure:  &Failure{Type: "E", Message: "boom", Stack: "s"},
		ParentID: "p", ParentTask: 7, Generation: 2, NextSeq: 300, NextInboxSeq: 4,
	}
}

func sampleActivity() *ActivityRecord {
	return &ActivityRecord{TaskID: 12, Name: "Charge", Input: []byte(`[1]`), Attempt: 3, FirstAttemptAt: t0, NextAttemptAt: t1}
}

// sameTimes normalises time locations (msgpack decodes into time.Local) so
// reflect.DeepEqual compares instants.
func utc(ts ...*time.Time) {
	for _, t := range ts {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Run("instance", func(t *testing.T) {
		for _, in := range []*InstanceRecord{sampleInstance(), {ID: "min", CreatedAt: t0}} {
			b, err := encodeInstance(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := decodeInstance(b)
			if err != nil {
				t.Fatal(err)
			}
			utc(&out.CreatedAt, &out.UpdatedAt, &out.ScheduledStartAt, &out.CompletedAt)
			want := *in
			want.V = instanceRecordV
			if !reflect.DeepEqual(*out, want) {
				t.Fatalf("got %+v\nwant %+v", *out, want)
			}
		}
	})
	t.Run("activity", func(t *testing.T) {
		b, err := encodeActivity(sampleActivity())
		if err != nil {
			t.Fatal(err)
		}
		out, err := decodeActivity(b)
		if err != nil {
			t.Fatal(err)
		}
		utc(&out.FirstAttemptAt, &out.NextAttemptAt)
		want := *sampleActivity()
		want.V = activityRecordV
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("got %+v, want %+v", out, want)
		}
	})
	t.Run("index entry", func(t *testing.T) {
		b, err := encodeIndexEntry("W", Suspended)
		if err != nil {
			t.Fatal(err)
		}
		e, err := decodeIndexEntry(b)
		if err != nil || e != (IndexEntry{V: indexEntryV, Name: "W", Status: Suspended}) {
			t.Fatalf("got %+v, %v", e, err)
		}
	})
	t.Run("reminder", func(t *testing.T) {
		b, err := encodeReminderValue([]byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := decodeReminderValue(b)
		if err != nil || string(p) != "payload" {
			t.Fatalf("got %q, %v", p, err)
		}
	})
}

func TestRecordVersionRejected(t *testing.T) {
	type future struct {
		V     uint8  `msgpack:"v"`
		Other string `msgpack:"zz"`
	}
	newer, _ := msgpack.Marshal(future{V: 9, Other: "x"})
	missing, _ := msgpack.Marshal(map[string]int{"n": 1})
	cases := []struct {
		record string
		decode func([]byte) error
	}{
		{"instance record", func(b []byte) error { _, err := decodeInstance(b); return err }},
		{"activity record", func(b []byte) error { _, err := decodeActivity(b); return err }},
		{"index entry", func(b []byte) error { _, err := decodeIndexEntry(b); return err }},
		{"reminder", func(b []byte) error { _, err := decodeReminderValue(b); return err }},
	}
	for _, c := range cases {
		t.Run(c.record, func(t *testing.T) {
			for _, b := range [][]byte{newer, missing} {
				err := c.decode(b)
				if !errors.Is(err, ErrUnknownVersion) || !strings.Contains(err.Error(), c.record) {
					t.Fatalf("decode of %x: %v; want ErrUnknownVersion naming %q", b, err, c.record)
				}
			}
			if err := c.decode([]byte{0xc1}); err == nil {
				t.Fatal("garbage accepted")
			}
		})
	}
}

// TestRecordGolden pins the on-disk bytes of every record. If it fails, a change
// altered the stored format: keep old data decodable (and bump the version)
// before updating the constants.
func TestRecordGolden(t *testing.T) {
	withInline := sampleInstance()
	withInline.SetInline(&Inline{History: [][]byte{[]byte("ev0"), []byte("ev1")},
		Reminders: []InlineReminder{{Name: "timer:0:1", Due: t1}}, Retrying: 1})
	inst, _ := encodeInstance(withInline)
	act, _ := encodeActivity(sampleActivity())
	idx, _ := encodeIndexEntry("ProcessOrder", Running)
	rem, _ := encodeReminderValue([]byte(`{"t":1}`))
	meta, _ := encodeRecord("node meta", &nodeMeta{V: nodeMetaV, Format: storeFormat, Partitions: 256})
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"instance", inst, goldenInstance},
		{"activity", act, goldenActivity},
		{"index entry", idx, goldenIndex},
		{"reminder", rem, goldenReminder},
		{"node meta", meta, goldenMeta},
	}
	for _, c := range cases {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s encoding changed:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	// A row written before version 2 still decodes, with no inline state.
	b, _ := hex.DecodeString(goldenInstanceV1)
	rec, err := decodeInstance(b)
	if err != nil {
		t.Fatal(err)
	}
	if in, err := rec.InlineState(); rec.V != 1 || in != nil || err != nil || rec.ID != "order-1" || rec.NextSeq != 300 {
		t.Fatalf("version 1 row: %+v, inline %+v, %v", rec, in, err)
	}
}

const (
	goldenInstance   = "de0012a17602a26964a76f726465722d31a16eac50726f636573734f72646572a17303a26361d7ff00000de867c68a3fa27561d7ff00000de867c68a7ba27373d7ff00000de867c68a3fa2636fd7ff00000de867c68a7ba2696ec4087b2261223a20317da36f7574c4046e756c6ca26373c403227822a16683a174a145a16da4626f6f6da173a173a3706964a170a2707407a16702a26e73cd012ca26e7104a2696cc42001000100020365763003657631010974696d65723a303a319829813c5043117a"
	goldenInstanceV1 = "de0011a17601a26964a76f726465722d31a16eac50726f636573734f72646572a17303a26361d7ff00000de867c68a3fa27561d7ff00000de867c68a7ba27373d7ff00000de867c68a3fa2636fd7ff00000de867c68a7ba2696ec4087b2261223a20317da36f7574c4046e756c6ca26373c403227822a16683a174a145a16da4626f6f6da173a173a3706964a170a2707407a16702a26e73cd012ca26e7104"
	goldenActivity   = "87a17601a1740ca16ea6436861726765a2696ec4035b315da16103a26661d7ff00000de867c68a3fa26e61d7ff00000de867c68a7b"
	goldenIndex      = "83a17601a16eac50726f636573734f72646572a17301"
	goldenReminder   = "82a17601a170c4077b2274223a317d"
	goldenMeta       = "83a17601a2667601a27063cd0100"
)

func TestStatusString(t *testing.T) {
	for s := Pending; s <= ContinuedAsNew; s++ {
		p, err := ParseStatus(s.String())
		if err != nil || p != s {
			t.Fatalf("ParseStatus(%q) = %v, %v", s.String(), p, err)
		}
	}
	if ContinuedAsNew.String() != "CONTINUED_AS_NEW" || Running.String() != "RUNNING" {
		t.Fatal("status names changed")
	}
	if _, err := ParseStatus("running"); err == nil {
		t.Fatal("lower-case status accepted")
	}
	if Status(99).String() != "STATUS(99)" {
		t.Fatal(Status(99).String())
	}
}
