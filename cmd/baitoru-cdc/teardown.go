package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
)

// teardownCmd drops the replication slot and the publication. It refuses
// without --yes, and while a connector streams the slot.
func teardownCmd() *cobra.Command {
	var file, dsn string
	var yes bool
	cmd := &cobra.Command{
		Use:   "teardown",
		Short: "Drop the replication slot and the publication (needs --yes)",
		Long: `Drop the replication slot, then the publication, named in the config.

Dropping the slot releases the WAL it retains; changes it has not delivered
are then never streamed. Refuses without --yes, and while a connector
streams the slot (stop it first).`,
		Example: `  baitoru-cdc teardown --config config.yaml --dsn 'postgres://dba@db.internal:5432/baitoru' --yes`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConnectorConfig(file)
			if err != nil {
				return err
			}
			printConfigWarnings(cmd.ErrOrStderr(), cfg)
			if !yes {
				return &exitError{code: 1, msg: fmt.Sprintf("teardown: refusing without --yes: it would drop replication slot %s (changes it has not delivered are then lost) and publication %s",
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
			out := cmd.OutOrStdout()
			if res != nil && res.Slot != nil {
				fmt.Fprintf(out, "dropped replication slot %s (it had confirmed up to %s)\n", cfg.Source.Slot, res.Slot.ConfirmedFlush)
			}
			if res != nil && res.Publication {
				fmt.Fprintf(out, "dropped publication %s\n", cfg.Source.Publication)
			}
			if err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
			if res.Slot == nil && !res.Publication {
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
