package mpack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrShort is returned when the input ends inside a value.
var ErrShort = errors.New("mpack: unexpected end of input")

// Reader reads msgpack values from a byte slice. Each Read method accepts what
// msgpack/v5 accepts when it decodes into a struct field of the matching type
// (and ReadTime also nil, on which msgpack/v5 panics), so
// a record decodes exactly as it did through reflection; they return an error,
// never panic, on malformed or truncated input. Strings and byte slices are
// copied: the input may be reused once a read returns.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader of b.
func NewReader(b []byte) Reader { return Reader{b: b} }

func codeError(c byte, decoding string) error {
	return fmt.Errorf("mpack: invalid code %#02x decoding %s", c, decoding)
}

func (r *Reader) next() (byte, error) {
	if r.off >= len(r.b) {
		return 0, ErrShort
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// take returns the next n bytes, a view of the input.
func (r *Reader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, ErrShort
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p, nil
}

func (r *Reader) uint16() (uint16, error) {
	p, err := r.take(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(p), nil
}

func (r *Reader) uint32() (uint32, error) {
	p, err := r.take(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(p), nil
}

func (r *Reader) uint64() (uint64, error) {
	p, err := r.take(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(p), nil
}

// PeekNil reports whether the next value is nil, without consuming it.
func (r *Reader) PeekNil() bool { return r.off < len(r.b) && r.b[r.off] == codeNil }

// ReadNil consumes a nil.
func (r *Reader) ReadNil() error {
	c, err := r.next()
	if err != nil {
		return err
	}
	if c != codeNil {
		return codeError(c, "nil")
	}
	return nil
}

// mapLen returns the length of a map whose code c was just read; ok is false
// when c is not a map code.
func (r *Reader) mapLen(c byte) (n int, ok bool, err error) {
	switch {
	case c&0xf0 == codeFixMapLow:
		return int(c & 0x0f), true, nil
	case c == codeMap16:
		m, err := r.uint16()
		return int(m), true, err
	case c == codeMap32:
		m, err := r.uint32()
		return int(m), true, err
	}
	return 0, false, nil
}

// arrayLen is mapLen for arrays.
func (r *Reader) arrayLen(c byte) (n int, ok bool, err error) {
	switch {
	case c&0xf0 == codeFixArrayLow:
		return int(c & 0x0f), true, nil
	case c == codeArray16:
		m, err := r.uint16()
		return int(m), true, err
	case c == codeArray32:
		m, err := r.uint32()
		return int(m), true, err
	}
	return 0, false, nil
}

// extLen returns the data length of an extension whose code c was just read.
func (r *Reader) extLen(c byte) (int, error) {
	switch c {
	case codeFixExt1:
		return 1, nil
	case codeFixExt2:
		return 2, nil
	case codeFixExt4:
		return 4, nil
	case codeFixExt8:
		return 8, nil
	case codeFixExt16:
		return 16, nil
	case codeExt8:
		n, err := r.next()
		return int(n), err
	case codeExt16:
		n, err := r.uint16()
		return int(n), err
	case codeExt32:
		n, err := r.uint32()
		return int(n), err
	}
	return 0, codeError(c, "ext length")
}

// bytesLen returns the length of a string or binary whose code c was just
// read, -1 for nil.
func (r *Reader) bytesLen(c byte) (int, error) {
	switch {
	case c == codeNil:
		return -1, nil
	case c&0xe0 == codeFixStrLow:
		return int(c & 0x1f), nil
	case c == codeStr8 || c == codeBin8:
		n, err := r.next()
		return int(n), err
	case c == codeStr16 || c == codeBin16:
		n, err := r.uint16()
		return int(n), err
	case c == codeStr32 || c == codeBin32:
		n, err := r.uint32()
		return int(n), err
	}
	return 0, codeError(c, "string/bytes length")
}

// ReadMapLen reads a map header and returns its length, -1 for nil. Like
// msgpack/v5's DecodeMapLen, it first skips the header of an extension, if
// there is one; storage's version check relies on that to reject exactly what
// it rejected before.
func (r *Reader) ReadMapLen() (int, error) {
	c, err := r.next()
	if err != nil {
		return 0, err
	}
	if isExt(c) {
		skip := 1 // the extension type
		switch c {
		case codeExt8:
			skip += 1
		case codeExt16:
			skip += 2
		case codeExt32:
			skip += 4
		}
		if _, err := r.take(skip); err != nil {
			return 0, err
		}
		if c, err = r.next(); err != nil {
			return 0, err
		}
	}
	if c == codeNil {
		return -1, nil
	}
	n, ok, err := r.mapLen(c)
	if !ok {
		return 0, codeError(c, "map length")
	}
	return n, err
}

func isExt(c byte) bool {
	return (c >= codeFixExt1 && c <= codeFixExt16) || (c >= codeExt8 && c <= codeExt32)
}

// ReadStruct reads a struct in any form msgpack/v5 decodes into a Go struct:
//
//   - a map of field names to values, in any order; names index does not know
//     (index returns -1) are skipped, and a repeated name is decoded again;
//   - an array of exactly nfields values in field order (the as_array form);
//   - nil, or an empty array, both meaning the zero struct, which ReadStruct
//     reports as zero so the caller can reset what it decodes into.
//
// field decodes the value of field i from r.
func (r *Reader) ReadStruct(nfields int, index func(name []byte) int, field func(i int) error) (zero bool, err error) {
	c, err := r.next()
	if err != nil {
		return false, err
	}
	if c == codeNil {
		return true, nil
	}
	if n, ok, err := r.mapLen(c); ok {
		if err != nil {
			return false, err
		}
		for range n {
			name, err := r.ReadKey()
			if err != nil {
				return false, err
			}
			if i := index(name); i >= 0 {
				err = field(i)
			} else {
				err = r.Skip()
			}
			if err != nil {
				return false, err
			}
		}
		return false, nil
	}
	n, ok, err := r.arrayLen(c)
	switch {
	case !ok:
		return false, codeError(c, "map length")
	case err != nil:
		return false, err
	case n == 0:
		return true, nil
	case n != nfields:
		return false, fmt.Errorf("mpack: array-encoded struct has %d fields, want %d", n, nfields)
	}
	for i := range n {
		if err := field(i); err != nil {
			return false, err
		}
	}
	return false, nil
}

// ReadKey reads a string (or binary, or nil: the empty name) and returns a view
// of its bytes, valid as long as the input is.
func (r *Reader) ReadKey() ([]byte, error) {
	c, err := r.next()
	if err != nil {
		return nil, err
	}
	n, err := r.bytesLen(c)
	if err != nil || n < 0 {
		return nil, err
	}
	return r.take(n)
}

// ReadString reads a string; binary is accepted too, and nil is "".
func (r *Reader) ReadString() (string, error) {
	p, err := r.ReadKey()
	return string(p), err
}

// ReadBytes reads binary (or a string) into a new slice; nil is a nil slice,
// and an empty value an empty, non-nil one.
func (r *Reader) ReadBytes() ([]byte, error) {
	c, err := r.next()
	if err != nil {
		return nil, err
	}
	n, err := r.bytesLen(c)
	if err != nil || n < 0 {
		return nil, err
	}
	p, err := r.take(n)
	if err != nil {
		return nil, err
	}
	return append(make([]byte, 0, n), p...), nil
}

// ReadInt reads an integer of any msgpack width and signedness, nil being 0.
// Wider values wrap, as they do through msgpack/v5.
func (r *Reader) ReadInt() (int64, error) {
	c, err := r.next()
	if err != nil {
		return 0, err
	}
	return r.int(c, "int")
}

// ReadUint reads what ReadInt reads, as an unsigned number (-1 is 1<<64-1).
func (r *Reader) ReadUint() (uint64, error) {
	n, err := r.ReadInt()
	return uint64(n), err
}

func (r *Reader) int(c byte, decoding string) (int64, error) {
	if c <= 0x7f || c >= codeNegFixLow {
		return int64(int8(c)), nil
	}
	switch c {
	case codeNil:
		return 0, nil
	case codeUint8:
		n, err := r.next()
		return int64(n), err
	case codeInt8:
		n, err := r.next()
		return int64(int8(n)), err
	case codeUint16:
		n, err := r.uint16()
		return int64(n), err
	case codeInt16:
		n, err := r.uint16()
		return int64(int16(n)), err
	case codeUint32:
		n, err := r.uint32()
		return int64(n), err
	case codeInt32:
		n, err := r.uint32()
		return int64(int32(n)), err
	case codeUint64, codeInt64:
		n, err := r.uint64()
		return int64(n), err
	}
	return 0, codeError(c, decoding)
}

// ReadFloat64 reads a float32, a float64 or an integer (nil being 0).
func (r *Reader) ReadFloat64() (float64, error) {
	c, err := r.next()
	if err != nil {
		return 0, err
	}
	switch c {
	case codeFloat:
		n, err := r.uint32()
		return float64(math.Float32frombits(n)), err
	case codeDouble:
		n, err := r.uint64()
		return math.Float64frombits(n), err
	}
	n, err := r.int(c, "float64")
	return float64(n), err
}

// ReadBool reads a bool, nil being false.
func (r *Reader) ReadBool() (bool, error) {
	c, err := r.next()
	if err != nil {
		return false, err
	}
	switch c {
	case codeNil, codeFalse:
		return false, nil
	case codeTrue:
		return true, nil
	}
	return false, codeError(c, "bool")
}

// ReadTime reads a timestamp extension in its 4, 8 or 12 byte form, or nil.
// Like msgpack/v5 it returns the time in time.Local, except the zero time,
// which has no location (it is time.Time{}). nil is the zero time: msgpack/v5
// means it to be, but panics decoding nil into a time.Time field (it calls
// reflect's IsNil on the struct); no encoder of ours writes it.
func (r *Reader) ReadTime() (time.Time, error) {
	c, err := r.next()
	if err != nil || c == codeNil {
		return time.Time{}, err
	}
	n, err := r.extLen(c)
	if err != nil {
		return time.Time{}, err
	}
	typ, err := r.next()
	if err != nil {
		return time.Time{}, err
	}
	if typ != timeExt {
		return time.Time{}, fmt.Errorf("mpack: got ext type %d decoding time, want -1", int8(typ))
	}
	p, err := r.take(n)
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	switch n {
	case 4:
		t = time.Unix(int64(binary.BigEndian.Uint32(p)), 0)
	case 8:
		d := binary.BigEndian.Uint64(p)
		t = time.Unix(int64(d&(1<<34-1)), int64(d>>34))
	case 12:
		t = time.Unix(int64(binary.BigEndian.Uint64(p[4:])), int64(binary.BigEndian.Uint32(p)))
	default:
		return time.Time{}, fmt.Errorf("mpack: invalid ext length %d decoding time", n)
	}
	if t.IsZero() {
		t = t.UTC()
	}
	return t, nil
}

// Skip consumes one value of any type, nested ones included. It does not
// recurse, so deeply nested input cannot exhaust the stack.
func (r *Reader) Skip() error {
	// pending counts the values still to skip. Each takes at least a byte, so
	// more of them than bytes left means truncated input.
	for pending := 1; pending > 0; pending-- {
		if pending > len(r.b)-r.off {
			return ErrShort
		}
		c := r.b[r.off]
		r.off++
		switch {
		case c <= 0x7f || c >= codeNegFixLow:
			continue
		case c&0xf0 == codeFixMapLow:
			pending += 2 * int(c&0x0f)
			continue
		case c&0xf0 == codeFixArrayLow:
			pending += int(c & 0x0f)
			continue
		}
		var err error
		switch c {
		case codeNil, codeFalse, codeTrue:
		case codeUint8, codeInt8:
			_, err = r.take(1)
		case codeUint16, codeInt16:
			_, err = r.take(2)
		case codeUint32, codeInt32, codeFloat:
			_, err = r.take(4)
		case codeUint64, codeInt64, codeDouble:
			_, err = r.take(8)
		case codeArray16, codeArray32:
			var n int
			n, _, err = r.arrayLen(c)
			pending += n
		case codeMap16, codeMap32:
			var n int
			n, _, err = r.mapLen(c)
			pending += 2 * n
		case codeFixExt1, codeFixExt2, codeFixExt4, codeFixExt8, codeFixExt16, codeExt8, codeExt16, codeExt32:
			var n int
			if n, err = r.extLen(c); err == nil {
				_, err = r.take(n + 1)
			}
		default:
			if c&0xe0 != codeFixStrLow && !(c >= codeBin8 && c <= codeBin32) && !(c >= codeStr8 && c <= codeStr32) {
				return fmt.Errorf("mpack: unknown code %#02x", c)
			}
			var n int
			if n, err = r.bytesLen(c); err == nil {
				_, err = r.take(n)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
