package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/pgconnect"
)

// setupCmd prints (--dry-run) or runs the SQL the configuration needs on
// the source database: the publication (column lists, row filters, only
// the mapped operations), the permanent slot, and as comments the role and
// grants a DBA should create and replica identity advice. It is
// idempotent. A refused publication (one that would make writes fail)
// exits 1 with the reasons and alternatives, changing nothing.
func setupCmd() *cobra.Command {
	var file, dsn string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the publication and the replication slot the config needs (--dry-run: print the SQL)",
		Long: `Create (or align) the publication and create the permanent replication slot.

The publication carries exactly the mapped tables, only their mapped columns
(PostgreSQL 15 column lists, plus replica identity columns where needed) and
their row filters (where:), publishing only the mapped operations. A
publication that would make an UPDATE or DELETE on a mapped table fail is
refused, with the reason and the alternatives. Everything runs in one
transaction, checked before it commits; the slot is created after it.
Running setup again changes nothing and says so.

--dry-run runs the same statements inside a transaction that is rolled back
and prints them, so what it prints is what setup would run. The SQL script
goes to standard output; progress lines ("setup: ...") go to standard error,
so "setup --dry-run > setup.sql" keeps a clean script for review. Run setup as a
role that owns the mapped tables (the DBA): pass its DSN with --dsn (or
BAITORU_CDC_SOURCE_DSN); the comments describe the connector's own role,
the user of source.dsn.`,
		Example: `  # the SQL to review, checked in a rolled-back transaction
  baitoru-cdc setup --config config.yaml --dsn 'postgres://dba@db.internal:5432/baitoru' --dry-run > setup.sql
  # apply it (idempotent: run it again after a config change)
  baitoru-cdc setup --config config.yaml --dsn 'postgres://dba@db.internal:5432/baitoru'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConnectorConfig(file)
			if err != nil {
				return err
			}
			printConfigWarnings(cmd.ErrOrStderr(), cfg)
			return setup(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg, file, dsn, dryRun)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "config.yaml", "configuration file")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the SQL (checked inside a rolled-back transaction); change nothing")
	cmd.Flags().StringVar(&dsn, "dsn", "", "connect with this DSN instead of source.dsn (e.g. a DBA's role)")
	return cmd
}

// backfillObjects names what online backfill keeps in the source database
// for this configuration.
func backfillObjects(cfg *config.Config) dba.BackfillObjects {
	return dba.BackfillObjects{
		Schema:      postgres.Schema,
		Publication: cfg.Source.Publication + "_backfill",
		Role:        sourceRole(cfg),
	}
}

// connectSource connects to dsn (or source.dsn), never echoing a password.
// A failed connection is a *pgconnect.Error: what is wrong and the fix,
// in terms of --dsn when it was given, else of source.dsn.
func connectSource(ctx context.Context, cfg *config.Config, dsn string) (*pgx.Conn, error) {
	where := pgconnect.Flag
	if dsn == "" {
		dsn, where = cfg.Source.DSN, pgconnect.Source
	}
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, pgconnect.BadDSN(err, where, postgres.Redact)
	}
	pc.RuntimeParams["application_name"] = "baitoru-cdc"
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, pgconnect.Explain(ctx, err, &pc.Config, where)
	}
	return conn, nil
}

// setup runs (or, dryRun, checks and prints) the publication and the slot.
// The SQL script goes to out; progress lines for the person running it go
// to progress.
func setup(ctx context.Context, out, progress io.Writer, cfg *config.Config, file, dsn string, dryRun bool) error {
	say := func(format string, args ...any) {
		fmt.Fprintf(progress, "setup: "+format+"\n", args...)
	}
	conn, err := connectSource(ctx, cfg, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var db, user, version string
	if err := conn.QueryRow(ctx, `SELECT current_database(), current_user, current_setting('server_version')`).Scan(&db, &user, &version); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	c := conn.Config()
	say("connected to database %s on %s:%d as %s (PostgreSQL %s)", db, c.Host, c.Port, user, version)
	walLevel, err := dba.WALLevel(ctx, conn)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	switch {
	case walLevel != "logical" && !dryRun:
		return &exitError{code: 1, msg: "setup: " + dba.WALLevelError(walLevel).Error() + "\nnothing was changed; `setup --dry-run` prints the SQL to review meanwhile."}
	case walLevel != "logical":
		say("wal_level is %s: the slot cannot be created until it is logical (ALTER SYSTEM SET wal_level = logical; restart PostgreSQL)", walLevel)
	}
	if dryRun {
		say("dry run: every statement runs inside a transaction that is rolled back; nothing will be changed")
	}
	mappings := cfg.Mappings()
	names := dba.TableNames(mappings)
	say("publication %s: planning %d mapped %s (%s), publishing %s; reading the tables and the existing publication",
		cfg.Source.Publication, len(names), countNoun(len(names), "table", "tables"), strings.Join(names, ", "), strings.Join(dba.Operations(mappings), ", "))
	pub, err := dba.ApplyPublication(ctx, conn, dba.ApplyOptions{
		Publication: cfg.Source.Publication, Mappings: mappings, DryRun: dryRun,
	})
	var pe *dba.PlanError
	if errors.As(err, &pe) {
		say("publication %s: refused; nothing was changed", cfg.Source.Publication)
		return &exitError{code: 1, msg: "setup: " + err.Error() + "\nnothing was changed."}
	}
	if xerr := explainDBA(err, cfg, "setup"); xerr != err {
		say("publication %s: refused; nothing was changed", cfg.Source.Publication)
		msg := xerr.Error()
		if errors.Is(err, dba.ErrPrivilege) {
			msg = "setup: " + msg // where: problems start with file:line
		}
		return &exitError{code: 1, msg: msg + "\nnothing was changed."}
	}
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	verb := map[dba.PublicationAction]string{
		dba.PublicationCreated: "created", dba.PublicationAltered: "altered", dba.PublicationUnchanged: "already matches the config; unchanged",
	}[pub.Action]
	if dryRun && pub.Action != dba.PublicationUnchanged {
		verb = "would be " + verb
	}
	say("publication %s: %s (checked before commit: UPDATE and DELETE on every mapped table still pass)", cfg.Source.Publication, verb)
	if pub.Plan.Server < postgres.ColumnListVersion {
		say("notice: PostgreSQL %d has no publication column lists or row filters (15+): every column and row of the mapped tables leaves the server; the connector drops the unmapped columns and evaluates where: itself (see the notes in the SQL)", pub.Plan.Server/10000)
	}
	role := "baitoru_cdc"
	if pc, err := pgconn.ParseConfig(cfg.Source.DSN); err == nil && pc.User != "" {
		role = pc.User
	}
	records, err := dba.ApplyRecords(ctx, conn, dba.RecordsOptions{Role: role, DryRun: dryRun})
	if errors.As(err, &pe) {
		return &exitError{code: 1, msg: "setup: schema " + postgres.Schema + ": " + err.Error() + "\nthe publication was " + string(pub.Action) + "; nothing else was changed."}
	}
	if err != nil {
		return fmt.Errorf("setup: schema %s: %w", postgres.Schema, err)
	}
	tableList := strings.Join(dba.RecordTables(), ", ")
	switch {
	case len(records.Statements) == 0:
		say("records: schema %s and its tables (%s) exist, with %s's grants; unchanged", postgres.Schema, tableList, role)
	case dryRun:
		say("records: schema %s and its tables (%s): %d %s would run", postgres.Schema, tableList, len(records.Statements), countNoun(len(records.Statements), "statement", "statements"))
	default:
		say("records: schema %s and its tables (%s): %d %s run", postgres.Schema, tableList, len(records.Statements), countNoun(len(records.Statements), "statement", "statements"))
	}
	if records.Migrated {
		say("records: the gaps of %s (an earlier version's table) %s into %s", postgres.LegacyGapTable, map[bool]string{true: "would be moved", false: "moved"}[dryRun], postgres.GapTable)
	}
	if records.NoRole && !dryRun {
		say("records: role %s does not exist: its grants were not run; create it (the script's role comments), then run setup again", role)
	}
	objs := backfillObjects(cfg)
	var bf *dba.BackfillResult
	if !postgres.Supports(pub.Plan.Server, postgres.FeatureBackfill) {
		say("backfill: not set up: PostgreSQL %d cannot carry the backfill's watermarks (pgoutput's messages option is 14+); streaming is not affected", pub.Plan.Server/10000)
	} else {
		bf, err = dba.ApplyBackfill(ctx, conn, objs, dryRun)
		if errors.As(err, &pe) {
			return &exitError{code: 1, msg: "setup: backfill objects: " + err.Error() + "\nthe publication was " + string(pub.Action) + "; nothing else was changed."}
		}
		if err != nil {
			return fmt.Errorf("setup: backfill objects: %w", err)
		}
		switch {
		case len(bf.Statements) == 0:
			say("backfill: schema %s, its tables and publication %s exist; unchanged", objs.Schema, objs.Publication)
		case dryRun:
			say("backfill: schema %s, its tables and publication %s: %d %s would run", objs.Schema, objs.Publication, len(bf.Statements), countNoun(len(bf.Statements), "statement", "statements"))
		default:
			say("backfill: schema %s, its tables and publication %s: %d %s run", objs.Schema, objs.Publication, len(bf.Statements), countNoun(len(bf.Statements), "statement", "statements"))
		}
	}
	exists, err := postgres.LookupSlot(ctx, conn, cfg.Source.Slot)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if exists == nil && !dryRun {
		say("slot %s: creating; this waits until the transactions running now have finished (if it hangs, look for long transactions in pg_stat_activity)", cfg.Source.Slot)
	}
	slot, err := dba.EnsureSlot(ctx, conn, cfg.Source.Slot, dryRun)
	if err != nil {
		err = explainDBA(err, cfg, "setup")
		if pub.Action != dba.PublicationUnchanged && !dryRun {
			err = fmt.Errorf("%w (the publication was %s)", err, pub.Action)
		}
		return fmt.Errorf("setup: %w", err)
	}
	switch {
	case slot.Action == dba.SlotExists:
		say("slot %s: exists (pgoutput, confirmed up to %s); unchanged", cfg.Source.Slot, slot.Slot.ConfirmedFlush)
	case dryRun:
		say("slot %s: would be created", cfg.Source.Slot)
	default:
		say("slot %s: created at %s", cfg.Source.Slot, slot.Slot.ConfirmedFlush)
	}
	tables, err := dba.ReadTables(ctx, conn, pub.Plan.Server, names)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	writeScript(out, scriptInput{
		file: file, db: db, cfg: cfg, role: role, dryRun: dryRun,
		pub: pub, slot: slot, identity: dba.IdentityNotes(mappings, tables), records: records,
		backfill: bf, objs: objs,
	})
	switch {
	case dryRun:
		say("dry run done: nothing was changed; the SQL above is what setup would run")
	case pub.Action == dba.PublicationUnchanged && slot.Action == dba.SlotExists && len(records.Statements) == 0 && (bf == nil || len(bf.Statements) == 0):
		say("nothing changed: publication %s and slot %s already match the config", cfg.Source.Publication, cfg.Source.Slot)
	default:
		say("done; next: baitoru-cdc check --config %s", file)
	}
	return nil
}

type scriptInput struct {
	file, db, role string
	cfg            *config.Config
	dryRun         bool
	pub            *dba.PublicationResult
	slot           *dba.SlotResult
	identity       []string
	records        *dba.RecordsResult
	backfill       *dba.BackfillResult // nil: not set up (PostgreSQL < 14)
	objs           dba.BackfillObjects
}

// writeScript prints what setup ran (or would run) as a SQL script a DBA
// can review and run with psql: comments, then the statements.
func writeScript(w io.Writer, in scriptInput) {
	p := in.pub.Plan
	major := p.Server / 10000
	fmt.Fprintf(w, "-- %s\n", dba.CommentSafe(fmt.Sprintf("baitoru-cdc setup: database %s (PostgreSQL %d), publication %s, slot %s.", in.db, major, in.cfg.Source.Publication, in.cfg.Source.Slot)))
	if in.dryRun {
		fmt.Fprintf(w, "-- Dry run: checked in a transaction that was rolled back; nothing was changed.\n")
		fmt.Fprintf(w, "-- To apply: baitoru-cdc setup --config %s (or run this script with psql).\n", in.file)
	}
	comment := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(w, "--\n-- %s\n", title)
		for _, l := range lines {
			fmt.Fprintf(w, "--   %s\n", dba.CommentSafe(l))
		}
	}
	roleNotes := dba.RoleNotes(in.role, in.db, p, in.pub.FilterColumns)
	if in.backfill != nil {
		roleNotes = append(roleNotes, fmt.Sprintf("(in schema %s, setup grants it itself what it needs once the role exists: its records, below, and backfill, next; run setup again after creating it)", postgres.Schema))
		roleNotes = append(roleNotes, dba.BackfillRoleNotes(in.objs, in.role)...)
	} else {
		roleNotes = append(roleNotes, fmt.Sprintf("(setup grants it what it needs on its records in schema %s, below, once the role exists: run setup again after creating it)", postgres.Schema))
	}
	comment("The connector's role (create it yourself; setup does not; run it as this role, not a superuser):", roleNotes)
	if in.backfill != nil {
		comment("The role that requests backfills (the sink's links API, `backfill start`; optional, least privilege):",
			dba.RequesterNotes(in.objs, in.db))
	}
	comment("Replica identity (tables mapped with update or delete):", in.identity)
	var notes []string
	for _, t := range p.Tables {
		if len(t.Added) > 0 {
			notes = append(notes, fmt.Sprintf("%s: the column list also carries %s, its replica identity (the publication publishes %s, and PostgreSQL requires it); the connector does not publish it.",
				t.Table, strings.Join(t.Added, ", "), strings.Join(p.Operations, ", ")))
		}
	}
	notes = append(notes, p.Notes...)
	if len(in.pub.Unprobed) > 0 {
		notes = append(notes, "UPDATE/DELETE not probed with EXPLAIN on "+strings.Join(in.pub.Unprobed, ", ")+" (this role may not update them); the catalog rules were checked.")
	}
	if in.slot.WALLevel != "" && in.slot.WALLevel != "logical" {
		notes = append(notes, "wal_level is "+in.slot.WALLevel+": the slot below cannot be created until ALTER SYSTEM SET wal_level = logical and a restart of PostgreSQL.")
	}
	comment("Notes:", notes)
	fmt.Fprintln(w)

	switch {
	case len(in.pub.Statements) == 0:
		fmt.Fprintf(w, "-- Publication %s matches the config: nothing to do.\n", p.Publication)
	default:
		fmt.Fprintf(w, "BEGIN;\n\n")
		for _, st := range in.pub.Statements {
			fmt.Fprintf(w, "-- %s\n%s;\n\n", dba.CommentSafe(st.Comment), st.SQL)
		}
		fmt.Fprintf(w, "COMMIT;\n")
	}
	fmt.Fprintln(w)
	switch {
	case len(in.records.Statements) == 0:
		fmt.Fprintf(w, "-- Schema %s and its tables exist, with the grants of %s: nothing to do.\n", postgres.Schema, in.role)
	default:
		fmt.Fprintf(w, "BEGIN;\n\n")
		for _, st := range in.records.Statements {
			if in.records.NoRole && !in.dryRun && strings.HasPrefix(st.SQL, "GRANT ") {
				fmt.Fprintf(w, "-- %s\n-- not run: role %s does not exist; run setup again once it does:\n-- %s;\n\n", dba.CommentSafe(st.Comment), dba.CommentSafe(in.role), dba.CommentSafe(st.SQL))
				continue
			}
			fmt.Fprintf(w, "-- %s\n%s;\n\n", dba.CommentSafe(st.Comment), st.SQL)
		}
		fmt.Fprintf(w, "COMMIT;\n")
	}
	fmt.Fprintln(w)
	if in.backfill != nil {
		switch {
		case len(in.backfill.Statements) == 0:
			fmt.Fprintf(w, "-- Online backfill: schema %s, its tables and publication %s exist: nothing to do.\n", in.objs.Schema, in.objs.Publication)
		default:
			fmt.Fprintf(w, "BEGIN;\n\n")
			for _, st := range in.backfill.Statements {
				fmt.Fprintf(w, "-- %s\n%s;\n\n", dba.CommentSafe(st.Comment), st.SQL)
			}
			fmt.Fprintf(w, "COMMIT;\n")
		}
		fmt.Fprintln(w)
	}
	switch in.slot.Action {
	case dba.SlotExists:
		fmt.Fprintf(w, "-- Slot %s exists (pgoutput, confirmed up to %s): nothing to do.\n", in.cfg.Source.Slot, in.slot.Slot.ConfirmedFlush)
	default:
		fmt.Fprintf(w, "-- %s\n%s;\n", dba.CommentSafe(in.slot.Statement.Comment), in.slot.Statement.SQL)
	}
	if in.dryRun {
		return
	}
	fmt.Fprintln(w)
	var did []string
	switch in.pub.Action {
	case dba.PublicationCreated:
		did = append(did, "publication "+p.Publication+" created")
	case dba.PublicationAltered:
		did = append(did, "publication "+p.Publication+" altered")
	}
	if len(in.records.Statements) > 0 {
		if onlyGrants(in.records.Statements) {
			did = append(did, "grants to "+in.role+" on the connector's records in schema "+postgres.Schema+" run")
		} else {
			did = append(did, "the connector's records in schema "+postgres.Schema+" set up")
		}
	}
	if in.slot.Action == dba.SlotCreated {
		at := ""
		if in.slot.Slot != nil {
			at = " at " + in.slot.Slot.ConfirmedFlush.String()
		}
		did = append(did, "slot "+in.cfg.Source.Slot+" created"+at)
	}
	if in.backfill != nil && len(in.backfill.Statements) > 0 {
		if onlyGrants(in.backfill.Statements) {
			did = append(did, "grants to "+in.role+" on the backfill's tables in schema "+in.objs.Schema+" run")
		} else {
			did = append(did, "backfill schema "+in.objs.Schema+", its tables, publication "+in.objs.Publication+" and grants set up")
		}
	}
	if len(did) == 0 {
		fmt.Fprintf(w, "-- setup: nothing to do: publication %s and slot %s already match the config.\n", p.Publication, in.cfg.Source.Slot)
	} else {
		fmt.Fprintf(w, "-- setup: done: %s.\n", strings.Join(did, "; "))
	}
}

// onlyGrants reports whether every statement grants a privilege (a second
// setup, run once the connector's role exists, only grants).
func onlyGrants(stmts []dba.Statement) bool {
	for _, st := range stmts {
		if !strings.HasPrefix(strings.TrimSpace(st.SQL), "GRANT ") {
			return false
		}
	}
	return true
}
