// Package service builds the sink from its configuration: the one place
// its parts are wired, for the `baitoru-cdc sink` server and for the Lambda
// function's two handlers.
//
//   - Build returns the delivery parts (the sink database, migrated; the
//     Kobot client; the link lookup; the Processor; the SQS client and the
//     DLQ; the metrics). The Lambda's SQS handler hands its batches to
//     Parts.Processor with QueriedLinks.
//   - BuildAPI returns the links API alone (the Lambda's links-api handler).
//   - New and Run are the sink server: the delivery parts with CachedLinks
//     kept current by LISTEN/NOTIFY, the competing SQS consumers, and the
//     HTTP listener serving the links API, /metrics, /healthz and /readyz.
//
// `baitoru-cdc sink` runs the server; tests start it in process:
//
//	s, err := service.New(cfg.Sink, service.Options{Logger: l, SQS: emu.SQS()})
//	go s.Run(ctx)
//	<-s.Ready()
//	http.Post("http://"+s.Addr().String()+"/v1/links", ...)
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/monitoring"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/sqs"
)

// Sink is the sink server. Run it once.
type Sink struct {
	cfg    config.Sink
	parts  *Parts
	ln     net.Listener
	logger *slog.Logger
	token  string
	ready  chan struct{}
	// listening is closed once the API serves (addr is set).
	listening chan struct{}
	addr      net.Addr
}

// New checks the configuration and builds the parts that need no I/O (the
// token file is read here, the metrics are registered); connections are
// made by Run. o.Links is ignored: the server caches the links.
func New(cfg config.Sink, o Options) (*Sink, error) {
	token, err := Token(cfg.API)
	if err != nil {
		return nil, err
	}
	if o.Listener == nil && cfg.API.Listen == "" {
		return nil, errors.New("sink.api.listen is empty")
	}
	o.Links = CachedLinks
	p, err := newParts(cfg, o)
	if err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg, parts: p, ln: o.Listener, logger: p.Logger, token: token, ready: make(chan struct{}), listening: make(chan struct{})}, nil
}

// Ready is closed once the database is migrated, the link cache loaded,
// the API listening and the SQS queue answering (consumers start then).
func (s *Sink) Ready() <-chan struct{} { return s.ready }

// Listening is closed once the API (with /healthz and /readyz) serves,
// before Ready when the queue does not answer yet.
func (s *Sink) Listening() <-chan struct{} { return s.listening }

// Addr is the API's address; valid after Listening.
func (s *Sink) Addr() net.Addr { return s.addr }

// Registry is where the metrics are registered.
func (s *Sink) Registry() *prometheus.Registry { return s.parts.Registry }

// Run connects, migrates the database, loads the link cache, serves the API
// and consumes the queue until ctx ends. Then it stops receiving, lets the
// batches in hand finish (their pushes complete, their messages are deleted
// or dead-lettered), shuts the API down and returns nil. It returns an error
// when it cannot start (database unreachable, migration failed, address in
// use, no AWS credentials) or the API server fails. While the queue does not
// answer it serves the API, /readyz says not ready (sqs), and it waits
// (logging "sink not ready: SQS queue not reachable; retrying", summarised)
// before it logs "sink ready" and consumes.
func (s *Sink) Run(ctx context.Context) error {
	if err := s.parts.open(ctx); err != nil {
		return err
	}
	defer s.parts.Close()
	store, cache, metrics := s.parts.Store, s.parts.Cache, s.parts.Metrics
	consumer, err := sqs.New(s.parts.SQS, s.cfg.SQS, s.parts.Processor, s.logger)
	if err != nil {
		return err
	}
	api, err := sink.NewAPI(store, s.token, s.logger)
	if err != nil {
		return err
	}
	api.OnChange(func(ctx context.Context, key string) error {
		return store.RefreshLinks(ctx, cache, []string{key})
	})
	if s.parts.Histories != nil {
		api.WithHistory(s.parts.Histories)
	}
	ln := s.ln
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.API.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", s.cfg.API.Listen, err)
		}
	}
	s.addr = ln.Addr()
	close(s.listening)

	var stopping atomic.Bool
	mux := http.NewServeMux()
	api.Register(mux)
	monitoring.Register(mux, s.parts.Registry, []monitoring.Check{
		{Name: "database", Check: store.Ping},
		{Name: "links", Check: func(context.Context) error {
			if !cache.Synced() {
				return sink.ErrLinksNotSynced
			}
			return nil
		}},
		{Name: "sqs", Check: consumer.Ping},
		{Name: "shutdown", Check: func(context.Context) error {
			if stopping.Load() {
				return errors.New("stopping")
			}
			return nil
		}},
	}, s.logger)
	srv := &http.Server{Handler: sink.JSONErrors(mux), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve API: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		stopping.Store(true)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	// The watcher outlives the consumers, so batches in hand at shutdown
	// still find the links.
	wctx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	g.Go(func() error {
		return store.WatchLinks(wctx, cache, func(scope string) { metrics.LinkReloads.WithLabelValues(scope).Inc() })
	})
	if h := s.parts.Histories; h != nil {
		g.Go(func() error { return h.Run(gctx) })
	}
	g.Go(func() error {
		defer stopWatch()
		// Consume only once the cache is loaded.
		for !cache.Synced() {
			select {
			case <-gctx.Done():
				return nil
			case <-time.After(20 * time.Millisecond):
			}
		}
		// Ready means ready: the queue answers (as /readyz's sqs check
		// would say) before the sink says so and starts consuming.
		if err := consumer.WaitReachable(gctx, "api", s.addr.String()); err != nil {
			if gctx.Err() != nil {
				return nil
			}
			return err
		}
		s.logger.Info("sink ready", "api", s.addr.String(), "queue", s.cfg.SQS.QueueURL, "active_links", cache.Len())
		close(s.ready)
		return consumer.Run(gctx)
	})
	return g.Wait()
}
