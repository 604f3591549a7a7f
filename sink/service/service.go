// Package service wires the sink's parts from the configuration: the
// database (migrations, links, delivery log), the link cache and its
// LISTEN/NOTIFY watcher, the Kobot client, the SQS consumers, and the HTTP
// listener serving the links API, /metrics, /healthz and /readyz.
//
// `baitoru-cdc sink` runs it; tests start it in process:
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
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/monitoring"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
	"github.com/baitoru/baitoru-cdc/sink/sqs"
)

// Options are the parts a caller may supply instead of the defaults.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the metrics and is served on /metrics; nil: a new
	// one with the Go runtime and process collectors
	// (monitoring.NewRegistry).
	Registry *prometheus.Registry
	// SQS client; nil: sqs.NewClient for sink.sqs.
	SQS sqs.Client
	// HTTPClient for pushes to Kobot; nil: kobot.NewHTTPClient().
	HTTPClient *http.Client
	// Listener for the API; nil: listen on sink.api.listen.
	Listener net.Listener
}

// Sink is a configured sink. Run it once.
type Sink struct {
	cfg     config.Sink
	opts    Options
	logger  *slog.Logger
	reg     *prometheus.Registry
	metrics *sink.Metrics
	token   string
	kobot   *kobot.Client
	rules   *sink.Rules
	ready   chan struct{}
	addr    net.Addr
}

// New checks the configuration and builds the parts that need no I/O (the
// token file is read here). Connections are made by Run.
func New(cfg config.Sink, o Options) (*Sink, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = monitoring.NewRegistry()
	}
	if cfg.DSN == "" {
		return nil, errors.New("sink.dsn is empty")
	}
	if cfg.SQS.QueueURL == "" {
		return nil, errors.New("sink.sqs.queue_url is empty")
	}
	token, err := Token(cfg.API)
	if err != nil {
		return nil, err
	}
	kc, err := kobot.New(cfg.Kobot, o.HTTPClient)
	if err != nil {
		return nil, err
	}
	rules, err := sink.NewRules(cfg.Links)
	if err != nil {
		return nil, err
	}
	if o.Listener == nil && cfg.API.Listen == "" {
		return nil, errors.New("sink.api.listen is empty")
	}
	s := &Sink{cfg: cfg, opts: o, logger: o.Logger, reg: o.Registry, token: token, kobot: kc, rules: rules, ready: make(chan struct{})}
	s.metrics = sink.NewMetrics(o.Registry)
	kc.Observe(s.metrics)
	return s, nil
}

// Token returns the links API token: api.token, else the trimmed content of
// api.token_file. The error never contains the token.
func Token(a config.API) (string, error) {
	if a.Token != "" {
		return a.Token, nil
	}
	if a.TokenFile == "" {
		return "", errors.New("sink.api: set token or token_file")
	}
	b, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", fmt.Errorf("sink.api.token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("sink.api.token_file %s is empty", a.TokenFile)
	}
	return t, nil
}

// Ready is closed once the database is migrated, the link cache loaded and
// the API listening (consumers start then).
func (s *Sink) Ready() <-chan struct{} { return s.ready }

// Addr is the API's address; valid after Ready.
func (s *Sink) Addr() net.Addr { return s.addr }

// Registry is where the metrics are registered.
func (s *Sink) Registry() *prometheus.Registry { return s.reg }

// Run connects, migrates the database, loads the link cache, serves the API
// and consumes the queue until ctx ends. Then it stops receiving, lets the
// batches in hand finish (their pushes complete, their messages are deleted
// or dead-lettered), shuts the API down and returns nil. It returns an error
// when it cannot start (database unreachable, migration failed, address in
// use) or the API server fails.
func (s *Sink) Run(ctx context.Context) error {
	store, err := postgres.Open(s.cfg.DSN, s.logger)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	client := s.opts.SQS
	if client == nil {
		if client, err = sqs.NewClient(ctx, s.cfg.SQS); err != nil {
			return err
		}
	}
	cache := sink.NewLinkCache(func(n int) { s.metrics.ActiveLinks.Set(float64(n)) })
	proc, err := sink.NewProcessor(sink.ProcessorConfig{
		Rules:          s.rules,
		Links:          cache,
		Log:            store,
		Pusher:         s.kobot,
		Metrics:        s.metrics,
		Logger:         s.logger,
		RedeliveryBase: s.cfg.SQS.VisibilityTimeout,
		ClaimLease:     sink.ClaimLeaseFor(s.cfg.Kobot),
	})
	if err != nil {
		return err
	}
	consumer, err := sqs.New(client, s.cfg.SQS, proc, s.logger)
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
	ln := s.opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.API.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", s.cfg.API.Listen, err)
		}
	}
	s.addr = ln.Addr()

	var stopping atomic.Bool
	mux := http.NewServeMux()
	api.Register(mux)
	monitoring.Register(mux, s.reg, []monitoring.Check{
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
		return store.WatchLinks(wctx, cache, func(scope string) { s.metrics.LinkReloads.WithLabelValues(scope).Inc() })
	})
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
		s.logger.Info("sink ready", "api", s.addr.String(), "queue", s.cfg.SQS.QueueURL, "active_links", cache.Len())
		close(s.ready)
		return consumer.Run(gctx)
	})
	return g.Wait()
}
