package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftrt/weft/internal/mpack"
	"github.com/weftrt/weft/internal/mpack/mpacktest"
)

// The reference: the record codecs as they were before codec.go, through
// msgpack/v5's reflection. The codecs must match it.

func refEncodeRecord(what string, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("storage: encode %s: %w", what, err)
	}
	return buf.Bytes(), nil
}

func refDecodeRecord(what string, maxV uint8, b []byte, v any) error {
	ver, err := refPeekVersion(b)
	if err != nil {
		return fmt.Errorf("storage: decode %s: %w", what, err)
	}
	if ver == 0 || ver > maxV {
		return fmt.Errorf("storage: decode %s: version %d, this build reads up to %d: %w", what, ver, maxV, ErrUnknownVersion)
	}
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("storage: decode %s (version %d): %w", what, ver, err)
	}
	return nil
}

func refPeekVersion(b []byte) (uint8, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := d.DecodeMapLen()
	if err != nil {
		return 0, fmt.Errorf("not a versioned record: %w", err)
	}
	for i := 0; i < n; i++ {
		k, err := d.DecodeString()
		if err != nil {
			return 0, fmt.Errorf("read field name: %w", err)
		}
		if k == "v" {
			v, err := d.DecodeUint8()
			if err != nil {
				return 0, fmt.Errorf("read version: %w", err)
			}
			return v, nil
		}
		if err := d.Skip(); err != nil {
			return 0, fmt.Errorf("skip field %q: %w", k, err)
		}
	}
	return 0, nil
}

// refDecoder decodes a record of type T through the reference.
func refDecoder[T any](what string, maxV uint8) func([]byte) (T, error) {
	return func(b []byte) (T, error) {
		var v T
		err := refDecodeRecord(what, maxV, b, &v)
		return v, err
	}
}

// recordCodec is one record's codec under test, with its reference.
type recordCodec[T any] struct {
	what        string
	v           uint8
	gen         func(*rand.Rand) T
	setV        func(T, uint8) any // the record with its version set, for refEncodeRecord
	encode      func(T) ([]byte, error)
	decode      func([]byte) (T, error)
	refDecode   func([]byte) (T, error)
	stored      func(T) T // what decode returns for what encode wrote
	size        func(T) int
	benchValues []T
}

func instanceCodec() recordCodec[*InstanceRecord] {
	return recordCodec[*InstanceRecord]{
		what: "instance record", v: instanceRecordV, gen: genInstance,
		setV:   func(r *InstanceRecord, v uint8) any { c := *r; c.V = v; return &c },
		encode: encodeInstance, decode: decodeInstance,
		refDecode: func(b []byte) (*InstanceRecord, error) {
			var r InstanceRecord
			if err := refDecodeRecord("instance record", instanceRecordV, b, &r); err != nil {
				return nil, err
			}
			return &r, nil
		},
		stored: func(r *InstanceRecord) *InstanceRecord {
			c := *r
			c.V = instanceRecordV
			storedTimes(&c.CreatedAt, &c.UpdatedAt, &c.ScheduledStartAt, &c.CompletedAt)
			storedBytes(&c.Input, &c.Output, &c.CustomStatus, &c.Inline)
			return &c
		},
		size: func(r *InstanceRecord) int { return instanceSize(r) },
	}
}

func activityCodec() recordCodec[ActivityRecord] {
	return recordCodec[ActivityRecord]{
		what: "activity record", v: activityRecordV, gen: genActivity,
		setV:   func(r ActivityRecord, v uint8) any { r.V = v; return &r },
		encode: func(r ActivityRecord) ([]byte, error) { return encodeActivity(&r) }, decode: decodeActivity,
		refDecode: refDecoder[ActivityRecord]("activity record", activityRecordV),
		stored: func(r ActivityRecord) ActivityRecord {
			r.V = activityRecordV
			storedTimes(&r.FirstAttemptAt, &r.NextAttemptAt)
			storedBytes(&r.Input)
			return r
		},
		size: func(r ActivityRecord) int { return activitySize(&r) },
	}
}

func outboxCodec() recordCodec[OutboxRecord] {
	return recordCodec[OutboxRecord]{
		what: "outbox record", v: outboxRecordV, gen: genOutbox,
		setV:   func(r OutboxRecord, v uint8) any { r.V = v; return &r },
		encode: func(r OutboxRecord) ([]byte, error) { return encodeOutbox(&r) }, decode: decodeOutbox,
		refDecode: refDecoder[OutboxRecord]("outbox record", outboxRecordV),
		stored: func(r OutboxRecord) OutboxRecord {
			r.V = outboxRecordV
			storedBytes(&r.Data)
			return r
		},
		size: func(r OutboxRecord) int { return outboxSize(&r) },
	}
}

func indexEntryCodec() recordCodec[IndexEntry] {
	return recordCodec[IndexEntry]{
		what: "index entry", v: indexEntryV,
		gen: func(rng *rand.Rand) IndexEntry {
			return IndexEntry{Name: mpacktest.String(rng), Status: genStatus(rng)}
		},
		setV:   func(e IndexEntry, v uint8) any { e.V = v; return &e },
		encode: func(e IndexEntry) ([]byte, error) { return encodeIndexEntry(e.Name, e.Status) }, decode: decodeIndexEntry,
		refDecode: refDecoder[IndexEntry]("index entry", indexEntryV),
		stored:    func(e IndexEntry) IndexEntry { e.V = indexEntryV; return e },
		size:      func(e IndexEntry) int { return indexEntryMaxFixed + len(e.Name) },
	}
}

func reminderCodec() recordCodec[[]byte] {
	return recordCodec[[]byte]{
		what: "reminder", v: reminderValueV, gen: mpacktest.Bytes,
		setV:   func(p []byte, v uint8) any { return &reminderValue{V: v, Payload: p} },
		encode: encodeReminderValue, decode: decodeReminderValue,
		refDecode: func(b []byte) ([]byte, error) {
			var v reminderValue
			if err := refDecodeRecord("reminder", reminderValueV, b, &v); err != nil {
				return nil, err
			}
			return v.Payload, nil
		},
		stored: func(p []byte) []byte { storedBytes(&p); return p },
		size:   func(p []byte) int { return reminderMaxFixed + len(p) },
	}
}

// storedTimes sets times as msgpack/v5 decodes them: in time.Local, the zero
// time without a location.
func storedTimes(ts ...*time.Time) {
	for _, t := range ts {
		if t.IsZero() {
			*t = time.Time{}
		} else {
			*t = t.Local()
		}
	}
}

// storedBytes sets empty slices to nil: they are omitted.
func storedBytes(bs ...*[]byte) {
	for _, b := range bs {
		if len(*b) == 0 {
			*b = nil
		}
	}
}

func genStatus(rng *rand.Rand) Status {
	if rng.Intn(10) == 0 {
		return Status(128 + rng.Intn(128))
	}
	return Status(rng.Intn(int(Stalled) + 1))
}

func genInstance(rng *rand.Rand) *InstanceRecord {
	r := &InstanceRecord{
		ID: mpacktest.String(rng), Name: mpacktest.String(rng), Status: genStatus(rng),
		CreatedAt: mpacktest.Time(rng), UpdatedAt: mpacktest.Time(rng), ScheduledStartAt: mpacktest.Time(rng), CompletedAt: mpacktest.Time(rng),
		Input: mpacktest.Bytes(rng), Output: mpacktest.Bytes(rng), CustomStatus: mpacktest.Bytes(rng),
		ParentID: mpacktest.String(rng), ParentTask: mpacktest.Int(rng), ParentGen: uint32(mpacktest.Uint(rng)),
		ParentPending: rng.Intn(2) == 0, Generation: uint32(mpacktest.Uint(rng)),
		NextSeq: mpacktest.Uint(rng), NextInboxSeq: mpacktest.Uint(rng), Stalls: uint8(mpacktest.Uint(rng)),
		NextOutboxSeq: mpacktest.Uint(rng), Remote: rng.Intn(2) == 0, Episode: mpacktest.Uint(rng),
		Inline: mpacktest.Bytes(rng), Version: mpacktest.String(rng), StallReason: mpacktest.String(rng), StallDescription: mpacktest.String(rng),
		TraceParent: mpacktest.String(rng), TraceState: mpacktest.String(rng), App: mpacktest.String(rng),
		Notify: mpacktest.String(rng),
	}
	switch rng.Intn(3) {
	case 0:
		r.Failure = &Failure{}
	case 1:
		r.Failure = genFailure(rng)
	}
	return r
}

func genFailure(rng *rand.Rand) *Failure {
	return &Failure{Type: mpacktest.String(rng), Message: mpacktest.String(rng), Stack: mpacktest.String(rng), NonRetriable: rng.Intn(2) == 0}
}

func genActivity(rng *rand.Rand) ActivityRecord {
	r := ActivityRecord{TaskID: mpacktest.Int(rng), Name: mpacktest.String(rng), Input: mpacktest.Bytes(rng), Attempt: int(mpacktest.Int(rng)),
		FirstAttemptAt: mpacktest.Time(rng), NextAttemptAt: mpacktest.Time(rng), TaskExecutionID: mpacktest.String(rng),
		App: mpacktest.String(rng), Permit: rng.Intn(2) == 0}
	if rng.Intn(2) == 0 {
		r.Failed = genFailure(rng)
	}
	return r
}

func genOutbox(rng *rand.Rand) OutboxRecord {
	return OutboxRecord{Seq: mpacktest.Uint(rng), Target: mpacktest.String(rng), Kind: OutboxKind(rng.Intn(3)),
		Name: mpacktest.String(rng), Data: mpacktest.Bytes(rng)}
}

// sameErrors reports whether err and the reference's refErr agree: both nil,
// or both errors naming the record, both ErrUnknownVersion or neither, and
// then with the same message.
func sameErrors(what string, err, refErr error) bool {
	if err == nil || refErr == nil {
		return err == nil && refErr == nil
	}
	prefix := "storage: decode " + what
	if !strings.HasPrefix(err.Error(), prefix) || !strings.HasPrefix(refErr.Error(), prefix) {
		return false
	}
	if errors.Is(err, ErrUnknownVersion) || errors.Is(refErr, ErrUnknownVersion) {
		return err.Error() == refErr.Error() && errors.Is(err, ErrUnknownVersion)
	}
	return true
}

// checkDecode asserts that c.decode decodes b as the reference does, and
// returns the record.
func (c recordCodec[T]) checkDecode(t *testing.T, b []byte) (T, error) {
	t.Helper()
	got, err := c.decode(b)
	want, refErr, panicked := refRecover(c.refDecode, b)
	if panicked {
		return got, err
	}
	if !sameErrors(c.what, err, refErr) || (err == nil && !reflect.DeepEqual(got, want)) {
		t.Fatalf("%s: decode of %x:\n got %+v, %v\nwant %+v, %v", c.what, b, got, err, want, refErr)
	}
	return got, err
}

// refRecover calls the reference decoder, reporting the panic msgpack/v5
// raises on a nil time (its decodeNilValue calls IsNil on the struct) instead
// of raising it. The codecs read a nil time as the zero time.
func refRecover[T any](dec func([]byte) (T, error), b []byte) (v T, err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			if ve, ok := p.(*reflect.ValueError); !ok || ve.Method != "reflect.Value.IsNil" || ve.Kind != reflect.Struct {
				panic(p)
			}
			panicked = true
		}
	}()
	v, err = dec(b)
	return v, err, false
}

// run compares the codec with the reference on random records: the same
// bytes, the same decoded record (from those bytes, other encodings of them,
// and records of other versions), and a round trip.
func (c recordCodec[T]) run(t *testing.T, n int) {
	rng := rand.New(rand.NewSource(1))
	for i := range n {
		rec := c.gen(rng)
		b, err := c.encode(rec)
		if err != nil {
			t.Fatal(err)
		}
		want, err := refEncodeRecord(c.what, c.setV(rec, c.v))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("%s %d %+v:\n got %x\nwant %x", c.what, i, rec, b, want)
		}
		if len(b) > c.size(rec) {
			t.Fatalf("%s %d: %d bytes, over the size bound %d", c.what, i, len(b), c.size(rec))
		}
		got, err := c.checkDecode(t, b)
		if err != nil || !reflect.DeepEqual(got, c.stored(rec)) {
			t.Fatalf("%s %d: round trip:\n got %+v, %v\nwant %+v", c.what, i, got, err, c.stored(rec))
		}
		if rng.Intn(10) == 0 {
			other, _ := refEncodeRecord(c.what, c.setV(rec, []uint8{0, c.v + 1, 255}[rng.Intn(3)]))
			if _, err := c.checkDecode(t, other); !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("%s: %x decoded, %v; want ErrUnknownVersion", c.what, other, err)
			}
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
			if alt, err := c.checkDecode(t, v); err != nil || !reflect.DeepEqual(alt, got) {
				t.Fatalf("%s %d: variant %x of %x decodes to %+v, %v; want %+v", c.what, i, v, b, alt, err, got)
			}
		}
		for range 2 {
			c.checkDecode(t, b[:rng.Intn(len(b))]) // truncated
		}
	}
}

// fuzz checks c.decode against the reference on arbitrary input: never a
// panic, the same verdict and error, the same record.
func (c recordCodec[T]) fuzz(f *testing.F) {
	rng := rand.New(rand.NewSource(2))
	for range 50 {
		rec := c.gen(rng)
		b, _ := c.encode(rec)
		if len(b) < 2000 {
			f.Add(b)
			v, _ := mpacktest.Variant(rng, b)
			f.Add(v)
			other, _ := refEncodeRecord(c.what, c.setV(rec, 2))
			f.Add(other)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The reference allocates a byte slice of the declared length before
		// reading it, which a fuzzed 4 GiB length makes too costly: run it
		// only on input that holds one complete value. Anything else is
		// truncated, and refused by both.
		if r := mpack.NewReader(b); r.Skip() != nil {
			if got, err := c.decode(b); err == nil {
				t.Fatalf("%s: truncated %x decoded as %+v", c.what, b, got)
			}
			return
		}
		got, err := c.checkDecode(t, b)
		if err == nil {
			enc, err := c.encode(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := c.decode(enc)
			if err != nil || !reflect.DeepEqual(again, c.stored(got)) {
				t.Fatalf("%s: re-encoding %+v: %+v, %v", c.what, got, again, err)
			}
		}
	})
}

func codecRuns(t *testing.T) int {
	if testing.Short() {
		return 300
	}
	return 3000
}

func TestInstanceCodec(t *testing.T)   { instanceCodec().run(t, codecRuns(t)) }
func TestActivityCodec(t *testing.T)   { activityCodec().run(t, codecRuns(t)) }
func TestOutboxCodec(t *testing.T)     { outboxCodec().run(t, codecRuns(t)) }
func TestIndexEntryCodec(t *testing.T) { indexEntryCodec().run(t, codecRuns(t)) }
func TestReminderCodec(t *testing.T)   { reminderCodec().run(t, codecRuns(t)) }

func FuzzDecodeInstance(f *testing.F)      { instanceCodec().fuzz(f) }
func FuzzDecodeActivity(f *testing.F)      { activityCodec().fuzz(f) }
func FuzzDecodeOutbox(f *testing.F)        { outboxCodec().fuzz(f) }
func FuzzDecodeIndexEntry(f *testing.F)    { indexEntryCodec().fuzz(f) }
func FuzzDecodeReminderValue(f *testing.F) { reminderCodec().fuzz(f) }

// failureAsArray is Failure in msgpack/v5's as_array form.
type failureAsArray struct {
	_msgpack struct{} `msgpack:",as_array"`
	Type     string   `msgpack:"t"`
	Message  string   `msgpack:"m"`
	Stack    string   `msgpack:"s"`
	NonRetry bool     `msgpack:"nr"`
}

// instanceNoOmit is InstanceRecord with every field written, zero or not,
// and its failure as an array.
type instanceNoOmit struct {
	V                uint8           `msgpack:"v"`
	ID               string          `msgpack:"id"`
	Name             string          `msgpack:"n"`
	Status           Status          `msgpack:"s"`
	CreatedAt        time.Time       `msgpack:"ca"`
	UpdatedAt        time.Time       `msgpack:"ua"`
	ScheduledStartAt time.Time       `msgpack:"ss"`
	CompletedAt      time.Time       `msgpack:"co"`
	Input            []byte          `msgpack:"in"`
	Output           []byte          `msgpack:"out"`
	CustomStatus     []byte          `msgpack:"cs"`
	Failure          *failureAsArray `msgpack:"f"`
	ParentID         string          `msgpack:"pid"`
	ParentTask       int64           `msgpack:"pt"`
	ParentGen        uint32          `msgpack:"pg"`
	ParentPending    bool            `msgpack:"pp"`
	Generation       uint32          `msgpack:"g"`
	NextSeq          uint64          `msgpack:"ns"`
	NextInboxSeq     uint64          `msgpack:"nq"`
	Stalls           uint8           `msgpack:"st"`
	NextOutboxSeq    uint64          `msgpack:"no"`
	Remote           bool            `msgpack:"rm"`
	Episode          uint64          `msgpack:"ep"`
	Inline           []byte          `msgpack:"il"`
	Version          string          `msgpack:"vn"`
	StallReason      string          `msgpack:"sr"`
	StallDescription string          `msgpack:"sd"`
	TraceParent      string          `msgpack:"tp"`
	TraceState       string          `msgpack:"tst"`
	App              string          `msgpack:"ap"`
	Notify           string          `msgpack:"nf"`
}

// TestDecodeInstanceOtherEncoders decodes instance rows msgpack/v5 writes
// with other settings: without compact ints, with every field written (nil
// pointers and slices as nil, zero times as timestamps) and a failure as an
// array, and as an array (which the version check refuses: not a map).
func TestDecodeInstanceOtherEncoders(t *testing.T) {
	c := instanceCodec()
	rng := rand.New(rand.NewSource(3))
	for range 1000 {
		rec := genInstance(rng)
		rec.V = instanceRecordV
		full := instanceNoOmit{
			rec.V, rec.ID, rec.Name, rec.Status, rec.CreatedAt, rec.UpdatedAt, rec.ScheduledStartAt, rec.CompletedAt,
			rec.Input, rec.Output, rec.CustomStatus, nil, rec.ParentID, rec.ParentTask, rec.ParentGen, rec.ParentPending,
			rec.Generation, rec.NextSeq, rec.NextInboxSeq, rec.Stalls, rec.NextOutboxSeq, rec.Remote, rec.Episode, rec.Inline,
			rec.Version, rec.StallReason, rec.StallDescription, rec.TraceParent, rec.TraceState, rec.App, rec.Notify,
		}
		if f := rec.Failure; f != nil {
			full.Failure = &failureAsArray{Type: f.Type, Message: f.Message, Stack: f.Stack, NonRetry: f.NonRetriable}
		}
		for name, encode := range map[string]func(*msgpack.Encoder) error{
			"wide ints": func(e *msgpack.Encoder) error { return e.Encode(rec) },
			"no omitempty": func(e *msgpack.Encoder) error {
				e.UseCompactInts(true)
				return e.Encode(&full)
			},
			"array": func(e *msgpack.Encoder) error {
				e.UseArrayEncodedStructs(true)
				return e.Encode(rec)
			},
		} {
			var buf bytes.Buffer
			if err := encode(msgpack.NewEncoder(&buf)); err != nil {
				t.Fatal(err)
			}
			got, err := c.checkDecode(t, buf.Bytes())
			want := c.stored(rec)
			if name == "no omitempty" {
				want.Input, want.Output, want.CustomStatus, want.Inline = rec.Input, rec.Output, rec.CustomStatus, rec.Inline
			}
			if name == "array" {
				if err == nil {
					t.Fatalf("array: decoded %+v; want it refused as not a versioned record", got)
				}
			} else if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: got %+v, %v\nwant %+v", name, got, err, want)
			}
		}
	}
}

// sink keeps encoded records on the heap, as they are in use.
var sink []byte

func TestEncodeRecordAllocs(t *testing.T) {
	rec, act := sampleInstance(), sampleActivity()
	for name, f := range map[string]func(){
		"instance":    func() { sink, _ = encodeInstance(rec) },
		"activity":    func() { sink, _ = encodeActivity(act) },
		"outbox":      func() { sink, _ = encodeOutbox(&OutboxRecord{Seq: 3, Target: "t", Data: []byte("{}")}) },
		"index entry": func() { sink, _ = encodeIndexEntry("W", Running) },
		"reminder":    func() { sink, _ = encodeReminderValue([]byte("p")) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 1 {
			t.Errorf("%s: %v allocations, want 1", name, n)
		}
	}
}

// benchInstances are a running instance, as most steps write it, and the
// sample: finished with a failure, every field set.
func benchInstances() map[string]*InstanceRecord {
	return map[string]*InstanceRecord{
		"running": {ID: "order-1017", Name: "ProcessOrder", Status: Running, CreatedAt: t0, UpdatedAt: t1,
			Input: []byte(`{"orderId":"A-1017","total":129.5}`), NextSeq: 12, NextInboxSeq: 3, NextOutboxSeq: 1},
		"failed": sampleInstance(),
	}
}

func BenchmarkEncodeInstance(b *testing.B) {
	for _, c := range []struct {
		name   string
		encode func(*InstanceRecord) ([]byte, error)
	}{
		{"reflect", func(rec *InstanceRecord) ([]byte, error) {
			r := *rec
			r.V = instanceRecordV
			return refEncodeRecord("instance record", &r)
		}},
		{"mpack", encodeInstance},
	} {
		for _, kind := range []string{"running", "failed"} {
			rec := benchInstances()[kind]
			b.Run(c.name+"/"+kind, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.encode(rec); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecodeInstance(b *testing.B) {
	for _, c := range []struct {
		name   string
		decode func([]byte) (*InstanceRecord, error)
	}{{"reflect", instanceCodec().refDecode}, {"mpack", decodeInstance}} {
		for _, kind := range []string{"running", "failed"} {
			enc, _ := encodeInstance(benchInstances()[kind])
			b.Run(c.name+"/"+kind, func(b *testing.B) {
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
