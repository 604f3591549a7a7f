// Command baitoru-cdc-lambda is the sink's delivery core as an AWS Lambda
// function for an SQS event source mapping with ReportBatchItemFailures.
//
// It reads the configuration file named by BAITORU_CDC_CONFIG (the sink and
// log sections; environment overrides such as BAITORU_CDC_SINK_KOBOT_SECRET
// apply as for `baitoru-cdc sink`). On a cold start it applies the sink
// database's migrations. Links are read from the database once per batch
// (no cache: a frozen Lambda process cannot keep a LISTEN connection); the
// delivery log, signing, retries and DLQ handling are those of the sink.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	awslambda "github.com/aws/aws-lambda-go/lambda"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/buildinfo"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
	"github.com/baitoru/baitoru-cdc/sink/lambda"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
	"github.com/baitoru/baitoru-cdc/sink/service"
	"github.com/baitoru/baitoru-cdc/sink/sqs"
)

func main() {
	h, err := setup(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "baitoru-cdc-lambda:", err)
		os.Exit(1)
	}
	awslambda.Start(h.Handle)
}

func setup(ctx context.Context) (*lambda.Handler, error) {
	path := os.Getenv("BAITORU_CDC_CONFIG")
	if path == "" {
		return nil, errors.New("set BAITORU_CDC_CONFIG to the configuration file")
	}
	cfg, err := config.LoadSink(path)
	if err != nil {
		return nil, err
	}
	log := newLogger(cfg.Log)
	log.Info("baitoru-cdc-lambda starting", buildinfo.Get().LogAttrs()...)
	store, err := postgres.Open(cfg.Sink.DSN, log)
	if err != nil {
		return nil, err
	}
	if _, err := store.Migrate(ctx); err != nil {
		return nil, err
	}
	rules, err := sink.NewRules(cfg.Sink.Links)
	if err != nil {
		return nil, err
	}
	kc, err := kobot.New(cfg.Sink.Kobot, nil)
	if err != nil {
		return nil, err
	}
	client, err := service.NewSQSClient(ctx, cfg.Sink.SQS)
	if err != nil {
		return nil, err
	}
	proc, err := sink.NewProcessor(sink.ProcessorConfig{
		Rules: rules, Links: store, Log: store, Sender: kc, Logger: log,
		ClaimLease: sink.ClaimLeaseFor(cfg.Sink.Kobot),
	})
	if err != nil {
		return nil, err
	}
	return lambda.New(proc, sqs.NewDLQ(client, cfg.Sink.SQS.DLQURL), log), nil
}

// newLogger logs JSON to stderr (CloudWatch) at the configured level.
func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
