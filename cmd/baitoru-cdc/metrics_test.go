package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/baitoru/baitoru-cdc/connector/telemetry"
	"github.com/baitoru/baitoru-cdc/internal/monitoring"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// scrape fetches url (a /metrics endpoint) and parses it.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return mfs
}

// sample returns the value of name{labels...} in mfs (a histogram's sample
// count), or -1 when the series is absent.
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
series:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		}
	}
	return -1
}

// eventually polls cond every 50ms until it returns "" or timeout passes,
// then fails with cond's last message.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readyz(t *testing.T, base string) (int, monitoring.Readiness) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r monitoring.Readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	return resp.StatusCode, r
}

// logAttr waits for a JSON log line with msg and returns its attribute key.
func logAttr(t *testing.T, p *proc, msg, key string) string {
	t.Helper()
	re := `"msg":"` + regexp.QuoteMeta(msg) + `"`
	p.waitLog(t, re, 30*time.Second)
	for _, line := range strings.Split(p.output(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			if v, ok := m[key].(string); ok {
				return v
			}
		}
	}
	t.Fatalf("log line %q has no %s:\n%s", msg, key, p.output())
	return ""
}

// TestRunMetricsAndReadiness runs the connector and the sink as processes
// and checks what they expose: /readyz is not ready while PostgreSQL is
// down, ready once streaming, not ready again when PostgreSQL stops and
// ready after it restarts; the connector's counters match the rows written
// and the events published, the sink's match what reached Kobot; the status
// line is logged.
func TestRunMetricsAndReadiness(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	source := testenv.OwnPG(t, testenv.PostgresOptions{})
	srcDSN := source.NewDatabase(t)
	testenv.MustExec(t, srcDSN, appsDDL)
	sinkDSN := testenv.PG(t).NewDatabase(t) // another cluster: stopping the source leaves the sink alone
	emu := testenv.Emu(t)
	name := fmt.Sprintf("metrics-%d", time.Now().UnixNano()%1e9)
	fan, err := emu.CreateFanout(ctx, name, testenv.QueueOptions{MaxReceiveCount: 5, VisibilityTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	topic, queueURL, dlqURL := fan.TopicARN, fan.QueueURL, fan.DLQURL
	kb := startKobot(t, "")
	const token = "metrics-test-token"
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`
source:
  dsn: %[1]s
  slot: cdc
  publication: cdc
  status_interval: 200ms
  reconnect: {initial: 100ms, max: 500ms}
sns:
  region: %[2]s
  endpoint: %[3]s
  topic_arn: %[4]s
metrics:
  listen: "127.0.0.1:0"
log:
  level: info
  format: json
  status_interval: 300ms
tables:
  - table: public.apps
    operations: [insert, update]
    key: [company_id]
    columns:
      - column: application_id
      - column: company_id
sink:
  dsn: %[5]s
  sqs:
    region: %[2]s
    endpoint: %[3]s
    queue_url: %[6]s
    dlq_url: %[7]s
    wait_time: 1s
  kobot:
    endpoint: %[8]s
    secret: ${KOBOT_TEST_SECRET}
  api:
    listen: "127.0.0.1:0"
    token: %[9]s
  links:
    - table: public.apps
      field: company_id
`, srcDSN, emu.Region, emu.Endpoint, topic, sinkDSN, queueURL, dlqURL, kb.URL(), token)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KOBOT_TEST_SECRET", kb.secret)

	// PostgreSQL down: alive, not ready, and says why.
	if err := source.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	conn := startProc(t, "run", "--config", cfgPath)
	base := "http://" + logAttr(t, conn, "serving /metrics, /healthz, /readyz", "addr")
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz with PostgreSQL down: %v %v", resp, err)
	}
	checkBuildInfo(t, conn, "baitoru-cdc run starting", base+"/metrics")
	for range 5 {
		code, r := readyz(t, base)
		if code != http.StatusServiceUnavailable || r.Status != "not ready" || r.Checks["replication"] != telemetry.ErrNotStreaming.Error() {
			t.Fatalf("/readyz with PostgreSQL down = %d %+v", code, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := sample(scrape(t, base+"/metrics"), telemetry.ReplicationStreaming); v != 0 {
		t.Fatalf("%s = %v with PostgreSQL down", telemetry.ReplicationStreaming, v)
	}

	// PostgreSQL up: ready once streaming.
	if err := source.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady := func(what string) {
		eventually(t, 30*time.Second, what, func() string {
			code, r := readyz(t, base)
			if code != 200 || r.Status != "ready" || r.Checks["replication"] != "ok" {
				return fmt.Sprintf("%d %+v", code, r)
			}
			return ""
		})
	}
	waitReady("ready after PostgreSQL started")
	if !strings.Contains(conn.output(), `"msg":"streaming"`) {
		t.Fatalf("ready before the stream started:\n%s", conn.output())
	}

	sinkProc := startProc(t, "sink", "--config", cfgPath)
	sinkBase := "http://" + logAttr(t, sinkProc, "sink ready", "api")
	checkBuildInfo(t, sinkProc, "baitoru-cdc sink starting", sinkBase+"/metrics")
	req, _ := http.NewRequest("POST", sinkBase+"/v1/links", strings.NewReader(`{"kobot_account":"acct-1","link_key":"7"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start link: %s", resp.Status)
	}
	// The link cache reloads on NOTIFY; wait until it holds the link.
	eventually(t, 10*time.Second, "sink holds the link", func() string {
		if v := sample(scrape(t, sinkBase+"/metrics"), "baitoru_cdc_sink_active_links"); v != 1 {
			return fmt.Sprintf("active links %v", v)
		}
		return ""
	})

	// 40 rows in one transaction (20 of the linked company 7, 20 of 8),
	// 10 one-row transactions of company 7, then 5 updates of company 8.
	testenv.MustExec(t, srcDSN, `INSERT INTO apps (application_id, company_id) SELECT g, CASE WHEN g % 2 = 0 THEN 7 ELSE 8 END FROM generate_series(1, 40) g`)
	for i := 41; i <= 50; i++ {
		testenv.MustExec(t, srcDSN, fmt.Sprintf(`INSERT INTO apps (application_id, company_id) VALUES (%d, 7)`, i))
	}
	testenv.MustExec(t, srcDSN, `UPDATE apps SET applicant_email = 'x@example.jp' WHERE application_id IN (1, 3, 5, 7, 9)`)
	var beforeLast string
	if err := pgQueryRow(ctx, srcDSN, `SELECT pg_current_wal_lsn()::text`, &beforeLast); err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, srcDSN, `INSERT INTO apps (application_id, company_id) VALUES (51, 8)`)
	const inserts, updates, linked = 51, 5, 30

	metrics := base + "/metrics"
	ins := []string{"table", "public.apps", "op", "insert"}
	upd := []string{"table", "public.apps", "op", "update"}
	eventually(t, 60*time.Second, "connector published every change", func() string {
		m := scrape(t, metrics)
		if p, u := sample(m, telemetry.EventsPublished, ins...), sample(m, telemetry.EventsPublished, upd...); p != inserts || u != updates {
			return fmt.Sprintf("published insert %v update %v, want %d %d", p, u, inserts, updates)
		}
		if n := sample(m, telemetry.InflightEvents); n != 0 {
			return fmt.Sprintf("%v events in flight", n)
		}
		return ""
	})
	m := scrape(t, metrics)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{telemetry.ChangesRead, ins, inserts},
		{telemetry.ChangesRead, upd, updates},
		{telemetry.ChangesRead, []string{"table", "public.apps", "op", "delete"}, 0},
		{telemetry.PublishFailures, ins, 0},
		{telemetry.CommitToPublish, nil, inserts + updates},
		{telemetry.InflightBytes, nil, 0},
		{telemetry.ReplicationStreaming, nil, 1},
	} {
		if got := sample(m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := sample(m, telemetry.PublishBatchDuration); n < 1 || n > inserts+updates {
		t.Errorf("%s count = %v", telemetry.PublishBatchDuration, n)
	}
	// The confirmed position is past the last commit, and PostgreSQL got it.
	confirmed := uint64(sample(m, telemetry.ConfirmedLSN))
	if confirmed <= parseLSN(t, beforeLast) {
		t.Errorf("%s = %X, not past the last commit (> %s)", telemetry.ConfirmedLSN, confirmed, beforeLast)
	}
	eventually(t, 10*time.Second, "slot confirmed", func() string {
		var s string
		if err := pgQueryRow(ctx, srcDSN, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdc'`, &s); err != nil {
			return err.Error()
		}
		if parseLSN(t, s) < confirmed {
			return "slot at " + s
		}
		return ""
	})

	// The slot monitor reports the WAL the slot retains (every 5 s).
	eventually(t, 15*time.Second, "retained WAL measured", func() string {
		if v := sample(scrape(t, metrics), telemetry.SlotRetainedWALBytes); v <= 0 {
			return fmt.Sprintf("%s = %v", telemetry.SlotRetainedWALBytes, v)
		}
		return ""
	})

	// The sink: linked events delivered, the others not.
	eventually(t, 60*time.Second, "sink handled every message", func() string {
		sm := scrape(t, sinkBase+"/metrics")
		d := sample(sm, "baitoru_cdc_sink_deliveries_total", "result", "delivered")
		u := sample(sm, "baitoru_cdc_sink_deliveries_total", "result", "unlinked")
		if d != linked || u != inserts+updates-linked {
			return fmt.Sprintf("delivered %v unlinked %v, want %d %d", d, u, linked, inserts+updates-linked)
		}
		return ""
	})
	sm := scrape(t, sinkBase+"/metrics")
	for _, r := range []string{"retry", "dlq", "duplicate"} {
		if v := sample(sm, "baitoru_cdc_sink_deliveries_total", "result", r); v != 0 {
			t.Errorf("sink result %s = %v, want 0", r, v)
		}
	}
	if n := sample(sm, "baitoru_cdc_sink_commit_to_delivery_seconds"); n != linked {
		t.Errorf("sink commit_to_delivery count = %v, want %d", n, linked)
	}
	got := map[string]int64{} // event id → data.company_id
	for _, r := range kb.got() {
		var ev struct {
			CompanyID int64 `json:"company_id"`
		}
		_ = json.Unmarshal(r.Data, &ev)
		got[r.ID] = ev.CompanyID
	}
	if bad := kb.Bad(); len(bad) > 0 {
		t.Errorf("receiver rejected pushes: %v", bad)
	}
	if len(got) != linked {
		t.Errorf("receiver got %d events, want %d", len(got), linked)
	}
	for id, company := range got {
		if company != 7 {
			t.Errorf("event %s of unlinked company %d reached Kobot", id, company)
		}
	}

	// The status line, with a rate while rows were flowing.
	eventually(t, 5*time.Second, "status line", func() string {
		for _, line := range strings.Split(conn.output(), "\n") {
			var l struct {
				Msg          string  `json:"msg"`
				Streaming    bool    `json:"streaming"`
				EventsPerSec float64 `json:"events_per_sec"`
				ConfirmedLSN string  `json:"confirmed_lsn"`
				Lag          any     `json:"lag"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "status" && l.Streaming && l.ConfirmedLSN != "" && l.Lag != nil {
				return ""
			}
		}
		return "no status line"
	})
	if !regexp.MustCompile(`"msg":"status".*"events_per_sec":[1-9]`).MatchString(conn.output()) {
		t.Errorf("no status line with events_per_sec > 0:\n%s", conn.output())
	}
	eventually(t, 5*time.Second, "status line with retained WAL", func() string {
		if !regexp.MustCompile(`"msg":"status".*"retained_wal_bytes":[1-9]`).MatchString(conn.output()) {
			return "none yet"
		}
		return ""
	})

	// PostgreSQL stops: not ready; back: ready, and streaming resumes
	// where it was confirmed (nothing re-sent).
	if err := source.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "not ready after PostgreSQL stopped", func() string {
		code, r := readyz(t, base)
		if code != http.StatusServiceUnavailable || r.Checks["replication"] != telemetry.ErrNotStreaming.Error() {
			return fmt.Sprintf("%d %+v", code, r)
		}
		return ""
	})
	if v := sample(scrape(t, metrics), telemetry.ReplicationStreaming); v != 0 {
		t.Errorf("%s = %v after PostgreSQL stopped", telemetry.ReplicationStreaming, v)
	}
	if err := source.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady("ready after PostgreSQL restarted")
	testenv.MustExec(t, srcDSN, `INSERT INTO apps (application_id, company_id) SELECT g, 7 FROM generate_series(52, 55) g`)
	eventually(t, 60*time.Second, "published after restart", func() string {
		m := scrape(t, metrics)
		if p := sample(m, telemetry.EventsPublished, ins...); p != inserts+4 {
			return fmt.Sprintf("published inserts %v, want %d", p, inserts+4)
		}
		return ""
	})
	eventually(t, 60*time.Second, "delivered after restart", func() string {
		d := sample(scrape(t, sinkBase+"/metrics"), "baitoru_cdc_sink_deliveries_total", "result", "delivered")
		if d != linked+4 {
			return fmt.Sprintf("delivered %v, want %d", d, linked+4)
		}
		return ""
	})
	if m := scrape(t, metrics); sample(m, telemetry.EventsPublished, upd...) != updates || sample(m, telemetry.ChangesRead, ins...) != inserts+4 {
		t.Errorf("counts after restart: read %v published updates %v", sample(m, telemetry.ChangesRead, ins...), sample(m, telemetry.EventsPublished, upd...))
	}

	for _, p := range []*proc{conn, sinkProc} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(t, 30*time.Second); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.output())
		}
	}
}

func parseLSN(t *testing.T, s string) uint64 {
	t.Helper()
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		t.Fatalf("parse LSN %q: %v", s, err)
	}
	return uint64(hi)<<32 | uint64(lo)
}

// pgQueryRow scans the one row of query into dst.
func pgQueryRow(ctx context.Context, dsn, query string, dst ...any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, query).Scan(dst...)
}

// TestStandbyConnectorTakesOver runs two connectors with one configuration:
// the second waits for the slot (not ready, not streaming) and takes over
// when the first stops, publishing what is committed afterwards.
func TestStandbyConnectorTakesOver(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	e := newE2E(t, testenv.PG(t))
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("log:\n"), []byte("metrics:\n  listen: \"127.0.0.1:0\"\nlog:\n"), 1)
	if err := os.WriteFile(e.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	active := startProc(t, "run", "--config", e.config)
	activeURL := "http://" + logAttr(t, active, "serving /metrics, /healthz, /readyz", "addr")
	active.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	standby := startProc(t, "run", "--config", e.config)
	standbyURL := "http://" + logAttr(t, standby, "serving /metrics, /healthz, /readyz", "addr")
	standby.waitLog(t, `"msg":"waiting for the replication slot; another connector streams it"`, 30*time.Second)
	if code, r := readyz(t, standbyURL); code != http.StatusServiceUnavailable || r.Checks["replication"] != telemetry.ErrNotStreaming.Error() {
		t.Fatalf("standby /readyz = %d %+v", code, r)
	}
	if code, _ := readyz(t, activeURL); code != 200 {
		t.Fatalf("active /readyz = %d", code)
	}
	testenv.MustExec(t, e.dsn, insertApps(1, 20))
	ins := []string{"table", "public.apps", "op", "insert"}
	eventually(t, 30*time.Second, "active published", func() string {
		if p := sample(scrape(t, activeURL+"/metrics"), telemetry.EventsPublished, ins...); p != 20 {
			return fmt.Sprintf("published %v", p)
		}
		return ""
	})

	_ = active.cmd.Process.Signal(syscall.SIGTERM)
	if err := active.wait(t, 30*time.Second); err != nil {
		t.Fatalf("active exit: %v", err)
	}
	start := time.Now()
	eventually(t, 15*time.Second, "standby took over", func() string {
		if code, r := readyz(t, standbyURL); code != 200 {
			return fmt.Sprintf("%d %+v", code, r)
		}
		return ""
	})
	t.Logf("standby ready %s after the active connector exited", time.Since(start).Round(time.Millisecond))
	testenv.MustExec(t, e.dsn, insertApps(21, 30))
	eventually(t, 30*time.Second, "standby published", func() string {
		if p := sample(scrape(t, standbyURL+"/metrics"), telemetry.EventsPublished, ins...); p != 10 {
			return fmt.Sprintf("published %v, want 10 (the rows after the takeover, nothing re-sent)", p)
		}
		return ""
	})
	c, err := e.emu.Collect(context.Background(), e.queue, 30, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkApps(t, c, 30)
	if c.Duplicates() != 0 {
		t.Errorf("%d duplicates after a clean handover", c.Duplicates())
	}
}

// TestSinkReadinessFollowsDatabase runs the sink as a process against a
// database cluster of its own: /readyz is ready with every check "ok", turns
// not ready (503) naming the database when PostgreSQL stops while /healthz
// stays 200, and ready again once PostgreSQL is back, without a restart.
func TestSinkReadinessFollowsDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	pg := testenv.OwnPG(t, testenv.PostgresOptions{})
	sinkDSN := pg.NewDatabase(t)
	emu := testenv.Emu(t)
	name := fmt.Sprintf("sinkready-%d", time.Now().UnixNano()%1e9)
	queueURL, _, err := emu.CreateQueue(ctx, name, testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kb := startKobot(t, "")
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`
log: {level: info, format: json}
sink:
  dsn: %s
  sqs: {region: %s, endpoint: %s, queue_url: %s, wait_time: 1s}
  kobot: {endpoint: %s, secret: "${KOBOT_TEST_SECRET}"}
  api: {listen: "127.0.0.1:0", token: readiness-test-token}
  links:
    - {table: public.apps, field: company_id}
`, sinkDSN, emu.Region, emu.Endpoint, queueURL, kb.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KOBOT_TEST_SECRET", kb.secret)
	sinkProc := startProc(t, "sink", "--config", cfgPath)
	base := "http://" + logAttr(t, sinkProc, "sink ready", "api")
	ready := func(what string) {
		eventually(t, 30*time.Second, what, func() string {
			code, r := readyz(t, base)
			if code != 200 || r.Status != "ready" || len(r.Checks) < 3 {
				return fmt.Sprintf("%d %+v", code, r)
			}
			for check, msg := range r.Checks {
				if msg != "ok" {
					return fmt.Sprintf("%s: %s", check, msg)
				}
			}
			return ""
		})
	}
	ready("sink ready")

	if err := pg.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 15*time.Second, "not ready with its database stopped", func() string {
		code, r := readyz(t, base)
		if code != http.StatusServiceUnavailable || r.Status != "not ready" || !strings.Contains(r.Checks["database"], "sink database") {
			return fmt.Sprintf("%d %+v", code, r)
		}
		return ""
	})
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz with the database stopped: %v %v", resp, err)
	}
	t.Logf("not ready %s after PostgreSQL stopped", time.Since(start).Round(time.Millisecond))
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	ready("ready again after the database restarted")
	t.Logf("ready %s after PostgreSQL started", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	_ = sinkProc.cmd.Process.Signal(syscall.SIGTERM)
	if err := sinkProc.wait(t, 30*time.Second); err != nil {
		t.Fatalf("sink exit after SIGTERM: %v\n%s", err, sinkProc.output())
	}
	t.Logf("sink exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
}
