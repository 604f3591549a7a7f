package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/buildinfo"
	"github.com/baitoru/baitoru-cdc/internal/gcsetting"
	"github.com/baitoru/baitoru-cdc/internal/logging"
	"github.com/baitoru/baitoru-cdc/sink/service"
)

func sinkCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Deliver events from SQS to the linked Kobot accounts, signed; serve the links API",
		Long: `sink consumes the SQS queue subscribed to the topic, looks up the Kobot
accounts linked to each event's link key, and pushes the event to Kobot signed
per Standard Webhooks. It serves the links API, /metrics, /healthz and /readyz
on sink.api.listen. SIGTERM stops receiving, finishes the deliveries under way
and exits 0.

Kobot's 2xx means delivered (never pushed to that link again); 429, 5xx and
timeouts are retried with backoff, then left for SQS to redeliver; other
4xx and messages that are not events go to sink.sqs.dlq_url with the reason.
Links live in the sink's own database (sink.dsn; migrations are applied at
start). Run as many sinks as needed: they compete for the queue.

Secrets come from the environment: sink.password (config.yaml reads
SINK_DB_PASSWORD), the webhook secret (KOBOT_WEBHOOK_SECRET) and the links
API token (LINKS_API_TOKEN); the public demo values of the shipped
config.yaml are refused unless demo: true.`,
		Example: `  export SINK_DB_PASSWORD=... KOBOT_WEBHOOK_SECRET=whsec_... LINKS_API_TOKEN=...
  baitoru-cdc sink --config config.yaml

  # start a link for Kobot account acct-1 and Baitoru company 7
  curl -sS -H "Authorization: Bearer $LINKS_API_TOKEN" -H 'Content-Type: application/json' \
    -d '{"kobot_account":"acct-1","link_key":"7"}' localhost:8080/v1/links`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadSink(file)
			if err != nil {
				return configError(file, err)
			}
			log := logging.New(cfg.Log, os.Stderr)
			gc := gcsetting.Apply(cfg.Sink.GC.Percent, cfg.Sink.GC.MemoryLimit)
			log.Info("baitoru-cdc sink starting", append(buildinfo.Get().LogAttrs(), gc.LogAttrs()...)...)
			logConfigWarnings(log, cfg)
			if cfg.Demo {
				log.Warn("demo: true: the public demo webhook secret and API token are accepted; never run this configuration in production")
			}
			s, err := service.New(cfg.Sink, service.Options{Logger: log})
			if err != nil {
				return err
			}
			if err := s.Run(cmd.Context()); err != nil {
				return err
			}
			log.Info("sink stopped")
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "config.yaml", "configuration file")
	return cmd
}
