package cluster

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// Meta is what a node advertises to the others in gossip (memberlist's node
// metadata, at most memberlist.MetaMaxSize = 512 bytes encoded).
type Meta struct {
	NodeID    string `msgpack:"id"`
	ActorAddr string `msgpack:"aa,omitempty"` // actor messaging (protoactor remote), host:port
	HTTPAddr  string `msgpack:"ha,omitempty"`
	GRPCAddr  string `msgpack:"ga,omitempty"`
	// Partitions is the cluster's partition count as this node's store has it;
	// a node with another count is refused, since it would map keys elsewhere.
	Partitions int `msgpack:"p"`
	// Epoch changes on every start (Start sets it to the start time in Unix
	// milliseconds when zero), so peers can tell a restarted node from its
	// earlier run.
	Epoch int64 `msgpack:"e"`
	// Leaving is set by Leave before memberlist announces the leave, so peers
	// record the node as left rather than dead. memberlist itself does not tell
	// its event listeners which of the two happened.
	Leaving bool `msgpack:"l,omitempty"`
}

// metaV is the version of the metadata encoding. Adding an omitempty field does
// not need a bump; a node refuses peers whose metadata version it does not
// know, so a bump means a cluster cannot mix the two builds.
const metaV = 1

// ErrUnknownMetaVersion is returned (wrapped) for metadata written by a newer
// build than this one.
var ErrUnknownMetaVersion = errors.New("cluster: unknown node metadata version")

// metaWire is Meta on the wire: a msgpack map whose first key is the version,
// as every weft record is.
type metaWire struct {
	V    uint8 `msgpack:"v"`
	Meta `msgpack:",inline"`
}

func encodeMeta(m Meta) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(metaWire{V: metaV, Meta: m}); err != nil {
		return nil, fmt.Errorf("cluster: encode node metadata: %w", err)
	}
	if buf.Len() > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("cluster: node metadata is %d bytes encoded; memberlist allows %d (shorten the addresses or the node id)",
			buf.Len(), memberlist.MetaMaxSize)
	}
	return buf.Bytes(), nil
}

// decodeMeta checks the version before decoding the rest, so metadata of a
// newer layout is refused by name rather than half-read.
func decodeMeta(b []byte) (Meta, error) {
	ver, err := peekVersion(b)
	if err != nil {
		return Meta{}, fmt.Errorf("cluster: decode node metadata: %w", err)
	}
	if ver == 0 || ver > metaV {
		return Meta{}, fmt.Errorf("cluster: decode node metadata: version %d, this build reads up to %d: %w", ver, metaV, ErrUnknownMetaVersion)
	}
	var w metaWire
	if err := msgpack.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("cluster: decode node metadata (version %d): %w", ver, err)
	}
	return w.Meta, nil
}

// peekVersion returns the "v" field of a msgpack map, 0 when it has none.
func peekVersion(b []byte) (uint8, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := d.DecodeMapLen()
	if err != nil {
		return 0, fmt.Errorf("not a versioned record: %w", err)
	}
	for range n {
		k, err := d.DecodeString()
		if err != nil {
			return 0, fmt.Errorf("read field name: %w", err)
		}
		if k == "v" {
			return d.DecodeUint8()
		}
		if err := d.Skip(); err != nil {
			return 0, fmt.Errorf("skip field %q: %w", k, err)
		}
	}
	return 0, nil
}

// PartitionMismatchError refuses a node whose partition count differs from
// this node's. Both counts are named, since one of the two stores was created
// with a non-default count and the operator must see which.
type PartitionMismatchError struct {
	Node   string // the other node
	Theirs int
	Ours   int
}

func (e *PartitionMismatchError) Error() string {
	return fmt.Sprintf("cluster: partition count mismatch: node %q has %d partitions, this node has %d; a cluster's nodes must all have the same count",
		e.Node, e.Theirs, e.Ours)
}
