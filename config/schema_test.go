package config

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestShippedConfigMatchesSampleSchema loads testdata/schema/baitoru.sql and
// sample_data.sql into a fresh PostgreSQL database and checks that every
// table and column the shipped config.yaml names exists there, and that the
// personal-data columns it leaves out do exist (so leaving them out means
// something).
func TestShippedConfigMatchesSampleSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL (skipped by -short)")
	}
	dsn := testenv.PG(t).NewDatabase(t)
	for _, f := range []string{"../testdata/schema/baitoru.sql", "../testdata/schema/sample_data.sql", "../testdata/schema/baitoru.sql"} {
		sql, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		testenv.MustExec(t, dsn, string(sql)) // the schema twice: it must be re-runnable
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	columnsOf := func(table string) map[string]bool {
		schema, name, _ := strings.Cut(table, ".")
		rows, err := conn.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`, schema, name)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		for _, c := range cols {
			set[c] = true
		}
		return set
	}

	clearReferencedVars(t, "../config.yaml")
	t.Setenv("BAITORU_CDC_DEMO", "true")
	cfg := mustLoad(t, "../config.yaml")
	published := map[string]map[string]bool{} // table -> published names
	for _, tb := range cfg.Tables {
		cols := columnsOf(tb.Table)
		if len(cols) == 0 {
			t.Errorf("config.yaml maps %s, which the sample schema does not have", tb.Table)
			continue
		}
		published[tb.Table] = map[string]bool{}
		for _, c := range tb.Columns {
			if !cols[c.Column] {
				t.Errorf("config.yaml publishes %s.%s, which the sample schema does not have", tb.Table, c.Column)
			}
			name := c.Column
			if c.Rename != "" {
				name = c.Rename
			}
			published[tb.Table][name] = true
		}
	}
	for _, c := range []string{"applicant_name", "applicant_email", "applicant_phone"} {
		if !columnsOf("public.applications")[c] {
			t.Errorf("sample schema lacks public.applications.%s", c)
		}
	}
	for _, l := range cfg.Sink.Links {
		if l.Table != "" && !published[l.Table][l.Field] {
			t.Errorf("sink.links: %s has no published field %s", l.Table, l.Field)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM applications a JOIN job_postings p USING (posting_id) JOIN companies c ON c.company_id = a.company_id`).Scan(&n); err != nil || n == 0 {
		t.Errorf("sample data: %d joined applications, err %v", n, err)
	}
}
