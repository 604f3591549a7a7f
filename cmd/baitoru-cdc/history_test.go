package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
)

// TestLinkStartHistory: the real connector and sink (the shipped
// config.yaml, overridden by environment), the sink asking through
// Baitoru's database as a requester role made from setup's script. Link A
// of company 1 starts and gets company 1's existing postings and
// applications as read events; then link B of company 1 starts while
// postings of company 1 are updated and inserted: B gets the history, A
// none of B's reads, both get every live change; the links API shows each
// history's rows and state. For each account and row, applying what Kobot
// got in commit (LSN) order gives the table's row, and no read carries an
// older state than a live change committed before it.
func TestLinkStartHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	pg, emu := testenv.PG(t), testenv.Emu(t)
	src, sinkDB := pg.NewDatabase(t), pg.NewDatabase(t)
	loadSchema(t, src, "baitoru.sql", "sample_data.sql")
	// Company 1's existing rows (and company 2's, which no link wants).
	testenv.MustExec(t, src, `INSERT INTO job_postings (company_id, title, description, employment_type, wage, wage_unit, location, published, opens_on)
		SELECT 1 + (g % 4 = 0)::int, 'posting ' || g, 'd', 'part_time', 1000 + g, 'hour', 'Tokyo', true, '2026-12-01' FROM generate_series(1, 160) g;
		INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email, answers, status)
		SELECT p.company_id, p.posting_id, 'A ' || p.posting_id, 'a@example.jp', '{"q":"yes"}', 'applied' FROM job_postings p WHERE p.posting_id % 3 = 0`)

	name := fmt.Sprintf("hist-%d", time.Now().UnixNano()%1e6)
	fan, err := emu.CreateFanout(ctx, name, testenv.QueueOptions{MaxReceiveCount: 5, VisibilityTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "whsec_aGlzdG9yeS10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5"
	recv := startKobot(t, secret)
	apiAddr := freeAddr(t)
	const token = "history-links-token-0123456789"
	env := []string{
		"BAITORU_CDC_SOURCE_DSN=" + src,
		"BAITORU_CDC_SOURCE_STATUS_INTERVAL=200ms",
		"BAITORU_CDC_SOURCE_BACKFILL_CHUNK_ROWS=10",
		"BAITORU_CDC_SOURCE_BACKFILL_MAX_ROWS_PER_SECOND=150",
		"BAITORU_CDC_SNS_REGION=" + emu.Region,
		"BAITORU_CDC_SNS_ENDPOINT=" + emu.Endpoint,
		"BAITORU_CDC_SNS_TOPIC_ARN=" + fan.TopicARN,
		"BAITORU_CDC_METRICS_LISTEN=" + freeAddr(t),
		"BAITORU_CDC_LOG_FORMAT=json",
		"BAITORU_CDC_SINK_DSN=" + sinkDB,
		"BAITORU_CDC_SINK_SQS_REGION=" + emu.Region,
		"BAITORU_CDC_SINK_SQS_ENDPOINT=" + emu.Endpoint,
		"BAITORU_CDC_SINK_SQS_QUEUE_URL=" + fan.QueueURL,
		"BAITORU_CDC_SINK_SQS_DLQ_URL=" + fan.DLQURL,
		"BAITORU_CDC_SINK_SQS_WAIT_TIME=1s",
		"BAITORU_CDC_SINK_KOBOT_ENDPOINT=" + recv.URL(),
		"BAITORU_CDC_SINK_KOBOT_SECRET=" + secret,
		"BAITORU_CDC_SINK_API_LISTEN=" + apiAddr,
		"BAITORU_CDC_SINK_API_TOKEN=" + token,
	}
	shipped := filepath.Join(testenv.ModuleRoot(), "config.yaml")
	setup := startProcEnv(t, env, "setup", "--config", shipped)
	if err := setup.wait(t, 60*time.Second); err != nil {
		t.Fatalf("setup: %v\n%s", err, setup.output())
	}
	// The sink's requester role, made as setup's script says.
	role := "req_" + name[len("hist-"):]
	testenv.MustExec(t, src, `CREATE ROLE `+role+` WITH LOGIN`)
	t.Cleanup(func() { _ = testenv.Exec(ctx, src, `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	for _, s := range dba.RequesterNotes(dba.BackfillObjects{Schema: "baitoru_cdc"}, dbName(t, src)) {
		if !strings.HasPrefix(s, "CREATE ROLE") {
			testenv.MustExec(t, src, strings.ReplaceAll(s, `"`+dba.RequesterRole+`"`, role))
		}
	}
	env = append(env, "BAITORU_CDC_SINK_HISTORY_DSN="+strings.Replace(src, "postgres://postgres@", "postgres://"+role+"@", 1),
		"BAITORU_CDC_SINK_HISTORY_INTERVAL=500ms")

	conn := startProcEnv(t, env, "run", "--config", shipped)
	conn.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	snk := startProcEnv(t, env, "sink", "--config", shipped)
	waitHTTP(t, "http://"+apiAddr+"/readyz", snk)
	api := linksClient{base: "http://" + apiAddr, token: token}

	a := api.start(t, "kobot-a", "1")
	api.waitHistory(t, a.ID, 60*time.Second)

	// Link B starts while company 1's postings change.
	db, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var ids []int64
	rows, _ := db.Query(ctx, `SELECT posting_id FROM job_postings WHERE company_id = 1 ORDER BY posting_id`)
	if ids, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes int
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Walk the postings from both ends, so changes land ahead of,
			// inside and behind the chunks.
			id := ids[(i*7)%len(ids)]
			if _, err := db.Exec(ctx, `UPDATE job_postings SET title = $2, updated_at = now() WHERE posting_id = $1`, id, fmt.Sprintf("live %d", i)); err != nil {
				t.Errorf("live update: %v", err)
				return
			}
			if i%10 == 0 {
				if _, err := db.Exec(ctx, `INSERT INTO job_postings (company_id, title, description, employment_type, wage, wage_unit, location, published, opens_on)
					VALUES (1, $1, 'd', 'part_time', 1100, 'hour', 'Tokyo', true, '2026-12-02')`, fmt.Sprintf("new %d", i)); err != nil {
					t.Errorf("live insert: %v", err)
					return
				}
			}
			writes++
			time.Sleep(15 * time.Millisecond)
		}
	})
	b := api.start(t, "kobot-b", "1")
	hist := api.waitHistory(t, b.ID, 60*time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d live writes during link B's history; history %+v", writes, hist)

	// What Kobot must end with: company 1's rows, for both accounts.
	type rowKey struct{ table, key string }
	wantRows := map[rowKey]bool{}
	for _, q := range []struct{ table, sql string }{
		{"public.job_postings", `SELECT posting_id::text FROM job_postings WHERE company_id = 1`},
		{"public.applications", `SELECT application_id::text FROM applications WHERE company_id = 1`},
	} {
		rows, _ := db.Query(ctx, q.sql)
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			wantRows[rowKey{q.table, k}] = true
		}
	}
	var titles = map[string]string{}
	rows, _ = db.Query(ctx, `SELECT posting_id::text, title FROM job_postings WHERE company_id = 1`)
	for rows.Next() {
		var k, v string
		_ = rows.Scan(&k, &v)
		titles[k] = v
	}
	rows.Close()

	// Kobot's view: per account, per row, the events in commit order.
	type ev struct {
		lsn  pglogrepl.LSN
		op   string
		bf   string
		data map[string]any
	}
	idField := map[string]string{"public.job_postings": "posting_id", "public.applications": "application_id"}
	collect := func() map[string]map[rowKey][]ev {
		out := map[string]map[rowKey][]ev{}
		for _, r := range recv.got() {
			var data map[string]any
			if err := json.Unmarshal(r.Data, &data); err != nil {
				t.Fatalf("event %s: %v", r.ID, err)
			}
			lsn, err := pglogrepl.ParseLSN(r.LSN)
			if err != nil {
				t.Fatalf("event %s: lsn %q: %v", r.ID, r.LSN, err)
			}
			k := rowKey{r.Table, fmt.Sprint(data[idField[r.Table]])}
			if out[r.Account] == nil {
				out[r.Account] = map[rowKey][]ev{}
			}
			out[r.Account][k] = append(out[r.Account][k], ev{lsn, r.Op, r.Backfill, data})
		}
		return out
	}
	complete := func(got map[string]map[rowKey][]ev) string {
		for _, acct := range []string{"kobot-a", "kobot-b"} {
			for k := range wantRows {
				evs := got[acct][k]
				if len(evs) == 0 {
					return fmt.Sprintf("%s has no event of %v", acct, k)
				}
				if k.table == "public.job_postings" {
					last := evs[0]
					for _, e := range evs {
						if e.lsn > last.lsn {
							last = e
						}
					}
					if last.data["title"] != titles[k.key] {
						return fmt.Sprintf("%s: posting %s is %q at its last LSN, the table has %q", acct, k.key, last.data["title"], titles[k.key])
					}
				}
			}
		}
		return ""
	}
	deadline := time.Now().Add(90 * time.Second)
	got := collect()
	for msg := complete(got); msg != ""; msg = complete(got) {
		if time.Now().After(deadline) {
			t.Fatalf("Kobot did not end with company 1's rows: %s", msg)
		}
		time.Sleep(200 * time.Millisecond)
		got = collect()
	}
	time.Sleep(2 * time.Second) // anything that would wrongly arrive late
	got = collect()
	if bad := recv.Bad(); len(bad) > 0 {
		t.Fatalf("pushes that failed Kobot's verification: %v", bad)
	}
	if msg := complete(got); msg != "" {
		t.Fatal(msg)
	}

	prefixA, prefixB := sink.HistoryID("link", a.ID, ""), sink.HistoryID("link", b.ID, "")
	reads := map[string]map[string]int{} // account → history prefix → reads
	afterLive := 0                       // reads of a row that a live change reached before
	for acct, byRow := range got {
		reads[acct] = map[string]int{}
		for k, evs := range byRow {
			for _, e := range evs {
				if c := fmt.Sprint(e.data["company_id"]); c != "1" {
					t.Errorf("%s got %v of company %s", acct, k, c)
				}
			}
			sort.SliceStable(evs, func(i, j int) bool { return evs[i].lsn < evs[j].lsn })
			var lastLive *ev
			for i := range evs {
				e := &evs[i]
				if e.op != "read" {
					lastLive = e
					continue
				}
				switch {
				case strings.HasPrefix(e.bf, prefixA):
					reads[acct]["A"]++
				case strings.HasPrefix(e.bf, prefixB):
					reads[acct]["B"]++
				default:
					t.Errorf("%s: a read of %v from backfill %q", acct, k, e.bf)
				}
				// A read sits at its high watermark: it must carry the
				// row as the last live change before it left it.
				if lastLive != nil {
					afterLive++
				}
				if lastLive != nil && !reflect.DeepEqual(lastLive.data, e.data) {
					t.Errorf("%s: stale read of %v at %s (backfill %s): %v, but the %s at %s before it made it %v",
						acct, k, e.lsn, e.bf, e.data, lastLive.op, lastLive.lsn, lastLive.data)
				}
			}
		}
	}
	if reads["kobot-a"]["B"] != 0 || reads["kobot-b"]["A"] != 0 {
		t.Fatalf("history went to the other link: %v", reads)
	}
	if reads["kobot-a"]["A"] == 0 || reads["kobot-b"]["B"] == 0 {
		t.Fatalf("a link got no history: %v", reads)
	}
	var rowsB int64
	for _, h := range hist {
		rowsB += h.RowsDone
	}
	if int64(reads["kobot-b"]["B"]) > rowsB {
		t.Fatalf("B got %d reads, its history says %d rows: %+v", reads["kobot-b"]["B"], rowsB, hist)
	}
	if afterLive == 0 {
		t.Fatalf("no read followed a live change of its row: the live writes missed link B's history (%d writes)", writes)
	}
	t.Logf("reads pushed: %v (%d after a live change of their row); link B's history read %d rows with %d live writes meanwhile", reads, afterLive, rowsB, writes)

	// Stopping a link cancels its history in Baitoru's database.
	if code, body := api.do(t, http.MethodDelete, fmt.Sprintf("/v1/links/%d", a.ID), ""); code != http.StatusOK {
		t.Fatalf("stop link A: %d %s", code, body)
	}
	var cancels int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM baitoru_cdc.backfill_requests WHERE action = 'cancel' AND backfill_id LIKE $1`, prefixA+"%").Scan(&cancels); err != nil || cancels != 2 {
		t.Fatalf("cancel requests of link A's history: %d %v, want 2", cancels, err)
	}
}

// linksClient calls the sink's links API.
type linksClient struct{ base, token string }

func (c linksClient) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c linksClient) start(t *testing.T, account, key string) sink.Link {
	t.Helper()
	code, b := c.do(t, http.MethodPost, "/v1/links", fmt.Sprintf(`{"kobot_account":%q,"link_key":%q}`, account, key))
	var l sink.Link
	if code != http.StatusCreated || json.Unmarshal(b, &l) != nil {
		t.Fatalf("start link: %d %s", code, b)
	}
	return l
}

// waitHistory polls GET /v1/links/{id} until every history of the link is
// done, and returns it.
func (c linksClient) waitHistory(t *testing.T, id int64, timeout time.Duration) []sink.HistoryProgress {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, b := c.do(t, http.MethodGet, fmt.Sprintf("/v1/links/%d", id), "")
		var l sink.Link
		if code != http.StatusOK || json.Unmarshal(b, &l) != nil {
			t.Fatalf("get link %d: %d %s", id, code, b)
		}
		done := len(l.History) == 2
		for _, h := range l.History {
			if h.State == "failed" || h.State == "cancelled" {
				t.Fatalf("link %d history: %s", id, b)
			}
			done = done && h.State == "done"
		}
		if done {
			return l.History
		}
		if time.Now().After(deadline) {
			t.Fatalf("link %d history not done after %s: %s", id, timeout, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dbName is the database of dsn.
func dbName(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}
