package dba

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
)

// A row filter (a mapping's where:) reaches PostgreSQL in three places: in
// `SELECT FROM ONLY table WHERE (filter)`, planned to test it (check, setup,
// run) and to compare it with the publication's; in CREATE or ALTER
// PUBLICATION (15+), which adds rules of its own (only columns, constants,
// built-in operators and immutable built-in functions); and, before 15, in
// the connector's own evaluation. What PostgreSQL refuses there is
// translated into a WhereError: what is wrong with the expression, where in
// it, and the fix.

// WhereError is a row filter PostgreSQL refuses.
type WhereError struct {
	Table string // schema.name
	Where string // the expression, as configured
	// Problem is what PostgreSQL found wrong, translated; Fix what to do.
	Problem, Fix string
}

func (e *WhereError) Error() string {
	return "row filter of " + e.Table + " (where: " + e.Where + "): " + e.Problem + "; fix: " + e.Fix
}

// Unwrap marks the error permanent: only a change of the configuration
// fixes it.
func (e *WhereError) Unwrap() error { return connector.ErrPermanent }

// WhereErrors are the refused row filters of a configuration, one per
// table, in the configuration's order.
type WhereErrors []*WhereError

func (es WhereErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns every WhereError.
func (es WhereErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// errWhereUnreadable: the role may not read a column the filter reads, so
// PostgreSQL did not say whether the filter is valid.
var errWhereUnreadable = errors.New("the role may not read the columns of the row filter")

// whereSelect is the query a filter is planned in, and the text before
// the filter in it (PostgreSQL's error positions count from its start).
func whereSelect(table, where string) (sql, prefix string) {
	prefix = "EXPLAIN (COSTS OFF) SELECT FROM ONLY " + QuoteTable(table) + " WHERE ("
	return prefix + where + ")", prefix
}

// CheckWheres plans every mapping's row filter in tx (savepoints keep tx
// usable), so PostgreSQL parses it against its table: syntax, column names,
// types, a boolean result. It returns the filters it refuses, and the
// tables whose filter it could not test because the role may not read the
// columns (PostgreSQL checks privileges before anything else it reports).
// Tables that do not exist are skipped (the planner reports them).
func CheckWheres(ctx context.Context, tx pgx.Tx, mappings []*connector.Mapping, tables map[string]*TableInfo) (refused WhereErrors, unreadable []string, err error) {
	for _, m := range mappings {
		if m.Where == "" {
			continue
		}
		if info := tables[m.Table]; info == nil || !info.Exists {
			continue
		}
		sql, prefix := whereSelect(m.Table, m.Where)
		werr, err := inSavepoint(ctx, tx, sql)
		switch {
		case err != nil:
			return nil, nil, err
		case werr == nil:
		case isUnreadable(werr):
			unreadable = append(unreadable, m.Table)
		default:
			refused = append(refused, translateWhere(m.Table, m.Where, prefix, werr))
		}
	}
	return refused, unreadable, nil
}

// probeWheres finds, after CREATE or ALTER PUBLICATION failed, the row
// filters to blame: each filter alone in a publication of its own table,
// created in a savepoint and rolled back. PostgreSQL checks a publication's
// filter rules (only columns, constants, built-in operators and immutable
// built-in functions) only there.
func probeWheres(ctx context.Context, tx pgx.Tx, mappings []*connector.Mapping) (WhereErrors, error) {
	var refused WhereErrors
	for _, m := range mappings {
		if m.Where == "" {
			continue
		}
		prefix := "CREATE PUBLICATION baitoru_cdc_where_probe FOR TABLE " + QuoteTable(m.Table) + " WHERE ("
		werr, err := inSavepoint(ctx, tx, prefix+m.Where+")")
		if err != nil {
			return nil, err
		}
		if werr != nil && !isUnreadable(werr) {
			refused = append(refused, translateWhere(m.Table, m.Where, prefix, werr))
		}
	}
	return refused, nil
}

// inSavepoint runs sql alone (extended protocol) in a savepoint of tx and
// rolls back to it: werr is what sql returned, err a failure of the
// savepoint itself.
func inSavepoint(ctx context.Context, tx pgx.Tx, sql string) (werr, err error) {
	if _, err := tx.Exec(ctx, "SAVEPOINT baitoru_cdc_where"); err != nil {
		return nil, fmt.Errorf("test row filter: %w", err)
	}
	werr = execAlone(ctx, tx.Conn(), sql)
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT baitoru_cdc_where"); err != nil {
		return nil, fmt.Errorf("test row filter: %w", err)
	}
	return werr, nil
}

func isUnreadable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// translateWhere turns what PostgreSQL said of the filter where of table
// (in a statement in which prefix comes before it) into a WhereError.
func translateWhere(table, where, prefix string, err error) *WhereError {
	e := &WhereError{Table: table, Where: where}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		e.Problem = err.Error()
		e.Fix = "correct where: (one SQL boolean expression over the table's columns)"
		return e
	}
	at := ""
	if pos := int(pgErr.Position) - utf8.RuneCountInString(prefix); pgErr.Position > 0 && pos >= 1 {
		if n := utf8.RuneCountInString(where); pos > n {
			at = " (at the end of where:)"
		} else {
			at = fmt.Sprintf(" (at character %d of where:)", pos)
		}
	}
	msg := pgErr.Message
	withHint := func(fix string) string {
		if pgErr.Hint != "" {
			return strings.TrimSuffix(pgErr.Hint, ".") + "; " + fix
		}
		return fix
	}
	switch {
	case pgErr.Code == "42703": // undefined_column
		e.Problem = msg + at
		e.Fix = withHint("use a column of " + table + " (names are case-sensitive; quote mixed-case names with \"...\")")
	case pgErr.Code == "42P01": // undefined_table: another table's column
		e.Problem = msg + at + ": a row filter can read only its own table's columns"
		e.Fix = "use only columns of " + table + ", without a table name; filter on other tables in the consumers (e.g. an SNS filter policy on an attribute)"
	case pgErr.Code == "42601" || pgErr.Code == "42P02": // syntax_error, undefined_parameter
		e.Problem = msg + at
		e.Fix = "correct the SQL syntax of where: (one boolean expression, e.g. published AND company_id <> 0; quote text as 'text')"
	case pgErr.Code == "42804" && strings.Contains(msg, "argument of WHERE must be type boolean"):
		e.Problem = "it is not a condition: " + msg + at
		e.Fix = "write a boolean expression, e.g. published or status = 'open'"
	case pgErr.Code == "42883" || pgErr.Code == "42804" || pgErr.Code == "42846" || strings.HasPrefix(pgErr.Code, "22"): // types, casts, literals
		e.Problem = msg + at
		e.Fix = withHint("compare values of the column's type (a literal of another type needs a cast, e.g. '2026-01-01'::date)")
	case pgErr.Code == "0A000" && strings.Contains(msg, "publication WHERE expression"):
		e.Problem = "not allowed in a publication row filter" + at + ": " + strings.TrimSuffix(pgErr.Detail, ".")
		e.Fix = "use only the table's columns, constants, built-in operators and immutable built-in functions (not now(), random(), subqueries, system columns or your own functions); filter what needs more in the consumers (e.g. an SNS filter policy on an attribute)"
	default:
		e.Problem = msg + at
		if pgErr.Detail != "" {
			e.Problem += ": " + strings.TrimSuffix(pgErr.Detail, ".")
		}
		e.Fix = withHint("correct where: (one SQL boolean expression over the table's columns)")
	}
	return e
}
