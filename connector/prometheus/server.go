package prometheus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check: a nil error means ready. Check is called
// for every /readyz request, concurrently with the others, and must return
// within the request's context.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Readiness is the JSON body of /readyz (the sink's /readyz has the same
// shape): status "ready" (200) or "not ready" (503), and per check "ok" or
// what is wrong.
type Readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// ErrNotStreaming is the replication check's answer while the connector is
// connecting, reconnecting, or waiting for a slot streamed by another
// connector.
var ErrNotStreaming = errors.New("not streaming: connecting to PostgreSQL, reconnecting, or waiting for the replication slot (held by another connector?); see the log")

// ReplicationCheck is ready while r streams.
func ReplicationCheck(r Replication) Check {
	return Check{Name: "replication", Check: func(context.Context) error {
		if r.Streaming() {
			return nil
		}
		return ErrNotStreaming
	}}
}

// Server serves the connector's HTTP endpoint:
//
//	GET /metrics  Prometheus text format (the registry of Metrics)
//	GET /healthz  200 {"status":"ok"} while the process serves HTTP
//	GET /readyz   200 when every check passes, else 503; body Readiness
//
// None needs authentication: bind it to an address only the monitoring
// network reaches.
type Server struct {
	addr   string
	g      prom.Gatherer
	checks []Check
	log    *slog.Logger
}

// NewServer returns a server for addr (host:port; ":0" picks a free port).
// It does not listen until Run.
func NewServer(addr string, g prom.Gatherer, checks []Check, log *slog.Logger) *Server {
	return &Server{addr: addr, g: g, checks: checks, log: log}
}

// Handler returns the endpoint's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.g, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		res, ok := s.Ready(ctx)
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, res)
	})
	return mux
}

// Ready runs every check concurrently and reports the result.
func (s *Server) Ready(ctx context.Context) (Readiness, bool) {
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.checks))
	for _, c := range s.checks {
		go func() { results <- result{c.Name, c.Check(ctx)} }()
	}
	res := Readiness{Status: "ready", Checks: make(map[string]string, len(s.checks))}
	ok := true
	for range s.checks {
		r := <-results
		res.Checks[r.name] = "ok"
		if r.err != nil {
			res.Checks[r.name] = r.err.Error()
			res.Status, ok = "not ready", false
		}
	}
	return res, ok
}

// Run listens on the address and serves until ctx ends, then shuts the
// server down (in-flight requests get 5 s). It returns an error when it
// cannot listen or serving fails, nil after ctx ended.
func (s *Server) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("metrics.listen %s: %w", s.addr, err)
	}
	return s.Serve(ctx, l)
}

// Serve is Run on a listener the caller opened (tests, socket activation).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("serving /metrics, /healthz, /readyz", "addr", l.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics endpoint: %w", err)
	case <-ctx.Done():
	}
	stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(stop)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics endpoint: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}
