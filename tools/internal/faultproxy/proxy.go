// Package faultproxy is an HTTP reverse proxy that stands between
// baitoru-cdc and the SNS/SQS emulator and injects the faults of a real
// network and of a real AWS endpoint: it can refuse connections (the
// endpoint is unreachable), or answer a fraction of the calls with AWS's
// "slow down" error (HTTP 400, code Throttling) or with 503 Service
// Unavailable, without forwarding them. The reliability suite
// (tools/reliability) points the connector's sns.endpoint and the sink's
// sink.sqs.endpoint at it.
//
// Errors are written in the protocol of the call: SNS's query protocol
// (form-encoded request, XML error) and the AWS JSON protocol of SQS
// (X-Amz-Target header, JSON error with the x-amzn-query-error header), so
// the SDK clients parse the error code as they would from AWS.
package faultproxy

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats counts what the proxy did with the calls it received.
type Stats struct {
	Forwarded   int64 // passed to the upstream
	Throttled   int64 // answered 400 Throttling
	Unavailable int64 // answered 503
	Refusals    int   // times the proxy stopped accepting connections
}

// Proxy forwards HTTP requests to one upstream and injects faults. Its
// methods are safe for concurrent use. Start it once; Close it when done.
type Proxy struct {
	upstream *url.URL
	log      *slog.Logger
	rp       *httputil.ReverseProxy

	forwarded, throttled, unavailable atomic.Int64

	mu       sync.Mutex
	addr     string // host:port, fixed by the first Start
	ln       net.Listener
	srv      *http.Server
	conns    map[net.Conn]struct{}
	refused  bool
	refusals int
	fraction float64 // of calls answered with an error
	rnd      *rand.Rand
	closed   bool
}

// New returns a proxy to upstream (e.g. "http://127.0.0.1:4566"). It does
// not listen until Start.
func New(upstream string, log *slog.Logger) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: upstream %q is not an http(s) URL", upstream)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		upstream: u,
		log:      log,
		conns:    map[net.Conn]struct{}{},
		rnd:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the emulator builds queue URLs from Host
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The upstream itself is down: the client sees a 502, as
			// behind a real load balancer.
			p.log.Debug("faultproxy: upstream error", "error", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return p, nil
}

// Start listens on 127.0.0.1 on a free port and serves in the background
// until Close.
func (p *Proxy) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil || p.addr != "" {
		return errors.New("faultproxy: already started")
	}
	return p.listenLocked("127.0.0.1:0")
}

func (p *Proxy) listenLocked(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("faultproxy: listen %s: %w", addr, err)
	}
	p.ln = ln
	p.addr = ln.Addr().String()
	srv := &http.Server{
		Handler:           http.HandlerFunc(p.serve),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, s http.ConnState) {
			p.mu.Lock()
			defer p.mu.Unlock()
			switch s {
			case http.StateNew:
				p.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(p.conns, c)
			}
		},
	}
	p.srv = srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// URL is the proxy's base URL, "http://127.0.0.1:<port>"; it stays the same
// across Refuse and Restore.
func (p *Proxy) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://" + p.addr
}

// Refuse makes the endpoint unreachable: the proxy stops listening and
// closes every open connection, so calls under way fail and new ones get
// "connection refused" until Restore.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	if p.refused || p.srv == nil {
		p.mu.Unlock()
		return
	}
	p.refused = true
	p.refusals++
	srv := p.srv
	p.srv, p.ln = nil, nil
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	clear(p.conns)
	p.mu.Unlock()
	// Outside the lock: closing runs the ConnState hook.
	_ = srv.Close() // the listener and the connections it tracks
	for _, c := range conns {
		_ = c.Close()
	}
}

// Restore listens again on the same port and clears every fault.
func (p *Proxy) Restore() error {
	var err error
	// The port was ours a moment ago; retry briefly in case the kernel has
	// not released it yet.
	for i := 0; i < 50; i++ {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		p.mu.Lock()
		p.fraction = 0
		switch {
		case p.closed:
			err = errors.New("faultproxy: closed")
		case !p.refused:
			err = nil
		default:
			if err = p.listenLocked(p.addr); err == nil {
				p.refused = false
			}
		}
		done := err == nil || p.closed
		p.mu.Unlock()
		if done {
			return err
		}
	}
	return err
}

// Throttle answers the given fraction (0..1) of calls, chosen at random,
// without forwarding them: half of those with HTTP 400 and the error code
// Throttling, half with 503 Service Unavailable. Throttle(0) ends it.
func (p *Proxy) Throttle(fraction float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fraction = min(max(fraction, 0), 1)
}

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	refusals := p.refusals
	p.mu.Unlock()
	return Stats{
		Forwarded:   p.forwarded.Load(),
		Throttled:   p.throttled.Load(),
		Unavailable: p.unavailable.Load(),
		Refusals:    refusals,
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	srv := p.srv
	p.srv, p.ln = nil, nil
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	clear(p.conns)
	p.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}

// fault decides the fate of one call: 0 forward, 1 throttle, 2 unavailable.
func (p *Proxy) fault() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fraction <= 0 || p.rnd.Float64() >= p.fraction {
		return 0
	}
	return 1 + p.rnd.IntN(2)
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	switch p.fault() {
	case 1:
		p.throttled.Add(1)
		writeError(w, r, http.StatusBadRequest, "Sender", "Throttling", "Rate exceeded")
	case 2:
		p.unavailable.Add(1)
		writeError(w, r, http.StatusServiceUnavailable, "Receiver", "ServiceUnavailable", "Service is unavailable; try again later")
	default:
		p.forwarded.Add(1)
		p.rp.ServeHTTP(w, r)
	}
}

// writeError answers in the protocol of the request: AWS JSON (SQS) when it
// carries X-Amz-Target, the query protocol's XML (SNS) otherwise.
func writeError(w http.ResponseWriter, r *http.Request, status int, fault, code, msg string) {
	reqID := fmt.Sprintf("faultproxy-%d", time.Now().UnixNano())
	w.Header().Set("x-amzn-RequestId", reqID)
	if r.Header.Get("X-Amz-Target") != "" || strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json") {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("x-amzn-query-error", code+";"+fault)
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#%s","message":%q}`, code, msg)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		fault, code, msg, reqID)
}
