package storage

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ScanDueAll calls fn for the reminders of every partition with from ≤ due < to,
// in ascending due order across partitions (equal due times in key order), at
// most limit of them (0: no limit). A zero to is unbounded. An error from fn stops the scan and is
// returned unwrapped.
//
// It merges one iterator per partition, so a caller that wants the earliest n
// reads about n reminders. Scanning partition after partition, a caller had to
// read every reminder in range to find the earliest n: with a million pending
// and n = 50,000, the reminder service's refills read and decoded 3 or 4
// reminders for every one they kept.
func (db *DB) ScanDueAll(from, to time.Time, limit int, fn func(Reminder) error) (err error) {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	var m dueMerge
	defer func() {
		for _, it := range m {
			if cerr := it.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	for p := range db.partitions {
		part := uint16(p)
		upper := prefixEnd(reminderRangePrefix(part))
		if !to.IsZero() {
			upper = reminderDueBound(part, to)
		}
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: reminderDueBound(part, from), UpperBound: upper})
		if err != nil {
			return fmt.Errorf("storage: scan reminders: %w", err)
		}
		if !it.First() {
			if err := errors.Join(it.Error(), it.Close()); err != nil {
				return fmt.Errorf("storage: scan reminders of partition %d: %w", part, err)
			}
			continue
		}
		m = append(m, it)
	}
	heap.Init(&m)
	for n := 0; len(m) > 0 && (limit <= 0 || n < limit); n++ {
		it := m[0]
		r, err := decodeReminder(it)
		if err != nil {
			return fmt.Errorf("storage: scan reminders: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
		if it.Next() {
			heap.Fix(&m, 0)
			continue
		}
		heap.Pop(&m)
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return fmt.Errorf("storage: scan reminders of partition %d: %w", r.Partition, err)
		}
	}
	return nil
}

func decodeReminder(it *pebble.Iterator) (Reminder, error) {
	k := it.Key()
	p, due, id, name, err := parseReminderKey(k)
	if err != nil {
		return Reminder{}, err
	}
	v, err := it.ValueAndErr()
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
