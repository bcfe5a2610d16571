package storage

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftrt/weft/internal/mpack"
)

// Every stored record is a msgpack map whose first key is "v", its version, so
// a newer build can change a record and an older build refuses it by name
// instead of misreading it. Tags are short because they are stored in every value.
// Bump a version when a field changes meaning; adding an omitempty field does not
// need a bump.
const (
	instanceRecordV  = 2 // 2: the row may carry Inline (instanceRecordV1 rows do not)
	instanceRecordV1 = 1
	activityRecordV  = 1
	indexEntryV      = 1
	reminderValueV   = 1
	nodeMetaV        = 1
	outboxRecordV    = 1
	receivedMarkV    = 1
)

// Failure describes why an instance or activity failed.
type Failure struct {
	Type         string `msgpack:"t,omitempty"`
	Message      string `msgpack:"m,omitempty"`
	Stack        string `msgpack:"s,omitempty"`
	NonRetriable bool   `msgpack:"nr,omitempty"` // an activity's failure that no retry policy retries
}

// InstanceRecord is the row of one workflow instance (key i/<id>/m).
type InstanceRecord struct {
	V                uint8     `msgpack:"v"`
	ID               string    `msgpack:"id"`
	Name             string    `msgpack:"n,omitempty"`
	Status           Status    `msgpack:"s,omitempty"`
	CreatedAt        time.Time `msgpack:"ca,omitempty"` // also the listing index key: must not change for an instance
	UpdatedAt        time.Time `msgpack:"ua,omitempty"`
	ScheduledStartAt time.Time `msgpack:"ss,omitempty"`
	CompletedAt      time.Time `msgpack:"co,omitempty"`
	// Input, Output and CustomStatus are JSON bytes kept exactly as given: a
	// status call must return exactly the input it was sent.
	Input        []byte   `msgpack:"in,omitempty"`
	Output       []byte   `msgpack:"out,omitempty"`
	CustomStatus []byte   `msgpack:"cs,omitempty"`
	Failure      *Failure `msgpack:"f,omitempty"`
	ParentID     string   `msgpack:"pid,omitempty"` // set for child workflows
	ParentTask   int64    `msgpack:"pt,omitempty"`
	ParentGen    uint32   `msgpack:"pg,omitempty"` // the parent's generation when it started this child
	// ParentPending is set while a finished child's outcome awaits its parent's
	// acknowledgement: the child re-sends it after a restart until then.
	ParentPending bool   `msgpack:"pp,omitempty"`
	Generation    uint32 `msgpack:"g,omitempty"`  // continue-as-new count
	NextSeq       uint64 `msgpack:"ns,omitempty"` // next history sequence number
	NextInboxSeq  uint64 `msgpack:"nq,omitempty"`
	// Stalls counts consecutive steps abandoned because the workflow code did not
	// yield in time; actors retries such a step before it counts as a deadlock.
	Stalls uint8 `msgpack:"st,omitempty"`
	// NextOutboxSeq numbers outbox entries; it never restarts, so entries of an
	// earlier generation never collide with a later one's.
	NextOutboxSeq uint64 `msgpack:"no,omitempty"`
	// Remote is set when the workflow's code runs on a remote worker (the
	// durabletask protocol) rather than in this process; Episode counts the steps
	// such a worker has completed in this generation, which names the next one.
	Remote  bool   `msgpack:"rm,omitempty"`
	Episode uint64 `msgpack:"ep,omitempty"`
	// Inline is the instance's inline state (see Inline), encoded; set with
	// SetInline. A row without it (all rows of version 1) keeps its history,
	// reminders and records as keys only.
	Inline []byte `msgpack:"il,omitempty"`
	// Version is the named version of the workflow's code the instance runs
	// ("": the code registered without one).
	Version string `msgpack:"vn,omitempty"`
	// StallReason and StallDescription say why a STALLED instance cannot
	// continue on the code registered where it runs (workflow.StallReason).
	StallReason      string `msgpack:"sr,omitempty"`
	StallDescription string `msgpack:"sd,omitempty"`
	// TraceParent and TraceState are the W3C trace context the instance was
	// started in (a client's traceparent, an SDK's parentTraceContext, or its
	// parent workflow's), handed to the workers that run its code.
	TraceParent string `msgpack:"tp,omitempty"`
	TraceState  string `msgpack:"tst,omitempty"`
	// App is the app whose remote workers run the instance's code ("": any
	// worker), as the start named it (Dapr's multi-app workflows).
	App string `msgpack:"ap,omitempty"`
	// Notify is the instance told when this one finishes (an event
	// RunFinished, sent through the outbox): the schedule that started it.
	Notify string `msgpack:"nf,omitempty"`
}

// SetInline stores in in the row (nil: none, a row of version 1).
func (r *InstanceRecord) SetInline(in *Inline) {
	if in == nil {
		r.Inline = nil
		return
	}
	r.Inline = encodeInline(make([]byte, 0, inlineSize(in)), in)
}

// InlineState decodes the row's inline state; nil for a row of version 1,
// whose history, reminders and records are all keys.
func (r *InstanceRecord) InlineState() (*Inline, error) {
	if r.Inline == nil {
		return nil, nil
	}
	in, err := decodeInline(r.Inline)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", r.ID, err)
	}
	return in, nil
}

// ActivityRecord is an outstanding activity invocation (key i/<id>/a/<task>):
// what to re-send after a restart and when its next attempt is due. The runtime
// stores one only for an invocation whose attempt failed and is retried; a
// first attempt is known from its ActivityScheduled history event.
type ActivityRecord struct {
	V              uint8     `msgpack:"v"`
	TaskID         int64     `msgpack:"t"`
	Name           string    `msgpack:"n,omitempty"`
	Input          []byte    `msgpack:"in,omitempty"`
	Attempt        int       `msgpack:"a,omitempty"`
	FirstAttemptAt time.Time `msgpack:"fa,omitempty"`
	NextAttemptAt  time.Time `msgpack:"na,omitempty"`
	// Failed is the failure of the attempt, while whether to retry it is not
	// decided: it came while the workflow's code was not loaded (a stalled
	// step), and only the code knows the retry policy. It is decided when the
	// code is loaded again; meanwhile the attempt is not sent again.
	Failed *Failure `msgpack:"e,omitempty"`
	// TaskExecutionID is the call's id across attempts, when a remote
	// worker's SDK gave one (workflow.Event.TaskExecutionID).
	TaskExecutionID string `msgpack:"te,omitempty"`
	// App is the app whose remote workers run the activity ("": the
	// workflow's).
	App string `msgpack:"ap,omitempty"`
	// Permit: the attempt holds a permit of its activity's limiter
	// (package limits), so it runs, now and after any restart, without
	// asking again.
	Permit bool `msgpack:"pm,omitempty"`
}

// OutboxRecord is a message an instance decided to send to another instance
// (key i/<id>/o/<seq>), kept until the target has committed it, so that neither
// a crash between the commit and the send nor a target that is down loses it.
type OutboxRecord struct {
	V      uint8      `msgpack:"v"`
	Seq    uint64     `msgpack:"q"`
	Target string     `msgpack:"t"`
	Kind   OutboxKind `msgpack:"k,omitempty"`
	Name   string     `msgpack:"n,omitempty"` // OutboxEvent: the event's name
	Data   []byte     `msgpack:"d,omitempty"` // OutboxEvent: the event's data; OutboxTerminate: the reason
}

// OutboxKind says what an outbox record sends. The values are stored: only append.
type OutboxKind uint8

const (
	// OutboxEvent raises an event on the target (workflow.Context.SendEvent).
	OutboxEvent OutboxKind = iota
	// OutboxTerminate terminates the target and its descendants (a recursive
	// terminate reaching a child).
	OutboxTerminate
	// OutboxLimiter raises an event on an activity's limiter (package
	// limits), which is created by the event if it does not exist yet.
	OutboxLimiter
)

// ReceivedMark is the newest outbox record of one sender that an instance has
// applied (key i/<id>/s/<sender>). A sender sends its records to one target in
// sequence order, the next only once the previous one was committed, so a record
// at or below the mark is a re-delivery, acknowledged and not applied again.
// Incarnation tells a sender from an earlier instance that had the same id (its
// creation time, in unix nanoseconds): sequence numbers restart with each one.
type ReceivedMark struct {
	V           uint8  `msgpack:"v"`
	Incarnation int64  `msgpack:"i"`
	Seq         uint64 `msgpack:"q"`
}

// Covers reports whether a record (incarnation, seq) was applied already.
func (m ReceivedMark) Covers(incarnation int64, seq uint64) bool {
	return incarnation < m.Incarnation || incarnation == m.Incarnation && seq <= m.Seq
}

func encodeOutbox(rec *OutboxRecord) ([]byte, error) {
	r := *rec
	r.V = outboxRecordV
	return appendOutbox(make([]byte, 0, outboxSize(&r)), &r), nil
}

func decodeOutbox(b []byte) (OutboxRecord, error) {
	var r OutboxRecord
	if err := decodeWith("outbox record", outboxRecordV, b, &r, readOutbox); err != nil {
		return OutboxRecord{}, err
	}
	return r, nil
}

// IndexEntry is the value of the listing index x/c: just enough to filter a
// listing without reading every instance row.
type IndexEntry struct {
	V      uint8  `msgpack:"v"`
	Name   string `msgpack:"n,omitempty"`
	Status Status `msgpack:"s,omitempty"`
}

// Reminder is a durable reminder: a payload delivered to Instance once Due has
// passed. Partition, Instance, Name and Due live in the key; only Payload is in
// the stored value.
type Reminder struct {
	Partition uint16
	Instance  string
	Name      string
	Due       time.Time
	Payload   []byte
}

// reminderValue is the stored value of a reminder key.
type reminderValue struct {
	V       uint8  `msgpack:"v"`
	Payload []byte `msgpack:"p,omitempty"`
}

// nodeMeta is the record at n/meta: fixed facts about the store.
type nodeMeta struct {
	V          uint8 `msgpack:"v"`
	Format     uint8 `msgpack:"fv"`
	Partitions int   `msgpack:"pc"`
}

// storeFormat is the version of the key layout; n/meta records it so a future
// layout change can detect and migrate an old store.
const storeFormat = 1

// The records below are encoded and decoded by the hand-written codecs of
// codec.go, which write the bytes encodeRecord writes and read what
// decodeRecord reads, without its reflection. Their encoders cannot fail; the
// error results keep the signatures of encodeRecord's callers.

func encodeInstance(rec *InstanceRecord) ([]byte, error) {
	return appendInstanceRecord(make([]byte, 0, instanceSize(rec)), rec), nil
}

// appendInstanceRecord appends rec, stamped with the current record version,
// to b.
func appendInstanceRecord(b []byte, rec *InstanceRecord) []byte {
	r := *rec
	r.V = instanceRecordV
	return appendInstance(b, &r)
}

func decodeInstance(b []byte) (*InstanceRecord, error) {
	r := new(InstanceRecord)
	if err := decodeWith("instance record", instanceRecordV, b, r, readInstance); err != nil {
		return nil, err
	}
	return r, nil
}

func encodeActivity(rec *ActivityRecord) ([]byte, error) {
	r := *rec
	r.V = activityRecordV
	return appendActivity(make([]byte, 0, activitySize(&r)), &r), nil
}

func decodeActivity(b []byte) (ActivityRecord, error) {
	var r ActivityRecord
	if err := decodeWith("activity record", activityRecordV, b, &r, readActivity); err != nil {
		return ActivityRecord{}, err
	}
	return r, nil
}

func encodeIndexEntry(name string, s Status) ([]byte, error) {
	e := IndexEntry{V: indexEntryV, Name: name, Status: s}
	return appendIndexEntry(make([]byte, 0, indexEntryMaxFixed+len(name)), &e), nil
}

func decodeIndexEntry(b []byte) (IndexEntry, error) {
	var e IndexEntry
	if err := decodeWith("index entry", indexEntryV, b, &e, readIndexEntry); err != nil {
		return IndexEntry{}, err
	}
	return e, nil
}

func encodeReminderValue(payload []byte) ([]byte, error) {
	v := reminderValue{V: reminderValueV, Payload: payload}
	return appendReminderValue(make([]byte, 0, reminderMaxFixed+len(payload)), &v), nil
}

func decodeReminderValue(b []byte) ([]byte, error) {
	var v reminderValue
	if err := decodeWith("reminder", reminderValueV, b, &v, readReminderValue); err != nil {
		return nil, err
	}
	return v.Payload, nil
}

// encodeRecord writes integers in their smallest msgpack form: sequence numbers
// and task ids are small, and every byte is paid in every stored value. It
// encodes through reflection, for the records read and written once per store
// (node meta); the per-step records have their own codecs, which write the same
// bytes.
func encodeRecord(what string, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("storage: encode %s: %w", what, err)
	}
	return buf.Bytes(), nil
}

// ErrUnknownVersion is returned (wrapped) when a record was written by a newer
// build than this one.
var ErrUnknownVersion = errors.New("storage: unknown record version")

// decodeRecord checks the record's version before decoding the rest, so a newer
// layout is rejected by name rather than half-decoded. Like encodeRecord, it
// decodes through reflection, for the records read once per store.
func decodeRecord(what string, maxV uint8, b []byte, v any) error {
	ver, err := checkVersion(what, maxV, b)
	if err != nil {
		return err
	}
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("storage: decode %s (version %d): %w", what, ver, err)
	}
	return nil
}

// decodeWith is decodeRecord with a hand-written decoder in place of
// reflection: the same version check, the same errors.
func decodeWith[T any](what string, maxV uint8, b []byte, v *T, read func(*mpack.Reader, *T) error) error {
	ver, err := checkVersion(what, maxV, b)
	if err != nil {
		return err
	}
	r := mpack.NewReader(b)
	if err := read(&r, v); err != nil {
		return fmt.Errorf("storage: decode %s (version %d): %w", what, ver, err)
	}
	return nil
}

// checkVersion returns the version of the record b, or an error naming the
// record: ErrUnknownVersion when it has none or one newer than maxV.
func checkVersion(what string, maxV uint8, b []byte) (uint8, error) {
	ver, err := peekVersion(b)
	if err != nil {
		return 0, fmt.Errorf("storage: decode %s: %w", what, err)
	}
	if ver == 0 || ver > maxV {
		return 0, fmt.Errorf("storage: decode %s: version %d, this build reads up to %d: %w", what, ver, maxV, ErrUnknownVersion)
	}
	return ver, nil
}

// peekVersion returns the "v" field of a msgpack map, 0 when it has none. It
// reads the first "v" (a well-formed record has one, its first key), accepting
// what msgpack/v5's DecodeMapLen, DecodeString and DecodeUint8 accepted.
func peekVersion(b []byte) (uint8, error) {
	r := mpack.NewReader(b)
	n, err := r.ReadMapLen()
	if err != nil {
		return 0, fmt.Errorf("not a versioned record: %w", err)
	}
	for range n {
		k, err := r.ReadKey()
		if err != nil {
			return 0, fmt.Errorf("read field name: %w", err)
		}
		if string(k) == "v" {
			v, err := readUint8(&r)
			if err != nil {
				return 0, fmt.Errorf("read version: %w", err)
			}
			return v, nil
		}
		if err := r.Skip(); err != nil {
			return 0, fmt.Errorf("skip field %q: %w", k, err)
		}
	}
	return 0, nil
}
