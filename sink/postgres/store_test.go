package postgres_test

import (
	"context"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T) (*postgres.Store, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (PostgreSQL); run without -short")
	}
	dsn := testenv.PG(t).NewDatabase(t)
	s, err := postgres.Open(dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, dsn
}

func query[T any](t *testing.T, dsn, sql string, args ...any) T {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestMigrations(t *testing.T) {
	ms, err := postgres.Migrations()
	if err != nil || len(ms) < 2 || ms[0].Version != 1 || ms[0].Name != "links" {
		t.Fatalf("Migrations() = %+v, %v", ms, err)
	}
}

func TestMigrateConcurrentlyAndIdempotent(t *testing.T) {
	s, dsn := open(t)
	others := make([]*postgres.Store, 3)
	for i := range others {
		o, err := postgres.Open(dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		others[i] = o
	}
	// Replicas starting together: each migration applied exactly once.
	var wg sync.WaitGroup
	applied := make([][]int, len(others))
	errs := make([]error, len(others))
	for i, o := range others {
		wg.Go(func() { applied[i], errs[i] = o.Migrate(t.Context()) })
	}
	wg.Wait()
	total := 0
	for i := range others {
		if errs[i] != nil {
			t.Fatalf("migrate %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	ms, _ := postgres.Migrations()
	if total != len(ms) {
		t.Fatalf("applied %v in total, want each of %d once", applied, len(ms))
	}
	if again, err := s.Migrate(t.Context()); err != nil || len(again) != 0 {
		t.Fatalf("second migrate: %v %v", again, err)
	}
	if n := query[int64](t, dsn, "SELECT count(*) FROM schema_migrations"); n != int64(len(ms)) {
		t.Fatalf("schema_migrations has %d rows", n)
	}
	// A database from a newer sink is refused.
	testenv.MustExec(t, dsn, "INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")
	if _, err := s.Migrate(t.Context()); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("migrate of a newer schema: %v", err)
	}
}

// TestMigrationCanonicalisesNumericKeys: links started before keys were
// compared by value get their canonical key; a pair that becomes a duplicate
// keeps its oldest link.
func TestMigrationCanonicalisesNumericKeys(t *testing.T) {
	s, dsn := open(t)
	ms, err := postgres.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, dsn, "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
	for _, m := range ms {
		if m.Name == "canonical_link_keys" {
			break
		}
		testenv.MustExec(t, dsn, m.SQL)
		testenv.MustExec(t, dsn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
	}
	testenv.MustExec(t, dsn, `INSERT INTO links (kobot_account, link_key) VALUES
		('a', '7'), ('a', '7.0'), ('b', '1e0'), ('c', '007'), ('d', '1.50'), ('e', '1e300'), ('f', '-0.0'), ('g', 'x1.0')`)
	testenv.MustExec(t, dsn, "UPDATE links SET status = 'stopped', ended_at = now() WHERE kobot_account = 'd'")
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	ls, err := s.ListLinks(t.Context(), sink.LinkFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		got[l.Account+" "+strconv.FormatInt(l.ID, 10)] = l.Key + " " + l.Status
	}
	want := map[string]string{
		"a 1": "7 active", "a 2": "7 stopped", "b 3": "1 active", "c 4": "007 active",
		"d 5": "1.5 stopped", "e 6": "1e300 active", "f 7": "0 active", "g 8": "x1.0 active",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("links after migration:\n got %v\nwant %v", got, want)
	}
	for _, l := range ls {
		if c, err := sink.CanonicalKey(l.Key); l.Account != "e" && (err != nil || c != l.Key) {
			t.Errorf("link %d key %q: canonical %q %v", l.ID, l.Key, c, err)
		}
	}
}

func TestSchemaEnforcesOneActivePair(t *testing.T) {
	s, dsn := open(t)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, dsn, "INSERT INTO links (kobot_account, link_key) VALUES ('a', '7')")
	err := testenv.Exec(t.Context(), dsn, "INSERT INTO links (kobot_account, link_key) VALUES ('a', '7')")
	if err == nil || !strings.Contains(err.Error(), "links_active_pair") {
		t.Fatalf("second active pair: %v", err)
	}
	// Stopped links may repeat.
	testenv.MustExec(t, dsn, "UPDATE links SET status = 'stopped', ended_at = now()")
	testenv.MustExec(t, dsn, "INSERT INTO links (kobot_account, link_key) VALUES ('a', '7')")
	if err := testenv.Exec(t.Context(), dsn, "INSERT INTO links (kobot_account, link_key, status) VALUES ('a', '8', 'stopped')"); err == nil {
		t.Fatal("stopped link without ended_at accepted")
	}
}

func TestRecordDeliveries(t *testing.T) {
	s, dsn := open(t)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	l1, _, _ := s.StartLink(ctx, "a", "7")
	l2, _, _ := s.StartLink(ctx, "b", "7")
	now := time.Now()
	err := s.RecordDeliveries(ctx, []sink.Delivery{
		{EventID: "e-1", LinkID: l1.ID, Status: sink.DeliveryDelivered, Attempts: 1, HTTPStatus: 204, Latency: 3 * time.Millisecond, DeliveredAt: now},
		{EventID: "e-1", LinkID: l2.ID, Status: sink.DeliveryRetry, Attempts: 3, HTTPStatus: 503, LastError: "kobot answered 503"},
		{EventID: "e-2", LinkID: l1.ID, Status: sink.DeliveryRejected, Attempts: 1, HTTPStatus: 400, LastError: "kobot answered 400"},
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := []sink.DeliveryKey{{EventID: "e-1", LinkID: l1.ID}, {EventID: "e-1", LinkID: l2.ID}, {EventID: "e-2", LinkID: l1.ID}, {EventID: "e-3", LinkID: l1.ID}}
	got, err := s.Claim(ctx, keys, time.Minute)
	want := map[sink.DeliveryKey]sink.ClaimState{keys[0]: sink.ClaimDelivered, keys[1]: sink.ClaimOwned, keys[2]: sink.ClaimOwned, keys[3]: sink.ClaimOwned}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("Claim = %v, %v; want %v", got, err, want)
	}
	// The redelivery: l2 now succeeds; a late failure report of l1 must
	// not undo its delivery.
	err = s.RecordDeliveries(ctx, []sink.Delivery{
		{EventID: "e-1", LinkID: l2.ID, Status: sink.DeliveryDelivered, Attempts: 1, HTTPStatus: 200, DeliveredAt: now},
		{EventID: "e-1", LinkID: l1.ID, Status: sink.DeliveryRetry, Attempts: 2, HTTPStatus: 500, LastError: "late"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.Claim(ctx, keys[:2], time.Minute)
	if got[keys[0]] != sink.ClaimDelivered || got[keys[1]] != sink.ClaimDelivered {
		t.Fatalf("Claim after redelivery = %v", got)
	}
	if a := query[int32](t, dsn, "SELECT attempts FROM deliveries WHERE event_id = 'e-1' AND link_id = $1", l2.ID); a != 4 {
		t.Fatalf("attempts of l2 = %d, want 3 + 1", a)
	}
	if st := query[string](t, dsn, "SELECT status || '/' || http_status || '/' || coalesce(last_error, '') FROM deliveries WHERE event_id = 'e-1' AND link_id = $1", l1.ID); st != "delivered/204/" {
		t.Fatalf("l1 row = %s, want delivered/204/", st)
	}
	if err := s.RecordDeliveries(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// TestClaim: of concurrent claims of one pair exactly one wins and the others
// see it busy; an outcome ends the claim (delivered stays delivered, a retry
// is claimable again); a claim of a sink that died expires with its lease.
func TestClaim(t *testing.T) {
	s, dsn := open(t)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	l1, _, _ := s.StartLink(ctx, "a", "7")
	l2, _, _ := s.StartLink(ctx, "b", "7")
	k1, k2 := sink.DeliveryKey{EventID: "e-1", LinkID: l1.ID}, sink.DeliveryKey{EventID: "e-1", LinkID: l2.ID}

	const racers = 16
	var owned [2]atomic.Int32
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			got, err := s.Claim(ctx, []sink.DeliveryKey{k2, k1, k1}, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			for i, k := range []sink.DeliveryKey{k1, k2} {
				switch got[k] {
				case sink.ClaimOwned:
					owned[i].Add(1)
				case sink.ClaimBusy:
				default:
					t.Errorf("claim %v: state %v", k, got[k])
				}
			}
		})
	}
	wg.Wait()
	if owned[0].Load() != 1 || owned[1].Load() != 1 {
		t.Fatalf("%d and %d of %d concurrent claims won, want exactly 1 each", owned[0].Load(), owned[1].Load(), racers)
	}

	err := s.RecordDeliveries(ctx, []sink.Delivery{
		{EventID: "e-1", LinkID: l1.ID, Status: sink.DeliveryDelivered, Attempts: 1, HTTPStatus: 204, DeliveredAt: time.Now()},
		{EventID: "e-1", LinkID: l2.ID, Status: sink.DeliveryRetry, Attempts: 3, HTTPStatus: 503},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Claim(ctx, []sink.DeliveryKey{k1, k2}, time.Minute)
	if err != nil || got[k1] != sink.ClaimDelivered || got[k2] != sink.ClaimOwned {
		t.Fatalf("after the outcomes: %v %v; want k1 delivered, k2 owned again", got, err)
	}
	// k2's claimer dies: the pair stays busy until the lease ends.
	got, _ = s.Claim(ctx, []sink.DeliveryKey{k2}, time.Minute)
	if got[k2] != sink.ClaimBusy {
		t.Fatalf("claimed pair: %v, want busy", got[k2])
	}
	testenv.MustExec(t, dsn, "UPDATE deliveries SET claimed_until = now() - interval '1 second' WHERE link_id = "+strconv.FormatInt(l2.ID, 10))
	got, _ = s.Claim(ctx, []sink.DeliveryKey{k2}, time.Minute)
	if got[k2] != sink.ClaimOwned {
		t.Fatalf("expired claim: %v, want owned", got[k2])
	}
	if st := query[string](t, dsn, "SELECT status FROM deliveries WHERE event_id = 'e-1' AND link_id = $1", l1.ID); st != "delivered" {
		t.Fatalf("l1 row status %s after claims, want delivered", st)
	}
}

func TestStartLinkConcurrent(t *testing.T) {
	s, _ := open(t)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ids := make([]int64, 20)
	created := make([]bool, 20)
	for i := range ids {
		wg.Go(func() {
			l, c, err := s.StartLink(t.Context(), "acct", "k")
			if err != nil {
				t.Error(err)
			}
			ids[i], created[i] = l.ID, c
		})
	}
	wg.Wait()
	n := 0
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("ids %v", ids)
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d starts said they created the link", n)
	}
}

// watch runs WatchLinks on a fresh cache and returns it.
func watch(t *testing.T, s *postgres.Store) (*sink.LinkCache, func() int) {
	t.Helper()
	cache := sink.NewLinkCache(nil)
	var mu sync.Mutex
	fulls := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.WatchLinks(ctx, cache, func(scope string) {
			if scope == "all" {
				mu.Lock()
				fulls++
				mu.Unlock()
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchLinks: %v", err)
		}
	})
	waitFor(t, 10*time.Second, "first load", cache.Synced)
	return cache, func() int { mu.Lock(); defer mu.Unlock(); return fulls }
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func linked(c *sink.LinkCache, key string) int {
	m, err := c.ActiveLinks(context.Background(), []string{key})
	if err != nil {
		return -1
	}
	return len(m[key])
}

func TestWatchFollowsChangesWithinASecond(t *testing.T) {
	s, dsn := open(t)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	l, _, _ := s.StartLink(t.Context(), "a", "7")
	cache, _ := watch(t, s)
	if linked(cache, "7") != 1 {
		t.Fatal("existing link not loaded")
	}
	// Changes made by hand (not through the API) reach the cache by NOTIFY.
	start := time.Now()
	testenv.MustExec(t, dsn, "UPDATE links SET status = 'stopped', ended_at = now() WHERE id = $1", l.ID)
	waitFor(t, time.Second, "stop seen", func() bool { return linked(cache, "7") == 0 })
	t.Logf("stop seen after %s", time.Since(start).Round(time.Millisecond))
	testenv.MustExec(t, dsn, "INSERT INTO links (kobot_account, link_key) VALUES ('b', '8'), ('c', '8')")
	waitFor(t, time.Second, "inserts seen", func() bool { return linked(cache, "8") == 2 })
	testenv.MustExec(t, dsn, "TRUNCATE deliveries, link_history, links")
	waitFor(t, time.Second, "truncate seen", func() bool { return linked(cache, "8") == 0 })
	// A burst of changes is coalesced and ends in the right state.
	for i := range 50 {
		testenv.MustExec(t, dsn, "INSERT INTO links (kobot_account, link_key) VALUES ($1, 'burst')", "acct-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	waitFor(t, time.Second, "burst seen", func() bool { return linked(cache, "burst") == 50 })
}

func TestWatchReloadsAfterConnectionLoss(t *testing.T) {
	s, dsn := open(t)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	cache, fulls := watch(t, s)
	if fulls() != 1 {
		t.Fatalf("%d full loads, want 1", fulls())
	}
	// Kill the LISTEN connection and change links while nobody listens:
	// that NOTIFY is lost, the reload after reconnecting must catch it.
	db := query[string](t, dsn, "SELECT current_database()")
	testenv.MustExec(t, testenv.PG(t).DSN("postgres"), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND application_name = 'baitoru-cdc-sink-listen'`, db)
	testenv.MustExec(t, dsn, "INSERT INTO links (kobot_account, link_key) VALUES ('lost', 'notify')")
	waitFor(t, 10*time.Second, "reload after reconnect", func() bool { return fulls() >= 2 && linked(cache, "notify") == 1 })
	// And it listens again.
	testenv.MustExec(t, dsn, "INSERT INTO links (kobot_account, link_key) VALUES ('again', 'later')")
	waitFor(t, time.Second, "notify after reconnect", func() bool { return linked(cache, "later") == 1 })
}

func TestWatchUnsyncsWhileDatabaseIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (PostgreSQL); run without -short")
	}
	pg := testenv.OwnPG(t, testenv.PostgresOptions{})
	dsn := pg.NewDatabase(t)
	s, err := postgres.Open(dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.StartLink(t.Context(), "a", "7")
	cache, _ := watch(t, s)
	if err := pg.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	// Lookups fail rather than serve links that may have changed.
	waitFor(t, 15*time.Second, "unsync", func() bool { return !cache.Synced() })
	if _, err := cache.ActiveLinks(t.Context(), []string{"7"}); err == nil {
		t.Fatal("lookup succeeded while the database is down")
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "resync", cache.Synced)
	if linked(cache, "7") != 1 {
		t.Fatal("link lost after resync")
	}
}
