package stdout_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
	"github.com/baitoru/baitoru-cdc/connector/stdout"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/stdout")

func ev(id, body string) *connector.Event {
	return &connector.Event{ID: id, Table: "public.applications", Body: []byte(body)}
}

// TestPublishGolden writes batches of events and compares the output with
// testdata/stdout/<case>/out.ndjson.
func TestPublishGolden(t *testing.T) {
	cases := []struct {
		name    string
		batches [][]*connector.Event
	}{
		{"single", [][]*connector.Event{{
			ev("0/16B3748-1", `{"specversion":"1.0","id":"0/16B3748-1","type":"baitoru.applications.insert","data":{"application_id":42}}`),
		}}},
		{"batches", [][]*connector.Event{
			{ev("0/16B3748-1", `{"id":"0/16B3748-1","data":{"a":1}}`), ev("0/16B3748-2", `{"id":"0/16B3748-2","data":{"a":2}}`)},
			{},
			{ev("0/16B3800-1", `{"id":"0/16B3800-1","data":{"s":"line\nbreak \"quoted\" 日本語"}}`)},
		}},
		// A json (not jsonb) column keeps the client's formatting, newlines
		// included; they must not split the event over several lines.
		{"raw-newlines", [][]*connector.Event{{
			ev("0/1-1", "{\"id\":\"0/1-1\",\"data\":{\"doc\":{\n  \"k\": [1,\r\n 2]\n}}}"),
			ev("0/1-2", "{\"id\":\"0/1-2\"}\n"),
		}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := stdout.New(&buf)
			for _, b := range tc.batches {
				if err := p.Publish(context.Background(), b); err != nil {
					t.Fatalf("Publish: %v", err)
				}
			}
			// Every line is one whole JSON document.
			n := 0
			for _, b := range tc.batches {
				n += len(b)
			}
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != n {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), n, buf.String())
			}
			for _, l := range lines {
				if !json.Valid([]byte(l)) {
					t.Errorf("line is not a JSON document: %q", l)
				}
			}
			golden := filepath.Join("..", "..", "testdata", "stdout", tc.name, "out.ndjson")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("output differs from %s:\ngot:\n%s\nwant:\n%s", golden, buf.Bytes(), want)
			}
		})
	}
}

// countingWriter records how many bytes reached it.
type countingWriter struct {
	mu sync.Mutex
	n  int
}

func (w *countingWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.n += len(b)
	w.mu.Unlock()
	return len(b), nil
}

// TestPublishFlushes: when Publish returns, every byte has reached the
// underlying writer (nothing waits in the buffer).
func TestPublishFlushes(t *testing.T) {
	w := &countingWriter{}
	p := stdout.New(w)
	want := 0
	for i := range 5 {
		body := fmt.Sprintf(`{"n":%d}`, i)
		if err := p.Publish(context.Background(), []*connector.Event{ev("x", body)}); err != nil {
			t.Fatal(err)
		}
		want += len(body) + 1
		if w.n != want {
			t.Fatalf("after Publish %d: %d bytes reached the writer, want %d", i, w.n, want)
		}
	}
}

// TestConcurrentPublish: lanes publishing at once never interleave lines,
// and each batch's lines stay together and in order.
func TestConcurrentPublish(t *testing.T) {
	var buf bytes.Buffer
	p := stdout.New(&buf)
	const lanes, batches, size = 8, 100, 7
	var wg sync.WaitGroup
	for l := range lanes {
		wg.Go(func() {
			for b := range batches {
				evs := make([]*connector.Event, size)
				for i := range evs {
					// Bodies long enough to overflow the 64 KiB buffer now and then.
					pad := strings.Repeat("x", (l*batches+b+i)%3000)
					evs[i] = ev("", fmt.Sprintf(`{"lane":%d,"batch":%d,"i":%d,"pad":"%s"}`, l, b, i, pad))
				}
				if err := p.Publish(context.Background(), evs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	type rec struct{ Lane, Batch, I int }
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	seen := map[rec]bool{}
	var prev rec
	n := 0
	for sc.Scan() {
		var r rec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d is not whole: %v: %.80q", n+1, err, sc.Text())
		}
		if seen[r] {
			t.Fatalf("line %+v written twice", r)
		}
		seen[r] = true
		if r.I > 0 && (prev.Lane != r.Lane || prev.Batch != r.Batch || prev.I != r.I-1) {
			t.Fatalf("line %+v does not follow %+v: batch split or reordered", r, prev)
		}
		prev = r
		n++
	}
	if n != lanes*batches*size {
		t.Fatalf("got %d lines, want %d", n, lanes*batches*size)
	}
}

// TestBrokenPipe: writing into a pipe whose reader is gone is a permanent
// error, and stays one.
func TestBrokenPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r.Close()
	p := stdout.New(w)
	err = p.Publish(context.Background(), []*connector.Event{ev("0/1-1", `{"a":1}`)})
	if !errors.Is(err, connector.ErrPermanent) || !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Publish into a broken pipe: got %v, want EPIPE wrapping ErrPermanent", err)
	}
	err2 := p.Publish(context.Background(), []*connector.Event{ev("0/1-2", `{"a":2}`)})
	if !errors.Is(err2, connector.ErrPermanent) {
		t.Fatalf("second Publish: got %v, want the sticky permanent error", err2)
	}
}

// TestCanceled: a Publish with an ended context writes nothing.
func TestCanceled(t *testing.T) {
	var buf bytes.Buffer
	p := stdout.New(&buf)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.Publish(ctx, []*connector.Event{ev("0/1-1", `{"a":1}`)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("wrote %q after cancel", buf.String())
	}
}

// BenchmarkStdoutPublish publishes batches of 256 events of ~400 bytes
// (the `run` batch size for stdout) to io.Discard.
func BenchmarkStdoutPublish(b *testing.B) {
	p := stdout.New(io.Discard)
	body := []byte(`{"specversion":"1.0","id":"0/16B3748-3","source":"baitoru/baitoru","type":"baitoru.applications.insert","subject":"42","time":"2026-11-25T03:00:00.123456Z","datacontenttype":"application/json","table":"public.applications","op":"insert","lsn":"0/16B3748","xid":1234,"data":{"application_id":42,"company_id":7,"applied_at":"2026-11-25T03:00:00Z","status":"applied","note":"` + strings.Repeat("n", 64) + `"}}`)
	evs := make([]*connector.Event, 256)
	for i := range evs {
		evs[i] = &connector.Event{ID: "0/16B3748-3", Body: body}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(evs) * (len(body) + 1)))
	b.ResetTimer()
	for b.Loop() {
		if err := p.Publish(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}
