// Command kobot-receiver is a reference Kobot endpoint for baitoru-cdc's
// sink: it verifies the Standard Webhooks signature of every push with the
// shared secret, drops duplicates by (kobotaccount, event id), and prints
// each event with its commit→receipt latency. The demo (make demo) runs it;
// Kobot's own receiver does the same checks (see docs/kobot.md).
//
//	KOBOT_WEBHOOK_SECRET=whsec_... kobot-receiver -listen 127.0.0.1:9000
//
// The secret is read from the environment, never from a flag (flags show in
// ps). Without it the receiver uses the public demo secret of config.yaml
// and says so. Output goes to stdout, one line per push: readable text, or
// with -json one kobottest.Receipt object per line. Logs go to stderr
// (JSON with -json); the first one, "listening", names the address.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/kobottest"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

// demoSecret is the public demo default of config.yaml's sink.kobot.secret.
const demoSecret = "whsec_YmFpdG9ydS1jZGMgZGVtbyBzZWNyZXQsIG5vdCBmb3I="

// maxPairs bounds the duplicate filter's memory.
const maxPairs = 100_000

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on (port 0: any free port)")
	path := flag.String("path", "/webhooks/baitoru", "URL path of the webhook")
	asJSON := flag.Bool("json", false, "print one JSON object per push instead of text, and log JSON")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *asJSON {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if err := run(*listen, *path, *asJSON, os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "kobot-receiver:", err)
		os.Exit(1)
	}
}

func run(listen, path string, asJSON bool, out io.Writer, log *slog.Logger) error {
	secret := os.Getenv("KOBOT_WEBHOOK_SECRET")
	if secret == "" {
		secret = demoSecret
		log.Warn("KOBOT_WEBHOOK_SECRET is not set: using the public demo secret of config.yaml")
	}
	key, err := kobot.ParseSecret(secret)
	if err != nil {
		return fmt.Errorf("KOBOT_WEBHOOK_SECRET: %w", err)
	}
	var mu sync.Mutex
	emit := func(r kobottest.Receipt) {
		mu.Lock()
		defer mu.Unlock()
		if asJSON {
			_ = json.NewEncoder(out).Encode(r)
			return
		}
		fmt.Fprintln(out, kobottest.Format(r))
	}
	mux := http.NewServeMux()
	// The duplicate filter remembers the last maxPairs (account, event id)
	// pairs, so a receiver left running does not grow without bound.
	mux.Handle(path, kobottest.New(kobottest.Options{Secret: key, Log: log, OnReceipt: emit, MaxPairs: maxPairs}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("listening", "addr", l.Addr().String(), "url", "http://"+l.Addr().String()+path)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
