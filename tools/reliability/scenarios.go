package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/child"
)

// scale sizes a run: the full suite (make reliability) or the reduced one
// that runs in CI (go test ./tools/reliability).
type scale struct {
	name      string
	rowsPerTx int
	interval  time.Duration // between the writer's transactions
	warmup    time.Duration // writing before the first fault and after the last

	kills            int // scenario 1
	killMin, killMax time.Duration
	pgDown           time.Duration // scenario 2
	unreachable      time.Duration // scenario 3
	throttle         time.Duration
	throttleFraction float64
	kobotSlow        time.Duration // scenario 4
	kobotDown        time.Duration
	kobot500         time.Duration
	kobot400         time.Duration
	kobotTimeout     time.Duration // sink.kobot.timeout in effect
	sinkKills        int           // scenario 5
	compete          time.Duration
	haRounds         int // scenario 6
	bigTx            int // scenario 7
	maxInflight      int
	settle           time.Duration // longest wait for Kobot to get everything
	// extra overrides applied to every stage (the full run keeps the
	// shipped config.yaml's values).
	extra []string
}

var scales = map[string]scale{
	"full": {
		name: "full", rowsPerTx: 5, interval: 40 * time.Millisecond, warmup: 5 * time.Second,
		kills: 20, killMin: 500 * time.Millisecond, killMax: 4 * time.Second,
		pgDown:      10 * time.Second,
		unreachable: 30 * time.Second, throttle: 30 * time.Second, throttleFraction: 0.3,
		kobotSlow: 30 * time.Second, kobotDown: 30 * time.Second, kobot500: time.Minute, kobot400: 30 * time.Second,
		kobotTimeout: 5 * time.Second,
		sinkKills:    5, compete: 30 * time.Second,
		haRounds: 3,
		bigTx:    20000, maxInflight: 1000,
		settle: 8 * time.Minute,
	},
	"ci": {
		name: "ci", rowsPerTx: 3, interval: 40 * time.Millisecond, warmup: 2 * time.Second,
		kills: 4, killMin: 300 * time.Millisecond, killMax: 1500 * time.Millisecond,
		pgDown:      3 * time.Second,
		unreachable: 4 * time.Second, throttle: 4 * time.Second, throttleFraction: 0.3,
		kobotSlow: 3 * time.Second, kobotDown: 3 * time.Second, kobot500: 4 * time.Second, kobot400: 3 * time.Second,
		kobotTimeout: time.Second,
		sinkKills:    2, compete: 4 * time.Second,
		haRounds: 1,
		bigTx:    2000, maxInflight: 200,
		settle: 2 * time.Minute,
		extra: []string{
			"BAITORU_CDC_SOURCE_RECONNECT_MAX=1s",
			"BAITORU_CDC_PUBLISHER_RETRY_MAX=500ms",
			"BAITORU_CDC_SINK_SQS_WAIT_TIME=1s",
			"BAITORU_CDC_SINK_SQS_VISIBILITY_TIMEOUT=2s",
			"BAITORU_CDC_SINK_KOBOT_TIMEOUT=1s",
			"BAITORU_CDC_SINK_KOBOT_RETRY_INITIAL=50ms",
			"BAITORU_CDC_SINK_KOBOT_RETRY_MAX=200ms",
		},
	},
}

// scenario is one row of the table.
type scenario struct {
	id, title string
	// extra overrides for this stage.
	extra func(sc scale) []string
	// rejected accounts: Kobot answers 400 to them for the whole stage.
	rejected       map[string]bool
	allowAfterAck  bool
	allowAfterLate bool
	// droppedField: the scenario removes this data field from the mapping
	// part way; re-sent events may differ from the first send by it only.
	droppedField string
	// noWarmupAfter: the scenario writes and waits itself.
	run func(ctx context.Context, st *stage, sc scale, r *result) error
}

var scenarios = []scenario{
	{id: "1", title: "connector SIGKILLed at random moments", run: connectorKills},
	{id: "2a", title: "source PostgreSQL stopped (fast shutdown), restarted", run: pgStop("fast")},
	{id: "2b", title: "source PostgreSQL stopped (immediate shutdown: crash), restarted", run: pgStop("immediate")},
	{id: "2c", title: "sink PostgreSQL stopped (immediate), restarted", run: sinkPGStop},
	{id: "3a", title: "SNS/SQS endpoint unreachable (connection refused)", run: unreachable},
	{id: "3b", title: "SNS/SQS throttling: Throttling (400) / 503 to a fraction of calls", run: throttling},
	{id: "4a", title: "Kobot slow (answers after the sink's timeout)", run: kobotSlow, allowAfterLate: true},
	{id: "4b", title: "Kobot down (connection refused)", run: kobotDown},
	{id: "4c", title: "Kobot answers 500 to every push", run: kobot500},
	{id: "4d", title: "Kobot answers 400 for one account (kobot-initech)", run: kobot400,
		rejected: map[string]bool{"kobot-initech": true}},
	// A push Kobot is answering when the sink dies is counted "late" (the
	// sink never saw the answer); one answered just before the kill,
	// "after ack" (the delivery log never learnt it). Both are redelivered:
	// Kobot's own deduplication by event id absorbs them.
	{id: "5a", title: "sink SIGKILLed mid-batch", run: sinkKills, allowAfterAck: true, allowAfterLate: true},
	{id: "5b", title: "two sink processes competing for one queue", run: sinksCompete},
	{id: "6", title: "two connectors on one slot: standby takes over when the streaming one is SIGKILLed", run: takeover},
	{id: "7a", title: "transaction larger than publisher.max_inflight_events", run: bigTransaction,
		extra: func(sc scale) []string {
			// The window is sampled from the connector's /metrics.
			return []string{"BAITORU_CDC_PUBLISHER_MAX_INFLIGHT_EVENTS=" + strconv.Itoa(sc.maxInflight)}
		}},
	// The operator's fix drops the answers column: events published but
	// not acknowledged before the stop are re-sent without it.
	{id: "7b", title: "row whose event exceeds SNS's 256 KiB limit", run: oversizeRow, droppedField: "answers"},
	{id: "8", title: "a mapped table leaves the publication (DROP COLUMN … CASCADE), put back by setup", run: tableLoss},
}

// runScenario runs one stage: connector, sink and links up, the writer
// committing, the scenario's faults, more writing, then the measurement.
func runScenario(ctx context.Context, e *env, sc scale, s scenario) (r *result) {
	r = &result{ID: s.id, Title: s.title, allowAfterAck: s.allowAfterAck, allowAfterLate: s.allowAfterLate, droppedField: s.droppedField}
	start := time.Now()
	extra := append([]string(nil), sc.extra...)
	if s.extra != nil {
		extra = append(extra, s.extra(sc)...)
	}
	st, err := e.newStage(ctx, "s"+s.id, extra)
	if err != nil {
		r.fail("setup: %v", err)
		return r
	}
	defer st.close(context.WithoutCancel(ctx))
	defer func() { r.Elapsed = time.Since(start) }()
	for a := range s.rejected {
		st.kobot.Reject(a, http.StatusBadRequest)
	}
	if st.conn, err = st.startConnector(true); err != nil {
		r.fail("start connector: %v", err)
		return r
	}
	if st.sink, err = st.startSink(); err != nil {
		r.fail("start sink: %v", err)
		return r
	}
	if err := st.startLinks(ctx); err != nil {
		r.fail("links: %v", err)
		return r
	}
	st.startWriter(sc.rowsPerTx, sc.interval)
	sleepCtx(ctx, sc.warmup)
	if err := s.run(ctx, st, sc, r); err != nil {
		r.fail("%v", err)
		return r
	}
	sleepCtx(ctx, sc.warmup)
	if ctx.Err() != nil {
		r.fail("interrupted")
		return r
	}
	if err := st.settle(ctx, r, sc.settle, s.rejected); err != nil {
		r.fail("measure: %v", err)
	} else if r.after != nil {
		r.after(r)
	}
	c, e2, last := st.w.stats()
	if e2 > 0 {
		r.note("writer: %d commits, %d failed attempts (last: %v)", c, e2, trimErr(last))
	}
	return r
}

func trimErr(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rand.Int64N(int64(hi-lo)+1))
}

// 1: SIGKILL the connector at random moments; a new one starts at once.
func connectorKills(ctx context.Context, st *stage, sc scale, r *result) error {
	for i := 0; i < sc.kills && ctx.Err() == nil; i++ {
		sleepCtx(ctx, between(sc.killMin, sc.killMax))
		st.conn.Kill()
		p, err := st.startConnector(false)
		if err != nil {
			return err
		}
		st.faultEnded()
		st.conn = p
		if _, _, err := p.WaitLog(`^streaming$`, 60*time.Second); err != nil {
			return err
		}
	}
	r.note("%d SIGKILLs; each replacement resumed from the slot's confirmed position", sc.kills)
	return nil
}

// 2a/2b: stop the source cluster, keep it down, start it again.
func pgStop(mode string) func(context.Context, *stage, scale, *result) error {
	return func(ctx context.Context, st *stage, sc scale, r *result) error {
		st.logf("stopping source PostgreSQL (%s) for %s", mode, sc.pgDown)
		if err := st.e.src.Stop(mode); err != nil {
			return err
		}
		sleepCtx(ctx, sc.pgDown)
		if err := st.e.src.Start(); err != nil {
			return err
		}
		st.faultEnded()
		if st.conn.Exited() {
			return fmt.Errorf("connector exited during the outage (%v):\n%s", st.conn.Err(), st.conn.Tail(10))
		}
		if _, _, err := st.conn.WaitLog(`^replication stream interrupted`, 30*time.Second); err != nil {
			return err
		}
		r.note("connector reconnected by itself (same process)")
		return nil
	}
}

// 2c: stop the sink's database (links, delivery log).
func sinkPGStop(ctx context.Context, st *stage, sc scale, r *result) error {
	st.logf("stopping sink PostgreSQL (immediate) for %s", sc.pgDown)
	if err := st.e.sinkPG.Stop("immediate"); err != nil {
		return err
	}
	sleepCtx(ctx, sc.pgDown)
	if err := st.e.sinkPG.Start(); err != nil {
		return err
	}
	st.faultEnded()
	if st.sink.Exited() {
		return fmt.Errorf("sink exited during the outage (%v):\n%s", st.sink.Err(), st.sink.Tail(10))
	}
	return nil
}

// 3a: the SNS and SQS endpoint refuses connections (connector and sink).
func unreachable(ctx context.Context, st *stage, sc scale, r *result) error {
	st.logf("SNS/SQS unreachable for %s", sc.unreachable)
	st.proxy.Refuse()
	sleepCtx(ctx, sc.unreachable)
	if err := st.proxy.Restore(); err != nil {
		return err
	}
	st.faultEnded()
	for _, p := range []*child.Process{st.conn, st.sink} {
		if p.Exited() {
			return fmt.Errorf("%s exited during the outage (%v):\n%s", p.Name(), p.Err(), p.Tail(10))
		}
	}
	return nil
}

// 3b: a fraction of SNS and SQS calls answered Throttling or 503.
func throttling(ctx context.Context, st *stage, sc scale, r *result) error {
	st.logf("throttling %.0f%% of SNS/SQS calls for %s", sc.throttleFraction*100, sc.throttle)
	st.proxy.Throttle(sc.throttleFraction)
	sleepCtx(ctx, sc.throttle)
	st.proxy.Throttle(0)
	st.faultEnded()
	s := st.proxy.Stats()
	r.note("proxy answered %d calls Throttling and %d calls 503, forwarded %d", s.Throttled, s.Unavailable, s.Forwarded)
	if s.Throttled == 0 || s.Unavailable == 0 {
		return fmt.Errorf("the proxy injected no fault (%+v)", s)
	}
	return nil
}

// 4a: Kobot answers only after the sink's timeout (and applies the push).
func kobotSlow(ctx context.Context, st *stage, sc scale, r *result) error {
	d := sc.kobotTimeout + time.Second
	st.logf("Kobot answers after %s (sink timeout %s) for %s", d, sc.kobotTimeout, sc.kobotSlow)
	st.kobot.Slow(d)
	sleepCtx(ctx, sc.kobotSlow)
	st.kobot.Slow(0)
	st.faultEnded()
	return nil
}

// 4b: Kobot refuses connections.
func kobotDown(ctx context.Context, st *stage, sc scale, r *result) error {
	st.logf("Kobot down for %s", sc.kobotDown)
	st.kobot.Down()
	sleepCtx(ctx, sc.kobotDown)
	if err := st.kobot.Up(); err != nil {
		return err
	}
	st.faultEnded()
	return nil
}

// 4c: Kobot answers 500 to everything.
func kobot500(ctx context.Context, st *stage, sc scale, r *result) error {
	st.logf("Kobot answers 500 for %s", sc.kobot500)
	st.kobot.Fail(http.StatusInternalServerError)
	sleepCtx(ctx, sc.kobot500)
	st.kobot.Fail(0)
	st.faultEnded()
	return nil
}

// 4d: Kobot rejects one account's pushes for good (400) all along; the
// other accounts linked to the same company still get every event, and
// each rejected event is in the DLQ with reason kobot_rejected.
func kobot400(ctx context.Context, st *stage, sc scale, r *result) error {
	sleepCtx(ctx, sc.kobot400)
	r.after = func(r *result) {
		if got := r.DLQ["kobot_rejected"]; got != r.Rejected {
			r.fail("DLQ holds %d kobot_rejected messages, want %d (one per rejected push)", got, r.Rejected)
		} else {
			r.note("%d rejected pushes, each in the DLQ with reason kobot_rejected", got)
		}
	}
	return nil
}

// 5a: SIGKILL the sink while Kobot is answering its pushes.
func sinkKills(ctx context.Context, st *stage, sc scale, r *result) error {
	st.kobot.Slow(300 * time.Millisecond) // keeps pushes in flight
	defer st.kobot.Slow(0)
	for i := 0; i < sc.sinkKills && ctx.Err() == nil; i++ {
		sleepCtx(ctx, between(500*time.Millisecond, 2*time.Second))
		deadline := time.Now().Add(10 * time.Second)
		for st.kobot.InFlight() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		inflight := st.kobot.InFlight()
		st.sink.Kill()
		st.logf("sink SIGKILLed with %d pushes in flight", inflight)
		p, err := st.startSink()
		if err != nil {
			return err
		}
		st.sink = p
		st.faultEnded()
	}
	r.note("%d SIGKILLs with pushes in flight; a push Kobot answered 2xx just before the kill is pushed again after redelivery (the delivery log never learnt it)", sc.sinkKills)
	return nil
}

// 5b: a second sink on the same queue.
func sinksCompete(ctx context.Context, st *stage, sc scale, r *result) error {
	second, err := st.startSink()
	if err != nil {
		return err
	}
	sleepCtx(ctx, sc.compete)
	a, b := delivered(st.apiURL), delivered(sinkURL(second))
	r.note("sink 1 delivered %s messages, sink 2 %s", a, b)
	return nil
}

// sinkURL is the API address a sink process was given.
func sinkURL(p *child.Process) string { return "http://" + envValue(p, "BAITORU_CDC_SINK_API_LISTEN") }

// envValue is the value of variable k in p's environment (the last one
// wins, as for the process).
func envValue(p *child.Process, k string) string {
	v := ""
	for _, kv := range p.Cmd().Env {
		if s, ok := strings.CutPrefix(kv, k+"="); ok {
			v = s
		}
	}
	return v
}

var deliveredRE = regexp.MustCompile(`(?m)^baitoru_cdc_sink_deliveries_total\{result="delivered"\} (\S+)`)

// delivered reads a sink's count of delivered messages from /metrics.
func delivered(base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := deliveredRE.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return "0"
}

// 6: a standby connector waits for the slot; SIGKILL the streaming one
// and time the takeover.
func takeover(ctx context.Context, st *stage, sc scale, r *result) error {
	standby, err := st.startConnector(false)
	if err != nil {
		return err
	}
	for round := 0; round < sc.haRounds && ctx.Err() == nil; round++ {
		if _, _, err := standby.WaitLog(`waiting for the replication slot`, 30*time.Second); err != nil {
			return fmt.Errorf("the standby did not report that it waits for the slot: %w", err)
		}
		sleepCtx(ctx, between(time.Second, 3*time.Second))
		if standby.Exited() {
			return fmt.Errorf("standby exited: %v\n%s", standby.Err(), standby.Tail(10))
		}
		killed := time.Now()
		st.conn.Kill()
		_, seen, err := standby.WaitLog(`^streaming$`, 60*time.Second)
		if err != nil {
			return fmt.Errorf("standby did not take over: %w", err)
		}
		r.Takeover = append(r.Takeover, seen.Sub(killed))
		st.faultEnded()
		st.logf("takeover %d: %s", round+1, seen.Sub(killed).Round(time.Millisecond))
		st.conn = standby
		if round < sc.haRounds-1 {
			if standby, err = st.startConnector(false); err != nil {
				return err
			}
		}
	}
	for _, d := range r.Takeover {
		if d > 15*time.Second {
			r.fail("takeover took %s, want within seconds", d.Round(time.Millisecond))
		}
	}
	return nil
}

// 7a: one transaction of sc.bigTx rows (far more than the in-flight
// window) while the writer goes on; the window is sampled from /metrics.
func bigTransaction(ctx context.Context, st *stage, sc scale, r *result) error {
	addr := envValue(st.conn, "BAITORU_CDC_METRICS_LISTEN")
	var peak int
	sampling, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for sampling.Err() == nil {
			if n, ok := inflight("http://" + addr); ok {
				peak = max(peak, n)
			}
			sleepCtx(sampling, 20*time.Millisecond)
		}
	})
	conn, err := pgx.Connect(ctx, st.srcDSN)
	if err != nil {
		stopSampling()
		return err
	}
	defer conn.Close(context.Background())
	var lo, hi int64
	err = conn.QueryRow(ctx, `WITH ins AS (
		INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email, answers)
		SELECT (g % $2) + 1, 200, 'Big ' || g, 'big' || g || '@example.jp', jsonb_build_object('big', g)
		FROM generate_series(1, $1) g RETURNING application_id)
		SELECT min(application_id), max(application_id) FROM ins`, sc.bigTx, companies).Scan(&lo, &hi)
	if err != nil {
		stopSampling()
		return fmt.Errorf("big transaction: %w", err)
	}
	st.rowsRecovered(lo, hi)
	st.logf("committed one transaction of %d rows (in-flight window %d events)", sc.bigTx, sc.maxInflight)
	// Sample while the connector works through it.
	deadline := time.Now().Add(sc.settle)
	for time.Now().Before(deadline) && !rowsDelivered(st, lo, hi) {
		sleepCtx(ctx, 200*time.Millisecond)
	}
	stopSampling()
	wg.Wait()
	r.note("one transaction of %d rows; peak in-flight events sampled from /metrics: %d (limit %d)", sc.bigTx, peak, sc.maxInflight)
	if peak > sc.maxInflight {
		r.fail("in-flight events peaked at %d, over publisher.max_inflight_events %d", peak, sc.maxInflight)
	}
	if peak == 0 {
		r.fail("no in-flight events sampled from the connector's /metrics")
	}
	if st.conn.Exited() {
		return fmt.Errorf("connector exited: %v\n%s", st.conn.Err(), st.conn.Tail(10))
	}
	return nil
}

// rowsDelivered reports whether every push of rows lo..hi reached Kobot.
func rowsDelivered(st *stage, lo, hi int64) bool {
	rows, err := st.rows(context.Background())
	if err != nil {
		return false
	}
	var sel []row
	for _, x := range rows {
		if x.id >= lo && x.id <= hi {
			sel = append(sel, x)
		}
	}
	want, _ := expected(sel, nil)
	got := byRow(st.kobot.Pairs())
	for k := range want {
		if !processed(got[k]) {
			return false
		}
	}
	return true
}

var inflightRE = regexp.MustCompile(`(?m)^baitoru_cdc_inflight_events (\S+)`)

func inflight(base string) (int, bool) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := inflightRE.FindSubmatch(b)
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	return int(f), err == nil
}

var (
	eventIDRE = regexp.MustCompile(`event ([0-9A-F]+/[0-9A-F]+)-([0-9]+) of public\.applications \(key 1\) is ([0-9]+) bytes, over the SNS limit`)
)

// 7b: a row whose event is over 256 KiB stops the connector with an
// error naming table, key and event id; the slot is not confirmed past
// that transaction, also across a restart; a mapping without the large
// column lets it through, and nothing is lost.
func oversizeRow(ctx context.Context, st *stage, sc scale, r *result) error {
	var big int64
	conn, err := pgx.Connect(ctx, st.srcDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, `INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email, answers)
		VALUES (1, 300, 'Oversize', 'big@example.jp', jsonb_build_object('essay', repeat('あ', 100000)))
		RETURNING application_id`).Scan(&big)
	if err != nil {
		return fmt.Errorf("insert the oversize row: %w", err)
	}
	st.logf("committed row %d with a 300 KB answers document", big)
	check := func(p *child.Process) (string, error) {
		if err := p.Wait(60 * time.Second); err == nil {
			return "", fmt.Errorf("%s exited 0 on an event over the SNS limit", p.Name())
		} else if p.ExitCode() <= 0 {
			return "", fmt.Errorf("%s did not exit with an error status: %v", p.Name(), err)
		}
		m := eventIDRE.FindStringSubmatch(p.Output())
		if m == nil {
			return "", fmt.Errorf("%s's error does not name table public.applications, key 1, the event id and the size:\n%s", p.Name(), p.Tail(5))
		}
		lsn := m[1]
		var below bool
		var confirmed string
		if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, confirmed_flush_lsn < $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`,
			st.slot, lsn).Scan(&confirmed, &below); err != nil {
			return "", fmt.Errorf("read the slot: %w", err)
		}
		if !below {
			return "", fmt.Errorf("slot confirmed up to %s, not below the oversize event's commit %s: the transaction was acknowledged", confirmed, lsn)
		}
		return fmt.Sprintf("event %s-%s (%s bytes); slot confirmed %s < commit %s", m[1], m[2], m[3], confirmed, lsn), nil
	}
	msg, err := check(st.conn)
	if err != nil {
		return err
	}
	r.note("connector exited %d: %s", st.conn.ExitCode(), msg)
	// A restart with the same mapping stops at the same event.
	p, err := st.startConnector(false)
	if err != nil {
		return err
	}
	st.conn = p
	if msg, err = check(p); err != nil {
		return fmt.Errorf("after a restart: %w", err)
	}
	r.note("restarted with the same mapping: exited %d again at the same event, slot still below it", p.ExitCode())

	// The operator's fix: stop publishing the large column.
	shipped, err := os.ReadFile(st.config)
	if err != nil {
		return err
	}
	const line = "      - column: answers\n"
	if strings.Count(string(shipped), line) != 1 {
		return fmt.Errorf("config.yaml: want exactly one %q line to drop", strings.TrimSpace(line))
	}
	fixed := filepath.Join(st.dir, "config-without-answers.yaml")
	if err := os.WriteFile(fixed, []byte(strings.Replace(string(shipped), line, "", 1)), 0o644); err != nil {
		return err
	}
	if p, err = st.startConnectorWith(fixed, true); err != nil {
		return err
	}
	st.conn = p
	st.faultEnded()
	r.note("restarted without the answers column: the row and every row committed after it were published")
	return nil
}
