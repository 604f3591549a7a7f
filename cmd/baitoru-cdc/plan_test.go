package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestPlanGolden runs plan for each kind of change under testdata/plan/<case>
// (running.yaml: the connector's file, whose publication is created first;
// new.yaml: the change) against the sample schema and rows, and compares
// the output and the exit code with want.txt (go test -run TestPlanGolden
// -update rewrites them). It also checks that plan changed nothing.
func TestPlanGolden(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	pg := testenv.PG(t)
	src := pg.NewDatabase(t)
	root := testenv.ModuleRoot()
	for _, f := range []string{"baitoru.sql", "sample_data.sql"} {
		sql, err := os.ReadFile(filepath.Join(root, "testdata", "schema", f))
		if err != nil {
			t.Fatal(err)
		}
		testenv.MustExec(t, src, string(sql))
	}
	// A role that may read the tables but owns none: it may not change a
	// publication.
	testenv.MustExec(t, src, `DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'plan_not_owner') THEN CREATE ROLE plan_not_owner LOGIN; END IF;
	END $$; GRANT SELECT ON ALL TABLES IN SCHEMA public TO plan_not_owner`)
	u, _ := url.Parse(src)
	u.User = url.User("plan_not_owner")
	t.Setenv("PLAN_TEST_DSN", src)
	t.Setenv("PLAN_TEST_DSN_NOT_OWNER", u.String())
	t.Setenv("TEST_PII_KEY", "plan-test-key-0123456789")

	cases, _ := filepath.Glob(filepath.Join(root, "testdata", "plan", "*", "new.yaml"))
	if len(cases) < 7 {
		t.Fatalf("%d plan cases, want every kind of change", len(cases))
	}
	for _, newFile := range cases {
		dir := filepath.Dir(newFile)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			runFile := filepath.Join(dir, "running.yaml")
			cur, err := config.LoadConnector(runFile)
			if err != nil {
				t.Fatal(err)
			}
			next, err := config.LoadConnector(newFile)
			if err != nil {
				t.Fatal(err)
			}
			// The running connector's publication, made by the owner.
			owner, err := connectSource(ctx, cur, src)
			if err != nil {
				t.Fatal(err)
			}
			defer owner.Close(ctx)
			if _, err := dba.ApplyPublication(ctx, owner, dba.ApplyOptions{Publication: cur.Source.Publication, Mappings: cur.Mappings()}); err != nil {
				t.Fatal(err)
			}
			before, _ := dba.ReadPublication(ctx, owner, 150000, cur.Source.Publication)

			var out bytes.Buffer
			err = plan(ctx, &out, planInput{file: "new.yaml", running: "running.yaml", cur: cur, next: next})
			code := planExitCode(err)
			if code == 1 {
				t.Fatalf("plan: %v", err)
			}
			got := out.String() + "exit code: " + string(rune('0'+code)) + "\n"
			want := filepath.Join(dir, "want.txt")
			if *updateDocs {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			w, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(w) {
				t.Errorf("plan output differs (go test ./cmd/baitoru-cdc -run TestPlanGolden -update)\n--- got\n%s--- want\n%s", got, w)
			}
			after, _ := dba.ReadPublication(ctx, owner, 150000, cur.Source.Publication)
			if len(before.Tables) != len(after.Tables) || before.Update != after.Update {
				t.Errorf("plan changed the publication")
			}
		})
	}
}

func planExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// TestPlanInvalidFile: an invalid new file is every problem with file:line
// and exit 1, before any connection.
func TestPlanInvalidFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "new.yaml")
	os.WriteFile(bad, []byte("source:\n  dsn: postgres://x@localhost/db\nsns:\n  region: us-east-1\n  topic_arn: arn:aws:sns:us-east-1:000000000000:t\ntables:\n  - table: public.a\n    columns:\n      - column: id\n        transform: {kind: hash}\n"), 0o600)
	cmd := newRootCmd()
	cmd.SetArgs([]string{"plan", "--config", bad, "--running", bad})
	var stderr bytes.Buffer
	cmd.SetErr(&stderr)
	err := cmd.Execute()
	if planExitCode(err) != 1 || !strings.Contains(err.Error(), "new.yaml:10: tables[0].columns[0].transform.key_env: required") {
		t.Errorf("plan of an invalid file: %v", err)
	}
}
