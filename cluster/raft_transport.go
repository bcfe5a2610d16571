package cluster

import (
	"fmt"
	"log/slog"

	"github.com/vmihailenco/msgpack/v5"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weftrt/weft/replication"
)

// raftTransport carries raft messages between nodes over the actor transport
// (replication.Transport): one envelope per destination node and Ready pass,
// holding that pass's messages of every group, so a heartbeat round of 256
// groups is one envelope. It is sent without waiting for an answer; raft sends
// again what is lost.
//
// A snapshot's message is the exception: snapshot, when set, streams the
// partition's data first and sends the message after it (replicas.go).
type raftTransport struct {
	tr       *transport
	self     replication.NodeID
	addrOf   func(replication.NodeID) (string, bool) // a replica id's actor address
	log      *slog.Logger
	snapshot func(to replication.NodeID, addr string, m replication.Envelope)
}

// raftBatch is a kindRaft envelope's payload.
type raftBatch struct {
	From uint64    `msgpack:"f,omitempty"` // the sender's replica id; a batch without messages is a liveness ping
	Msgs []raftMsg `msgpack:"m"`
}

type raftMsg struct {
	Group   uint16 `msgpack:"g"`
	Msg     []byte `msgpack:"b"` // raftpb.Message, protobuf
	Quiesce bool   `msgpack:"q,omitempty"`
}

// Send implements replication.Transport.
func (t *raftTransport) Send(to replication.NodeID, msgs []replication.Envelope) {
	addr, ok := t.addrOf(to)
	if !ok {
		t.log.Debug("raft messages to an unknown replica dropped", "replica", to, "count", len(msgs))
		return
	}
	if t.snapshot != nil {
		rest := msgs[:0:0]
		for _, m := range msgs {
			if m.Message.GetType() == pb.MessageType_MsgSnap {
				go t.snapshot(to, addr, m)
				continue
			}
			rest = append(rest, m)
		}
		msgs = rest
	}
	t.sendNow(addr, msgs)
}

// sendNow sends msgs to the node at addr in one envelope.
func (t *raftTransport) sendNow(addr string, msgs []replication.Envelope) {
	if len(msgs) == 0 {
		return
	}
	t.send(addr, msgs)
}

// ping sends a batch without messages: the receiver hears this node is there.
func (t *raftTransport) ping(addr string) { t.send(addr, nil) }

func (t *raftTransport) send(addr string, msgs []replication.Envelope) {
	b := raftBatch{From: t.self, Msgs: make([]raftMsg, 0, len(msgs))}
	for _, m := range msgs {
		enc, err := proto.Marshal(m.Message)
		if err != nil {
			t.log.Error("raft message not encoded; dropped", "group", m.Group, "err", err)
			continue
		}
		b.Msgs = append(b.Msgs, raftMsg{Group: uint16(m.Group), Msg: enc, Quiesce: m.Quiesce})
	}
	if err := t.tr.send(addr, kindRaft, b); err != nil {
		t.log.Debug("raft messages not sent", "to", addr, "err", err)
	}
}

// decodeRaftBatch is Send's inverse, for the receiving node; from is the
// sender's replica id.
func decodeRaftBatch(payload []byte) (from replication.NodeID, msgs []replication.Envelope, err error) {
	var b raftBatch
	if err := msgpack.Unmarshal(payload, &b); err != nil {
		return 0, nil, fmt.Errorf("cluster: decode raft messages: %w", err)
	}
	out := make([]replication.Envelope, 0, len(b.Msgs))
	for _, m := range b.Msgs {
		msg := &pb.Message{}
		if err := proto.Unmarshal(m.Msg, msg); err != nil {
			return 0, nil, fmt.Errorf("cluster: decode a raft message of group %d: %w", m.Group, err)
		}
		out = append(out, replication.Envelope{Group: replication.GroupID(m.Group), Message: msg, Quiesce: m.Quiesce})
	}
	return b.From, out, nil
}
