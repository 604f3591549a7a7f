package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
)

// Exit codes of plan.
const (
	planNoChange  = 0
	planLive      = 2
	planNeedsDBA  = 3
	planErrorCode = 1
)

// planCmd shows what a new configuration would change, before it is
// reloaded: the mappings, the publication SQL, a sample event before and
// after per changed table, and whether it can be applied live. It only
// reads (one read-only transaction).
func planCmd() *cobra.Command {
	var file, running, dsn string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what a config change does to the publication and the events, before a reload",
		Long: `Compare a new configuration (--config) with the one the connector runs
(--running) and with the server's publication, and print:

  - what changes, table by table: operations, columns (and their
    transforms), attributes, key, topic, type, row filter;
  - the exact publication SQL the change needs (as setup --dry-run prints);
  - for each changed table, an event before and after, made from a real row
    of the table (the first by its key; read in a read-only transaction);
  - the verdict: live (a reload applies it), needs a DBA (the connector's
    role may not change the publication: run the SQL as the tables' owner
    first), and the tables and columns whose history only a backfill
    brings (newly mapped, with rows).

Nothing is changed. Exit code: 0 no change, 2 the change can be applied
live (send SIGHUP to run), 3 it needs a DBA first, 1 an error (an invalid
file: every problem with file:line).`,
		Example: `  baitoru-cdc plan --config new.yaml --running config.yaml
  # then, when it says live:
  cp new.yaml config.yaml && pkill -HUP -f '^[^ ]*baitoru-cdc run'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return &exitError{code: planErrorCode, msg: "baitoru-cdc plan: name the new configuration with --config FILE, e.g. baitoru-cdc plan --config new.yaml --running config.yaml"}
			}
			next, err := loadConnectorConfig(file)
			if err != nil {
				return err
			}
			cur, err := config.LoadConnector(running)
			if err != nil {
				return &exitError{code: planErrorCode, msg: "the running configuration " + running + " (--running) is invalid:\n" + err.Error()}
			}
			return plan(cmd.Context(), cmd.OutOrStdout(), planInput{
				file: file, running: running, dsn: dsn, cur: cur, next: next,
			})
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "the new configuration file (required)")
	cmd.Flags().StringVar(&running, "running", "config.yaml", "the configuration the connector runs with")
	cmd.Flags().StringVar(&dsn, "dsn", "", "connect with this DSN instead of source.dsn of the new file")
	return cmd
}

type planInput struct {
	file, running, dsn string
	cur, next          *config.Config
}

// planSampleTx is the transaction the sample events claim to come from:
// fixed, so that the output of one row is the same every time.
var planSampleTx = &connector.Tx{CommitTime: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}

func plan(ctx context.Context, w io.Writer, in planInput) error {
	curMaps, nextMaps := in.cur.Mappings(), in.next.Mappings()
	changes := connector.DiffMappings(curMaps, nextMaps)
	fmt.Fprintf(w, "plan: %s (mappings %s) → %s (mappings %s)\n", in.running, connector.MappingVersion(curMaps), in.file, connector.MappingVersion(nextMaps))

	conn, err := connectSource(ctx, in.next, in.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	server, err := postgres.ServerVersion(ctx, conn)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("plan: begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	var names []string
	for _, m := range append(slices.Clone(curMaps), nextMaps...) {
		if !slices.Contains(names, m.Table) {
			names = append(names, m.Table)
		}
	}
	tables, err := dba.ReadTables(ctx, tx, server, names)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}

	// Mappings.
	fmt.Fprintf(w, "\nmappings:\n")
	if len(changes) == 0 {
		fmt.Fprintf(w, "  no change\n")
	}
	for _, c := range changes {
		switch c.Kind {
		case connector.TableAdded:
			fmt.Fprintf(w, "  + %s: newly mapped\n", c.Table)
		case connector.TableRemoved:
			fmt.Fprintf(w, "  - %s: no longer mapped (its changes stop being published)\n", c.Table)
		default:
			fmt.Fprintf(w, "  ~ %s\n", c.Table)
		}
		for _, d := range c.Details {
			fmt.Fprintf(w, "      %s\n", d)
		}
	}

	// Publication.
	pubName := in.next.Source.Publication
	pubPlan, err := dba.PlanPublication(pubName, nextMaps, server, tables)
	var pe *dba.PlanError
	if errors.As(err, &pe) {
		return &exitError{code: planErrorCode, msg: "plan: " + err.Error() + "\nthe new configuration cannot be applied as it is."}
	}
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	cur, err := dba.ReadPublication(ctx, tx, server, pubName)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	var stmts []dba.Statement
	switch {
	case cur == nil:
		stmts = pubPlan.CreateStatements()
	default:
		drift, err := pubPlan.Diff(ctx, cur, dba.CompareFilters(tx))
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		stmts = pubPlan.AlterStatements(drift)
	}
	fmt.Fprintf(w, "\npublication %s:\n", pubName)
	if len(stmts) == 0 {
		fmt.Fprintf(w, "  matches the new configuration: no SQL to run\n")
	} else {
		fmt.Fprintf(w, "BEGIN;\n\n")
		for _, st := range stmts {
			fmt.Fprintf(w, "-- %s\n%s;\n\n", dba.CommentSafe(st.Comment), st.SQL)
		}
		fmt.Fprintf(w, "COMMIT;\n")
	}
	var notOwned []string
	for _, t := range pubPlan.Tables {
		if info := tables[t.Table]; info != nil && !info.Owned {
			notOwned = append(notOwned, t.Table)
		}
	}
	role := in.next.Source.DSN
	if pc, err := pgconn.ParseConfig(in.next.Source.DSN); err == nil {
		role = pc.User
	}
	needsDBA := len(stmts) > 0 && (len(notOwned) > 0 || !in.next.Source.Create)

	// Samples.
	pgCfg, _ := pgconn.ParseConfig(in.next.Source.DSN)
	source := "baitoru/"
	if pgCfg != nil {
		source += pgCfg.Database
	}
	types := postgres.NewTypes()
	var backfill []string
	if len(changes) > 0 {
		fmt.Fprintf(w, "\nsample events (from a real row, read-only):\n")
	}
	for _, c := range changes {
		s, err := dba.ReadSample(ctx, tx, types, tables[c.Table])
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		if s == nil {
			fmt.Fprintf(w, "  %s: no row to show (the table is empty or missing)\n", c.Table)
			continue
		}
		fmt.Fprintf(w, "  %s (row %s):\n", c.Table, s.KeyText)
		fmt.Fprintf(w, "    before: %s\n", sampleEvent(source, c.Old, s))
		fmt.Fprintf(w, "    after:  %s\n", sampleEvent(source, c.New, s))
		switch {
		case c.Kind == connector.TableAdded:
			backfill = append(backfill, c.Table+" (newly mapped; its existing rows are not in any event)")
		case len(c.NewColumns) > 0:
			backfill = append(backfill, fmt.Sprintf("%s (newly published %s: %s; past events lack them)", c.Table, countNoun(len(c.NewColumns), "column", "columns"), strings.Join(c.NewColumns, ", ")))
		}
	}

	// Verdict.
	fmt.Fprintf(w, "\nverdict: ")
	code := planLive
	switch {
	case len(changes) == 0 && len(stmts) == 0:
		fmt.Fprintf(w, "no change\n")
		code = planNoChange
	case needsDBA && len(notOwned) == 0:
		fmt.Fprintf(w, "needs a DBA: source.create is false, so the connector does not change publication %s; run the SQL above (or baitoru-cdc setup --config %s), then reload\n", pubName, in.file)
		code = planNeedsDBA
	case needsDBA:
		fmt.Fprintf(w, "needs a DBA: role %s does not own %s, so it may not change publication %s; a table owner runs the SQL above (or baitoru-cdc setup --config %s --dsn <a DBA's DSN>), then reload\n",
			role, strings.Join(notOwned, ", "), pubName, in.file)
		code = planNeedsDBA
	default:
		fmt.Fprintf(w, "live: a reload applies it (kill -HUP the connector after putting %s in place of %s)", in.file, in.running)
		if len(stmts) > 0 {
			fmt.Fprintf(w, "; the connector changes the publication itself, in the safe order")
		}
		fmt.Fprintln(w)
	}
	for _, b := range backfill {
		fmt.Fprintf(w, "needs a backfill for history: %s\n", b)
	}
	if code == planNoChange {
		return nil
	}
	return &exitError{code: code}
}

// sampleEvent maps the sample row with m (nil: not mapped) as an insert, or
// as the first operation m publishes, and shows its data and attributes.
func sampleEvent(source string, m *connector.Mapping, s *dba.Sample) string {
	if m == nil {
		return "(no event: the table is not mapped)"
	}
	op := connector.OpInsert
	if !m.Publishes(op) {
		op = m.Ops[0]
	}
	ch := &connector.Change{Tx: planSampleTx, Rel: s.Rel, Op: op, New: s.Row}
	if op == connector.OpDelete {
		ch.New, ch.Old = nil, s.Row
	}
	ev, err := connector.NewMapper(source, []*connector.Mapping{m}).Map(ch)
	if err != nil {
		return "(no event: " + userMessage(err) + ")"
	}
	if ev == nil {
		return "(no event)"
	}
	var body struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(ev.Body, &body) // the mapper's own JSON
	var attrs []string
	for _, a := range ev.Attributes[3:] {
		attrs = append(attrs, a.Name+"="+a.Value)
	}
	out := body.Type + " " + string(body.Data)
	if len(attrs) > 0 {
		out += " attributes: " + strings.Join(attrs, ", ")
	}
	return out
}
