package storage

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func randomInline(r *rand.Rand) *Inline {
	in := &Inline{HistoryKeys: r.IntN(2) == 0, Retrying: r.IntN(3), Outbox: r.IntN(3)}
	if r.IntN(4) == 0 {
		in.Retrying = 1 << 20
	}
	for range r.IntN(20) {
		ev := make([]byte, r.IntN(300))
		for i := range ev {
			ev[i] = byte(r.IntN(256))
		}
		in.History = append(in.History, ev)
	}
	for i := range r.IntN(4) {
		in.Reminders = append(in.Reminders, InlineReminder{Name: "timer:0:" + string(rune('0'+i)),
			Due: time.Unix(r.Int64N(1<<32), r.Int64N(1e9)).UTC()})
	}
	return in
}

func TestInlineRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		in := randomInline(r)
		b := encodeInline(nil, in)
		if len(b) > inlineSize(in) {
			t.Fatalf("%d bytes, over the size bound %d", len(b), inlineSize(in))
		}
		got, err := decodeInline(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.History) == 0 {
			got.History = nil
		}
		want := *in
		for i := range want.History {
			if len(want.History[i]) == 0 {
				want.History[i] = got.History[i] // an empty event decodes as an empty slice
			}
		}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, &want)
		}
		for cut := range len(b) { // every truncation is an error, never a panic
			if _, err := decodeInline(b[:cut]); err == nil {
				t.Fatalf("truncated at %d of %d: decoded", cut, len(b))
			}
		}
	}
	if _, err := decodeInline([]byte{9}); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("unknown format: %v", err)
	}
}

func FuzzDecodeInline(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	for range 20 {
		f.Add(encodeInline(nil, randomInline(r)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeInline(b)
		if err != nil {
			return
		}
		again, err := decodeInline(encodeInline(nil, in))
		if err != nil || len(again.History) != len(in.History) || len(again.Reminders) != len(in.Reminders) {
			t.Fatalf("re-encoding %+v: %+v, %v", in, again, err)
		}
	})
}
