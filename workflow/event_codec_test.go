package workflow

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftrt/weft/internal/mpack"
	"github.com/weftrt/weft/internal/mpack/mpacktest"
)

// refEncodeEvent and refDecodeEvent are EncodeEvent and DecodeEvent as they
// were before the hand-written codec, through msgpack/v5's reflection: the
// reference the codec must match.
func refEncodeEvent(ev Event) ([]byte, error) {
	ev.V = eventVersion
	b, err := msgpack.Marshal(&ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", ev.Kind, err)
	}
	return b, nil
}

func refDecodeEvent(b []byte) (Event, error) {
	var ev Event
	if err := msgpack.Unmarshal(b, &ev); err != nil {
		return Event{}, fmt.Errorf("decode history event: %w", err)
	}
	if ev.V == 0 || ev.V > eventVersion {
		return Event{}, fmt.Errorf("decode history event: unsupported version %d (this build reads up to %d)", ev.V, eventVersion)
	}
	if ev.Kind == KindInvalid || ev.Kind >= kindCount {
		return Event{}, fmt.Errorf("decode history event: unknown kind %d", ev.Kind)
	}
	ev.Time = ev.Time.UTC()
	if !ev.FireAt.IsZero() {
		ev.FireAt = ev.FireAt.UTC()
	}
	return ev, nil
}

// sameEvent is reflect.DeepEqual, except that it compares float bits, so that
// a NaN backoff equals itself.
func sameEvent(a, b Event) bool {
	if (a.Retry == nil) != (b.Retry == nil) {
		return false
	}
	if a.Retry != nil {
		ra, rb := *a.Retry, *b.Retry
		if math.Float64bits(ra.BackoffCoefficient) != math.Float64bits(rb.BackoffCoefficient) {
			return false
		}
		ra.BackoffCoefficient, rb.BackoffCoefficient = 0, 0
		a.Retry, b.Retry = &ra, &rb
	}
	return reflect.DeepEqual(a, b)
}

// genEvent returns a random event, of a valid kind but for one in 20.
func genEvent(rng *rand.Rand) Event {
	ev := Event{
		Kind:     EventKind(1 + rng.Intn(int(kindCount)-1)),
		Time:     mpacktest.Time(rng),
		TaskID:   mpacktest.Int(rng),
		Name:     mpacktest.String(rng),
		Data:     mpacktest.Bytes(rng),
		Instance: mpacktest.String(rng),
		FireAt:   mpacktest.Time(rng),
		Version:  mpacktest.String(rng),

		TaskExecutionID: mpacktest.String(rng),
		App:             mpacktest.String(rng),
	}
	if rng.Intn(20) == 0 {
		ev.Kind = EventKind([]int{0, int(kindCount), 255}[rng.Intn(3)])
	}
	switch rng.Intn(3) {
	case 0:
		ev.Failure = &Failure{}
	case 1:
		ev.Failure = &Failure{Type: mpacktest.String(rng), Message: mpacktest.String(rng), Stack: mpacktest.String(rng), NonRetriable: rng.Intn(2) == 0}
	}
	switch rng.Intn(3) {
	case 0:
		ev.Retry = &RetryPolicy{}
	case 1:
		ev.Retry = &RetryPolicy{MaxAttempts: int(mpacktest.Int(rng)), FirstRetryInterval: time.Duration(mpacktest.Int(rng)),
			BackoffCoefficient: mpacktest.Float(rng), MaxRetryInterval: time.Duration(mpacktest.Int(rng)), RetryTimeout: time.Duration(mpacktest.Int(rng))}
		if rng.Intn(2) == 0 {
			ev.Retry.Handle = func(*Failure) bool { return true } // not stored
		}
	}
	return ev
}

// storedForm is what DecodeEvent returns for an event EncodeEvent wrote.
func storedForm(ev Event) Event {
	ev.V = eventVersion
	ev.Time = ev.Time.UTC()
	ev.FireAt = ev.FireAt.UTC()
	if len(ev.Data) == 0 {
		ev.Data = nil
	}
	if ev.Retry != nil {
		r := *ev.Retry
		r.Handle = nil
		if r.BackoffCoefficient == 0 {
			r.BackoffCoefficient = 0 // -0 is omitted as empty, so it reads back as +0
		}
		ev.Retry = &r
	}
	return ev
}

// checkDecode asserts that DecodeEvent decodes b as the reflection decoder
// did, and returns the event.
func checkDecode(t *testing.T, b []byte) (Event, error) {
	t.Helper()
	got, err := DecodeEvent(b)
	want, refErr := refDecodeEvent(b)
	if (err != nil) != (refErr != nil) || !sameEvent(got, want) {
		t.Fatalf("decode of %x:\n got %+v, %v\nwant %+v, %v", b, got, err, want, refErr)
	}
	return got, err
}

// TestEventCodecMatchesMsgpack compares the codec with msgpack/v5 on random
// events: the same bytes, the same decoded event (from those bytes, and from
// other encodings of them), and a round trip.
func TestEventCodecMatchesMsgpack(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		ev := genEvent(rng)
		b, err := EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := refEncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("event %d %+v:\n got %x\nwant %x", i, ev, b, want)
		}
		if len(b) > eventSize(&ev) {
			t.Fatalf("event %d: %d bytes, over eventSize %d", i, len(b), eventSize(&ev))
		}
		got, decErr := checkDecode(t, b)
		if decErr == nil && !sameEvent(got, storedForm(ev)) {
			t.Fatalf("event %d: round trip:\n got %+v\nwant %+v", i, got, storedForm(ev))
		}
		if len(b) > 5000 {
			continue // variants of the big ones add time, not coverage
		}
		for range 4 {
			v, err := mpacktest.Variant(rng, b)
			if err != nil {
				t.Fatal(err)
			}
			if rng.Intn(4) == 0 {
				v = append(v, 0xc1, 0x00) // trailing bytes are ignored
			}
			if alt, altErr := checkDecode(t, v); (altErr != nil) != (decErr != nil) || !sameEvent(alt, got) {
				t.Fatalf("event %d: variant %x of %x decodes to %+v, %v; want %+v, %v", i, v, b, alt, altErr, got, decErr)
			}
		}
	}
}

// eventNoOmit is Event with no omitempty: every field written, zero or not.
type eventNoOmit struct {
	V               uint8        `msgpack:"v"`
	Kind            EventKind    `msgpack:"k"`
	Time            time.Time    `msgpack:"t"`
	TaskID          int64        `msgpack:"id"`
	Name            string       `msgpack:"n"`
	Data            []byte       `msgpack:"d"`
	Instance        string       `msgpack:"i"`
	FireAt          time.Time    `msgpack:"f"`
	Failure         *Failure     `msgpack:"e"`
	Retry           *RetryPolicy `msgpack:"r"`
	Version         string       `msgpack:"ver"`
	TaskExecutionID string       `msgpack:"te"`
	App             string       `msgpack:"ap"`
}

// TestDecodeEventOtherEncoders decodes events written by msgpack/v5 with
// other settings: compact ints and floats, structs as arrays, every field
// written (nil pointers and slices as nil, zero times as timestamps).
func TestDecodeEventOtherEncoders(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	encoders := map[string]func(*msgpack.Encoder, Event) error{
		"compact": func(e *msgpack.Encoder, ev Event) error {
			e.UseCompactInts(true)
			e.UseCompactFloats(true)
			return e.Encode(&ev)
		},
		"array": func(e *msgpack.Encoder, ev Event) error {
			e.UseArrayEncodedStructs(true)
			return e.Encode(&ev)
		},
		"no omitempty": func(e *msgpack.Encoder, ev Event) error {
			return e.Encode(eventNoOmit(ev))
		},
	}
	for range 1000 {
		ev := genEvent(rng)
		ev.V = eventVersion
		for name, enc := range encoders {
			var buf bytes.Buffer
			if err := enc(msgpack.NewEncoder(&buf), ev); err != nil {
				t.Fatal(err)
			}
			got, err := checkDecode(t, buf.Bytes())
			want := storedForm(ev)
			// Written even when empty, these decode as they were.
			if name != "compact" {
				want.Data = ev.Data
			}
			if name == "array" && ev.Retry != nil { // arrays hold every field, nested ones too
				want.Retry.BackoffCoefficient = ev.Retry.BackoffCoefficient
			}
			if err == nil && !sameEvent(got, want) {
				t.Fatalf("%s: got %+v %+v\nwant %+v %+v", name, got, got.Retry, want, want.Retry)
			}
		}
	}
	// Array forms with a wrong number of fields are refused; an empty one is
	// the zero event, refused for its version.
	for _, in := range []any{[]any{}, []any{1, 1}, []any{1, 1, time.Unix(1, 0), 0, "", nil, "", time.Time{}, []any{}, nil}} {
		b, _ := msgpack.Marshal(in)
		checkDecode(t, b)
	}
}

// TestDecodeEventTruncated checks that every proper prefix of an encoding
// is refused.
func TestDecodeEventTruncated(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for range 100 {
		b, _ := EncodeEvent(genEvent(rng))
		for i := range min(len(b), 400) {
			if _, err := DecodeEvent(b[:i]); err == nil {
				t.Fatalf("prefix %x of %x decoded", b[:i], b)
			}
		}
	}
}

// TestDecodeEventNilTime pins a deliberate difference: msgpack/v5 panics
// decoding nil into a time.Time field (its decodeNilValue calls IsNil on the
// struct); DecodeEvent takes it for the zero time, as msgpack/v5 meant to.
// EncodeEvent never writes it.
func TestDecodeEventNilTime(t *testing.T) {
	b := mpack.AppendMapHeader(nil, 4)
	b = mpack.AppendUint8(mpack.AppendString(b, "v"), 1)
	b = mpack.AppendUint8(mpack.AppendString(b, "k"), uint8(TimerFired))
	b = mpack.AppendNil(mpack.AppendString(b, "t"))
	b = mpack.AppendNil(mpack.AppendString(b, "f"))
	ev, err := DecodeEvent(b)
	if err != nil || !sameEvent(ev, Event{V: 1, Kind: TimerFired}) {
		t.Fatalf("got %+v, %v", ev, err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("msgpack/v5 decodes a nil time now: drop the difference")
			}
		}()
		_, _ = refDecodeEvent(b)
	}()
}

// FuzzDecodeEvent checks DecodeEvent against the reflection decoder on
// arbitrary input: never a panic, the same verdict, the same event.
func FuzzDecodeEvent(f *testing.F) {
	rng := rand.New(rand.NewSource(4))
	for range 50 {
		b, _ := EncodeEvent(genEvent(rng))
		if len(b) < 2000 {
			f.Add(b)
			v, _ := mpacktest.Variant(rng, b)
			f.Add(v)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeEvent(b)
		// The reference allocates a byte slice of the declared length before
		// reading it, which a fuzzed 4 GiB length makes too costly: run it
		// only on input that holds one complete value. Anything else is
		// truncated, and refused by both.
		if r := mpack.NewReader(b); r.Skip() != nil {
			if err == nil {
				t.Fatalf("truncated %x decoded as %+v", b, got)
			}
			return
		}
		want, refErr, panicked := refDecodeRecover(b)
		if panicked {
			want, refErr = got, err // msgpack/v5 panics on a nil time: see TestDecodeEventNilTime
		}
		if (err != nil) != (refErr != nil) || !sameEvent(got, want) {
			t.Fatalf("decode of %x:\n got %+v, %v\nwant %+v, %v", b, got, err, want, refErr)
		}
		if err == nil {
			again, err := DecodeEvent(mustEncode(t, got))
			if err != nil || !sameEvent(again, storedForm(got)) {
				t.Fatalf("re-encoding %+v: %+v, %v", got, again, err)
			}
		}
	})
}

// refDecodeRecover is refDecodeEvent, reporting the panic msgpack/v5 raises
// on a nil time (reflect's IsNil called on a struct) instead of raising it.
func refDecodeRecover(b []byte) (ev Event, err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			if ve, ok := p.(*reflect.ValueError); !ok || ve.Method != "reflect.Value.IsNil" || ve.Kind != reflect.Struct {
				panic(p)
			}
			panicked = true
		}
	}()
	ev, err = refDecodeEvent(b)
	return ev, err, false
}

func mustEncode(t *testing.T, ev Event) []byte {
	b, err := EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sink keeps encoded events on the heap, as they are in use.
var sink []byte

func TestEncodeEventAllocs(t *testing.T) {
	ev := benchEvents()[1]
	if n := testing.AllocsPerRun(100, func() { sink, _ = EncodeEvent(ev) }); n != 1 {
		t.Fatalf("EncodeEvent: %v allocations, want 1", n)
	}
}

// benchEvents are a typical completion and a scheduled activity with a retry
// policy.
func benchEvents() []Event {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return []Event{
		{Kind: ActivityCompleted, Time: at, TaskID: 42, Data: []byte(`{"orderId":"A-1017","total":129.5}`)},
		{Kind: ActivityScheduled, Time: at, TaskID: 43, Name: "ChargeCard", Data: []byte(`{"orderId":"A-1017"}`),
			Retry: &RetryPolicy{MaxAttempts: 5, FirstRetryInterval: time.Second, BackoffCoefficient: 2, MaxRetryInterval: time.Minute}},
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	for _, c := range []struct {
		name   string
		encode func(Event) ([]byte, error)
	}{{"reflect", refEncodeEvent}, {"mpack", EncodeEvent}} {
		for i, ev := range benchEvents() {
			b.Run(fmt.Sprintf("%s/%s", c.name, []string{"completed", "scheduled"}[i]), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.encode(ev); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	for _, c := range []struct {
		name   string
		decode func([]byte) (Event, error)
	}{{"reflect", refDecodeEvent}, {"mpack", DecodeEvent}} {
		for i, ev := range benchEvents() {
			enc, _ := EncodeEvent(ev)
			b.Run(fmt.Sprintf("%s/%s", c.name, []string{"completed", "scheduled"}[i]), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.decode(enc); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
