package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestRunChecksTopicsBeforeStreaming: run checks every configured topic
// before it reads the WAL. A topic that does not exist stops it at once
// with the problem and the fix `check` shows; an endpoint where nothing
// listens is tried again for a bounded time (attempt and next delay in the
// log), then stops it the same way. Neither creates the slot.
func TestRunChecksTopicsBeforeStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	e := newE2E(t, testenv.PG(t))
	base, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	missing := e.topic + "-missing"
	dead := "http://" + freeAddr(t)
	tests := []struct {
		name     string
		edit     func(string) string
		want     []string // in the error (stderr's last line) and in check's output
		retryLog bool
	}{
		{
			name: "a table's topic does not exist",
			edit: func(c string) string {
				return strings.Replace(c, "  - table: public.apps\n", "  - table: public.apps\n    topic_arn: "+missing+"\n", 1)
			},
			want: []string{"sns topic " + missing, "does not exist", "fix:", "sns:GetTopicAttributes"},
		},
		{
			name:     "nothing listens at the endpoint",
			edit:     func(c string) string { return strings.Replace(c, "endpoint: "+e.emu.Endpoint, "endpoint: "+dead, 1) },
			want:     []string{"sns topic " + e.topic, "not reachable", "fix:", "sns.endpoint"},
			retryLog: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the second waits out run's bounded retries
			cfg := tt.edit(string(base))
			if cfg == string(base) {
				t.Fatal("the edit changed nothing")
			}
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			p := startProc(t, "run", "--config", path)
			err := p.wait(t, 2*time.Minute)
			out := p.output()
			if code := exitCodeOf(err); code != 1 {
				t.Fatalf("run exited %d (%v), want 1:\n%s", code, err, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			for _, w := range tt.want {
				if !strings.Contains(last, w) {
					t.Errorf("last line does not say %q:\n%s", w, last)
				}
			}
			if strings.Contains(out, `"msg":"streaming"`) || strings.Contains(last, "permanent error") {
				t.Errorf("run streamed, or leaked internal words:\n%s", out)
			}
			var slots int
			if err := pgQueryRow(context.Background(), e.dsn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdc'", &slots); err != nil || slots != 0 {
				t.Errorf("run created the slot before checking SNS (%d, %v)", slots, err)
			}
			// A missing topic is not retried; no answer is, within a bound
			// (run's last retry is due before topicCheckWithin).
			retries := logLines(p, "sns topic not reachable; retrying")
			if tt.retryLog != (len(retries) > 0) {
				t.Errorf("%d retry log lines, want retries: %v:\n%s", len(retries), tt.retryLog, out)
			}
			if tt.retryLog && (len(retries) < 2 || retries[0]["attempt"] != float64(1) || retries[1]["attempt"] != float64(2) ||
				retries[0]["retry_in"] == nil || retries[0]["topic"] != e.topic || retries[0]["gives_up_after"] != topicCheckWithin.String()) {
				t.Errorf("retry log lines %v:\n%s", retries, out)
			}
			// check names the same topic, problem and fix.
			_, fix, _ := strings.Cut(last, "; fix: ")
			c := startProc(t, "check", "--config", path)
			_ = c.wait(t, 90*time.Second)
			arn := tt.want[0][len("sns topic "):]
			var row string
			for _, l := range strings.Split(c.output(), "\n") {
				if strings.Contains(l, "✗ sns topic") && strings.Contains(l, arn+" ") {
					row = l
				}
			}
			if !strings.Contains(row, tt.want[1]) || fix == "" || !strings.Contains(c.output(), "fix: "+fix) {
				t.Errorf("check does not say %q with the fix %q:\n%s", tt.want[1], fix, c.output())
			}
		})
	}
}
