package storage

import (
	"bytes"
	"fmt"
	"time"
)

// A partition is the unit that moves between the nodes of a cluster: every key
// of an instance, its reminders, its awake flag and its listing entry live under
// the partition's prefix (keys.go), so copying the prefix copies the partition.

// KV is one key and value of a partition, as ScanPartition yields them.
type KV struct {
	K, V []byte
}

// ScanPartition calls fn with every key of partition part, in order, in chunks
// of about chunkBytes. The slices belong to fn.
func (db *DB) ScanPartition(part uint16, chunkBytes int, fn func([]KV) error) error {
	if err := db.check(part); err != nil {
		return err
	}
	defer db.release()
	prefix := partPrefix(part)
	var chunk []KV
	size := 0
	err := db.scan(prefix, prefixEnd(prefix), func(k, v []byte) error {
		chunk = append(chunk, KV{bytes.Clone(k), bytes.Clone(v)})
		size += len(k) + len(v)
		if size >= chunkBytes {
			out := chunk
			chunk, size = nil, 0
			if err := fn(out); err != nil {
				return errCallback{err}
			}
		}
		return nil
	})
	if err == nil && len(chunk) > 0 {
		if cerr := fn(chunk); cerr != nil {
			err = errCallback{cerr}
		}
	}
	return unwrapCallback(err, func(err error) error { return fmt.Errorf("storage: scan partition %d: %w", part, err) })
}

// DeletePartition deletes every key of partition part (one range deletion).
func (b *Batch) DeletePartition(part uint16) {
	if err := b.db.validPartition(part); err != nil {
		b.fail(fmt.Errorf("storage: delete partition: %w", err))
		return
	}
	b.delPrefix("delete partition", fmt.Sprint(part), partPrefix(part))
}

// AwakeIn calls fn for the instances in the awake set of partition part.
func (db *DB) AwakeIn(part uint16, fn func(id string) error) error {
	if err := db.check(part); err != nil {
		return err
	}
	defer db.release()
	prefix := awakePrefix(part)
	err := db.scan(prefix, prefixEnd(prefix), func(k, _ []byte) error {
		if err := fn(string(k[len(prefix):])); err != nil {
			return errCallback{err}
		}
		return nil
	})
	return unwrapCallback(err, func(err error) error { return fmt.Errorf("storage: scan awake set of partition %d: %w", part, err) })
}

// RemindersIn returns every reminder of partition part due before before (zero:
// all), in due order.
func (db *DB) RemindersIn(part uint16, before time.Time) ([]Reminder, error) {
	var out []Reminder
	err := db.ScanDue(part, time.Time{}, before, 0, func(r Reminder) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// PutMeta stores the node-wide value n/<key> as part of the batch, so it commits
// atomically with the rest (a partition's data and the record that it is held).
func (b *Batch) PutMeta(key string, v []byte) {
	if key == metaKeyName || key == "" {
		b.fail(fmt.Errorf("storage: put meta: key %q is reserved", key))
		return
	}
	b.set("put meta", key, nodeKey(key), v)
}
