package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
)

// explained is an error whose message was rewritten for the person who
// ran the command; errors.Is and errors.As still see the original.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// explainDBA rewrites what PostgreSQL refused while command (run, setup or
// teardown) set up or tore down the publication and the slot, when the
// configuration or the role is the cause: a row filter it refuses, at the
// key and line of the file; a privilege the role lacks, with the fix for
// who runs command. Other errors are returned as they are.
func explainDBA(err error, cfg *config.Config, command string) error {
	var wes dba.WhereErrors
	var we *dba.WhereError
	var pe *dba.PrivilegeError
	switch {
	case errors.As(err, &wes):
		return &explained{msg: whereProblems(cfg, wes), err: err}
	case errors.As(err, &we):
		return &explained{msg: whereProblems(cfg, dba.WhereErrors{we}), err: err}
	case errors.As(err, &pe):
		return &explained{msg: pe.Error() + "; fix: " + privilegeFix(pe, cfg, command), err: err}
	}
	return err
}

// whereProblems locates each refused row filter at its where: key.
func whereProblems(cfg *config.Config, wes dba.WhereErrors) string {
	lines := make([]string, len(wes))
	for i, we := range wes {
		lines[i] = cfg.ProblemAt(wherePath(cfg, we.Table), whereMessage(we)).String()
	}
	return strings.Join(lines, "\n")
}

// whereMessage is what is wrong with a row filter and the fix, as one
// message.
func whereMessage(we *dba.WhereError) string {
	return "PostgreSQL refuses the row filter of " + we.Table + ": " + we.Problem + "; fix: " + we.Fix
}

// wherePath is the key path of table's where:, e.g. "tables[1].where".
func wherePath(cfg *config.Config, table string) string {
	if p := cfg.TablePath(table); p != "" {
		return p + ".where"
	}
	return ""
}

// privilegeFix is what to do about a privilege the role lacks, for who
// runs command.
func privilegeFix(pe *dba.PrivilegeError, cfg *config.Config, command string) string {
	give := ""
	if len(pe.Grants) > 0 {
		give = "give the role what it lacks (as a DBA): " + strings.Join(pe.Grants, "; ")
	}
	setup := "baitoru-cdc setup --config " + cfg.File + " --dsn 'postgres://<dba>@<host>:<port>/<database>'"
	replication := strings.HasSuffix(pe.Action, "replication slot "+cfg.Source.Slot)
	switch {
	case command == "run" && replication:
		return give + " (the connector streams as a replication role)"
	case command == "run":
		fix := "set source.create: false and let a DBA create the publication and the slot with `" + setup + "` (docs/dba.md)"
		if give != "" {
			fix += "; or " + give
		}
		return fix
	default:
		who := "the owner of the mapped tables with CREATE on the database and REPLICATION"
		if command == "teardown" {
			who = "the publication's owner with REPLICATION"
		}
		fix := fmt.Sprintf("run %s as a DBA (a superuser, or %s): add --dsn 'postgres://<dba>@<host>:<port>/<database>'", command, who)
		if give != "" {
			fix += "; or " + give
		}
		return fix
	}
}
