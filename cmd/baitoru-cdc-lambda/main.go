// Command baitoru-cdc-lambda is the sink's delivery core as an AWS Lambda
// function for an SQS event source mapping with ReportBatchItemFailures.
//
// It reads the configuration file named by BAITORU_CDC_CONFIG (the sink and
// log sections; environment overrides such as BAITORU_CDC_SINK_KOBOT_SECRET
// apply as for `baitoru-cdc sink`). On a cold start it applies the sink
// database's migrations. Both handlers are built by sink/service as the
// sink server is (service.Build, service.BuildAPI), so the delivery log,
// signing, retries, redelivery delays, metrics and DLQ handling are the
// sink's; only the links are read from the database once per batch (no
// cache: a frozen Lambda process cannot keep a LISTEN connection).
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
	"github.com/baitoru/baitoru-cdc/sink/lambda"
	"github.com/baitoru/baitoru-cdc/sink/service"
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
	cfg, log, err := load("links-api")
	if err != nil {
		return nil, err
	}
	api, err := service.BuildAPI(ctx, cfg.Sink, service.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	return api.Handler, nil
}

// setup builds the delivery core for SQS batches: the sink's, reading links
// from the database once per batch.
func setup(ctx context.Context) (*lambda.Handler, error) {
	cfg, log, err := load("sink")
	if err != nil {
		return nil, err
	}
	p, err := service.Build(ctx, cfg.Sink, service.Options{Logger: log, Links: service.QueriedLinks})
	if err != nil {
		return nil, err
	}
	return lambda.New(p.Processor, p.DLQ, log), nil
}

// load reads the configuration file named by BAITORU_CDC_CONFIG and logs
// the start of handler.
func load(handler string) (*config.Config, *slog.Logger, error) {
	path := os.Getenv("BAITORU_CDC_CONFIG")
	if path == "" {
		return nil, nil, errors.New("set BAITORU_CDC_CONFIG to the configuration file")
	}
	cfg, err := config.LoadSink(path)
	if err != nil {
		return nil, nil, err
	}
	log := newLogger(cfg.Log)
	log.Info("baitoru-cdc-lambda starting", append([]any{"handler", handler}, buildinfo.Get().LogAttrs()...)...)
	return cfg, log, nil
}

// newLogger logs JSON to stderr whatever log.format says (CloudWatch Logs
// Insights reads its fields), at the configured level.
func newLogger(c config.Log) *slog.Logger {
	c.Format = "json"
	return logging.New(c, os.Stderr)
}
