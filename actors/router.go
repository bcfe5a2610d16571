package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftrt/weft/storage"
)

// Router spreads a host's work over a cluster (package cluster implements it).
// Without one, the host is a single node and everything is local. The host asks
// the router before it activates an instance for a message and before it runs
// an activity attempt; the router either lets the host go on locally or takes
// the work to another node.
type Router interface {
	// Forward takes msg to the node that serves id's partition, unless this node
	// does (forwarded=false). It returns the remote actor's answer, or an error
	// saying why the partition cannot be served now (its node is down, a move
	// outlasted the wait).
	Forward(ctx context.Context, id string, msg any) (forwarded bool, err error)
	// Dispatch runs an activity attempt on the node placement picks among the
	// live ones, unless that is this node (sent=false).
	Dispatch(inv Invocation) (sent bool)
}

// SetRouter makes the host part of a cluster. Call it before Start.
func (h *Host) SetRouter(r Router) { h.router = r }

// RunActivity runs an attempt here, whatever placement says: the path for an
// attempt another node placed on this one.
func (h *Host) RunActivity(inv Invocation) { h.dispatchLocal(inv) }

// Report hands an activity attempt's outcome to its instance, wherever it lives.
func (h *Host) Report(res ActivityResult, instance string) { h.report(res, instance) }

// ReadInstance returns an instance's committed row (after making sure what it
// read is durable).
func (h *Host) ReadInstance(id string) (*storage.InstanceRecord, error) {
	row, err := h.db.Instance(h.Partition(id), id)
	if err != nil {
		return nil, err
	}
	if err := h.db.SyncVisible(); err != nil {
		return nil, err
	}
	return row, nil
}

// The messages that may cross nodes, by the kind their envelope names. Only
// these are forwarded; the others are a node's own business (an actor's
// acknowledgements to itself, a worker's answer to this node's pool) and are
// dropped when their instance has moved: its new owner re-sends what it needs.
const (
	MsgStart       = "start"
	MsgRaise       = "raise"
	MsgTerminate   = "terminate"
	MsgSuspend     = "suspend"
	MsgResume      = "resume"
	MsgPurge       = "purge"
	MsgChildResult = "child-result"
	MsgReminder    = "reminder"
	MsgWake        = "wake"
	MsgDrain       = "drain"
	MsgOutboxSent  = "outbox-sent"
	MsgParentAck   = "parent-ack"
	MsgActivity    = "activity-result"
	MsgRerun       = "rerun"
)

// ErrNotForwardable marks a message that only makes sense on its own node.
var ErrNotForwardable = errors.New("message cannot be forwarded to another node")

type outboxSentWire struct {
	Seq uint64 `msgpack:"s"`
}

// EncodeMessage returns the kind and msgpack payload of a forwardable message.
func EncodeMessage(msg any) (kind string, payload []byte, err error) {
	var v any = msg
	switch m := msg.(type) {
	case StartRequest:
		kind = MsgStart
	case RaiseEventRequest:
		kind = MsgRaise
	case TerminateRequest:
		kind = MsgTerminate
	case SuspendRequest:
		kind = MsgSuspend
	case ResumeRequest:
		kind = MsgResume
	case PurgeRequest:
		kind = MsgPurge
	case RerunRequest:
		kind = MsgRerun
	case ChildResult:
		kind = MsgChildResult
	case ActivityResult:
		kind = MsgActivity
	case reminderFired:
		kind, v = MsgReminder, m.r
	case wake:
		kind, v = MsgWake, nil
	case drainResults:
		kind, v = MsgDrain, nil
	case outboxSent:
		kind, v = MsgOutboxSent, outboxSentWire{m.seq}
	case parentNotified:
		kind, v = MsgParentAck, nil
	default:
		return "", nil, fmt.Errorf("%T: %w", msg, ErrNotForwardable)
	}
	if v == nil {
		return kind, nil, nil
	}
	payload, err = msgpack.Marshal(v)
	return kind, payload, err
}

// DecodeMessage is EncodeMessage's inverse.
func DecodeMessage(kind string, payload []byte) (any, error) {
	switch kind {
	case MsgStart:
		return decodeAs[StartRequest](kind, payload)
	case MsgRaise:
		return decodeAs[RaiseEventRequest](kind, payload)
	case MsgTerminate:
		return decodeAs[TerminateRequest](kind, payload)
	case MsgSuspend:
		return decodeAs[SuspendRequest](kind, payload)
	case MsgResume:
		return decodeAs[ResumeRequest](kind, payload)
	case MsgPurge:
		return decodeAs[PurgeRequest](kind, payload)
	case MsgRerun:
		return decodeAs[RerunRequest](kind, payload)
	case MsgChildResult:
		return decodeAs[ChildResult](kind, payload)
	case MsgActivity:
		return decodeAs[ActivityResult](kind, payload)
	case MsgReminder:
		r, err := decodeAs[storage.Reminder](kind, payload)
		return reminderFired{r}, err
	case MsgWake:
		return wake{}, nil
	case MsgDrain:
		return drainResults{}, nil
	case MsgOutboxSent:
		w, err := decodeAs[outboxSentWire](kind, payload)
		return outboxSent{w.Seq}, err
	case MsgParentAck:
		return parentNotified{}, nil
	}
	return nil, fmt.Errorf("unknown message kind %q", kind)
}

func decodeAs[T any](kind string, payload []byte) (T, error) {
	var v T
	if err := msgpack.Unmarshal(payload, &v); err != nil {
		return v, fmt.Errorf("decode %s message: %w", kind, err)
	}
	return v, nil
}

// InFlight reports whether an attempt's result has not reached its instance yet.
func (h *Host) InFlight(inv Invocation) bool {
	return h.isInFlight(inv)
}

// Redispatch places an attempt again: the node it ran on is gone.
func (h *Host) Redispatch(inv Invocation) { h.dispatch(inv) }

// Wake activates an instance so it re-sends its outstanding work (after its
// partition arrived on this node).
func (h *Host) Wake(ctx context.Context, id string) error { return h.Request(ctx, id, wake{}) }
