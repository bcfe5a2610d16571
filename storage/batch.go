package storage

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Batch collects every change of one actor step so they commit atomically:
// history, the instance row, its index entry, reminders and activities. Methods
// without an error result record the first failure (an invalid id, say) and
// Commit returns it, so a bad step never commits half of its changes.
// A Batch is not safe for concurrent use.
type Batch struct {
	db  *DB
	b   *pebble.Batch
	err error
}

// NewBatch starts an empty batch. Close it when done, committed or not.
func (db *DB) NewBatch() *Batch {
	return &Batch{db: db, b: db.pdb.NewBatch()}
}

func (b *Batch) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return err
}

// checkInstance validates part and id and records a failure.
func (b *Batch) checkInstance(op string, part uint16, id string) error {
	if err := b.db.validPartition(part); err != nil {
		return b.fail(fmt.Errorf("storage: %s %s: %w", op, id, err))
	}
	if err := ValidateInstanceID(id); err != nil {
		return b.fail(fmt.Errorf("storage: %s: %w", op, err))
	}
	return nil
}

func (b *Batch) set(op, id string, k, v []byte) {
	if err := b.b.Set(k, v, nil); err != nil {
		b.fail(fmt.Errorf("storage: %s %s: %w", op, id, err))
	}
}

func (b *Batch) del(op, id string, k []byte) {
	if err := b.b.Delete(k, nil); err != nil {
		b.fail(fmt.Errorf("storage: %s %s: %w", op, id, err))
	}
}

func (b *Batch) delPrefix(op, id string, p []byte) {
	if err := b.b.DeleteRange(p, prefixEnd(p), nil); err != nil {
		b.fail(fmt.Errorf("storage: %s %s: %w", op, id, err))
	}
}

// PutInstance writes the instance row and its listing index entry (Name, Status
// under CreatedAt). CreatedAt is part of the index key, so it must be set and
// must never change for an instance (continue-as-new keeps it).
func (b *Batch) PutInstance(part uint16, rec *InstanceRecord) error {
	if err := b.PutInstanceRow(part, rec); err != nil {
		return err
	}
	ie, err := encodeIndexEntry(rec.Name, rec.Status)
	if err != nil {
		return b.fail(fmt.Errorf("storage: put instance %s: %w", rec.ID, err))
	}
	b.set("put instance", rec.ID, createdIndexKey(part, rec.CreatedAt, rec.ID), ie)
	return b.err
}

// PutInstanceRow writes the instance row alone, for a step that changed neither
// Name nor Status, whose listing index entry therefore stands as it is: most steps
// of a running instance, which then write one key less.
func (b *Batch) PutInstanceRow(part uint16, rec *InstanceRecord) error {
	if rec == nil {
		return b.fail(errors.New("storage: put instance: nil record"))
	}
	if err := b.checkInstance("put instance", part, rec.ID); err != nil {
		return err
	}
	if rec.CreatedAt.IsZero() {
		return b.fail(fmt.Errorf("storage: put instance %s: CreatedAt is zero", rec.ID))
	}
	// Encoded into a pooled buffer: pebble copies the value into the batch.
	buf := rowBuffers.Get().(*[]byte)
	*buf = appendInstanceRecord((*buf)[:0], rec)
	b.set("put instance", rec.ID, instanceKey(part, rec.ID), *buf)
	if cap(*buf) <= maxPooledRow {
		rowBuffers.Put(buf)
	}
	return b.err
}

// rowBuffers hold encoded instance rows between encoding and the batch's copy:
// one allocated per step was 6% of the bytes a fired timer allocates.
var rowBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledRow: a buffer grown past it by a big row is left to the collector.
const maxPooledRow = 64 << 10

// AppendHistory writes history event seq of id. ev is copied.
func (b *Batch) AppendHistory(part uint16, id string, seq uint64, ev []byte) {
	if b.checkInstance("append history", part, id) == nil {
		b.set("append history", id, historyKey(part, id, seq), ev)
	}
}

// DeleteHistory deletes the history of id (continue-as-new), which has events
// events (the instance's NextSeq).
func (b *Batch) DeleteHistory(part uint16, id string, events uint64) {
	if b.checkInstance("delete history", part, id) != nil {
		return
	}
	// A range deletion costs every later read that crosses the memtable until it
	// is flushed; an eternal monitor continuing as new every few seconds would pile
	// them up. Short histories are deleted key by key.
	if events > pointDeleteLimit {
		b.delPrefix("delete history", id, historyPrefix(part, id))
		return
	}
	for seq := uint64(0); seq < events; seq++ {
		b.del("delete history", id, historyKey(part, id, seq))
	}
}

// pointDeleteLimit is the longest history deleted key by key.
const pointDeleteLimit = 256

// PutActivity records an outstanding activity of id.
func (b *Batch) PutActivity(part uint16, id string, rec *ActivityRecord) error {
	if rec == nil {
		return b.fail(errors.New("storage: put activity: nil record"))
	}
	if err := b.checkInstance("put activity", part, id); err != nil {
		return err
	}
	v, err := encodeActivity(rec)
	if err != nil {
		return b.fail(fmt.Errorf("storage: put activity %d of %s: %w", rec.TaskID, id, err))
	}
	b.set("put activity", id, activityKey(part, id, rec.TaskID), v)
	return b.err
}

// DeleteActivity removes the outstanding activity task of id.
func (b *Batch) DeleteActivity(part uint16, id string, task int64) {
	if b.checkInstance("delete activity", part, id) == nil {
		b.del("delete activity", id, activityKey(part, id, task))
	}
}

// PutInbox holds event v of id (while suspended) at inbox position seq.
func (b *Batch) PutInbox(part uint16, id string, seq uint64, v []byte) {
	if b.checkInstance("put inbox", part, id) == nil {
		b.set("put inbox", id, inboxKey(part, id, seq), v)
	}
}

// DeleteInboxEntry deletes the inbox entry of id at seq (a point deletion: an
// instance that consumes its inbox one step at a time leaves no range tombstones).
func (b *Batch) DeleteInboxEntry(part uint16, id string, seq uint64) {
	if b.checkInstance("delete inbox entry", part, id) == nil {
		b.del("delete inbox entry", id, inboxKey(part, id, seq))
	}
}

// DeleteInbox deletes every inbox entry of id, whose entries are numbered below
// next (the instance's NextInboxSeq). Few are deleted key by key, as short
// histories are: every instance whose code runs on a remote worker holds its
// inputs in the inbox, and a range deletion at each completion made every read
// that crossed the memtable fragment them all again until its flush.
func (b *Batch) DeleteInbox(part uint16, id string, next uint64) {
	if b.checkInstance("delete inbox", part, id) != nil {
		return
	}
	if next > pointDeleteLimit {
		b.delPrefix("delete inbox", id, inboxPrefix(part, id))
		return
	}
	for seq := range next {
		b.del("delete inbox", id, inboxKey(part, id, seq))
	}
}

// PutOutbox records an event to send.
func (b *Batch) PutOutbox(part uint16, id string, rec *OutboxRecord) error {
	if err := b.checkInstance("put outbox", part, id); err != nil {
		return err
	}
	v, err := encodeOutbox(rec)
	if err != nil {
		return b.fail(fmt.Errorf("storage: put outbox %d of %s: %w", rec.Seq, id, err))
	}
	b.set("put outbox", id, outboxKey(part, id, rec.Seq), v)
	return b.err
}

// DeleteOutbox forgets a sent event.
func (b *Batch) DeleteOutbox(part uint16, id string, seq uint64) {
	if b.checkInstance("delete outbox", part, id) == nil {
		b.del("delete outbox", id, outboxKey(part, id, seq))
	}
}

// PutReceivedMark records that id applied sender's outbox records up to m.
func (b *Batch) PutReceivedMark(part uint16, id, sender string, m ReceivedMark) error {
	if err := b.checkInstance("put received mark", part, id); err != nil {
		return err
	}
	if err := ValidateInstanceID(sender); err != nil {
		return b.fail(fmt.Errorf("storage: put received mark of %s: sender: %w", id, err))
	}
	m.V = receivedMarkV
	v, err := encodeRecord("received mark", m)
	if err != nil {
		return b.fail(err)
	}
	b.set("put received mark", id, receivedMarkKey(part, id, sender), v)
	return b.err
}

// DeleteReceivedMarks forgets what id applied of every sender's outbox
// records, in one range deletion however many there are.
func (b *Batch) DeleteReceivedMarks(part uint16, id string) {
	if b.checkInstance("delete received marks", part, id) == nil {
		b.delPrefix("delete received marks", id, receivedMarkPrefix(part, id))
	}
}

// PutClientEvent records that id applied the client event sent with request
// id request at time at: the same request sent again is recognised.
func (b *Batch) PutClientEvent(part uint16, id, request string, at time.Time) error {
	if err := b.checkInstance("put client event", part, id); err != nil {
		return err
	}
	if err := ValidateRequestID(request); err != nil {
		return b.fail(fmt.Errorf("storage: put client event of %s: %w", id, err))
	}
	v := encodeTime(at)
	b.set("put client event", id, clientEventKey(part, id, request), v[:])
	return b.err
}

// DeleteClientEvent forgets a client event's request id.
func (b *Batch) DeleteClientEvent(part uint16, id, request string) {
	if b.checkInstance("delete client event", part, id) == nil {
		b.del("delete client event", id, clientEventKey(part, id, request))
	}
}

// PutReminder stores r under its due time. The instance's row lists its
// reminders (Inline.Reminders): the caller puts the row in the same batch. It
// reads nothing: a caller that moves a reminder to another due time deletes the
// old one (DeleteReminder with its old due time) in the same batch.
func (b *Batch) PutReminder(r Reminder) error {
	if err := b.checkReminder("put reminder", r); err != nil {
		return err
	}
	v, err := encodeReminderValue(r.Payload)
	if err != nil {
		return b.fail(fmt.Errorf("storage: put reminder %s/%s: %w", r.Instance, r.Name, err))
	}
	b.set("put reminder", r.Instance, reminderKey(r.Partition, r.Due, r.Instance, r.Name), v)
	return b.err
}

// DeleteReminder deletes r's due-time key. r.Due must be the due time it was
// stored with.
func (b *Batch) DeleteReminder(r Reminder) {
	if b.checkReminder("delete reminder", r) == nil {
		b.del("delete reminder", r.Instance, reminderKey(r.Partition, r.Due, r.Instance, r.Name))
	}
}

// DeleteReverseReminder deletes the reverse entry i/<id>/rm/<name> that a row
// of version 1 found its reminders by: the actor removes them when it first
// rewrites such a row as version 2, whose reminders are listed inline.
func (b *Batch) DeleteReverseReminder(part uint16, id, name string) {
	if b.checkInstance("delete reverse reminder", part, id) == nil {
		b.del("delete reverse reminder", id, reverseReminderKey(part, id, name))
	}
}

func (b *Batch) checkReminder(op string, r Reminder) error {
	if err := b.checkInstance(op, r.Partition, r.Instance); err != nil {
		return err
	}
	if err := ValidateReminderName(r.Name); err != nil {
		return b.fail(fmt.Errorf("storage: %s of %s: %w", op, r.Instance, err))
	}
	return nil
}

// SetAwake adds id to (or removes it from) the awake set of its partition.
func (b *Batch) SetAwake(part uint16, id string, awake bool) {
	if b.checkInstance("set awake", part, id) != nil {
		return
	}
	if awake {
		b.set("set awake", id, awakeKey(part, id), nil)
	} else {
		b.del("set awake", id, awakeKey(part, id))
	}
}

// Empty reports whether the batch holds no changes.
func (b *Batch) Empty() bool { return b.b == nil || b.b.Empty() }

// Commit applies the batch atomically and durably (pebble.Sync). It returns the
// first error recorded by the batch's methods without applying anything.
func (b *Batch) Commit() error { return b.commit(pebble.Sync) }

// CommitUnsynced applies the batch atomically without waiting for the disk: for
// writes a crash may lose, such as a raft group's commit index, which raft
// learns again from its peers.
func (b *Batch) CommitUnsynced() error { return b.commit(pebble.NoSync) }

func (b *Batch) commit(opts *pebble.WriteOptions) error {
	if b.err != nil {
		return b.err
	}
	if b.b == nil {
		return errors.New("storage: commit of a closed batch")
	}
	if err := b.db.acquire(); err != nil {
		return err
	}
	defer b.db.release()
	if opts.Sync {
		b.db.syncing.Add(1)
		defer b.db.syncing.Add(-1)
	}
	if err := b.b.Commit(opts); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	return nil
}

// Close releases the batch. It is safe to call after Commit and more than once.
func (b *Batch) Close() {
	if b.b != nil {
		_ = b.b.Close()
		b.b = nil
	}
}
