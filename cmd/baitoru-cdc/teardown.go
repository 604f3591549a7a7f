package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
)

func qualified(tables []string) []string {
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = postgres.Schema + "." + t
	}
	return out
}

// teardownCmd drops the replication slot and the publication. It refuses
// without --yes, and while a connector streams the slot.
func teardownCmd() *cobra.Command {
	var file, dsn string
	var yes bool
	cmd := &cobra.Command{
		Use:   "teardown",
		Short: "Drop the replication slot and the publication (needs --yes)",
		Long: `Drop the replication slot, then the publication, named in the config, then
the connector's records of that slot in schema baitoru_cdc (the gaps in the
stream and the publication state it saw), printing the gaps it deletes: the
tables and the schema are dropped unless another slot's connector still has
records there, then what
online backfill keeps there: the publication of its requests and, unless
another connector's publication still uses them, its two tables (requests
and progress).

Dropping the slot releases the WAL it retains; changes it has not delivered
are then never streamed. Refuses without --yes, and while a connector
streams the slot (stop it first).`,
		Example: `  baitoru-cdc teardown --config config.yaml --dsn 'postgres://dba@db.internal:5432/baitoru' --yes`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConnectorConfig(file)
			if err != nil {
				return err
			}
			printConfigWarnings(cmd.ErrOrStderr(), cfg)
			if !yes {
				return &exitError{code: 1, msg: fmt.Sprintf("teardown: refusing without --yes: it would drop replication slot %s (changes it has not delivered are then lost), publication %s and the slot's records in schema baitoru_cdc",
					cfg.Source.Slot, cfg.Source.Publication)}
			}
			ctx := cmd.Context()
			conn, err := connectSource(ctx, cfg, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			res, err := dba.Teardown(ctx, conn, cfg.Source.Slot, cfg.Source.Publication)
			if errors.Is(err, dba.ErrSlotActive) {
				return &exitError{code: 1, msg: "teardown: refused, nothing dropped: " + err.Error()}
			}
			if errors.Is(err, dba.ErrPrivilege) && res == nil {
				return &exitError{code: 1, msg: "teardown: refused, nothing dropped: " + explainDBA(err, cfg, "teardown").Error()}
			}
			out := cmd.OutOrStdout()
			if res != nil && res.Slot != nil {
				fmt.Fprintf(out, "dropped replication slot %s (it had confirmed up to %s)\n", cfg.Source.Slot, res.Slot.ConfirmedFlush)
			}
			if res != nil && res.Publication {
				fmt.Fprintf(out, "dropped publication %s\n", cfg.Source.Publication)
			}
			if err != nil {
				return fmt.Errorf("teardown: %w", explainDBA(err, cfg, "teardown"))
			}
			objs := backfillObjects(cfg)
			bf, err := dba.TeardownBackfill(ctx, conn, objs, cfg.Source.Slot)
			if err != nil {
				return fmt.Errorf("teardown: backfill objects: %w", err)
			}
			if bf.Publication {
				fmt.Fprintf(out, "dropped publication %s (backfill requests)\n", objs.Publication)
			}
			switch {
			case bf.Tables:
				fmt.Fprintf(out, "dropped the backfill tables %s and %s (requests and progress)\n", objs.Requests(), objs.State())
			case len(bf.Kept) > 0:
				fmt.Fprintf(out, "kept the backfill tables in schema %s: publication %s of another connector uses them; deleted the %d backfill states of slot %s\n",
					objs.Schema, strings.Join(bf.Kept, ", "), bf.Deleted, cfg.Source.Slot)
			}
			rec, err := dba.TeardownRecords(ctx, conn, cfg.Source.Slot)
			if err != nil {
				return fmt.Errorf("teardown: records: %w", err)
			}
			for _, g := range rec.Gaps {
				to := "still open"
				if !g.Open() {
					to = "to " + g.ToLSN.String()
				}
				fmt.Fprintf(out, "deleted gap %d of %s (%s) from %s %s: if its changes were not re-sent (backfill), they are missing downstream\n", g.ID, g.Table, g.Reason, g.FromLSN, to)
			}
			switch {
			case rec.Dropped:
				fmt.Fprintf(out, "dropped the connector's records (%s)\n", strings.Join(qualified(dba.RecordTables()), ", "))
				if rec.SchemaDropped {
					fmt.Fprintf(out, "dropped schema %s\n", postgres.Schema)
				} else {
					fmt.Fprintf(out, "kept schema %s: something else is in it\n", postgres.Schema)
				}
			case len(rec.Kept) > 0:
				fmt.Fprintf(out, "kept the connector's records in schema %s: slot %s (another connector of this database) has records there; deleted those of slot %s\n",
					postgres.Schema, strings.Join(rec.Kept, ", "), cfg.Source.Slot)
			}
			if res.Slot == nil && !res.Publication && !rec.Dropped && len(rec.Gaps) == 0 && !bf.Publication && !bf.Tables {
				fmt.Fprintf(out, "nothing to drop: no replication slot %s, no publication %s\n", cfg.Source.Slot, cfg.Source.Publication)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "config.yaml", "configuration file")
	cmd.Flags().BoolVar(&yes, "yes", false, "really drop the slot and the publication")
	cmd.Flags().StringVar(&dsn, "dsn", "", "connect with this DSN instead of source.dsn (e.g. a DBA's role)")
	return cmd
}
