package monitoring

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func ok(context.Context) error { return nil }

func TestRoutes(t *testing.T) {
	hung := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	down := errors.New("database: connection refused <db:5432>")
	for _, tc := range []struct {
		name   string
		checks []Check
		code   int
		status string
		want   map[string]string
	}{
		{"no checks", nil, 200, StatusReady, map[string]string{}},
		{"all pass", []Check{{"a", ok}, {"b", ok}}, 200, StatusReady, map[string]string{"a": "ok", "b": "ok"}},
		{"one fails, named with its error", []Check{{"a", ok}, {"db", func(context.Context) error { return down }}}, 503, StatusNotReady,
			map[string]string{"a": "ok", "db": down.Error()}},
		{"a hung check times out", []Check{{"a", ok}, {"slow", hung}}, 503, StatusNotReady,
			map[string]string{"a": "ok", "slow": context.DeadlineExceeded.Error()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "test_things_total", Help: "Things."}))
			mux := http.NewServeMux()
			Register(mux, reg, tc.checks, nil)
			srv := httptest.NewServer(mux)
			defer srv.Close()

			start := time.Now()
			code, body, hdr := get(t, srv.URL+"/readyz")
			if took := time.Since(start); took > ReadyTimeout+5*time.Second {
				t.Errorf("/readyz took %s", took)
			}
			var r Readiness
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("/readyz body %q: %v", body, err)
			}
			if code != tc.code || r.Status != tc.status || len(r.Checks) != len(tc.want) {
				t.Fatalf("/readyz = %d %+v, want %d %s %v", code, r, tc.code, tc.status, tc.want)
			}
			for k, v := range tc.want {
				if r.Checks[k] != v {
					t.Errorf("check %s = %q, want %q", k, r.Checks[k], v)
				}
			}
			if hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("/readyz headers %v", hdr)
			}
			if strings.Contains(body, `\u003c`) {
				t.Errorf("/readyz escapes HTML characters: %s", body)
			}

			if code, body, _ := get(t, srv.URL+"/healthz"); code != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
				t.Errorf("/healthz = %d %s", code, body)
			}
			if code, body, _ := get(t, srv.URL+"/metrics"); code != 200 || !strings.Contains(body, "test_things_total 0") {
				t.Errorf("/metrics = %d %s", code, body)
			}
			if code, _, _ := get(t, srv.URL+"/nope"); code != 404 {
				t.Errorf("/nope = %d, want 404", code)
			}
		})
	}
}

func TestNewRegistry(t *testing.T) {
	mfs, err := NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !names[n] {
			t.Errorf("registry lacks %s", n)
		}
	}
}

func get(t *testing.T, url string) (int, string, http.Header) {
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
	return resp.StatusCode, string(b), resp.Header
}
