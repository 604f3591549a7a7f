package sink_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
)

// BenchmarkDeliver measures the delivery core: parse, link lookup (cache),
// delivery-log read and batch write (PostgreSQL), signed pushes to an
// httptest Kobot, with 16 concurrent consumers each handling batches of 10
// distinct linked events. SQS is not in the loop (the emulator, not the
// sink, would be measured). Reported: deliveries/s.
//
//	go test ./sink -run '^$' -bench Deliver -benchtime 20000x
func BenchmarkDeliver(b *testing.B) {
	if testing.Short() {
		b.Skip("integration benchmark (PostgreSQL)")
	}
	ctx := context.Background()
	dsn := testenv.PG(b).NewDatabase(b)
	store, err := postgres.Open(dsn, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	const keys = 1000
	testenv.MustExec(b, dsn, `INSERT INTO links (kobot_account, link_key)
		SELECT 'kobot-' || g, g::text FROM generate_series(1, $1) g`, keys)
	cache := sink.NewLinkCache(nil)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go store.WatchLinks(wctx, cache, nil)
	for !cache.Synced() {
		time.Sleep(10 * time.Millisecond)
	}
	var pushes atomic.Int64
	kob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		pushes.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer kob.Close()
	kc, err := kobot.New(config.Kobot{Endpoint: kob.URL, Secret: testSecret, MaxAttempts: 3}, nil)
	if err != nil {
		b.Fatal(err)
	}
	rules := sink.NewRules([]sink.LinkRule{{Table: "public.applications", Field: "company_id"}})
	proc, err := sink.NewProcessor(sink.ProcessorConfig{Rules: rules, Links: cache, Log: store, Pusher: kc})
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS consumers (32 on 2 cores)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		msgs := make([]sink.Message, 10)
		for pb.Next() {
			for i := range msgs {
				n := seq.Add(1)
				msgs[i] = sink.Message{ID: strconv.FormatInt(n, 10), ReceiveCount: 1,
					Body: []byte(event(fmt.Sprintf("0/%X-1", n), n%keys+1))}
			}
			res, err := proc.Process(ctx, msgs)
			if err != nil {
				b.Error(err)
				return
			}
			for _, r := range res {
				if r.Result != sink.ResultDelivered {
					b.Errorf("result %+v", r)
					return
				}
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if got, want := pushes.Load(), seq.Load(); got != want {
		b.Fatalf("Kobot got %d pushes for %d events", got, want)
	}
	b.ReportMetric(float64(pushes.Load())/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(0, "ns/op")
}
