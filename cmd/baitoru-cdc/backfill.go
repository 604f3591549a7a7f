package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// backfillCmd is `baitoru-cdc backfill start|list|status|cancel`. The
// commands talk to the source database, not to the connector's process: a
// request is a row the running connector reads from its replication stream
// (whichever replica streams the slot), progress is a row it keeps. So
// they work whichever replica is active, across restarts of either side,
// and with a role that may do nothing else (see setup's script).
func backfillCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Re-send the existing rows of a mapped table as read events (start, list, status, cancel)",
		Long: `Re-send rows that already exist as events with op "read" (type <type>.read),
while the connector keeps streaming: a first load, a re-sync after a gap, a
company's history. The running connector (the one streaming the slot) reads
the table in short chunks in primary-key order, interleaved with the live
changes so that no row is ever sent older than a change already sent.

The commands connect to the source database (--dsn, else source.dsn); a role
that may only request backfills is enough (setup's script describes it).`,
		Example: `  baitoru-cdc backfill start --config config.yaml --table public.job_postings --where "company_id = 7"
  baitoru-cdc backfill list --config config.yaml
  baitoru-cdc backfill status --config config.yaml bf-20261206-224445
  baitoru-cdc backfill cancel --config config.yaml bf-20261206-224445`,
	}
	cmd.AddCommand(backfillStartCmd(), backfillListCmd(), backfillStatusCmd(), backfillCancelCmd())
	groupCommand(cmd)
	return cmd
}

type backfillFlags struct{ file, dsn string }

func (f *backfillFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "config", "c", "config.yaml", "configuration file")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "connect as this role instead of source.dsn's (e.g. the requester role)")
}

func backfillStartCmd() *cobra.Command {
	var f backfillFlags
	var table, where, id string
	var gap int64
	var wait bool
	cmd := &cobra.Command{
		Use:   "start (--table SCHEMA.TABLE [--where PREDICATE] | --gap ID [--where PREDICATE])",
		Short: "Request a backfill of a mapped table and follow its progress",
		Long: `Request a backfill of a mapped table, optionally of the rows a predicate
selects (published fields, comparisons, AND, OR, NOT, IN, BETWEEN, IS NULL and
literals: e.g. "company_id = 7", "updated_at >= '2026-12-01'"), then follow its
progress until it ends (a bar on a terminal, a line every few seconds
otherwise). Repeating a start with the same --id changes nothing. Ctrl-C stops
following; the backfill goes on (cancel it with backfill cancel).

--gap ID fills a gap the connector recorded (check lists them as "gap
<table>", with their id): it re-sends the gap's table, every row the mapping
publishes, because the stream does not tell which rows changed inside the
gap; --where narrows it to the rows you know may have changed (e.g. a column
updated_at at or after the gap's start, which the command prints). Its id is
gap-<ID>, so asking twice starts nothing new, and check shows the gap as being
filled, then filled.`,
		Example: `  baitoru-cdc backfill start --config config.yaml --table public.job_postings --where "company_id = 7"
  baitoru-cdc backfill start --config config.yaml --table public.applications --where "applied_at >= '2026-12-01 00:00:00+09'" --id resync-applications
  baitoru-cdc backfill start --config config.yaml --gap 3`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gapSet := cmd.Flags().Changed("gap")
			switch {
			case gapSet && table != "":
				return &exitError{code: 2, msg: "backfill start: --gap names the table itself: give --gap or --table, not both"}
			case gapSet && id != "":
				return &exitError{code: 2, msg: "backfill start: the backfill of a gap has the id gap-<ID>: give --gap or --id, not both"}
			case gapSet && gap <= 0:
				return &exitError{code: 2, msg: fmt.Sprintf("backfill start: --gap %d: a gap's id is a positive whole number, as check lists it (\"gap <table>\" rows)", gap)}
			case !gapSet && table == "":
				return &exitError{code: 2, msg: "backfill start: name the table (--table schema.name) or the gap to fill (--gap ID, as check lists it)"}
			}
			cfg, err := loadConnectorConfig(f.file)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			conn, err := connectSource(ctx, cfg, f.dsn)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			out := cmd.OutOrStdout()
			var g postgres.Gap
			if gapSet {
				var note string
				g, id, note, err = gapBackfill(ctx, conn, cfg.Source.Slot, gap, where)
				if err != nil {
					return &exitError{code: 1, msg: "backfill start: " + err.Error()}
				}
				table = g.Table
				fmt.Fprintln(out, note)
			}
			var names []string
			for _, m := range cfg.Mappings() {
				names = append(names, m.Table)
			}
			if !slices.Contains(names, table) {
				return &exitError{code: 1, msg: fmt.Sprintf("backfill start: table %q is not mapped in %s (mapped: %s)", table, f.file, strings.Join(names, ", "))}
			}
			if err := checkBackfillWhere(ctx, conn, cfg, table, where); err != nil {
				return &exitError{code: 1, msg: "backfill start: " + err.Error()}
			}
			if id == "" {
				id = "bf-" + time.Now().UTC().Format("20060102-150405")
			}
			inserted, err := postgres.RequestBackfill(ctx, conn, postgres.BackfillRequest{ID: id, Table: table, Where: where, Slot: cfg.Source.Slot})
			if err != nil {
				return &exitError{code: 1, msg: "backfill start: " + err.Error()}
			}
			if inserted {
				fmt.Fprintf(out, "backfill %s requested: %s%s\n", id, table, whereText(where))
			} else {
				fmt.Fprintf(out, "backfill %s was already requested: following it\n", id)
			}
			if !wait {
				return nil
			}
			return followBackfill(ctx, conn, out, id, cfg.Source.Slot)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&table, "table", "", "the mapped table, schema.name")
	cmd.Flags().Int64Var(&gap, "gap", 0, "fill the recorded gap with this id (check lists the gaps): re-send its table's rows")
	cmd.Flags().StringVar(&where, "where", "", "only the rows this predicate selects (over published fields)")
	cmd.Flags().StringVar(&id, "id", "", "the backfill's id (default bf-<UTC time>); the same id twice is one backfill")
	cmd.Flags().BoolVar(&wait, "wait", true, "follow the progress until the backfill ends")
	return cmd
}

// gapBackfill checks that gap id of slot can be filled by a backfill and
// returns it, the backfill's id (GapBackfillID: the latest attempt, or a
// new one after a failed or cancelled attempt) and a note for the user
// saying what will be re-sent.
func gapBackfill(ctx context.Context, conn *pgx.Conn, slot string, id int64, where string) (postgres.Gap, string, string, error) {
	g, err := postgres.GapByID(ctx, conn, slot, id)
	if err != nil {
		if errors.Is(err, postgres.ErrNoGap) {
			err = fmt.Errorf("%w (check lists the gaps as \"gap <table>\" with their id)", err)
		}
		return g, "", "", err
	}
	since := g.FromLSN.String()
	if !g.FromTime.IsZero() {
		since += " (" + g.FromTime.Format(time.RFC3339) + ")"
	}
	switch {
	case g.Open():
		return g, "", "", fmt.Errorf("gap %d of %s is still open: %s since %s, so its changes are still not published; align the publication first (baitoru-cdc setup --config ...), then fill the gap", g.ID, g.Table, g.Reason, since)
	case g.Kind == postgres.LossDelete:
		return g, "", "", fmt.Errorf("gap %d of %s lost deletes, which a backfill cannot re-send (it re-sends rows that exist): tell the consumers which rows to check, then delete the gap: DELETE FROM %s WHERE id = %d", g.ID, g.Table, postgres.GapTable, g.ID)
	}
	fills, err := postgres.GapFills(ctx, conn, []postgres.Gap{g})
	if err != nil {
		return g, "", "", err
	}
	attempt := 1
	if f, ok := fills[g.ID]; ok {
		attempt = f.Attempt
		if f.Status == string(connector.BackfillFailed) || f.Status == string(connector.BackfillCancelled) {
			attempt++
		}
	}
	until := g.ToLSN.String()
	if !g.ToTime.IsZero() {
		until += " (" + g.ToTime.Format(time.RFC3339) + ")"
	}
	note := fmt.Sprintf("gap %d of %s: %s, changes from %s to %s were not published.", g.ID, g.Table, g.Reason, since, until)
	if where == "" {
		note += "\nEvery row of the table the mapping publishes is re-sent: the stream does not tell which rows changed in the gap."
		if !g.FromTime.IsZero() {
			note += fmt.Sprintf(" To re-send fewer, narrow it to rows you know changed since, e.g. --where \"updated_at >= '%s'\" (a column of yours).", g.FromTime.Format("2006-01-02 15:04:05Z07:00"))
		}
	} else {
		note += "\nOnly the rows --where selects are re-sent: make sure it covers every row changed since " + since + "."
	}
	return g, postgres.GapBackfillID(g.ID, attempt), note, nil
}

func whereText(where string) string {
	if where == "" {
		return " (every row)"
	}
	return " where " + where
}

// notTakenHint is how long a followed backfill may stay requested before
// start says that no connector takes it.
var notTakenHint = 15 * time.Second

// followBackfill prints the progress of id until it ends: a bar redrawn in
// place on a terminal, a line every 5 seconds otherwise.
func followBackfill(ctx context.Context, conn *pgx.Conn, out io.Writer, id, slot string) error {
	tty := isTerminal(out)
	last := time.Time{}
	began, hinted := time.Now(), false
	for {
		list, err := postgres.Backfills(ctx, conn, id)
		if err != nil {
			return fmt.Errorf("backfill status: %w", err)
		}
		st := list[0]
		line := progressLine(st)
		if !hinted && st.Status == "requested" && time.Since(began) >= notTakenHint {
			// Nobody runs it yet: say who would, once.
			hinted = true
			if tty {
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "backfill %s: not taken yet after %s: the connector that streams slot %s runs it, and none does now (start baitoru-cdc run; check shows the slot active or inactive). Ctrl-C stops following; the request stays.\n", id, notTakenHint, slot)
		}
		switch {
		case tty:
			fmt.Fprintf(out, "\r\033[K%s", line)
		case time.Since(last) >= 5*time.Second || st.Status != connector.BackfillRunning && st.Status != "requested":
			fmt.Fprintln(out, line)
			last = time.Now()
		}
		switch connector.BackfillStatus(st.Status) {
		case connector.BackfillDone, connector.BackfillCancelled:
			if tty {
				fmt.Fprintln(out)
			}
			return nil
		case connector.BackfillFailed:
			if tty {
				fmt.Fprintln(out)
			}
			return &exitError{code: 1, msg: "backfill " + id + " failed: " + st.Error}
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(out)
			}
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// progressLine is "[#####-----] 1200/4000 rows  850 rows/s  ETA 3s  running".
func progressLine(st *connector.BackfillState) string {
	const width = 24
	done := st.RowsDone
	total := max(st.RowsEstimated, done)
	bar := strings.Repeat("-", width)
	if total > 0 {
		n := int(int64(width) * done / total)
		if st.Status == connector.BackfillDone {
			n = width
		}
		bar = strings.Repeat("#", n) + strings.Repeat("-", width-n)
	}
	rate := 0.0
	if el := st.UpdatedAt.Sub(st.StartedAt).Seconds(); el > 0 {
		rate = float64(done) / el
	}
	eta := "-"
	if rate > 0 && total > done && st.Status == connector.BackfillRunning {
		eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
	}
	s := fmt.Sprintf("[%s] %d/%d rows  %.0f rows/s  ETA %s  %s", bar, done, total, rate, eta, st.Status)
	if st.Error != "" {
		s += ": " + st.Error
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func backfillListCmd() *cobra.Command {
	var f backfillFlags
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List backfills, newest first",
		Example: `  baitoru-cdc backfill list --config config.yaml`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withBackfills(cmd, f, "", func(list []*connector.BackfillState) {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTABLE\tFILTER\tSTATUS\tROWS\tESTIMATED\tUPDATED")
				for _, st := range list {
					filter := st.Where
					if st.KeyField != "" {
						filter = strings.TrimSpace(filter + " " + st.KeyField + "=" + st.KeyValue)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", st.ID, st.Table, filter, st.Status, st.RowsDone, st.RowsEstimated, st.UpdatedAt.UTC().Format(time.RFC3339))
				}
				tw.Flush()
			})
		},
	}
	f.add(cmd)
	return cmd
}

func backfillStatusCmd() *cobra.Command {
	var f backfillFlags
	cmd := &cobra.Command{
		Use:     "status ID",
		Short:   "Show one backfill's progress",
		Example: `  baitoru-cdc backfill status --config config.yaml bf-20261206-224445`,
		Args:    oneArg("the backfill's ID (backfill list shows them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withBackfills(cmd, f, args[0], func(list []*connector.BackfillState) {
				st := list[0]
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "backfill %s: %s%s\n", st.ID, st.Table, whereText(st.Where))
				fmt.Fprintln(out, progressLine(st))
				fmt.Fprintf(out, "chunks %d, chunk size %d, requested by %s at %s\n", st.Chunks, st.ChunkSize, st.RequestedBy, st.RequestedAt.UTC().Format(time.RFC3339))
			})
		},
	}
	f.add(cmd)
	return cmd
}

func backfillCancelCmd() *cobra.Command {
	var f backfillFlags
	cmd := &cobra.Command{
		Use:     "cancel ID",
		Short:   "Cancel a backfill (rows already sent stay sent)",
		Example: `  baitoru-cdc backfill cancel --config config.yaml bf-20261206-224445`,
		Args:    oneArg("the backfill's ID (backfill list shows them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConnectorConfig(f.file)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			conn, err := connectSource(ctx, cfg, f.dsn)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			if err := postgres.CancelBackfill(ctx, conn, args[0]); err != nil {
				return &exitError{code: 1, msg: "backfill cancel: " + err.Error()}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backfill %s: cancel requested; the connector stops it before its next chunk\n", args[0])
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func withBackfills(cmd *cobra.Command, f backfillFlags, id string, show func([]*connector.BackfillState)) error {
	cfg, err := loadConnectorConfig(f.file)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	conn, err := connectSource(ctx, cfg, f.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	list, err := postgres.Backfills(ctx, conn, id)
	if errors.Is(err, postgres.ErrNoBackfill) {
		return &exitError{code: 1, msg: err.Error()}
	}
	if err != nil {
		return &exitError{code: 1, msg: "backfill: " + err.Error()}
	}
	show(list)
	return nil
}

// checkBackfillWhere refuses, before anything is requested, a --where the
// connector would refuse when it takes the backfill up (which the person
// asking would only see later, in backfill status): a predicate outside
// the grammar or naming a field table's events do not carry. The fields
// are the mapping's; a mapping that lists no columns publishes every column
// of the table, read from the catalog (no privilege on the table needed).
func checkBackfillWhere(ctx context.Context, conn *pgx.Conn, cfg *config.Config, table, where string) error {
	if strings.TrimSpace(where) == "" {
		return nil
	}
	fields := map[string]string{}
	var names []string // the published fields, in the mapping's order
	for _, m := range cfg.Mappings() {
		if m.Table != table {
			continue
		}
		for _, c := range m.Columns {
			fields[c.Name], fields[c.Column] = c.Column, c.Column
			names = append(names, c.Name)
		}
	}
	if len(fields) == 0 {
		schema, name, _ := strings.Cut(table, ".")
		rows, err := conn.Query(ctx, `SELECT a.attname FROM pg_attribute a
			JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, schema, name)
		if err != nil {
			return fmt.Errorf("columns of %s: %w", table, err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("columns of %s: %w", table, err)
		}
		for _, c := range cols {
			fields[c] = c
		}
		names = cols
	}
	if _, err := postgres.CompileWhere(where, fields); err != nil {
		return fmt.Errorf("--where: %s; fix: write a condition over the fields %s publishes (%s) with =, <>, <, <=, >, >=, IN, BETWEEN, IS NULL, AND, OR, NOT and literals ('text', 42, TRUE)",
			strings.TrimSuffix(err.Error(), ": "+connector.ErrBackfillRefused.Error()), table, strings.Join(names, ", "))
	}
	return nil
}
