package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/buildinfo"
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
and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadSink(file)
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			log := logging.New(cfg.Log, os.Stderr)
			log.Info("baitoru-cdc sink starting", buildinfo.Get().LogAttrs()...)
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
