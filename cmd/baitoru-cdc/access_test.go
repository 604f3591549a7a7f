package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestRunAccessRefused: what PostgreSQL refuses for who the connector is
// (a wrong password, a role without REPLICATION, a password changed while
// it streams) stops run with exit 1, what is wrong and the fix, at start and
// after a reconnect; a server that does not answer is retried with the
// attempt and the next delay, and no stream is said to be interrupted when
// none was open.
func TestRunAccessRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	// Parallel: it has a PostgreSQL of its own and sets no environment.
	t.Parallel()
	pg := testenv.OwnPG(t, testenv.PostgresOptions{HBA: []string{
		"host all pwrole 127.0.0.1/32 scram-sha-256",
		"host replication pwrole 127.0.0.1/32 scram-sha-256",
	}})
	super := pg.DSN("postgres")
	testenv.MustExec(t, super, `CREATE ROLE pwrole LOGIN REPLICATION SUPERUSER PASSWORD 'right-pw'`)
	testenv.MustExec(t, super, `CREATE ROLE norepl LOGIN`)
	testenv.MustExec(t, super, `CREATE DATABASE acc`)
	db := pg.DSN("acc")
	testenv.MustExec(t, db, appsDDL)
	testenv.MustExec(t, db, `GRANT SELECT ON apps TO norepl`)
	testenv.MustExec(t, db, `CREATE PUBLICATION cdc FOR TABLE apps`)
	testenv.MustExec(t, db, `SELECT pg_create_logical_replication_slot('cdc', 'pgoutput')`)
	dsnAs := func(user string) string {
		return strings.Replace(db, "postgres://postgres@", "postgres://"+user+"@", 1)
	}
	if !strings.HasPrefix(db, "postgres://postgres@") {
		t.Fatalf("unexpected DSN form %s", db)
	}
	write := func(dsn, password string) string {
		path := filepath.Join(t.TempDir(), "config.yaml")
		cfg := fmt.Sprintf(`
source:
  dsn: "%s"
  password: "%s"
  slot: cdc
  publication: cdc
  create: false
  status_interval: 200ms
  reconnect: {initial: 100ms, max: 300ms}
publisher:
  kind: stdout
log:
  level: info
  format: json
tables:
  - table: public.apps
    columns:
      - column: application_id
`, dsn, password)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	refused := func(t *testing.T, p *proc, want ...string) {
		t.Helper()
		err := p.wait(t, 60*time.Second)
		out := p.output()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		last := lines[len(lines)-1]
		if code := exitCodeOf(err); code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		for _, w := range want {
			if !strings.Contains(last, w) {
				t.Errorf("last line does not say %q: %s", w, last)
			}
		}
		if strings.Contains(last, "permanent error") || strings.Contains(last, "SQLSTATE") || strings.Contains(out, "right-pw") || strings.Contains(out, "wrong-pw") {
			t.Errorf("internal words or a password in the output:\n%s", out)
		}
	}

	t.Run("wrong password at start", func(t *testing.T) {
		p := startProc(t, "run", "--config", write(dsnAs("pwrole"), "wrong-pw"))
		refused(t, p, `refused the password of role "pwrole"`, "fix: check the user in source.dsn and source.password")
		if strings.Contains(p.output(), "replication stream interrupted") {
			t.Errorf("a stream said interrupted though none was open:\n%s", p.output())
		}
	})
	t.Run("role without REPLICATION", func(t *testing.T) {
		p := startProc(t, "run", "--config", write(dsnAs("norepl"), ""))
		refused(t, p, `role "norepl" may not open a replication connection`, `fix: a DBA runs ALTER ROLE "norepl" WITH REPLICATION`)
	})
	t.Run("password changed while streaming", func(t *testing.T) {
		p := startProc(t, "run", "--config", write(dsnAs("pwrole"), "right-pw"))
		p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
		testenv.MustExec(t, super, `ALTER ROLE pwrole PASSWORD 'new-pw'`)
		testenv.MustExec(t, db, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'cdc'`)
		refused(t, p, `refused the password of role "pwrole"`, "fix: check the user in source.dsn and source.password")
	})
	t.Run("nothing listens", func(t *testing.T) {
		addr := freeAddr(t)
		host, port, _ := strings.Cut(addr, ":")
		dsn := fmt.Sprintf("host=%s port=%s user=postgres dbname=acc sslmode=disable connect_timeout=2", host, port)
		p := startProc(t, "run", "--config", write(dsn, ""))
		eventually(t, 30*time.Second, "retries logged", func() string {
			if n := len(logLines(p, "cannot prepare the publication and the slot; retrying")); n < 2 {
				return fmt.Sprintf("%d retry lines:\n%s", n, p.output())
			}
			return ""
		})
		l := logLines(p, "cannot prepare the publication and the slot; retrying")
		if l[0]["attempt"] != float64(1) || l[1]["attempt"] != float64(2) || l[0]["retry_in"] == nil {
			t.Errorf("retry lines %v", l)
		}
		if strings.Contains(p.output(), "replication stream interrupted") {
			t.Errorf("a stream said interrupted though none was open:\n%s", p.output())
		}
	})
}
