package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/config"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		logged        []slog.Level // of debug, info, warn, error
		json          bool
	}{
		{"debug", "text", []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}, false},
		{"info", "json", []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError}, true},
		{"WARN", "JSON", []slog.Level{slog.LevelWarn, slog.LevelError}, true},
		{"error", "text", []slog.Level{slog.LevelError}, false},
		{"", "", []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError}, false},
	} {
		t.Run(tc.level+"/"+tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			log := New(config.Log{Level: tc.level, Format: tc.format}, &buf)
			for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
				log.Log(t.Context(), l, "m", "level", l.String())
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != len(tc.logged) {
				t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(tc.logged), buf.String())
			}
			for i, line := range lines {
				if got := json.Valid([]byte(line)); got != tc.json {
					t.Errorf("line %q: JSON %v, want %v", line, got, tc.json)
				}
				if !strings.Contains(line, tc.logged[i].String()) {
					t.Errorf("line %d %q, want level %s", i, line, tc.logged[i])
				}
			}
		})
	}
}
