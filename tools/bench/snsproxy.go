package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
}

func startSNSProxy(upstream string) (*snsProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &snsProxy{url: "http://" + l.Addr().String(), upstream: strings.TrimSuffix(upstream, "/"),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
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
		if err := p.record(body, answer, arrived, now); err != nil {
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
		sent.add(msg, "", arrived)
		if len(id) == 1 && ok[id[0]] {
			accepted.add(msg, "", at)
		}
	}
	return nil
}
