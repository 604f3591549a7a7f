package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
)

// ErrAccessRefused is wrapped by the error of a connection PostgreSQL
// refused for who the connector is (password, pg_hba.conf, a missing
// privilege such as REPLICATION): retrying cannot help, a person must fix
// the role or the configuration.
var ErrAccessRefused = errors.New("access refused")

// AccessError returns err as a permanent error naming what PostgreSQL
// refused and the fix, when err is an authentication or authorisation
// failure (SQLSTATE 28P01, 28000, 42501); otherwise nil. role is the role
// of source.dsn. Call it before redacting err.
func AccessError(err error, role string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil
	}
	var what, fix string
	switch pgErr.Code {
	case "28P01":
		what = fmt.Sprintf("PostgreSQL refused the password of role %q", role)
		fix = "set source.password (the shipped config.yaml reads BAITORU_DB_PASSWORD) to the role's password, or ALTER ROLE ... PASSWORD as the DBA"
	case "28000":
		what = fmt.Sprintf("PostgreSQL refused the connection of role %q: %s", role, pgErr.Message)
		fix = "check that the role exists and may log in (LOGIN), and that pg_hba.conf has a line for it from this host for the database and for replication connections (docs/dba.md)"
	case "42501":
		what = fmt.Sprintf("role %q lacks a privilege: %s", role, pgErr.Message)
		fix = "ALTER ROLE " + quoteIdent(role) + " WITH REPLICATION, and the grants `baitoru-cdc setup --dry-run` lists (docs/dba.md, The role to create)"
	default:
		return nil
	}
	return &accessError{msg: fmt.Sprintf("%s (SQLSTATE %s); fix: %s", what, pgErr.Code, fix)}
}

// accessError is permanent, and says so only through errors.Is.
type accessError struct{ msg string }

func (e *accessError) Error() string   { return e.msg }
func (e *accessError) Unwrap() []error { return []error{ErrAccessRefused, connector.ErrPermanent} }

func quoteIdent(s string) string {
	out := []byte{'"'}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}
