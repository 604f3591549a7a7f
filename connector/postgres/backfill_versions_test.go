package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// testBackfillOnVersion is the version suite's backfill check: on a server
// that carries logical messages (14+), a backfill of a small table runs its
// watermarks through the stream to the end and every row arrives once as a
// read event; on 13 the backfill is refused with the reason and the fix.
// The full backfill suite (pitfalls, resume) runs on the default version.
func testBackfillOnVersion(t *testing.T, pg *testenv.Postgres) {
	dsn := pg.NewDatabase(t)
	exec(t, dsn, `CREATE TABLE postings (id bigint PRIMARY KEY, company_id int NOT NULL, title text)`,
		`INSERT INTO postings SELECT i, 7, 'posting ' || i FROM generate_series(1, 12) i`)
	if !postgres.Supports(pg.Version()*10000, postgres.FeatureBackfill) {
		src := postgres.NewBackfillSource(newPool(t, dsn), "cdc", compile(t, postingsTable), testLogger(t))
		_, err := src.Prepare(context.Background(), &connector.BackfillState{ID: "bf-v", Table: "public.postings"})
		if !errors.Is(err, connector.ErrBackfillRefused) || !strings.Contains(err.Error(), "14 or later") {
			t.Fatalf("PostgreSQL %d: backfill = %v, want a refusal naming 14 or later", pg.Version(), err)
		}
		return
	}
	emu := testenv.Emu(t)
	topic, _ := pipeTopic(t, emu, false)
	conn := connect(t, dsn)
	applyBackfillObjects(t, conn)
	rig := startBackfillRig(t, dsn, topic, emu, []config.Table{postingsTable}, nil, nil)
	exec(t, dsn, `INSERT INTO baitoru_cdc.backfill_requests (backfill_id, action, table_name) VALUES ('bf-v', 'start', 'public.postings')`)
	waitBackfill(t, conn, "bf-v", "done")
	waitFor(t, func() bool {
		reads := map[string]int{}
		for _, e := range rig.rec.events() {
			if e.Op == "read" && e.Backfill == "bf-v" {
				reads[e.Key]++
			}
		}
		for k, n := range reads {
			if n != 1 {
				t.Fatalf("row %s read %d times", k, n)
			}
		}
		return len(reads) == 12
	})
}
