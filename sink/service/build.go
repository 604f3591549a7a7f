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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/monitoring"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
	"github.com/baitoru/baitoru-cdc/sink/requester"
	sinks3 "github.com/baitoru/baitoru-cdc/sink/s3"
	"github.com/baitoru/baitoru-cdc/sink/sqs"
)

// LinkLookup says where the delivery core reads the links of a batch.
type LinkLookup int

const (
	// CachedLinks: from an in-memory cache that the database keeps current
	// through LISTEN/NOTIFY (Parts.Cache; postgres.Store.WatchLinks must
	// run). For a long-running process: the sink server.
	CachedLinks LinkLookup = iota
	// QueriedLinks: one query per batch. For a process that may be frozen
	// between batches and so cannot keep a LISTEN connection: the Lambda
	// function.
	QueriedLinks
)

// Options are the parts a caller may supply instead of the defaults.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the metrics (and the server serves it on
	// /metrics); nil: a new one with the Go runtime and process collectors
	// (monitoring.NewRegistry).
	Registry *prometheus.Registry
	// SQS client; nil: sqs.NewClient for sink.sqs.
	SQS sqs.Client
	// S3 client that reads stored events; nil: sinks3.NewClient for
	// sink.s3.
	S3 sinks3.API
	// HTTPClient for pushes to Kobot; nil: kobot.NewHTTPClient().
	HTTPClient *http.Client
	// Links says where the delivery core reads links (Build only; New
	// always caches them).
	Links LinkLookup
	// Listener for the server's API (New only); nil: listen on
	// sink.api.listen.
	Listener net.Listener
}

// Parts are the sink's delivery parts, wired from the configuration by
// Build: what the SQS consumer (the sink server) and the Lambda handler
// hand their batches to, and where they dead-letter.
type Parts struct {
	// Store is the sink database (links, delivery log), migrated.
	Store *postgres.Store
	// Cache holds the active links the Processor reads with CachedLinks:
	// keep it current with Store.WatchLinks. Nil with QueriedLinks.
	Cache *sink.LinkCache
	// Processor is the delivery core: link lookup, the delivery log,
	// signed pushes to Kobot with the configured retries, and the
	// redelivery delay (sink.sqs.visibility_timeout, doubling).
	Processor *sink.Processor
	// SQS is the client of sink.sqs.queue_url and dlq_url.
	SQS sqs.Client
	// DLQ is sink.sqs.dlq_url (empty: every send fails, so a message stays
	// for the queue's redrive policy).
	DLQ *sqs.DLQ
	// Metrics are the sink's metrics, registered on Registry; the Processor
	// and the Kobot client count into them.
	Metrics  *sink.Metrics
	Registry *prometheus.Registry
	// Logger is Options.Logger (a discarding one when that was nil).
	Logger *slog.Logger
	// Histories forwards link histories to Baitoru's database
	// (sink.history); nil when sink.history.dsn is empty. Its Run retries
	// what Baitoru's database has not taken yet.
	Histories *sink.Histories

	cfg       config.Sink
	o         Options
	rules     *sink.Rules
	kobot     *kobot.Client
	requester *requester.Requester
}

// Build wires the sink's delivery parts from cfg: it checks the
// configuration, builds the Kobot client, the link rules and the metrics,
// then opens the sink database and applies its migrations (the only
// network I/O), builds the SQS client and the DLQ, and the Processor over
// the link lookup o.Links asks for. It is how the sink server (Run) and the
// Lambda function's SQS handler get the same delivery core. Close the
// parts when done.
func Build(ctx context.Context, cfg config.Sink, o Options) (*Parts, error) {
	p, err := newParts(cfg, o)
	if err != nil {
		return nil, err
	}
	if err := p.open(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// newParts checks cfg and builds what needs no I/O.
func newParts(cfg config.Sink, o Options) (*Parts, error) {
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
	kc, err := kobot.New(cfg.Kobot, o.HTTPClient)
	if err != nil {
		return nil, err
	}
	links := make([]sink.LinkRule, len(cfg.Links))
	for i, l := range cfg.Links {
		links[i] = sink.LinkRule{Type: l.Type, Table: l.Table, Field: l.Field} // validated by package config
	}
	rules := sink.NewRules(links)
	p := &Parts{cfg: cfg, o: o, rules: rules, kobot: kc, Registry: o.Registry, Logger: o.Logger}
	p.Metrics = sink.NewMetrics(o.Registry)
	kc.Observe(p.Metrics)
	return p, nil
}

// open connects what newParts built: the database (migrated), the SQS
// client and the DLQ, the S3 reader of stored events (sink.s3), the link
// lookup and the Processor.
func (p *Parts) open(ctx context.Context) error {
	store, err := openDatabase(ctx, p.cfg, p.Logger)
	if err != nil {
		return err
	}
	client := p.o.SQS
	if client == nil {
		if client, err = sqs.NewClient(ctx, p.cfg.SQS, p.Logger); err != nil {
			store.Close()
			return err
		}
	}
	s3c := p.o.S3
	if s3c == nil {
		if s3c, err = sinks3.NewClient(ctx, p.cfg.S3, p.Logger); err != nil {
			store.Close()
			return err
		}
	}
	var links sink.LinkSource = store
	if p.o.Links == CachedLinks {
		p.Cache = sink.NewLinkCache(func(n int) { p.Metrics.ActiveLinks.Set(float64(n)) })
		links = p.Cache
	}
	proc, err := sink.NewProcessor(sink.ProcessorConfig{
		Rules:           p.rules,
		Links:           links,
		Log:             store,
		Pusher:          p.kobot,
		Metrics:         p.Metrics,
		Logger:          p.Logger,
		RedeliveryBase:  p.cfg.SQS.VisibilityTimeout,
		ClaimLease:      sink.ClaimLeaseFor(p.cfg.Kobot.MaxAttempts, p.cfg.Kobot.Timeout, p.cfg.Kobot.Retry.Max),
		Payloads:        sinks3.New(s3c),
		MaxPayloadBytes: p.cfg.S3.MaxEventBytes,
		HistoryPrefix:   p.cfg.History.IDPrefix,
	})
	if err != nil {
		store.Close()
		return err
	}
	p.Store, p.SQS, p.DLQ, p.Processor = store, client, sqs.NewDLQ(client, p.cfg.SQS.DLQURL), proc
	if p.Histories, p.requester, err = openHistory(p.cfg, store, p.Logger); err != nil {
		store.Close()
		return err
	}
	return nil
}

// openHistory makes store record the histories of new links and returns
// what forwards them to Baitoru's database; nil, nil when sink.history.dsn
// is empty or no links rule has history (links start without history).
func openHistory(cfg config.Sink, store *postgres.Store, log *slog.Logger) (*sink.Histories, *requester.Requester, error) {
	if cfg.History.DSN == "" {
		return nil, nil, nil
	}
	var tables []sink.HistoryTable
	for _, l := range cfg.Links {
		if l.History && l.Table != "" {
			tables = append(tables, sink.HistoryTable{Table: l.Table, Field: l.Field})
		}
	}
	if len(tables) == 0 {
		return nil, nil, nil
	}
	req, err := requester.New(cfg.History.DSN, cfg.History.Slot, log)
	if err != nil {
		return nil, nil, err
	}
	store.SetHistory(cfg.History.IDPrefix, tables)
	return sink.NewHistories(store, req, cfg.History.Interval, log), req, nil
}

// Close closes the database pools. Safe on parts that failed to open.
func (p *Parts) Close() {
	if p.Store != nil {
		p.Store.Close()
	}
	if p.requester != nil {
		p.requester.Close()
	}
}

// LinksAPI is the links API on its own (BuildAPI), for a process that
// serves only the API.
type LinksAPI struct {
	// Store is the sink database, migrated.
	Store *postgres.Store
	// Handler serves the API's routes; every error is JSON.
	Handler http.Handler

	requester *requester.Requester
}

// BuildAPI opens the sink database, applies its migrations and returns the
// links API over it, authenticated with sink.api's token: the Lambda
// function's links-api handler. Other sinks follow its changes through
// NOTIFY. Close it when done.
func BuildAPI(ctx context.Context, cfg config.Sink, o Options) (*LinksAPI, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DSN == "" {
		return nil, errors.New("sink.dsn is empty")
	}
	token, err := Token(cfg.API)
	if err != nil {
		return nil, err
	}
	store, err := openDatabase(ctx, cfg, o.Logger)
	if err != nil {
		return nil, err
	}
	api, err := sink.NewAPI(store, token, o.Logger)
	if err != nil {
		store.Close()
		return nil, err
	}
	hist, req, err := openHistory(cfg, store, o.Logger)
	if err != nil {
		store.Close()
		return nil, err
	}
	if hist != nil {
		api.WithHistory(hist)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	return &LinksAPI{Store: store, Handler: sink.JSONErrors(mux), requester: req}, nil
}

// Close closes the database pools.
func (a *LinksAPI) Close() {
	a.Store.Close()
	if a.requester != nil {
		a.requester.Close()
	}
}

// openDatabase opens the sink database and applies its migrations.
func openDatabase(ctx context.Context, cfg config.Sink, log *slog.Logger) (*postgres.Store, error) {
	store, err := postgres.Open(cfg.DSN, log)
	if err != nil {
		return nil, err
	}
	if _, err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
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
