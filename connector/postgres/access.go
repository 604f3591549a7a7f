package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/internal/pgconnect"
)

// ErrAccessRefused is wrapped by the error of a connection PostgreSQL
// refused for who the connector is (password, role, database, pg_hba.conf,
// a missing privilege such as REPLICATION): retrying cannot help, a person
// must fix the role or the configuration.
var ErrAccessRefused = errors.New("access refused")

// ConnectError returns err, a failed connection to the source database
// with cc (source.dsn), as one line naming what is wrong and the fix
// (pgconnect.Explain). When only a person can fix it, the error is
// permanent and wraps ErrAccessRefused; otherwise (PostgreSQL not
// running, the network) it may be retried. A cancelled ctx returns err as
// it is; nil stays nil.
func ConnectError(ctx context.Context, err error, cc *pgconn.Config) error {
	err = pgconnect.Explain(ctx, err, cc, pgconnect.Source)
	var pe *pgconnect.Error
	if !errors.As(err, &pe) {
		return err
	}
	if pe.Refused {
		return &accessError{msg: pe.Error(), err: err}
	}
	return err
}

// accessError is permanent, and says so only through errors.Is.
type accessError struct {
	msg string
	err error
}

func (e *accessError) Error() string { return e.msg }
func (e *accessError) Unwrap() []error {
	return []error{ErrAccessRefused, connector.ErrPermanent, e.err}
}

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
