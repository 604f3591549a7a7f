package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// A mistyped command name, a stray argument or a missing one ends with an
// exitError that says what was typed, what was meant where a command name
// is close (also one level down: "strat" → "backfill start"), and where
// the commands are listed. Cobra's own messages ("accepts 1 arg(s),
// received 0") name neither the argument nor the fix.

// groupCommand makes cmd, a command that only groups subcommands, show its
// help when called alone and refuse an unknown subcommand with a "did you
// mean" hint (cobra would print the help and exit 0 for `backfill lst`).
func groupCommand(cmd *cobra.Command) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		return unknownCommand(c, args)
	}
}

// unknownCommand is the error for `parent args...` when parent has no
// subcommand args[0]. A suggestion repeats the arguments after it
// ("backfil list" → "baitoru-cdc backfill list").
func unknownCommand(parent *cobra.Command, args []string) error {
	name, rest := args[0], strings.Join(args[1:], " ")
	msg := fmt.Sprintf("%s: unknown command %q", parent.CommandPath(), name)
	if s := suggestCommands(parent, name); len(s) > 0 {
		for i := range s {
			s[i] = fmt.Sprintf("%q", strings.TrimSpace(s[i]+" "+rest))
		}
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &exitError{code: 1, msg: msg + fmt.Sprintf(" (%s --help lists the commands)", parent.CommandPath())}
}

// suggestCommands returns the command lines close to name (a
// prefix, or at most two edits away) among parent's subcommands and, when
// none is, among theirs.
func suggestCommands(parent *cobra.Command, name string) []string {
	var out []string
	for _, s := range suggestionsFor(parent, name) {
		out = append(out, parent.CommandPath()+" "+s)
	}
	if len(out) > 0 {
		return out
	}
	for _, child := range parent.Commands() {
		if !child.HasAvailableSubCommands() {
			continue
		}
		for _, s := range suggestionsFor(child, name) {
			out = append(out, child.CommandPath()+" "+s)
		}
	}
	return out
}

func suggestionsFor(c *cobra.Command, name string) []string {
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	return c.SuggestionsFor(name)
}

// noArgs refuses any argument: the command takes only flags.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return &exitError{code: 1, msg: fmt.Sprintf("%s: unexpected argument %q: the command takes only flags, written --name value (see %s --help)",
		cmd.CommandPath(), args[0], cmd.CommandPath())}
}

// oneArg requires exactly one argument, what (e.g. "the backfill's ID, as
// backfill list shows it"); the error shows the command's first example.
func oneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 1:
			return nil
		case len(args) == 0:
			msg := fmt.Sprintf("%s: missing %s", cmd.CommandPath(), what)
			if ex := strings.TrimSpace(strings.SplitN(cmd.Example, "\n", 2)[0]); ex != "" {
				msg += ", e.g. " + ex
			}
			return &exitError{code: 1, msg: msg}
		default:
			return &exitError{code: 1, msg: fmt.Sprintf("%s: takes one argument, %s; got %d (%s) (see %s --help)",
				cmd.CommandPath(), what, len(args), strings.Join(args, " "), cmd.CommandPath())}
		}
	}
}

// flagProblem is a flag error in the user's words: a value of the wrong
// kind names the flag, the value and what it takes, not the parser
// ("strconv.ParseInt: parsing "abc": invalid syntax").
func flagProblem(err error) string {
	var iv *pflag.InvalidValueError
	if !errors.As(err, &iv) {
		return err.Error()
	}
	takes := "a value of its type"
	switch iv.GetFlag().Value.Type() {
	case "bool":
		takes = "true or false (or the flag alone for true)"
	case "int", "int64", "int32", "uint", "uint64":
		takes = "a whole number"
	case "duration":
		takes = `a duration such as "10s", "500ms" or "1m30s"`
	}
	return fmt.Sprintf("--%s %q: not %s", iv.GetFlag().Name, iv.GetValue(), takes)
}
