package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/s3pointer"
)

// snsProxy stands between the connector and the emulator and times, per
// event, when SNS accepted it: it forwards every request unchanged and,
// when a PublishBatch call (AWS query protocol, form-encoded) is answered
// 200, hands each entry listed as Successful in the answer to the recorder
// at the moment the answer was complete — just before the connector reads
// it. Entries that failed are not recorded (the connector re-sends them;
// the recorder keeps the first accepted copy of each event id). A second
// recorder gets every entry when its request arrived, and the proxy keeps
// the duration of each PublishBatch call to the emulator: together they
// split the latency between the connector and the emulator.
//
// The connector's S3 endpoint may point at the proxy too (item 8): an S3
// PutObject answered 200 is then noted by key (the stored event's id and
// commit time, its size, how long the call took), so that a PublishBatch
// entry whose message is a pointer to that key is timed as that event.
type snsProxy struct {
	url      string // the endpoint to give the connector
	upstream string
	srv      *http.Server
	client   *http.Client
	accepted atomic.Pointer[recorder]
	sent     atomic.Pointer[recorder]
	mu       sync.Mutex
	durs     []time.Duration // of PublishBatch calls answered 200
	calls    atomic.Int64    // PublishBatch calls answered 200
	failed   atomic.Int64    // entries answered as Failed
	errs     atomic.Int64    // calls not forwarded or not parsed
	msgs     atomic.Int64    // PublishBatch entries accepted
	msgBytes atomic.Int64    // their messages' bytes

	objects  map[string][]byte // S3 key -> {"id":…,"time":…} of the stored event (under mu)
	puts     []time.Duration   // of PutObject calls answered 200 (under mu)
	putBytes atomic.Int64      // bytes of the events stored
}

func startSNSProxy(upstream string) (*snsProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &snsProxy{url: "http://" + l.Addr().String(), upstream: strings.TrimSuffix(upstream, "/"),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, objects: map[string][]byte{}}
	p.setRecorders(newRecorder(0), newRecorder(0))
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(l)
	return p, nil
}

// setRecorders sets who learns when events were accepted, and when the
// request carrying them arrived.
func (p *snsProxy) setRecorders(accepted, sent *recorder) {
	p.accepted.Store(accepted)
	p.sent.Store(sent)
}

// callTimes returns the durations of the PublishBatch calls answered 200.
func (p *snsProxy) callTimes() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.durs)
}

func (p *snsProxy) close() { p.srv.Close() }

func (p *snsProxy) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	arrived := time.Now()
	if err != nil {
		p.errs.Add(1)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, p.upstream+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		p.errs.Add(1)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = req.Header.Clone()
	out.Host = req.Host
	resp, err := p.client.Do(out)
	if err != nil {
		p.errs.Add(1)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	now := time.Now()
	if err != nil {
		p.errs.Add(1)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if resp.StatusCode == http.StatusOK {
		record := p.record
		if req.Method == http.MethodPut {
			record = func(body, _ []byte, arrived, now time.Time) error {
				return p.recordObject(req.URL.Path, req.Header, body, now.Sub(arrived))
			}
		}
		if err := record(body, answer, arrived, now); err != nil {
			p.errs.Add(1)
		}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(answer)
}

// publishBatchAnswer is the part of a PublishBatch answer the proxy reads.
type publishBatchAnswer struct {
	Successful []string `xml:"PublishBatchResult>Successful>member>Id"`
	Failed     []string `xml:"PublishBatchResult>Failed>member>Id"`
}

// record hands the entries of a PublishBatch request that the answer lists
// as Successful to the recorder; other actions are ignored.
func (p *snsProxy) record(request, answer []byte, arrived, at time.Time) error {
	form, err := url.ParseQuery(string(request))
	if err != nil || form.Get("Action") != "PublishBatch" {
		return nil // not a PublishBatch call: nothing to time
	}
	var a publishBatchAnswer
	if err := xml.Unmarshal(answer, &a); err != nil {
		return fmt.Errorf("PublishBatch answer: %w", err)
	}
	p.calls.Add(1)
	p.mu.Lock()
	p.durs = append(p.durs, at.Sub(arrived))
	p.mu.Unlock()
	p.failed.Add(int64(len(a.Failed)))
	ok := make(map[string]bool, len(a.Successful))
	for _, id := range a.Successful {
		ok[id] = true
	}
	accepted, sent := p.accepted.Load(), p.sent.Load()
	for i := 1; ; i++ {
		prefix := fmt.Sprintf("PublishBatchRequestEntries.member.%d.", i)
		id, has := form[prefix+"Id"]
		if !has {
			break
		}
		msg := []byte(form.Get(prefix + "Message"))
		if len(id) == 1 && ok[id[0]] {
			p.msgs.Add(1)
			p.msgBytes.Add(int64(len(msg)))
		}
		if ptr, err := s3pointer.Parse(msg); err == nil {
			p.mu.Lock()
			stored, ok := p.objects[ptr.Key]
			p.mu.Unlock()
			if !ok {
				return fmt.Errorf("PublishBatch: a pointer to %s, which was not stored through the proxy", ptr)
			}
			msg = stored
		}
		sent.add(msg, "", arrived)
		if len(id) == 1 && ok[id[0]] {
			accepted.add(msg, "", at)
		}
	}
	return nil
}

// recordObject notes an S3 PutObject (path-style: /bucket/key) answered
// 200: the stored event's id and commit time by key, its size and the
// call's duration. Other PUTs (no event in the body) are ignored.
func (p *snsProxy) recordObject(path string, h http.Header, body []byte, took time.Duration) error {
	_, key, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !ok {
		return nil
	}
	if strings.Contains(h.Get("Content-Encoding"), "aws-chunked") || strings.HasPrefix(h.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		var err error
		if body, err = unchunk(body); err != nil {
			return fmt.Errorf("PutObject %s: %w", key, err)
		}
	}
	// Only the envelope's first fields are needed; the data may be large.
	var ev struct {
		ID   string `json:"id"`
		Time string `json:"time"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil // not an event (a probe)
	}
	for dec.More() && (ev.ID == "" || ev.Time == "") {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("PutObject %s: %w", key, err)
		}
		var dst any = new(json.RawMessage)
		switch t {
		case "id":
			dst = &ev.ID
		case "time":
			dst = &ev.Time
		}
		if err := dec.Decode(dst); err != nil {
			return fmt.Errorf("PutObject %s: %w", key, err)
		}
	}
	if ev.ID == "" {
		return nil
	}
	stub, _ := json.Marshal(ev)
	p.mu.Lock()
	p.objects[key] = stub
	p.puts = append(p.puts, took)
	p.mu.Unlock()
	p.putBytes.Add(int64(len(body)))
	return nil
}

// avgMessageBytes is the average size of the messages SNS accepted.
func (p *snsProxy) avgMessageBytes() int {
	if n := p.msgs.Load(); n > 0 {
		return int(p.msgBytes.Load() / n)
	}
	return 0
}

// putTimes returns the durations of the PutObject calls of events, and
// how many bytes they stored.
func (p *snsProxy) putTimes() ([]time.Duration, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.puts), p.putBytes.Load()
}

// unchunk decodes an aws-chunked body: chunks "hex-size[;ext]\r\n data
// \r\n" up to a zero-size chunk (trailers after it are ignored).
func unchunk(b []byte) ([]byte, error) {
	var out []byte
	for {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return nil, errors.New("aws-chunked body: no chunk header")
		}
		hex, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(hex), 16, 64)
		if err != nil || n < 0 || n > int64(len(rest)) {
			return nil, fmt.Errorf("aws-chunked body: bad chunk size %q", hex)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, rest[:n]...)
		b = bytes.TrimPrefix(rest[n:], []byte("\r\n"))
	}
}
