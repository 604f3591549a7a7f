package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/child"
	"github.com/baitoru/baitoru-cdc/internal/kobottest"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

// binary is the baitoru-cdc binary built once for the process tests.
var binary string

func TestMain(m *testing.M) {
	testenv.Main(m)
}

var buildOnce sync.Once
var buildErr error

// buildBinary builds ./cmd/baitoru-cdc once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "baitoru-cdc-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "baitoru-cdc")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func newCmd(bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) }

// proc is a running baitoru-cdc process of a test, supervised by package
// child (its own process group, killed if the test binary dies) and killed
// when the test ends. Its environment is ours plus the emulator's
// credentials: the tests set the binary's variables with t.Setenv.
type proc struct {
	*child.Process
	cmd *exec.Cmd
}

func startProc(t *testing.T, args ...string) *proc { return startProcEnv(t, nil, args...) }

// startProcEnv is startProc with env added to the environment.
func startProcEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	env = append(append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true"), env...)
	c, err := child.Start(child.Spec{Name: "baitoru-cdc " + args[0], Path: buildBinary(t), Args: args, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", c.Name(), c.Tail(40))
		}
	})
	return &proc{Process: c, cmd: c.Cmd()}
}

func (p *proc) output() string { return p.Output() }

// waitLog waits until the process wrote a line matching re.
func (p *proc) waitLog(t *testing.T, re string, timeout time.Duration) {
	t.Helper()
	if err := p.WaitOutput(re, timeout); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the process to exit and returns exec's error for it.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.Done():
		return p.Err()
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %s:\n%s", timeout, p.output())
		return nil
	}
}

// kobotStandIn is the Kobot of the command tests: package kobottest's
// receiver, which verifies every push with the Standard Webhooks check
// Kobot is told to run (docs/kobot.md), and the receipts of the pushes it
// answered 2xx.
type kobotStandIn struct {
	*kobottest.Receiver
	secret string

	mu       sync.Mutex
	receipts []kobottest.Receipt
}

// startKobot starts the stand-in verifying with secret ("" for a fresh
// one); it stops when the test ends.
func startKobot(t *testing.T, secret string) *kobotStandIn {
	t.Helper()
	if secret == "" {
		raw := make([]byte, 32)
		_, _ = crand.Read(raw)
		secret = "whsec_" + base64.StdEncoding.EncodeToString(raw)
	}
	key, err := kobot.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	k := &kobotStandIn{secret: secret}
	k.Receiver = kobottest.New(kobottest.Options{Secret: key, OnReceipt: func(r kobottest.Receipt) {
		k.mu.Lock()
		k.receipts = append(k.receipts, r)
		k.mu.Unlock()
	}})
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// got returns the receipts of the pushes answered 2xx so far.
func (k *kobotStandIn) got() []kobottest.Receipt {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]kobottest.Receipt(nil), k.receipts...)
}

const appsDDL = `
CREATE TABLE public.apps (
	application_id bigint PRIMARY KEY,
	company_id bigint NOT NULL,
	applicant_email text,
	answers jsonb,
	applied_at timestamptz NOT NULL DEFAULT now()
);`

func insertApps(from, to int) string {
	return fmt.Sprintf(`INSERT INTO apps (application_id, company_id, applicant_email, answers)
		SELECT g, g %% 97, 'a' || g || '@example.jp', jsonb_build_object('n', g) FROM generate_series(%d, %d) g`, from, to)
}

// e2e is a database, a topic with a subscribed queue, and a config file.
type e2e struct {
	pg     *testenv.Postgres
	emu    *testenv.Emulator
	dsn    string
	topic  string
	queue  string
	config string
}

func newE2E(t *testing.T, pg *testenv.Postgres) *e2e {
	t.Helper()
	emu := testenv.Emu(t)
	e := &e2e{pg: pg, emu: emu, dsn: pg.NewDatabase(t)}
	testenv.MustExec(t, e.dsn, appsDDL)
	ctx := context.Background()
	name := fmt.Sprintf("%s-%d", strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")), time.Now().UnixNano()%1e6)
	var err error
	if e.topic, err = emu.CreateTopic(ctx, name); err != nil {
		t.Fatal(err)
	}
	var queueARN string
	if e.queue, queueARN, err = emu.CreateQueue(ctx, name, testenv.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := emu.Subscribe(ctx, e.topic, queueARN, true); err != nil {
		t.Fatal(err)
	}
	e.config = filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`
source:
  dsn: %s
  slot: cdc
  publication: cdc
  create: true
  status_interval: 200ms
  reconnect:
    initial: 100ms
    max: 1s
sns:
  region: %s
  endpoint: %s
  topic_arn: %s
publisher:
  kind: sns
  max_inflight_events: 2000
  shutdown_grace: 10s
log:
  level: info
  format: json
tables:
  - table: public.apps
    key: [company_id]
    columns:
      - column: application_id
      - column: company_id
      - column: answers
    attributes:
      - column: company_id
        type: Number
`, e.dsn, emu.Region, emu.Endpoint, e.topic)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// checkApps asserts every application id in [1, n] arrived, as mapped, and
// under a single event id however many times it was re-sent.
func checkApps(t *testing.T, c *testenv.Collected, n int) {
	t.Helper()
	if len(c.Conflicts) > 0 {
		t.Fatalf("events re-sent with a different body: %v", c.Conflicts[:min(5, len(c.Conflicts))])
	}
	seen := make(map[int64]string, n)
	for id, body := range c.ByID {
		var ev struct {
			Data struct {
				ApplicationID int64           `json:"application_id"`
				CompanyID     int64           `json:"company_id"`
				Answers       json.RawMessage `json:"answers"`
				Email         *string         `json:"applicant_email"`
			}
			Subject string
		}
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			t.Fatalf("bad body: %v: %s", err, body)
		}
		a := ev.Data.ApplicationID
		if prev, dup := seen[a]; dup {
			t.Fatalf("application %d published under two ids: %s and %s", a, prev, id)
		}
		seen[a] = id
		if ev.Data.CompanyID != a%97 || ev.Subject != fmt.Sprint(a%97) || string(ev.Data.Answers) != fmt.Sprintf(`{"n":%d}`, a) || ev.Data.Email != nil {
			t.Fatalf("event %s does not match row %d as mapped: %s", id, a, body)
		}
	}
	var missing []int64
	for a := int64(1); a <= int64(n); a++ {
		if _, ok := seen[a]; !ok {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d committed rows never reached the queue (first: %v)", len(missing), n, missing[:min(10, len(missing))])
	}
}

// TestRunSurvivesSIGKILL kills the connector process with SIGKILL at random
// moments while a writer commits rows and the connector publishes them,
// restarts it each time, and checks that every committed row reached the
// queue at least once, duplicates carrying the same event id and body.
func TestRunSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	testRunSurvivesSIGKILL(t, newE2E(t, testenv.PG(t)), 150, 100, 6)
}

// testRunSurvivesSIGKILL is TestRunSurvivesSIGKILL on e's database: txs
// transactions of rows rows, kills SIGKILLs (the version suite runs a
// smaller one on every version).
func testRunSurvivesSIGKILL(t *testing.T, e *e2e, txs, rows, kills int) {
	// The first start creates the slot: rows committed before it exist
	// before the stream's beginning, so the writer waits for it.
	first := startProc(t, "run", "--config", e.config)
	first.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; i < txs; i++ {
			if err := testenv.Exec(context.Background(), e.dsn, insertApps(i*rows+1, (i+1)*rows)); err != nil {
				t.Errorf("insert: %v", err)
				return
			}
			time.Sleep(15 * time.Millisecond)
		}
	}()
	for k := 0; k < kills; k++ {
		p := first
		if k > 0 {
			p = startProc(t, "run", "--config", e.config)
			p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
		}
		time.Sleep(time.Duration(200+rand.IntN(600)) * time.Millisecond)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.wait(t, 10*time.Second)
		t.Logf("kill %d: SIGKILL after resuming from %s", k+1, resumeLSN(p.output()))
	}
	<-writerDone
	p := startProc(t, "run", "--config", e.config)
	p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	c, err := e.emu.Collect(context.Background(), e.queue, txs*rows, 3*time.Minute)
	if err != nil {
		t.Error(err)
	}
	checkApps(t, c, txs*rows)
	t.Logf("%d rows, %d messages received, %d duplicates (re-sent after kills, same ids)", txs*rows, len(c.Bodies), c.Duplicates())

	// A clean stop confirms everything and exits 0.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.output())
	}
	if !strings.Contains(p.output(), "final position confirmed") {
		t.Fatalf("no final status update on shutdown:\n%s", p.output())
	}
}

func resumeLSN(log string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	lsn := "?"
	for sc.Scan() {
		var l struct {
			Msg       string `json:"msg"`
			ResumeLSN string `json:"resume_lsn"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "streaming" {
			lsn = l.ResumeLSN
		}
	}
	return lsn
}
