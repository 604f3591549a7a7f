package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/connector/s3"
	"github.com/baitoru/baitoru-cdc/connector/sns"
	"github.com/baitoru/baitoru-cdc/connector/stdout"
	"github.com/baitoru/baitoru-cdc/connector/telemetry"
	"github.com/baitoru/baitoru-cdc/internal/awsclient"
	"github.com/baitoru/baitoru-cdc/internal/buildinfo"
	"github.com/baitoru/baitoru-cdc/internal/gcsetting"
	"github.com/baitoru/baitoru-cdc/internal/logging"
	"github.com/baitoru/baitoru-cdc/internal/monitoring"
)

func runCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Stream committed changes of the mapped tables to SNS (or stdout)",
		Long: `Stream every committed insert (and, where configured, update or delete) of
the mapped tables to SNS, as CloudEvents, through the permanent replication
slot source.slot and the publication source.publication.

The connector confirms a position to PostgreSQL only once SNS accepted every
event up to it: a crash re-sends, never skips (re-sent events keep their id).
With source.create: true it creates the slot and publication when they are
missing; otherwise a DBA runs "baitoru-cdc setup" first. A second connector
with the same slot waits and takes over when the first stops.

It logs (log.format text or json, on standard error) which build runs,
when it streams and from which position, every error with its context, and
a status line every log.status_interval. metrics.listen serves /metrics,
/healthz and /readyz (ready while streaming). SIGHUP reloads the tables of
the file without a restart (baitoru-cdc plan shows what a change does first;
an invalid file changes nothing). SIGTERM or SIGINT stops it
after the events in flight are accepted (publisher.shutdown_grace), and it
exits 0; exit 1 is an error it cannot fix by retrying, printed last.

Secrets come from the environment: source.password (config.yaml reads
BAITORU_DB_PASSWORD) and the usual AWS credential chain.`,
		Example: `  # against SNS
  export BAITORU_DB_PASSWORD=... AWS_REGION=ap-northeast-1
  baitoru-cdc run --config config.yaml

  # try a mapping without SNS: one event per line on standard output
  BAITORU_CDC_PUBLISHER_KIND=stdout baitoru-cdc run --config config.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConnectorConfig(file)
			if err != nil {
				return err
			}
			log := logging.New(cfg.Log, os.Stderr)
			log.Info("baitoru-cdc run starting", append(buildinfo.Get().LogAttrs(), gcsetting.FloorLogAttrs(cfg.GC.MemoryFloor)...)...)
			logConfigWarnings(log, cfg)
			return run(cmd.Context(), cfg, log)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "config.yaml", "configuration file")
	return cmd
}

// loadConnectorConfig loads the file and checks the sections `run` needs.
func loadConnectorConfig(file string) (*config.Config, error) {
	cfg, err := config.LoadConnector(file)
	if err != nil {
		return nil, configError(file, err)
	}
	return cfg, nil
}

// topicCheckWithin bounds the retries of the SNS topic check at start when
// SNS does not answer (network, throttling): then run gives up with the error.
const topicCheckWithin = 30 * time.Second

// run wires the connector: subscription → pipeline → publisher.
func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	mappings := cfg.Mappings()
	pgCfg, err := pgconn.ParseConfig(cfg.Source.DSN)
	if err != nil {
		return fmt.Errorf("source.dsn: %s", postgres.Redact(err.Error()))
	}
	mapper := connector.NewMapper("baitoru/"+pgCfg.Database, mappings)
	mapper.SetMappings(mappings, connector.MappingVersion(mappings))
	// SIGHUP reloads the tables of the file (see reloader); registered
	// before anything starts, so that an early SIGHUP is not fatal.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	metrics := telemetry.New()
	for _, m := range mappings {
		metrics.AddTable(m.Table)
	}

	var pub connector.Publisher
	maxBatch, lanes := sns.MaxBatchEntries, cfg.Publisher.Lanes
	switch cfg.Publisher.Kind {
	case "stdout":
		pub = stdout.New(os.Stdout)
		// One lane: lines come out in commit order, ready to pipe.
		maxBatch, lanes = 256, 1
	default:
		client, err := sns.NewClient(ctx, cfg.SNS.Region, cfg.SNS.Endpoint, log)
		if err != nil {
			return err
		}
		snsPub := sns.New(client, sns.Options{
			DefaultTopic: cfg.SNS.TopicARN,
			RetryInitial: cfg.Publisher.Retry.Initial,
			RetryMax:     cfg.Publisher.Retry.Max,
			Observer:     metrics,
		}, log)
		// Nothing is read from the WAL before every topic is known to
		// take events: a wrong ARN or endpoint stops here, as `check`
		// reports it, instead of at the first publish.
		if err := snsPub.VerifyTopics(ctx, topicARNs(cfg), topicCheckWithin); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		pub = snsPub
		if connector.HasLargePayloads(mappings) {
			if pub, err = claimCheck(ctx, cfg, mappings, snsPub, metrics, log); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}

	// One small pool for the regular connections to the source database
	// (the subscription's catalog queries, the preparation at start, the
	// publication watch, the slot monitor, the heartbeat); the replication
	// connection is its own.
	pool, err := postgres.NewPool(cfg.Source.DSN)
	if err != nil {
		return err
	}
	defer pool.Close()

	repeat := cfg.Log.StatusInterval
	if repeat <= 0 {
		repeat = 30 * time.Second
	}
	// The watch compares the publication with the config every status
	// interval: what it leaves out of the mapped changes is reported and
	// recorded (the stream drops those changes silently).
	var sub *postgres.Subscription
	watch := dba.NewWatch(dba.WatchOptions{
		Pool: pool, Slot: cfg.Source.Slot, Publication: cfg.Source.Publication, Mappings: mappings,
		Interval: cfg.Source.StatusInterval, RepeatEvery: repeat, Stop: cfg.Source.OnTableLoss == "stop",
		Streaming:    func() bool { return sub.Streaming() },
		SetupCommand: "baitoru-cdc setup --config " + cfg.File, Observer: metrics,
	}, log)

	pipe := connector.NewPipeline(mapper, pub, connector.PipelineOptions{
		Lanes:             lanes,
		MaxBatch:          maxBatch,
		MaxInflightEvents: cfg.Publisher.MaxInflightEvents,
		MaxInflightBytes:  cfg.Publisher.MaxInflightBytes,
		ShutdownGrace:     cfg.Publisher.ShutdownGrace,
		Losses:            watch,
	}, metrics, log)

	// Backfill: the interleaver sits between the stream and the pipeline
	// (watermarks, read events); the runner reads chunks while this
	// connector streams the slot (a standby never does).
	il := connector.NewInterleaver(pipe, cfg.Source.Slot, postgres.BackfillRequestsTable, log)
	sub = postgres.New(postgres.Options{
		BackfillPublication: postgres.BackfillPublication(cfg.Source.Publication),
		DSN:                 cfg.Source.DSN,
		Pool:                pool,
		Slot:                cfg.Source.Slot,
		Publication:         cfg.Source.Publication,
		Mappings:            mappings,
		StatusInterval:      cfg.Source.StatusInterval,
		ReconnectInitial:    cfg.Source.Reconnect.Initial,
		ReconnectMax:        cfg.Source.Reconnect.Max,
		ShutdownGrace:       cfg.Publisher.ShutdownGrace,
		Streaming:           cfg.Source.Streaming,
		StreamMemory:        cfg.Source.StreamMemoryBytes,
		// The subscription confirms what the pipeline acknowledged; what
		// it may confirm beyond (an idle stream) shows in the metrics too.
		Acked:    pipe.Acked,
		Mapping:  pipe.Mapping,
		Observer: metrics,
	}, il.Handle, log)

	metrics.Watch(pipe, sub)

	backfills := postgres.NewBackfillSource(pool, cfg.Source.Slot, mappings, log)
	runner := connector.NewBackfillRunner(il, backfills, cfg.Source.Backfill.BackfillOptions(cfg.Source.StatusInterval), sub.Streaming, metrics, log)

	g, ctx := errgroup.WithContext(ctx)
	// The collector lets the heap grow to gc.memory_floor: a backfill
	// allocates fast with little alive.
	g.Go(func() error { return gcsetting.NewMemoryFloor(cfg.GC.MemoryFloor, 100).Run(ctx) })
	g.Go(func() error { return runner.Run(ctx) })
	g.Go(func() error { return pipe.Run(ctx) })
	g.Go(func() error { return watch.Run(ctx) })
	// The publication and the slot are prepared once, then streamed; the
	// watch looks first, so a loss that began while no connector ran is
	// recorded before the preparation repairs the publication.
	g.Go(func() error {
		select {
		case <-watch.Ready():
		case <-ctx.Done():
			return nil
		}
		err := dba.Prepare(ctx, dba.PrepareOptions{
			Pool: pool, Slot: cfg.Source.Slot, Publication: cfg.Source.Publication,
			Create: cfg.Source.Create, Mappings: mappings,
			RetryInitial: cfg.Source.Reconnect.Initial, RetryMax: cfg.Source.Reconnect.Max,
		}, log)
		if err != nil || ctx.Err() != nil {
			return explainDBA(err, cfg, "run")
		}
		watch.Prepared()
		if err := watch.Look(ctx); errors.Is(err, dba.ErrChangesLost) {
			return err
		}
		return sub.Run(ctx)
	})
	// The slot monitor stops the connector when the slot is lost or
	// vanished (rows may be missing: a person decides how to recover);
	// the heartbeat keeps an idle database's slot moving.
	g.Go(func() error {
		return postgres.NewSlotMonitor(postgres.MonitorOptions{
			Pool: pool, Slot: cfg.Source.Slot, MaxLagBytes: cfg.Source.MaxLagBytes, Observer: metrics,
		}, log).Run(ctx)
	})
	if cfg.Source.Heartbeat.Interval > 0 {
		g.Go(func() error {
			return postgres.NewHeartbeat(pool, cfg.Source.Heartbeat.Interval, log).Run(ctx)
		})
	}
	if cfg.Metrics.Listen != "" {
		srv := telemetry.NewServer(cfg.Metrics.Listen, metrics.Registry(),
			[]monitoring.Check{telemetry.ReplicationCheck(sub), {Name: "publication", Check: watch.Check}}, log)
		g.Go(func() error { return srv.Run(ctx) })
	}
	g.Go(func() error { return telemetry.NewStatus(metrics, cfg.Log.StatusInterval, log).Run(ctx) })
	reload := newReloader(cfg, mappings, pipe, []mappingsFollower{watch, backfills}, metrics, metrics.AddTable, log)
	g.Go(func() error { return reload.Run(ctx, hup) })
	log.Info("mappings", "version", connector.MappingVersion(mappings), "reload", "kill -HUP "+strconv.Itoa(os.Getpid()))
	return g.Wait()
}

// claimCheck puts the S3 claim-check in front of the SNS publisher, once
// every bucket took a probe object: a missing bucket or a refused write
// stops here, as `check` reports it, instead of at the first large event.
// A probe S3 did not answer is only logged: publishing retries.
func claimCheck(ctx context.Context, cfg *config.Config, mappings []*connector.Mapping, next connector.Publisher, metrics *telemetry.Metrics, log *slog.Logger) (connector.Publisher, error) {
	client, err := s3.NewClient(ctx, cfg.S3.Region, cfg.S3.Endpoint, log)
	if err != nil {
		return nil, err
	}
	store := s3.New(client, s3.Options{
		RetryInitial: cfg.Publisher.Retry.Initial,
		RetryMax:     cfg.Publisher.Retry.Max,
		Observer:     metrics,
	}, log)
	for _, b := range cfg.Buckets() {
		err := store.Probe(ctx, b.Bucket, b.Prefix, topicCheckWithin)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case awsclient.Retryable(err):
			log.Warn("cannot reach the large_payloads bucket; starting anyway (large events are retried)", "bucket", b.Bucket, "error", err)
		default:
			return nil, bucketError(b.Bucket, b.Prefix, err)
		}
	}
	return connector.NewClaimCheck(next, store, mappings, metrics), nil
}

// bucketError says what is wrong with a bucket the probe could not write
// to, and how to fix it.
func bucketError(bucket, prefix string, err error) error {
	msg := fmt.Sprintf("large_payloads: cannot write to s3://%s/%s", bucket, prefix)
	if h := s3.Hint(awsclient.ErrorCode(err)); h != "" {
		msg += ": " + h
	}
	return fmt.Errorf("%s: %w", msg, err)
}
