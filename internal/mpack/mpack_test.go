package mpack

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftrt/weft/internal/mpack/mpacktest"
)

// reference encodes with msgpack/v5, compact ints on or off.
func reference(t *testing.T, compact bool, f func(*msgpack.Encoder) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.UseCompactInts(compact)
	if err := f(e); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %x, want %x", what, got, want)
	}
}

// interestingInts are the boundaries of every msgpack integer form.
func interestingInts() []int64 {
	var ns []int64
	for _, b := range []int64{0, 31, 32, 33, 127, 128, 255, 256, 1 << 15, 1 << 16, 1 << 31, 1 << 32, 1 << 62} {
		ns = append(ns, b-1, b, b+1, -b-1, -b, -b+1)
	}
	return append(ns, math.MaxInt64, math.MinInt64, math.MinInt64+1, math.MaxInt64-1)
}

func TestAppendIntsMatchMsgpack(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ns := interestingInts()
	for range 2000 {
		ns = append(ns, rng.Int63()>>rng.Intn(63)*int64(1-2*rng.Intn(2)))
	}
	for _, n := range ns {
		sameBytes(t, fmt.Sprint("AppendInt ", n), AppendInt(nil, n),
			reference(t, true, func(e *msgpack.Encoder) error { return e.EncodeInt(n) }))
		sameBytes(t, fmt.Sprint("AppendInt64 ", n), AppendInt64(nil, n),
			reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeInt64(n) }))
		u := uint64(n)
		sameBytes(t, fmt.Sprint("AppendUint ", u), AppendUint(nil, u),
			reference(t, true, func(e *msgpack.Encoder) error { return e.EncodeUint(u) }))
		sameBytes(t, fmt.Sprint("AppendUint8 ", uint8(n)), AppendUint8(nil, uint8(n)),
			reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeUint8(uint8(n)) }))
		f := float64(n) / 3
		sameBytes(t, fmt.Sprint("AppendFloat64 ", f), AppendFloat64(nil, f),
			reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeFloat64(f) }))
	}
	for _, f := range []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64, math.MaxFloat64} {
		sameBytes(t, fmt.Sprint("AppendFloat64 ", f), AppendFloat64(nil, f),
			reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeFloat64(f) }))
	}
	for _, v := range []bool{false, true} {
		sameBytes(t, fmt.Sprint("AppendBool ", v), AppendBool(nil, v),
			reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeBool(v) }))
	}
	sameBytes(t, "AppendNil", AppendNil(nil), reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeNil() }))
}

// interestingLens are the boundaries of every string, binary and map form.
var interestingLens = []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000}

func TestAppendLengthsMatchMsgpack(t *testing.T) {
	for _, l := range interestingLens {
		s := strings.Repeat("é", l/2) + strings.Repeat("x", l%2)
		sameBytes(t, fmt.Sprint("AppendString ", l), AppendString(nil, s),
			reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeString(s) }))
		p := []byte(s)
		sameBytes(t, fmt.Sprint("AppendBytes ", l), AppendBytes(nil, p),
			reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeBytes(p) }))
		sameBytes(t, fmt.Sprint("AppendMapHeader ", l), AppendMapHeader(nil, l),
			reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeMapLen(l) }))
		if len(AppendString(nil, s)) > MaxHeaderSize+l || len(AppendBytes(nil, p)) > MaxHeaderSize+l {
			t.Fatalf("length %d: header over MaxHeaderSize", l)
		}
	}
	sameBytes(t, "AppendBytes nil", AppendBytes(nil, nil),
		reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeBytes(nil) }))
}

// interestingTimes covers every timestamp form and its boundaries.
func interestingTimes() []time.Time {
	ts := []time.Time{{}, time.Time{}.Add(1), time.Unix(0, 0), time.Unix(0, 1), time.Unix(-1, 0), time.Unix(-1, 999999999),
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}
	for _, s := range []int64{1<<32 - 1, 1 << 32, 1<<34 - 1, 1 << 34} {
		ts = append(ts, time.Unix(s, 0), time.Unix(s, 1), time.Unix(s, 999999999))
	}
	return ts
}

func TestAppendTimeMatchesMsgpack(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	ts := interestingTimes()
	for range 1000 {
		ts = append(ts, time.Unix(rng.Int63n(1<<36)-1<<35, rng.Int63n(1e9)))
	}
	for _, tm := range ts {
		got := AppendTime(nil, tm)
		sameBytes(t, fmt.Sprint("AppendTime ", tm), got,
			reference(t, false, func(e *msgpack.Encoder) error { return e.EncodeTime(tm) }))
		if len(got) > MaxTimeSize {
			t.Fatalf("%v: %d bytes, over MaxTimeSize", tm, len(got))
		}
	}
}

// scalar is what a Reader method read, or the reference decoder decoded.
type scalar struct {
	v   any
	n   int // bytes consumed
	err bool
}

// readers pairs each Reader method with the msgpack/v5 decoding it mirrors:
// the decoder of a struct field of that Go type.
var readers = []struct {
	name string
	read func(*Reader) (any, error)
	ref  func(*msgpack.Decoder) (any, error)
}{
	{"int", func(r *Reader) (any, error) { return r.ReadInt() }, refField[int64]},
	{"uint", func(r *Reader) (any, error) { return r.ReadUint() }, refField[uint64]},
	{"float64", func(r *Reader) (any, error) {
		f, err := r.ReadFloat64()
		return math.Float64bits(f), err
	}, func(d *msgpack.Decoder) (any, error) {
		f, err := refField[float64](d)
		return math.Float64bits(f.(float64)), err
	}},
	{"bool", func(r *Reader) (any, error) { return r.ReadBool() }, refField[bool]},
	{"string", func(r *Reader) (any, error) { return r.ReadString() }, refField[string]},
	{"bytes", func(r *Reader) (any, error) { return r.ReadBytes() }, refField[[]byte]},
	{"time", func(r *Reader) (any, error) { return r.ReadTime() }, refTime},
	{"nil", func(r *Reader) (any, error) { return nil, r.ReadNil() }, func(d *msgpack.Decoder) (any, error) { return nil, d.DecodeNil() }},
	{"skip", func(r *Reader) (any, error) { return nil, r.Skip() }, func(d *msgpack.Decoder) (any, error) { return nil, d.Skip() }},
	{"map length", func(r *Reader) (any, error) { return r.ReadMapLen() }, func(d *msgpack.Decoder) (any, error) { return d.DecodeMapLen() }},
	{"key", func(r *Reader) (any, error) {
		k, err := r.ReadKey()
		return string(k), err
	}, func(d *msgpack.Decoder) (any, error) { return d.DecodeString() }},
}

// refField decodes like msgpack/v5 decodes a struct field of type T.
func refField[T any](d *msgpack.Decoder) (any, error) {
	var v T
	err := d.DecodeValue(reflect.ValueOf(&v).Elem())
	return v, err
}

// refTime is refField[time.Time], except for nil: msgpack/v5 means to decode
// it as the zero time, but panics (its decodeNilValue calls IsNil on the
// struct). ReadTime does what it meant.
func refTime(d *msgpack.Decoder) (any, error) {
	if c, err := d.PeekCode(); err == nil && c == 0xc0 {
		return time.Time{}, d.DecodeNil()
	}
	return refField[time.Time](d)
}

func readBoth(b []byte, i int) (got, want scalar) {
	rd := readers[i]
	r := NewReader(b)
	v, err := rd.read(&r)
	got = scalar{v, r.off, err != nil}
	br := bytes.NewReader(b)
	v, err = rd.ref(msgpack.NewDecoder(br))
	want = scalar{v, len(b) - br.Len(), err != nil}
	if got.err || want.err {
		got.v, got.n, want.v, want.n = nil, 0, nil, 0
	}
	return got, want
}

// checkReaders compares every Reader method with msgpack/v5 on b. The
// reference runs only when b starts with a complete value (Skip succeeds):
// msgpack/v5 allocates a byte slice of the declared length before reading
// it, which a fuzzed length of 4 GiB makes too costly. A read of a value that
// does not skip must fail.
func checkReaders(t *testing.T, b []byte) {
	r := NewReader(b)
	complete := r.Skip() == nil
	for i, rd := range readers {
		if !complete {
			r := NewReader(b)
			if v, err := rd.read(&r); err == nil && rd.name != "map length" && rd.name != "nil" {
				t.Fatalf("%s of incomplete %x: %v, no error", rd.name, b, v)
			}
			continue
		}
		got, want := readBoth(b, i)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s of %x:\n got %#v\nwant %#v", rd.name, b, got, want)
		}
	}
}

// values returns msgpack values of every kind the readers read, in the forms
// msgpack/v5 writes them, each then in a random other form.
func values(rng *rand.Rand) [][]byte {
	var vs [][]byte
	add := func(v any) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			panic(err)
		}
		vs = append(vs, b)
		for range 3 {
			w, err := mpacktest.Variant(rng, b)
			if err != nil {
				panic(err)
			}
			vs = append(vs, w)
		}
	}
	for _, n := range interestingInts() {
		add(n)
		add(uint64(n))
		add(float64(n))
		add(float32(n))
	}
	for _, f := range []float64{0.5, math.Copysign(0, -1), math.Inf(1), math.NaN()} {
		add(f)
	}
	for _, l := range interestingLens {
		add(strings.Repeat("a", l))
		add(bytes.Repeat([]byte("b"), l))
	}
	for _, tm := range interestingTimes() {
		add(tm)
	}
	add(nil)
	add(true)
	add(false)
	add([]byte(nil))
	add(map[string]any{"a": 1, "b": []any{1, "x", nil, map[string]any{"c": 2.5}}, "t": time.Unix(1, 2)})
	add([]any{})
	add(map[string]int{})
	return vs
}

func TestReadersMatchMsgpack(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, b := range values(rng) {
		checkReaders(t, b)
		// Every proper prefix is truncated input.
		for i := range len(b) {
			if len(b) < 300 || rng.Intn(len(b)/100) == 0 {
				checkReaders(t, b[:i])
			}
		}
		// Trailing bytes are left alone.
		checkReaders(t, append(append([]byte(nil), b...), 0xc1, 0x01))
	}
	// Every code, followed by zeros.
	for c := range 256 {
		checkReaders(t, []byte{byte(c), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	}
}

func TestReadTimeLocation(t *testing.T) {
	for _, tm := range interestingTimes() {
		r := NewReader(AppendTime(nil, tm))
		got, err := r.ReadTime()
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(tm) {
			t.Fatalf("got %v, want %v", got, tm)
		}
		// As msgpack/v5: time.Local, except the zero time, which is time.Time{}.
		if tm.IsZero() {
			if got != (time.Time{}) {
				t.Fatalf("zero time decoded as %#v", got)
			}
		} else if got.Location() != time.Local {
			t.Fatalf("%v decoded in %v, want Local", tm, got.Location())
		}
	}
}

func TestSkipDeepNesting(t *testing.T) {
	b := append(bytes.Repeat([]byte{0x91}, 1<<20), 0x01)
	r := NewReader(b)
	if err := r.Skip(); err != nil || r.off != len(b) {
		t.Fatalf("Skip: %v at %d of %d", err, r.off, len(b))
	}
	// A map32 claiming 2³² - 1 pairs in a few bytes is cut short at once.
	r = NewReader([]byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0x01})
	if err := r.Skip(); !errors.Is(err, ErrShort) {
		t.Fatalf("Skip of a truncated map32: %v", err)
	}
}

func TestReadStruct(t *testing.T) {
	index := func(name []byte) int {
		switch string(name) {
		case "a":
			return 0
		case "b":
			return 1
		}
		return -1
	}
	type rec struct {
		A int64  `msgpack:"a"`
		B string `msgpack:"b"`
	}
	cases := []struct {
		in   any
		enc  func(*msgpack.Encoder)
		want rec
		zero bool
		err  bool
	}{
		{in: rec{A: 1, B: "x"}, want: rec{1, "x"}},
		{in: map[string]any{"b": "y", "zz": []any{1, 2}, "a": 3}, want: rec{3, "y"}},
		{in: rec{A: 1, B: "x"}, enc: func(e *msgpack.Encoder) { e.UseArrayEncodedStructs(true) }, want: rec{1, "x"}},
		{in: []any{}, zero: true},
		{in: nil, zero: true},
		{in: []any{1}, err: true},
		{in: "x", err: true},
		{in: map[string]any{"a": "not an int"}, err: true},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		e := msgpack.NewEncoder(&buf)
		if c.enc != nil {
			c.enc(e)
		}
		if err := e.Encode(c.in); err != nil {
			t.Fatal(err)
		}
		var got rec
		r := NewReader(buf.Bytes())
		zero, err := r.ReadStruct(2, index, func(i int) (err error) {
			if i == 0 {
				got.A, err = r.ReadInt()
			} else {
				got.B, err = r.ReadString()
			}
			return err
		})
		if (err != nil) != c.err || zero != c.zero || (err == nil && got != c.want) {
			t.Errorf("%x: got %+v, zero %v, err %v; want %+v, zero %v, err %v", buf.Bytes(), got, zero, err, c.want, c.zero, c.err)
		}
		var ref rec
		if refErr := msgpack.Unmarshal(buf.Bytes(), &ref); (refErr != nil) != c.err || (refErr == nil && ref != c.want) {
			t.Errorf("%x: msgpack/v5 decodes %+v, %v: the case is wrong", buf.Bytes(), ref, refErr)
		}
	}
}

func FuzzReader(f *testing.F) {
	for _, b := range values(rand.New(rand.NewSource(4))) {
		if len(b) < 1000 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkReaders(t, b)
	})
}
