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
	"github.com/weftrt/weft/examples/seed"
)

// serve runs one node until SIGINT or SIGTERM. Every flag has a WEFT_* variable.
func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", envOr("WEFT_DATA", "./weft-data"), "data directory (WEFT_DATA)")
	httpAddr := fs.String("http", envOr("WEFT_HTTP", ":3500"), "HTTP listen address (WEFT_HTTP)")
	grpcAddr := fs.String("grpc", envOr("WEFT_GRPC", ":50001"), "gRPC listen address for Dapr's workflow SDKs (the durabletask protocol), or off (WEFT_GRPC)")
	token := fs.String("api-token", envOr("WEFT_API_TOKEN", ""), "require this token on API calls (WEFT_API_TOKEN)")
	tlsCert := fs.String("tls-cert", envOr("WEFT_TLS_CERT", ""), "TLS certificate file (WEFT_TLS_CERT)")
	tlsKey := fs.String("tls-key", envOr("WEFT_TLS_KEY", ""), "TLS key file (WEFT_TLS_KEY)")
	maxBody := fs.String("max-body", envOr("WEFT_MAX_BODY", "4MiB"), "request body limit, e.g. 512KiB, 4MiB (WEFT_MAX_BODY)")
	logFormat := fs.String("log-format", envOr("WEFT_LOG_FORMAT", "text"), "text or json (WEFT_LOG_FORMAT)")
	logLevel := fs.String("log-level", envOr("WEFT_LOG_LEVEL", "info"), "debug, info, warn or error (WEFT_LOG_LEVEL)")
	pprof := fs.Bool("pprof", envOr("WEFT_PPROF", "") == "true", "serve /debug/pprof/ (WEFT_PPROF=true)")
	partitions := fs.Int("partitions", atoiOr(envOr("WEFT_PARTITIONS", ""), 0), "partitions of a new data directory (default 256; WEFT_PARTITIONS)")
	activities := fs.Int("activity-concurrency", atoiOr(envOr("WEFT_ACTIVITY_CONCURRENCY", ""), 0), "activity attempts run at once (default 256)")
	maxActive := fs.Int("max-active", atoiOr(envOr("WEFT_MAX_ACTIVE", ""), 0), "instances held in memory (default 10000)")
	threshold := fs.Float64("approval-threshold", atofOr(envOr("WEFT_APPROVAL_THRESHOLD", ""), 1000), "OrderProcessingWorkflow: orders above this cost wait for ManagerApproval")
	approvalTimeout := fs.Duration("approval-timeout", durOr(envOr("WEFT_APPROVAL_TIMEOUT", ""), 24*time.Hour), "OrderProcessingWorkflow: how long to wait for ManagerApproval")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if fs.NArg() > 0 {
		return usageErr("serve takes no arguments, got %q", fs.Args())
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

	grpcOn := *grpcAddr != "off" && *grpcAddr != ""
	rt, err := weft.Open(weft.Options{Dir: *data, Partitions: *partitions, Logger: logger,
		ActivityConcurrency: *activities, MaxActiveInstances: *maxActive, RemoteWorkers: grpcOn})
	if err != nil {
		return err
	}
	defer rt.Close()
	if err := seed.Register(rt, seed.Config{ApprovalThreshold: *threshold, ApprovalTimeout: *approvalTimeout, Logger: logger}); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rt.Start(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *httpAddr, err)
	}
	srv := &http.Server{
		Handler:           api.NewHandler(rt, api.Options{APIToken: *token, MaxBodyBytes: limit, Pprof: *pprof, Logger: logger}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
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
	logger.Info("weft serving", "http", scheme+"://"+ln.Addr().String(), "grpc", grpcShown, "data", *data, "auth", *token != "",
		"workflows", strings.Join(rt.Registry().Workflows(), ","))
	go func() {
		if *tlsCert != "" {
			errc <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests and commits")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("http shutdown", "err", err)
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
