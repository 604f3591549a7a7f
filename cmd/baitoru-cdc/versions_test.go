package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// cliVersionChecks are the command-level checks of the version suite, run
// on a throwaway cluster of each supported PostgreSQL version other than
// the default one (15), whose full suite has them (TestSetupCheckTeardown,
// TestRunSurvivesSIGKILL). To cover a new command on every version, add a
// row.
var cliVersionChecks = []struct {
	name string
	run  func(t *testing.T, pg *testenv.Postgres, e *e2e)
}{
	{"setup_check", testSetupCheckVersion},
	{"sigkill_resume", func(t *testing.T, pg *testenv.Postgres, e *e2e) { testRunSurvivesSIGKILL(t, e, 20, 25, 2) }},
	{"teardown", testTeardownVersion},
}

// TestVersionsCLI runs cliVersionChecks in order on PostgreSQL 13 to 18
// (testenv.Versions), one cluster per version, versions in parallel.
func TestVersionsCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	for _, v := range testenv.Versions {
		if v == testenv.PG(t).Version() {
			continue
		}
		t.Run(fmt.Sprintf("pg%d", v), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			pg := testenv.OwnPG(t, testenv.PostgresOptions{Version: v})
			e := newE2E(t, pg)
			t.Logf("PostgreSQL %d ready in %v", v, time.Since(start).Round(time.Millisecond))
			for _, c := range cliVersionChecks {
				start := time.Now()
				if !t.Run(c.name, func(t *testing.T) { c.run(t, pg, e) }) {
					return // the next checks build on this one
				}
				t.Logf("%s on PostgreSQL %d: %v", c.name, v, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}

// runBinary runs the built baitoru-cdc with the emulator's credentials: the
// in-process runCLI shares the test's environment, which parallel tests may
// not set.
func runBinary(t *testing.T, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run baitoru-cdc %v: %v", args, err)
	}
	return res
}

// testSetupCheckVersion: setup creates the publication (column lists from
// 15, failover slot from 17) and the slot; check names the version and
// what it means, and finds nothing critical.
func testSetupCheckVersion(t *testing.T, pg *testenv.Postgres, e *e2e) {
	res := runBinary(t, "setup", "--config", e.config)
	if res.code != 0 || !strings.Contains(res.stdout, `CREATE PUBLICATION "cdc"`) {
		t.Fatalf("setup: %s", res)
	}
	lists := pg.Version() >= 15
	if got := strings.Contains(res.stdout, `"public"."apps" ("application_id", "company_id", "answers")`); got != lists {
		t.Errorf("PostgreSQL %d: column list in the publication = %v, want %v:\n%s", pg.Version(), got, lists, res.stdout)
	}
	failover := pg.Version() >= 17
	if got := strings.Contains(res.stdout, "failover => true"); got != failover {
		t.Errorf("PostgreSQL %d: slot with failover = %v, want %v:\n%s", pg.Version(), got, failover, res.stdout)
	}
	var slotFailover bool
	if err := testenvQueryRow(e.dsn, `SELECT coalesce((to_jsonb(s)->>'failover')::boolean, false) FROM pg_replication_slots s WHERE slot_name = 'cdc'`, &slotFailover); err != nil || slotFailover != failover {
		t.Errorf("slot cdc failover = %v (%v), want %v", slotFailover, err, failover)
	}
	res = runBinary(t, "check", "--json", "--config", e.config)
	var rep checkReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("check --json: %v\n%s", err, res)
	}
	for _, r := range rep.Checks {
		if r.Status == dba.CheckFail {
			t.Errorf("check: %s: %s (fix: %s)", r.Check, r.Observed, r.Fix)
		}
	}
	ver := rowsWith(rep, "server version")
	if len(ver) != 1 || !strings.Contains(ver[0].Observed, fmt.Sprintf("PostgreSQL %d.", pg.Version())) {
		t.Fatalf("check: server version row %+v", ver)
	}
	wantNotes := map[bool]string{true: "no failover slots (17+)", false: "every feature"}[pg.Version() < 17]
	if pg.Version() < 14 {
		wantNotes = "no heartbeat"
	}
	if !strings.Contains(ver[0].Observed, wantNotes) {
		t.Errorf("check: server version row %q does not say %q", ver[0].Observed, wantNotes)
	}
	if wantWarn := pg.Version() < 15; (ver[0].Status == dba.CheckWarn) != wantWarn {
		t.Errorf("check: server version row status %s on PostgreSQL %d", ver[0].Status, pg.Version())
	}
	if pg.Version() >= 17 {
		if r := rowsWith(rep, "slot cdc failover"); len(r) != 1 || r[0].Status != dba.CheckOK {
			t.Errorf("check: slot failover row %+v", r)
		}
	} else if r := rowsWith(rep, "failover"); len(r) != 1 || !strings.Contains(r[0].Observed, "has no failover slots (17+)") {
		t.Errorf("check: failover row %+v", r)
	}
}

// testTeardownVersion: teardown drops the slot and the publication.
func testTeardownVersion(t *testing.T, pg *testenv.Postgres, e *e2e) {
	res := runBinary(t, "teardown", "--config", e.config, "--yes")
	if res.code != 0 || !strings.Contains(res.stdout, "dropped replication slot cdc") || !strings.Contains(res.stdout, "dropped publication cdc") {
		t.Fatalf("teardown: %s", res)
	}
	var left int
	if err := testenvQueryRow(e.dsn, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdc') + (SELECT count(*) FROM pg_publication WHERE pubname = 'cdc')`, &left); err != nil || left != 0 {
		t.Fatalf("after teardown: %d slots and publications left (%v)", left, err)
	}
}
