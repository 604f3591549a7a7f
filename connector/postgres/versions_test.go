package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/connector/postgres"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// versionCheck is one check of the version suite, run on a throwaway
// cluster of each supported PostgreSQL version. To cover a new feature
// (backfill watermarks, say) on every version, add a row to versionChecks.
type versionCheck struct {
	name string
	// fullSuite: the check is also a test of the full suite, which runs on
	// the default version (15): the suite skips it there.
	fullSuite bool
	run       func(t *testing.T, pg *testenv.Postgres)
}

var versionChecks = []versionCheck{
	{"features", false, testFeaturesMatchServer},
	{"stream all types", true, testStreamAllTypes},
	{"heartbeat", true, testHeartbeat},
	{"idle slot advances", true, testIdleSlotAdvances},
	{"streamed transactions", true, testStreamedTransactions}, // 13: the fallback
	{"backfill watermarks", true, testBackfillOnVersion},      // 13: refused
	{"row filters", true, func(t *testing.T, pg *testenv.Postgres) {
		if postgres.Supports(pg.Version()*10000, postgres.FeatureRowFilters) {
			testRowFilterPushdown(t, pg) // the publication filters
			return
		}
		testConnectorRowFilters(t, pg) // the connector's fallback
	}},
}

// TestVersions runs versionChecks on PostgreSQL 13 to 18 (testenv.Versions),
// one cluster per version, versions in parallel (go test's -parallel: the
// machine's cores). The default version's cluster is the package's shared
// one; its full-suite checks run as the package's own tests.
func TestVersions(t *testing.T) {
	integration(t)
	for _, v := range testenv.Versions {
		t.Run(fmt.Sprintf("pg%d", v), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			shared := testenv.PG(t)
			pg := shared
			if shared.Version() != v {
				pg = testenv.OwnPG(t, testenv.PostgresOptions{Version: v})
			}
			t.Logf("PostgreSQL %d ready in %v", v, time.Since(start).Round(time.Millisecond))
			for _, c := range versionChecks {
				if c.fullSuite && pg == shared {
					continue
				}
				t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
					start := time.Now()
					c.run(t, pg)
					t.Logf("%s on PostgreSQL %d: %v", c.name, v, time.Since(start).Round(time.Millisecond))
				})
			}
		})
	}
}

// featureProbes try each capability of postgres.FeatureTable on a real
// server; a probe returns the server's refusal, nil when it has the
// capability. They run on a database with table probe and publication
// probe_all.
var featureProbes = map[postgres.FeatureID]string{
	postgres.FeatureRowFilters:    `CREATE PUBLICATION probe_rf FOR TABLE probe WHERE (id > 0)`,
	postgres.FeatureColumnLists:   `CREATE PUBLICATION probe_cl FOR TABLE probe (id)`,
	postgres.FeatureMessages:      peekWith("'messages', 'true'"),
	postgres.FeatureBackfill:      peekWith("'messages', 'true'"),
	postgres.FeatureFailoverSlots: `SELECT pg_create_logical_replication_slot('probe_failover', 'pgoutput', false, false, true)`,
	postgres.FeatureStreaming:     peekWith("'proto_version', '2', 'streaming', 'on'"),
	postgres.FeatureProtocol4:     peekWith("'proto_version', '4'"),
}

func peekWith(options string) string {
	if !strings.Contains(options, "proto_version") {
		options = "'proto_version', '1', " + options
	}
	return `SELECT count(*) FROM pg_logical_slot_peek_binary_changes('probe', NULL, NULL, 'publication_names', 'probe_all', ` + options + `)`
}

// testFeaturesMatchServer: every capability of the feature table is there
// exactly from its Since version on, as the real server shows; and the
// options the subscription sends are accepted.
func testFeaturesMatchServer(t *testing.T, pg *testenv.Postgres) {
	dsn := pg.NewDatabase(t)
	exec(t, dsn, `CREATE TABLE probe (id int PRIMARY KEY, v text)`, `CREATE PUBLICATION probe_all FOR TABLE probe`)
	exec(t, dsn, `SELECT pg_create_logical_replication_slot('probe', 'pgoutput')`)
	ctx := context.Background()
	conn := connect(t, dsn)
	server, err := postgres.ServerVersion(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if postgres.MajorVersion(server) != pg.Version() {
		t.Fatalf("server_version_num %d, cluster version %d", server, pg.Version())
	}
	for _, f := range postgres.FeatureTable {
		probe, ok := featureProbes[f.ID]
		if !ok {
			t.Errorf("feature %s has no probe in featureProbes", f.ID)
			continue
		}
		err := testenv.Exec(ctx, dsn, probe)
		if has := postgres.Supports(server, f.ID); has != (err == nil) {
			t.Errorf("PostgreSQL %d: feature table says %s = %v (since %d), the server answered %v to %s", pg.Version(), f.ID, has, f.Since, err, probe)
		}
	}
}

// TestSupportMatrixDoc: docs/dba.md's support matrix is the feature table
// the code decides with (-update rewrites it).
func TestSupportMatrixDoc(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "dba.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin = "<!-- BEGIN support matrix (generated from connector/postgres/features.go by TestSupportMatrixDoc; go test ./connector/postgres -run TestSupportMatrixDoc -update rewrites it) -->\n"
	const end = "<!-- END support matrix -->"
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s: no support matrix block (%q ... %q)", path, begin, end)
	}
	want := postgres.SupportMatrix(testenv.Versions)
	got := doc[i+len(begin) : j]
	if got == want {
		return
	}
	if updateGolden() {
		if err := os.WriteFile(path, []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s: the support matrix differs from connector/postgres/features.go (run with -update):\n--- doc\n%s\n--- code\n%s", path, got, want)
}
