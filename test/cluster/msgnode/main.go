// Command msgnode is a weft cluster node for test/cluster's tests of messages
// between instances and of network partitions. It takes weft serve's cluster
// and HTTP flags (the word "serve" first, as the harness starts weft) and
// serves weft's HTTP API, hosting test/messaging's workflows (and, with
// --samples, the seed's). With --faults its links to other nodes go through
// test/faultnet, and PUT /faultnet {"blocked": ["host:port", ...]} cuts it
// off from those addresses. Like weft serve it logs "weft serving" with its
// addresses once it serves, and stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/cluster"
	"github.com/weftrt/weft/examples/seed"
	"github.com/weftrt/weft/test/faultnet"
	"github.com/weftrt/weft/test/messaging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "msgnode:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("msgnode", flag.ContinueOnError)
	httpAddr := fs.String("http", "127.0.0.1:0", "HTTP listen address")
	_ = fs.String("grpc", "off", "ignored: no gRPC")
	data := fs.String("data", "", "data directory")
	nodeID := fs.String("node-id", "", "node id")
	gossip := fs.String("gossip", "", "gossip listen address")
	actor := fs.String("actor", "", "actor transport listen address")
	join := fs.String("join", "", "gossip addresses to join, comma-separated")
	replicas := fs.Int("replicas", 0, "copies of each partition (0: one)")
	samples := fs.Bool("samples", false, "host the seed's sample workflows too")
	faults := fs.Bool("faults", false, "route node-to-node traffic through test/faultnet, controlled at /faultnet")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var joins []string
	for _, a := range strings.Split(*join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			joins = append(joins, a)
		}
	}
	url := "http://" + ln.Addr().String()
	cfg := &cluster.NodeConfig{
		Gossip:    cluster.Config{NodeID: *nodeID, BindAddr: *gossip, Join: joins, Meta: cluster.Meta{HTTPAddr: url}},
		ActorAddr: *actor,
		Founder:   len(joins) == 0,
		Replicas:  *replicas,
	}
	fnet := faultnet.New()
	if *faults {
		cfg.Gossip.WrapTransport = fnet.WrapTransport
		// Replacing protoactor's dial options: plaintext must be asked for again.
		cfg.DialOptions = []grpc.DialOption{fnet.DialOption(), grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	rt, err := weft.Open(weft.Options{Dir: *data, Logger: logger, Cluster: cfg})
	if err != nil {
		return err
	}
	defer rt.Close()
	if err := messaging.Register(rt.Registry()); err != nil {
		return err
	}
	if *samples {
		if err := seed.Register(rt, seed.Config{Logger: logger}); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rt.Start(ctx); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", api.NewHandler(rt, api.Options{Logger: logger}))
	if *faults {
		mux.Handle("/faultnet", fnet.Handler())
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("weft serving", "http", url, "node", *nodeID, "gossip", *gossip, "actor", *actor)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
