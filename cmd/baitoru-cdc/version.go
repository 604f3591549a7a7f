package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/internal/buildinfo"
)

// versionCmd prints which build this is: version (release tag), commit,
// build date, Go version and platform; --json for scripts. `baitoru-cdc
// --version` prints the same line.
func versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Long: `Print which build this is: the version (the release tag, as git describe
gives it), the commit, the build date, the Go version and the platform.
make build and make image stamp them; a binary built otherwise (go build,
go install) says what Go recorded: the module version and the commit.

The first log line of run and sink, and the baitoru_cdc_build_info gauge
on their /metrics, carry the same values.`,
		Example: `  baitoru-cdc version
  baitoru-cdc version --json
  baitoru-cdc --version`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Get()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(in)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "baitoru-cdc "+in.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the build information as JSON")
	return cmd
}
