package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
)

// rowFilters evaluates the mappings' where: predicates in the connector,
// for servers whose publications cannot carry row filters (PostgreSQL
// < 15; Options.ConnectorRowFilters forces it). PostgreSQL itself evaluates
// each predicate, on the meta connection, over the row's values as the
// stream carried them (text format, typed by the column types): one round
// trip per change of a filtered table, so the semantics are PostgreSQL's.
//
// Like a publication row filter (PostgreSQL 15):
//   - an insert passes when its new row matches;
//   - an update with the whole old row (REPLICA IDENTITY FULL) passes as an
//     update when both rows match, becomes a delete when only the old row
//     matches, an insert when only the new row matches, and is dropped
//     when neither does; without the whole old row it passes when the new
//     row matches;
//   - a NULL result does not match.
//
// Where it cannot decide, it keeps the change (publishing one event too
// many, never losing one): a delete without the whole old row (the server
// sent only the key), and a row with an unchanged TOAST value (not sent).
//
// Used by the subscription's reading goroutine only.
type rowFilters struct {
	where func(table string) string // schema.table → expression ("": none)
	conn  *pgx.Conn
	sql   map[*connector.Relation]filterSQL
}

// filterSQL is a table's filter as a query over one version of its
// relation.
type filterSQL struct {
	where, sql string
	oids       []uint32
}

// newRowFilters evaluates the mappings' filters; nil when none has one.
// With current (the mapping of a table for the transaction being decoded),
// the filters are current's at each change (a reload may add one), and
// never nil.
func newRowFilters(mappings []*connector.Mapping, current func(table string) *connector.Mapping, conn *pgx.Conn) *rowFilters {
	f := &rowFilters{conn: conn, sql: map[*connector.Relation]filterSQL{}}
	if current != nil {
		f.where = func(table string) string {
			if m := current(table); m != nil {
				return m.Where
			}
			return ""
		}
		return f
	}
	where := rowFilterTables(mappings)
	if len(where) == 0 {
		return nil
	}
	f.where = func(table string) string { return where[table] }
	return f
}

// apply reports whether c passes its table's filter; it may turn an update
// into an insert or a delete. A change of an unfiltered table passes.
func (f *rowFilters) apply(ctx context.Context, c *connector.Change) (bool, error) {
	if f == nil {
		return true, nil
	}
	where := f.where(c.Rel.Table)
	if where == "" {
		return true, nil
	}
	switch c.Op {
	case connector.OpInsert:
		m, err := f.match(ctx, c.Rel, where, c.New)
		return m != no, err
	case connector.OpDelete:
		if c.OldIsKey || c.Old == nil {
			return true, nil
		}
		m, err := f.match(ctx, c.Rel, where, c.Old)
		return m != no, err
	case connector.OpUpdate:
		newM, err := f.match(ctx, c.Rel, where, c.New)
		if err != nil {
			return false, err
		}
		if c.Old == nil || c.OldIsKey {
			return newM != no, nil
		}
		oldM, err := f.match(ctx, c.Rel, where, c.Old)
		if err != nil {
			return false, err
		}
		switch {
		case newM == unknown || oldM == unknown || newM == yes && oldM == yes:
			return true, nil
		case oldM == yes:
			c.Op, c.New = connector.OpDelete, nil
			return true, nil
		case newM == yes:
			c.Op, c.Old, c.OldIsKey = connector.OpInsert, nil, false
			return true, nil
		}
		return false, nil
	}
	return true, nil
}

type matched int

const (
	no matched = iota
	yes
	unknown
)

// match evaluates the filter where of rel's table over one row.
func (f *rowFilters) match(ctx context.Context, rel *connector.Relation, where string, row []connector.Datum) (matched, error) {
	q, ok := f.sql[rel]
	if !ok || q.where != where {
		cols := make([]string, len(rel.Columns))
		q = filterSQL{where: where, oids: make([]uint32, len(rel.Columns))}
		for i, col := range rel.Columns {
			cols[i] = fmt.Sprintf("$%d AS %s", i+1, pgx.Identifier{col.Name}.Sanitize())
			q.oids[i] = col.TypeOID
		}
		q.sql = "SELECT (" + where + ")::boolean FROM (SELECT " + strings.Join(cols, ", ") + ") AS " + pgx.Identifier{rel.Name}.Sanitize()
		f.sql[rel] = q
	}
	sql := q.sql
	values := make([][]byte, len(rel.Columns))
	for i := range rel.Columns {
		if i >= len(row) {
			continue
		}
		switch row[i].Kind {
		case connector.DatumText:
			values[i] = row[i].Value
		case connector.DatumNull:
		default: // unchanged TOAST (not sent), or binary: cannot evaluate
			return unknown, nil
		}
	}
	rr := f.conn.PgConn().ExecParams(ctx, sql, values, q.oids, nil, nil)
	result := no
	for rr.NextRow() {
		if v := rr.Values()[0]; string(v) == "t" {
			result = yes
		}
	}
	if _, err := rr.Close(); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "42") || strings.HasPrefix(pgErr.Code, "22")) {
			return no, fmt.Errorf("row filter of %s (where: %s): %w: fix where: in the config: %w", rel.Table, where, err, connector.ErrPermanent)
		}
		return no, fmt.Errorf("row filter of %s: %w", rel.Table, err)
	}
	return result, nil
}

// rowFilterTables returns the row filters (where:) of the mappings by
// schema-qualified table.
func rowFilterTables(mappings []*connector.Mapping) map[string]string {
	where := map[string]string{}
	for _, m := range mappings {
		if m.Where != "" {
			where[m.Table] = m.Where
		}
	}
	return where
}
