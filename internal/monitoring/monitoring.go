// Package monitoring is the HTTP surface both processes offer to their
// monitoring: GET /metrics (Prometheus), GET /healthz (alive) and GET /readyz
// (ready, with the checks that say why not). The connector serves it on
// metrics.listen, the sink beside its links API on sink.api.listen; both
// answer the same way.
package monitoring

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/baitoru/baitoru-cdc/internal/buildinfo"
	"github.com/baitoru/baitoru-cdc/internal/httpjson"
)

// ReadyTimeout bounds one /readyz request: a check still running then
// reports the context's error, so a hung dependency reads as not ready
// instead of hanging the probe.
const ReadyTimeout = 2 * time.Second

// Check is one readiness check: a nil error means ready. Check is called for
// every /readyz request, concurrently with the others, and must return once
// its context ends.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Readiness is the JSON body of /readyz.
type Readiness struct {
	Status string            `json:"status"` // "ready" (200) or "not ready" (503)
	Checks map[string]string `json:"checks"` // name → "ok" or what is wrong
}

// Readiness statuses.
const (
	StatusReady    = "ready"
	StatusNotReady = "not ready"
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors and baitoru_cdc_build_info (which build runs), to which a
// process adds its own metrics. Never the global registry: tests run
// several processes' metrics in one binary.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Get().Collector())
	return reg
}

// Register adds the monitoring routes to mux:
//
//	GET /metrics  Prometheus text format, from g
//	GET /healthz  200 {"status":"ok"} while the process serves HTTP
//	GET /readyz   200 when every check passes within ReadyTimeout, else 503;
//	              body Readiness
//
// None needs authentication: serve them where only monitoring reaches, or
// beside an API that authenticates its own routes. Errors gathering metrics
// are logged to log at warn level.
func Register(mux *http.ServeMux, g prometheus.Gatherer, checks []Check, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		res, ok := Ready(ctx, checks)
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		httpjson.Write(w, status, res)
	})
}

// Ready runs every check concurrently and reports the result; ok is true
// when every check returned nil.
func Ready(ctx context.Context, checks []Check) (res Readiness, ok bool) {
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks))
	for _, c := range checks {
		go func() { results <- result{c.Name, c.Check(ctx)} }()
	}
	res = Readiness{Status: StatusReady, Checks: make(map[string]string, len(checks))}
	ok = true
	for range checks {
		r := <-results
		res.Checks[r.name] = "ok"
		if r.err != nil {
			res.Checks[r.name] = r.err.Error()
			res.Status, ok = StatusNotReady, false
		}
	}
	return res, ok
}
