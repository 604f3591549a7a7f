package dba

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// fingerprintSQL is one scalar query over pg_publication ($1: its name)
// that changes whenever anything the watch compares changes: operations,
// scope, tables, column lists, row filters. The watch observes the
// publication in full only when it changed.
func fingerprintSQL(server int) string {
	if server >= postgres.ColumnListVersion {
		return `SELECT concat_ws('|', p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.puballtables,
			(SELECT string_agg(concat_ws(':', pr.prrelid, pr.prattrs::text, pr.prqual::text), ';' ORDER BY pr.prrelid) FROM pg_publication_rel pr WHERE pr.prpubid = p.oid),
			(SELECT string_agg(pn.pnnspid::text, ';' ORDER BY pn.pnnspid) FROM pg_publication_namespace pn WHERE pn.pnpubid = p.oid))
			FROM pg_publication p WHERE p.pubname = $1`
	}
	return `SELECT concat_ws('|', p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.puballtables,
		(SELECT string_agg(pr.prrelid::text, ';' ORDER BY pr.prrelid) FROM pg_publication_rel pr WHERE pr.prpubid = p.oid))
		FROM pg_publication p WHERE p.pubname = $1`
}

// warning is a difference that loses nothing, logged once (by key).
type warning struct {
	key, text string
	args      []any
}

// observe reads the publication and the mapped tables and says, for each
// aspect of each mapped table, what the publication carries and what it
// leaves out. lookMu held.
func (w *Watch) observe(ctx context.Context) (map[aspect]observation, []warning, error) {
	tx, err := w.conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	cur, err := ReadPublication(ctx, tx, w.server, w.o.Publication)
	if err != nil {
		tx.Rollback(context.Background()) //nolint:errcheck // read-only
		return nil, nil, err
	}
	tables, err := ReadTables(ctx, tx, w.server, TableNames(w.o.Mappings))
	tx.Rollback(context.Background()) //nolint:errcheck // read-only
	if err != nil {
		return nil, nil, err
	}
	obs := map[aspect]observation{}
	if cur == nil {
		return obs, nil, nil // gone: the stream fails loudly
	}
	var warns []warning
	pub := w.o.Publication
	lists := w.server >= postgres.ColumnListVersion
	for _, m := range w.o.Mappings {
		t := m.Table
		schema, _, _ := strings.Cut(t, ".")
		pt := cur.Tables[t]
		if pt == nil && !cur.AllTables && !slices.Contains(cur.Schemas, schema) {
			obs[aspect{t, postgres.LossTable}] = observation{state: "not published", loss: "not in publication " + pub}
			continue
		}
		obs[aspect{t, postgres.LossTable}] = observation{state: "published"}
		for _, op := range opNames(m) {
			o := observation{state: "published"}
			if !publishes(cur, op) {
				o = observation{state: "not published", loss: fmt.Sprintf("publication %s does not publish %ss", pub, op)}
			}
			obs[aspect{t, postgres.LossKind(op)}] = o
		}
		cols := observation{state: "every column"}
		filter := observation{state: "no row filter"}
		if lists && pt != nil && pt.Columns != nil {
			cols.state = "(" + strings.Join(pt.Columns, ", ") + ")"
			var lacking []string
			for _, c := range m.ColumnNames() {
				// A mapped column the table lacks is a mapping problem
				// (a rename, a typo), which the stream stops on.
				if info := tables[t]; info != nil && info.Column(c) != nil && !slices.Contains(pt.Columns, c) {
					lacking = append(lacking, c)
				}
			}
			if len(lacking) > 0 {
				cols.loss = fmt.Sprintf("the column list of publication %s lacks mapped %s %s", pub, plural(len(lacking), "column", "columns"), strings.Join(lacking, ", "))
			}
		}
		want := strings.TrimSpace(m.Where)
		switch {
		case !lists || pt == nil:
		case pt.Where == "" && want != "":
			warns = append(warns, warning{key: "nofilter " + t,
				text: "the publication has no row filter for a table the config filters: every row leaves the server and is published (nothing is lost); run setup to restore the filter",
				args: []any{"table", t, "publication", pub, "where", want, "fix", w.o.SetupCommand}})
		case pt.Where == "":
		case want == "":
			filter = observation{state: parenthesized(pt.Where),
				loss: fmt.Sprintf("publication %s filters its rows with %s, which the config does not: the rows it leaves out are not published", pub, parenthesized(pt.Where))}
		default:
			filter.state = parenthesized(pt.Where)
			same, err := w.sameFilter(ctx, t, want, pt.Where)
			switch {
			case isPrivilegeError(err):
				// Cannot ask PostgreSQL: compare with what it was when
				// nothing was lost (the same text means the same filter).
				prev, ok := w.seenState[aspect{t, postgres.LossRowFilter}]
				same = !ok || prev == filter.state
				warns = append(warns, warning{key: "filtercompare " + t,
					text: "cannot compare the publication's row filter with the config's (this role may not read the filtered columns): a changed filter is noticed, a filter that differs from the start is not",
					args: []any{"table", t, "fix", "GRANT SELECT on the filtered columns to the connector's role (see setup's role comments)"}})
			case err != nil:
				return nil, nil, err
			}
			if !same {
				filter.loss = fmt.Sprintf("publication %s filters its rows with %s instead of where: (%s): the rows it leaves out are not published", pub, parenthesized(pt.Where), want)
			}
		}
		obs[aspect{t, postgres.LossColumns}] = cols
		obs[aspect{t, postgres.LossRowFilter}] = filter
	}
	var extra []string
	for name := range cur.Tables {
		if !slices.Contains(TableNames(w.o.Mappings), name) {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		warns = append(warns, warning{key: "extra " + name,
			text: "a table in the publication is not mapped: its changes are read and dropped (nothing is lost); map it, or remove it from the publication to save work",
			args: []any{"table", name, "publication", pub}})
	}
	var unused []string
	for _, op := range opOrder {
		if publishes(cur, op) && !slices.Contains(Operations(w.o.Mappings), op) {
			unused = append(unused, op)
		}
	}
	if cur.Truncate {
		unused = append(unused, "truncate")
	}
	if len(unused) > 0 {
		warns = append(warns, warning{key: "ops " + strings.Join(unused, ","),
			text: "the publication publishes operations no mapping uses: they are read and dropped (nothing is lost); run setup to publish only the mapped ones",
			args: []any{"publication", pub, "operations", strings.Join(unused, ", "), "fix", w.o.SetupCommand}})
	}
	return obs, warns, nil
}

// parenthesized returns a row filter as PostgreSQL prints it in a
// publication, in parentheses.
func parenthesized(where string) string {
	if strings.HasPrefix(where, "(") && strings.HasSuffix(where, ")") {
		return where
	}
	return "(" + where + ")"
}

func publishes(cur *PublicationState, op string) bool {
	switch op {
	case "insert":
		return cur.Insert
	case "update":
		return cur.Update
	case "delete":
		return cur.Delete
	}
	return false
}

// sameFilter asks PostgreSQL whether two row filters of table are the same
// expression (CompareFilters), in a read-only transaction of its own.
func (w *Watch) sameFilter(ctx context.Context, table, a, b string) (bool, error) {
	tx, err := w.conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	return CompareFilters(tx)(ctx, table, a, b)
}

// CoverMissingColumns implements connector.LossRecord for the pipeline: a
// change of table decoded without mapped columns that the table still has
// is one the publication's column list left out. It is covered (true) when
// a gap of the table records it: the one open now (the watch looks at once
// when it has not noticed yet), or one recorded earlier whose span it falls
// in (a transaction decoded with the catalog of its start; a closed gap is
// extended to lsn). Not covered (a rename, a dropped column): false, and
// the stream stops as for any mapping that no longer matches.
//
// The catalog is read only once transaction xid (the change's, 0: unknown)
// is visible to the watch: the server sends a commit as soon as its record
// is on disk, a moment before other sessions see it, and a look in that
// moment would miss the column list changed in that very transaction.
func (w *Watch) CoverMissingColumns(ctx context.Context, table string, columns []string, xid uint32, lsn connector.LSN) (bool, error) {
	w.lookMu.Lock()
	defer w.lookMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, max(w.o.Interval, 5*time.Second))
	defer cancel()
	give, err := w.borrow(cctx)
	if err != nil {
		return false, err
	}
	defer give()
	if err := waitVisible(cctx, w.conn, xid); err != nil {
		return false, err
	}
	var have int
	if err := w.conn.QueryRow(cctx, `SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = ANY ($2) AND attnum > 0 AND NOT attisdropped`,
		QuoteTable(table), columns).Scan(&have); err != nil {
		return false, fmt.Errorf("columns of %s: %w", table, err)
	}
	if have < len(columns) {
		return false, nil
	}
	open := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.lost[aspect{table, postgres.LossColumns}] != nil || w.lost[aspect{table, postgres.LossTable}] != nil
	}
	if open() {
		return true, nil
	}
	if err := w.look(ctx); err != nil && !errors.Is(err, ErrChangesLost) {
		return false, err
	} else if err != nil {
		return false, err // stop: the loss is recorded
	}
	if open() {
		return true, nil
	}
	gaps, err := postgres.Gaps(cctx, w.conn, w.o.Slot)
	if err != nil {
		return false, err
	}
	var last *postgres.Gap
	for i, g := range gaps {
		if g.Table == table && g.Kind == postgres.LossColumns && g.FromLSN <= lsn {
			last = &gaps[i]
		}
	}
	switch {
	case last == nil:
		return false, nil
	case last.Open() || last.ToLSN >= lsn:
		return true, nil
	}
	if err := postgres.ExtendGap(cctx, w.conn, last.ID, lsn, time.Now()); err != nil {
		return false, err
	}
	w.log.Error("a change decoded after its gap was closed still lacked mapped columns (a transaction decoded with the catalog of its start): the gap now ends at its position",
		"table", table, "columns", strings.Join(columns, ", "), "gap_id", last.ID, "missing_to_lsn", lsn.String())
	return true, nil
}

// endedSQL says whether every transaction whose 32-bit id is in $1 has
// ended for a snapshot taken now: the full id of each is the one of that
// epoch of the snapshot's xmax that is not after xmax (a transaction seen
// in the stream or in an earlier snapshot is older than any snapshot taken
// after it).
const endedSQL = `WITH s AS (SELECT pg_current_snapshot() AS snap),
	x AS (SELECT snap, pg_snapshot_xmax(snap)::text::bigint AS xmax FROM s),
	f AS (SELECT snap, xmax, (xmax & ~4294967295::bigint) | id AS fx FROM x, unnest($1::bigint[]) AS id)
	SELECT coalesce(bool_and(pg_visible_in_snapshot((CASE WHEN fx > xmax THEN fx - 4294967296 ELSE fx END)::text::xid8, snap)), true) FROM f`

// Ended reports whether the transactions xids (32-bit ids, as the stream
// and OpenTransactions give them) have all ended (committed or rolled
// back) for the snapshots of conn.
func Ended(ctx context.Context, conn *pgx.Conn, xids []uint32) (bool, error) {
	ids := make([]int64, len(xids))
	for i, x := range xids {
		ids[i] = int64(x)
	}
	var ended bool
	if err := conn.QueryRow(ctx, endedSQL, ids).Scan(&ended); err != nil {
		return false, fmt.Errorf("transactions ended: %w", err)
	}
	return ended, nil
}

// OpenTransactions returns the server's WAL position and the (32-bit) ids
// of the transactions in progress: a transaction not among them got its id
// after the call began, so it wrote nothing before. In progress are those a
// snapshot lists, and those from its xmax (every id after the latest one
// that ended) up to an id taken for the purpose (in a transaction rolled
// back).
func OpenTransactions(ctx context.Context, conn *pgx.Conn) (connector.LSN, []uint32, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("open transactions: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // nothing written
	var next, xmax int64
	var lsn string
	var xip []int64
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&next); err != nil {
		return 0, nil, fmt.Errorf("open transactions: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_snapshot_xmax(s)::text::bigint,
		ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) x) FROM pg_current_snapshot() s`).Scan(&lsn, &xmax, &xip); err != nil {
		return 0, nil, fmt.Errorf("open transactions: %w", err)
	}
	var out []uint32
	for _, x := range xip {
		if x != next {
			out = append(out, uint32(x))
		}
	}
	for x := xmax; x < next; x++ {
		if !slices.Contains(xip, x) {
			out = append(out, uint32(x))
		}
	}
	return postgres.ParseLSN(lsn), out, nil
}

// waitVisible waits until transaction xid (0: none) has ended for the
// snapshots of conn, polling, until ctx ends (pgx then closes conn).
func waitVisible(ctx context.Context, conn *pgx.Conn, xid uint32) error {
	if xid == 0 {
		return nil
	}
	for {
		ended, err := Ended(ctx, conn, []uint32{xid})
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return fmt.Errorf("transaction %d visible: %w", xid, err)
		}
		if ended {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("transaction %d visible: %w", xid, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
