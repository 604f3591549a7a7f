package telemetry

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/sink"
)

// value returns the value of the series name{labels} (counter, gauge, or
// a histogram's sample count) in g, and whether it exists.
func value(t *testing.T, g prom.Gatherer, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if want[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func mustValue(t *testing.T, g prom.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, ok := value(t, g, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func events(table string, op connector.Op, n int, commit time.Time) []*connector.Event {
	out := make([]*connector.Event, n)
	for i := range out {
		out[i] = &connector.Event{Table: table, Op: op, CommitTime: commit}
	}
	return out
}

type fakeWindow struct {
	mu     sync.Mutex
	events int
	bytes  int64
}

func (w *fakeWindow) Window() (int, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events, w.bytes
}
func (w *fakeWindow) set(n int, b int64) { w.mu.Lock(); w.events, w.bytes = n, b; w.mu.Unlock() }

type fakeRepl struct {
	mu sync.Mutex
	on bool
}

func (r *fakeRepl) Streaming() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.on }
func (r *fakeRepl) set(on bool)     { r.mu.Lock(); r.on = on; r.mu.Unlock() }

func TestMetricsCount(t *testing.T) {
	m := New()
	m.AddTable("public.applications")
	g := m.Registry()

	// Series of added tables exist at 0 for every operation.
	for _, op := range []string{"insert", "update", "delete"} {
		for _, name := range []string{ChangesRead, EventsPublished, PublishFailures} {
			if v := mustValue(t, g, name, "table", "public.applications", "op", op); v != 0 {
				t.Errorf("%s{op=%s} = %v before any change, want 0", name, op, v)
			}
		}
	}

	commit := time.Now().Add(-250 * time.Millisecond)
	for range 5 {
		m.ChangeRead("public.applications", connector.OpInsert)
	}
	m.ChangeRead("public.job_postings", connector.OpUpdate) // first seen in the stream
	m.ChangeRead("public.job_postings", connector.OpUpdate)
	batch := append(events("public.applications", connector.OpInsert, 3, commit), events("public.job_postings", connector.OpUpdate, 2, commit)...)
	batch = append(batch, events("public.applications", connector.OpInsert, 1, commit)...)
	m.Published(batch, 40*time.Millisecond)
	m.PublishFailed(events("public.applications", connector.OpInsert, 2, commit), errors.New("boom"))
	m.Flushed(connector.LSN(0x16B3748))
	m.Flushed(connector.LSN(0x16B0000)) // the pipeline's, behind the subscription's: the highest stays
	m.Retried("arn:aws:sns:us-east-1:000000000000:t", "Throttled", 4)
	m.Retried("arn:aws:sns:us-east-1:000000000000:t", "", 1)
	m.SlotRetainedWAL(123456)
	w, r := &fakeWindow{}, &fakeRepl{}
	m.Watch(w, r)
	w.set(7, 7000)
	r.set(true)

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{ChangesRead, []string{"table", "public.applications", "op", "insert"}, 5},
		{ChangesRead, []string{"table", "public.job_postings", "op", "update"}, 2},
		{ChangesRead, []string{"table", "public.job_postings", "op", "insert"}, 0},
		{EventsPublished, []string{"table", "public.applications", "op", "insert"}, 4},
		{EventsPublished, []string{"table", "public.job_postings", "op", "update"}, 2},
		{PublishFailures, []string{"table", "public.applications", "op", "insert"}, 2},
		{PublishRetries, []string{"reason", "Throttled"}, 4},
		{PublishRetries, []string{"reason", "network"}, 1},
		{PublishBatchDuration, nil, 1},
		{CommitToPublish, nil, 6},
		{ConfirmedLSN, nil, 0x16B3748},
		{SlotRetainedWALBytes, nil, 123456},
		{InflightEvents, nil, 7},
		{InflightBytes, nil, 7000},
		{ReplicationStreaming, nil, 1},
	} {
		if got := mustValue(t, g, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	r.set(false)
	if got := mustValue(t, g, ReplicationStreaming); got != 0 {
		t.Errorf("%s = %v after the stream stopped, want 0", ReplicationStreaming, got)
	}

	// commit→publish: the 250ms-old commits land in the (0.256, 0.512] bucket.
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		if mf.GetName() != CommitToPublish {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if s := h.GetSampleSum(); s < 6*0.25 || s > 6*5 {
			t.Errorf("commit_to_publish sum = %v, want about 6*0.25", s)
		}
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() < 0.25 && b.GetCumulativeCount() != 0 {
				t.Errorf("bucket le=%v has %d events younger than their commit", b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
	}

	snap := m.take()
	if snap.read != 7 || snap.published != 6 || snap.failed != 2 || snap.retried != 5 || snap.confirmed != 0x16B3748 || snap.retained != 123456 {
		t.Errorf("snapshot = %+v", snap)
	}
	if snap.maxLag < 250*time.Millisecond {
		t.Errorf("max lag = %s, want >= 250ms", snap.maxLag)
	}
	if again := m.take(); again.maxLag != 0 {
		t.Errorf("max lag not reset by take: %s", again.maxLag)
	}
}

// TestMetricsLint runs Prometheus's own linter (naming: _total, base
// units, no unit prefixes; help texts) over every metric of the connector
// and of the sink.
func TestMetricsLint(t *testing.T) {
	m := New()
	m.AddTable("public.applications")
	m.Retried("t", "Throttled", 1)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sinkReg := prom.NewRegistry()
	sm := sink.NewMetrics(sinkReg)
	sm.KobotRequests.WithLabelValues("2xx").Inc()
	sm.LinkReloads.WithLabelValues("all").Inc()
	sinkMFs, err := sinkReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ours []*dto.MetricFamily
	for _, mf := range append(mfs, sinkMFs...) {
		if strings.HasPrefix(mf.GetName(), "baitoru_cdc_") {
			ours = append(ours, mf)
		}
	}
	if len(ours) < 20 {
		t.Fatalf("only %d baitoru_cdc_ metric families", len(ours))
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestMetricsConcurrent(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	tables := []string{"public.a", "public.b", "public.c", "public.d"}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				tb := tables[(g+i)%len(tables)]
				m.ChangeRead(tb, connector.OpInsert)
				m.Published(events(tb, connector.OpInsert, 1, time.Now()), time.Millisecond)
			}
		}()
	}
	wg.Wait()
	var read, pub float64
	for _, tb := range tables {
		read += mustValue(t, m.Registry(), ChangesRead, "table", tb, "op", "insert")
		pub += mustValue(t, m.Registry(), EventsPublished, "table", tb, "op", "insert")
	}
	if read != 8000 || pub != 8000 {
		t.Errorf("read %v published %v, want 8000 each", read, pub)
	}
}

func TestStatusLine(t *testing.T) {
	cases := []struct {
		name      string
		prepare   func(m *Metrics, w *fakeWindow)
		level     string
		wantAttrs []string
	}{
		{
			name: "busy",
			prepare: func(m *Metrics, w *fakeWindow) {
				for range 40 {
					m.ChangeRead("public.a", connector.OpInsert)
				}
				m.Published(events("public.a", connector.OpInsert, 20, time.Now().Add(-120*time.Millisecond)), 5*time.Millisecond)
				m.Flushed(connector.LSN(0x1_0000_0010))
				m.SlotRetainedWAL(4096)
				w.set(20, 2000)
			},
			level:     "INFO",
			wantAttrs: []string{"streaming=true", "changes_per_sec=", "events_per_sec=", "inflight_events=20", "confirmed_lsn=1/10", "retained_wal_bytes=4096", "publish_retries=0"},
		},
		{
			name:      "stalled",
			prepare:   func(m *Metrics, w *fakeWindow) { w.set(3, 300) },
			level:     "WARN",
			wantAttrs: []string{"inflight_events=3", "lag=0s", "no_publish_for=", "confirmed_lsn=0/0"},
		},
		{
			name:      "idle",
			prepare:   func(m *Metrics, w *fakeWindow) {},
			level:     "INFO",
			wantAttrs: []string{"events_per_sec=0", "inflight_events=0", "lag=0s"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := New()
			w, r := &fakeWindow{}, &fakeRepl{on: true}
			m.Watch(w, r)
			var buf bytes.Buffer
			s := NewStatus(m, time.Second, slog.New(slog.NewTextHandler(&buf, nil)))
			prev := m.take()
			c.prepare(m, w)
			s.line(prev, m.take(), 2*time.Second, 5*time.Second)
			line := buf.String()
			if strings.Count(line, "\n") != 1 || !strings.Contains(line, "level="+c.level+" msg=status ") {
				t.Fatalf("status line %q, want one %s line msg=status", line, c.level)
			}
			for _, a := range c.wantAttrs {
				if !strings.Contains(line, " "+a) {
					t.Errorf("status line %q lacks %s", line, a)
				}
			}
			if !strings.Contains(line, "retained_wal_bytes") && c.name == "busy" {
				t.Error("retained_wal_bytes missing")
			}
			if c.name != "busy" && strings.Contains(line, "retained_wal_bytes") {
				t.Errorf("retained_wal_bytes before the slot monitor reported: %q", line)
			}
		})
	}
	// Rates are per second over the elapsed time.
	m := New()
	m.Watch(&fakeWindow{}, &fakeRepl{})
	var buf bytes.Buffer
	s := NewStatus(m, time.Second, slog.New(slog.NewTextHandler(&buf, nil)))
	prev := m.take()
	for range 30 {
		m.ChangeRead("public.a", connector.OpInsert)
	}
	m.Published(events("public.a", connector.OpInsert, 15, time.Now()), time.Millisecond)
	s.line(prev, m.take(), 2*time.Second, 0)
	for _, a := range []string{"changes_per_sec=15 ", "events_per_sec=7.5 ", "streaming=false "} {
		if !strings.Contains(buf.String(), a) {
			t.Errorf("status line %q lacks %s", buf.String(), a)
		}
	}
}

func TestStatusRunTicks(t *testing.T) {
	m := New()
	m.Watch(&fakeWindow{}, &fakeRepl{on: true})
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	ctx, cancel := contextWithTimeout(t, 5*time.Second)
	done := make(chan error)
	go func() { done <- NewStatus(m, 20*time.Millisecond, log).Run(ctx) }()
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		n := strings.Count(buf.String(), "msg=status")
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d status lines after 3s at a 20ms interval", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Interval 0: off, returns at once.
	var quiet bytes.Buffer
	if err := NewStatus(m, 0, slog.New(slog.NewTextHandler(&quiet, nil))).Run(t.Context()); err != nil || quiet.Len() != 0 {
		t.Fatalf("interval 0: err %v, output %q", err, quiet.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// BenchmarkChangeRead is the per-row cost on the replication reader.
func BenchmarkChangeRead(b *testing.B) {
	m := New()
	tables := []string{"public.applications", "public.job_postings"}
	for _, tb := range tables {
		m.AddTable(tb)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.ChangeRead(tables[i&1], connector.OpInsert)
	}
}

// BenchmarkPublished is the cost per batch of 10 events on a lane.
func BenchmarkPublished(b *testing.B) {
	m := New()
	batch := events("public.applications", connector.OpInsert, 10, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		m.Published(batch, time.Millisecond)
	}
}

// BenchmarkPublishedParallel runs Published from 8 goroutines, as lanes do.
func BenchmarkPublishedParallel(b *testing.B) {
	m := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		batch := events("public.applications", connector.OpInsert, 10, time.Now())
		for pb.Next() {
			m.Published(batch, time.Millisecond)
		}
	})
}

func TestDurationsBuckets(t *testing.T) {
	h := newDurations("x_seconds", "x", time.Millisecond, 2, 4) // 1, 2, 4, 8 ms
	obs := []struct {
		d time.Duration
		n int
	}{
		{0, 1},
		{time.Millisecond, 2},                    // on a bound: that bucket (le)
		{time.Millisecond + time.Microsecond, 3}, // 2ms bucket
		{5 * time.Millisecond, 1},                // 8ms bucket
		{time.Second, 4},                         // +Inf
	}
	var wantSum time.Duration
	for _, o := range obs {
		h.observe(o.d, o.n)
		wantSum += o.d * time.Duration(o.n)
	}
	reg := prom.NewRegistry()
	reg.MustRegister(h)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hist := mfs[0].GetMetric()[0].GetHistogram()
	if hist.GetSampleCount() != 11 {
		t.Errorf("count = %d, want 11", hist.GetSampleCount())
	}
	if got := time.Duration(hist.GetSampleSum() * 1e9); got-wantSum > time.Microsecond || wantSum-got > time.Microsecond {
		t.Errorf("sum = %s, want %s", got, wantSum)
	}
	want := map[float64]uint64{0.001: 3, 0.002: 6, 0.004: 6, 0.008: 7}
	for _, b := range hist.GetBucket() {
		if b.GetCumulativeCount() != want[b.GetUpperBound()] {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[b.GetUpperBound()])
		}
	}
	if len(hist.GetBucket()) != 4 {
		t.Errorf("%d buckets, want 4", len(hist.GetBucket()))
	}
}

// TestPublishedLatencyPerTransaction: events of different transactions in
// one batch are observed with their own commit times.
func TestPublishedLatencyPerTransaction(t *testing.T) {
	m := New()
	now := time.Now()
	batch := append(events("public.a", connector.OpInsert, 3, now.Add(-3*time.Second)), events("public.a", connector.OpInsert, 2, now.Add(-10*time.Millisecond))...)
	m.Published(batch, time.Millisecond)
	mfs, _ := m.Registry().Gather()
	for _, mf := range mfs {
		if mf.GetName() != CommitToPublish {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 5 {
			t.Fatalf("count %d, want 5", h.GetSampleCount())
		}
		// Robust to a slow machine: up to 1s between now and Published.
		want := map[float64]uint64{0.008: 0, 2.048: 2, 4.096: 5, 65.536: 5}
		for _, b := range h.GetBucket() {
			if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
				t.Errorf("le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
			}
		}
		if s := h.GetSampleSum(); s < 9.02 || s > 15 {
			t.Errorf("sum %v, want about 3*3+2*0.01", s)
		}
	}
}
