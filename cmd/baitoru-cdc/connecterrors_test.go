package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// connectErrorCase is a database connection a user got wrong, the
// command that meets it and what it must say.
type connectErrorCase struct {
	name string
	// role is the user of the DSN: pwrole (password "right-pw", scram),
	// rejected (pg_hba.conf rejects it), nologin, ghost (no such role), cdc
	// (trust).
	role, password string
	// db replaces the case's database name; host:port replace the
	// server's ("{closed}": a port nothing listens on); query is the DSN's.
	db, host, query string
	// sql runs as the superuser in the case's database first ("{db}" is
	// its name).
	sql []string
	// sink: the DSN and password are the sink's (sink.dsn,
	// sink.password), and the command is sink.
	sink bool
	args []string
	code int
	// want are in the output; "{addr}" is host:port of the DSN, "{db}"
	// the database's name.
	want []string
}

// TestConnectErrors: every way a user can get a database connection
// wrong — password (wrong, missing), host, port, database, role (missing,
// may not log in, rejected by pg_hba.conf, no CONNECT), TLS the server
// does not offer, a sink role that may not create its tables — is reported
// by check, setup, teardown, backfill, run and sink as one line naming
// the database, what is wrong and the fix in terms of the key that sets it
// (source.dsn, source.password, sink.dsn, sink.password, --dsn); never the
// driver's multi-line text, a SQLSTATE or internal words. Real PostgreSQL,
// the real binary.
func TestConnectErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg := testenv.OwnPG(t, testenv.PostgresOptions{HBA: []string{
		"host all pwrole 127.0.0.1/32 scram-sha-256",
		"host replication pwrole 127.0.0.1/32 scram-sha-256",
		"host all rejected 127.0.0.1/32 reject",
		"host replication rejected 127.0.0.1/32 reject",
	}})
	super := pg.DSN("postgres")
	testenv.MustExec(t, super, `CREATE ROLE pwrole LOGIN REPLICATION PASSWORD 'right-pw';
		CREATE ROLE rejected LOGIN REPLICATION; CREATE ROLE nologin NOLOGIN REPLICATION; CREATE ROLE cdc LOGIN REPLICATION`)
	server := fmt.Sprintf("127.0.0.1:%d", pg.Port)
	closed := freeAddr(t) // nothing listens once freeAddr returned

	wrongPassword := `PostgreSQL at {addr} refused the password of role "pwrole" (or there is no such role)`
	cases := []connectErrorCase{
		{
			name: "check: wrong password", role: "pwrole", password: "wrong-pw", args: []string{"check"}, code: checkCritical,
			want: []string{"✗ connect", wrongPassword, "fix: check the user in source.dsn and source.password (the shipped config.yaml reads it from BAITORU_DB_PASSWORD)"},
		},
		{
			name: "setup --dry-run: no password", role: "pwrole", args: []string{"setup", "--dry-run"}, code: 1,
			want: []string{`PostgreSQL at {addr} asks role "pwrole" for a password, and none is set; fix: set source.password`},
		},
		{
			name: "setup --dsn: wrong password", role: "cdc", args: []string{"setup", "--dry-run", "--dsn", "postgres://pwrole:wrong-pw@{addr}/{db}?sslmode=disable"}, code: 1,
			want: []string{wrongPassword, "fix: check the user in --dsn and the password in --dsn, PGPASSWORD or ~/.pgpass"},
		},
		{
			name: "run: no such database", role: "cdc", db: "baitoruu", args: []string{"run"}, code: 1,
			want: []string{`PostgreSQL at {addr} has no database "baitoruu"; fix: check the database name in source.dsn (the path after host:port)`},
		},
		{
			name: "teardown: nothing listens on the port", role: "cdc", host: closed, args: []string{"teardown", "--yes"}, code: 1,
			want: []string{"nothing accepts connections at {addr}; fix: check the host and port in source.dsn, and that PostgreSQL is running"},
		},
		{
			name: "check: unknown host", role: "cdc", host: "db.nosuchhost.invalid:5432", args: []string{"check"}, code: checkCritical,
			want: []string{`cannot find host "db.nosuchhost.invalid"`, "fix: check the host in source.dsn"},
		},
		{
			name: "backfill list: pg_hba.conf rejects the role", role: "rejected", args: []string{"backfill", "list"}, code: 1,
			want: []string{`PostgreSQL at {addr} does not let role "rejected" in from this host: pg_hba.conf rejects connection`,
				"fix: a DBA adds a line for it to pg_hba.conf", "SELECT pg_reload_conf()"},
		},
		{
			name: "run: pg_hba.conf rejects the role", role: "rejected", args: []string{"run"}, code: 1,
			want: []string{`does not let role "rejected" in from this host`, "fix: a DBA adds a line for it to pg_hba.conf"},
		},
		{
			name: "check: a role that may not log in", role: "nologin", args: []string{"check"}, code: checkCritical,
			want: []string{`role "nologin" may not log in to PostgreSQL at {addr}`, `fix: a DBA runs ALTER ROLE "nologin" LOGIN`},
		},
		{
			name: "setup --dry-run: no such role", role: "ghost", args: []string{"setup", "--dry-run"}, code: 1,
			want: []string{`PostgreSQL at {addr} has no role "ghost"; fix: check the user in source.dsn, or have a DBA create the role`},
		},
		{
			name: "check: no CONNECT on the database", role: "cdc", sql: []string{`REVOKE CONNECT ON DATABASE "{db}" FROM PUBLIC`}, args: []string{"check"}, code: checkCritical,
			want: []string{`role "cdc" may not connect to database "{db}"`, `fix: a DBA runs GRANT CONNECT ON DATABASE "{db}" TO "cdc"`},
		},
		{
			name: "run: TLS required, the server offers none", role: "cdc", query: "sslmode=require", args: []string{"run"}, code: 1,
			want: []string{"PostgreSQL at {addr} does not offer TLS, and the sslmode of source.dsn requires it", "fix: enable ssl on the server"},
		},
		{
			name: "sink: wrong password", sink: true, role: "pwrole", password: "wrong-pw", code: 1,
			want: []string{"sink database: " + wrongPassword, "fix: check the user in sink.dsn and sink.password (the shipped config.yaml reads it from SINK_DB_PASSWORD)"},
		},
		{
			name: "sink: no such database", sink: true, role: "cdc", db: "sinkk", code: 1,
			want: []string{`sink database: PostgreSQL at {addr} has no database "sinkk"; fix: check the database name in sink.dsn`},
		},
		{
			name: "sink: nothing listens on the port", sink: true, role: "cdc", host: closed, code: 1,
			want: []string{"sink database: nothing accepts connections at {addr}; fix: check the host and port in sink.dsn"},
		},
		{
			name: "sink: a role that may not create its tables", sink: true, role: "cdc", code: 1,
			want: []string{`sink database: role "cdc" may not create or use the sink's tables in database "{db}" (PostgreSQL: permission denied for schema public)`,
				`fix: let the role own the database (as a DBA: ALTER DATABASE "{db}" OWNER TO "cdc"`, `GRANT CREATE, USAGE ON SCHEMA public TO "cdc"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := pg.NewDatabase(t)
			name := dsn[strings.LastIndex(dsn, "/")+1:]
			name, _, _ = strings.Cut(name, "?")
			testenv.MustExec(t, dsn, dbaDDL+`
				ALTER TABLE postings ADD COLUMN company_id bigint;
				GRANT SELECT ON ALL TABLES IN SCHEMA public TO cdc, pwrole, rejected, nologin;`)
			for _, sql := range tc.sql {
				testenv.MustExec(t, dsn, strings.ReplaceAll(sql, "{db}", name))
			}
			addr, db := server, name
			if tc.host != "" {
				addr = tc.host
			}
			if tc.db != "" {
				db = tc.db
			}
			query := "sslmode=disable"
			if tc.query != "" {
				query = tc.query
			}
			userDSN := fmt.Sprintf("postgres://%s@%s/%s?%s&connect_timeout=10", tc.role, addr, db, query)
			file := connectErrorConfig(t, userDSN, tc)
			args := append([]string(nil), tc.args...)
			if tc.sink {
				args = []string{"sink"}
			}
			r := strings.NewReplacer("{addr}", addr, "{db}", name)
			for i, a := range args {
				args[i] = r.Replace(a)
			}
			args = append(args, "--config", file)
			res := runBinaryEnv(t, []string{"BAITORU_CDC_LOG_FORMAT=text", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1"}, args...)
			out := res.stdout + res.stderr
			if res.code != tc.code {
				t.Errorf("exit %d, want %d", res.code, tc.code)
			}
			for _, w := range tc.want {
				if w = r.Replace(w); !strings.Contains(out, w) {
					t.Errorf("the output does not say %q", w)
				}
			}
			for _, never := range []string{"permanent error", "SQLSTATE", "\n\t", "failed to connect to", "right-pw", "wrong-pw", "context canceled"} {
				if strings.Contains(out, never) {
					t.Errorf("the output has %q", never)
				}
			}
			if t.Failed() {
				t.Logf("baitoru-cdc %s:\n%s", strings.Join(args, " "), res)
			}
		})
	}
}

// connectErrorConfig writes the configuration of a TestConnectErrors
// case: dsn and tc.password as the source's, or as the sink's (the source
// then unused), publishing to stdout.
func connectErrorConfig(t *testing.T, dsn string, tc connectErrorCase) string {
	t.Helper()
	source, sink := dsn, "postgres://unused@127.0.0.1:1/unused"
	sourcePW, sinkPW := tc.password, ""
	if tc.sink {
		source, sink = sink, dsn
		sourcePW, sinkPW = "", tc.password
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("connect-errors test secret, 32B"))
	cfg := fmt.Sprintf(`source:
  dsn: "%s"
  password: "%s"
  slot: cdc
  publication: cdc
  create: false
  reconnect: {initial: 100ms, max: 300ms}
publisher:
  kind: stdout
tables:
  - table: public.apps
    operations: [insert, update]
    columns:
      - column: application_id
      - column: company_id
sink:
  dsn: "%s"
  password: "%s"
  sqs:
    region: us-east-1
    endpoint: http://127.0.0.1:1
    queue_url: http://127.0.0.1:1/000000000000/q
  kobot:
    endpoint: http://127.0.0.1:1/webhooks
    secret: "%s"
  api:
    listen: 127.0.0.1:0
    token: "connect-errors-test-token-0123456789"
  links:
    - table: public.apps
      field: company_id
`, source, sourcePW, sink, sinkPW, secret)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
