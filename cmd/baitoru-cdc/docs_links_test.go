package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector/postgres/dba"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// docsToken is the links API token the documented commands use literally
// (docs/operations.md and docker-compose.yml: the Compose demo's token); the
// others read it from $TOKEN or $LINKS_API_TOKEN.
const docsToken = "demo-links-token-change-me"

// TestDocumentedLinksAPICommands pastes every documented curl command of
// the links API — the fenced shell blocks of README.md and docs/*.md and
// the commented commands of docker-compose.yml — into bash, against a real
// `baitoru-cdc sink` started with the shipped config.yaml, as the docs
// describe. Only the address is replaced: localhost:8080 and $SINK name a
// recording proxy in front of the sink's API. Every request a command makes
// must get a 2xx, and where the docs show the answer (a json block right
// after the command), the real answer must have the same members and values
// (timestamps only as timestamps). docs/kobot.md's commands run first, on a
// fresh links table whose next id is 12, the id its examples use.
func TestDocumentedLinksAPICommands(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (PostgreSQL, SQS emulator, the sink process); run without -short")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl not found: the documented commands use it (make deps installs it; or apt-get install -y curl)")
	}
	var cmds []docCommand
	for _, c := range docCommands(t, docFiles(t)...) {
		if strings.HasPrefix(c.Text, "curl ") && strings.Contains(c.Text, "/v1/links") {
			cmds = append(cmds, c)
		}
	}
	slices.SortStableFunc(cmds, func(a, b docCommand) int {
		ak, bk := a.File != "docs/kobot.md", b.File != "docs/kobot.md"
		switch {
		case ak == bk:
			return 0
		case !ak:
			return -1
		}
		return 1
	})
	if len(cmds) == 0 {
		t.Fatal("no documented links API command found")
	}

	pg := testenv.PG(t)
	emu := testenv.Emu(t)
	ctx := t.Context()
	fan, err := emu.CreateFanout(ctx, fmt.Sprintf("docs-links-%d", time.Now().UnixNano()%1e6), testenv.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kobotSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer kobotSrv.Close()
	sinkDSN := pg.NewDatabase(t)
	// A Baitoru database with what backfill keeps there, so that links
	// get their history requested (no connector runs: it stays requested).
	baitoru := pg.NewDatabase(t)
	bconn, err := pgx.Connect(ctx, baitoru)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dba.ApplyBackfill(ctx, bconn, dba.BackfillObjects{Schema: "baitoru_cdc", Publication: "baitoru_cdc_backfill"}, false)
	bconn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"BAITORU_CDC_SINK_HISTORY_DSN":     baitoru,
		"AWS_REGION":                       emu.Region,
		"SINK_QUEUE_URL":                   fan.QueueURL,
		"SINK_DLQ_URL":                     fan.DLQURL,
		"KOBOT_ENDPOINT":                   kobotSrv.URL,
		"KOBOT_WEBHOOK_SECRET":             "whsec_ZG9jcy1saW5rcy10ZXN0LWtleS0wMTIzNDU2Nzg5",
		"LINKS_API_TOKEN":                  docsToken,
		"BAITORU_CDC_SINK_DSN":             sinkDSN,
		"BAITORU_CDC_SINK_SQS_ENDPOINT":    emu.Endpoint,
		"BAITORU_CDC_SINK_SQS_WAIT_TIME":   "1s",
		"BAITORU_CDC_SINK_API_LISTEN":      "127.0.0.1:0",
		"BAITORU_CDC_LOG_FORMAT":           "json",
		"BAITORU_CDC_SINK_SQS_CONCURRENCY": "1",
		"BAITORU_CDC_DEMO":                 "true", // the Compose demo's token
	} {
		t.Setenv(k, v)
	}
	p := startProc(t, "sink", "--config", filepath.Join(testenv.ModuleRoot(), "config.yaml"))
	p.waitLog(t, `"msg":"sink ready"`, 60*time.Second)
	m := regexp.MustCompile(`"api":"(127\.0\.0\.1:\d+)"`).FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("no API address in the log:\n%s", p.output())
	}
	// docs/kobot.md's examples show link 12.
	testenv.MustExec(t, sinkDSN, `SELECT setval(pg_get_serial_sequence('links', 'id'), 11)`)

	target, _ := url.Parse("http://" + m[1])
	rec := &recordingProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	proxy := httptest.NewServer(rec)
	defer proxy.Close()
	env := append(os.Environ(), "SINK="+proxy.URL, "TOKEN="+docsToken, "LINKS_API_TOKEN="+docsToken)
	host := strings.TrimPrefix(proxy.URL, "http://")

	for _, c := range cmds {
		text := strings.ReplaceAll(c.Text, "localhost:8080", host)
		before := rec.count()
		cmd := exec.CommandContext(ctx, "bash", "-c", text)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("%s\n  exit: %v\n  stderr: %s", c, err, stderr.String())
			continue
		}
		reqs := rec.since(before)
		if len(reqs) == 0 {
			t.Errorf("%s\n  made no request to the links API (stdout: %s)", c, stdout.String())
			continue
		}
		for _, r := range reqs {
			if r.status/100 != 2 {
				t.Errorf("%s\n  %s %s answered %d: %s", c, r.method, r.path, r.status, strings.TrimSpace(stdout.String()))
			}
		}
		if c.Output == "" {
			continue
		}
		var doc, got any
		if err := json.Unmarshal([]byte(c.Output), &doc); err != nil {
			t.Errorf("%s\n  the documented answer is not JSON: %v", c, err)
			continue
		}
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Errorf("%s\n  the answer is not JSON: %v: %s", c, err, stdout.String())
			continue
		}
		for _, d := range jsonDiff("", doc, got) {
			t.Errorf("%s\n  the real answer differs from the documented one: %s\n  documented: %s\n  real:       %s", c, d, c.Output, strings.TrimSpace(stdout.String()))
		}
	}
}

// jsonDiff lists where got differs from the documented doc: members, array
// lengths, values; strings that are both RFC 3339 timestamps match.
func jsonDiff(path string, doc, got any) []string {
	switch d := doc.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: documented an object, got %T", orRoot(path), got)}
		}
		var out []string
		for k := range d {
			if _, ok := g[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: documented, absent", orRoot(path), k))
			}
		}
		for k := range g {
			if _, ok := d[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: present, not documented", orRoot(path), k))
			}
		}
		for k, dv := range d {
			if gv, ok := g[k]; ok {
				out = append(out, jsonDiff(path+"."+k, dv, gv)...)
			}
		}
		slices.Sort(out)
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(d) {
			return []string{fmt.Sprintf("%s: documented %d elements, got %v", orRoot(path), len(d), got)}
		}
		var out []string
		for i := range d {
			out = append(out, jsonDiff(fmt.Sprintf("%s[%d]", path, i), d[i], g[i])...)
		}
		return out
	case string:
		if g, ok := got.(string); ok && isTimestamp(d) && isTimestamp(g) {
			return nil
		}
	}
	if fmt.Sprint(doc) != fmt.Sprint(got) {
		return []string{fmt.Sprintf("%s: documented %v, got %v", orRoot(path), doc, got)}
	}
	return nil
}

func orRoot(p string) string {
	if p == "" {
		return "(answer)"
	}
	return p
}

func isTimestamp(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// recordingProxy forwards to the sink's API and records each answer.
type recordingProxy struct {
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	reqs  []recordedRequest
}

type recordedRequest struct {
	method, path string
	status       int
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (p *recordingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	p.proxy.ServeHTTP(sw, r)
	p.mu.Lock()
	p.reqs = append(p.reqs, recordedRequest{method: r.Method, path: r.URL.RequestURI(), status: sw.status})
	p.mu.Unlock()
}

func (p *recordingProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reqs)
}

func (p *recordingProxy) since(n int) []recordedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs[n:])
}
