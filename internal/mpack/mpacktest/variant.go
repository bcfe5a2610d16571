// Package mpacktest helps test msgpack decoders: Variant re-encodes a msgpack
// value in another form that msgpack/v5 decodes into the same Go value, so a
// hand-written decoder can be checked against everything the reflection
// decoder accepted, not only against the bytes the encoder happens to write.
package mpacktest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// UnknownKeys are map keys no record uses; Variant inserts them, with junk
// values, to check that decoders skip what they do not know. "V" checks that
// names are matched case-sensitively.
var UnknownKeys = []string{"zz", "x", "V", "unknown", "", "vv", "ff"}

type kind uint8

const (
	kNil kind = iota
	kBool
	kInt  // fits int64
	kUint // above math.MaxInt64
	kFloat32
	kFloat64
	kStr
	kBin
	kArray
	kMap
	kExt
	kTime
)

type node struct {
	kind kind
	b    bool
	i    int64
	u    uint64
	f    float64
	s    []byte // string, binary or extension data
	typ  int8   // extension type
	sec  int64  // time
	nsec int64
	kids []node // array items, or map keys and values in turn
}

// Variant returns another encoding of the msgpack value at the start of b,
// which msgpack/v5 decodes into the same value of any Go type it decoded the
// original into. At random it: writes integers in any width and signedness
// that holds them (0 also as nil), floats as float32 or integers when exact,
// strings as any str or bin form (the empty string also as nil), binary as
// any bin or str form, times in any timestamp form and extension header
// that holds them (not as nil: msgpack/v5 panics decoding nil into a
// time.Time field), maps with any header, their
// pairs shuffled, some repeated, and pairs of UnknownKeys added.
func Variant(rng *rand.Rand, b []byte) ([]byte, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := parse(d)
	if err != nil {
		return nil, err
	}
	return emit(nil, rng, n), nil
}

func parse(d *msgpack.Decoder) (node, error) {
	c, err := d.PeekCode()
	if err != nil {
		return node{}, err
	}
	var n node
	switch {
	case c == msgpcode.Nil:
		return node{kind: kNil}, d.DecodeNil()
	case c == msgpcode.False || c == msgpcode.True:
		n.kind = kBool
		n.b, err = d.DecodeBool()
	case c == msgpcode.Uint64:
		n.u, err = d.DecodeUint64()
		n.kind, n.i = kUint, int64(n.u)
		if n.u <= math.MaxInt64 {
			n.kind = kInt
		}
	case msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64):
		n.kind = kInt
		n.i, err = d.DecodeInt64()
	case c == msgpcode.Float:
		var f float32
		f, err = d.DecodeFloat32()
		n.kind, n.f = kFloat32, float64(f)
	case c == msgpcode.Double:
		n.kind = kFloat64
		n.f, err = d.DecodeFloat64()
	case msgpcode.IsString(c):
		var s string
		s, err = d.DecodeString()
		n.kind, n.s = kStr, []byte(s)
	case msgpcode.IsBin(c):
		n.kind = kBin
		n.s, err = d.DecodeBytes()
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		var l int
		if l, err = d.DecodeArrayLen(); err != nil {
			return n, err
		}
		n.kind = kArray
		for range l {
			k, err := parse(d)
			if err != nil {
				return n, err
			}
			n.kids = append(n.kids, k)
		}
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		var l int
		if l, err = d.DecodeMapLen(); err != nil {
			return n, err
		}
		n.kind = kMap
		for range 2 * l {
			k, err := parse(d)
			if err != nil {
				return n, err
			}
			n.kids = append(n.kids, k)
		}
	case msgpcode.IsExt(c):
		var l int
		if n.typ, l, err = d.DecodeExtHeader(); err != nil {
			return n, err
		}
		n.kind, n.s = kExt, make([]byte, l)
		if err = d.ReadFull(n.s); err != nil {
			return n, err
		}
		if n.typ == -1 {
			switch l {
			case 4:
				n.kind, n.sec = kTime, int64(binary.BigEndian.Uint32(n.s))
			case 8:
				v := binary.BigEndian.Uint64(n.s)
				n.kind, n.sec, n.nsec = kTime, int64(v&(1<<34-1)), int64(v>>34)
			case 12:
				n.kind, n.nsec, n.sec = kTime, int64(binary.BigEndian.Uint32(n.s)), int64(binary.BigEndian.Uint64(n.s[4:]))
			}
		}
	default:
		return n, fmt.Errorf("mpacktest: unexpected code %#x", c)
	}
	return n, err
}

func emit(b []byte, rng *rand.Rand, n node) []byte {
	switch n.kind {
	case kNil:
		return append(b, msgpcode.Nil)
	case kBool:
		if !n.b && rng.Intn(4) == 0 {
			return append(b, msgpcode.Nil)
		}
		if n.b {
			return append(b, msgpcode.True)
		}
		return append(b, msgpcode.False)
	case kInt:
		return emitInt(b, rng, n.i)
	case kUint:
		if rng.Intn(2) == 0 {
			return binary.BigEndian.AppendUint64(append(b, msgpcode.Int64), n.u)
		}
		return binary.BigEndian.AppendUint64(append(b, msgpcode.Uint64), n.u)
	case kFloat32, kFloat64:
		return emitFloat(b, rng, n)
	case kStr, kBin:
		return emitBytes(b, rng, n)
	case kArray:
		b = header(b, rng, len(n.kids), msgpcode.FixedArrayLow, msgpcode.Array16, msgpcode.Array32)
		for _, k := range n.kids {
			b = emit(b, rng, k)
		}
		return b
	case kMap:
		return emitMap(b, rng, n)
	case kTime:
		return emitTime(b, rng, n)
	}
	b = extHeader(b, rng, len(n.s), n.typ)
	return append(b, n.s...)
}

func emitInt(b []byte, rng *rand.Rand, v int64) []byte {
	type form struct {
		ok   bool
		emit func([]byte) []byte
	}
	forms := [...]form{
		{v == 0, func(b []byte) []byte { return append(b, msgpcode.Nil) }},
		{v >= -32 && v <= 127, func(b []byte) []byte { return append(b, byte(v)) }},
		{v >= 0 && v <= math.MaxUint8, func(b []byte) []byte { return append(b, msgpcode.Uint8, byte(v)) }},
		{v >= math.MinInt8 && v <= math.MaxInt8, func(b []byte) []byte { return append(b, msgpcode.Int8, byte(v)) }},
		{v >= 0 && v <= math.MaxUint16, func(b []byte) []byte {
			return binary.BigEndian.AppendUint16(append(b, msgpcode.Uint16), uint16(v))
		}},
		{v >= math.MinInt16 && v <= math.MaxInt16, func(b []byte) []byte {
			return binary.BigEndian.AppendUint16(append(b, msgpcode.Int16), uint16(v))
		}},
		{v >= 0 && v <= math.MaxUint32, func(b []byte) []byte {
			return binary.BigEndian.AppendUint32(append(b, msgpcode.Uint32), uint32(v))
		}},
		{v >= math.MinInt32 && v <= math.MaxInt32, func(b []byte) []byte {
			return binary.BigEndian.AppendUint32(append(b, msgpcode.Int32), uint32(v))
		}},
		{v >= 0, func(b []byte) []byte { return binary.BigEndian.AppendUint64(append(b, msgpcode.Uint64), uint64(v)) }},
		{true, func(b []byte) []byte { return binary.BigEndian.AppendUint64(append(b, msgpcode.Int64), uint64(v)) }},
	}
	for {
		if f := forms[rng.Intn(len(forms))]; f.ok {
			return f.emit(b)
		}
	}
}

func emitFloat(b []byte, rng *rand.Rand, n node) []byte {
	f := n.f
	exactInt := f == math.Trunc(f) && math.Abs(f) < 1<<53 && !math.Signbit(f)
	exact32 := !math.IsNaN(f) && float64(float32(f)) == f
	switch rng.Intn(3) {
	case 0:
		if exactInt {
			return emitInt(b, rng, int64(f))
		}
	case 1:
		if exact32 || n.kind == kFloat32 {
			return binary.BigEndian.AppendUint32(append(b, msgpcode.Float), math.Float32bits(float32(f)))
		}
	}
	if n.kind == kFloat32 {
		// Widening a float32 keeps its value, but not a NaN's payload bits:
		// keep the original form.
		return binary.BigEndian.AppendUint32(append(b, msgpcode.Float), math.Float32bits(float32(f)))
	}
	return binary.BigEndian.AppendUint64(append(b, msgpcode.Double), math.Float64bits(f))
}

func emitBytes(b []byte, rng *rand.Rand, n node) []byte {
	l := len(n.s)
	if n.kind == kStr && l == 0 && rng.Intn(4) == 0 {
		return append(b, msgpcode.Nil)
	}
	for {
		switch rng.Intn(7) {
		case 0:
			if l < 32 {
				b = append(b, msgpcode.FixedStrLow|byte(l))
				return append(b, n.s...)
			}
		case 1, 2:
			if l <= math.MaxUint8 {
				b = append(b, []byte{msgpcode.Str8, msgpcode.Bin8}[rng.Intn(2)], byte(l))
				return append(b, n.s...)
			}
		case 3, 4:
			if l <= math.MaxUint16 {
				b = append(b, []byte{msgpcode.Str16, msgpcode.Bin16}[rng.Intn(2)])
				b = binary.BigEndian.AppendUint16(b, uint16(l))
				return append(b, n.s...)
			}
		default:
			b = append(b, []byte{msgpcode.Str32, msgpcode.Bin32}[rng.Intn(2)])
			b = binary.BigEndian.AppendUint32(b, uint32(l))
			return append(b, n.s...)
		}
	}
}

func emitMap(b []byte, rng *rand.Rand, n node) []byte {
	type pair struct{ k, v node }
	var pairs []pair
	for i := 0; i < len(n.kids); i += 2 {
		p := pair{n.kids[i], n.kids[i+1]}
		pairs = append(pairs, p)
		if rng.Intn(8) == 0 {
			pairs = append(pairs, p) // the same value again: decodes the same
		}
	}
	for range rng.Intn(3) {
		k := node{kind: kStr, s: []byte(UnknownKeys[rng.Intn(len(UnknownKeys))])}
		if len(k.s) == 0 && rng.Intn(2) == 0 {
			k = node{kind: kNil} // decoded as the name ""
		}
		pairs = append(pairs, pair{k, junk(rng, 3)})
	}
	rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	b = header(b, rng, len(pairs), msgpcode.FixedMapLow, msgpcode.Map16, msgpcode.Map32)
	for _, p := range pairs {
		b = emit(b, rng, p.k)
		b = emit(b, rng, p.v)
	}
	return b
}

func emitTime(b []byte, rng *rand.Rand, n node) []byte {
	sec, nsec := n.sec, n.nsec
	// The same instant with nanoseconds of a second or more: time.Unix
	// normalises them.
	if k := rng.Intn(4); k > 0 && nsec+int64(k)*1e9 <= math.MaxUint32 && sec > math.MinInt64+4 {
		sec, nsec = sec-int64(k), nsec+int64(k)*1e9
	}
	var data []byte
	switch {
	case nsec == 0 && sec >= 0 && sec <= math.MaxUint32 && rng.Intn(2) == 0:
		data = binary.BigEndian.AppendUint32(nil, uint32(sec))
	case sec >= 0 && sec < 1<<34 && nsec < 1<<30 && rng.Intn(2) == 0:
		data = binary.BigEndian.AppendUint64(nil, uint64(nsec)<<34|uint64(sec))
	default:
		data = binary.BigEndian.AppendUint32(nil, uint32(nsec))
		data = binary.BigEndian.AppendUint64(data, uint64(sec))
	}
	b = extHeader(b, rng, len(data), -1)
	return append(b, data...)
}

func header(b []byte, rng *rand.Rand, n int, fix, c16, c32 byte) []byte {
	for {
		switch rng.Intn(3) {
		case 0:
			if n < 16 {
				return append(b, fix|byte(n))
			}
		case 1:
			if n <= math.MaxUint16 {
				return binary.BigEndian.AppendUint16(append(b, c16), uint16(n))
			}
		default:
			return binary.BigEndian.AppendUint32(append(b, c32), uint32(n))
		}
	}
}

func extHeader(b []byte, rng *rand.Rand, n int, typ int8) []byte {
	fixed := map[int]byte{1: msgpcode.FixExt1, 2: msgpcode.FixExt2, 4: msgpcode.FixExt4, 8: msgpcode.FixExt8, 16: msgpcode.FixExt16}
	for {
		switch rng.Intn(4) {
		case 0:
			if c, ok := fixed[n]; ok {
				return append(b, c, byte(typ))
			}
		case 1:
			if n <= math.MaxUint8 {
				return append(b, msgpcode.Ext8, byte(n), byte(typ))
			}
		case 2:
			if n <= math.MaxUint16 {
				b = binary.BigEndian.AppendUint16(append(b, msgpcode.Ext16), uint16(n))
				return append(b, byte(typ))
			}
		default:
			b = binary.BigEndian.AppendUint32(append(b, msgpcode.Ext32), uint32(n))
			return append(b, byte(typ))
		}
	}
}

// junk returns a random value of any type, nested up to depth levels.
func junk(rng *rand.Rand, depth int) node {
	k := rng.Intn(12)
	if depth == 0 && k >= 9 {
		k = rng.Intn(9)
	}
	switch k {
	case 0:
		return node{kind: kNil}
	case 1:
		return node{kind: kBool, b: rng.Intn(2) == 0}
	case 2:
		return node{kind: kInt, i: rng.Int63() >> rng.Intn(63) * int64(1-2*rng.Intn(2))}
	case 3:
		return node{kind: kUint, u: 1<<63 | rng.Uint64()}
	case 4:
		return node{kind: kFloat64, f: rng.NormFloat64()}
	case 5:
		return node{kind: kStr, s: []byte(fmt.Sprint(rng.Int()))}
	case 6:
		return node{kind: kBin, s: []byte(fmt.Sprint(rng.Int()))}
	case 7:
		data := make([]byte, rng.Intn(20))
		rng.Read(data)
		return node{kind: kExt, typ: int8(rng.Intn(256)), s: data} // any type, -1 included: skipped all the same
	case 8:
		return node{kind: kTime, sec: rng.Int63n(1 << 40), nsec: rng.Int63n(1e9)}
	case 9:
		n := node{kind: kArray}
		for range rng.Intn(4) {
			n.kids = append(n.kids, junk(rng, depth-1))
		}
		return n
	default:
		n := node{kind: kMap}
		for range rng.Intn(4) {
			n.kids = append(n.kids, junk(rng, depth-1), junk(rng, depth-1))
		}
		return n
	}
}
