// Command baitoru-cdc-lambda is the sink's delivery core as an AWS Lambda
// function for an SQS event source mapping with ReportBatchItemFailures.
//
// It reads the configuration file named by BAITORU_CDC_CONFIG (the sink and
// log sections; environment overrides such as BAITORU_CDC_SINK_KOBOT_SECRET
// apply as for `baitoru-cdc sink`). On a cold start it applies the sink
// database's migrations. Links are read from the database once per batch
// (no cache: a frozen Lambda process cannot keep a LISTEN connection); the
// delivery log, signing, retries and DLQ handling are those of the sink.
//
// The function's handler setting (the runtime's _HANDLER) picks what one
// package serves: "sink" (the default) handles SQS batches; "links-api"
// serves the links API behind a Lambda function URL (InvokeMode
// RESPONSE_STREAM), with the same bearer token as `baitoru-cdc sink`.
// deploy/template.yaml deploys both from one zip (make lambda).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/buildinfo"
	"github.com/baitoru/baitoru-cdc/internal/logging"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
	"github.com/baitoru/baitoru-cdc/sink/lambda"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
	"github.com/baitoru/baitoru-cdc/sink/service"
	"github.com/baitoru/baitoru-cdc/sink/sqs"
)

func main() {
	ctx := context.Background()
	switch handler := os.Getenv("_HANDLER"); handler {
	case "", "sink":
		h, err := setup(ctx)
		if err != nil {
			fail(err)
		}
		awslambda.Start(h.Handle)
	case "links-api":
		mux, err := setupAPI(ctx)
		if err != nil {
			fail(err)
		}
		lambdaurl.Start(mux)
	default:
		fail(fmt.Errorf("unknown handler %q: set the function's handler to sink or links-api", handler))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "baitoru-cdc-lambda:", err)
	os.Exit(1)
}

// setupAPI serves the links API from the sink database.
func setupAPI(ctx context.Context) (http.Handler, error) {
	path := os.Getenv("BAITORU_CDC_CONFIG")
	if path == "" {
		return nil, errors.New("set BAITORU_CDC_CONFIG to the configuration file")
	}
	cfg, err := config.LoadSink(path)
	if err != nil {
		return nil, err
	}
	log := newLogger(cfg.Log)
	log.Info("baitoru-cdc-lambda starting", append([]any{"handler", "links-api"}, buildinfo.Get().LogAttrs()...)...)
	token, err := service.Token(cfg.Sink.API)
	if err != nil {
		return nil, err
	}
	store, err := postgres.Open(cfg.Sink.DSN, log)
	if err != nil {
		return nil, err
	}
	if _, err := store.Migrate(ctx); err != nil {
		return nil, err
	}
	api, err := sink.NewAPI(store, token, log)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	api.Register(mux)
	return mux, nil
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
	log.Info("baitoru-cdc-lambda starting", append([]any{"handler", "sink"}, buildinfo.Get().LogAttrs()...)...)
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
	client, err := sqs.NewClient(ctx, cfg.Sink.SQS)
	if err != nil {
		return nil, err
	}
	proc, err := sink.NewProcessor(sink.ProcessorConfig{
		Rules: rules, Links: store, Log: store, Pusher: kc, Logger: log,
		ClaimLease: sink.ClaimLeaseFor(cfg.Sink.Kobot),
	})
	if err != nil {
		return nil, err
	}
	return lambda.New(proc, sqs.NewDLQ(client, cfg.Sink.SQS.DLQURL), log), nil
}

// newLogger logs JSON to stderr whatever log.format says (CloudWatch Logs
// Insights reads its fields), at the configured level.
func newLogger(c config.Log) *slog.Logger {
	c.Format = "json"
	return logging.New(c, os.Stderr)
}
