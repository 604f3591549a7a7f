package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/config"
)

// validateCmd checks a configuration file offline: every problem is printed
// (to stderr) as file:line: key.path: message and the exit code is 1; a valid
// file prints one summary line (to stdout) and exits 0. It checks each
// section the file configures: the connector's (source, sns, publisher,
// metrics, tables), the sink's (sink), or both. It never prints a secret.
func validateCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a configuration file offline; print every problem with file:line: key",
		Long: `Check a configuration file without connecting to anything: the YAML, every
key and value, ${VAR} references, BAITORU_CDC_* overrides, the mappings
(tables, columns, renames, attributes, keys), the sink's links and secrets.

Every problem is printed on standard error as "file:line: key.path: message"
(or "file (from BAITORU_CDC_X): ..." for an environment override), with how
to fix it, and the exit code is 1. A valid file prints one summary line on
standard output and exits 0. Unknown BAITORU_CDC_* variables are warned
about, with the closest real one. Secrets are never printed.

What needs the database (tables, columns, privileges, the slot) is checked
by "baitoru-cdc check".`,
		Example: `  baitoru-cdc validate --config config.yaml

  # as a deploy step: stop on the first invalid file
  baitoru-cdc validate -c prod.yaml && kubectl apply -f deploy/`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return configError(file, err)
			}
			printConfigWarnings(cmd.ErrOrStderr(), cfg)
			fmt.Fprintln(cmd.OutOrStdout(), validSummary(cfg))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "config.yaml", "configuration file")
	return cmd
}

// configError is how validate, run and sink end on a configuration that
// does not load: every problem (file:line: key: message and fix), then one
// line counting them, exit code 1.
func configError(file string, err error) error {
	var ps config.Problems
	if !errors.As(err, &ps) {
		return &exitError{code: 1, msg: err.Error()}
	}
	return &exitError{code: 1, msg: fmt.Sprintf("%s\n%s: invalid: %d %s", ps.Error(), file, len(ps), countNoun(len(ps), "problem", "problems"))}
}

// validSummary is one line saying what a valid configuration does, e.g.
// "config.yaml: valid: 2 tables (public.applications insert; public.job_postings
// insert,update), publisher sns → arn:aws:sns:...:baitoru-events".
func validSummary(cfg *config.Config) string {
	var parts []string
	if cfg.HasConnector() {
		tables := make([]string, len(cfg.Tables))
		topics := map[string]bool{}
		for i, t := range cfg.Tables {
			tables[i] = t.Table + " " + strings.Join(t.Operations, ",")
			topic := t.TopicARN
			if topic == "" {
				topic = cfg.SNS.TopicARN
			}
			topics[topic] = true
		}
		s := fmt.Sprintf("%d %s (%s), publisher %s", len(cfg.Tables), countNoun(len(cfg.Tables), "table", "tables"), strings.Join(tables, "; "), cfg.Publisher.Kind)
		if cfg.Publisher.Kind == "sns" {
			if len(topics) == 1 {
				for topic := range topics {
					s += " → " + topic
				}
			} else {
				s += fmt.Sprintf(" → %d topics", len(topics))
			}
		}
		parts = append(parts, s)
	}
	if cfg.HasSink() {
		parts = append(parts, fmt.Sprintf("sink %s → %s (%d link %s)",
			urlWithoutSecrets(cfg.Sink.SQS.QueueURL), urlWithoutSecrets(cfg.Sink.Kobot.Endpoint),
			len(cfg.Sink.Links), countNoun(len(cfg.Sink.Links), "rule", "rules")))
	}
	return fmt.Sprintf("%s: valid: %s", cfg.File, strings.Join(parts, "; "))
}

// urlWithoutSecrets drops what could carry a credential: user info, query, fragment.
func urlWithoutSecrets(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func countNoun(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
