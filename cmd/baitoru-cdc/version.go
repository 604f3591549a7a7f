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
		Example: `  baitoru-cdc version
  baitoru-cdc version --json
  baitoru-cdc --version`,
		Args: cobra.NoArgs,
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
