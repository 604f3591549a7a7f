package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/child"
	"github.com/baitoru/baitoru-cdc/internal/kobottest"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
	"github.com/baitoru/baitoru-cdc/tools/internal/faultproxy"
)

// Secrets of a run. They are test values, but the suite treats them as
// real ones: the security test greps every output for them.
const (
	webhookSecret = "whsec_cmVsaWFiaWxpdHktc3VpdGUtc2VjcmV0LWtleS0wMQ=="
	apiToken      = "reliability-links-token-7f3c9a1e"
)

// links is the link plan of every stage: Kobot account → Baitoru company.
// Companies 4..6 have no link: their rows must never reach Kobot.
var links = []struct {
	account string
	company int
}{
	{"kobot-acme", 1},
	{"kobot-acme", 2},
	{"kobot-globex", 2},
	{"kobot-globex", 3},
	{"kobot-initech", 3},
}

// accountsOf maps a company id (as the event's JSON text) to its accounts.
func accountsOf(company string) []string {
	var out []string
	for _, l := range links {
		if strconv.Itoa(l.company) == company {
			out = append(out, l.account)
		}
	}
	return out
}

// env is what every stage shares: the binary, the source and sink
// PostgreSQL clusters, and the SNS/SQS emulator.
type env struct {
	bin    string
	root   string
	out    string
	src    *testenv.Postgres
	sinkPG *testenv.Postgres
	emu    *testenv.Emulator
	schema string
	log    io.Writer
	runID  string
}

// newEnv builds baitoru-cdc and starts the servers.
func newEnv(ctx context.Context, out string, log io.Writer) (*env, error) {
	e := &env{root: testenv.ModuleRoot(), out: out, log: log, runID: strconv.FormatInt(time.Now().Unix()%100000, 36)}
	if e.root == "" {
		return nil, fmt.Errorf("cannot find the baitoru-cdc module root; run from the repository")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	schema, err := os.ReadFile(filepath.Join(e.root, "testdata", "schema", "baitoru.sql"))
	if err != nil {
		return nil, err
	}
	e.schema = string(schema)
	e.bin = filepath.Join(out, "bin", "baitoru-cdc")
	build := exec.CommandContext(ctx, "go", "build", "-o", e.bin, "./cmd/baitoru-cdc")
	build.Dir = e.root
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/baitoru-cdc: %v\n%s", err, b)
	}
	var wg sync.WaitGroup
	var srcErr, sinkErr, emuErr error
	wg.Go(func() { e.src, srcErr = testenv.StartPostgres(testenv.PostgresOptions{}) })
	wg.Go(func() { e.sinkPG, sinkErr = testenv.StartPostgres(testenv.PostgresOptions{}) })
	wg.Go(func() { e.emu, emuErr = testenv.StartEmulator(testenv.EmulatorOptions{}) })
	wg.Wait()
	for _, err := range []error{srcErr, sinkErr, emuErr} {
		if err != nil {
			e.close()
			return nil, err
		}
	}
	fmt.Fprintf(log, "source PostgreSQL on :%d, sink PostgreSQL on :%d, emulator %s, logs in %s\n", e.src.Port, e.sinkPG.Port, e.emu.Endpoint, out)
	return e, nil
}

func (e *env) close() {
	if e.src != nil {
		_ = e.src.Close()
	}
	if e.sinkPG != nil {
		_ = e.sinkPG.Close()
	}
	if e.emu != nil {
		_ = e.emu.Close()
	}
}

// stage is one scenario's world: its own source and sink databases, slot,
// topic, queues (main, DLQ, and an audit queue that sees every published
// event), fault proxy, Kobot receiver and processes.
type stage struct {
	e      *env
	name   string
	dir    string
	slot   string
	srcDB  string
	srcDSN string
	sinkDB string
	// sinkDSN is the sink's database.
	sinkDSN  string
	topic    string
	queueURL string
	dlqURL   string
	audit    string
	proxy    *faultproxy.Proxy
	kobot    *kobottest.Receiver
	config   string
	extra    []string // per-stage BAITORU_CDC_* overrides
	procs    []*child.Process
	w        *writer
	stopW    context.CancelFunc
	wDone    chan struct{}
	apiURL   string
	faults   []faultMark
	seq      int
	conn     *child.Process // the connector streaming (or expected to)
	sink     *child.Process // the first sink
	// otherEvents counts the events of tables other than applications the
	// scenario had the connector publish (measured: exactly these).
	otherEvents int
}

// faultMark is the end of a fault: recovery is measured from at until
// Kobot processed every push of the rows covered (by default, every row
// the writer had committed at that moment and those of its first commit
// after it).
type faultMark struct {
	at       time.Time
	from, to int64 // application ids; to == 0: the writer's commits up to at
}

var unsafeName = regexp.MustCompile(`[^a-z0-9]+`)

// newStage creates the stage's databases, schema, topic and queues, and
// starts its proxy and Kobot receiver.
func (e *env) newStage(ctx context.Context, name string, extra []string) (*stage, error) {
	id := unsafeName.ReplaceAllString(strings.ToLower(name), "_")
	st := &stage{e: e, name: name, dir: filepath.Join(e.out, id), slot: "rel_" + id, extra: extra,
		srcDB: "rel_src_" + id, sinkDB: "rel_sink_" + id, config: filepath.Join(e.root, "config.yaml")}
	if err := os.MkdirAll(st.dir, 0o755); err != nil {
		return nil, err
	}
	for _, db := range []struct {
		pg   *testenv.Postgres
		name string
		dsn  *string
	}{{e.src, st.srcDB, &st.srcDSN}, {e.sinkPG, st.sinkDB, &st.sinkDSN}} {
		if err := dropDatabase(ctx, db.pg, db.name); err != nil {
			return nil, err
		}
		if err := testenv.Exec(ctx, db.pg.DSN("postgres"), "CREATE DATABASE "+pgx.Identifier{db.name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("create database %s: %w", db.name, err)
		}
		*db.dsn = db.pg.DSN(db.name)
	}
	if err := testenv.Exec(ctx, st.srcDSN, e.schema); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	qn := strings.ReplaceAll(id, "_", "-") + "-" + e.runID
	var err error
	if st.topic, err = e.emu.CreateTopic(ctx, "rel-"+qn); err != nil {
		return nil, err
	}
	var dlqARN, qARN, aARN string
	if st.dlqURL, dlqARN, err = e.emu.CreateQueue(ctx, "rel-"+qn+"-dlq", testenv.QueueOptions{}); err != nil {
		return nil, err
	}
	// Enough receives that retryable failures (Kobot down for a minute,
	// with the sink's growing redelivery delay) never reach the DLQ.
	if st.queueURL, qARN, err = e.emu.CreateQueue(ctx, "rel-"+qn, testenv.QueueOptions{DLQArn: dlqARN, MaxReceiveCount: 20}); err != nil {
		return nil, err
	}
	if st.audit, aARN, err = e.emu.CreateQueue(ctx, "rel-"+qn+"-audit", testenv.QueueOptions{}); err != nil {
		return nil, err
	}
	for _, q := range []string{qARN, aARN} {
		if err := e.emu.Subscribe(ctx, st.topic, q, true); err != nil {
			return nil, err
		}
	}
	if st.proxy, err = faultproxy.New(e.emu.Endpoint, slog.New(slog.DiscardHandler)); err != nil {
		return nil, err
	}
	if err := st.proxy.Start(); err != nil {
		return nil, err
	}
	key, err := kobot.ParseSecret(webhookSecret)
	if err != nil {
		return nil, err
	}
	st.kobot = kobottest.New(kobottest.Options{Secret: key})
	if err := st.kobot.Start(); err != nil {
		return nil, err
	}
	return st, nil
}

// dropDatabase removes a database with its replication slots, if it exists.
func dropDatabase(ctx context.Context, pg *testenv.Postgres, name string) error {
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
		_, _ = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, name)
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = $1`, name).Scan(&left); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drop database %s: %d slots still active", name, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// env is the process environment of the stage's binaries, child.Env plus
// the shipped config.yaml pointed at the stage's servers through
// BAITORU_CDC_* overrides, the SNS and SQS endpoints through the fault
// proxy, and the emulator's credentials. listen is
// the connector's metrics.listen or the sink's sink.api.listen: every
// process gets its own free port (an empty override would leave the
// shipped ":9090", which two connectors cannot share).
func (st *stage) env(listen string) []string {
	env := []string{
		"BAITORU_CDC_SOURCE_DSN=" + st.srcDSN,
		"BAITORU_CDC_SOURCE_SLOT=" + st.slot,
		"BAITORU_CDC_SNS_REGION=" + st.e.emu.Region,
		"BAITORU_CDC_SNS_ENDPOINT=" + st.proxy.URL(),
		"BAITORU_CDC_SNS_TOPIC_ARN=" + st.topic,
		"BAITORU_CDC_METRICS_LISTEN=" + listen,
		"BAITORU_CDC_LOG_FORMAT=json",
		"BAITORU_CDC_LOG_STATUS_INTERVAL=10s",
		"BAITORU_CDC_SINK_DSN=" + st.sinkDSN,
		"BAITORU_CDC_SINK_SQS_REGION=" + st.e.emu.Region,
		"BAITORU_CDC_SINK_SQS_ENDPOINT=" + st.proxy.URL(),
		"BAITORU_CDC_SINK_SQS_QUEUE_URL=" + st.queueURL,
		"BAITORU_CDC_SINK_SQS_DLQ_URL=" + st.dlqURL,
		"BAITORU_CDC_SINK_KOBOT_ENDPOINT=" + st.kobot.URL(),
		"BAITORU_CDC_SINK_KOBOT_SECRET=" + webhookSecret,
		"BAITORU_CDC_SINK_API_LISTEN=" + listen,
		"BAITORU_CDC_SINK_API_TOKEN=" + apiToken,
		// The emulator's static credentials.
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
	}
	return child.Env(append(env, st.extra...)...)
}

func (st *stage) logf(format string, a ...any) {
	fmt.Fprintf(st.e.log, "  [%s] %s %s\n", time.Now().Format("15:04:05.000"), st.name, fmt.Sprintf(format, a...))
}

// startConnector starts `baitoru-cdc run` and, when wait, waits until it
// streams.
func (st *stage) startConnector(wait bool) (*child.Process, error) {
	return st.startConnectorWith(st.config, wait)
}

func (st *stage) startConnectorWith(config string, wait bool) (*child.Process, error) {
	st.seq++
	name := fmt.Sprintf("run-%d", st.seq)
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := child.Start(child.Spec{Name: name, Path: st.e.bin, Args: []string{"run", "--config", config}, Env: st.env(addr),
		LogPath: filepath.Join(st.dir, name+".log")})
	if err != nil {
		return nil, err
	}
	st.procs = append(st.procs, p)
	if wait {
		if _, _, err := p.WaitLog(`^streaming$`, 60*time.Second); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// startSink starts `baitoru-cdc sink` on a free port and waits until
// /readyz answers 200.
func (st *stage) startSink() (*child.Process, error) {
	st.seq++
	name := fmt.Sprintf("sink-%d", st.seq)
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := child.Start(child.Spec{Name: name, Path: st.e.bin, Args: []string{"sink", "--config", st.config}, Env: st.env(addr),
		LogPath: filepath.Join(st.dir, name+".log")})
	if err != nil {
		return nil, err
	}
	st.procs = append(st.procs, p)
	url := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if p.Exited() {
			return nil, fmt.Errorf("%s exited (%v):\n%s", name, p.Err(), p.Tail(15))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not ready after 60s:\n%s", name, p.Tail(15))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.apiURL == "" {
		st.apiURL = url
	}
	return p, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startLinks creates the link plan through the links API.
func (st *stage) startLinks(ctx context.Context) error {
	for _, l := range links {
		body, _ := json.Marshal(map[string]string{"kobot_account": l.account, "link_key": strconv.Itoa(l.company)})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, st.apiURL+"/v1/links", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+apiToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("start link: %w", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("start link %s→%d: %d %s", l.account, l.company, resp.StatusCode, b)
		}
	}
	return nil
}

// startWriter starts committing rows in the background.
func (st *stage) startWriter(rowsPerTx int, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	st.w = &writer{dsn: st.srcDSN, rowsPerTx: rowsPerTx, interval: interval}
	st.stopW = cancel
	st.wDone = make(chan struct{})
	go func() {
		defer close(st.wDone)
		st.w.run(ctx)
	}()
}

// stopWriter stops the writer and waits for it.
func (st *stage) stopWriter() {
	if st.stopW != nil {
		st.stopW()
		<-st.wDone
		st.stopW = nil
	}
}

// faultEnded records the end of a fault (process restarted, server back):
// the recovery time is measured from there.
func (st *stage) faultEnded() { st.faults = append(st.faults, faultMark{at: time.Now()}) }

// rowsRecovered records that rows from..to were committed now; recovery is
// measured until all of them reached Kobot.
func (st *stage) rowsRecovered(from, to int64) {
	st.faults = append(st.faults, faultMark{at: time.Now(), from: from, to: to})
}

// close stops everything the stage started and drops its databases.
func (st *stage) close(ctx context.Context) {
	st.stopWriter()
	var wg sync.WaitGroup
	for _, p := range st.procs {
		wg.Go(func() { _ = p.Stop(30 * time.Second) })
	}
	wg.Wait()
	if st.proxy != nil {
		st.proxy.Close()
	}
	if st.kobot != nil {
		st.kobot.Close()
	}
	for _, db := range []struct {
		pg   *testenv.Postgres
		name string
	}{{st.e.src, st.srcDB}, {st.e.sinkPG, st.sinkDB}} {
		if db.pg.Running() {
			if err := dropDatabase(ctx, db.pg, db.name); err != nil {
				st.logf("cleanup: %v", err)
			}
		}
	}
}
