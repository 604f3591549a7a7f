package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/baitoru/baitoru-cdc/internal/monitoring"
)

// ErrNotStreaming is the replication check's answer while the connector is
// connecting, reconnecting, or waiting for a slot streamed by another
// connector.
var ErrNotStreaming = errors.New("not streaming: connecting to PostgreSQL, reconnecting, or waiting for the replication slot (held by another connector?); see the log")

// ReplicationCheck is ready while r streams.
func ReplicationCheck(r Replication) monitoring.Check {
	return monitoring.Check{Name: "replication", Check: func(context.Context) error {
		if r.Streaming() {
			return nil
		}
		return ErrNotStreaming
	}}
}

// Server serves the connector's monitoring endpoint on metrics.listen: the
// routes of monitoring.Register (/metrics from the registry of Metrics,
// /healthz, /readyz over the checks). None needs authentication: bind it to
// an address only the monitoring network reaches.
type Server struct {
	addr   string
	g      prom.Gatherer
	checks []monitoring.Check
	log    *slog.Logger
}

// NewServer returns a server for addr (host:port; ":0" picks a free port).
// It does not listen until Run.
func NewServer(addr string, g prom.Gatherer, checks []monitoring.Check, log *slog.Logger) *Server {
	return &Server{addr: addr, g: g, checks: checks, log: log}
}

// Handler returns the endpoint's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	monitoring.Register(mux, s.g, s.checks, s.log)
	return mux
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
