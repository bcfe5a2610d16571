package storage

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// EarliestDue returns the limit reminders due earliest in [from, to) over every
// partition, in due order (fewer if there are fewer; limit must be positive). A
// zero to is unbounded. Everything due before the last one returned is among
// them; others due at the same time as the last may not be.
//
// It merges one iterator per partition, so it reads about limit reminders.
// Scanning partition after partition, the reminder service read every reminder
// in range to find the earliest limit: with a million pending and a limit of
// 50,000, 3 or 4 for every one it kept. At most mergeWidth iterators are open
// at once, each holding buffers: a store of more partitions is merged group by
// group, each group stopping at the latest reminder kept so far.
func (db *DB) EarliestDue(from, to time.Time, limit int) ([]Reminder, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("storage: earliest due reminders: limit %d; must be positive", limit)
	}
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.release()
	var kept, group, spare []Reminder
	for first := 0; first < db.partitions; first += mergeWidth {
		var cutoff time.Time // zero: no cutoff
		if len(kept) == limit {
			cutoff = kept[limit-1].Due
		}
		var err error
		group, err = db.mergeDue(uint16(first), uint16(min(first+mergeWidth, db.partitions)-1), from, to, cutoff, limit, group[:0])
		if err != nil {
			return nil, err
		}
		if first == 0 {
			kept, group = group, nil
			continue
		}
		kept, spare = mergeByDue(spare[:0], kept, group, limit), kept
	}
	return kept, nil
}

// mergeWidth bounds the iterators EarliestDue holds open at once.
const mergeWidth = 256

// mergeDue appends to out the limit reminders due earliest in [from, to) of
// partitions first..last, in due order, stopping at the first due at or after
// a non-zero cutoff.
func (db *DB) mergeDue(first, last uint16, from, to, cutoff time.Time, limit int, out []Reminder) (_ []Reminder, err error) {
	var m dueMerge
	defer func() {
		for _, it := range m {
			if cerr := it.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	for p := int(first); p <= int(last); p++ {
		part := uint16(p)
		lower, upper := reminderDueRange(part, from, to)
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return nil, fmt.Errorf("storage: scan reminders: %w", err)
		}
		if !it.First() {
			if err := errors.Join(it.Error(), it.Close()); err != nil {
				return nil, fmt.Errorf("storage: scan reminders of partition %d: %w", part, err)
			}
			continue
		}
		m = append(m, it)
	}
	heap.Init(&m)
	for len(m) > 0 && len(out) < limit {
		it := m[0]
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("storage: scan reminders: %w", err)
		}
		r, err := decodeReminder(it.Key(), v)
		if err != nil {
			return nil, fmt.Errorf("storage: scan reminders: %w", err)
		}
		if !cutoff.IsZero() && !r.Due.Before(cutoff) {
			break // the caller keeps enough due by then; the rest of the group is later still
		}
		out = append(out, r)
		if it.Next() {
			heap.Fix(&m, 0)
			continue
		}
		heap.Pop(&m)
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return nil, fmt.Errorf("storage: scan reminders of partition %d: %w", r.Partition, err)
		}
	}
	return out, nil
}

// mergeByDue appends to out lists a and b merged in due order, up to limit in
// all.
func mergeByDue(out, a, b []Reminder, limit int) []Reminder {
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || len(a) > 0 && !b[0].Due.Before(a[0].Due) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

// decodeReminder decodes a reminder's due-time key and value.
func decodeReminder(k, v []byte) (Reminder, error) {
	p, due, id, name, err := parseReminderKey(k)
	if err != nil {
		return Reminder{}, err
	}
	payload, err := decodeReminderValue(v)
	if err != nil {
		return Reminder{}, fmt.Errorf("key %q: %w", k, err)
	}
	return Reminder{Partition: p, Instance: id, Name: name, Due: due, Payload: payload}, nil
}

// dueMerge is a min-heap of partition iterators by their current key without
// the partition prefix: due time, then instance and name, then partition.
type dueMerge []*pebble.Iterator

// partHead is the length of "p/<part:2B>/", the prefix that differs between
// the merged iterators.
const partHead = 2 + 2 + 1

func (m dueMerge) Len() int { return len(m) }
func (m dueMerge) Less(i, j int) bool {
	a, b := m[i].Key(), m[j].Key()
	if c := bytes.Compare(a[partHead:], b[partHead:]); c != 0 {
		return c < 0
	}
	return bytes.Compare(a[:partHead], b[:partHead]) < 0
}
func (m dueMerge) Swap(i, j int) { m[i], m[j] = m[j], m[i] }
func (m *dueMerge) Push(x any)   { *m = append(*m, x.(*pebble.Iterator)) }
func (m *dueMerge) Pop() any {
	old := *m
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*m = old[:len(old)-1]
	return it
}
