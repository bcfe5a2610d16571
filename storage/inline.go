package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Inline is what an instance row (record version 2) carries besides the
// instance's status, so that activating an instance reads one key, found
// through the bloom filters, instead of iterating over all of its keys:
//
//   - the generation's history, while it is small (InlineHistoryLimit): a chain
//     step then writes one key, the row, rather than the row and one key per
//     event; a longer history moves to h/<seq> keys once (HistoryKeys);
//   - the instance's reminders (name and due time): the actor deletes them by
//     their due-time keys, and needs nothing else to find them;
//   - how many activity records (retries) and outbox entries the instance has
//     under its prefix, so those are read only when there are some.
//
// A row of version 1 has none of this: its history, reminders (through reverse
// entries), activity records and outbox are keys, read by iterating.
type Inline struct {
	// HistoryKeys: the history is stored as h/<seq> keys, not in History.
	HistoryKeys bool
	// History holds the encoded events of the generation (seq 0 up) while
	// HistoryKeys is false.
	History [][]byte
	// Reminders are the instance's stored reminders, by name and due time.
	Reminders []InlineReminder
	// Retrying and Outbox count the instance's activity records and outbox
	// entries.
	Retrying int
	Outbox   int
}

// InlineReminder names one reminder of the instance and when it is due (its
// key r/<due>/<id>/<name>).
type InlineReminder struct {
	Name string
	Due  time.Time
}

// InlineHistoryLimit is the size of encoded events a row holds: a step
// rewrites the row, so a longer inline history would cost every step more
// than the keys it saves.
const InlineHistoryLimit = 2 << 10

// HistorySize is the size of the encoded events of the inline history.
func (in *Inline) HistorySize() int {
	n := 0
	for _, ev := range in.History {
		n += len(ev)
	}
	return n
}

// The encoding: a format byte, then flags, counts and lengths as uvarints,
// event bytes as they are, each reminder as its name and an 8-byte due time.
const inlineFormat = 1

const inlineHistoryKeys = 1 // flags bit

// encodeInline appends in's encoding to b.
func encodeInline(b []byte, in *Inline) []byte {
	b = append(b, inlineFormat)
	flags := uint64(0)
	if in.HistoryKeys {
		flags |= inlineHistoryKeys
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendUvarint(b, uint64(in.Retrying))
	b = binary.AppendUvarint(b, uint64(in.Outbox))
	b = binary.AppendUvarint(b, uint64(len(in.History)))
	for _, ev := range in.History {
		b = binary.AppendUvarint(b, uint64(len(ev)))
		b = append(b, ev...)
	}
	b = binary.AppendUvarint(b, uint64(len(in.Reminders)))
	for _, r := range in.Reminders {
		b = binary.AppendUvarint(b, uint64(len(r.Name)))
		b = append(b, r.Name...)
		due := encodeTime(r.Due)
		b = append(b, due[:]...)
	}
	return b
}

func inlineSize(in *Inline) int {
	n := 1 + 5*binary.MaxVarintLen64
	for _, ev := range in.History {
		n += binary.MaxVarintLen64 + len(ev)
	}
	for _, r := range in.Reminders {
		n += binary.MaxVarintLen64 + len(r.Name) + 8
	}
	return n
}

var errInlineTruncated = errors.New("truncated")

// decodeInline reads an encoding of encodeInline. Event bytes alias b.
func decodeInline(b []byte) (*Inline, error) {
	if len(b) == 0 {
		return nil, errors.New("storage: decode inline state: empty")
	}
	if b[0] != inlineFormat {
		return nil, fmt.Errorf("storage: decode inline state: format %d, this build reads %d: %w", b[0], inlineFormat, ErrUnknownVersion)
	}
	d := inlineDecoder{b: b[1:]}
	in := &Inline{}
	flags := d.uvarint()
	in.HistoryKeys = flags&inlineHistoryKeys != 0
	in.Retrying = d.number()
	in.Outbox = d.number()
	if n := d.count(); n > 0 && d.err == nil {
		in.History = make([][]byte, n)
		for i := range in.History {
			in.History[i] = d.bytes(d.count())
		}
	}
	if n := d.count(); n > 0 && d.err == nil {
		in.Reminders = make([]InlineReminder, n)
		for i := range in.Reminders {
			in.Reminders[i].Name = string(d.bytes(d.count()))
			if due := d.bytes(8); d.err == nil {
				in.Reminders[i].Due = decodeTime(due)
			}
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("storage: decode inline state: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("storage: decode inline state: %d bytes after the end", len(d.b))
	}
	return in, nil
}

type inlineDecoder struct {
	b   []byte
	err error
}

func (d *inlineDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errInlineTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

// number reads a count of things stored elsewhere.
func (d *inlineDecoder) number() int {
	v := d.uvarint()
	if d.err == nil && v > 1<<31 {
		d.err = fmt.Errorf("count %d out of range", v)
		return 0
	}
	return int(v)
}

// count reads a length or count, which cannot exceed the bytes left (every
// counted item takes at least one byte).
func (d *inlineDecoder) count() int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)) {
		d.err = fmt.Errorf("count %d exceeds the %d bytes left", v, len(d.b))
		return 0
	}
	return int(v)
}

func (d *inlineDecoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = errInlineTruncated
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
