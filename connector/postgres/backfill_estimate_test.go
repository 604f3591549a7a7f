package postgres_test

import (
	"context"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestBackfillEstimate: a backfill's estimated total is the number of rows
// it will read, also for rows written since the table's last ANALYZE (the
// planner, from the statistics, expects about 1 row of company 7).
func TestBackfillEstimate(t *testing.T) {
	integration(t)
	pg := testenv.PG(t)
	dsn := pg.NewDatabase(t)
	exec(t, dsn, `CREATE TABLE postings (id bigint PRIMARY KEY, company_id int NOT NULL, title text)`,
		`INSERT INTO postings SELECT i, 8, 'posting ' || i FROM generate_series(1, 1000) i`,
		`ANALYZE postings`,
		`INSERT INTO postings SELECT i, 7, 'posting ' || i FROM generate_series(1001, 1500) i`)
	src := postgres.NewBackfillSource(newPool(t, dsn), "cdc", compile(t, postingsTable), testLogger(t))
	for _, c := range []struct {
		name      string
		st        connector.BackfillState
		estimated int64
	}{
		{"whole table", connector.BackfillState{ID: "bf-all", Table: "public.postings"}, 1500},
		{"rows since ANALYZE", connector.BackfillState{ID: "bf-7", Table: "public.postings", Where: "company_id = 7"}, 500},
		{"link key", connector.BackfillState{ID: "bf-k", Table: "public.postings", KeyField: "company_id", KeyValue: "8"}, 1000},
		{"no row", connector.BackfillState{ID: "bf-none", Table: "public.postings", Where: "company_id = 9"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			plan, err := src.Prepare(context.Background(), &c.st)
			if err != nil {
				t.Fatal(err)
			}
			if plan.RowsEstimated != c.estimated {
				t.Errorf("estimated %d rows, want %d", plan.RowsEstimated, c.estimated)
			}
		})
	}
}
