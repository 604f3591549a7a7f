// Command demo is baitoru-cdc's local quickstart (make demo, make
// demo-check). It needs what make deps installs and nothing else: no AWS
// account, no Docker. It
//
//  1. builds baitoru-cdc and kobot-receiver (go build) into a temporary
//     directory, and runs those real binaries as child processes;
//  2. starts a throwaway PostgreSQL (wal_level=logical) with the sample
//     Baitoru schema and rows (testdata/schema), and does the DBA's part:
//     the connector's role (REPLICATION), `baitoru-cdc setup` (publication
//     and slot), the sink's role and database;
//  3. starts the SNS/SQS emulator with the topic baitoru-events and the
//     queue baitoru-kobot subscribed with raw delivery, dead-lettering to
//     baitoru-kobot-dlq after 5 receives;
//  4. starts the Kobot receiver (signature verification), the connector
//     (`baitoru-cdc run`) and the sink (`baitoru-cdc sink`), all with the
//     shipped config.yaml, pointed at the throwaway servers through
//     environment overrides; waits for their /readyz;
//  5. starts one link through the links API: Kobot account kobot-demo ↔
//     Baitoru company 1; the link's history (company 1's postings and
//     applications that existed before the link) reaches Kobot as read
//     events, asked for by the sink as the requester role, and the links
//     API shows its progress until it is done;
//  6. inserts and updates rows of company 1 (linked) and companies 2 and 3
//     (not linked), and prints each event as Kobot receives it, with its
//     commit→receipt latency.
//
// Without -check it then keeps running, printing what arrives, until
// Ctrl-C. With -check it exits 0 only when every linked event (the
// history's reads included) reached the receiver and no unlinked one did.
// Either way it stops everything it started and removes its files.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/child"
	"github.com/baitoru/baitoru-cdc/internal/kobottest"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

func main() {
	check := flag.Bool("check", false, "run non-interactively; exit 0 only when exactly the linked events reached Kobot")
	timeout := flag.Duration("timeout", 40*time.Second, "with -check: how long to wait for the events once the rows are committed")
	bin := flag.String("bin", "", "run baitoru-cdc and kobot-receiver from this directory (built already, as make demo does) instead of building them")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{check: *check, timeout: *timeout, out: os.Stdout, prebuilt: *bin}
	err := d.run(ctx)
	if err != nil {
		d.printf("FAILED: %v", err)
		d.dumpLogs()
	}
	// The logs the demo advertises stay after Ctrl-C or a failure; a
	// passing -check (CI) leaves nothing behind.
	d.cleanup(!d.check || err != nil)
	if err != nil {
		os.Exit(1)
	}
}

const (
	topicName = "baitoru-events"
	queueName = "baitoru-kobot"
	dlqName   = "baitoru-kobot-dlq"
	account   = "kobot-demo"
	linked    = "1" // Baitoru company the link is made for
)

type demo struct {
	check    bool
	timeout  time.Duration
	prebuilt string // the directory of binaries built already; "": build them
	out      io.Writer
	started  time.Time

	root, dir, bin string
	pg             *testenv.Postgres
	emu            *testenv.Emulator
	children       []*child.Process
	connector      *child.Process
	sink           *child.Process
	receiver       *child.Process

	metricsURL, apiURL, token string
	receipts                  chan kobottest.Receipt
}

func (d *demo) printf(format string, a ...any) {
	fmt.Fprintf(d.out, "demo: "+format+"\n", a...)
}

// still says, every 5 seconds until stop is called, that the phase what
// is still under way, so that no phase is silent for long (a first build,
// initdb on a busy machine). stop returns once the reminder stopped.
func (d *demo) still(what string) (stop func()) {
	start := time.Now()
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				d.printf("… still %s (%s so far)", what, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); <-exited }
}

func (d *demo) run(ctx context.Context) error {
	d.started = time.Now()
	d.root = testenv.ModuleRoot()
	if d.root == "" {
		return errors.New("run the demo from the baitoru-cdc repository (make demo)")
	}
	var err error
	if d.dir, err = os.MkdirTemp("", "baitoru-demo-"); err != nil {
		return err
	}
	d.bin = filepath.Join(d.dir, "bin")

	if err := d.build(ctx); err != nil {
		return err
	}
	if err := d.startPostgres(ctx); err != nil {
		return err
	}
	if err := d.startEmulator(ctx); err != nil {
		return err
	}
	if err := d.startProcesses(ctx); err != nil {
		return err
	}
	history, err := d.existingRows(ctx)
	if err != nil {
		return err
	}
	if err := d.startLink(ctx); err != nil {
		return err
	}
	sc, err := d.writeRows(ctx)
	if err != nil {
		return err
	}
	for k := range history {
		sc.linked[k] = true
	}
	if err := d.await(ctx, sc); err != nil {
		return err
	}
	if d.check {
		return nil
	}
	return d.interactive(ctx)
}

// build compiles the binaries the demo runs, or takes them from
// d.prebuilt.
func (d *demo) build(ctx context.Context) error {
	if d.prebuilt != "" {
		abs, err := filepath.Abs(d.prebuilt)
		if err != nil {
			return err
		}
		for _, b := range []string{"baitoru-cdc", "kobot-receiver"} {
			if _, err := os.Stat(filepath.Join(abs, b)); err != nil {
				return fmt.Errorf("-bin %s: %w (build them with make demo, or leave -bin out)", d.prebuilt, err)
			}
		}
		d.bin = abs
		return nil
	}
	d.printf("building baitoru-cdc and kobot-receiver (go build; the first time takes a minute)…")
	t := time.Now()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", d.bin+"/", "./cmd/baitoru-cdc", "./tools/kobot-receiver")
	cmd.Dir = d.root
	stop := d.still("building baitoru-cdc and kobot-receiver")
	out, err := cmd.CombinedOutput()
	stop()
	if err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	d.printf("built baitoru-cdc and kobot-receiver (%s)", time.Since(t).Round(100*time.Millisecond))
	return nil
}

// startPostgres starts the throwaway cluster and does what a DBA does for
// baitoru-cdc (docs/dba.md): a role with REPLICATION for the connector, the
// publication of the mapped tables, and the sink's own role and database.
func (d *demo) startPostgres(ctx context.Context) error {
	d.printf("starting a throwaway PostgreSQL (initdb, the sample schema and rows, the roles)…")
	t := time.Now()
	stop := sync.OnceFunc(d.still("starting PostgreSQL"))
	defer stop()
	pg, err := testenv.StartPostgres(testenv.PostgresOptions{})
	if err != nil {
		return err
	}
	d.pg = pg
	super := pg.DSN("postgres")
	for _, sql := range []string{
		`CREATE ROLE baitoru_cdc LOGIN REPLICATION`,
		`CREATE ROLE baitoru_sink LOGIN`,
		`CREATE DATABASE baitoru`,
		`CREATE DATABASE baitoru_sink OWNER baitoru_sink`,
	} {
		if err := testenv.Exec(ctx, super, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	db := pg.DSN("baitoru")
	for _, f := range []string{"baitoru.sql", "sample_data.sql"} {
		sql, err := os.ReadFile(filepath.Join(d.root, "testdata", "schema", f))
		if err != nil {
			return err
		}
		if err := testenv.Exec(ctx, db, string(sql)); err != nil {
			return fmt.Errorf("load %s: %w", f, err)
		}
	}
	// Two more postings of company 1, from before any link: the history a
	// link start brings.
	if err := testenv.Exec(ctx, db, `INSERT INTO job_postings (company_id, title, description, employment_type, wage, wage_unit, location, published, opens_on) VALUES
		(1, '早朝仕込みスタッフ', '開店前の仕込み。', 'part_time', 1300.00, 'hour', '東京都新宿区西新宿', true, '2026-11-15'),
		(1, '店長候補', 'ホール・キッチンの統括。', 'full_time', 280000.00, 'month', '東京都新宿区西新宿', true, '2026-11-20')`); err != nil {
		return err
	}
	if err := testenv.Exec(ctx, db, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO baitoru_cdc`); err != nil {
		return err
	}
	stop()
	d.printf("PostgreSQL on 127.0.0.1:%d (throwaway, wal_level=logical; %s): database baitoru with the sample schema, role baitoru_cdc (REPLICATION)",
		pg.Port, time.Since(t).Round(100*time.Millisecond))

	// The DBA's step: `baitoru-cdc setup` as the owner of the tables
	// creates the publication and the permanent slot the config needs.
	t = time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "baitoru-cdc"), "setup", "--config", filepath.Join(d.root, "config.yaml"), "--dsn", db)
	cmd.Env = child.Env(d.sourceEnv()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("baitoru-cdc setup: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "setup.log"), out, 0o644); err != nil {
		return err
	}
	d.printf("`baitoru-cdc setup --config config.yaml` as the DBA (%s): publication and slot created (its SQL: setup.log)", time.Since(t).Round(100*time.Millisecond))

	// The requester role the sink asks for link histories with, as setup's
	// script lists it (setup itself granted the connector's role its
	// backfill privileges: the role existed).
	objs := dba.BackfillObjects{Schema: "baitoru_cdc"}
	stmts := []string{`CREATE ROLE ` + dba.RequesterRole + ` LOGIN`}
	for _, s := range dba.RequesterNotes(objs, "baitoru") {
		if !strings.HasPrefix(s, "CREATE ROLE") {
			stmts = append(stmts, s)
		}
	}
	for _, sql := range stmts {
		if err := testenv.Exec(ctx, db, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	d.printf("role %s (may request backfills and read their progress, nothing else) for the sink's link histories, as setup's script describes it", dba.RequesterRole)
	return nil
}

// sourceEnv points config.yaml's source.dsn at the throwaway cluster.
func (d *demo) sourceEnv() []string {
	return []string{"BAITORU_DB_HOST=127.0.0.1", fmt.Sprintf("BAITORU_DB_PORT=%d", d.pg.Port), "BAITORU_DB_SSLMODE=disable"}
}

func (d *demo) startEmulator(ctx context.Context) error {
	d.printf("starting the SNS/SQS emulator (fauxqs on Node 22)…")
	t := time.Now()
	stop := sync.OnceFunc(d.still("starting the emulator"))
	defer stop()
	emu, err := testenv.StartEmulator(testenv.EmulatorOptions{InMemory: true})
	if err != nil {
		return err
	}
	d.emu = emu
	topic, err := emu.CreateTopic(ctx, topicName)
	if err != nil {
		return err
	}
	_, dlqARN, err := emu.CreateQueue(ctx, dlqName, testenv.QueueOptions{})
	if err != nil {
		return err
	}
	_, queueARN, err := emu.CreateQueue(ctx, queueName, testenv.QueueOptions{DLQArn: dlqARN, MaxReceiveCount: 5, VisibilityTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	if err := emu.Subscribe(ctx, topic, queueARN, true); err != nil {
		return err
	}
	stop()
	d.printf("SNS/SQS emulator at %s (%s): topic %s → queue %s (raw delivery), DLQ %s after 5 receives",
		emu.Endpoint, time.Since(t).Round(100*time.Millisecond), topicName, queueName, dlqName)
	return nil
}

// startProcesses starts the receiver, the connector and the sink, and waits
// until each is ready.
func (d *demo) startProcesses(ctx context.Context) error {
	secret := make([]byte, 32)
	tok := make([]byte, 16)
	_, _ = rand.Read(secret)
	_, _ = rand.Read(tok)
	webhookSecret := "whsec_" + base64.StdEncoding.EncodeToString(secret)
	d.token = hex.EncodeToString(tok)
	// The token is a throwaway, but still not printed: it goes to a file.
	if err := os.WriteFile(filepath.Join(d.dir, "links-api-token"), []byte(d.token), 0o600); err != nil {
		return err
	}

	// Kobot.
	d.receipts = make(chan kobottest.Receipt, 1024)
	pr, pw := io.Pipe()
	go d.readReceipts(pr)
	rcv, err := d.spawn("kobot-receiver", "kobot-receiver", []string{"-listen", "127.0.0.1:0", "-json"},
		[]string{"KOBOT_WEBHOOK_SECRET=" + webhookSecret}, pw)
	if err != nil {
		return err
	}
	d.receiver = rcv
	l, _, err := rcv.WaitLog("^listening$", 10*time.Second)
	if err != nil {
		return err
	}
	kobotURL, _ := l["url"].(string)
	d.printf("Kobot receiver at %s (verifies Standard Webhooks signatures)", kobotURL)

	cfg := filepath.Join(d.root, "config.yaml")
	env := append(d.sourceEnv(),
		// config.yaml's ${VAR:-default} references.
		"SINK_DB_HOST=127.0.0.1", fmt.Sprintf("SINK_DB_PORT=%d", d.pg.Port), "SINK_DB_SSLMODE=disable",
		"AWS_REGION="+d.emu.Region,
		"BAITORU_TOPIC_ARN=arn:aws:sns:"+d.emu.Region+":000000000000:"+topicName,
		"SINK_QUEUE_URL="+d.emu.Endpoint+"/000000000000/"+queueName,
		"SINK_DLQ_URL="+d.emu.Endpoint+"/000000000000/"+dlqName,
		"KOBOT_ENDPOINT="+kobotURL,
		"KOBOT_WEBHOOK_SECRET="+webhookSecret,
		"LINKS_API_TOKEN="+d.token,
		fmt.Sprintf("BAITORU_REQUESTER_DSN=postgres://%s@127.0.0.1:%d/baitoru?sslmode=disable", dba.RequesterRole, d.pg.Port),
		// BAITORU_CDC_* overrides of single keys.
		"BAITORU_CDC_SNS_ENDPOINT="+d.emu.Endpoint,
		"BAITORU_CDC_SINK_SQS_ENDPOINT="+d.emu.Endpoint,
		"BAITORU_CDC_METRICS_LISTEN=127.0.0.1:0",
		"BAITORU_CDC_SINK_API_LISTEN=127.0.0.1:0",
		"BAITORU_CDC_SINK_SQS_WAIT_TIME=1s", // quick shutdown
		"BAITORU_CDC_LOG_FORMAT=json",
		"BAITORU_CDC_LOG_STATUS_INTERVAL=10s",
		// The emulator's static credentials.
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
	)

	// The connector.
	d.printf("starting the connector (baitoru-cdc run) and waiting until it streams…")
	t := time.Now()
	stop := sync.OnceFunc(d.still("waiting for the connector to stream"))
	defer stop()
	if d.connector, err = d.spawn("connector", "baitoru-cdc", []string{"run", "--config", cfg}, env, nil); err != nil {
		return err
	}
	l, _, err = d.connector.WaitLog("^serving /metrics, /healthz, /readyz$", 30*time.Second)
	if err != nil {
		return err
	}
	addr, _ := l["addr"].(string)
	d.metricsURL = "http://" + addr
	err = d.waitReady(ctx, d.connector, d.metricsURL+"/readyz")
	stop()
	if err != nil {
		return err
	}
	d.printf("connector `baitoru-cdc run --config config.yaml` streaming (%s): %s/metrics, /readyz 200",
		time.Since(t).Round(100*time.Millisecond), d.metricsURL)

	// The sink.
	d.printf("starting the sink (baitoru-cdc sink) and waiting until it is ready…")
	t = time.Now()
	if d.sink, err = d.spawn("sink", "baitoru-cdc", []string{"sink", "--config", cfg}, env, nil); err != nil {
		return err
	}
	if l, _, err = d.sink.WaitLog("^sink ready$", 30*time.Second); err != nil {
		return err
	}
	api, _ := l["api"].(string)
	d.apiURL = "http://" + api
	if err := d.waitReady(ctx, d.sink, d.apiURL+"/readyz"); err != nil {
		return err
	}
	d.printf("sink `baitoru-cdc sink --config config.yaml` consuming %s (%s): links API and /metrics at %s",
		queueName, time.Since(t).Round(100*time.Millisecond), d.apiURL)
	return nil
}

func (d *demo) spawn(name, bin string, args, env []string, stdout io.Writer) (*child.Process, error) {
	c, err := child.Start(child.Spec{Name: name, Path: filepath.Join(d.bin, bin), Args: args, Env: child.Env(env...),
		LogPath: filepath.Join(d.dir, name+".log"), Stdout: stdout})
	if err != nil {
		return nil, err
	}
	d.children = append(d.children, c)
	return c, nil
}

// waitReady polls url (a /readyz) until it answers 200.
func (d *demo) waitReady(ctx context.Context, c *child.Process, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		if c.Exited() {
			return c.ExitError(20)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 30s: %s", c.Name(), last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startLink starts the link kobot-demo ↔ company 1 and waits until the
// sink's link cache holds it.
func (d *demo) startLink(ctx context.Context) error {
	body := fmt.Sprintf(`{"kobot_account":%q,"link_key":%q}`, account, linked)
	req, _ := http.NewRequestWithContext(ctx, "POST", d.apiURL+"/v1/links", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("start link: %w", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("start link: %s %s", resp.Status, b)
	}
	d.printf("POST /v1/links %s → %s %s", body, resp.Status, strings.TrimSpace(string(b)))
	var link struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &link); err != nil {
		return fmt.Errorf("start link: %s: %w", b, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := scrape(d.apiURL + "/metrics")
		if err == nil && m.value("baitoru_cdc_sink_active_links") >= 1 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the sink does not hold the link after 10s (baitoru_cdc_sink_active_links): %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d.awaitHistory(ctx, link.ID)
}

// historyProgress is one entry of a link's history (GET /v1/links/{id}).
type historyProgress struct {
	Table    string `json:"table"`
	State    string `json:"state"`
	RowsDone int64  `json:"rows_done"`
	Error    string `json:"error"`
}

// awaitHistory follows GET /v1/links/{id} until every table of the link's
// history is done, printing each change of its progress.
func (d *demo) awaitHistory(ctx context.Context, id int64) error {
	d.printf("the link's history: company %s's existing rows, asked for by the sink (GET /v1/links/%d):", linked, id)
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/links/%d", d.apiURL, id), nil)
		req.Header.Set("Authorization", "Bearer "+d.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("get link: %w", err)
		}
		var l struct {
			History []historyProgress `json:"history"`
		}
		err = json.NewDecoder(resp.Body).Decode(&l)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("get link: %w", err)
		}
		var parts []string
		done := len(l.History) > 0
		for _, h := range l.History {
			parts = append(parts, fmt.Sprintf("%s %s, %d rows", h.Table, h.State, h.RowsDone))
			if h.State == "failed" || h.State == "cancelled" {
				return fmt.Errorf("the link's history of %s is %s: %s", h.Table, h.State, h.Error)
			}
			done = done && h.State == "done"
		}
		if line := strings.Join(parts, "; "); line != last {
			fmt.Fprintln(d.out, "    "+line)
			last = line
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the link's history is not done after 30s: %s", last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readReceipts parses the receiver's JSON lines.
func (d *demo) readReceipts(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rc kobottest.Receipt
		if json.Unmarshal(sc.Bytes(), &rc) == nil {
			d.receipts <- rc
		}
	}
}

// await prints receipts until every expected event arrived and the sink
// has handled the unlinked ones, then checks that exactly the linked ones
// reached Kobot.
func (d *demo) await(ctx context.Context, sc *scenario) error {
	d.printf("events received by Kobot (account %s, company %s):", account, linked)
	deadline := time.NewTimer(d.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	got := map[string]kobottest.Receipt{}
	var unexpected []string
	var latencies []float64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case rc := <-d.receipts:
			k := receiptKey(rc)
			mark := "  ✓ "
			switch {
			case rc.Duplicate:
				mark = "  = "
			case sc.unlinked[k]:
				mark = "  ✗ "
				unexpected = append(unexpected, k)
			case !sc.linked[k]:
				mark = "  ? "
			default:
				got[k] = rc
				latencies = append(latencies, rc.LatencyMS)
			}
			fmt.Fprintln(d.out, mark+kobottest.Format(rc))
		case <-tick.C:
			for _, c := range d.children {
				if c.Exited() {
					return c.ExitError(20)
				}
			}
			if len(got) < len(sc.linked) {
				continue
			}
			// Every linked event arrived; the unlinked ones must have been
			// handled (and dropped) by the sink, not merely be late, and the
			// sink's own count must agree.
			m, err := scrape(d.apiURL + "/metrics")
			if err != nil || m.value("baitoru_cdc_sink_deliveries_total", "result", "unlinked") < float64(len(sc.unlinked)) ||
				m.value("baitoru_cdc_sink_deliveries_total", "result", "delivered") < float64(len(sc.linked)) {
				continue
			}
			if len(unexpected) > 0 {
				return fmt.Errorf("events of unlinked companies reached Kobot: %v", unexpected)
			}
			d.summary(m, latencies, len(sc.unlinked))
			return nil
		case <-deadline.C:
			var missing []string
			for k := range sc.linked {
				if _, ok := got[k]; !ok {
					missing = append(missing, k)
				}
			}
			sort.Strings(missing)
			m, _ := scrape(d.apiURL + "/metrics")
			return fmt.Errorf("after %s: %d of %d linked events reached Kobot (missing %v); sink unlinked %v of %d; unlinked delivered %v",
				d.timeout, len(got), len(sc.linked), missing, m.value("baitoru_cdc_sink_deliveries_total", "result", "unlinked"), len(sc.unlinked), unexpected)
		}
	}
}

func (d *demo) summary(sink metrics, latencies []float64, unlinked int) {
	conn, _ := scrape(d.metricsURL + "/metrics")
	slices.Sort(latencies)
	d.printf("OK: %d linked events reached Kobot (commit→receipt %.1f–%.1fms), %d events of unlinked companies did not",
		len(latencies), latencies[0], latencies[len(latencies)-1], unlinked)
	d.printf("connector: %v changes read, %v events published, %v rows of link histories sent as read events; sink: %v delivered, %v unlinked, %v retried, %v dead-lettered",
		conn.sum("baitoru_cdc_changes_read_total"), conn.sum("baitoru_cdc_events_published_total"), conn.sum("baitoru_cdc_backfill_rows_published_total"),
		sink.value("baitoru_cdc_sink_deliveries_total", "result", "delivered"),
		sink.value("baitoru_cdc_sink_deliveries_total", "result", "unlinked"),
		sink.value("baitoru_cdc_sink_deliveries_total", "result", "retry"),
		sink.value("baitoru_cdc_sink_deliveries_total", "result", "dlq"))
}

// interactive prints what arrives until Ctrl-C.
func (d *demo) interactive(ctx context.Context) error {
	psql := "psql"
	if _, err := exec.LookPath("psql"); err != nil {
		if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql"); len(m) > 0 {
			psql = m[len(m)-1]
		}
	}
	tokenFile := filepath.Join(d.dir, "links-api-token")
	fmt.Fprintf(d.out, `
Everything is running. Try it (company %[1]s is linked to %[2]s; 2 and 3 are not):

  %[3]s "%[4]s" \
    -c "INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email) VALUES (1, 101, 'デモ 太郎', 'demo@example.jp')"

  curl -s -H "Authorization: Bearer $(cat %[5]s)" %[6]s/v1/links/1      # the link and its history
  curl -s %[7]s/metrics | grep ^baitoru_cdc_                                # connector metrics
  curl -s %[6]s/metrics | grep ^baitoru_cdc_sink_                            # sink metrics

Logs: %[8]s/{setup,connector,sink,kobot-receiver}.log
Ctrl-C stops everything and removes what the demo started but these logs.

`, linked, account, psql, d.pg.DSN("baitoru"), tokenFile, d.apiURL, d.metricsURL, d.dir)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(d.out)
			return nil
		case rc := <-d.receipts:
			fmt.Fprintln(d.out, "  ✓ "+kobottest.Format(rc))
		case <-tick.C:
			for _, c := range d.children {
				if c.Exited() {
					return c.ExitError(20)
				}
			}
		}
	}
}

// dumpLogs prints the end of every child's log (after a failure).
func (d *demo) dumpLogs() {
	for _, c := range d.children {
		fmt.Fprintf(d.out, "--- last lines of %s (%s):\n%s\n", c.Name(), c.LogPath(), c.Tail(15))
	}
}

// cleanup stops everything the demo started and removes its files.
func (d *demo) cleanup(keepLogs bool) {
	stopped := func() {}
	if len(d.children) > 0 || d.emu != nil || d.pg != nil {
		d.printf("stopping the connector, the sink, the receiver, the emulator and PostgreSQL (each finishes what it is doing)…")
		stopped = d.still("stopping")
	}
	var wg sync.WaitGroup
	for _, c := range d.children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Stop(20 * time.Second); err != nil {
				d.printf("stop: %v", err)
			}
		}()
	}
	wg.Wait()
	if d.emu != nil {
		_ = d.emu.Close()
	}
	if d.pg != nil {
		_ = d.pg.Close()
	}
	stopped()
	took := time.Since(d.started).Round(100 * time.Millisecond)
	if d.dir == "" {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(d.dir, "*.log"))
	if keepLogs && len(logs) > 0 {
		// Everything but the logs: the binaries, the token file.
		entries, _ := os.ReadDir(d.dir)
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".log") {
				_ = os.RemoveAll(filepath.Join(d.dir, e.Name()))
			}
		}
		names := make([]string, len(logs))
		for i, l := range logs {
			names[i] = strings.TrimSuffix(filepath.Base(l), ".log")
		}
		d.printf("stopped the connector, the sink, the receiver, the emulator and PostgreSQL (%s in all); the logs stay in %s/{%s}.log (rm -r %s when done)",
			took, d.dir, strings.Join(names, ","), d.dir)
		return
	}
	_ = os.RemoveAll(d.dir)
	d.printf("stopped the connector, the sink, the receiver, the emulator and PostgreSQL; removed %s (%s in all)", d.dir, took)
}
