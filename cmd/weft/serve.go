package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftrt/weft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/api/durabletask"
	"github.com/weftrt/weft/cluster"
	"github.com/weftrt/weft/examples/seed"
)

// flagSet reports whether the command line set the flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// serve runs one node until SIGINT or SIGTERM. Every flag has a WEFT_* variable.
func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; -h is answered below
	fs.Usage = func() {}
	data := fs.String("data", envOr("WEFT_DATA", "./weft-data"), "data directory (WEFT_DATA)")
	httpAddr := fs.String("http", envOr("WEFT_HTTP", ":3500"), "HTTP listen address (WEFT_HTTP)")
	grpcAddr := fs.String("grpc", envOr("WEFT_GRPC", ":50001"), "gRPC listen address for Dapr's workflow SDKs (the durabletask protocol), or off (WEFT_GRPC)")
	// The token's default is not the flag's: -h prints defaults, and must not
	// print a secret from the environment.
	token := fs.String("api-token", "", "require this token on API calls (WEFT_API_TOKEN)")
	tlsCert := fs.String("tls-cert", envOr("WEFT_TLS_CERT", ""), "TLS certificate file (WEFT_TLS_CERT)")
	tlsKey := fs.String("tls-key", envOr("WEFT_TLS_KEY", ""), "TLS key file (WEFT_TLS_KEY)")
	maxBody := fs.String("max-body", envOr("WEFT_MAX_BODY", "4MiB"), "request body limit, e.g. 512KiB, 4MiB (WEFT_MAX_BODY)")
	logFormat := fs.String("log-format", envOr("WEFT_LOG_FORMAT", "text"), "text or json (WEFT_LOG_FORMAT)")
	logLevel := fs.String("log-level", envOr("WEFT_LOG_LEVEL", "info"), "debug, info, warn or error (WEFT_LOG_LEVEL)")
	pprof := fs.Bool("pprof", envOr("WEFT_PPROF", "") == "true", "serve /debug/pprof/ (WEFT_PPROF=true)")
	partitions := fs.Int("partitions", atoiOr(envOr("WEFT_PARTITIONS", ""), 0), "partitions of a new data directory (default 256; WEFT_PARTITIONS)")
	activities := fs.Int("activity-concurrency", atoiOr(envOr("WEFT_ACTIVITY_CONCURRENCY", ""), 0), "activity attempts run at once on this node (default 256; WEFT_ACTIVITY_CONCURRENCY)")
	maxActive := fs.Int("max-active", atoiOr(envOr("WEFT_MAX_ACTIVE", ""), 0), "instances held in memory (default 10000; WEFT_MAX_ACTIVE)")
	workerItems := fs.Int("worker-max-items", atoiOr(envOr("WEFT_WORKER_MAX_ITEMS", ""), 0), "work items (activity attempts, workflow steps) one connected SDK worker holds unanswered at once; more wait or go to other workers; lower it to cap the memory of workers that get whole histories (default 1024; WEFT_WORKER_MAX_ITEMS)")
	retention := fs.String("retention", envOr("WEFT_RETENTION", ""), "purge finished instances this long after they finish, by final status: comma-separated status=duration pairs, statuses completed, failed, terminated or any, e.g. completed=720h,any=2160h; children go with their parents (default off: kept for ever; WEFT_RETENTION)")
	activityLimits := &repeated{}
	if v := envOr("WEFT_ACTIVITY_LIMITS", ""); v != "" {
		activityLimits.values = []string{v}
	}
	fs.Var(activityLimits, "activity-limit", "cap the attempts of an activity running at once across the whole cluster: name=limit, comma-separated or the flag repeated, e.g. ProcessWorkItem=20; attempts beyond it wait, durably, in turn; give every node the same (WEFT_ACTIVITY_LIMITS)")
	workflowLimits := &repeated{}
	if v := envOr("WEFT_WORKFLOW_LIMITS", ""); v != "" {
		workflowLimits.values = []string{v}
	}
	fs.Var(workflowLimits, "workflow-limit", "cap the instances of a workflow running at once across the whole cluster: name=limit, comma-separated or the flag repeated; instances beyond it wait PENDING, in turn; give every node the same (WEFT_WORKFLOW_LIMITS)")
	otlp := fs.String("otlp-endpoint", envOr("WEFT_OTLP_ENDPOINT", ""), "send OpenTelemetry spans (each workflow, activity attempt, timer, wait for an event) over OTLP/gRPC to this collector: host:port (plaintext) or https://host:port; default off, at no cost (WEFT_OTLP_ENDPOINT)")
	samples := fs.Bool("samples", envOr("WEFT_SAMPLES", "") == "true", "host the seed document's sample workflows (OrderProcessingWorkflow, ChainingWorkflow, FanOutFanInWorkflow, MonitorWorkflow) and their activities; without it every workflow and activity name belongs to the connected apps (WEFT_SAMPLES=true)")
	threshold := fs.Float64("approval-threshold", atofOr(envOr("WEFT_APPROVAL_THRESHOLD", ""), 1000), "with --samples, OrderProcessingWorkflow: orders above this cost wait for ManagerApproval (WEFT_APPROVAL_THRESHOLD)")
	nodeID := fs.String("node-id", envOr("WEFT_NODE_ID", ""), "cluster: this node's id (default: generated once and kept in the data directory; WEFT_NODE_ID)")
	gossipAddr := fs.String("gossip", envOr("WEFT_GOSSIP", ""), "cluster: gossip listen address, e.g. :7946; setting it (or --join) makes this node part of a cluster (WEFT_GOSSIP)")
	actorAddr := fs.String("actor", envOr("WEFT_ACTOR", ""), "cluster: node-to-node messaging listen address (default :7947; WEFT_ACTOR)")
	advertise := fs.String("advertise", envOr("WEFT_ADVERTISE", ""), "cluster: the host other nodes reach this one at, when the listen addresses bind every interface (WEFT_ADVERTISE)")
	join := fs.String("join", envOr("WEFT_JOIN", ""), "cluster: gossip addresses of members to join, comma-separated; without it the node founds a new cluster (WEFT_JOIN)")
	clusterName := fs.String("cluster-name", envOr("WEFT_CLUSTER_NAME", "weft"), "cluster: name; nodes of clusters with other names never merge (WEFT_CLUSTER_NAME)")
	gossipKey := fs.String("gossip-key", envOr("WEFT_GOSSIP_KEY", ""), "cluster: base64 of a 16, 24 or 32-byte key encrypting gossip (WEFT_GOSSIP_KEY)")
	clusterCert := fs.String("cluster-tls-cert", envOr("WEFT_CLUSTER_TLS_CERT", ""), "cluster: TLS certificate for node-to-node messaging (WEFT_CLUSTER_TLS_CERT)")
	clusterKey := fs.String("cluster-tls-key", envOr("WEFT_CLUSTER_TLS_KEY", ""), "cluster: its key (WEFT_CLUSTER_TLS_KEY)")
	clusterCA := fs.String("cluster-tls-ca", envOr("WEFT_CLUSTER_TLS_CA", ""), "cluster: CA that signed every node's certificate; nodes verify each other (WEFT_CLUSTER_TLS_CA)")
	replicas := fs.Int("replicas", atoiOr(envOr("WEFT_REPLICAS", ""), cluster.DefaultReplicas), "cluster: copies of each partition, on that many nodes (capped at the registered nodes); every partition is a raft group over that many nodes: 3 survives the loss of one, 1 keeps one copy that moves on joins and leaves and is unavailable while its node is down (WEFT_REPLICAS)")
	replaceAfter := fs.Duration("replace-after", durOr(envOr("WEFT_REPLACE_AFTER", ""), cluster.DefaultReplaceAfter), "cluster: how long a node stays unreachable before the others remove it and replace its replicas on other nodes; a node that only restarts comes back well before (WEFT_REPLACE_AFTER)")
	snapshotRate := fs.String("snapshot-rate", envOr("WEFT_SNAPSHOT_RATE", "32MiB"), "cluster: bytes per second this node streams to the replicas it catches up by snapshot, e.g. 32MiB (WEFT_SNAPSHOT_RATE)")
	leaveTimeout := fs.Duration("leave-timeout", durOr(envOr("WEFT_LEAVE_TIMEOUT", ""), 2*time.Minute), "cluster: on SIGTERM, how long to hand the partitions this node serves over (leadership; with --replicas 1, the partitions) before stopping anyway (WEFT_LEAVE_TIMEOUT)")
	approvalTimeout := fs.Duration("approval-timeout", durOr(envOr("WEFT_APPROVAL_TIMEOUT", ""), 24*time.Hour), "with --samples, OrderProcessingWorkflow: how long to wait for ManagerApproval (WEFT_APPROVAL_TIMEOUT)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, "usage: weft serve [flags]\n\nRuns a node: the HTTP API and web UI, the gRPC endpoint for Dapr's workflow SDKs, and\nthe workflows, on the embedded single-node store unless --gossip or --join make it a\ncluster member. Every flag also reads the WEFT_ environment variable its help names.\n\nFlags:\n")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return errHelpShown
	} else if err != nil {
		return &exitError{2, fmt.Errorf("serve: %w (weft serve -h lists the flags)", err)}
	}
	if !flagSet(fs, "api-token") {
		*token = envOr("WEFT_API_TOKEN", "")
	}
	if fs.NArg() > 0 {
		return usageErr("serve takes no arguments, got %q", fs.Args())
	}
	if !*samples {
		var sampleOnly []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "approval-threshold" || f.Name == "approval-timeout" {
				sampleOnly = append(sampleOnly, "--"+f.Name)
			}
		})
		if len(sampleOnly) > 0 {
			return usageErr("%s configure the sample workflows: add --samples", strings.Join(sampleOnly, " and "))
		}
	}
	limit, err := parseBytes(*maxBody)
	if err != nil {
		return usageErr("--max-body: %v", err)
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usageErr("--tls-cert and --tls-key go together")
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return usageErr("%v", err)
	}
	gcSet := tuneGC()

	grpcOn := *grpcAddr != "off" && *grpcAddr != ""
	clustered := *gossipAddr != "" || *join != ""
	if !clustered && (*nodeID != "" || *actorAddr != "" || *gossipKey != "" || *clusterCert != "") {
		return usageErr("--node-id, --actor, --gossip-key and --cluster-tls-* configure a cluster node: add --gossip (and --join for every node but the first)")
	}
	if *replicas < 1 {
		return usageErr("--replicas %d: a cluster keeps at least 1 copy of each partition", *replicas)
	}
	if *workerItems < 0 {
		return usageErr("--worker-max-items %d: want a positive number of items (default 1024)", *workerItems)
	}
	if *replaceAfter < time.Second {
		return usageErr("--replace-after %s: must be at least 1s (a node that only restarts must have time to come back)", *replaceAfter)
	}
	snapRate, err := parseBytes(*snapshotRate)
	if err != nil || snapRate < 64<<10 {
		return usageErr("--snapshot-rate %q: want bytes per second of at least 64KiB, e.g. 32MiB", *snapshotRate)
	}
	keep, err := weft.ParseRetention(*retention)
	if err != nil {
		return usageErr("--%v", err)
	}
	limits, err := weft.ParseActivityLimits(activityLimits.String())
	if err != nil {
		return usageErr("--activity-limit: %v", err)
	}
	wfLimits, err := weft.ParseActivityLimits(workflowLimits.String())
	if err != nil {
		return usageErr("--workflow-limit: %v", err)
	}
	if (*clusterCert == "") != (*clusterKey == "") || (*clusterCA != "" && *clusterCert == "") {
		return usageErr("--cluster-tls-cert and --cluster-tls-key go together (and --cluster-tls-ca with them)")
	}
	// HTTP listens first: its address travels in the cluster's gossip.
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *httpAddr, err)
	}
	defer ln.Close()
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
	}
	host := *advertise
	if h, _, err := net.SplitHostPort(*gossipAddr); host == "" && err == nil {
		host = h // a node that names its gossip host is reached there over HTTP too
	}
	httpURL := scheme + "://" + advertised(ln.Addr().String(), host)
	opts := weft.Options{Dir: *data, Partitions: *partitions, Logger: logger,
		ActivityConcurrency: *activities, MaxActiveInstances: *maxActive, RemoteWorkers: grpcOn, MaxItemsPerWorker: *workerItems,
		Retention: keep, ActivityLimits: limits, WorkflowLimits: wfLimits}
	if *otlp != "" {
		exp, err := otlpExporter(*otlp)
		if err != nil {
			return usageErr("--otlp-endpoint %q: %v", *otlp, err)
		}
		opts.TraceExporter = exp
	}
	if clustered {
		cfg, err := clusterConfig(clusterFlags{data: *data, nodeID: *nodeID, gossip: *gossipAddr, actor: *actorAddr, advertise: *advertise,
			join: *join, name: *clusterName, key: *gossipKey, cert: *clusterCert, certKey: *clusterKey, ca: *clusterCA, http: httpURL})
		if err != nil {
			return err
		}
		cfg.Replicas = *replicas
		cfg.ReplaceAfter = *replaceAfter
		cfg.SnapshotRate = snapRate
		opts.Cluster = cfg
	}
	if opts.TraceExporter != nil {
		node := ""
		if opts.Cluster != nil {
			node = opts.Cluster.Gossip.NodeID
		}
		opts.TraceResource = traceResource(node)
	}
	rt, err := weft.Open(opts)
	if err != nil {
		return err
	}
	defer rt.Close()
	if *samples {
		if err := seed.Register(rt, seed.Config{ApprovalThreshold: *threshold, ApprovalTimeout: *approvalTimeout, Logger: logger}); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rt.Start(ctx); err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           api.NewHandler(rt, api.Options{APIToken: *token, MaxBodyBytes: limit, Pprof: *pprof, Logger: logger}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	grpcShown := "off"
	if grpcOn {
		gln, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (gRPC; --grpc off disables it): %w", *grpcAddr, err)
		}
		gopts := durabletask.Options{Token: *token, Logger: logger}
		var extra []grpc.ServerOption
		if *tlsCert != "" {
			creds, err := credentials.NewServerTLSFromFile(*tlsCert, *tlsKey)
			if err != nil {
				ln.Close()
				gln.Close()
				return fmt.Errorf("gRPC TLS: %w", err)
			}
			extra = append(extra, grpc.Creds(creds))
		}
		gsrv := durabletask.NewGRPCServer(durabletask.New(rt, gopts), gopts, extra...)
		defer gsrv.Stop()
		go func() { errc <- gsrv.Serve(gln) }()
		grpcShown = gln.Addr().String()
	}
	attrs := []any{"http", scheme + "://" + ln.Addr().String(), "grpc", grpcShown}
	if node := rt.Cluster(); node != nil {
		var gossip, actorShown string
		for _, m := range node.Members() {
			if m.ID == node.ID() {
				gossip, actorShown = m.Gossip, m.Actor
			}
		}
		attrs = append(attrs, "node", node.ID(), "gossip", gossip, "actor", actorShown)
	}
	if *otlp != "" {
		attrs = append(attrs, "otlp", *otlp)
	}
	if len(limits) > 0 {
		attrs = append(attrs, "activity_limits", activityLimits.String())
	}
	if len(wfLimits) > 0 {
		attrs = append(attrs, "workflow_limits", workflowLimits.String())
	}
	attrs = append(attrs, gcSet...)
	attrs = append(attrs, "data", *data, "auth", *token != "", "retention", keep.String(), "workflows", strings.Join(rt.Registry().Workflows(), ","))
	logger.Info("weft serving", attrs...)
	go func() {
		if *tlsCert != "" {
			errc <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	var removed <-chan struct{}
	if node := rt.Cluster(); node != nil {
		removed = node.Removed()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-removed:
		return rt.Cluster().RemovedErr() // the deferred Close stops the node; it must not leave (it has no replicas to move)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests and commits")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("http shutdown", "err", err)
	}
	if node := rt.Cluster(); node != nil {
		// A stop is a restart unless the node left first (weft cluster leave):
		// replicated, it hands its leadership over and keeps its replicas; with
		// one copy, its partitions move to the others (and back when it joins).
		lctx, cancel := context.WithTimeout(context.Background(), *leaveTimeout)
		err := node.Drain(lctx)
		cancel()
		if err != nil {
			logger.Warn("stopping before every partition was handed over; the others take over when this node is gone, and it keeps its data for its restart", "err", err)
		} else {
			logger.Info("drained: every partition this node served is served by another node")
		}
	}
	if err := rt.Close(); err != nil {
		return fmt.Errorf("close runtime: %w", err)
	}
	logger.Info("stopped cleanly")
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// parseBytes reads sizes like 4MiB, 512KiB, 1000.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1000, "MB": 1e6, "GB": 1e9} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size such as 4MiB", s)
	}
	return n * mult, nil
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func atofOr(s string, def float64) float64 {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return def
}

func durOr(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return def
}

// repeated is a flag that may be given several times (or once, with
// comma-separated values); the first use replaces the environment's value.
type repeated struct {
	values []string
	set    bool
}

func (r *repeated) String() string { return strings.Join(r.values, ",") }

func (r *repeated) Set(v string) error {
	if !r.set {
		r.values, r.set = nil, true
	}
	r.values = append(r.values, v)
	return nil
}
