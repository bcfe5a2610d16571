package workflow

import (
	"time"

	"github.com/weftrt/weft/internal/mpack"
)

// The hand-written msgpack codec of Event. Every step encodes the events it
// appends and decodes the history it replays; through msgpack/v5's reflection
// that cost 10-15% of a step's CPU. These functions write exactly the bytes
// msgpack.Marshal(&ev) wrote (the golden tests pin them, and the codec tests
// compare both on random events) and read everything msgpack.Unmarshal read.
//
// msgpack.Marshal does not use compact ints, so each integer is written in the
// width of its Go type: uint8 (V, Kind) as 0xcc xx, int64 and time.Duration as
// 0xd3 and eight bytes. Go int (RetryPolicy.MaxAttempts) is the exception: it
// is always written in its smallest form. Fields tagged omitempty are left out
// when zero: a zero time, an empty string or slice, a nil pointer, 0, false.

// Event fields, in struct order: the order of the encoding, and of the array
// form msgpack/v5 also decodes.
const (
	evV = iota
	evKind
	evTime
	evTaskID
	evName
	evData
	evInstance
	evFireAt
	evFailure
	evRetry
	evVersion
	evTaskExecutionID
	evApp
	evFields
)

func eventField(name []byte) int {
	switch string(name) {
	case "v":
		return evV
	case "k":
		return evKind
	case "t":
		return evTime
	case "id":
		return evTaskID
	case "n":
		return evName
	case "d":
		return evData
	case "i":
		return evInstance
	case "f":
		return evFireAt
	case "e":
		return evFailure
	case "r":
		return evRetry
	case "ver":
		return evVersion
	case "te":
		return evTaskExecutionID
	case "ap":
		return evApp
	}
	return -1
}

// Upper bounds of the encoded sizes, less the string and byte contents.
const (
	// Map header 1; keys v, k, t, id, n, d, i, f 17; values: v 2, k 2, t and
	// f 15 each, id 9, and the headers of n, d and i, 5 each. The keys e and
	// r (2 bytes each) are added with their values.
	eventMaxFixed = 1 + 17 + 2 + 2 + 2*mpack.MaxTimeSize + 9 + 3*mpack.MaxHeaderSize
	// Map header 1, keys 9, three string headers, nr 1.
	failureMaxFixed = 1 + 9 + 3*mpack.MaxHeaderSize + 1
	// Map header 1, keys 10, five numbers of at most 9 bytes.
	retryMaxSize = 1 + 10 + 5*mpack.MaxIntSize
)

// eventSize bounds the encoded size of ev, so the encoder allocates once.
func eventSize(ev *Event) int {
	n := eventMaxFixed + len(ev.Name) + len(ev.Data) + len(ev.Instance)
	if ev.Version != "" {
		n += 4 + mpack.MaxHeaderSize + len(ev.Version)
	}
	if ev.TaskExecutionID != "" {
		n += 3 + mpack.MaxHeaderSize + len(ev.TaskExecutionID)
	}
	if ev.App != "" {
		n += 3 + mpack.MaxHeaderSize + len(ev.App)
	}
	if f := ev.Failure; f != nil {
		n += 2 + failureMaxFixed + len(f.Type) + len(f.Message) + len(f.Stack)
	}
	if ev.Retry != nil {
		n += 2 + retryMaxSize
	}
	return n
}

func appendEvent(b []byte, ev *Event) []byte {
	n := 3 // v, k and t are always written
	if ev.TaskID != 0 {
		n++
	}
	if ev.Name != "" {
		n++
	}
	if len(ev.Data) != 0 {
		n++
	}
	if ev.Instance != "" {
		n++
	}
	if !ev.FireAt.IsZero() {
		n++
	}
	if ev.Failure != nil {
		n++
	}
	if ev.Retry != nil {
		n++
	}
	if ev.Version != "" {
		n++
	}
	if ev.TaskExecutionID != "" {
		n++
	}
	if ev.App != "" {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendUint8(mpack.AppendString(b, "v"), ev.V)
	b = mpack.AppendUint8(mpack.AppendString(b, "k"), uint8(ev.Kind))
	b = mpack.AppendTime(mpack.AppendString(b, "t"), ev.Time)
	if ev.TaskID != 0 {
		b = mpack.AppendInt64(mpack.AppendString(b, "id"), ev.TaskID)
	}
	if ev.Name != "" {
		b = mpack.AppendString(mpack.AppendString(b, "n"), ev.Name)
	}
	if len(ev.Data) != 0 {
		b = mpack.AppendBytes(mpack.AppendString(b, "d"), ev.Data)
	}
	if ev.Instance != "" {
		b = mpack.AppendString(mpack.AppendString(b, "i"), ev.Instance)
	}
	if !ev.FireAt.IsZero() {
		b = mpack.AppendTime(mpack.AppendString(b, "f"), ev.FireAt)
	}
	if ev.Failure != nil {
		b = appendFailure(mpack.AppendString(b, "e"), ev.Failure)
	}
	if ev.Retry != nil {
		b = appendRetry(mpack.AppendString(b, "r"), ev.Retry)
	}
	if ev.Version != "" {
		b = mpack.AppendString(mpack.AppendString(b, "ver"), ev.Version)
	}
	if ev.TaskExecutionID != "" {
		b = mpack.AppendString(mpack.AppendString(b, "te"), ev.TaskExecutionID)
	}
	if ev.App != "" {
		b = mpack.AppendString(mpack.AppendString(b, "ap"), ev.App)
	}
	return b
}

// readEvent decodes an Event from r into ev, which should be zero.
func readEvent(r *mpack.Reader, ev *Event) error {
	zero, err := r.ReadStruct(evFields, eventField, func(i int) (err error) {
		var u uint64
		switch i {
		case evV:
			u, err = r.ReadUint()
			ev.V = uint8(u)
		case evKind:
			u, err = r.ReadUint()
			ev.Kind = EventKind(u)
		case evTime:
			ev.Time, err = r.ReadTime()
		case evTaskID:
			ev.TaskID, err = r.ReadInt()
		case evName:
			ev.Name, err = r.ReadString()
		case evData:
			ev.Data, err = r.ReadBytes()
		case evInstance:
			ev.Instance, err = r.ReadString()
		case evFireAt:
			ev.FireAt, err = r.ReadTime()
		case evFailure:
			err = readFailure(r, &ev.Failure)
		case evRetry:
			err = readRetry(r, &ev.Retry)
		case evVersion:
			ev.Version, err = r.ReadString()
		case evTaskExecutionID:
			ev.TaskExecutionID, err = r.ReadString()
		case evApp:
			ev.App, err = r.ReadString()
		}
		return err
	})
	if zero {
		*ev = Event{}
	}
	return err
}

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
	if f.Type != "" {
		n++
	}
	if f.Message != "" {
		n++
	}
	if f.Stack != "" {
		n++
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

// RetryPolicy fields; Handle is not stored.
const (
	retryMaxAttempts = iota
	retryFirstInterval
	retryBackoff
	retryMaxInterval
	retryTimeout
	retryFields
)

func retryField(name []byte) int {
	switch string(name) {
	case "a":
		return retryMaxAttempts
	case "f":
		return retryFirstInterval
	case "b":
		return retryBackoff
	case "m":
		return retryMaxInterval
	case "t":
		return retryTimeout
	}
	return -1
}

func appendRetry(b []byte, p *RetryPolicy) []byte {
	n := 0
	if p.MaxAttempts != 0 {
		n++
	}
	if p.FirstRetryInterval != 0 {
		n++
	}
	if p.BackoffCoefficient != 0 { // -0.0 is omitted too, NaN is written
		n++
	}
	if p.MaxRetryInterval != 0 {
		n++
	}
	if p.RetryTimeout != 0 {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	if p.MaxAttempts != 0 {
		b = mpack.AppendInt(mpack.AppendString(b, "a"), int64(p.MaxAttempts))
	}
	if p.FirstRetryInterval != 0 {
		b = mpack.AppendInt64(mpack.AppendString(b, "f"), int64(p.FirstRetryInterval))
	}
	if p.BackoffCoefficient != 0 {
		b = mpack.AppendFloat64(mpack.AppendString(b, "b"), p.BackoffCoefficient)
	}
	if p.MaxRetryInterval != 0 {
		b = mpack.AppendInt64(mpack.AppendString(b, "m"), int64(p.MaxRetryInterval))
	}
	if p.RetryTimeout != 0 {
		b = mpack.AppendInt64(mpack.AppendString(b, "t"), int64(p.RetryTimeout))
	}
	return b
}

// readRetry is readFailure for a *RetryPolicy.
func readRetry(r *mpack.Reader, pp **RetryPolicy) error {
	if r.PeekNil() {
		*pp = nil
		return r.ReadNil()
	}
	if *pp == nil {
		*pp = new(RetryPolicy)
	}
	p := *pp
	zero, err := r.ReadStruct(retryFields, retryField, func(i int) (err error) {
		var n int64
		switch i {
		case retryMaxAttempts:
			n, err = r.ReadInt()
			p.MaxAttempts = int(n)
		case retryFirstInterval:
			n, err = r.ReadInt()
			p.FirstRetryInterval = time.Duration(n)
		case retryBackoff:
			p.BackoffCoefficient, err = r.ReadFloat64()
		case retryMaxInterval:
			n, err = r.ReadInt()
			p.MaxRetryInterval = time.Duration(n)
		case retryTimeout:
			n, err = r.ReadInt()
			p.RetryTimeout = time.Duration(n)
		}
		return err
	})
	if zero {
		*p = RetryPolicy{}
	}
	return err
}
