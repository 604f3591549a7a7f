package sink

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check: nil means ready.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Readiness is the body of /readyz.
type Readiness struct {
	Status string            `json:"status"` // "ready" or "not ready"
	Checks map[string]string `json:"checks"` // name → "ok" or what is wrong
}

// RegisterHealth adds /metrics (from g), /healthz (the process serves
// HTTP) and /readyz (every check passes within 2 s; 503 with a JSON body
// naming what is not ready otherwise) to mux. None needs the API token.
func RegisterHealth(mux *http.ServeMux, g prometheus.Gatherer, checks []Check) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		res := Readiness{Status: "ready", Checks: make(map[string]string, len(checks))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range checks {
			wg.Go(func() {
				msg := "ok"
				if err := c.Check(ctx); err != nil {
					msg = err.Error()
				}
				mu.Lock()
				res.Checks[c.Name] = msg
				mu.Unlock()
			})
		}
		wg.Wait()
		status := http.StatusOK
		for _, m := range res.Checks {
			if m != "ok" {
				res.Status, status = "not ready", http.StatusServiceUnavailable
			}
		}
		writeJSON(w, status, res)
	})
}
