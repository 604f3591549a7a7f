package config

import (
	"bufio"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/config/*/want.txt from the current output")

func TestMain(m *testing.M) {
	// The tests set the overrides they need; none may leak in from the shell.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix+"_") {
			os.Unsetenv(name)
		}
	}
	testenv.Main(m)
}

// secretValue is the password, webhook secret and token used by the cases
// that check secrets are never shown.
const secretValue = "s3cr3t-pw"

// TestBadConfigs loads every testdata/config/<case>/config.yaml (with the
// variables of its env.txt, if any) and compares the problems with
// want.txt, file paths shown relative to the case directory.
func TestBadConfigs(t *testing.T) {
	wants, err := filepath.Glob("../testdata/config/*/want.txt")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		wants, _ = filepath.Glob("../testdata/config/*/config.yaml")
		for i := range wants {
			wants[i] = filepath.Join(filepath.Dir(wants[i]), "want.txt")
		}
	}
	if len(wants) < 30 {
		t.Fatalf("%d cases under testdata/config, want at least 30", len(wants))
	}
	for _, want := range wants {
		dir := filepath.Dir(want)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			setEnvFile(t, filepath.Join(dir, "env.txt"))
			file := filepath.Join(dir, "config.yaml")
			cfg, err := Load(file)
			if err == nil {
				t.Fatalf("Load(%s) = valid config, want problems", file)
			}
			if cfg != nil {
				t.Errorf("Load returned a config along with problems")
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load error %T %v, want Problems", err, err)
			}
			for _, p := range ps {
				if p.File != file || p.Message == "" {
					t.Errorf("problem %+v: want File %s and a message", p, file)
				}
			}
			got := strings.ReplaceAll(ps.Error(), dir+string(filepath.Separator), "") + "\n"
			if strings.Contains(got, secretValue) {
				t.Errorf("output shows a secret:\n%s", got)
			}
			if *update {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantText, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(wantText) {
				t.Errorf("problems differ (go test ./config -run TestBadConfigs -update to rewrite)\n--- got\n%s--- want\n%s", got, wantText)
			}
		})
	}
}

// setEnvFile sets the KEY=VALUE lines of path for the test; no file, no
// variables.
func setEnvFile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			t.Setenv(k, v)
		}
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", path, err)
	}
	return cfg
}

const minimal = `
source:
  dsn: postgres://cdc@localhost:5432/baitoru
sns:
  region: ap-northeast-1
  topic_arn: arn:aws:sns:ap-northeast-1:123456789012:baitoru-events
tables:
  - table: public.applications
    columns:
      - column: application_id
      - column: company_id
        rename: company
    attributes:
      - column: company_id
`

// clearReferencedVars empties (for the test) every variable the file
// references as ${NAME...}, so its defaults apply as in a clean environment.
func clearReferencedVars(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(string(data), -1) {
		t.Setenv(m[1], "")
	}
}

// TestShippedConfigValidates loads the shipped config.yaml as the local
// demo runs it: no variable set, demo: true (its public fallback secrets).
func TestShippedConfigValidates(t *testing.T) {
	clearReferencedVars(t, "../config.yaml")
	t.Setenv("BAITORU_CDC_DEMO", "true")
	cfg := mustLoad(t, "../config.yaml")
	if !cfg.HasConnector() || !cfg.HasSink() {
		t.Errorf("HasConnector=%v HasSink=%v, want both", cfg.HasConnector(), cfg.HasSink())
	}
	if len(cfg.Tables) != 2 {
		t.Fatalf("tables = %d, want 2", len(cfg.Tables))
	}
	apps := cfg.Tables[0]
	for _, c := range apps.Columns {
		if strings.HasPrefix(c.Column, "applicant_") {
			t.Errorf("shipped config publishes personal data column %s", c.Column)
		}
	}
	if got := apps.Attributes[0]; got.Column != "company_id" || got.Type != "Number" {
		t.Errorf("applications attribute 0 = %+v, want company_id Number", got)
	}
	if ps := cfg.ValidateConnector(); ps != nil {
		t.Errorf("ValidateConnector: %v", ps)
	}
	if ps := cfg.ValidateSink(); ps != nil {
		t.Errorf("ValidateSink: %v", ps)
	}
}

func TestDefaults(t *testing.T) {
	cfg := mustLoad(t, writeConfig(t, minimal))
	want := Config{
		Source: Source{
			DSN: "postgres://cdc@localhost:5432/baitoru", Slot: "baitoru_cdc", Publication: "baitoru_cdc",
			Create: true, StatusInterval: time.Second, MaxLagBytes: 1 << 30,
			Reconnect: Backoff{500 * time.Millisecond, 30 * time.Second}, OnTableLoss: "continue", Streaming: true,
			StreamMemoryBytes: 8 << 20,
			Backfill:          Backfill{ChunkRows: 1000, ChunkTime: 500 * time.Millisecond, LiveChunkRows: 250, LiveMaxRowsPerSecond: 50000, MaxQueuedEvents: 5000, MaxLagBytes: 256 << 20},
		},
		SNS: SNS{Region: "ap-northeast-1", TopicARN: "arn:aws:sns:ap-northeast-1:123456789012:baitoru-events"},
		S3:  S3{Region: "ap-northeast-1"},
		Publisher: Publisher{Kind: "sns", Lanes: 8, MaxInflightEvents: 20000, MaxInflightBytes: 64 << 20,
			ShutdownGrace: 10 * time.Second, Retry: Backoff{100 * time.Millisecond, 10 * time.Second},
			LargePayloads: LargePayloads{Prefix: "baitoru-cdc/baitoru_cdc/", Threshold: 262144}},
		Log: Log{Level: "info", Format: "text", StatusInterval: 30 * time.Second},
		Tables: []Table{{
			Table: "public.applications", Operations: []string{"insert"}, Type: "baitoru.applications",
			Columns:       []Column{{Column: "application_id"}, {Column: "company_id", Rename: "company"}},
			Attributes:    []Attribute{{Column: "company_id", Name: "company", Type: "String"}},
			LargePayloads: LargePayloads{Prefix: "baitoru-cdc/baitoru_cdc/", Threshold: 262144},
		}},
		GC: GC{MemoryFloor: 40 << 20},
		Sink: Sink{
			SQS:     SinkSQS{Concurrency: 4, BatchSize: 10, WaitTime: 20 * time.Second, VisibilityTimeout: 30 * time.Second},
			S3:      SinkS3{MaxEventBytes: 16 << 20},
			Kobot:   Kobot{Timeout: 5 * time.Second, MaxAttempts: 3, Retry: Backoff{200 * time.Millisecond, 5 * time.Second}},
			API:     API{Listen: ":8080"},
			History: SinkHistory{IDPrefix: "link", Interval: 5 * time.Second},
			GC:      SinkGC{Percent: 400, MemoryLimit: 256 << 20},
		},
	}
	got := *cfg
	got.File, got.meta = "", nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if cfg.HasSink() {
		t.Error("HasSink = true for a file without sink")
	}
}

// TestLinkHistoryDefault: a table rule of sink.links has history unless
// it says history: false; a type rule has none.
func TestLinkHistoryDefault(t *testing.T) {
	const sinkPart = `
sink:
  dsn: postgres://sink@db:5432/sink
  sqs:
    region: ap-northeast-1
    queue_url: https://sqs.ap-northeast-1.amazonaws.com/123456789012/baitoru-kobot
  kobot:
    endpoint: https://kobot.example.com/hook
    secret: whsec_aGlzdG9yeS10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5
  api:
    token: history-config-token-0123456789
  history:
    dsn: postgres://requester@db:5432/baitoru
    password: "p@ss word"
  links:
`
	for _, c := range []struct {
		name, links string
		want        []bool
	}{
		{"table and type", "    - table: public.applications\n      field: company\n    - type: baitoru.applications.insert\n      field: company\n", []bool{true, false}},
		{"history false", "    - table: public.applications\n      field: company\n      history: false\n", []bool{false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := mustLoad(t, writeConfig(t, minimal+sinkPart+c.links))
			var got []bool
			for _, l := range cfg.Sink.Links {
				got = append(got, l.History)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("history of the rules = %v, want %v", got, c.want)
			}
			if h := cfg.Sink.History; h.Password != "" || !strings.Contains(h.DSN, "ss word") && !strings.Contains(h.DSN, "ss%20word") {
				t.Errorf("sink.history.password not moved into the DSN: %+v", h)
			}
		})
	}
}

func TestValuesAndUnits(t *testing.T) {
	path := writeConfig(t, strings.Replace(minimal, "sns:", `  max_lag_bytes: 0
  create: FALSE
sns:`, 1)+`
publisher:
  max_inflight_bytes: 1.5GiB
  lanes: "16"
  max_inflight_events: 0x10
  shutdown_grace: 1m30s
`)
	cfg := mustLoad(t, path)
	p := cfg.Publisher
	if p.MaxInflightBytes != 3<<29 || p.Lanes != 16 || p.MaxInflightEvents != 16 || p.ShutdownGrace != 90*time.Second {
		t.Errorf("publisher = %+v", p)
	}
	if cfg.Source.MaxLagBytes != 0 || cfg.Source.Create {
		t.Errorf("explicit zero values replaced by defaults: %+v", cfg.Source)
	}
	// Unset, the stream memory follows max_inflight_bytes; set, it is kept.
	if got, want := cfg.Source.StreamMemoryBytes, p.MaxInflightBytes/StreamMemoryShare; got != want {
		t.Errorf("source.stream_memory_bytes = %d, want %d (an eighth of publisher.max_inflight_bytes)", got, want)
	}
	path = writeConfig(t, strings.Replace(minimal, "sns:", "  stream_memory_bytes: 3MiB\nsns:", 1)+"publisher:\n  max_inflight_bytes: 1GiB\n")
	if got := mustLoad(t, path).Source.StreamMemoryBytes; got != 3<<20 {
		t.Errorf("source.stream_memory_bytes set to 3MiB = %d", got)
	}
}

func TestEnvOverride(t *testing.T) {
	// No source section and no sink section in the file: the environment
	// supplies keys the file does not have.
	path := writeConfig(t, strings.Replace(minimal, "source:\n  dsn: postgres://cdc@localhost:5432/baitoru\n", "", 1))
	t.Setenv("BAITORU_CDC_SOURCE_DSN", "postgres://cdc@db.internal:5432/baitoru")
	t.Setenv("BAITORU_CDC_PUBLISHER_LANES", "3")
	t.Setenv("BAITORU_CDC_PUBLISHER_MAX_INFLIGHT_BYTES", "1MiB")
	t.Setenv("BAITORU_CDC_SOURCE_CREATE", "false")
	t.Setenv("BAITORU_CDC_SOURCE_STATUS_INTERVAL", "250ms")
	t.Setenv("BAITORU_CDC_SNS_REGION", "us-west-2")
	t.Setenv("BAITORU_CDC_SNS_TOPIC_ARN", "arn:aws:sns:us-west-2:123456789012:t")
	t.Setenv("BAITORU_CDC_SINK_KOBOT_SECRET", "whsec_${NOT_EXPANDED}")
	cfg, err := LoadConnector(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source.DSN != "postgres://cdc@db.internal:5432/baitoru" || cfg.Publisher.Lanes != 3 ||
		cfg.Publisher.MaxInflightBytes != 1<<20 || cfg.Source.Create || cfg.Source.StatusInterval != 250*time.Millisecond ||
		cfg.SNS.Region != "us-west-2" {
		t.Errorf("overrides not applied: %+v %+v %+v", cfg.Source, cfg.Publisher, cfg.SNS)
	}
	if cfg.Sink.Kobot.Secret != "whsec_${NOT_EXPANDED}" {
		t.Errorf("sink.kobot.secret = %q: environment values must be taken as they are", cfg.Sink.Kobot.Secret)
	}
	if !cfg.HasSink() {
		t.Error("HasSink = false with BAITORU_CDC_SINK_KOBOT_SECRET set")
	}
	// A problem in an overridden value is located by its variable.
	t.Setenv("BAITORU_CDC_SNS_TOPIC_ARN", "arn:aws:sns:us-west-2:123:t")
	_, err = LoadConnector(path)
	want := path + " (from BAITORU_CDC_SNS_TOPIC_ARN): sns.topic_arn: "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("LoadConnector error:\n%v\nwant prefix %q", err, want)
	}
}

func TestExpansion(t *testing.T) {
	// A value that looks like YAML must stay one string value.
	t.Setenv("BAITORU_TEST_PW", "p: {x}\n- y")
	t.Setenv("BAITORU_TEST_EMPTY", "")
	path := writeConfig(t, strings.Replace(minimal, "postgres://cdc@localhost:5432/baitoru",
		`"host=${BAITORU_TEST_HOST:-localhost} user=cdc password='${BAITORU_TEST_PW}' dbname=baitoru"`, 1)+`
    where: "note = '$${literal}' and t = 'a$$b' and c = '${BAITORU_TEST_EMPTY}' and ${BAITORU_TEST_EMPTY:-x} = 1"
`)
	cfg := mustLoad(t, path)
	if want := "host=localhost user=cdc password='p: {x}\n- y' dbname=baitoru"; cfg.Source.DSN != want {
		t.Errorf("dsn = %q, want %q", cfg.Source.DSN, want)
	}
	if want := "note = '${literal}' and t = 'a$$b' and c = '' and x = 1"; cfg.Tables[0].Where != want {
		t.Errorf("where = %q, want %q", cfg.Tables[0].Where, want)
	}
	if len(cfg.Tables) != 1 || len(cfg.Tables[0].Columns) != 2 {
		t.Errorf("tables changed by expansion: %+v", cfg.Tables)
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "1", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want string
		problems int
	}{
		{"plain $ text", "plain $ text", 0},
		{"${A}", "1", 0},
		{"x${A}y${A}", "x1y1", 0},
		{"${EMPTY}", "", 0},
		{"${EMPTY:-d}", "d", 0},
		{"${UNSET:-d:-e}", "d:-e", 0},
		{"${UNSET:-}", "", 0},
		{"${UNSET}", "", 1},
		{"$${A}", "${A}", 0},
		{"$$${A}", "$${A}", 0},
		{"${A", "", 1},
		{"${1A}", "", 1},
		{"${}", "", 1},
		{"${A}${B}${C}", "1", 2},
	}
	for _, tt := range tests {
		got, problems := expand(tt.in, lookup)
		if got != tt.want || len(problems) != tt.problems {
			t.Errorf("expand(%q) = %q, %q; want %q and %d problems", tt.in, got, problems, tt.want, tt.problems)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"67108864", 64 << 20, true},
		{"64MiB", 64 << 20, true},
		{"64 mib", 64 << 20, true},
		{"1GB", 1e9, true},
		{"1.5KiB", 1536, true},
		{"512B", 512, true},
		{"0", 0, true},
		{"-1", -1, true},
		{"1.5B", 0, false},
		{"MiB", 0, false},
		{"12XB", 0, false},
		{"", 0, false},
		{"9999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestSections checks that each command validates only what it reads: an
// unset variable in the sink section does not stop the connector.
func TestSections(t *testing.T) {
	path := writeConfig(t, minimal+`
sink:
  dsn: postgres://sink@localhost:5432/sink
  sqs:
    region: ap-northeast-1
    queue_url: https://sqs.ap-northeast-1.amazonaws.com/123456789012/q
  kobot:
    endpoint: https://kobot.example.com/hook
    secret: ${BAITORU_TEST_UNSET_SECRET}
  api:
    token: 0123456789abcdef0123
`)
	if _, err := LoadConnector(path); err != nil {
		t.Errorf("LoadConnector: %v", err)
	}
	_, err := LoadSink(path)
	if err == nil || !strings.Contains(err.Error(), "sink.kobot.secret: environment variable BAITORU_TEST_UNSET_SECRET is not set") {
		t.Errorf("LoadSink error = %v, want the unset secret", err)
	}
	if _, err := Load(path); err == nil {
		t.Error("Load accepted an unset variable of a section the file configures")
	}

	sinkOnly := writeConfig(t, "sink:\n  dsn: postgres://sink@localhost/sink\n")
	_, err = Load(sinkOnly)
	if err == nil || strings.Contains(err.Error(), "tables") {
		t.Errorf("Load of a sink-only file: %v; want sink problems only", err)
	}
	_, err = LoadConnector(sinkOnly)
	if err == nil || !strings.Contains(err.Error(), "tables: no tables mapped") {
		t.Errorf("LoadConnector of a sink-only file: %v; want no tables", err)
	}
}

func TestMergeKeysAndAnchors(t *testing.T) {
	cfg := mustLoad(t, writeConfig(t, `
source: {dsn: "postgres://cdc@localhost:5432/baitoru"}
sns: {region: ap-northeast-1, topic_arn: "arn:aws:sns:ap-northeast-1:123456789012:t"}
tables:
  - &apps
    table: public.applications
    key: [company_id]
    columns: &cols
      - column: application_id
      - column: company_id
  - <<: *apps
    table: public.applications_archive
    operations: [insert, delete]
`))
	if len(cfg.Tables) != 2 {
		t.Fatalf("tables = %+v", cfg.Tables)
	}
	got := cfg.Tables[1]
	if got.Table != "public.applications_archive" || len(got.Columns) != 2 || got.Key[0] != "company_id" || len(got.Operations) != 2 {
		t.Errorf("merged table = %+v", got)
	}
}

func TestReadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || !strings.Contains(ps[0].Message, "cannot read the file") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// TestSecretsNeverShown loads files whose DSN, webhook secret and token hold
// a known value next to other mistakes, and checks no output contains it.
func TestSecretsNeverShown(t *testing.T) {
	dsns := []string{
		"postgres://cdc:" + secretValue + "@db:5432/baitoru",
		"postgres://cdc:" + secretValue + "@db:54x2/baitoru",
		"postgres://cdc:" + secretValue + "@db:5432/baitoru?sslmode=bogus",
		"postgres://cdc:" + secretValue + "@@db/baitoru",
		"postgres://cdc:" + secretValue + "@[db/baitoru",
		"host=db user=cdc password=" + secretValue + " sslmode=bogus",
		"host=db user=cdc password='" + secretValue + "' port=abc",
		"host=db password=" + secretValue + " user",
		"postgres://db/baitoru?password=" + secretValue + "&sslmode=bogus",
		"postgres://cdc:" + secretValue + "@db:5432/baitoru?connect_timeout=x",
	}
	for _, dsn := range dsns {
		path := writeConfig(t, `
source:
  dsn: "`+dsn+`"
publisher: {kind: kafka}
tables:
  - table: applications
    columns: [{column: a}]
sink:
  dsn: "`+dsn+`"
  kobot:
    secret: `+secretValue+`
  api:
    token: `+secretValue+`
    token_file: /x
  sqs: {queue_url: "`+dsn+`", endpoint: "`+dsn+`"}
`)
		_, err := Load(path)
		if err == nil {
			t.Fatalf("dsn %q: no problems", dsn)
		}
		if strings.Contains(err.Error(), secretValue) {
			t.Errorf("dsn %q: output shows the secret:\n%v", dsn, err)
		}
		if !strings.Contains(err.Error(), "publisher.kind") {
			t.Errorf("dsn %q: other problems not reported:\n%v", dsn, err)
		}
	}
}
