package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/baitoru/baitoru-cdc/config"
)

// logConfigWarnings logs what Load noticed that does not stop the command
// (e.g. a misspelled BAITORU_CDC_* variable), one warning each.
func logConfigWarnings(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w.String())
	}
}

// printConfigWarnings prints them to w (a one-shot command's stderr).
func printConfigWarnings(w io.Writer, cfg *config.Config) {
	for _, p := range cfg.Warnings() {
		fmt.Fprintln(w, "warning: "+p.String())
	}
}
