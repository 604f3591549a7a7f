package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/monitoring"
)

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx, cancel
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	m := New()
	m.AddTable("public.applications")
	repl := &fakeRepl{}
	m.Watch(&fakeWindow{}, repl)
	dbErr := errors.New("database: connection refused")
	checks := []monitoring.Check{
		ReplicationCheck(repl),
		{Name: "other", Check: func(context.Context) error { return nil }},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(l.Addr().String(), m.Registry(), checks, slog.New(slog.DiscardHandler))
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	base := "http://" + l.Addr().String()

	if code, body := get(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("/healthz = %d %s", code, body)
	}

	readyz := func() (int, monitoring.Readiness) {
		code, body := get(t, base+"/readyz")
		var r monitoring.Readiness
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		return code, r
	}
	code, r := readyz()
	if code != http.StatusServiceUnavailable || r.Status != "not ready" || r.Checks["replication"] != ErrNotStreaming.Error() || r.Checks["other"] != "ok" {
		t.Errorf("/readyz while not streaming = %d %+v", code, r)
	}
	repl.set(true)
	if code, r := readyz(); code != 200 || r.Status != "ready" || r.Checks["replication"] != "ok" {
		t.Errorf("/readyz while streaming = %d %+v", code, r)
	}
	// Any failing check makes it not ready, and says what.
	failing := httptest.NewServer(NewServer("", m.Registry(), append(checks, monitoring.Check{Name: "db", Check: func(context.Context) error { return dbErr }}), slog.New(slog.DiscardHandler)).Handler())
	defer failing.Close()
	code, body := get(t, failing.URL+"/readyz")
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != 503 || r.Checks["db"] != dbErr.Error() || r.Checks["replication"] != "ok" {
		t.Errorf("/readyz with a failing check = %d %s", code, body)
	}

	code, body = get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`baitoru_cdc_changes_read_total{op="insert",table="public.applications"} 0`,
		"baitoru_cdc_replication_streaming 1",
		"# TYPE baitoru_cdc_commit_to_publish_seconds histogram",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get(t, base+"/nope"); code != 404 {
		t.Errorf("/nope = %d, want 404", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after ctx ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
}

func TestServerListenError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = NewServer(l.Addr().String(), New().Registry(), nil, slog.New(slog.DiscardHandler)).Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "metrics.listen "+l.Addr().String()) {
		t.Fatalf("Run on a busy port = %v, want an error naming metrics.listen", err)
	}
}
