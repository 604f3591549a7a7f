package dba

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
)

// The planner turns the configuration into the publication PostgreSQL must
// carry. `setup` prints and runs its statements; `run` with source.create
// runs the same ones; `check` compares the server's publication with it.
//
// Its first rule: a publication must never make a Baitoru write fail.
// PostgreSQL refuses UPDATE and DELETE on a table whose publication
// publishes updates or deletes when the table has no replica identity, when
// the publication's column list leaves out a replica identity column (any
// column list, with REPLICA IDENTITY FULL), or when its row filter
// references a column outside the replica identity. The planner refuses
// such a publication with the reason and the alternatives; setup then
// proves the result on the server (see ApplyPublication).

// ErrRefused means the configuration asks for a publication that setup will
// not create: it would make writes fail, or the server cannot carry it.
var ErrRefused = errors.New("publication refused")

// Operation names, in the order PostgreSQL's publish option lists them.
var opOrder = []string{"insert", "update", "delete"}

// Operations are the operations the publication of mappings publishes:
// those any of them maps, in PostgreSQL's order.
func Operations(mappings []*connector.Mapping) []string {
	var out []string
	for _, op := range opOrder {
		if slices.ContainsFunc(mappings, func(m *connector.Mapping) bool { return slices.Contains(opNames(m), op) }) {
			out = append(out, op)
		}
	}
	return out
}

// opNames are the names of the operations m maps, in its order.
func opNames(m *connector.Mapping) []string {
	out := make([]string, len(m.Ops))
	for i, op := range m.Ops {
		out[i] = op.String()
	}
	return out
}

// TableNames are the schema-qualified names of the mapped tables.
func TableNames(mappings []*connector.Mapping) []string {
	out := make([]string, len(mappings))
	for i, m := range mappings {
		out[i] = m.Table
	}
	return out
}

// TableInfo is what the planner and check know of one table on the server.
type TableInfo struct {
	Table  string // schema.name
	Exists bool
	Kind   byte // pg_class.relkind: 'r' table, 'p' partitioned, ...
	// Columns in attnum order, without dropped ones.
	Columns []ColumnInfo
	// ReplicaIdentity is pg_class.relreplident: 'd' default (the primary
	// key), 'i' an index, 'f' full, 'n' nothing.
	ReplicaIdentity byte
	// Identity are the replica identity columns; empty when the table has
	// none (and for FULL, where every column is).
	Identity []string
	// IdentityIndex names the index of the replica identity, if any.
	IdentityIndex string
	// Owned reports whether the connected role owns the table (or is a
	// superuser): CREATE/ALTER PUBLICATION needs it.
	Owned bool
}

// ColumnInfo is one column of a table.
type ColumnInfo struct {
	Name      string
	Num       int16
	TypeOID   uint32
	TypeName  string // format_type, e.g. "numeric(10,2)"
	Generated bool
}

// Column returns the named column, or nil.
func (t *TableInfo) Column(name string) *ColumnInfo {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// hasIdentity reports whether UPDATE and DELETE can be published at all.
func (t *TableInfo) hasIdentity() bool { return t.ReplicaIdentity == 'f' || len(t.Identity) > 0 }

// identityText describes the replica identity for people.
func (t *TableInfo) identityText() string {
	switch {
	case t.ReplicaIdentity == 'f':
		return "REPLICA IDENTITY FULL (every column)"
	case t.ReplicaIdentity == 'd' && len(t.Identity) > 0:
		return fmt.Sprintf("the primary key (%s)", strings.Join(t.Identity, ", "))
	case t.ReplicaIdentity == 'i' && len(t.Identity) > 0:
		return fmt.Sprintf("index %s (%s)", t.IdentityIndex, strings.Join(t.Identity, ", "))
	case t.ReplicaIdentity == 'n':
		return "none (REPLICA IDENTITY NOTHING)"
	}
	return "none (no primary key)"
}

// Plan is the publication the configuration needs on one server.
type Plan struct {
	Publication string
	// Server is server_version_num, e.g. 150004.
	Server int
	// Operations published, in PostgreSQL's order.
	Operations []string
	Tables     []PlannedTable
	// Notes are printed with the statements, as SQL comments.
	Notes []string
}

// PlannedTable is one table of the publication.
type PlannedTable struct {
	Table string // schema.name
	// Columns is the column list; nil publishes every column.
	Columns []string
	// Added are the replica identity columns put in the column list
	// although the mapping does not publish them.
	Added []string
	Where string // row filter; empty: every row
}

// Statement is one SQL statement with the one-line comment printed above it.
type Statement struct {
	Comment string
	SQL     string // without the final ';'
}

// Problem is one reason the planner refuses, with what to do instead.
type Problem struct {
	Table  string
	Reason string
	Fix    string
}

// PlanError lists every Problem found. It wraps ErrRefused and
// connector.ErrPermanent.
type PlanError struct {
	Publication string
	Problems    []Problem
}

func (e *PlanError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "publication %s: refused, %d %s:", e.Publication, len(e.Problems), plural(len(e.Problems), "problem", "problems"))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		if p.Table != "" {
			b.WriteString(p.Table + ": ")
		}
		b.WriteString(p.Reason)
		if p.Fix != "" {
			b.WriteString("\n    fix: " + p.Fix)
		}
	}
	return b.String()
}

func (e *PlanError) Unwrap() []error { return []error{ErrRefused, connector.ErrPermanent} }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// PlanPublication returns the publication for the mappings (resolved and
// validated by package config) on a server of the given version whose
// tables are described by tables (by schema-qualified name). It refuses (a
// *PlanError) what would make an UPDATE or DELETE fail or what the server
// cannot carry. Which columns a row filter references is known once
// PostgreSQL parsed it (ApplyPublication checks that part on the server).
func PlanPublication(name string, mappings []*connector.Mapping, server int, tables map[string]*TableInfo) (*Plan, error) {
	p := &Plan{Publication: name, Server: server, Operations: Operations(mappings)}
	var problems []Problem
	refuse := func(table, reason, fix string) {
		problems = append(problems, Problem{Table: table, Reason: reason, Fix: fix})
	}
	ops := map[string]bool{}
	for _, op := range p.Operations {
		ops[op] = true
	}
	pubUD := ops["update"] || ops["delete"]
	udList := strings.Join(intersect(p.Operations, []string{"update", "delete"}), " and ")
	lists := server >= postgres.ColumnListVersion

	for _, m := range mappings {
		t := m.Table
		qt := QuoteTable(t)
		info := tables[t]
		if info == nil || !info.Exists {
			refuse(t, "table does not exist", "create it, or remove it from tables: in the config (names are case-sensitive)")
			continue
		}
		switch info.Kind {
		case 'r':
		case 'p':
			refuse(t, "is a partitioned table: its changes are decoded under each partition's name, which the mapping does not match", "map the partitions themselves")
			continue
		default:
			refuse(t, "is not a table (relkind "+string(info.Kind)+")", "map only tables")
			continue
		}
		pt := PlannedTable{Table: t}
		cols, mapped := m.ColumnNames(), len(m.Columns) > 0
		var missing, generated []string
		for _, c := range cols {
			ci := info.Column(c)
			switch {
			case ci == nil:
				missing = append(missing, c)
			case ci.Generated:
				generated = append(generated, c)
			}
		}
		if len(missing) > 0 {
			refuse(t, fmt.Sprintf("has no column %s (it has: %s)", quoteList(missing), strings.Join(columnNames(info), ", ")),
				"fix the column names under columns: (they are case-sensitive), or add the columns to the table")
		}
		if len(generated) > 0 {
			refuse(t, fmt.Sprintf("column %s is generated: PostgreSQL does not replicate generated columns", quoteList(generated)),
				"remove it from columns:; publish the columns it is computed from")
		}
		if pubUD && !info.hasIdentity() {
			refuse(t, fmt.Sprintf("has no replica identity (%s) and the publication publishes %s: every UPDATE/DELETE on it would fail (\"cannot update table %q because it does not have a replica identity and publishes updates\")",
				info.identityText(), udList, info.Table[strings.IndexByte(info.Table, '.')+1:]),
				fmt.Sprintf("add a primary key, or ALTER TABLE %s REPLICA IDENTITY USING INDEX <unique index on NOT NULL columns>, or ALTER TABLE %s REPLICA IDENTITY FULL; or map only insert for every table of this publication (publish = 'insert' needs no replica identity); or map this table in a separate connector (its own slot and publication) that maps only insert", qt, qt))
		}
		if mapped && lists {
			switch {
			case pubUD && info.ReplicaIdentity == 'f':
				p.Notes = append(p.Notes, fmt.Sprintf("%s has REPLICA IDENTITY FULL and the publication publishes %s: PostgreSQL then allows no column list, so every column of it leaves the server; the connector publishes only the mapped ones.", t, udList))
			default:
				pt.Columns = append([]string(nil), cols...)
				if pubUD {
					for _, id := range info.Identity {
						if !slices.Contains(pt.Columns, id) {
							pt.Columns = append(pt.Columns, id)
							pt.Added = append(pt.Added, id)
						}
					}
				}
			}
		}
		if mapped && !lists {
			p.Notes = append(p.Notes, fmt.Sprintf("PostgreSQL %s has no publication column lists (15+): every column of %s leaves the server; the connector publishes only the mapped ones.", versionText(server), t))
		}
		if w := m.Where; w != "" {
			switch {
			case !lists:
				p.Notes = append(p.Notes, fmt.Sprintf("PostgreSQL %s has no publication row filters (15+): every row of %s leaves the server; the connector evaluates where: (%s) itself, with PostgreSQL, and drops the rows that do not match.", versionText(server), t, w))
			default:
				pt.Where = w
			}
		}
		if ops := opNames(m); len(ops) > 0 {
			var extra []string
			for _, op := range p.Operations {
				if !slices.Contains(ops, op) {
					extra = append(extra, op)
				}
			}
			if len(extra) > 0 {
				p.Notes = append(p.Notes, fmt.Sprintf("publish applies to every table of the publication: %s of %s also leave the server (another table maps them); the connector drops them, its mapping publishes %s only.",
					pluralOps(extra), t, strings.Join(ops, ", ")))
			}
		}
		p.Tables = append(p.Tables, pt)
	}
	if len(problems) > 0 {
		return nil, &PlanError{Publication: name, Problems: problems}
	}
	return p, nil
}

func pluralOps(ops []string) string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = op + "s"
	}
	return strings.Join(out, " and ")
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func columnNames(t *TableInfo) []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

func quoteList(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(out, ", ")
}

func versionText(num int) string {
	if num >= 100000 {
		return fmt.Sprintf("%d.%d", num/10000, num%10000)
	}
	return fmt.Sprintf("%d.%d", num/10000, num/100%100)
}

// tableSQL is one entry of a FOR TABLE / SET TABLE list.
func (t PlannedTable) tableSQL() string {
	s := QuoteTable(t.Table)
	if t.Columns != nil {
		s += " (" + quoteList(t.Columns) + ")"
	}
	if t.Where != "" {
		s += " WHERE (" + t.Where + ")"
	}
	return s
}

func (p *Plan) tableListSQL() string {
	parts := make([]string, len(p.Tables))
	for i, t := range p.Tables {
		parts[i] = "\n    " + t.tableSQL()
	}
	return strings.Join(parts, ",")
}

func (p *Plan) publishSQL() string {
	return "publish = '" + escapeLiteral(strings.Join(p.Operations, ", ")) + "'"
}

// what summarizes the plan for a statement's comment.
func (p *Plan) what() string {
	return p.tablesWhat() + ", publishing " + strings.Join(p.Operations, ", ") + " (never truncate)"
}

// tablesWhat summarizes the plan's tables.
func (p *Plan) tablesWhat() string {
	var filtered, listed int
	for _, t := range p.Tables {
		if t.Columns != nil {
			listed++
		}
		if t.Where != "" {
			filtered++
		}
	}
	s := fmt.Sprintf("%d mapped %s", len(p.Tables), plural(len(p.Tables), "table", "tables"))
	switch {
	case listed == len(p.Tables):
		s += ", only the mapped columns"
	case listed > 0:
		s += fmt.Sprintf(", mapped columns only for %d", listed)
	}
	if filtered > 0 {
		s += fmt.Sprintf(", row filters on %d", filtered)
	}
	return s
}

// CreateStatements return the statements creating the publication.
func (p *Plan) CreateStatements() []Statement {
	return []Statement{{
		Comment: fmt.Sprintf("Publication %s: %s.", p.Publication, p.what()),
		SQL: "CREATE PUBLICATION " + pgx.Identifier{p.Publication}.Sanitize() + " FOR TABLE" + p.tableListSQL() +
			"\n  WITH (" + p.publishSQL() + ")",
	}}
}

// AlterStatements return the statements turning the publication described
// by cur into the planned one (none when they match; see Diff).
func (p *Plan) AlterStatements(drift []Drift) []Statement {
	var tables, publish []string
	for _, d := range drift {
		if d.Kind == DriftOperations {
			publish = append(publish, d.Detail)
		} else {
			tables = append(tables, d.String())
		}
	}
	var out []Statement
	name := pgx.Identifier{p.Publication}.Sanitize()
	if len(tables) > 0 {
		out = append(out, Statement{
			Comment: fmt.Sprintf("Publication %s: set its tables to the %s (%s).", p.Publication, p.tablesWhat(), strings.Join(tables, "; ")),
			SQL:     "ALTER PUBLICATION " + name + " SET TABLE" + p.tableListSQL(),
		})
	}
	if len(publish) > 0 {
		out = append(out, Statement{
			Comment: fmt.Sprintf("Publication %s: %s.", p.Publication, strings.Join(publish, "; ")),
			SQL:     "ALTER PUBLICATION " + name + " SET (" + p.publishSQL() + ")",
		})
	}
	return out
}

// IdentityNotes are the REPLICA IDENTITY advice for the tables mapped with
// update or delete, printed as comments.
func IdentityNotes(mappings []*connector.Mapping, tables map[string]*TableInfo) []string {
	var out []string
	for _, m := range mappings {
		t := m.Table
		info := tables[t]
		ops := opNames(m)
		if info == nil || !info.Exists || !(slices.Contains(ops, "update") || slices.Contains(ops, "delete")) {
			continue
		}
		qt := QuoteTable(t)
		switch {
		case info.ReplicaIdentity == 'f':
			out = append(out, fmt.Sprintf("%s (mapped with %s): REPLICA IDENTITY FULL: an event's old row carries every column (more WAL per update/delete).", t, strings.Join(ops, ", ")))
		case len(info.Identity) > 0:
			out = append(out, fmt.Sprintf("%s (mapped with %s): replica identity is %s: an update/delete event's old row carries only those columns. For whole old rows: ALTER TABLE %s REPLICA IDENTITY FULL (more WAL; no column list then).",
				t, strings.Join(ops, ", "), info.identityText(), qt))
		default:
			out = append(out, fmt.Sprintf("%s (mapped with %s): no replica identity: add a primary key, or ALTER TABLE %s REPLICA IDENTITY USING INDEX <unique index>, or REPLICA IDENTITY FULL.", t, strings.Join(ops, ", "), qt))
		}
	}
	return out
}

// CommentSafe makes s safe inside a one-line SQL comment: names from the
// configuration may hold line breaks, which would end the comment.
func CommentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029 || r == 0x85 {
			return '?'
		}
		return r
	}, s)
}

// RoleNotes are the comments describing the role the connector should use:
// LOGIN REPLICATION, CONNECT, and SELECT on the published columns (and
// those row filters read) so that `check` can compare filters. Streaming
// itself needs no table privilege.
func RoleNotes(role, database string, p *Plan, filterColumns map[string][]string) []string {
	r := pgx.Identifier{role}.Sanitize()
	out := []string{
		fmt.Sprintf("CREATE ROLE %s WITH LOGIN REPLICATION;  -- then \\password %s; not a superuser", r, r),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s;", pgx.Identifier{database}.Sanitize(), r),
	}
	schemas := map[string]bool{}
	for _, t := range p.Tables {
		schema, _, _ := strings.Cut(t.Table, ".")
		if !schemas[schema] {
			schemas[schema] = true
			out = append(out, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", pgx.Identifier{schema}.Sanitize(), r))
		}
	}
	for _, t := range p.Tables {
		cols := append([]string(nil), t.Columns...)
		for _, c := range filterColumns[t.Table] {
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
		if t.Columns == nil {
			out = append(out, fmt.Sprintf("GRANT SELECT ON %s TO %s;", QuoteTable(t.Table), r))
		} else {
			out = append(out, fmt.Sprintf("GRANT SELECT (%s) ON %s TO %s;", quoteList(cols), QuoteTable(t.Table), r))
		}
	}
	return out
}
