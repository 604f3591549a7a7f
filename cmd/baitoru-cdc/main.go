// Command baitoru-cdc streams committed changes of Baitoru's PostgreSQL tables
// to AWS SNS (run), delivers them to Kobot (sink), and gives DBAs and ops the
// tools to set it up and check it (setup, check, teardown, validate).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/internal/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	err := withProfiles(func() error { return newRootCmd().ExecuteContext(ctx) })
	os.Exit(exitCode(err))
}

// newRootCmd is the command tree.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "baitoru-cdc",
		Short:         "Change data capture from Baitoru PostgreSQL to SNS, and delivery to Kobot",
		Version:       buildinfo.Get().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("baitoru-cdc {{.Version}}\n")
	// A flag no command knows: say where the flags are listed. Commands
	// inherit it (check has its own, for its exit code).
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// `baitoru-cdc backfil list --config x`: the command name is
		// wrong, not the flag the group command does not know.
		if args := c.Flags().Args(); c.HasAvailableSubCommands() && len(args) > 0 {
			return unknownCommand(c, args)
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %s (see %s --help)", c.CommandPath(), flagProblem(err), c.CommandPath())}
	})
	root.AddCommand(
		runCmd(),
		validateCmd(),
		sinkCmd(),
		setupCmd(),
		checkCmd(),
		teardownCmd(),
		backfillCmd(),
		versionCmd(),
		planCmd(),
	)
	groupCommand(root)
	return root
}

// exitError carries a process exit code chosen by a command (validate: 1 for
// an invalid file; check: 1 warning, 2 critical, 3 unknown). Its message,
// when not empty, is printed to stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "baitoru-cdc:", userMessage(err))
	return 1
}

// userMessage is err's text for people (connector.ErrorText).
func userMessage(err error) string { return connector.ErrorText(err) }
