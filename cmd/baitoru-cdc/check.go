package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/connector/s3"
	"github.com/baitoru/baitoru-cdc/connector/sns"
	"github.com/baitoru/baitoru-cdc/internal/awsclient"
	"github.com/baitoru/baitoru-cdc/internal/pgconnect"
)

// Exit codes of check, those of monitoring plugins (Nagios, Icinga,
// Sensu): the worst row decides.
const (
	checkOK       = 0 // every row ✓
	checkWarning  = 1 // a ! row, no ✗
	checkCritical = 2 // a ✗ row
	checkUnknown  = 3 // check could not run: bad flags or an invalid config
)

// checkCmd is the DBA's preflight: one row per check (✓ ok, ! warning,
// ✗ blocking problem) with what was observed and how to fix it. Exit code 0
// when everything is ok, 1 with warnings only, 2 with a blocking problem, 3
// when it could not check. --json prints the same rows as one JSON document.
func checkCmd() *cobra.Command {
	var file, dsn string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Preflight: server, role, tables, publication, slot lag, SNS topic; a fix for every problem",
		Long: `Check everything the connector needs, without changing anything: server
version, wal_level, free replication slots and WAL senders, the role's
attributes and grants, every mapped table and column (and whether its type
is encoded natively), the replica identity of tables whose updates/deletes
are published, the publication against the config (drift: missing or extra
tables, columns, row filters, operations) and whether it could make writes
fail, the slot (plugin, active pid, wal_status, retained WAL, confirmed-flush
lag), max_slot_wal_keep_size, the SNS topics (reachable, FIFO as the
config says), the large_payloads S3 buckets (reachable and writable: a
small probe object is written) and, without large_payloads, the mapped
columns that can make an event over SNS's limit.

Exit code, as monitoring plugins (Nagios, Icinga, Sensu) expect:
  0  OK        every row ✓
  1  WARNING   a ! row (it works, but look), no ✗
  2  CRITICAL  a ✗ row: the connector cannot work as configured
  3  UNKNOWN   check could not run: bad flags or an invalid configuration`,
		Example: `  baitoru-cdc check --config config.yaml
  # as the DBA, still checking the connector's role (the user of source.dsn)
  baitoru-cdc check --config config.yaml --dsn 'postgres://dba@db.internal:5432/baitoru'
  # for scripts and CI
  baitoru-cdc check --config config.yaml --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConnectorConfig(file)
			if err != nil {
				var ee *exitError
				if errors.As(err, &ee) {
					ee.code = checkUnknown
				}
				return err
			}
			printConfigWarnings(cmd.ErrOrStderr(), cfg)
			rows := runChecks(cmd.Context(), cfg, file, dsn)
			code := checkExitCode(rows)
			out := cmd.OutOrStdout()
			if asJSON {
				writeCheckJSON(out, rows, code)
			} else {
				writeCheckTable(out, rows, code)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "config.yaml", "configuration file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checks as JSON")
	cmd.Flags().StringVar(&dsn, "dsn", "", "connect with this DSN instead of source.dsn")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: checkUnknown, msg: "baitoru-cdc check: " + err.Error() + " (see baitoru-cdc check --help)"}
	})
	return cmd
}

// runChecks runs the database checks and the SNS checks.
func runChecks(ctx context.Context, cfg *config.Config, file, dsn string) []dba.CheckResult {
	var rows []dba.CheckResult
	setupCmd := "baitoru-cdc setup --config " + file
	conn, err := connectSource(ctx, cfg, dsn)
	if err != nil {
		row := dba.CheckResult{Check: "connect", Status: dba.CheckFail, Observed: err.Error(),
			Fix: "check source.dsn (host, port, database, user) and source.password (the shipped config.yaml reads it from BAITORU_DB_PASSWORD), pg_hba.conf, and that PostgreSQL is running"}
		if pe := (*pgconnect.Error)(nil); errors.As(err, &pe) {
			row.Observed, row.Fix = pe.What, pe.Fix
		}
		rows = append(rows, row)
	} else {
		defer conn.Close(context.Background())
		dbRows, err := dba.Check(ctx, conn, dba.CheckOptions{
			Slot: cfg.Source.Slot, Publication: cfg.Source.Publication,
			Mappings: cfg.Mappings(), Create: cfg.Source.Create,
			MaxLagBytes: cfg.Source.MaxLagBytes, SetupCommand: setupCmd, Role: sourceRole(cfg),
			BackfillCommand: "baitoru-cdc backfill start --config " + file,
			MaxMessageBytes: maxMessageBytes(cfg),
			WhereKey: func(table string) string {
				p := cfg.ProblemAt(wherePath(cfg, table), "")
				return strings.TrimSuffix(p.String(), ": ")
			},
		})
		rows = append(rows, dbRows...)
		if err == nil {
			var bfRows []dba.CheckResult
			bfRows, err = dba.CheckBackfill(ctx, conn, backfillObjects(cfg), setupCmd)
			rows = append(rows, bfRows...)
		}
		if err != nil {
			rows = append(rows, dba.CheckResult{Check: "database checks", Status: dba.CheckFail,
				Observed: "stopped: " + postgres.Redact(err.Error()), Fix: "fix the error and run check again"})
		}
	}
	rows = append(rows, snsChecks(ctx, cfg)...)
	return append(rows, s3Checks(ctx, cfg)...)
}

// maxMessageBytes is the message size limit of the configured destination
// (SNS's), 0 for stdout (no limit).
func maxMessageBytes(cfg *config.Config) int {
	if cfg.Publisher.Kind == "stdout" {
		return 0
	}
	return config.MaxThreshold
}

// s3Checks writes a small probe object under each large_payloads bucket and
// prefix (s3:PutObject, as the connector itself): the bucket exists, is
// reachable with the connector's credentials and region, and takes objects.
func s3Checks(ctx context.Context, cfg *config.Config) []dba.CheckResult {
	buckets := cfg.Buckets()
	if !cfg.LargePayloadsUsed() || len(buckets) == 0 {
		return nil
	}
	var rows []dba.CheckResult
	client, err := s3.NewClient(ctx, cfg.S3.Region, cfg.S3.Endpoint, nil)
	for _, b := range buckets {
		name := "s3 bucket " + b.Bucket
		where := "s3://" + b.Bucket + "/" + b.Prefix
		if err != nil {
			rows = append(rows, dba.CheckResult{Check: name, Status: dba.CheckFail, Observed: where + ": " + err.Error(), Fix: "set s3.region (or AWS_REGION) and AWS credentials"})
			continue
		}
		store := s3.New(client, s3.Options{}, slog.New(slog.DiscardHandler))
		if err := store.Probe(ctx, b.Bucket, b.Prefix, 10*time.Second); err == nil {
			rows = append(rows, dba.CheckResult{Check: name, Status: dba.CheckOK, Observed: where + ": reachable, writable (wrote " + b.Prefix + s3.ProbeKey + ")"})
		} else if ce := (*awsclient.CredentialsError)(nil); errors.As(err, &ce) {
			rows = append(rows, dba.CheckResult{Check: name, Status: dba.CheckFail, Observed: where + ": " + ce.Problem(), Fix: ce.Fix()})
		} else {
			fix := s3.Hint(awsclient.ErrorCode(err))
			if fix == "" {
				fix = "check s3.region, s3.endpoint, the network path to S3 and the connector's AWS credentials; it needs s3:PutObject on arn:aws:s3:::" + b.Bucket + "/" + b.Prefix + "*"
			}
			rows = append(rows, dba.CheckResult{Check: name, Status: dba.CheckFail, Observed: where + ": not writable: " + err.Error(), Fix: fix})
		}
	}
	return rows
}

// sourceRole is the user of source.dsn: the connector's role, checked
// whoever runs check (--dsn). Empty when the DSN names none.
func sourceRole(cfg *config.Config) string {
	pc, err := pgconn.ParseConfig(cfg.Source.DSN)
	if err != nil {
		return ""
	}
	return pc.User
}

// topicARNs is every topic the config publishes to (the default topic and
// the tables' own), sorted.
func topicARNs(cfg *config.Config) []string {
	topics := map[string]bool{}
	for _, t := range cfg.Tables {
		arn := t.TopicARN
		if arn == "" {
			arn = cfg.SNS.TopicARN
		}
		topics[arn] = true
	}
	arns := make([]string, 0, len(topics))
	for arn := range topics {
		arns = append(arns, arn)
	}
	sort.Strings(arns)
	return arns
}

// snsChecks checks every topic the config publishes to: reachable, and a
// FIFO topic exactly when its ARN says so (the config relies on it).
func snsChecks(ctx context.Context, cfg *config.Config) []dba.CheckResult {
	if cfg.Publisher.Kind == "stdout" {
		return []dba.CheckResult{{Check: "sns", Status: dba.CheckOK, Observed: "publisher.kind stdout: no SNS topic used"}}
	}
	arns := topicARNs(cfg)
	client, err := sns.NewClient(ctx, cfg.SNS.Region, cfg.SNS.Endpoint, nil)
	if err != nil {
		return []dba.CheckResult{{Check: "sns", Status: dba.CheckFail, Observed: err.Error(), Fix: "set sns.region (or AWS_REGION) and AWS credentials"}}
	}
	pub := sns.New(client, sns.Options{CallTimeout: 10 * time.Second}, slog.New(slog.DiscardHandler))
	var rows []dba.CheckResult
	for _, arn := range arns {
		name := "sns topic"
		fifo, err := pub.CheckTopic(ctx, arn)
		var te *sns.TopicError
		switch {
		case errors.As(err, &te):
			rows = append(rows, dba.CheckResult{Check: name, Status: dba.CheckFail, Observed: arn + " " + te.Problem, Fix: te.Fix})
		default:
			kind := "standard topic"
			if fifo {
				kind = "FIFO topic (MessageGroupId = key, deduplication by event id)"
			}
			rows = append(rows, dba.CheckResult{Check: name, Status: dba.CheckOK, Observed: arn + ": reachable, " + kind})
		}
	}
	return rows
}

func checkExitCode(rows []dba.CheckResult) int {
	code := checkOK
	for _, r := range rows {
		switch r.Status {
		case dba.CheckFail:
			return checkCritical
		case dba.CheckWarn:
			code = checkWarning
		}
	}
	return code
}

var checkMarks = map[dba.CheckStatus]string{dba.CheckOK: "✓", dba.CheckWarn: "!", dba.CheckFail: "✗"}

func writeCheckTable(w io.Writer, rows []dba.CheckResult, code int) {
	width := 0
	for _, r := range rows {
		width = max(width, utf8.RuneCountInString(r.Check))
	}
	counts := map[dba.CheckStatus]int{}
	for _, r := range rows {
		counts[r.Status]++
		fmt.Fprintf(w, "%s %-*s  %s\n", checkMarks[r.Status], width, r.Check, r.Observed)
		if r.Fix != "" && r.Status != dba.CheckOK {
			fmt.Fprintf(w, "  %*s  fix: %s\n", width, "", r.Fix)
		}
	}
	summary := fmt.Sprintf("%d ok, %d %s, %d %s",
		counts[dba.CheckOK], counts[dba.CheckWarn], countNoun(counts[dba.CheckWarn], "warning", "warnings"),
		counts[dba.CheckFail], countNoun(counts[dba.CheckFail], "problem", "problems"))
	switch code {
	case checkOK:
		fmt.Fprintf(w, "\ncheck: all good (%s)\n", summary)
	case checkWarning:
		fmt.Fprintf(w, "\ncheck: warnings only (%s); exit 1 (WARNING)\n", summary)
	default:
		fmt.Fprintf(w, "\ncheck: blocking problems (%s); exit 2 (CRITICAL)\n", summary)
	}
}

// checkReport is the --json document.
type checkReport struct {
	Status   string            `json:"status"` // ok, warn, fail
	ExitCode int               `json:"exit_code"`
	Checks   []dba.CheckResult `json:"checks"`
}

func writeCheckJSON(w io.Writer, rows []dba.CheckResult, code int) {
	status := map[int]string{checkOK: "ok", checkWarning: "warn", checkCritical: "fail"}[code]
	if rows == nil {
		rows = []dba.CheckResult{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(checkReport{Status: status, ExitCode: code, Checks: rows})
}
