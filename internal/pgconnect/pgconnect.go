// Package pgconnect explains why a connection to PostgreSQL could not be
// made, in the terms of the configuration that asked for it: what is
// wrong, and the fix. The connector (source.*), the DBA commands (--dsn)
// and the sink (sink.*) report every failed connection through it, so a
// wrong password, port, database or role reads the same everywhere and
// never as the driver's multi-line text.
package pgconnect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Settings names where a connection is configured, as the user reads it.
type Settings struct {
	// DSN is the key or flag of the connection string, e.g. "source.dsn".
	DSN string
	// Password is where its password comes from, e.g. "source.password
	// (the shipped config.yaml reads it from BAITORU_DB_PASSWORD)".
	Password string
}

// Source is the connector's database (run, check, setup, teardown,
// backfill without --dsn); Sink the sink's own database; Flag a --dsn
// given on the command line.
var (
	Source = Settings{DSN: "source.dsn", Password: "source.password (the shipped config.yaml reads it from BAITORU_DB_PASSWORD)"}
	Sink   = Settings{DSN: "sink.dsn", Password: "sink.password (the shipped config.yaml reads it from SINK_DB_PASSWORD)"}
	Flag   = Settings{DSN: "--dsn", Password: "the password in --dsn, PGPASSWORD or ~/.pgpass"}
)

// Error is a connection PostgreSQL (or the network) refused, explained.
// It wraps the driver's error, so errors.Is and errors.As still see it
// (context.Canceled included).
type Error struct {
	// What names the database (host, port, database, role) and what
	// went wrong; Fix says what to change, and where.
	What, Fix string
	// Refused: only a person can fix it (password, role, database,
	// pg_hba.conf, a privilege, TLS settings); retrying cannot help.
	Refused bool
	err     error
}

func (e *Error) Error() string { return e.What + "; fix: " + e.Fix }
func (e *Error) Unwrap() error { return e.err }

// BadDSN is a connection string configured by s that cannot be parsed:
// the parser's words, which redact must clear of any password, and the
// two forms a DSN takes.
func BadDSN(err error, s Settings, redact func(string) string) *Error {
	return &Error{err: err, Refused: true,
		What: fmt.Sprintf("%s: %s", s.DSN, redact(err.Error())),
		Fix: fmt.Sprintf("write %s as a URL, postgres://USER@HOST:5432/DATABASE?sslmode=verify-full, or as keywords, host=HOST port=5432 user=USER dbname=DATABASE; the password: %s",
			s.DSN, s.Password)}
}

// Explain returns err, a failed connection attempt with cc (nil when
// unknown) as configured by s, as an *Error; nil when err is nil. A
// cancelled or timed-out ctx of the caller is returned as it is: nothing
// is wrong with the connection then. The result never holds a password.
func Explain(ctx context.Context, err error, cc *pgconn.Config, s Settings) error {
	if err == nil {
		return nil
	}
	if ctx != nil && ctx.Err() != nil {
		return err
	}
	var host, db, role string
	var port uint16
	replication := false
	if cc != nil {
		host, port, db, role = cc.Host, cc.Port, cc.Database, cc.User
		replication = cc.RuntimeParams["replication"] != ""
	}
	var ce *pgconn.ConnectError
	if cc == nil && errors.As(err, &ce) && ce.Config != nil {
		host, port, db, role = ce.Config.Host, ce.Config.Port, ce.Config.Database, ce.Config.User
	}
	where := fmt.Sprintf("PostgreSQL at %s", hostPort(host, port))
	e := &Error{err: err, Refused: true}
	var pgErr *pgconn.PgError
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &pgErr):
		explainServer(e, pgErr, where, db, role, replication, cc, s)
	case errors.As(err, &dnsErr):
		e.What = fmt.Sprintf("cannot find host %q (DNS: %s)", host, dnsErr.Err)
		e.Fix = fmt.Sprintf("check the host in %s", s.DSN)
		e.Refused = !dnsErr.IsTemporary && !dnsErr.IsTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		e.What = fmt.Sprintf("nothing accepts connections at %s", hostPort(host, port))
		e.Fix = fmt.Sprintf("check the host and port in %s, and that PostgreSQL is running and listens there (listen_addresses, port in postgresql.conf)", s.DSN)
		e.Refused = false
	case errors.Is(err, syscall.ENOENT) && strings.HasPrefix(host, "/"):
		e.What = fmt.Sprintf("no PostgreSQL socket in %s for port %d", host, port)
		e.Fix = fmt.Sprintf("check the host (socket directory) and port in %s, and that PostgreSQL is running", s.DSN)
		e.Refused = false
	case isTimeout(err):
		e.What = fmt.Sprintf("no answer from %s in time", hostPort(host, port))
		e.Fix = fmt.Sprintf("check the host and port in %s, and that no firewall or security group drops the connection (connect_timeout= in the DSN waits longer)", s.DSN)
		e.Refused = false
	case errors.As(err, &unknownCA), errors.As(err, &hostnameErr), errors.As(err, &verifyErr):
		e.What = fmt.Sprintf("%s presents a TLS certificate that is not trusted: %s", where, certProblem(err))
		e.Fix = fmt.Sprintf("give the CA's certificate with sslrootcert= in %s (sslmode=verify-full checks the host name too), or sslmode=require to encrypt without verifying", s.DSN)
	case strings.Contains(err.Error(), "server refused TLS connection"):
		e.What = fmt.Sprintf("%s does not offer TLS, and the sslmode of %s requires it", where, s.DSN)
		e.Fix = fmt.Sprintf("enable ssl on the server (ssl = on and a certificate in postgresql.conf), or set sslmode=prefer in %s where an unencrypted connection is acceptable", s.DSN)
	default:
		e.What = fmt.Sprintf("cannot connect to %s as %s: %s", describe(host, port, db), role, lastLine(err))
		e.Fix = fmt.Sprintf("check %s (host, port, database, user) and %s, pg_hba.conf, and that PostgreSQL is running", s.DSN, s.Password)
		e.Refused = false
	}
	return e
}

// explainServer fills e from an error PostgreSQL sent while the
// connection was being made.
func explainServer(e *Error, pgErr *pgconn.PgError, where, db, role string, replication bool, cc *pgconn.Config, s Settings) {
	switch pgErr.Code {
	case "28P01": // invalid_password
		if cc != nil && cc.Password == "" {
			e.What = fmt.Sprintf("%s asks role %q for a password, and none is set", where, role)
			e.Fix = fmt.Sprintf("set %s", s.Password)
			return
		}
		e.What = fmt.Sprintf("%s refused the password of role %q (or there is no such role)", where, role)
		e.Fix = fmt.Sprintf("check the user in %s and %s; a DBA can set it: ALTER ROLE %s PASSWORD '...'", s.DSN, s.Password, quoteIdent(role))
	case "28000": // invalid_authorization_specification
		msg := pgErr.Message
		switch {
		case strings.Contains(msg, "pg_hba.conf"):
			target := db
			if replication {
				target = "replication"
			}
			e.What = fmt.Sprintf("%s does not let role %q in from this host: %s", where, role, msg)
			e.Fix = fmt.Sprintf("a DBA adds a line for it to pg_hba.conf before any line that rejects it, e.g. `host %s %s <this host's address>/32 scram-sha-256` (the connector needs one for its database and one for replication), and reloads: SELECT pg_reload_conf()", target, role)
		case strings.Contains(msg, "does not exist"):
			e.What = fmt.Sprintf("%s has no role %q", where, role)
			e.Fix = fmt.Sprintf("check the user in %s, or have a DBA create the role (`baitoru-cdc setup --dry-run` prints the SQL for the connector's)", s.DSN)
		case strings.Contains(msg, "not permitted to log in"):
			e.What = fmt.Sprintf("role %q may not log in to %s", role, where)
			e.Fix = fmt.Sprintf("a DBA runs ALTER ROLE %s LOGIN", quoteIdent(role))
		default:
			e.What = fmt.Sprintf("%s refused role %q: %s", where, role, msg)
			e.Fix = fmt.Sprintf("check the user in %s and pg_hba.conf", s.DSN)
		}
	case "3D000": // invalid_catalog_name
		e.What = fmt.Sprintf("%s has no database %q", where, db)
		e.Fix = fmt.Sprintf("check the database name in %s (the path after host:port), or have a DBA create it: CREATE DATABASE %s OWNER %s", s.DSN, quoteIdent(db), quoteIdent(role))
	case "42501": // insufficient_privilege
		if replication {
			e.What = fmt.Sprintf("role %q may not open a replication connection to %s: %s", role, where, pgErr.Message)
			e.Fix = fmt.Sprintf("a DBA runs ALTER ROLE %s WITH REPLICATION (docs/dba.md)", quoteIdent(role))
			return
		}
		e.What = fmt.Sprintf("role %q may not connect to database %q on %s: %s", role, db, where, pgErr.Message)
		e.Fix = fmt.Sprintf("a DBA runs GRANT CONNECT ON DATABASE %s TO %s", quoteIdent(db), quoteIdent(role))
	case "53300": // too_many_connections
		e.What = fmt.Sprintf("%s has no connection left for role %q: %s", where, role, pgErr.Message)
		e.Fix = "close idle connections, or have a DBA raise max_connections (or the role's CONNECTION LIMIT)"
		e.Refused = false
	case "57P03": // cannot_connect_now
		e.What = fmt.Sprintf("%s is not accepting connections yet: %s", where, pgErr.Message)
		e.Fix = "wait until it has started (or finished recovery); the connection is retried"
		e.Refused = false
	default:
		e.What = fmt.Sprintf("%s refused the connection of role %q to database %q: %s", where, role, db, pgErr.Message)
		e.Fix = fmt.Sprintf("check %s and %s", s.DSN, s.Password)
		if pgErr.Hint != "" {
			e.Fix = pgErr.Hint
		}
		e.Refused = strings.HasPrefix(pgErr.Code, "28")
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func certProblem(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	switch {
	case errors.As(err, &hostnameErr):
		return hostnameErr.Error()
	case errors.As(err, &unknownCA):
		return "signed by an authority this machine does not trust"
	}
	return lastLine(err)
}

func hostPort(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("%s (port %d)", host, port)
	}
	return net.JoinHostPort(host, fmt.Sprint(port))
}

func describe(host string, port uint16, db string) string {
	return fmt.Sprintf("database %q at %s", db, hostPort(host, port))
}

// lastLine is the driver's most specific line: a connection attempt
// joins the errors of each try (TLS first, then plain) line by line.
func lastLine(err error) string {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		err = ce.Unwrap()
	}
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
