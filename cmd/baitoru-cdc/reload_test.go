package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/child"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const reloadKey = "reload-test-key-0123456789"

// reloadConfig is the connector's file for the reload test: mapping "a"
// publishes items (id, a); mapping "b" also publishes b, hashed, with a
// constant attribute, and maps the table extra. Switching between them
// grows and shrinks the publication.
func reloadConfig(dsn, metrics, mapping string) string {
	head := fmt.Sprintf(`source:
  dsn: %s
  slot: cdc
  publication: cdc
  status_interval: 200ms
  reconnect: {initial: 100ms, max: 500ms}
publisher:
  kind: stdout
metrics:
  listen: %q
log:
  level: info
  format: json
  status_interval: 0s
tables:
  - table: public.items
    key: [id]
    columns:
      - column: id
      - column: a
`, dsn, metrics)
	switch mapping {
	case "a":
		return head
	case "b":
		return head + `      - column: b
        transform: {kind: hash, key_env: RELOAD_TEST_KEY}
    attributes:
      - name: variant
        value: b
  - table: public.extra
    columns:
      - column: id
      - column: note
`
	case "even", "odd": // a row filter, evaluated by the connector before PostgreSQL 15
		return head + fmt.Sprintf("    where: \"id %% 2 = %d\"\n", map[string]int{"even": 0, "odd": 1}[mapping])
	case "missing-key":
		return head + `      - column: b
        transform: {kind: hash, key_env: RELOAD_TEST_KEY_UNSET}
`
	}
	return head + "      - colum: b\n" // invalid: an unknown key
}

// TestReloadUnderLoad inserts about 1,000 rows/s while the connector is
// reloaded 20 times alternating two mappings, with invalid files in
// between (one of them names a hash key missing from the environment): no
// row is lost, every transaction's events carry one mapping version and are
// encoded by it (b present and hashed exactly with mapping b, absent with
// a), the invalid files change nothing and are counted; then a table
// mapped live streams its new rows.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg := testenv.PG(t)
	dsn := pg.NewDatabase(t)
	testenv.MustExec(t, dsn, `CREATE TABLE items (id bigint PRIMARY KEY, a text NOT NULL, b text NOT NULL);
		CREATE TABLE extra (id bigint PRIMARY KEY, note text)`)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	addr := freeAddr(t)
	write := func(mapping string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(reloadConfig(dsn, addr, mapping)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("a")

	// At start, a hash key missing from the environment is a clear error.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(reloadConfig(dsn, addr, "missing-key")), 0o600)
	out, err := newCmd(buildBinary(t), "run", "--config", bad).CombinedOutput()
	if code := planExitCodeProc(err); code != 1 || !strings.Contains(string(out), "bad.yaml:22: tables[0].columns[2].transform.key_env: the environment variable RELOAD_TEST_KEY_UNSET is not set") {
		t.Errorf("run with the hash key unset: exit %d\n%s", code, out)
	}

	var stdout syncBuffer
	env := append(os.Environ(), "RELOAD_TEST_KEY="+reloadKey)
	c, err := child.Start(child.Spec{Name: "connector", Path: buildBinary(t), Args: []string{"run", "--config", path}, Env: env,
		Stdout: &stdout, LogPath: filepath.Join(dir, "connector.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	p := &proc{Process: c}
	p.waitLog(t, `"msg":"streaming"`, 30*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	// The load: a transaction of 10 rows every 10 ms, until stop.
	var inserted int
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
			}
			batch := &pgx.Batch{}
			for i := 1; i <= 10; i++ {
				id := inserted + i
				batch.Queue("INSERT INTO items VALUES ($1, $2, $3)", id, fmt.Sprintf("a%d", id), fmt.Sprintf("secret-%d", id))
			}
			if err := conn.SendBatch(ctx, batch).Close(); err != nil {
				done <- err
				return
			}
			inserted += 10
		}
	}()
	// reload writes the file, sends SIGHUP and waits for the connector to
	// answer it (signals sent while it is busy would merge into one).
	logFile := filepath.Join(dir, "connector.log")
	answers := regexp.MustCompile(`"msg":"configuration (not )?reloaded`)
	answered := func() int {
		b, _ := os.ReadFile(logFile)
		return len(answers.FindAll(b, -1))
	}
	reload := func(mapping string) {
		t.Helper()
		n := answered()
		write(mapping)
		c.Signal(syscall.SIGHUP)
		for end := time.Now().Add(20 * time.Second); answered() == n; {
			if time.Now().After(end) {
				b, _ := os.ReadFile(logFile)
				t.Fatalf("no answer to the reload of %s; log:\n%s", mapping, b[max(0, len(b)-6000):])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	invalid := 0
	for i := range 20 {
		time.Sleep(100 * time.Millisecond)
		if i%7 == 3 { // an invalid file, then a file naming an unset key
			reload("invalid")
			reload("missing-key")
			invalid += 2
		}
		reload([]string{"b", "a"}[i%2])
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The last file is "a"; map b again: a table mapped live.
	reload("b")
	testenv.MustExec(t, dsn, "INSERT INTO extra VALUES (1, 'after the reload')")
	testenv.MustExec(t, dsn, "INSERT INTO items VALUES (1000000, 'last', 'last')")

	type event struct {
		ID      string          `json:"id"`
		Table   string          `json:"table"`
		LSN     string          `json:"lsn"`
		Version string          `json:"mappingversion"`
		Data    json.RawMessage `json:"data"`
	}
	var events []event
	deadline := time.Now().Add(60 * time.Second)
	for {
		events = events[:0]
		sc := bufio.NewScanner(strings.NewReader(stdout.String()))
		sc.Buffer(nil, 1<<20)
		seen := map[string]bool{}
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("stdout line %q: %v", sc.Text(), err)
			}
			if !seen[e.ID] {
				seen[e.ID] = true
				events = append(events, e)
			}
		}
		if len(events) >= inserted+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	versions := map[string]bool{}
	byTx := map[string]string{}
	rows := map[int64]bool{}
	extra := false
	for _, e := range events {
		if e.Version == "" {
			t.Fatalf("event %s has no mappingversion", e.ID)
		}
		versions[e.Version] = true
		if v, ok := byTx[e.LSN]; ok && v != e.Version {
			t.Errorf("transaction %s has events of mapping versions %s and %s", e.LSN, v, e.Version)
		}
		byTx[e.LSN] = e.Version
		if e.Table == "public.extra" {
			extra = true
			continue
		}
		var d struct {
			ID int64   `json:"id"`
			A  string  `json:"a"`
			B  *string `json:"b"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		rows[d.ID] = true
		if d.B != nil {
			mac := hmac.New(sha256.New, []byte(reloadKey))
			fmt.Fprintf(mac, "secret-%d", d.ID)
			if d.ID != 1000000 && *d.B != hex.EncodeToString(mac.Sum(nil)) {
				t.Errorf("row %d: b = %q, not the HMAC of its value", d.ID, *d.B)
			}
		}
	}
	for id := 1; id <= inserted; id++ {
		if !rows[int64(id)] {
			t.Errorf("row %d has no event (lost)", id)
		}
	}
	if !extra || !rows[1000000] {
		t.Errorf("the table mapped live has no event (%v), or the last row is missing (%v)", extra, rows[1000000])
	}
	// Both mappings encoded events, and within one version the shape is
	// one: b everywhere or nowhere.
	shape := map[string]map[bool]int{}
	for _, e := range events {
		if e.Table != "public.items" {
			continue
		}
		if shape[e.Version] == nil {
			shape[e.Version] = map[bool]int{}
		}
		shape[e.Version][bytes.Contains(e.Data, []byte(`"b":`))]++
	}
	if len(versions) != 2 {
		t.Errorf("mapping versions seen: %v, want the two of the files", versions)
	}
	for v, s := range shape {
		if len(s) != 1 {
			t.Errorf("version %s encoded events with and without b: %v", v, s)
		}
	}
	t.Logf("%d rows in %d transactions, %d events, versions %v", inserted, len(byTx), len(events), shape)

	// Invalid files changed nothing and were counted.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`baitoru_cdc_config_reloads_total\{result="invalid"\} (\d+)`).FindSubmatch(body)
	if m == nil || string(m[1]) != fmt.Sprint(invalid) {
		t.Errorf("invalid reloads counted %q, want %d", m, invalid)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "connector.log"))
	if n := strings.Count(string(log), "RELOAD_TEST_KEY_UNSET is not set"); n != invalid/2 {
		t.Errorf("%d reload errors name the missing key, want %d", n, invalid/2)
	}
	if !strings.Contains(string(log), `config.yaml:21: tables[0].columns[2].colum: unknown key`) {
		t.Errorf("the invalid file's error has no file:line")
	}
	if err := c.Stop(15 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func planExitCodeProc(err error) int { return exitCodeOf(err) }

// reloadable is a connector started on a config file that the test
// rewrites and reloads.
type reloadable struct {
	c       *child.Process
	p       *proc
	path    string
	logFile string
	stdout  *syncBuffer
	write   func(mapping string)
}

// startReloadable writes reloadConfig(mapping) and, after setup (which
// also creates the connector's records backfill needs), starts run on it.
func startReloadable(t *testing.T, dsn, mapping string) *reloadable {
	t.Helper()
	return startReloadableOn(t, testenv.PG(t), dsn, mapping)
}

func startReloadableOn(t *testing.T, pg *testenv.Postgres, dsn, mapping string) *reloadable {
	t.Helper()
	dir := t.TempDir()
	r := &reloadable{path: filepath.Join(dir, "config.yaml"), logFile: filepath.Join(dir, "connector.log"), stdout: &syncBuffer{}}
	addr := freeAddr(t)
	r.write = func(mapping string) {
		tmp := r.path + ".tmp"
		if err := os.WriteFile(tmp, []byte(reloadConfig(dsn, addr, mapping)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, r.path); err != nil {
			t.Fatal(err)
		}
	}
	r.write(mapping)
	if res := runCLI(t, "setup", "--config", r.path, "--dsn", dsn); res.code != 0 {
		t.Fatalf("setup: %s", res)
	}
	env := append(os.Environ(), "RELOAD_TEST_KEY="+reloadKey)
	c, err := child.Start(child.Spec{Name: "connector", Path: buildBinary(t), Args: []string{"run", "--config", r.path}, Env: env,
		Stdout: r.stdout, LogPath: r.logFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	r.c, r.p = c, &proc{Process: c}
	r.p.waitLog(t, `"msg":"streaming"`, 30*time.Second)
	return r
}

// reload writes mapping's file, sends SIGHUP and waits until the connector
// answered with want ("configuration reloaded;", say).
func (r *reloadable) reload(t *testing.T, mapping, want string) {
	t.Helper()
	count := func() int {
		b, _ := os.ReadFile(r.logFile)
		return strings.Count(string(b), want)
	}
	n := count()
	r.write(mapping)
	r.c.Signal(syscall.SIGHUP)
	for end := time.Now().Add(20 * time.Second); count() == n; {
		if time.Now().After(end) {
			b, _ := os.ReadFile(r.logFile)
			t.Fatalf("no %q after the reload of %s; log:\n%s", want, mapping, b[max(0, len(b)-6000):])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reloadEvent is an event on the connector's stdout.
type reloadEvent struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Table    string          `json:"table"`
	Op       string          `json:"op"`
	LSN      string          `json:"lsn"`
	Version  string          `json:"mappingversion"`
	Backfill string          `json:"backfill"`
	Data     json.RawMessage `json:"data"`
}

// events returns the events written so far, each id once.
func (r *reloadable) events(t *testing.T) []reloadEvent {
	t.Helper()
	var out []reloadEvent
	seen := map[string]bool{}
	text := r.stdout.String()
	text = text[:strings.LastIndexByte(text, '\n')+1] // a line still being written waits
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e reloadEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

// TestReloadAddTableThenBackfill: a table is mapped live (the reload puts
// it in the publication first, then the mappings) while a transaction that
// began before the publication changed is open; that transaction commits
// after it. No event is lost or mis-encoded: each transaction's events
// carry one mapping version and are encoded by it, the connector keeps
// streaming. Then baitoru-cdc backfill start brings the new table's
// history (rows written before it was mapped) as read events.
func TestReloadAddTableThenBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	dsn := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, dsn, `CREATE TABLE items (id bigint PRIMARY KEY, a text NOT NULL, b text NOT NULL);
		CREATE TABLE extra (id bigint PRIMARY KEY, note text);
		INSERT INTO extra SELECT g, 'history ' || g FROM generate_series(1, 50) g`)
	r := startReloadable(t, dsn, "a")

	exec := testenv.Session(t, dsn)
	exec(`BEGIN; INSERT INTO items VALUES (1, 'a1', 'secret-1'); INSERT INTO extra VALUES (101, 'open before')`)
	r.reload(t, "b", "configuration reloaded;")
	exec(`INSERT INTO items VALUES (2, 'a2', 'secret-2'); INSERT INTO extra VALUES (102, 'open after'); COMMIT`)
	testenv.MustExec(t, dsn, `INSERT INTO items VALUES (3, 'a3', 'secret-3'); INSERT INTO extra VALUES (103, 'after')`)
	eventually(t, 30*time.Second, "the row written after the reload", func() string {
		if strings.Contains(r.stdout.String(), `"note":"after"`) {
			return ""
		}
		return r.stdout.String()
	})

	t.Setenv("RELOAD_TEST_KEY", reloadKey) // backfill start reads the file
	res := runCLI(t, "backfill", "start", "--config", r.path, "--dsn", dsn, "--table", "public.extra", "--id", "bf-extra")
	if res.code != 0 {
		t.Fatalf("backfill start: %s", res)
	}
	var evs []reloadEvent
	eventually(t, 30*time.Second, "the backfill's read events", func() string {
		evs = r.events(t)
		n := 0
		for _, e := range evs {
			if e.Backfill == "bf-extra" {
				n++
			}
		}
		if n < 53 {
			return fmt.Sprintf("%d read events", n)
		}
		return ""
	})
	// The open transaction: encoded by the mappings it began under (a),
	// its events all of one version; the next one by b.
	byTx := map[string]string{}
	items := map[int64]reloadEvent{}
	extra := map[int64][]string{}
	for _, e := range evs {
		if v, ok := byTx[e.LSN]; ok && v != e.Version && e.Backfill == "" {
			t.Errorf("transaction %s has events of mapping versions %s and %s", e.LSN, v, e.Version)
		}
		byTx[e.LSN] = e.Version
		var d struct {
			ID int64   `json:"id"`
			B  *string `json:"b"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		if e.Table == "public.items" {
			items[d.ID] = e
		} else {
			extra[d.ID] = append(extra[d.ID], e.Op)
		}
	}
	one, two, three := items[1], items[2], items[3]
	if one.ID == "" || two.ID == "" || three.ID == "" {
		t.Fatalf("items events %v: a row is lost", items)
	}
	if one.LSN != two.LSN || one.Version != two.Version || one.Version == three.Version ||
		bytes.Contains(one.Data, []byte(`"b":`)) || bytes.Contains(two.Data, []byte(`"b":`)) {
		t.Errorf("the transaction open across the reload: %+v, %+v; want both of the mappings before it (no b), and the next transaction %+v of the new ones", one, two, three)
	}
	mac := hmac.New(sha256.New, []byte(reloadKey))
	mac.Write([]byte("secret-3"))
	if !bytes.Contains(three.Data, []byte(`"b":"`+hex.EncodeToString(mac.Sum(nil))+`"`)) {
		t.Errorf("row 3 after the reload: %s; want b, hashed", three.Data)
	}
	// The new table: its history (and the rows of the transaction that
	// began before it was mapped) come from the backfill, read events of
	// the new version; the row written after the reload also live.
	for id := int64(1); id <= 103; id++ {
		if id == 51 {
			id = 101
		}
		want := []string{"read"}
		if id == 103 {
			want = []string{"insert", "read"}
		}
		if !slices.Equal(extra[id], want) {
			t.Errorf("extra row %d: events %v, want %v", id, extra[id], want)
		}
	}
}

// TestReloadConnectorRowFilter: on PostgreSQL 14, whose publications have
// no row filters, the connector evaluates where: itself; a reload that
// changes it applies at a transaction boundary with the mappings: a
// transaction open across the reload is filtered whole by the old filter,
// the next ones by the new one, each event's version matching the filter
// that let it through.
func TestReloadConnectorRowFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg := testenv.OwnPG(t, testenv.PostgresOptions{Version: 14})
	dsn := pg.NewDatabase(t)
	testenv.MustExec(t, dsn, `CREATE TABLE items (id bigint PRIMARY KEY, a text NOT NULL, b text NOT NULL);
		CREATE TABLE extra (id bigint PRIMARY KEY, note text)`)
	r := startReloadableOn(t, pg, dsn, "even")
	exec := testenv.Session(t, dsn)
	insert := func(ids ...int) string {
		var vals []string
		for _, id := range ids {
			vals = append(vals, fmt.Sprintf("(%d, 'a%d', 'secret-%d')", id, id, id))
		}
		return "INSERT INTO items VALUES " + strings.Join(vals, ", ")
	}
	exec("BEGIN; " + insert(1, 2))
	r.reload(t, "odd", "configuration reloaded;")
	exec(insert(3, 4) + "; COMMIT")
	testenv.MustExec(t, dsn, insert(5, 6))
	testenv.MustExec(t, dsn, insert(7, 8))
	eventually(t, 30*time.Second, "the events of row 7", func() string {
		if !strings.Contains(r.stdout.String(), `"id":7,`) {
			return fmt.Sprintf("%d events", len(r.events(t)))
		}
		return ""
	})
	evs := r.events(t) // read after row 7's event was written, so it holds it
	versionOf := map[int64]string{}
	parity := map[string]int64{} // version → the parity it let through
	byTx := map[string]string{}
	for _, e := range evs {
		var d struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		versionOf[d.ID] = e.Version
		if p, ok := parity[e.Version]; ok && p != d.ID%2 {
			t.Errorf("version %s let through rows of both parities (row %d)", e.Version, d.ID)
		}
		parity[e.Version] = d.ID % 2
		if v, ok := byTx[e.LSN]; ok && v != e.Version {
			t.Errorf("transaction %s has events of versions %s and %s", e.LSN, v, e.Version)
		}
		byTx[e.LSN] = e.Version
	}
	var got []int64
	for id := range int64(9) {
		if _, ok := versionOf[id]; ok {
			got = append(got, id)
		}
	}
	// 2 and 4: the open transaction, whole by the old filter; 5 and 7: the
	// new one.
	if want := []int64{2, 4, 5, 7}; !slices.Equal(got, want) {
		b, _ := os.ReadFile(r.logFile)
		t.Fatalf("rows published %v, want %v (versions %v); log:\n%s", got, want, versionOf, b)
	}
	if versionOf[2] != versionOf[4] || versionOf[5] != versionOf[7] || versionOf[2] == versionOf[5] {
		t.Errorf("versions %v: want the open transaction's of the old mappings, the later ones of the new", versionOf)
	}
}
