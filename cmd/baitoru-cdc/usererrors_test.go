package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// userErrorCase is one mistake a user can make, the command that meets it
// and what that command must say.
type userErrorCase struct {
	name string
	// sql runs as the superuser in the case's own database first, one
	// statement at a time.
	sql []string
	// role is the user of source.dsn: cdc (LOGIN REPLICATION, SELECT on
	// the tables, owns nothing), norepl (the same without REPLICATION), or
	// postgres (the superuser).
	role   string
	create bool
	// where is public.postings' row filter (tables[1].where), if any.
	where string
	// args are the command and its flags; --config is added, and "{dba}"
	// is replaced by the superuser's DSN of the case's database.
	args []string
	code int
	// want are in the output (stdout and stderr); "{file}" is the config
	// file, "{where}" file:line of tables[1].where.
	want []string
}

// TestUserErrors: every mistake a user can make in the database part of
// run, setup, check, teardown and backfill — a role that may not do what
// the configuration asks, a row filter PostgreSQL refuses, a backfill
// predicate the connector would refuse — ends with a
// message naming what is wrong (for a row filter: at its key and line of
// the file) and the fix for who runs the command; never an internal
// classification, a raw multi-line driver error or a bare SQLSTATE. Real
// PostgreSQL, the real binary.
func TestUserErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg := testenv.OwnPG(t, testenv.PostgresOptions{})
	super := pg.DSN("postgres")
	testenv.MustExec(t, super, `CREATE ROLE cdc LOGIN REPLICATION; CREATE ROLE norepl LOGIN`)

	refusesCreate := []string{`role "cdc" may not create publication cdc (PostgreSQL: permission denied for database`,
		"it lacks CREATE on database", "the ownership of public.apps, public.postings (owner: postgres)"}
	cases := []userErrorCase{
		{
			name: "run: source.create as a role that may not create the publication",
			role: "cdc", create: true, args: []string{"run"}, code: 1,
			want: append(refusesCreate, "fix: set source.create: false and let a DBA create the publication and the slot with `baitoru-cdc setup --config {file} --dsn 'postgres://<dba>@<host>:<port>/<database>'` (docs/dba.md)"),
		},
		{
			name: "run: source.create as a role without REPLICATION",
			sql:  []string{`ALTER TABLE apps OWNER TO norepl`, `ALTER TABLE postings OWNER TO norepl`, `GRANT CREATE ON DATABASE current_db TO norepl`},
			role: "norepl", create: true, args: []string{"run"}, code: 1,
			want: []string{`role "norepl" may not create replication slot {slot}`, "it lacks the REPLICATION attribute",
				`fix: give the role what it lacks (as a DBA): ALTER ROLE "norepl" WITH REPLICATION (the connector streams as a replication role)`},
		},
		{
			name: "run: source.create with a row filter naming no column",
			role: "postgres", create: true, where: "publishd", args: []string{"run"}, code: 1,
			want: []string{`{where}: tables[1].where: PostgreSQL refuses the row filter of public.postings: column "publishd" does not exist (at character 1 of where:); fix: Perhaps you meant to reference the column "postings.published"`},
		},
		{
			name: "setup as the connector's role",
			role: "cdc", args: []string{"setup"}, code: 1,
			want: append(refusesCreate, "setup: role", "fix: run setup as a DBA (a superuser, or the owner of the mapped tables with CREATE on the database and REPLICATION): add --dsn", "nothing was changed."),
		},
		{
			name: "setup --dry-run: a row filter naming no column",
			role: "cdc", where: "publishd AND posting_id > 0", args: []string{"setup", "--dsn", "{dba}", "--dry-run"}, code: 1,
			want: []string{`{where}: tables[1].where: PostgreSQL refuses the row filter of public.postings: column "publishd" does not exist (at character 1 of where:); fix: Perhaps you meant to reference the column "postings.published"`, "nothing was changed."},
		},
		{
			name: "setup --dry-run: a row filter with a syntax error",
			role: "cdc", where: "published AND", args: []string{"setup", "--dsn", "{dba}", "--dry-run"}, code: 1,
			want: []string{`{where}: tables[1].where: PostgreSQL refuses the row filter of public.postings: syntax error at or near ")" (at the end of where:); fix: correct the SQL syntax of where:`},
		},
		{
			name: "setup --dry-run: a row filter that is not a condition",
			role: "cdc", where: "title", args: []string{"setup", "--dsn", "{dba}", "--dry-run"}, code: 1,
			want: []string{`{where}: tables[1].where: PostgreSQL refuses the row filter of public.postings: it is not a condition: argument of WHERE must be type boolean, not type text`, "fix: write a boolean expression"},
		},
		{
			name: "setup --dry-run: a row filter comparing across types",
			role: "cdc", where: "published = 1", args: []string{"setup", "--dsn", "{dba}", "--dry-run"}, code: 1,
			want: []string{`{where}: tables[1].where: PostgreSQL refuses the row filter of public.postings: operator does not exist: boolean = integer (at character 11 of where:)`, "fix: No operator matches the given name and argument types"},
		},
		{
			name: "setup --dry-run: a row filter reading another table",
			role: "cdc", where: "apps.company_id = 1", args: []string{"setup", "--dsn", "{dba}", "--dry-run"}, code: 1,
			want: []string{`{where}: tables[1].where: PostgreSQL refuses the row filter of public.postings: missing FROM-clause entry for table "apps" (at character 1 of where:): a row filter can read only its own table's columns`},
		},
		{
			name: "setup --dry-run: a row filter PostgreSQL allows in queries but not in publications",
			role: "cdc", where: "posting_id > 0 AND random() > 0.5", args: []string{"setup", "--dsn", "{dba}", "--dry-run"}, code: 1,
			want: []string{`{where}: tables[1].where: PostgreSQL refuses the row filter of public.postings: not allowed in a publication row filter`, "User-defined or built-in mutable functions are not allowed",
				"fix: use only the table's columns, constants, built-in operators and immutable built-in functions"},
		},
		{
			name: "check: a row filter naming no column",
			role: "cdc", where: "publishd", args: []string{"check", "--dsn", "{dba}"}, code: checkCritical,
			want: []string{`✗ row filter public.postings`, `where: publishd ({where}: tables[1].where): column "publishd" does not exist (at character 1 of where:)`,
				`fix: Perhaps you meant to reference the column "postings.published"`},
		},
		{
			name: "teardown as a role that does not own the publication",
			sql:  []string{`CREATE PUBLICATION cdc FOR TABLE apps`, `SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')`},
			role: "cdc", args: []string{"teardown", "--yes"}, code: 1,
			want: []string{`teardown: refused, nothing dropped: role "cdc" may not drop publication cdc: it lacks the ownership of publication cdc (owner: postgres)`,
				"fix: run teardown as a DBA (a superuser, or the publication's owner with REPLICATION): add --dsn"},
		},
		{
			name: "teardown as a role without REPLICATION",
			sql:  []string{`CREATE PUBLICATION cdc FOR TABLE apps`, `ALTER PUBLICATION cdc OWNER TO norepl`, `SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')`},
			role: "norepl", args: []string{"teardown", "--yes"}, code: 1,
			want: []string{`teardown: refused, nothing dropped: role "norepl" may not drop replication slot {slot}: it lacks the REPLICATION attribute (to drop a slot)`,
				`or give the role what it lacks (as a DBA): ALTER ROLE "norepl" WITH REPLICATION`},
		},
		{
			name: "run: a flag it does not know",
			role: "cdc", args: []string{"run", "--slot", "x"}, code: 1,
			want: []string{"baitoru-cdc run: unknown flag: --slot (see baitoru-cdc run --help)"},
		},
		{
			name: "backfill start: a --where naming a field the events do not carry",
			role: "cdc", args: []string{"backfill", "start", "--table", "public.apps", "--where", "compny_id = 7"}, code: 1,
			want: []string{`backfill start: --where: predicate "compny_id = 7": compny_id is not a published field of the table`,
				"fix: write a condition over the fields public.apps publishes (application_id, company_id) with =, <>"},
		},
		{
			name: "backfill start: a --where outside the grammar",
			role: "cdc", args: []string{"backfill", "start", "--table", "public.apps", "--where", "company_id = 7; DROP TABLE apps"}, code: 1,
			want: []string{`backfill start: --where: predicate "company_id = 7; DROP TABLE apps": "; DROP TAB" is not allowed`, "fix: write a condition over the fields public.apps publishes"},
		},
		{
			name: "backfill list: backfill not set up in the database",
			role: "cdc", args: []string{"backfill", "list"}, code: 1,
			want: []string{`backfill is not set up in this database (relation "baitoru_cdc.backfills" does not exist); fix: a DBA runs baitoru-cdc setup`},
		},
		{
			name: "backfill start: a role that may not request backfills",
			sql: []string{`CREATE SCHEMA baitoru_cdc`, `CREATE TABLE baitoru_cdc.backfill_requests (backfill_id text, action text, table_name text, filter text,
				key_field text, key_value text, slot text, UNIQUE (backfill_id, action))`},
			role: "cdc", args: []string{"backfill", "start", "--table", "public.apps", "--where", "company_id = 7"}, code: 1,
			want: []string{`backfill start: role "cdc" may not request backfills or read their progress (PostgreSQL: permission denied for schema baitoru_cdc); fix: as a DBA, GRANT USAGE ON SCHEMA baitoru_cdc TO "cdc"; GRANT SELECT, INSERT (backfill_id, action, table_name, filter, key_field, key_value, slot) ON baitoru_cdc.backfill_requests TO "cdc"; GRANT SELECT ON baitoru_cdc.backfills TO "cdc"`},
		},
	}
	for i, tc := range cases {
		slot := fmt.Sprintf("cdc_%d", i) // slots are the cluster's
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dba := pg.NewDatabase(t)
			testenv.MustExec(t, dba, dbaDDL+`
				ALTER TABLE postings ADD COLUMN company_id bigint;
				GRANT SELECT ON ALL TABLES IN SCHEMA public TO cdc, norepl;`)
			db := dba[strings.LastIndex(dba, "/")+1:]
			db, _, _ = strings.Cut(db, "?")
			for _, sql := range tc.sql {
				testenv.MustExec(t, dba, strings.NewReplacer("current_db", `"`+db+`"`, "{slot}", slot).Replace(sql))
			}
			dsn := strings.Replace(dba, "postgres://postgres@", "postgres://"+tc.role+"@", 1)
			file, whereLine := userErrorConfig(t, dsn, slot, tc.create, tc.where)
			args := append([]string(nil), tc.args...)
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "{dba}", dba)
			}
			args = append(args, "--config", file)
			res := runBinaryEnv(t, []string{"BAITORU_CDC_LOG_FORMAT=text"}, args...)
			out := res.stdout + res.stderr
			if res.code != tc.code {
				t.Errorf("exit %d, want %d", res.code, tc.code)
			}
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "{file}", file)
				w = strings.ReplaceAll(w, "{slot}", slot)
				w = strings.ReplaceAll(w, "{where}", fmt.Sprintf("%s:%d", file, whereLine))
				if !strings.Contains(out, w) {
					t.Errorf("the output does not say %q", w)
				}
			}
			// What the command says (its log lines aside: they carry
			// the errors they log as PostgreSQL put them).
			var said []string
			for _, l := range strings.Split(out, "\n") {
				if !strings.HasPrefix(l, "time=") {
					said = append(said, l)
				}
			}
			for _, never := range []string{"permanent error", "SQLSTATE", "\n\t", "failed to connect to"} {
				if strings.Contains(strings.Join(said, "\n"), never) {
					t.Errorf("the output has %q", never)
				}
			}
			if t.Failed() {
				t.Logf("baitoru-cdc %s:\n%s", strings.Join(args, " "), res)
			}
		})
	}
}

// userErrorConfig writes the configuration of a TestUserErrors case:
// slot, publication cdc, public.apps (insert, update) and public.postings
// (insert, with where as its row filter), publishing to stdout. It returns the file and the line
// of tables[1].where (0 without one).
func userErrorConfig(t *testing.T, dsn, slot string, create bool, where string) (string, int) {
	t.Helper()
	cfg := fmt.Sprintf(`source:
  dsn: "%s"
  slot: %s
  publication: cdc
  create: %t
  reconnect: {initial: 100ms, max: 300ms}
publisher:
  kind: stdout
tables:
  - table: public.apps
    operations: [insert, update]
    columns:
      - column: application_id
      - column: company_id
  - table: public.postings
    columns:
      - column: posting_id
      - column: title
`, dsn, slot, create)
	line := 0
	if where != "" {
		line = strings.Count(cfg, "\n") + 1
		cfg += fmt.Sprintf("    where: %q\n", where)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, line
}
