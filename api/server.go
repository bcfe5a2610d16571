package api

import (
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api/ui"
)

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 4 << 20

// Options configure the HTTP handler.
type Options struct {
	// APIToken, when set, is required on every API call, as Dapr's
	// dapr-api-token header or as Authorization: Bearer. Health, readiness and
	// metrics stay open.
	APIToken string
	// MaxBodyBytes caps request bodies (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// Pprof serves /debug/pprof/.
	Pprof bool
	// Logger logs requests that failed on the server's side.
	Logger *slog.Logger
	// Ready reports whether the node serves its partitions (default: always).
	Ready func() bool
	// Registerer receives the runtime's metrics (default: a new registry with Go and
	// process collectors, served on /metrics).
	Registry *prometheus.Registry
}

type server struct {
	rt   *weft.Runtime
	opts Options
	log  *slog.Logger
}

// NewHandler returns the HTTP handler for rt.
func NewHandler(rt *weft.Runtime, opts Options) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range rt.Host().Collectors() {
		_ = opts.Registry.Register(c)
	}
	if node := rt.Cluster(); node != nil {
		for _, c := range node.Collectors() {
			_ = opts.Registry.Register(c)
		}
	}
	s := &server{rt: rt, opts: opts, log: opts.Logger}

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	root.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.opts.Ready() {
			http.Error(w, "not ready: this node does not serve all of its partitions yet", http.StatusServiceUnavailable)
			return
		}
		if node := rt.Cluster(); node != nil {
			if err := node.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	root.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	// The web UI's static assets need no token; the API calls it makes do.
	root.Handle("/ui/", ui.Handler("/ui/"))
	root.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	if opts.Pprof {
		root.HandleFunc("/debug/pprof/", pprof.Index)
		root.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		root.HandleFunc("/debug/pprof/profile", pprof.Profile)
		root.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		root.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// Everything else answers a JSON 404 too, like every other error.
	root.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, "no route for " + r.Method + " " + r.URL.Path})
	})
	api := s.guard(http.HandlerFunc(s.route))
	// The API is routed by hand, on the raw path: ServeMux would redirect Dapr's
	// paths with an empty segment (".../dapr//start") instead of letting us answer
	// ERR_WORKFLOW_NAME_MISSING.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1.0") || strings.HasPrefix(r.URL.Path, "/api/") {
			api.ServeHTTP(w, r)
			return
		}
		root.ServeHTTP(w, r)
	})
}

func (s *server) route(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(segs) >= 2 && (segs[0] == "v1.0-alpha1" || segs[0] == "v1.0-beta1" || segs[0] == "v1.0") && segs[1] == "workflows":
		s.dapr(w, r, segs[0], segs[2:])
	case len(segs) >= 2 && segs[0] == "api" && segs[1] == "v1":
		s.weft(w, r, segs[2:])
	default:
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, "no route for " + r.Method + " " + r.URL.Path})
	}
}

// guard checks the token, caps the body, and turns panics into 500s.
func (s *server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p) // net/http's own way to abort a response
				}
				s.log.Error("http handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				writeError(w, &Error{http.StatusInternalServerError, CodeInternal, "internal error"})
			}
		}()
		if s.opts.APIToken != "" && !s.authorized(r) {
			writeError(w, &Error{http.StatusUnauthorized, CodeUnauthorized,
				"missing or wrong API token: send it as the dapr-api-token header or as Authorization: Bearer <token>"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

func (s *server) authorized(r *http.Request) bool {
	got := r.Header.Get("dapr-api-token")
	if got == "" {
		var ok bool
		if got, ok = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok {
			return false // a bare token in Authorization is not the documented scheme
		}
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.APIToken)) == 1
}

// readBody reads a capped body, answering 413 when it is too large.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, &Error{http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
				"request body is larger than the server's limit of " + byteCount(tooLarge.Limit) + " (flag --max-body)"})
			return nil, false
		}
		writeError(w, badRequest(CodeBadRequest, "read request body: "+err.Error()))
		return nil, false
	}
	return b, true
}

func byteCount(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
