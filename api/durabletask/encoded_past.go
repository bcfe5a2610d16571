package durabletask

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/api/durabletask/protos"
)

// A worker without stateful history (Dapr's SDKs up to 1.16, durabletask-go,
// durabletask-js) gets an instance's whole past with every episode. Converting
// and encoding it every time made the server's cost per step grow with the
// history (a chain of N steps cost O(N²)). Instead the instance keeps, in its
// actors.EpisodeCache, its past's pastEvents entries exactly as they go on the
// wire, and each episode converts and encodes only the events committed since
// the last one. The request carries the bytes as its unknown fields: they are
// written out verbatim after the known ones, and a protobuf parser reads the
// repeated field's entries, in order, wherever they stand in the message.
//
// The conversion of a past event depends on what came before it, its own
// episode (committed at once, so never split by a prefix), and on the
// instance's version and trace context (see episodeEvents): the bytes are
// kept for one execution, version and trace context, and start over when any
// of them changes (a worker's first answer names the version of a new
// instance, once).

// pastEventsField is WorkflowRequest.pastEvents's field number.
var pastEventsField = (&protos.WorkflowRequest{}).ProtoReflect().Descriptor().Fields().ByName("pastEvents").Number()

// encodedPast is the wire form of an instance's past, o.Past[:raw].
type encodedPast struct {
	execution   string
	created     time.Time
	version     string
	traceParent string
	traceState  string
	raw         int    // how many of the instance's history events the bytes hold
	events      int    // how many protocol events they are
	bytes       []byte // pastEvents entries (tag, length, message), in order
}

func (e *encodedPast) fits(o *actors.OrchestrationWork) bool {
	return e.execution == o.ExecutionID && e.created.Equal(o.Created) && e.version == o.Version &&
		e.traceParent == o.TraceParent && e.traceState == o.TraceState
}

// setEncodedEpisode fills req with o's events for a worker that holds none of
// them: the past as encoded entries from the instance's cache (extended by the
// events since its last episode), the new events as messages. It returns how
// many past events req carries. Without a cache, or when an event does not
// encode (the send reports that error as before), every event is a message.
func setEncodedEpisode(req *protos.WorkflowRequest, o *actors.OrchestrationWork) int {
	c := o.Cache
	if c == nil || len(o.Past) == 0 {
		req.PastEvents, req.NewEvents = episodeEvents(o)
		return len(req.PastEvents)
	}
	c.Lock()
	defer c.Unlock()
	e, _ := c.Value.(*encodedPast)
	if e == nil || !e.fits(o) {
		e = &encodedPast{execution: o.ExecutionID, created: o.Created, version: o.Version,
			traceParent: o.TraceParent, traceState: o.TraceState}
		c.Value = e
	}
	if e.raw > len(o.Past) {
		// An older episode offered again after a newer one was sent: rare
		// enough to convert in full rather than keep offsets into the bytes.
		req.PastEvents, req.NewEvents = episodeEvents(o)
		return len(req.PastEvents)
	}
	since, news := deltaEvents(o, e.raw)
	bytes, ok := appendPastEvents(e.bytes, since)
	if !ok {
		req.PastEvents, req.NewEvents = episodeEvents(o)
		return len(req.PastEvents)
	}
	e.bytes, e.raw, e.events = bytes, len(o.Past), e.events+len(since)
	// Capacity clipped: the message must never see the cache's later appends
	// (which only ever write past this length, so earlier sends stay intact).
	req.ProtoReflect().SetUnknown(protoreflect.RawFields(e.bytes[:len(e.bytes):len(e.bytes)]))
	req.NewEvents = news
	return e.events
}

// appendPastEvents appends evs to b as pastEvents entries; false if one does
// not encode.
func appendPastEvents(b []byte, evs []*protos.HistoryEvent) ([]byte, bool) {
	opts := proto.MarshalOptions{UseCachedSize: true}
	for _, he := range evs {
		b = protowire.AppendTag(b, pastEventsField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(proto.Size(he)))
		var err error
		if b, err = opts.MarshalAppend(b, he); err != nil {
			return nil, false
		}
	}
	return b, true
}
