package storage

import (
	"github.com/weftrt/weft/internal/mpack"
)

// Hand-written msgpack codecs of the records written on every step: the
// instance row, activity and outbox records, the listing index entry and the
// reminder value. Through msgpack/v5's reflection their encoding and decoding
// cost, with the history events', 10-15% of a step's CPU. These write exactly
// the bytes encodeRecord writes (msgpack/v5 with compact ints: every integer in
// its smallest form), which the golden tests pin and the codec tests compare
// on random records, and read everything msgpack.Unmarshal read into the
// record types. Fields tagged omitempty are left out when zero: a zero time,
// an empty string or slice, a nil pointer, 0, false.
//
// Each record's fields are numbered in struct order, which is the order of
// the encoding and of the array form msgpack/v5 also decodes; the version
// field "v" is always first.

// Upper bounds of the encoded sizes, less the string and byte contents: the
// map header, the keys with their headers, the values at their widest
// (integers 9 bytes, times 15, string and byte headers 5).
const (
	// Header 3; keys 69; v 2, id 5, n 5, s 2, four times, three byte
	// headers, pid 5, pt 9, pg 5, pp 1, g 5, ns 9, nq 9, st 2, no 9, rm 1,
	// ep 9, il 5. The failure is added with its key.
	instanceMaxFixed = 3 + 69 + 2 + 3*mpack.MaxHeaderSize + 2 + 4*mpack.MaxTimeSize +
		3*mpack.MaxHeaderSize + 9 + 5 + 1 + 5 + 9 + 9 + 2 + 9 + 1 + 9 + mpack.MaxHeaderSize
	// Header 1; keys 9; three string headers, nr 1.
	failureMaxFixed = 1 + 9 + 3*mpack.MaxHeaderSize + 1
	// Header 1; keys 20; v 2, t 9, n 5, in 5, a 9, fa 15, na 15, pm 1.
	activityMaxFixed = 1 + 20 + 2 + 9 + 2*mpack.MaxHeaderSize + 9 + 2*mpack.MaxTimeSize + 1
	// Header 1; keys 12; v 2, q 9, t 5, k 2, n 5, d 5.
	outboxMaxFixed = 1 + 12 + 2 + 9 + 2 + 3*mpack.MaxHeaderSize
	// Header 1; keys 6; v 2, n 5, s 2.
	indexEntryMaxFixed = 1 + 6 + 2 + mpack.MaxHeaderSize + 2
	// Header 1; keys 4; v 2, p 5.
	reminderMaxFixed = 1 + 4 + 2 + mpack.MaxHeaderSize
)

// readUint8 reads an integer into a uint8, wrapping as msgpack/v5 does.
func readUint8(r *mpack.Reader) (uint8, error) {
	n, err := r.ReadUint()
	return uint8(n), err
}

// InstanceRecord fields, in struct order.
const (
	instV = iota
	instID
	instName
	instStatus
	instCreatedAt
	instUpdatedAt
	instScheduledStartAt
	instCompletedAt
	instInput
	instOutput
	instCustomStatus
	instFailure
	instParentID
	instParentTask
	instParentGen
	instParentPending
	instGeneration
	instNextSeq
	instNextInboxSeq
	instStalls
	instNextOutboxSeq
	instRemote
	instEpisode
	instInline
	instVersion
	instStallReason
	instStallDescription
	instTraceParent
	instTraceState
	instApp
	instNotify
	instFields
)

func instanceField(name []byte) int {
	switch string(name) {
	case "v":
		return instV
	case "id":
		return instID
	case "n":
		return instName
	case "s":
		return instStatus
	case "ca":
		return instCreatedAt
	case "ua":
		return instUpdatedAt
	case "ss":
		return instScheduledStartAt
	case "co":
		return instCompletedAt
	case "in":
		return instInput
	case "out":
		return instOutput
	case "cs":
		return instCustomStatus
	case "f":
		return instFailure
	case "pid":
		return instParentID
	case "pt":
		return instParentTask
	case "pg":
		return instParentGen
	case "pp":
		return instParentPending
	case "g":
		return instGeneration
	case "ns":
		return instNextSeq
	case "nq":
		return instNextInboxSeq
	case "st":
		return instStalls
	case "no":
		return instNextOutboxSeq
	case "rm":
		return instRemote
	case "ep":
		return instEpisode
	case "il":
		return instInline
	case "vn":
		return instVersion
	case "sr":
		return instStallReason
	case "sd":
		return instStallDescription
	case "tp":
		return instTraceParent
	case "tst":
		return instTraceState
	case "ap":
		return instApp
	case "nf":
		return instNotify
	}
	return -1
}

func instanceSize(r *InstanceRecord) int {
	n := instanceMaxFixed + len(r.ID) + len(r.Name) + len(r.Input) + len(r.Output) +
		len(r.CustomStatus) + len(r.ParentID) + len(r.Inline) +
		optionalSize(r.Version, r.StallReason, r.StallDescription, r.TraceParent, r.TraceState, r.App, r.Notify)
	if f := r.Failure; f != nil {
		n += 2 + failureMaxFixed + len(f.Type) + len(f.Message) + len(f.Stack)
	}
	return n
}

// optionalSize bounds the encoding of the string fields that are written only
// when set: a key of at most 3 bytes, a header, the string.
func optionalSize(fields ...string) int {
	n := 0
	for _, f := range fields {
		if f != "" {
			n += 4 + mpack.MaxHeaderSize + len(f)
		}
	}
	return n
}

func appendInstance(b []byte, r *InstanceRecord) []byte {
	n := 2 // v and id are always written
	for _, set := range [...]bool{
		r.Name != "", r.Status != 0,
		!r.CreatedAt.IsZero(), !r.UpdatedAt.IsZero(), !r.ScheduledStartAt.IsZero(), !r.CompletedAt.IsZero(),
		len(r.Input) != 0, len(r.Output) != 0, len(r.CustomStatus) != 0, r.Failure != nil,
		r.ParentID != "", r.ParentTask != 0, r.ParentGen != 0, r.ParentPending,
		r.Generation != 0, r.NextSeq != 0, r.NextInboxSeq != 0, r.Stalls != 0,
		r.NextOutboxSeq != 0, r.Remote, r.Episode != 0, len(r.Inline) != 0,
		r.Version != "", r.StallReason != "", r.StallDescription != "", r.TraceParent != "", r.TraceState != "", r.App != "",
		r.Notify != "",
	} {
		if set {
			n++
		}
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendUint(mpack.AppendString(b, "v"), uint64(r.V))
	b = mpack.AppendString(mpack.AppendString(b, "id"), r.ID)
	if r.Name != "" {
		b = mpack.AppendString(mpack.AppendString(b, "n"), r.Name)
	}
	if r.Status != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "s"), uint64(r.Status))
	}
	if !r.CreatedAt.IsZero() {
		b = mpack.AppendTime(mpack.AppendString(b, "ca"), r.CreatedAt)
	}
	if !r.UpdatedAt.IsZero() {
		b = mpack.AppendTime(mpack.AppendString(b, "ua"), r.UpdatedAt)
	}
	if !r.ScheduledStartAt.IsZero() {
		b = mpack.AppendTime(mpack.AppendString(b, "ss"), r.ScheduledStartAt)
	}
	if !r.CompletedAt.IsZero() {
		b = mpack.AppendTime(mpack.AppendString(b, "co"), r.CompletedAt)
	}
	if len(r.Input) != 0 {
		b = mpack.AppendBytes(mpack.AppendString(b, "in"), r.Input)
	}
	if len(r.Output) != 0 {
		b = mpack.AppendBytes(mpack.AppendString(b, "out"), r.Output)
	}
	if len(r.CustomStatus) != 0 {
		b = mpack.AppendBytes(mpack.AppendString(b, "cs"), r.CustomStatus)
	}
	if r.Failure != nil {
		b = appendFailure(mpack.AppendString(b, "f"), r.Failure)
	}
	if r.ParentID != "" {
		b = mpack.AppendString(mpack.AppendString(b, "pid"), r.ParentID)
	}
	if r.ParentTask != 0 {
		b = mpack.AppendInt(mpack.AppendString(b, "pt"), r.ParentTask)
	}
	if r.ParentGen != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "pg"), uint64(r.ParentGen))
	}
	if r.ParentPending {
		b = mpack.AppendBool(mpack.AppendString(b, "pp"), true)
	}
	if r.Generation != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "g"), uint64(r.Generation))
	}
	if r.NextSeq != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "ns"), r.NextSeq)
	}
	if r.NextInboxSeq != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "nq"), r.NextInboxSeq)
	}
	if r.Stalls != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "st"), uint64(r.Stalls))
	}
	if r.NextOutboxSeq != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "no"), r.NextOutboxSeq)
	}
	if r.Remote {
		b = mpack.AppendBool(mpack.AppendString(b, "rm"), true)
	}
	if r.Episode != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "ep"), r.Episode)
	}
	if len(r.Inline) != 0 {
		b = mpack.AppendBytes(mpack.AppendString(b, "il"), r.Inline)
	}
	if r.Version != "" {
		b = mpack.AppendString(mpack.AppendString(b, "vn"), r.Version)
	}
	if r.StallReason != "" {
		b = mpack.AppendString(mpack.AppendString(b, "sr"), r.StallReason)
	}
	if r.StallDescription != "" {
		b = mpack.AppendString(mpack.AppendString(b, "sd"), r.StallDescription)
	}
	if r.TraceParent != "" {
		b = mpack.AppendString(mpack.AppendString(b, "tp"), r.TraceParent)
	}
	if r.TraceState != "" {
		b = mpack.AppendString(mpack.AppendString(b, "tst"), r.TraceState)
	}
	if r.App != "" {
		b = mpack.AppendString(mpack.AppendString(b, "ap"), r.App)
	}
	if r.Notify != "" {
		b = mpack.AppendString(mpack.AppendString(b, "nf"), r.Notify)
	}
	return b
}

func readInstance(r *mpack.Reader, rec *InstanceRecord) error {
	zero, err := r.ReadStruct(instFields, instanceField, func(i int) (err error) {
		var u uint64
		switch i {
		case instV:
			rec.V, err = readUint8(r)
		case instID:
			rec.ID, err = r.ReadString()
		case instName:
			rec.Name, err = r.ReadString()
		case instStatus:
			u, err = r.ReadUint()
			rec.Status = Status(u)
		case instCreatedAt:
			rec.CreatedAt, err = r.ReadTime()
		case instUpdatedAt:
			rec.UpdatedAt, err = r.ReadTime()
		case instScheduledStartAt:
			rec.ScheduledStartAt, err = r.ReadTime()
		case instCompletedAt:
			rec.CompletedAt, err = r.ReadTime()
		case instInput:
			rec.Input, err = r.ReadBytes()
		case instOutput:
			rec.Output, err = r.ReadBytes()
		case instCustomStatus:
			rec.CustomStatus, err = r.ReadBytes()
		case instFailure:
			err = readFailure(r, &rec.Failure)
		case instParentID:
			rec.ParentID, err = r.ReadString()
		case instParentTask:
			rec.ParentTask, err = r.ReadInt()
		case instParentGen:
			u, err = r.ReadUint()
			rec.ParentGen = uint32(u)
		case instParentPending:
			rec.ParentPending, err = r.ReadBool()
		case instGeneration:
			u, err = r.ReadUint()
			rec.Generation = uint32(u)
		case instNextSeq:
			rec.NextSeq, err = r.ReadUint()
		case instNextInboxSeq:
			rec.NextInboxSeq, err = r.ReadUint()
		case instStalls:
			rec.Stalls, err = readUint8(r)
		case instNextOutboxSeq:
			rec.NextOutboxSeq, err = r.ReadUint()
		case instRemote:
			rec.Remote, err = r.ReadBool()
		case instEpisode:
			rec.Episode, err = r.ReadUint()
		case instInline:
			rec.Inline, err = r.ReadBytes()
		case instVersion:
			rec.Version, err = r.ReadString()
		case instStallReason:
			rec.StallReason, err = r.ReadString()
		case instStallDescription:
			rec.StallDescription, err = r.ReadString()
		case instTraceParent:
			rec.TraceParent, err = r.ReadString()
		case instTraceState:
			rec.TraceState, err = r.ReadString()
		case instApp:
			rec.App, err = r.ReadString()
		case instNotify:
			rec.Notify, err = r.ReadString()
		}
		return err
	})
	if zero {
		*rec = InstanceRecord{}
	}
	return err
}

// Failure fields, in struct order.
const (
	failType = iota
	failMessage
	failStack
	failNonRetriable
	failFields
)

func failureField(name []byte) int {
	switch string(name) {
	case "t":
		return failType
	case "m":
		return failMessage
	case "s":
		return failStack
	case "nr":
		return failNonRetriable
	}
	return -1
}

func appendFailure(b []byte, f *Failure) []byte {
	n := 0
	for _, s := range [...]string{f.Type, f.Message, f.Stack} {
		if s != "" {
			n++
		}
	}
	if f.NonRetriable {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	if f.Type != "" {
		b = mpack.AppendString(mpack.AppendString(b, "t"), f.Type)
	}
	if f.Message != "" {
		b = mpack.AppendString(mpack.AppendString(b, "m"), f.Message)
	}
	if f.Stack != "" {
		b = mpack.AppendString(mpack.AppendString(b, "s"), f.Stack)
	}
	if f.NonRetriable {
		b = mpack.AppendBool(mpack.AppendString(b, "nr"), true)
	}
	return b
}

// readFailure decodes a *Failure as msgpack/v5 does: nil sets *p to nil, and a
// map fills *p, allocating it if it is nil (so a repeated key merges).
func readFailure(r *mpack.Reader, p **Failure) error {
	if r.PeekNil() {
		*p = nil
		return r.ReadNil()
	}
	if *p == nil {
		*p = new(Failure)
	}
	f := *p
	zero, err := r.ReadStruct(failFields, failureField, func(i int) (err error) {
		switch i {
		case failType:
			f.Type, err = r.ReadString()
		case failMessage:
			f.Message, err = r.ReadString()
		case failStack:
			f.Stack, err = r.ReadString()
		case failNonRetriable:
			f.NonRetriable, err = r.ReadBool()
		}
		return err
	})
	if zero {
		*f = Failure{}
	}
	return err
}

// ActivityRecord fields, in struct order.
const (
	actV = iota
	actTaskID
	actName
	actInput
	actAttempt
	actFirstAttemptAt
	actNextAttemptAt
	actFailed
	actTaskExecutionID
	actApp
	actPermit
	actFields
)

func activityField(name []byte) int {
	switch string(name) {
	case "v":
		return actV
	case "t":
		return actTaskID
	case "n":
		return actName
	case "in":
		return actInput
	case "a":
		return actAttempt
	case "fa":
		return actFirstAttemptAt
	case "na":
		return actNextAttemptAt
	case "e":
		return actFailed
	case "te":
		return actTaskExecutionID
	case "ap":
		return actApp
	case "pm":
		return actPermit
	}
	return -1
}

func activitySize(r *ActivityRecord) int {
	n := activityMaxFixed + len(r.Name) + len(r.Input) + 2*(3+mpack.MaxHeaderSize) + len(r.TaskExecutionID) + len(r.App)
	if f := r.Failed; f != nil {
		n += 2 + failureMaxFixed + len(f.Type) + len(f.Message) + len(f.Stack)
	}
	return n
}

func appendActivity(b []byte, r *ActivityRecord) []byte {
	n := 2 // v and t are always written
	for _, set := range [...]bool{
		r.Name != "", len(r.Input) != 0, r.Attempt != 0, !r.FirstAttemptAt.IsZero(), !r.NextAttemptAt.IsZero(), r.Failed != nil,
		r.TaskExecutionID != "", r.App != "", r.Permit,
	} {
		if set {
			n++
		}
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendUint(mpack.AppendString(b, "v"), uint64(r.V))
	b = mpack.AppendInt(mpack.AppendString(b, "t"), r.TaskID)
	if r.Name != "" {
		b = mpack.AppendString(mpack.AppendString(b, "n"), r.Name)
	}
	if len(r.Input) != 0 {
		b = mpack.AppendBytes(mpack.AppendString(b, "in"), r.Input)
	}
	if r.Attempt != 0 {
		b = mpack.AppendInt(mpack.AppendString(b, "a"), int64(r.Attempt))
	}
	if !r.FirstAttemptAt.IsZero() {
		b = mpack.AppendTime(mpack.AppendString(b, "fa"), r.FirstAttemptAt)
	}
	if !r.NextAttemptAt.IsZero() {
		b = mpack.AppendTime(mpack.AppendString(b, "na"), r.NextAttemptAt)
	}
	if r.Failed != nil {
		b = appendFailure(mpack.AppendString(b, "e"), r.Failed)
	}
	if r.TaskExecutionID != "" {
		b = mpack.AppendString(mpack.AppendString(b, "te"), r.TaskExecutionID)
	}
	if r.App != "" {
		b = mpack.AppendString(mpack.AppendString(b, "ap"), r.App)
	}
	if r.Permit {
		b = mpack.AppendBool(mpack.AppendString(b, "pm"), true)
	}
	return b
}

func readActivity(r *mpack.Reader, rec *ActivityRecord) error {
	zero, err := r.ReadStruct(actFields, activityField, func(i int) (err error) {
		var n int64
		switch i {
		case actV:
			rec.V, err = readUint8(r)
		case actTaskID:
			rec.TaskID, err = r.ReadInt()
		case actName:
			rec.Name, err = r.ReadString()
		case actInput:
			rec.Input, err = r.ReadBytes()
		case actAttempt:
			n, err = r.ReadInt()
			rec.Attempt = int(n)
		case actFirstAttemptAt:
			rec.FirstAttemptAt, err = r.ReadTime()
		case actNextAttemptAt:
			rec.NextAttemptAt, err = r.ReadTime()
		case actFailed:
			err = readFailure(r, &rec.Failed)
		case actTaskExecutionID:
			rec.TaskExecutionID, err = r.ReadString()
		case actApp:
			rec.App, err = r.ReadString()
		case actPermit:
			rec.Permit, err = r.ReadBool()
		}
		return err
	})
	if zero {
		*rec = ActivityRecord{}
	}
	return err
}

// OutboxRecord fields, in struct order.
const (
	outV = iota
	outSeq
	outTarget
	outKind
	outName
	outData
	outFields
)

func outboxField(name []byte) int {
	switch string(name) {
	case "v":
		return outV
	case "q":
		return outSeq
	case "t":
		return outTarget
	case "k":
		return outKind
	case "n":
		return outName
	case "d":
		return outData
	}
	return -1
}

func outboxSize(r *OutboxRecord) int {
	return outboxMaxFixed + len(r.Target) + len(r.Name) + len(r.Data)
}

func appendOutbox(b []byte, r *OutboxRecord) []byte {
	n := 3 // v, q and t are always written
	if r.Kind != 0 {
		n++
	}
	if r.Name != "" {
		n++
	}
	if len(r.Data) != 0 {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendUint(mpack.AppendString(b, "v"), uint64(r.V))
	b = mpack.AppendUint(mpack.AppendString(b, "q"), r.Seq)
	b = mpack.AppendString(mpack.AppendString(b, "t"), r.Target)
	if r.Kind != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "k"), uint64(r.Kind))
	}
	if r.Name != "" {
		b = mpack.AppendString(mpack.AppendString(b, "n"), r.Name)
	}
	if len(r.Data) != 0 {
		b = mpack.AppendBytes(mpack.AppendString(b, "d"), r.Data)
	}
	return b
}

func readOutbox(r *mpack.Reader, rec *OutboxRecord) error {
	zero, err := r.ReadStruct(outFields, outboxField, func(i int) (err error) {
		switch i {
		case outV:
			rec.V, err = readUint8(r)
		case outSeq:
			rec.Seq, err = r.ReadUint()
		case outTarget:
			rec.Target, err = r.ReadString()
		case outKind:
			var k uint8
			k, err = readUint8(r)
			rec.Kind = OutboxKind(k)
		case outName:
			rec.Name, err = r.ReadString()
		case outData:
			rec.Data, err = r.ReadBytes()
		}
		return err
	})
	if zero {
		*rec = OutboxRecord{}
	}
	return err
}

// IndexEntry fields, in struct order.
const (
	idxV = iota
	idxName
	idxStatus
	idxFields
)

func indexEntryField(name []byte) int {
	switch string(name) {
	case "v":
		return idxV
	case "n":
		return idxName
	case "s":
		return idxStatus
	}
	return -1
}

func appendIndexEntry(b []byte, e *IndexEntry) []byte {
	n := 1 // v is always written
	if e.Name != "" {
		n++
	}
	if e.Status != 0 {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendUint(mpack.AppendString(b, "v"), uint64(e.V))
	if e.Name != "" {
		b = mpack.AppendString(mpack.AppendString(b, "n"), e.Name)
	}
	if e.Status != 0 {
		b = mpack.AppendUint(mpack.AppendString(b, "s"), uint64(e.Status))
	}
	return b
}

func readIndexEntry(r *mpack.Reader, e *IndexEntry) error {
	zero, err := r.ReadStruct(idxFields, indexEntryField, func(i int) (err error) {
		var u uint64
		switch i {
		case idxV:
			e.V, err = readUint8(r)
		case idxName:
			e.Name, err = r.ReadString()
		case idxStatus:
			u, err = r.ReadUint()
			e.Status = Status(u)
		}
		return err
	})
	if zero {
		*e = IndexEntry{}
	}
	return err
}

// reminderValue fields, in struct order.
const (
	remV = iota
	remPayload
	remFields
)

func reminderField(name []byte) int {
	switch string(name) {
	case "v":
		return remV
	case "p":
		return remPayload
	}
	return -1
}

func appendReminderValue(b []byte, v *reminderValue) []byte {
	n := 1 // v is always written
	if len(v.Payload) != 0 {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendUint(mpack.AppendString(b, "v"), uint64(v.V))
	if len(v.Payload) != 0 {
		b = mpack.AppendBytes(mpack.AppendString(b, "p"), v.Payload)
	}
	return b
}

func readReminderValue(r *mpack.Reader, v *reminderValue) error {
	zero, err := r.ReadStruct(remFields, reminderField, func(i int) (err error) {
		switch i {
		case remV:
			v.V, err = readUint8(r)
		case remPayload:
			v.Payload, err = r.ReadBytes()
		}
		return err
	})
	if zero {
		*v = reminderValue{}
	}
	return err
}
