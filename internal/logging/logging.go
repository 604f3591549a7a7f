// Package logging builds the process logger of every baitoru-cdc binary
// (the command and the Lambda function) from the configuration's log
// section.
package logging

import (
	"io"
	"log/slog"
	"strings"

	"github.com/baitoru/baitoru-cdc/config"
)

// New returns a logger writing to w at c.Level (debug, info, warn or error;
// anything else is info) in c.Format (json, else text). config validates
// both, so the fallbacks only serve a section built by hand.
func New(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: Level(c.Level)}
	if strings.ToLower(c.Format) == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Level is the slog level named by level, case-insensitively; info when it
// names none.
func Level(level string) slog.Level {
	switch strings.ToLower(level) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
