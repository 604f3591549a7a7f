package dba

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
)

// ErrPrivilege is wrapped by every *PrivilegeError.
var ErrPrivilege = errors.New("privilege missing")

// PrivilegeError is an operation PostgreSQL refused the connected role
// (SQLSTATE 42501) while setting up or tearing down: which role, what it
// may not do, and what it lacks for it. The fix depends on who runs it (the
// connector with source.create, a DBA with setup or teardown): the caller
// says it.
type PrivilegeError struct {
	Role   string
	Action string // e.g. "create publication baitoru_cdc"
	// Lacks says what the role lacks, e.g. "CREATE on database baitoru",
	// "ownership of public.applications (owner: baitoru)".
	Lacks []string
	// Grants are the statements a DBA would run to give it what it lacks,
	// when statements can (CREATE on a database, REPLICATION); nil when it
	// lacks the ownership of something, which a DBA should not hand out.
	Grants []string
	// Message is PostgreSQL's; empty when the operation was refused
	// before PostgreSQL was asked.
	Message string
}

func (e *PrivilegeError) Error() string {
	s := fmt.Sprintf("role %q may not %s", e.Role, e.Action)
	if e.Message != "" {
		s += " (PostgreSQL: " + e.Message + ")"
	}
	if len(e.Lacks) > 0 {
		s += ": it lacks " + strings.Join(e.Lacks, ", ")
	}
	return s
}

// Unwrap returns ErrPrivilege and connector.ErrPermanent.
func (e *PrivilegeError) Unwrap() []error { return []error{ErrPrivilege, connector.ErrPermanent} }

// isPrivilege reports a refusal for lack of privilege (SQLSTATE 42501) and
// returns PostgreSQL's message.
func isPrivilege(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return pgErr.Message, true
	}
	return "", false
}

// publicationPrivilegeError says what the connected role lacks to create
// (or alter) publication pub over tables: CREATE on the database (to
// create), the ownership of every table (and, to alter, of the
// publication). conn must not be in a failed transaction.
func publicationPrivilegeError(ctx context.Context, conn *pgx.Conn, pub string, tables []string, create bool, msg string) error {
	e := &PrivilegeError{Action: "alter publication " + pub, Message: msg}
	if create {
		e.Action = "create publication " + pub
	}
	var db string
	var super, canCreate bool
	if err := conn.QueryRow(ctx, `SELECT current_user, current_database(), rolsuper, has_database_privilege(current_database(), 'CREATE')
		FROM pg_roles WHERE rolname = current_user`).Scan(&e.Role, &db, &super, &canCreate); err != nil {
		return fmt.Errorf("%s: %s; and reading the role's privileges: %w", e.Action, msg, err)
	}
	if super {
		return e
	}
	role := pgx.Identifier{e.Role}.Sanitize()
	if create && !canCreate {
		e.Lacks = append(e.Lacks, "CREATE on database "+db)
		e.Grants = append(e.Grants, "GRANT CREATE ON DATABASE "+pgx.Identifier{db}.Sanitize()+" TO "+role)
	}
	// What it does not own, by owner.
	var owners []string
	owned := map[string][]string{}
	notOwned := func(what, owner string) {
		if _, seen := owned[owner]; !seen {
			owners = append(owners, owner)
		}
		owned[owner] = append(owned[owner], what)
	}
	if !create {
		var owner string
		var owns bool
		err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(pubowner), pg_has_role(pubowner, 'USAGE') FROM pg_publication WHERE pubname = $1`, pub).Scan(&owner, &owns)
		if err == nil && !owns {
			notOwned("publication "+pub, owner)
		}
	}
	for _, t := range tables {
		var owner string
		var owns bool
		err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(relowner), pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass($1)`, QuoteTable(t)).Scan(&owner, &owns)
		if err == nil && !owns {
			notOwned(t, owner)
		}
	}
	for _, o := range owners {
		e.Lacks = append(e.Lacks, "the ownership of "+strings.Join(owned[o], ", ")+" (owner: "+o+")")
	}
	if len(owners) > 0 {
		e.Grants = nil
	}
	return e
}

// replicationPrivilegeError is action on a replication slot refused for
// want of the REPLICATION attribute.
func replicationPrivilegeError(ctx context.Context, conn *pgx.Conn, action, msg string) error {
	e := &PrivilegeError{Action: action, Message: msg}
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&e.Role); err != nil {
		return fmt.Errorf("%s: %s", action, msg)
	}
	e.Lacks = []string{"the REPLICATION attribute"}
	e.Grants = []string{"ALTER ROLE " + pgx.Identifier{e.Role}.Sanitize() + " WITH REPLICATION"}
	return e
}

// publicationOwnerError is dropping publication pub refused: only its
// owner (or a superuser) may.
func publicationOwnerError(ctx context.Context, conn *pgx.Conn, pub, msg string) error {
	e := &PrivilegeError{Action: "drop publication " + pub, Message: msg}
	var owner string
	if err := conn.QueryRow(ctx, `SELECT current_user, coalesce((SELECT pg_get_userbyid(pubowner) FROM pg_publication WHERE pubname = $1), '')`, pub).Scan(&e.Role, &owner); err != nil {
		return fmt.Errorf("drop publication %s: %s", pub, msg)
	}
	if owner != "" {
		e.Lacks = []string{"the ownership of publication " + pub + " (owner: " + owner + ")"}
	}
	return e
}
