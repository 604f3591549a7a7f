package dba

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// querier is what the catalog readers need: a connection, a pool or a
// transaction.
type querier = postgres.Querier

// ReadTables describes the named tables (schema-qualified, case-sensitive
// names as in the config). A table that does not exist has Exists false.
func ReadTables(ctx context.Context, q postgres.Querier, server int, tables []string) (map[string]*TableInfo, error) {
	out := make(map[string]*TableInfo, len(tables))
	generated := "false"
	if server >= 120000 {
		generated = "a.attgenerated <> ''"
	}
	for _, t := range tables {
		info := &TableInfo{Table: t}
		out[t] = info
		schema, name, ok := strings.Cut(t, ".")
		if !ok {
			continue
		}
		var oid uint32
		var kind, ident string
		err := q.QueryRow(ctx, `
			SELECT c.oid, c.relkind::text, c.relreplident::text,
			       pg_has_role(c.relowner, 'USAGE') OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2`, schema, name).Scan(&oid, &kind, &ident, &info.Owned)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("describe table %s: %w", t, err)
		}
		info.Exists, info.Kind, info.ReplicaIdentity = true, kind[0], ident[0]
		rows, err := q.Query(ctx, `
			SELECT a.attname, a.attnum, a.atttypid, format_type(a.atttypid, a.atttypmod), `+generated+`
			FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`, oid)
		if err != nil {
			return nil, fmt.Errorf("describe columns of %s: %w", t, err)
		}
		for rows.Next() {
			var c ColumnInfo
			if err := rows.Scan(&c.Name, &c.Num, &c.TypeOID, &c.TypeName, &c.Generated); err != nil {
				rows.Close()
				return nil, fmt.Errorf("describe columns of %s: %w", t, err)
			}
			info.Columns = append(info.Columns, c)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("describe columns of %s: %w", t, err)
		}
		if info.ReplicaIdentity != 'd' && info.ReplicaIdentity != 'i' {
			continue
		}
		var index string
		var cols []string
		err = q.QueryRow(ctx, `
			SELECT i.indexrelid::regclass::text,
			       array(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
			             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
			FROM pg_index i
			WHERE i.indrelid = $1 AND CASE $2 WHEN 'd' THEN i.indisprimary ELSE i.indisreplident END
			LIMIT 1`, oid, string(info.ReplicaIdentity)).Scan(&index, &cols)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("replica identity of %s: %w", t, err)
		}
		info.IdentityIndex, info.Identity = index, cols
	}
	return out, nil
}

// PublicationState is a publication as the server has it.
type PublicationState struct {
	Name                             string
	Insert, Update, Delete, Truncate bool
	AllTables                        bool
	Schemas                          []string // FOR TABLES IN SCHEMA (15+)
	Tables                           map[string]*PublishedTable
}

// Operations lists the published operations other than truncate.
func (s *PublicationState) Operations() []string {
	var out []string
	for i, on := range []bool{s.Insert, s.Update, s.Delete} {
		if on {
			out = append(out, opOrder[i])
		}
	}
	return out
}

// PublishedTable is one table of a publication.
type PublishedTable struct {
	Table   string
	Columns []string // column list in attnum order; nil: every column
	Where   string   // pg_get_expr of the row filter; empty: none
	// WhereColumns are the columns the row filter references.
	WhereColumns []string
}

var varattnoRE = regexp.MustCompile(`\{VAR :varno \d+ :varattno (\d+)`)

// ReadPublication returns the publication, or nil when it does not exist.
func ReadPublication(ctx context.Context, q postgres.Querier, server int, name string) (*PublicationState, error) {
	st := &PublicationState{Name: name, Tables: map[string]*PublishedTable{}}
	var oid uint32
	err := q.QueryRow(ctx, `SELECT oid, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1`, name).
		Scan(&oid, &st.AllTables, &st.Insert, &st.Update, &st.Delete, &st.Truncate)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read publication %s: %w", name, err)
	}
	cols := `NULL::text[], NULL::text, NULL::text`
	if server >= postgres.ColumnListVersion {
		cols = `CASE WHEN pr.prattrs IS NULL THEN NULL ELSE array(SELECT a.attname FROM pg_attribute a
		            WHERE a.attrelid = pr.prrelid AND a.attnum = ANY (pr.prattrs::int2[]) ORDER BY a.attnum) END,
		        pg_get_expr(pr.prqual, pr.prrelid), pr.prqual::text`
	}
	rows, err := q.Query(ctx, `
		SELECT n.nspname, c.relname, pr.prrelid, `+cols+`
		FROM pg_publication_rel pr JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE pr.prpubid = $1`, oid)
	if err != nil {
		return nil, fmt.Errorf("read tables of publication %s: %w", name, err)
	}
	type qual struct {
		table string
		rel   uint32
		node  string
	}
	var quals []qual
	for rows.Next() {
		var schema, rel string
		var relid uint32
		var where, node *string
		pt := &PublishedTable{}
		if err := rows.Scan(&schema, &rel, &relid, &pt.Columns, &where, &node); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read tables of publication %s: %w", name, err)
		}
		pt.Table = schema + "." + rel
		if where != nil {
			pt.Where = *where
		}
		st.Tables[pt.Table] = pt
		if node != nil {
			quals = append(quals, qual{pt.Table, relid, *node})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tables of publication %s: %w", name, err)
	}
	for _, ql := range quals {
		var nums []int16
		for _, m := range varattnoRE.FindAllStringSubmatch(ql.node, -1) {
			n, _ := strconv.Atoi(m[1])
			if !slices.Contains(nums, int16(n)) {
				nums = append(nums, int16(n))
			}
		}
		if len(nums) == 0 {
			continue
		}
		var names []string
		if err := q.QueryRow(ctx, `SELECT array(SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum = ANY ($2::int2[]) ORDER BY attnum)`, ql.rel, nums).Scan(&names); err != nil {
			return nil, fmt.Errorf("read row filter of %s: %w", ql.table, err)
		}
		st.Tables[ql.table].WhereColumns = names
	}
	if server >= postgres.ColumnListVersion {
		rows, err := q.Query(ctx, `SELECT n.nspname FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE pn.pnpubid = $1 ORDER BY 1`, oid)
		if err != nil {
			return nil, fmt.Errorf("read schemas of publication %s: %w", name, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read schemas of publication %s: %w", name, err)
			}
			st.Schemas = append(st.Schemas, s)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read schemas of publication %s: %w", name, err)
		}
	}
	return st, nil
}

// DriftKind classifies a difference between the server's publication and
// the plan.
type DriftKind string

// Drift kinds.
const (
	DriftMissingTable DriftKind = "missing table"
	DriftExtraTable   DriftKind = "extra table"
	DriftColumns      DriftKind = "columns"
	DriftFilter       DriftKind = "row filter"
	DriftOperations   DriftKind = "operations"
	DriftScope        DriftKind = "scope" // FOR ALL TABLES, TABLES IN SCHEMA
)

// Drift is one difference between the publication and the plan.
type Drift struct {
	Kind   DriftKind
	Table  string
	Detail string
}

func (d Drift) String() string {
	if d.Table == "" {
		return d.Detail
	}
	return d.Table + ": " + d.Detail
}

// filterComparer tells whether two row filters of a table are the same
// expression (as PostgreSQL parses them).
type filterComparer func(ctx context.Context, table, a, b string) (bool, error)

// Diff lists how the publication cur differs from the plan; nothing when
// they match. Row filters are compared by same (see CompareFilters).
func (p *Plan) Diff(ctx context.Context, cur *PublicationState, same filterComparer) ([]Drift, error) {
	var out []Drift
	if cur.AllTables {
		out = append(out, Drift{Kind: DriftScope, Detail: "the publication is FOR ALL TABLES (it publishes every table, and cannot be altered to a table list)"})
	}
	if len(cur.Schemas) > 0 {
		out = append(out, Drift{Kind: DriftScope, Detail: "the publication publishes every table of schema " + strings.Join(cur.Schemas, ", ")})
	}
	if !slices.Equal(cur.Operations(), p.Operations) || cur.Truncate {
		was := strings.Join(cur.Operations(), ", ")
		if cur.Truncate {
			was = strings.TrimPrefix(was+", truncate", ", ")
		}
		out = append(out, Drift{Kind: DriftOperations, Detail: fmt.Sprintf("publish %s (the server has %s)", strings.Join(p.Operations, ", "), orNone(was))})
	}
	for _, t := range p.Tables {
		have := cur.Tables[t.Table]
		if have == nil {
			if !cur.AllTables {
				out = append(out, Drift{Kind: DriftMissingTable, Table: t.Table, Detail: "not in the publication"})
			}
			continue
		}
		if !sameColumns(t.Columns, have.Columns) {
			out = append(out, Drift{Kind: DriftColumns, Table: t.Table, Detail: fmt.Sprintf("column list %s (the server has %s)", columnsText(t.Columns), columnsText(have.Columns))})
		}
		switch {
		case t.Where == "" && have.Where == "":
		case t.Where == "" || have.Where == "":
			out = append(out, Drift{Kind: DriftFilter, Table: t.Table, Detail: fmt.Sprintf("row filter %s (the server has %s)", filterText(t.Where), filterText(have.Where))})
		default:
			eq, err := same(ctx, t.Table, t.Where, have.Where)
			if err != nil {
				return nil, err
			}
			if !eq {
				out = append(out, Drift{Kind: DriftFilter, Table: t.Table, Detail: fmt.Sprintf("row filter %s (the server has %s)", filterText(t.Where), filterText(have.Where))})
			}
		}
	}
	var extra []string
	for name := range cur.Tables {
		if !slices.ContainsFunc(p.Tables, func(t PlannedTable) bool { return t.Table == name }) {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		out = append(out, Drift{Kind: DriftExtraTable, Table: name, Detail: "in the publication but not mapped"})
	}
	return out, nil
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func sameColumns(a, b []string) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func columnsText(cols []string) string {
	if cols == nil {
		return "none (every column)"
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

func filterText(w string) string {
	if w == "" {
		return "none"
	}
	return "(" + w + ")"
}

// CompareFilters compares two row filters of a table by the plan
// PostgreSQL makes of `SELECT FROM ONLY table WHERE (filter)`: both go
// through the same parser and deparser, so the same expression written
// differently compares equal. It needs SELECT on the columns read. Each
// query is sent alone with the extended protocol. It sets planner settings
// with SET LOCAL, for the transaction tx only.
func CompareFilters(q pgx.Tx) filterComparer {
	set := false
	return func(ctx context.Context, table, a, b string) (bool, error) {
		if !set {
			if _, err := q.Exec(ctx, `SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off;
				SET LOCAL enable_tidscan = off; SET LOCAL max_parallel_workers_per_gather = 0`); err != nil {
				return false, fmt.Errorf("compare row filters: %w", err)
			}
			set = true
		}
		pa, err := explainFilter(ctx, q, table, a)
		if err != nil {
			return false, err
		}
		pb, err := explainFilter(ctx, q, table, b)
		if err != nil {
			return false, err
		}
		return pa == pb, nil
	}
}

// explainFilter plans the filter with the extended protocol, which runs one
// statement only: the config's filter was checked by package config, the
// server's is PostgreSQL's own rendering of one expression.
func explainFilter(ctx context.Context, q pgx.Tx, table, filter string) (string, error) {
	rr := q.Conn().PgConn().ExecParams(ctx, "EXPLAIN (COSTS OFF, VERBOSE) SELECT FROM ONLY "+QuoteTable(table)+" WHERE ("+filter+")", nil, nil, nil, nil)
	var lines []string
	for rr.NextRow() {
		lines = append(lines, string(rr.Values()[0]))
	}
	if _, err := rr.Close(); err != nil {
		return "", fmt.Errorf("row filter of %s (%s): %w", table, filter, err)
	}
	return strings.Join(lines, "\n"), nil
}

// UnsafeForWrites returns the tables of the publication on which PostgreSQL
// refuses (or would refuse) UPDATE or DELETE because of it: published
// updates/deletes without a replica identity, a column list that leaves
// out a replica identity column (or any column list with REPLICA IDENTITY
// FULL), a row filter reading a column outside the replica identity.
func UnsafeForWrites(st *PublicationState, tables map[string]*TableInfo) []Problem {
	if !st.Update && !st.Delete {
		return nil
	}
	var ops []string
	if st.Update {
		ops = append(ops, "UPDATE")
	}
	if st.Delete {
		ops = append(ops, "DELETE")
	}
	what := strings.Join(ops, " and ")
	var out []Problem
	names := make([]string, 0, len(st.Tables))
	for n := range st.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pt := st.Tables[n]
		info := tables[n]
		if info == nil || !info.Exists {
			continue
		}
		qt := QuoteTable(n)
		switch {
		case !info.hasIdentity():
			out = append(out, Problem{Table: n,
				Reason: fmt.Sprintf("%s fail: the table has no replica identity (%s) and the publication publishes %s", what, info.identityText(), strings.ToLower(what)),
				Fix:    fmt.Sprintf("add a primary key, or ALTER TABLE %s REPLICA IDENTITY USING INDEX <unique index>, or ALTER TABLE %s REPLICA IDENTITY FULL; or publish only insert", qt, qt)})
			continue
		case info.ReplicaIdentity == 'f' && pt.Columns != nil:
			out = append(out, Problem{Table: n,
				Reason: fmt.Sprintf("%s fail: with REPLICA IDENTITY FULL PostgreSQL allows no column list in a publication that publishes %s, and this one has (%s)", what, strings.ToLower(what), strings.Join(pt.Columns, ", ")),
				Fix:    "drop the column list (baitoru-cdc setup does), or give the table a primary key / REPLICA IDENTITY USING INDEX, or publish only insert"})
		case info.ReplicaIdentity != 'f' && pt.Columns != nil:
			var lacking []string
			for _, c := range info.Identity {
				if !slices.Contains(pt.Columns, c) {
					lacking = append(lacking, c)
				}
			}
			if len(lacking) > 0 {
				out = append(out, Problem{Table: n,
					Reason: fmt.Sprintf("%s fail: the column list (%s) lacks replica identity column %s", what, strings.Join(pt.Columns, ", "), strings.Join(lacking, ", ")),
					Fix:    "include the replica identity columns in the column list (baitoru-cdc setup does), or publish only insert"})
			}
		}
		if info.ReplicaIdentity != 'f' && pt.Where != "" {
			var outside []string
			for _, c := range pt.WhereColumns {
				if !slices.Contains(info.Identity, c) {
					outside = append(outside, c)
				}
			}
			if len(outside) > 0 {
				out = append(out, Problem{Table: n,
					Reason: fmt.Sprintf("%s fail: the row filter (%s) reads %s, outside the replica identity (%s), and the publication publishes %s",
						what, pt.Where, strings.Join(outside, ", "), info.identityText(), strings.ToLower(what)),
					Fix: fmt.Sprintf("publish only insert for this publication (map only insert for every table), or ALTER TABLE %s REPLICA IDENTITY FULL (then no column list; more WAL per update), or filter only on %s, or remove where: and let the consumers filter (e.g. an SNS filter policy on an attribute), or map this table in a separate connector (its own slot and publication) that maps only insert",
						qt, strings.Join(info.Identity, ", "))})
			}
		}
	}
	return out
}

// ProbeWrites asks PostgreSQL itself whether UPDATE and DELETE on each
// table still pass its publication checks, by planning them with EXPLAIN
// (no row is touched, no trigger fires; works in a read-only transaction).
// A table the role may not update is skipped and returned in skipped.
// Run it inside a transaction: each probe uses a savepoint.
//
// ours is baitoru-cdc's publication: a failure is blamed on the
// publications that publish the failing operation of the table, named in
// the problem, with a fix for those that are not ours.
func ProbeWrites(ctx context.Context, tx pgx.Tx, tables map[string]*TableInfo, names []string, ours string) (problems []Problem, skipped []string, err error) {
	for _, n := range names {
		info := tables[n]
		if info == nil || !info.Exists {
			continue
		}
		var col string
		for _, c := range info.Columns {
			if !c.Generated {
				col = pgx.Identifier{c.Name}.Sanitize()
				break
			}
		}
		qt := QuoteTable(n)
		probes := []string{"EXPLAIN DELETE FROM ONLY " + qt + " WHERE false"}
		if col != "" {
			probes = append([]string{"EXPLAIN UPDATE ONLY " + qt + " SET " + col + " = " + col + " WHERE false"}, probes...)
		}
		for _, sql := range probes {
			if _, err := tx.Exec(ctx, "SAVEPOINT baitoru_cdc_probe"); err != nil {
				return nil, nil, fmt.Errorf("probe writes: %w", err)
			}
			_, perr := tx.Exec(ctx, sql)
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT baitoru_cdc_probe"); err != nil {
				return nil, nil, fmt.Errorf("probe writes: %w", err)
			}
			if perr == nil {
				continue
			}
			var pgErr *pgconn.PgError
			if errors.As(perr, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
				if !slices.Contains(skipped, n) {
					skipped = append(skipped, n)
				}
				continue
			}
			if !errors.As(perr, &pgErr) {
				return nil, nil, fmt.Errorf("probe writes on %s: %w", n, perr)
			}
			msg := pgErr.Message
			if pgErr.Detail != "" {
				msg += " (" + pgErr.Detail + ")"
			}
			op := strings.Fields(sql)[1]
			p, err := blame(ctx, tx, n, op, ours)
			if err != nil {
				return nil, nil, err
			}
			p.Reason = op + " fails: " + msg + p.Reason
			problems = append(problems, p)
		}
	}
	return problems, skipped, nil
}

// blame returns the problem of an operation (UPDATE or DELETE) on table
// that PostgreSQL refuses because of publications: Reason is the ", because
// of ..." that names every publication publishing op of the table, Fix what
// to do about them.
func blame(ctx context.Context, tx pgx.Tx, table, op, ours string) (Problem, error) {
	schema, name, _ := strings.Cut(table, ".")
	col := "pubupdate"
	if op == "DELETE" {
		col = "pubdelete"
	}
	rows, err := tx.Query(ctx, `SELECT p.pubname FROM pg_publication p
		WHERE p.`+col+` AND EXISTS (SELECT 1 FROM pg_publication_tables t
			WHERE t.pubname = p.pubname AND t.schemaname = $1 AND t.tablename = $2)
		ORDER BY 1`, schema, name)
	if err != nil {
		return Problem{}, fmt.Errorf("publications of %s: %w", table, err)
	}
	pubs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return Problem{}, fmt.Errorf("publications of %s: %w", table, err)
	}
	var others, named []string
	for _, p := range pubs {
		named = append(named, "publication "+strconv.Quote(p))
		if p != ours {
			others = append(others, p)
		}
	}
	p := Problem{Table: table}
	what := strings.ToLower(op) + "s"
	if len(named) > 0 {
		p.Reason = ", because of " + strings.Join(named, " and ") + ", publishing " + what + " of it"
	}
	identity := "give " + QuoteTable(table) + " a replica identity that covers what the publications need (a primary key, ALTER TABLE " + QuoteTable(table) + " REPLICA IDENTITY USING INDEX ..., or REPLICA IDENTITY FULL)"
	switch {
	case len(others) > 0 && len(others) == len(pubs):
		alters := make([]string, len(others))
		for i, o := range others {
			alters[i] = "ALTER PUBLICATION " + pgx.Identifier{o}.Sanitize() + " SET (publish = 'insert')"
		}
		p.Reason += "; writes fail already, whatever baitoru-cdc sets up"
		p.Fix = identity + "; or, if " + strings.Join(others, ", ") + " need not publish " + what + ", " + strings.Join(alters, "; ") + "; then run setup again"
	case len(others) > 0:
		p.Fix = identity + "; or publish only insert (map only insert for every table); " + strings.Join(others, ", ") + " publish " + what + " of it too"
	default:
		p.Fix = "publish only insert (map only insert for every table), or " + identity + ", or drop the row filter/column list"
	}
	return p, nil
}

// execAlone runs one statement with the extended protocol, which refuses
// several statements in one string.
func execAlone(ctx context.Context, conn *pgx.Conn, sql string) error {
	_, err := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Close()
	return err
}

// PublicationAction is what ApplyPublication did (or would do).
type PublicationAction string

// Publication actions.
const (
	PublicationCreated   PublicationAction = "created"
	PublicationAltered   PublicationAction = "altered"
	PublicationUnchanged PublicationAction = "unchanged"
)

// PublicationResult reports ApplyPublication.
type PublicationResult struct {
	Plan       *Plan
	Action     PublicationAction
	Drift      []Drift     // the differences found (altered)
	Statements []Statement // run (or, in a dry run, to run) in one transaction
	// FilterColumns are the columns each row filter reads (as parsed).
	FilterColumns map[string][]string
	// Unprobed are tables the role may not UPDATE: the write probe was
	// skipped for them (the catalog check still ran).
	Unprobed []string
	DryRun   bool
}

// ApplyOptions configure ApplyPublication.
type ApplyOptions struct {
	Publication string
	// Mappings are the mapped tables (package config resolves them).
	Mappings []*connector.Mapping
	// DryRun runs everything inside the transaction and rolls it back.
	DryRun bool
}

// ApplyPublication makes the publication match the configuration, in one
// transaction: it plans (PlanPublication), compares with the server's
// publication (nothing runs when they match), runs CREATE or ALTER
// PUBLICATION (each statement alone, extended protocol), reads the result
// back and checks that it is exactly the plan (a row filter cannot have
// smuggled anything in), checks that UPDATE and DELETE on every table still
// pass (catalog rules, then EXPLAIN probes), and only then commits. Any
// refusal rolls everything back and returns an error wrapping ErrRefused.
// A dry run does the same and rolls back.
func ApplyPublication(ctx context.Context, conn *pgx.Conn, o ApplyOptions) (*PublicationResult, error) {
	server, err := postgres.ServerVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	tables, err := ReadTables(ctx, conn, server, TableNames(o.Mappings))
	if err != nil {
		return nil, err
	}
	plan, err := PlanPublication(o.Publication, o.Mappings, server, tables)
	if err != nil {
		return nil, err
	}
	res := &PublicationResult{Plan: plan, DryRun: o.DryRun}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit

	// A row filter PostgreSQL cannot parse against its table is reported
	// as such, before anything compares or runs it.
	if refused, _, err := CheckWheres(ctx, tx, o.Mappings, tables); err != nil {
		return nil, err
	} else if len(refused) > 0 {
		return nil, refused
	}
	same := CompareFilters(tx)
	cur, err := ReadPublication(ctx, tx, server, o.Publication)
	if err != nil {
		return nil, err
	}
	switch {
	case cur == nil:
		res.Action = PublicationCreated
		res.Statements = plan.CreateStatements()
	default:
		if res.Drift, err = plan.Diff(ctx, cur, same); err != nil {
			return nil, permanentIfSQL(err)
		}
		if cur.AllTables {
			return nil, &PlanError{Publication: o.Publication, Problems: []Problem{{
				Reason: "exists and is FOR ALL TABLES: it publishes every table of the database and cannot be altered to a table list",
				Fix:    fmt.Sprintf("DROP PUBLICATION %s (or baitoru-cdc teardown), or choose another source.publication", pgx.Identifier{o.Publication}.Sanitize()),
			}}}
		}
		res.Action = PublicationUnchanged
		if len(res.Drift) > 0 {
			res.Action = PublicationAltered
			res.Statements = plan.AlterStatements(res.Drift)
		}
	}
	if len(res.Statements) > 0 {
		if _, err := tx.Exec(ctx, "SAVEPOINT baitoru_cdc_apply"); err != nil {
			return nil, fmt.Errorf("publication %s: %w", o.Publication, err)
		}
	}
	for _, st := range res.Statements {
		if err := execAlone(ctx, tx.Conn(), st.SQL); err != nil {
			return nil, statementError(ctx, tx, o, res.Action, st, err)
		}
	}
	after, err := ReadPublication(ctx, tx, server, o.Publication)
	if err != nil {
		return nil, err
	}
	if after == nil {
		return nil, fmt.Errorf("publication %s: missing after %s", o.Publication, res.Action)
	}
	if drift, err := plan.Diff(ctx, after, same); err != nil {
		return nil, permanentIfSQL(err)
	} else if len(drift) > 0 {
		ds := make([]string, len(drift))
		for i, d := range drift {
			ds[i] = d.String()
		}
		return nil, &PlanError{Publication: o.Publication, Problems: []Problem{{
			Reason: "the publication PostgreSQL made differs from the plan (" + strings.Join(ds, "; ") + "); a row filter must be one expression over its own table",
			Fix:    "check the where: expressions",
		}}}
	}
	res.FilterColumns = map[string][]string{}
	for n, pt := range after.Tables {
		if len(pt.WhereColumns) > 0 {
			res.FilterColumns[n] = pt.WhereColumns
		}
	}
	problems := UnsafeForWrites(after, tables)
	if len(problems) == 0 {
		var probeProblems []Problem
		probeProblems, res.Unprobed, err = ProbeWrites(ctx, tx, tables, TableNames(o.Mappings), o.Publication)
		if err != nil {
			return nil, err
		}
		problems = probeProblems
	}
	if len(problems) > 0 {
		if res.Action == PublicationUnchanged {
			for i := range problems {
				problems[i].Reason = "the existing publication already makes " + problems[i].Reason
			}
		}
		return nil, &PlanError{Publication: o.Publication, Problems: problems}
	}
	if o.DryRun || len(res.Statements) == 0 {
		return res, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("publication %s: commit: %w", o.Publication, err)
	}
	return res, nil
}

// statementError explains why CREATE or ALTER PUBLICATION st failed: the
// role lacks a privilege (*PrivilegeError), or a row filter breaks a rule
// PostgreSQL checks only for publications (WhereErrors); else the statement
// and PostgreSQL's error. It rolls tx back.
func statementError(ctx context.Context, tx pgx.Tx, o ApplyOptions, action PublicationAction, st Statement, err error) error {
	conn := tx.Conn()
	if msg, ok := isPrivilege(err); ok {
		if rerr := tx.Rollback(ctx); rerr != nil {
			return fmt.Errorf("publication %s: %s: %w", o.Publication, msg, rerr)
		}
		return publicationPrivilegeError(ctx, conn, o.Publication, TableNames(o.Mappings), action == PublicationCreated, msg)
	}
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT baitoru_cdc_apply"); rerr == nil {
		if refused, perr := probeWheres(ctx, tx, o.Mappings); perr == nil && len(refused) > 0 {
			return refused
		}
	}
	return permanentIfSQL(fmt.Errorf("publication %s: %s: %w", o.Publication, strings.TrimSuffix(st.Comment, "."), err))
}

// permanentIfSQL marks SQL errors that retrying cannot fix.
func permanentIfSQL(err error) error {
	if isSQLError(err) {
		return fmt.Errorf("%w: %w", err, connector.ErrPermanent)
	}
	return err
}

// DiffPublication compares the server's publication with the plan for
// the mappings, in a read-only transaction. cur is nil when the publication does
// not exist (drift is then empty).
func DiffPublication(ctx context.Context, conn *pgx.Conn, name string, mappings []*connector.Mapping) (*Plan, *PublicationState, []Drift, error) {
	server, err := postgres.ServerVersion(ctx, conn)
	if err != nil {
		return nil, nil, nil, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	tables, err := ReadTables(ctx, tx, server, TableNames(mappings))
	if err != nil {
		return nil, nil, nil, err
	}
	plan, err := PlanPublication(name, mappings, server, tables)
	if err != nil {
		return nil, nil, nil, err
	}
	cur, err := ReadPublication(ctx, tx, server, name)
	if err != nil || cur == nil {
		return plan, nil, nil, err
	}
	drift, err := plan.Diff(ctx, cur, CompareFilters(tx))
	if err != nil {
		return plan, cur, nil, err
	}
	return plan, cur, drift, nil
}

// QuoteTable quotes a "schema.name" table name as an identifier pair.
func QuoteTable(t string) string {
	schema, name, ok := strings.Cut(t, ".")
	if !ok {
		return pgx.Identifier{t}.Sanitize()
	}
	return pgx.Identifier{schema, name}.Sanitize()
}

// escapeLiteral doubles the quotes of s for a '...' string literal.
func escapeLiteral(s string) string { return strings.ReplaceAll(s, "'", "''") }

// isSQLError reports a syntax or access-rule error (SQLSTATE class 42, 22):
// retrying cannot fix it.
func isSQLError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "42") || strings.HasPrefix(pgErr.Code, "22"))
}
