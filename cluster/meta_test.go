package cluster

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

func TestMetaRoundTrip(t *testing.T) {
	m := Meta{NodeID: "node-1", ActorAddr: "10.0.0.1:8090", HTTPAddr: "10.0.0.1:3500", GRPCAddr: "10.0.0.1:50001",
		Partitions: 256, Epoch: 1_760_000_000_000, Leaving: true}
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(b)
	if err != nil || got != m {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, m)
	}
	if v, _ := peekVersion(b); v != metaV {
		t.Fatalf("version %d; want %d first in the map", v, metaV)
	}
	t.Logf("encoded metadata: %d bytes of memberlist's %d", len(b), memberlist.MetaMaxSize)
}

func TestMetaOfANewerVersionIsRefused(t *testing.T) {
	b, err := msgpack.Marshal(map[string]any{"v": metaV + 1, "id": "n", "p": 256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeMeta(b); !errors.Is(err, ErrUnknownMetaVersion) {
		t.Fatalf("got %v; want ErrUnknownMetaVersion", err)
	}
	if _, err := decodeMeta([]byte("not msgpack")); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestMetaTooLargeIsRefusedAtStart(t *testing.T) {
	cfg := testConfig("n1")
	cfg.Meta.HTTPAddr = strings.Repeat("h", 500)
	if _, err := Start(cfg); err == nil || !strings.Contains(err.Error(), "512") {
		t.Fatalf("got %v; want an error naming memberlist's 512-byte limit", err)
	}
}

// TestGossipOfAMismatchedNodeIsIgnored: a node with another partition count is
// refused even when it arrives by gossip rather than by a join.
func TestGossipOfAMismatchedNodeIsIgnored(t *testing.T) {
	d := &delegate{&Membership{partitions: 256}}
	meta := func(m Meta) []byte {
		b, err := encodeMeta(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := d.NotifyAlive(&memberlist.Node{Name: "n2", Meta: meta(Meta{NodeID: "n2", Partitions: 256})}); err != nil {
		t.Fatalf("a matching node was refused: %v", err)
	}
	var pm *PartitionMismatchError
	err := d.NotifyAlive(&memberlist.Node{Name: "n3", Meta: meta(Meta{NodeID: "n3", Partitions: 64})})
	if !errors.As(err, &pm) || pm.Theirs != 64 || pm.Ours != 256 {
		t.Fatalf("got %v; want a PartitionMismatchError 64 vs 256", err)
	}
	if err := d.NotifyAlive(&memberlist.Node{Name: "n4", Meta: meta(Meta{NodeID: "n5", Partitions: 256})}); err == nil {
		t.Fatal("a node advertising another node's id was accepted")
	}
	if err := d.NotifyAlive(&memberlist.Node{Name: "n6"}); err == nil {
		t.Fatal("a node without metadata was accepted")
	}
}
