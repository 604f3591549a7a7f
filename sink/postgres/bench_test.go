package postgres_test

import (
	"log/slog"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink"
	"github.com/baitoru/baitoru-cdc/sink/postgres"
)

// BenchmarkDeliveryLog measures the delivery log's share of one Process
// call of 10 or 30 messages (one receive, or three merged) with one link
// each: one claim of the pairs, then one record of their outcomes.
// Reported: the benchmark process's CPU per message (PostgreSQL is another
// process).
//
//	go test ./sink/postgres -run '^$' -bench DeliveryLog -benchtime 3000x
func BenchmarkDeliveryLog(b *testing.B) {
	if testing.Short() {
		b.Skip("integration benchmark (PostgreSQL)")
	}
	ctx := b.Context()
	dsn := testenv.PG(b).NewDatabase(b)
	s, err := postgres.Open(dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	testenv.MustExec(b, dsn, `INSERT INTO links (kobot_account, link_key) SELECT 'kobot-' || g, g::text FROM generate_series(1, 50) g`)
	n := 0
	for _, size := range []int{10, 30} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			keys := make([]sink.DeliveryKey, size)
			ds := make([]sink.Delivery, size)
			now := time.Now()
			b.ReportAllocs()
			began := processCPU(b)
			for b.Loop() {
				for i := range keys {
					n++
					keys[i] = sink.DeliveryKey{EventID: "2/" + strconv.FormatInt(int64(0x1000000+n*0x200), 16) + "-1", LinkID: int64(1 + n%50)}
				}
				claims, err := s.Claim(ctx, keys, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				for i, k := range keys {
					if claims[k] != sink.ClaimOwned {
						b.Fatalf("claim %v: %v", k, claims[k])
					}
					ds[i] = sink.Delivery{EventID: k.EventID, LinkID: k.LinkID, Status: sink.DeliveryDelivered, Attempts: 1,
						HTTPStatus: 204, Latency: time.Millisecond, DeliveredAt: now}
				}
				if err := s.RecordDeliveries(ctx, ds); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU(b)-began)/float64(time.Microsecond)/float64(b.N*size), "cpu-µs/message")
		})
	}
}

// processCPU is the CPU time the benchmark process has used (user and
// system): the figure a shared machine's load distorts least.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
