package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

// SinkResult is item 6: the sink draining a pre-filled queue into a local
// Kobot receiver.
type SinkResult struct {
	Messages    int     `json:"messages"`
	Delivered   int     `json:"delivered"`
	Seconds     float64 `json:"seconds"` // first delivery to last
	PerSec      float64 `json:"deliveries_per_sec"`
	FromStart   float64 `json:"seconds_from_start"` // sink process start to last delivery
	Concurrency string  `json:"settings"`
	PeakRSS     int64   `json:"peak_rss_bytes"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	EmulatorCPU float64 `json:"emulator_cpu_seconds"` // during the drain
	// Binary and Run name a -compare drain: "sink" (the measured binary) or
	// "compare".
	Binary string `json:"binary,omitempty"`
	Run    int    `json:"run,omitempty"`
}

// sinkSettings describes the sink's tuning in the results.
func (b *bench) sinkSettings() string {
	if b.o.SinkConc > 0 {
		return fmt.Sprintf("sink.sqs.concurrency %d, other sink.sqs defaults (batch_size 10, wait_time 20s), kobot.timeout 5s", b.o.SinkConc)
	}
	return "sink.sqs defaults (concurrency 4, batch_size 10, wait_time 20s), kobot.timeout 5s"
}

const linksToken = "bench-links-token"

func testenvQueue() testenv.QueueOptions {
	return testenv.QueueOptions{VisibilityTimeout: 30 * time.Second}
}

// receiver is the local Kobot: it verifies the Standard Webhooks signature
// of every push, answers 200, and records the event (401 on a bad
// signature, as Kobot would). It is not internal/kobottest, the stand-in
// of the tests and the fault suite, on purpose: it is part of the measuring
// instrument, and does the least work per push (kobottest decodes every
// push twice and keeps per-pair accounting under one lock) so that the
// deliveries per second measured are the sink's.
type receiver struct {
	srv    *http.Server
	url    string
	secret string
	key    kobot.Secret
	rec    atomic.Pointer[recorder]
}

func startReceiver() (*receiver, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	r := &receiver{secret: "whsec_" + base64.StdEncoding.EncodeToString(raw), key: raw}
	r.rec.Store(newRecorder(0))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.url = "http://" + l.Addr().String() + "/webhooks/baitoru"
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(l)
	return r, nil
}

func (r *receiver) setRecorder(rec *recorder) { r.rec.Store(rec) }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	now := time.Now()
	rec := r.rec.Load()
	if err != nil || kobot.Verify(r.key, req.Header, body, now, kobot.DefaultTolerance) != nil {
		rec.badOne()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rec.add(body, req.Header.Get(kobot.HeaderID), now)
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) close() { r.srv.Close() }

// runningSink is a `baitoru-cdc sink` process and its links API.
type runningSink struct {
	*proc
	api string
}

// startSink starts `baitoru-cdc sink` on queueURL, pushing to kobotURL,
// and waits until its links API answers. bin (default: the measured
// binary) and env vary the run (profiles).
func (b *bench) startSink(ctx context.Context, name, queueURL, dlqURL, kobotURL, bin string, extraEnv ...string) (*runningSink, error) {
	if bin == "" {
		bin = b.bin
	}
	if !b.hasSink {
		return nil, errNoSink
	}
	if b.sinkDSN == "" {
		if err := testenv.Exec(ctx, b.pg.DSN("postgres"), "CREATE DATABASE baitoru_sink"); err != nil {
			return nil, fmt.Errorf("create sink database: %w", err)
		}
		b.sinkDSN = b.pg.DSN("baitoru_sink")
	}
	if b.secret == "" {
		return nil, errors.New("no receiver secret")
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	concurrency := ""
	if b.o.SinkConc > 0 {
		concurrency = fmt.Sprintf("    concurrency: %d\n", b.o.SinkConc)
	}
	cfg := fmt.Sprintf(`log:
  level: warn
sink:
  dsn: %q
  sqs:
    region: %s
    endpoint: %s
    queue_url: %s
    dlq_url: %s
%s  kobot:
    endpoint: %s
    secret: ${BENCH_KOBOT_SECRET}
    timeout: 5s
  api:
    listen: %q
    token: ${BENCH_LINKS_TOKEN}
  links:
    - table: public.applications
      field: company_id
`, b.sinkDSN, b.emu.Region, b.emu.Endpoint, queueURL, dlqURL, concurrency, kobotURL, apiAddr)
	path := filepath.Join(b.out, "config", name+".yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	env := append(envList(awsEnv()), "BENCH_KOBOT_SECRET="+b.secret, "BENCH_LINKS_TOKEN="+linksToken)
	env = append(env, extraEnv...)
	c, err := startProcess(name, b.logs, bin, []string{"sink", "--config", path}, env, nil)
	if err != nil {
		return nil, err
	}
	s := &runningSink{proc: c, api: "http://" + apiAddr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c.Exited() {
			return nil, c.exitErr()
		}
		if code, _, err := s.call(ctx, http.MethodGet, "/v1/links?limit=1", nil); err == nil && code == http.StatusOK {
			return s, nil
		}
		if time.Now().After(deadline) {
			c.stop(5 * time.Second)
			return nil, fmt.Errorf("%s: links API not answering after 60s; log %s:\n%s", name, c.LogPath(), c.Tail(15))
		}
		select {
		case <-ctx.Done():
			c.stop(5 * time.Second)
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *runningSink) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.api+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+linksToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// ensureLinks starts one link per company (link key = company_id) through
// the links API, then gives the sink's link cache a moment to pick them up.
func (b *bench) ensureLinks(ctx context.Context, s *runningSink) error {
	if b.linksOK {
		return nil
	}
	for i := 1; i <= b.o.Companies; i++ {
		code, body, err := s.call(ctx, http.MethodPost, "/v1/links",
			map[string]string{"kobot_account": "kobot-" + strconv.Itoa(i), "link_key": strconv.Itoa(i)})
		if err != nil {
			return fmt.Errorf("start link: %w", err)
		}
		if code != http.StatusCreated && code != http.StatusOK {
			return fmt.Errorf("start link: HTTP %d: %s", code, body)
		}
	}
	b.linksOK = true
	time.Sleep(2 * time.Second)
	return nil
}

// sinkPhase is item 6: a queue pre-filled with SinkMessages valid events
// of linked companies, drained by a freshly started sink.
func (b *bench) sinkPhase(ctx context.Context) error {
	if b.o.skipped(itemSink) || !b.hasSink {
		return nil
	}
	rcv, dlqURL, err := b.sinkWorld(ctx)
	if err != nil {
		return err
	}
	queueURL, _, err := b.emu.CreateQueue(ctx, "bench-sink", testenvQueue())
	if err != nil {
		return err
	}
	n := b.o.SinkMessages
	res, err := b.drain(ctx, "sink-throughput", queueURL, dlqURL, rcv, b.bin, 0)
	if res != nil {
		b.res.Sink = res
	}
	if err != nil {
		return err
	}
	// With -compare: Repeat drains of each binary, alternating, each of
	// fresh events on a queue of its own.
	for r := 1; b.o.Compare != "" && r <= b.o.Repeat; r++ {
		bins := []struct{ label, bin string }{{readerCompare, b.o.Compare}, {"sink", b.bin}}
		if r%2 == 0 {
			bins[0], bins[1] = bins[1], bins[0]
		}
		for i, x := range bins {
			name := fmt.Sprintf("sink-%s-%d", x.label, r)
			q, _, err := b.emu.CreateQueue(ctx, "bench-"+name, testenvQueue())
			if err != nil {
				return err
			}
			res, err := b.drain(ctx, name, q, dlqURL, rcv, x.bin, n*(2+2*(r-1)+i))
			if err != nil {
				return err
			}
			res.Binary, res.Run = x.label, r
			b.res.SinkRuns = append(b.res.SinkRuns, *res)
		}
	}
	if b.o.skipped(itemProfile) || b.profBin == "" {
		return nil
	}
	return b.profileSink(ctx, dlqURL, rcv, n)
}

// sinkWorld returns what every sink run shares: the emulator, the DLQ, the
// local Kobot receiver, and one link per company in the sink database
// (made on first use through a sink's links API).
func (b *bench) sinkWorld(ctx context.Context) (rcv *receiver, dlqURL string, err error) {
	if _, err := b.emulator(); err != nil {
		return nil, "", err
	}
	dlqURL, _, err = b.emu.CreateQueue(ctx, "bench-sink-dlq", testenvQueue())
	if err != nil {
		return nil, "", err
	}
	rcv, err = b.receiver()
	if err != nil {
		return nil, "", err
	}
	if !b.linksOK {
		// On a queue of its own: a stopped sink's abandoned long polls
		// would take messages from the emulator and hide them for the
		// visibility timeout.
		linksQueue, _, err := b.emu.CreateQueue(ctx, "bench-links", testenvQueue())
		if err != nil {
			return nil, "", err
		}
		s, err := b.startSink(ctx, "sink-links", linksQueue, dlqURL, rcv.url, "")
		if err != nil {
			return nil, "", err
		}
		err = b.ensureLinks(ctx, s)
		s.stop(15 * time.Second)
		if err != nil {
			return nil, "", err
		}
	}
	return rcv, dlqURL, nil
}

// drain pre-fills queueURL with SinkMessages events (ids from offset on),
// drains it with a freshly started sink of bin into rcv, and measures it.
func (b *bench) drain(ctx context.Context, name, queueURL, dlqURL string, rcv *receiver, bin string, offset int) (*SinkResult, error) {
	n := b.o.SinkMessages
	b.logf("%s: pre-filling %d messages", name, n)
	if err := b.prefill(ctx, queueURL, offset, n); err != nil {
		return nil, err
	}
	rec := newRecorder(n)
	rcv.setRecorder(rec)
	emuBefore := b.emuCPU()
	s, err := b.startSink(ctx, name, queueURL, dlqURL, rcv.url, bin)
	if err != nil {
		return nil, err
	}
	defer s.stop(15 * time.Second)
	timeout := timeoutFor(n, 100)
	select {
	case <-rec.done:
	case <-s.Done():
		return nil, s.exitErr()
	case <-time.After(timeout):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res := &SinkResult{Messages: n, Delivered: rec.count(), Concurrency: b.sinkSettings(), PeakRSS: s.vmHWM(),
		EmulatorCPU: (b.emuCPU() - emuBefore).Seconds()}
	rec.mu.Lock()
	first, last := rec.first, rec.last
	rec.mu.Unlock()
	s.stop(15 * time.Second)
	_, cpu := s.usage()
	res.CPUSeconds = cpu.Seconds()
	res.Seconds = last.Sub(first).Seconds()
	if res.Seconds > 0 {
		res.PerSec = float64(res.Delivered) / res.Seconds
	}
	res.FromStart = last.Sub(s.Started()).Seconds()
	b.logf("%s: %d of %d delivered in %.2fs = %.0f deliveries/s, peak RSS %s, CPU %.1fs (%.0f µs/message), emulator CPU %.1fs",
		name, res.Delivered, n, res.Seconds, res.PerSec, mib(res.PeakRSS), res.CPUSeconds, res.CPUSeconds*1e6/float64(max(res.Delivered, 1)), res.EmulatorCPU)
	if res.Delivered < n {
		return res, fmt.Errorf("%s: %d of %d delivered within %s", name, res.Delivered, n, timeout)
	}
	return res, nil
}

// profileSink drains another pre-filled queue (other event ids) with a
// profiled sink.
func (b *bench) profileSink(ctx context.Context, dlqURL string, rcv *receiver, offset int) error {
	m := min(b.o.SinkMessages, 10_000)
	queueURL, _, err := b.emu.CreateQueue(ctx, "bench-sink-profiled", testenvQueue())
	if err != nil {
		return err
	}
	if err := b.prefill(ctx, queueURL, offset, m); err != nil {
		return err
	}
	rec := newRecorder(m)
	rcv.setRecorder(rec)
	env, cpu, heap := b.profileEnv("sink")
	s, err := b.startSink(ctx, "sink-profiled", queueURL, dlqURL, rcv.url, b.profBin, env...)
	if err != nil {
		return err
	}
	select {
	case <-rec.done:
	case <-s.Done():
		return s.exitErr()
	case <-time.After(timeoutFor(m, 100)):
		s.stop(15 * time.Second)
		return fmt.Errorf("profiled sink: %d of %d delivered", rec.count(), m)
	case <-ctx.Done():
		s.stop(15 * time.Second)
		return ctx.Err()
	}
	s.stop(15 * time.Second)
	p, err := b.readProfiles(ctx, "sink", cpu, heap)
	if p != nil {
		p.Workload = fmt.Sprintf("draining %s pre-filled messages", count(m))
		b.res.Profiles = append(b.res.Profiles, p)
	}
	return err
}

// receiver returns the local Kobot receiver (one per run).
func (b *bench) receiver() (*receiver, error) {
	if b.rcv != nil {
		return b.rcv, nil
	}
	r, err := startReceiver()
	if err != nil {
		return nil, err
	}
	b.rcv, b.secret = r, r.secret
	return r, nil
}

// prefill sends n valid events of the linked companies (shaped like the
// connector's: the bench mapping, realistic sizes), numbered from offset
// (event ids differ between batches), with SendMessageBatch.
func (b *bench) prefill(ctx context.Context, queueURL string, offset, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	now := time.Now().UTC()
	for range 8 {
		wg.Go(func() {
			for {
				from := int(next.Add(10) - 10)
				if from >= n || ctx.Err() != nil {
					return
				}
				var entries []sqstypes.SendMessageBatchRequestEntry
				for i := from; i < min(from+10, n); i++ {
					entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
						Id: aws.String(strconv.Itoa(i - from)), MessageBody: aws.String(syntheticEvent(offset+i, b.o.Companies, now)),
					})
				}
				out, err := b.emu.SQS().SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
				if err == nil && len(out.Failed) > 0 {
					err = fmt.Errorf("%d entries failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
				}
				if err != nil {
					errc <- fmt.Errorf("pre-fill: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// syntheticEvent is the i-th event of the sink workload: the envelope and
// data of the bench mapping, with a unique id.
func syntheticEvent(i, companies int, t time.Time) string {
	company := 1 + i%companies
	lsn := fmt.Sprintf("2/%X", 0x1000000+i*0x200)
	return fmt.Sprintf(`{"specversion":"1.0","id":"%s-1","source":"baitoru/baitoru","type":"baitoru.applications.insert",`+
		`"subject":"%d","time":"%s","datacontenttype":"application/json","table":"public.applications","op":"insert",`+
		`"lsn":"%s","xid":%d,"data":{"application_id":%d,"company_id":%d,"posting_id":%d,"status":"applied","channel":"web",`+
		`"answers":{"days":["mon","thu"],"note":"よろしくお願いします","available_from":"2026-12-01","experience_years":%d},`+
		`"applied_at":"%s"}}`,
		lsn, company, t.Format("2006-01-02T15:04:05.000000Z"), lsn, 100000+i, 5000000+i, company, 100000+i%5000, i%7,
		t.Format("2006-01-02T15:04:05.000000Z"))
}
