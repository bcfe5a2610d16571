package cluster_test

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/weftrt/weft/cluster"
)

func ExampleStart() {
	dir, _ := os.MkdirTemp("", "weft-node")
	defer os.RemoveAll(dir)
	id, err := cluster.LoadOrCreateNodeID(dir, "node-1") // "" would generate one
	if err != nil {
		panic(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	first, err := cluster.Start(cluster.Config{
		NodeID:   id,
		BindAddr: "127.0.0.1:0",
		Meta:     cluster.Meta{ActorAddr: "127.0.0.1:8090", Partitions: 256},
		Logger:   quiet,
	})
	if err != nil {
		panic(err)
	}
	defer first.Shutdown()

	second, err := cluster.Start(cluster.Config{
		NodeID:   "node-2",
		BindAddr: "127.0.0.1:0",
		Join:     []string{first.Addr()}, // any member will do
		Meta:     cluster.Meta{ActorAddr: "127.0.0.1:8091", Partitions: 256},
		Logger:   quiet,
	})
	if err != nil {
		panic(err)
	}
	// A node that stops for good calls Leave(timeout) before Shutdown, so the
	// others record it as left rather than dead (about a second with the
	// default timing).
	defer second.Shutdown()

	for len(first.Members()) < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	for _, m := range first.Members() {
		fmt.Println(m.ID, m.State, m.Meta.ActorAddr)
	}
	// Output:
	// node-1 alive 127.0.0.1:8090
	// node-2 alive 127.0.0.1:8091
}
