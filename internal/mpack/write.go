// Package mpack is a small msgpack writer and reader for the records weft
// stores on every workflow step: history events and the storage rows.
//
// Encoding those records through github.com/vmihailenco/msgpack/v5 cost
// 10-15% of a step's CPU in profiles, almost all of it reflection (walking the
// struct, OmitEmpty, interface boxing). The hand-written codecs built on this
// package produce exactly the bytes msgpack/v5 produced, so data written
// before and after the switch is the same, and read it back exactly as
// msgpack/v5 read it.
//
// Only the subset of msgpack those records use is here. The writers append to a
// caller's slice and mirror msgpack/v5's choices byte for byte:
//
//   - AppendUint and AppendInt write the smallest form, which is what
//     msgpack/v5 writes for every integer with UseCompactInts(true), and for
//     Go int and uint always;
//   - without compact ints msgpack/v5 writes the fixed width of the Go type
//     (uint8 as 0xcc xx, int64 as 0xd3 and eight bytes): AppendUint8 and
//     AppendInt64 are those forms;
//   - strings use fixstr, str8, str16, str32; byte slices bin8, bin16, bin32
//     (never fixstr), a nil slice being nil;
//   - times are the msgpack timestamp extension (type -1) in its 4, 8 or
//     12 byte form.
package mpack

import (
	"encoding/binary"
	"math"
	"time"
)

// Upper bounds of encoded sizes, for sizing a buffer before appending.
const (
	// MaxHeaderSize bounds the header of a string, byte slice or map.
	MaxHeaderSize = 5
	// MaxIntSize bounds an integer, a float64 and a bool.
	MaxIntSize = 9
	// MaxTimeSize bounds a time (ext8 header, type, 12 bytes).
	MaxTimeSize = 15
)

// Type codes of the msgpack format.
const (
	codeFixMapLow   = 0x80
	codeFixArrayLow = 0x90
	codeFixStrLow   = 0xa0
	codeNil         = 0xc0
	codeFalse       = 0xc2
	codeTrue        = 0xc3
	codeBin8        = 0xc4
	codeBin16       = 0xc5
	codeBin32       = 0xc6
	codeExt8        = 0xc7
	codeExt16       = 0xc8
	codeExt32       = 0xc9
	codeFloat       = 0xca
	codeDouble      = 0xcb
	codeUint8       = 0xcc
	codeUint16      = 0xcd
	codeUint32      = 0xce
	codeUint64      = 0xcf
	codeInt8        = 0xd0
	codeInt16       = 0xd1
	codeInt32       = 0xd2
	codeInt64       = 0xd3
	codeFixExt1     = 0xd4
	codeFixExt2     = 0xd5
	codeFixExt4     = 0xd6
	codeFixExt8     = 0xd7
	codeFixExt16    = 0xd8
	codeStr8        = 0xd9
	codeStr16       = 0xda
	codeStr32       = 0xdb
	codeArray16     = 0xdc
	codeArray32     = 0xdd
	codeMap16       = 0xde
	codeMap32       = 0xdf
	codeNegFixLow   = 0xe0
)

// timeExt is the msgpack extension type of a timestamp, -1, as a byte.
const timeExt = 0xff

// AppendNil appends nil.
func AppendNil(b []byte) []byte { return append(b, codeNil) }

// AppendBool appends true or false.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, codeTrue)
	}
	return append(b, codeFalse)
}

// AppendMapHeader appends the header of a map of n key-value pairs.
func AppendMapHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, codeFixMapLow|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, codeMap16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, codeMap32), uint32(n))
}

// AppendString appends s as a msgpack string.
func AppendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, codeFixStrLow|byte(n))
	case n <= math.MaxUint8:
		b = append(b, codeStr8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, codeStr16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, codeStr32), uint32(n))
	}
	return append(b, s...)
}

// AppendBytes appends p as msgpack binary, or nil when p is nil (an empty
// non-nil slice is an empty bin8).
func AppendBytes(b, p []byte) []byte {
	if p == nil {
		return AppendNil(b)
	}
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, codeBin8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, codeBin16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, codeBin32), uint32(n))
	}
	return append(b, p...)
}

// AppendUint appends n in its smallest form.
func AppendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, codeUint8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, codeUint16), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, codeUint32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, codeUint64), n)
}

// AppendInt appends n in its smallest form: a non-negative n as AppendUint
// writes it, a negative one as a negative fixint or the narrowest signed int.
func AppendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return AppendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, codeInt8, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, codeInt16), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, codeInt32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, codeInt64), uint64(n))
}

// AppendUint8 appends n as a uint8 (two bytes, whatever its value).
func AppendUint8(b []byte, n uint8) []byte { return append(b, codeUint8, n) }

// AppendInt64 appends n as an int64 (nine bytes, whatever its value).
func AppendInt64(b []byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeInt64), uint64(n))
}

// AppendFloat64 appends f as a float64.
func AppendFloat64(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeDouble), math.Float64bits(f))
}

// AppendTime appends t as a msgpack timestamp: 4 bytes of seconds when t is
// whole seconds in [1970, 2106), 8 bytes (30 bits of nanoseconds, 34 of
// seconds) up to 2514, otherwise 12 bytes (nanoseconds, then the seconds as
// a signed 64-bit count), which is also the form of times before 1970 and of
// the zero time. The location is not stored.
func AppendTime(b []byte, t time.Time) []byte {
	secs := uint64(t.Unix())
	if secs>>34 == 0 {
		data := uint64(t.Nanosecond())<<34 | secs
		if data>>32 == 0 {
			return binary.BigEndian.AppendUint32(append(b, codeFixExt4, timeExt), uint32(data))
		}
		return binary.BigEndian.AppendUint64(append(b, codeFixExt8, timeExt), data)
	}
	b = binary.BigEndian.AppendUint32(append(b, codeExt8, 12, timeExt), uint32(t.Nanosecond()))
	return binary.BigEndian.AppendUint64(b, secs)
}
