package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/child"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// docStep is one kind of documented command TestDocumentedCommandsRun
// pastes: every command of the docs that Match matches, in the order of the
// steps (a DBA's, then an operator's), must exit with one of Codes.
type docStep struct {
	Name  string
	Match *regexp.Regexp
	Codes []int
	// Want, when set, must appear in what the command printed.
	Want string
	// Background: the command runs until stopped (run); the step waits
	// for its readiness and later steps run while it streams.
	Background bool
}

// docSteps are the commands TestDocumentedCommandsRun runs, in order.
var docSteps = []docStep{
	{Name: "setup --dry-run", Match: regexp.MustCompile(`^baitoru-cdc setup --config config\.yaml( --dsn \S+)? --dry-run\b`), Codes: []int{0}, Want: "CREATE PUBLICATION"},
	{Name: "setup", Match: regexp.MustCompile(`^baitoru-cdc setup --config config\.yaml( --dsn \S+)?\s*(#.*)?$`), Codes: []int{0}},
	// 0 OK or 1 WARNING: the shipped mappings publish unbounded text
	// columns without large_payloads (a warning); nothing blocks.
	{Name: "check", Match: regexp.MustCompile(`^baitoru-cdc check --config config\.yaml\s*(#.*)?$`), Codes: []int{0, 1}, Want: "check: "},
	{Name: "run", Match: regexp.MustCompile(`^baitoru-cdc run --config config\.yaml$`), Background: true},
	{Name: "readyz", Match: regexp.MustCompile(`^curl -s localhost:9090/readyz$`), Codes: []int{0}, Want: `"status":"ready"`},
	{Name: "backfill start", Match: regexp.MustCompile(`^baitoru-cdc backfill start --config config\.yaml --table public\.(job_postings|applications) --where `), Codes: []int{0}, Want: "done"},
	{Name: "backfill list", Match: regexp.MustCompile(`^baitoru-cdc backfill list --config config\.yaml( --dsn "\$REQUESTER_DSN")?$`), Codes: []int{0}, Want: "postings-company-7"},
	{Name: "backfill status", Match: regexp.MustCompile(`^baitoru-cdc backfill status --config config\.yaml postings-company-7$`), Codes: []int{0}, Want: "done"},
	{Name: "backfill cancel", Match: regexp.MustCompile(`^baitoru-cdc backfill cancel --config config\.yaml postings-company-7$`), Codes: []int{0}},
	{Name: "plan", Match: regexp.MustCompile(`^baitoru-cdc plan --config new\.yaml --running config\.yaml$`), Codes: []int{0, 2, 3}},
	{Name: "validate", Match: regexp.MustCompile(`^baitoru-cdc validate --config config\.yaml$`), Codes: []int{0}, Want: "config.yaml: valid: "},
	{Name: "hash key", Match: regexp.MustCompile(`^export PII_HASH_KEY=\$\(openssl rand -hex 32\)$`), Codes: []int{0}},
	{Name: "teardown", Match: regexp.MustCompile(`^baitoru-cdc teardown --config config\.yaml( --dsn \S+)? --yes\s*(#.*)?$`), Codes: []int{0}},
}

// docEnvExports are the variables the documented `export` lines before a
// command set (placeholders such as "..." in the docs): the test gives each
// a value of its own.
var docEnvExports = regexp.MustCompile(`^export ((?:[A-Z_]+=\S+\s*)+)(#.*)?$`)

// docRunBy says which test runs a documented command, or "".
func docRunBy(c docCommand) string {
	switch {
	case strings.HasPrefix(c.Text, "curl ") && strings.Contains(c.Text, "/v1/links"),
		strings.HasPrefix(c.Text, "export SINK="),
		c.Text == "baitoru-cdc sink --config config.yaml":
		return "TestDocumentedLinksAPICommands"
	case documentedValidate(c):
		return "TestDocumentedValidateOutput"
	}
	for _, s := range docSteps {
		if s.Match.MatchString(c.Text) {
			return "TestDocumentedCommandsRun (" + s.Name + ")"
		}
	}
	if m := docEnvExports.FindStringSubmatch(c.Text); m != nil {
		for _, kv := range strings.Fields(m[1]) {
			name, _, _ := strings.Cut(kv, "=")
			if _, ok := docRunEnv[name]; !ok {
				return ""
			}
		}
		return "TestDocumentedCommandsRun (the environment of the commands after it)"
	}
	return ""
}

// docRunEnv are the variables the docs export for the commands after
// them, with what TestDocumentedCommandsRun sets them to (filled in there;
// the keys are what the docs may export).
var docRunEnv = map[string]string{
	"BAITORU_DB_PASSWORD":  "",
	"AWS_REGION":           "",
	"KOBOT_WEBHOOK_SECRET": "",
	"LINKS_API_TOKEN":      "",
	"SINK_DB_PASSWORD":     "",
}

// TestEveryDocCommandIsRunOrSaysWhy: every shell command of README.md,
// docs/*.md and docker-compose.yml is run by a docs test, or its block
// says why not (<!-- not run by the docs tests: REASON --> before the
// fence).
func TestEveryDocCommandIsRunOrSaysWhy(t *testing.T) {
	cmds := docCommands(t, docFiles(t)...)
	run := 0
	for _, c := range cmds {
		by := docRunBy(c)
		if by != "" {
			run++
		}
		if by == "" && c.NotRun == "" {
			t.Errorf("%s\n  no docs test runs this command: make a docs test run it (docs_run_test.go), or put <!-- not run by the docs tests: REASON --> on the line before its block", c)
		}
	}
	if run < 30 {
		t.Fatalf("only %d documented commands are run by a test; the classification is broken", run)
	}
}

// docCommandWords start a line that is a command.
var docCommandWords = regexp.MustCompile(`^(\$ )?(baitoru-cdc|go|git|make|curl|psql|docker|podman|aws|export|cp|kill|pkill|sudo|\(cd)\b`)

// TestDocCommandFencesLabeled: a fenced block holding commands says it is
// shell (sh, bash, console), so the docs tests see its commands.
func TestDocCommandFencesLabeled(t *testing.T) {
	root := testenv.ModuleRoot()
	for _, rel := range docFiles(t) {
		if !strings.HasSuffix(rel, ".md") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			info, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "```")
			if !ok {
				continue
			}
			j := i + 1
			for j < len(lines) && strings.TrimSpace(lines[j]) != "```" {
				j++
			}
			if strings.TrimSpace(info) == "" && i+1 < j && docCommandWords.MatchString(strings.TrimSpace(lines[i+1])) {
				t.Errorf("%s:%d: a block of commands without a language: write ```sh (or ```console with $ prompts)", rel, i+1)
			}
			i = j
		}
	}
}

// TestDocumentedCommandsRun pastes the documented commands of a DBA and an
// operator into bash, in a directory holding the shipped config.yaml, as
// the docs tell: setup as the DBA (the docs' DBA DSN replaced by the
// test's), the connector's role and the requester role created from the
// script's comments with passwords (the server checks them), check, run
// with the documented password variable, backfill start/list/status/cancel
// while it streams, /readyz, plan, validate, and teardown. Every command
// must exit as the docs say (docSteps). Documented ports are replaced by
// free ones (localhost:9090: the connector's metrics).
func TestDocumentedCommandsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (PostgreSQL, SNS emulator, the connector process)")
	}
	for _, tool := range []string{"curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the documented commands use it (apt-get install -y %s)", tool, tool)
		}
	}
	cmds := docCommands(t, docFiles(t)...)
	began := time.Now()
	const (
		cdcPassword       = `Docs-run:pw/7%check`
		requesterPassword = "docs-requester-pw"
	)
	pg := testenv.OwnPG(t, testenv.PostgresOptions{HBA: []string{
		"host all baitoru_cdc,baitoru_cdc_requester 127.0.0.1/32 scram-sha-256",
		"host replication baitoru_cdc 127.0.0.1/32 scram-sha-256",
	}})
	t.Logf("PostgreSQL (scram-sha-256 for the roles) in %s", time.Since(began).Round(time.Millisecond))
	testenv.MustExec(t, pg.DSN("postgres"), `CREATE DATABASE baitoru`)
	admin := pg.DSN("baitoru")
	loadSchema(t, admin, "baitoru.sql", "sample_data.sql")
	emu := testenv.Emu(t)
	ctx := t.Context()
	fan, err := emu.CreateFanout(ctx, fmt.Sprintf("docs-run-%d", time.Now().UnixNano()%1e6), testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	shipped, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.yaml", "new.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, f), shipped, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	metricsAddr := freeAddr(t)
	requesterDSN := strings.Replace(admin, "postgres://postgres@", "postgres://baitoru_cdc_requester:"+requesterPassword+"@", 1)
	vals := map[string]string{
		"BAITORU_DB_PASSWORD":  cdcPassword,
		"AWS_REGION":           emu.Region,
		"KOBOT_WEBHOOK_SECRET": "whsec_ZG9jcy1ydW4tdGVzdC1rZXktMDEyMzQ1Njc4OWFi",
		"LINKS_API_TOKEN":      "docs-run-links-token-0123456789abcdef",
		"SINK_DB_PASSWORD":     "docs-run-sink-pw",
	}
	for k := range docRunEnv {
		if vals[k] == "" {
			t.Fatalf("no value for %s", k)
		}
	}
	env := []string{
		"PATH=" + filepath.Dir(buildBinary(t)) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + dir,
		"BAITORU_DB_HOST=127.0.0.1", fmt.Sprintf("BAITORU_DB_PORT=%d", pg.Port), "BAITORU_DB_SSLMODE=disable",
		"BAITORU_TOPIC_ARN=" + fan.TopicARN,
		"BAITORU_CDC_SNS_ENDPOINT=" + emu.Endpoint,
		"BAITORU_CDC_METRICS_LISTEN=" + metricsAddr,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
		"REQUESTER_DSN=" + requesterDSN,
	}
	for k, v := range vals {
		env = append(env, k+"="+v)
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "BAITORU_") || strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "PG") || name == "PATH" || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	paste := func(c docCommand) string {
		text := strings.ReplaceAll(c.Text, "'postgres://dba@db.internal:5432/baitoru'", "'"+admin+"'")
		return strings.ReplaceAll(text, "localhost:9090", metricsAddr)
	}

	var connector *child.Process
	defer func() {
		if connector != nil {
			connector.Kill()
		}
	}()
	ran := 0
	var later []string
	for _, step := range docSteps {
		for _, c := range cmds {
			if !step.Match.MatchString(c.Text) || c.NotRun != "" {
				continue
			}
			ran++
			if step.Background {
				if connector != nil {
					continue
				}
				p, err := child.Start(child.Spec{Name: "documented run", Path: "bash", Args: []string{"-c", "exec " + paste(c)}, Env: env, Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				connector = p
				waitReady(t, "http://"+metricsAddr+"/readyz", p, 60*time.Second)
				t.Logf("%s: ready in %s", c, time.Since(p.Started()).Round(time.Millisecond))
				continue
			}
			cmd := exec.CommandContext(ctx, "bash", "-c", paste(c))
			cmd.Dir, cmd.Env = dir, env
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			done := make(chan error, 1)
			began := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatalf("%s\n  still running after 2 minutes:\n%s", c, out.String())
			}
			code := 0
			if err != nil {
				code = -1
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
			}
			printed := out.String()
			if strings.HasSuffix(c.Text, "> setup.sql") {
				script, _ := os.ReadFile(filepath.Join(dir, "setup.sql"))
				printed += string(script)
			}
			t.Logf("%s: exit %d in %s", c, code, time.Since(began).Round(time.Millisecond))
			if !slices.Contains(step.Codes, code) {
				t.Errorf("%s\n  exit %d (want %v):\n%s", c, code, step.Codes, printed)
			} else if step.Want != "" && !strings.Contains(printed, step.Want) {
				t.Errorf("%s\n  printed no %q:\n%s", c, step.Want, printed)
			}
			if step.Name == "setup --dry-run" && strings.Contains(c.Text, "> setup.sql") {
				later = createDocRoles(t, admin, filepath.Join(dir, "setup.sql"), cdcPassword, requesterPassword)
			}
		}
		if step.Name == "setup" {
			// What the script's comments grant in schema baitoru_cdc, which
			// exists now: setup granted the connector's part itself; the
			// requester's the DBA runs.
			for _, s := range later {
				testenv.MustExec(t, admin, s)
			}
		}
		if step.Name == "backfill cancel" && connector != nil {
			// SIGINT/SIGTERM: exit 0 once what SNS accepted is confirmed.
			stopping := time.Now()
			_ = connector.Signal(syscall.SIGTERM)
			if err := connector.Wait(30 * time.Second); err != nil {
				t.Errorf("the documented run after SIGTERM: %v\n%s", err, connector.Tail(20))
			}
			t.Logf("the documented run stopped (SIGTERM) in %s", time.Since(stopping).Round(time.Millisecond))
		}
	}
	if connector == nil {
		t.Error("no documented `baitoru-cdc run` was run")
	}
	if ran < 20 {
		t.Fatalf("ran %d documented commands; the docs show more", ran)
	}
}

// createDocRoles creates the connector's role and the requester role from
// the comments of the script setup --dry-run wrote (as docs/dba.md tells
// the DBA), each with a password, and returns the grants in schema
// baitoru_cdc, which setup creates.
func createDocRoles(t *testing.T, admin, script, cdcPassword, requesterPassword string) (later []string) {
	t.Helper()
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatalf("setup --dry-run > setup.sql: %v", err)
	}
	roles := roleStatements(string(data))
	if len(roles) < 6 {
		t.Fatalf("setup.sql's comments give %d role statements:\n%s", len(roles), data)
	}
	for _, s := range roles {
		if strings.Contains(s, `"baitoru_cdc"."`) || strings.Contains(s, `SCHEMA "baitoru_cdc"`) {
			later = append(later, s)
			continue
		}
		testenv.MustExec(t, admin, s)
	}
	testenv.MustExec(t, admin, `ALTER ROLE baitoru_cdc PASSWORD `+quoteLiteral(cdcPassword))
	testenv.MustExec(t, admin, `ALTER ROLE baitoru_cdc_requester PASSWORD `+quoteLiteral(requesterPassword))
	return later
}

// waitReady polls url until it answers 200, failing when p exits first.
func waitReady(t *testing.T, url string, p *child.Process, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.Exited() {
			t.Fatalf("the documented run exited: %v\n%s", p.Err(), p.Tail(30))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return
			}
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the documented run was not ready within %s:\n%s", timeout, p.Tail(30))
}

// TestMakeTargetsDocumented: every `make X` that README.md and docs/*.md
// name is a target of the Makefile, and make help (the Makefile's opening
// comment) lists every target of the README's table.
func TestMakeTargetsDocumented(t *testing.T) {
	root := testenv.ModuleRoot()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z-]*):`).FindAllStringSubmatch(string(mk), -1) {
		targets[m[1]] = true
	}
	header, _, _ := strings.Cut(string(mk), "\n\n")
	helped := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#\s+make ([a-z-]+)`).FindAllStringSubmatch(header, -1) {
		helped[m[1]] = true
	}
	if len(helped) < 10 {
		t.Fatalf("make help lists %d targets; the Makefile's opening comment is not where it was", len(helped))
	}
	for name := range helped {
		if !targets[name] {
			t.Errorf("make help lists make %s, which the Makefile does not define", name)
		}
	}
	for _, f := range docFiles(t) {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile("`make ([a-z][a-z-]*)").FindAllStringSubmatch(string(data), -1) {
			if !targets[m[1]] {
				t.Errorf("%s names make %s, which the Makefile does not define", f, m[1])
			}
		}
		// The README's table of targets.
		for _, m := range regexp.MustCompile("(?m)^\\| `make ([a-z][a-z-]*)").FindAllStringSubmatch(string(data), -1) {
			if !helped[m[1]] {
				t.Errorf("%s lists make %s, which make help does not", f, m[1])
			}
		}
	}
}
