package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/connector/telemetry"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// logLines returns the JSON log lines of p whose msg is msg.
func logLines(p *proc, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.output(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestColumnTypeChangeWarnedOnce: with a DBA's own publication (no column
// list), ALTER COLUMN … TYPE changes the JSON form of a published field.
// The connector warns once per change, naming table, column, old and new
// type, also across a reconnect, and counts it in a metric.
func TestColumnTypeChangeWarnedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	dsn := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, dsn, appsDDL)
	testenv.MustExec(t, dsn, "CREATE PUBLICATION dba_pub FOR TABLE apps")
	testenv.MustExec(t, dsn, "SELECT pg_create_logical_replication_slot('dba_slot', 'pgoutput')")
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`
source:
  dsn: %s
  slot: dba_slot
  publication: dba_pub
  create: false
  status_interval: 200ms
  reconnect: {initial: 100ms, max: 500ms}
publisher:
  kind: stdout
metrics:
  listen: "127.0.0.1:0"
log:
  level: info
  format: json
tables:
  - table: public.apps
    columns:
      - column: application_id
      - column: company_id
      - column: answers
`, dsn)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "run", "--config", cfgPath)
	base := "http://" + logAttr(t, p, "serving /metrics, /healthz, /readyz", "addr")
	p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	const warning = "a published column changed type: its values in events change form"
	insert := func(id int, company string) {
		t.Helper()
		testenv.MustExec(t, dsn, fmt.Sprintf("INSERT INTO apps (application_id, company_id) VALUES (%d, %s)", id, company))
		p.waitLog(t, fmt.Sprintf(`"application_id":%d,`, id), 30*time.Second)
	}
	insert(1, "7")
	testenv.MustExec(t, dsn, "ALTER TABLE apps ALTER COLUMN company_id TYPE text")
	insert(2, "'8'")
	p.waitLog(t, `"company_id":"8"`, 10*time.Second)
	// A reconnect re-announces the relation: no new warning.
	testenv.MustExec(t, dsn, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'dba_slot'")
	insert(3, "'9'")
	testenv.MustExec(t, dsn, "ALTER TABLE apps ALTER COLUMN company_id TYPE jsonb USING to_jsonb(company_id)")
	insert(4, `'{"id": 10}'`)
	p.waitLog(t, `"company_id":\{"id":10\}`, 10*time.Second)

	// SQL NULL and the JSON value null of a jsonb column are both null in
	// events (docs/kobot.md says so).
	testenv.MustExec(t, dsn, `INSERT INTO apps (application_id, company_id, answers) VALUES (5, '11', NULL), (6, '12', 'null')`)
	p.waitLog(t, `"application_id":6,`, 30*time.Second)
	for _, id := range []string{"5", "6"} {
		if !regexp.MustCompile(`"application_id":` + id + `,[^\n]*"answers":null`).MatchString(p.output()) {
			t.Errorf("event of row %s has no \"answers\":null:\n%s", id, p.output())
		}
	}

	got := logLines(p, warning)
	want := [][2]string{{"int8", "text"}, {"text", "jsonb"}}
	if len(got) != len(want) {
		t.Fatalf("%d type change warnings, want %d:\n%s", len(got), len(want), p.output())
	}
	for i, w := range want {
		g := got[i]
		if g["level"] != "WARN" || g["table"] != "public.apps" || g["column"] != "company_id" || g["field"] != "company_id" ||
			g["old_type"] != w[0] || g["new_type"] != w[1] || g["lsn"] == nil {
			t.Errorf("warning %d: %v, want %s → %s", i, g, w[0], w[1])
		}
	}
	if v := sample(scrape(t, base+"/metrics"), telemetry.ColumnTypeChanges, "table", "public.apps"); v != 2 {
		t.Fatalf("%s = %v, want 2", telemetry.ColumnTypeChanges, v)
	}
}
