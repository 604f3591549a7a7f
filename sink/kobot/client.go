// Package kobot pushes events to Kobot over HTTP, signed per Standard
// Webhooks 1.0, and verifies such signatures. Client implements the sink's
// push port, sink.Pusher.
//
// A push is one POST of the CloudEvent JSON with a "kobotaccount" extension
// attribute added (see Payload), carrying the headers webhook-id (the event
// id), webhook-timestamp and webhook-signature. 2xx is success; 408, 429, 5xx,
// timeouts and connection errors are retryable; every other status is a
// permanent rejection. A failed attempt carries its sink.PushProblem, and
// its error says what is wrong in the operator's terms (a wrong secret, a
// wrong path, an untrusted certificate, ...) and ends with the fix.
package kobot

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v5"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/sink"
)

// ExtensionAccount is the CloudEvents extension attribute naming the Kobot
// account a push is for.
const ExtensionAccount = "kobotaccount"

// ContentType of every push: CloudEvents structured mode.
const ContentType = "application/cloudevents+json"

// Defaults for zero config values.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxAttempts  = 3
	DefaultRetryInitial = 200 * time.Millisecond
	DefaultRetryMax     = 5 * time.Second
)

// Client pushes to one Kobot endpoint. It is safe for concurrent use.
type Client struct {
	endpoint    string
	key         Secret
	transport   http.RoundTripper
	pool        *pool     // for a plain-http endpoint with the default client: pushes skip transport
	redacted    string    // endpoint without its password, for errors
	auth        string    // Authorization of every push: basic auth from the endpoint's userinfo, or ""
	macs        sync.Pool // of hash.Hash: HMAC-SHA256 keyed with key
	timeout     time.Duration
	maxAttempts int
	initial     time.Duration
	max         time.Duration
	now         func() time.Time
	observe     sink.PushObserver
}

var _ sink.Pusher = (*Client)(nil)

// Observe makes the client tell o about every attempt (for metrics). Call
// it before the client is used.
func (c *Client) Observe(o sink.PushObserver) { c.observe = o }

// New returns a client for cfg. hc may be nil: then pushes to a plain-http
// endpoint (not behind a proxy from the environment) go over the client's
// own keep-alive connections (see pool), and the others over a transport
// tuned for many concurrent pushes to one host. Pushes go straight to hc's
// Transport (nil: http.DefaultTransport): they never follow redirects,
// carry no cookies and are bounded by kobot.timeout, whatever hc's
// CheckRedirect, Jar and Timeout (http.Client's per-request work, a copy
// of the headers for redirects, is what the sink's push path does not
// need).
func New(cfg config.Kobot, hc *http.Client) (*Client, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("kobot endpoint is empty")
	}
	key, err := ParseSecret(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("kobot secret: %w", err)
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("kobot endpoint: %w", err)
	}
	var pl *pool
	if hc == nil && u.Scheme == "http" && u.Host != "" && !proxied(u) {
		pl = newPool(u, key)
	}
	if hc == nil {
		hc = NewHTTPClient()
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	cl := &Client{
		endpoint:    cfg.Endpoint,
		key:         key,
		transport:   rt,
		pool:        pl,
		redacted:    u.Redacted(),
		auth:        basicAuth(u.User),
		timeout:     cfg.Timeout,
		maxAttempts: cfg.MaxAttempts,
		initial:     cfg.Retry.Initial,
		max:         cfg.Retry.Max,
		now:         time.Now,
	}
	if cl.timeout <= 0 {
		cl.timeout = DefaultTimeout
	}
	if cl.maxAttempts <= 0 {
		cl.maxAttempts = DefaultMaxAttempts
	}
	if cl.initial <= 0 {
		cl.initial = DefaultRetryInitial
	}
	if cl.max < cl.initial {
		cl.max = max(DefaultRetryMax, cl.initial)
	}
	return cl, nil
}

// NewHTTPClient returns an HTTP client whose transport keeps enough idle
// connections to one host for concurrent consumers.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 512
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: t}
}

// Push pushes r, retrying retryable failures with exponential backoff
// (honouring Retry-After when it is not longer than the configured maximum
// backoff) up to kobot.max_attempts. The first attempt is always made; once
// ctx is done no further attempt starts, but an attempt under way finishes
// (bounded by kobot.timeout), so a shutdown does not cut a push in half.
func (c *Client) Push(ctx context.Context, r sink.PushRequest) sink.PushResult {
	pl, err := newPayload(r.Event, r.Account)
	if err == nil && !validHeaderValue(r.EventID) {
		err = fmt.Errorf("event id %q cannot be a webhook-id header: it must be printable ASCII", r.EventID)
	}
	if err != nil {
		return sink.PushResult{PushAttempt: sink.PushAttempt{Class: sink.PushRejected, Err: err}}
	}
	var body []byte // for the transport: made once for every attempt
	if c.pool == nil {
		body = pl.appendTo(make([]byte, 0, pl.len()))
	}
	start := c.now()
	var res sink.PushResult
	var bo *backoff.ExponentialBackOff // made at the first retry: most pushes need none
	for attempt := 1; ; attempt++ {
		if c.pool != nil {
			res.PushAttempt = c.sendPooled(r.EventID, pl)
		} else {
			res.PushAttempt = c.send(ctx, r.EventID, body)
		}
		res.Attempts = attempt
		if c.observe != nil {
			c.observe.Attempted(res.PushAttempt)
		}
		if res.Class != sink.PushRetryable || attempt >= c.maxAttempts {
			break
		}
		if bo == nil {
			bo = retryBackoff(c.initial, c.max)
		}
		wait := bo.NextBackOff()
		if res.RetryAfter > 0 {
			if res.RetryAfter > c.max {
				break // longer than we wait in process: leave it to redelivery
			}
			wait = res.RetryAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			res.Latency = c.now().Sub(start)
			return res
		case <-t.C:
		}
	}
	res.Latency = c.now().Sub(start)
	return res
}

// retryBackoff returns the waits between the attempts of one push:
// exponential with equal jitter, the n-th wait drawn uniformly from
// [d/2, d] where d = min(initial·2^(n-1), maxWait). backoff randomises
// symmetrically around its interval (interval·[1-f, 1+f]), so the interval
// is ¾·d and the factor ⅓: ¾·d·[⅔, 4⁄3] = [d/2, d]. No wait exceeds maxWait,
// which ClaimLeaseFor counts on.
func retryBackoff(initial, maxWait time.Duration) *backoff.ExponentialBackOff {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     initial * 3 / 4,
		RandomizationFactor: 1.0 / 3,
		Multiplier:          2,
		MaxInterval:         maxWait * 3 / 4,
	}
	bo.Reset()
	return bo
}

// send makes one attempt. Its request runs under a context detached from
// ctx's cancellation and bounded by the client's timeout.
func (c *Client) send(ctx context.Context, id string, body []byte) sink.PushAttempt {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return sink.PushAttempt{Class: sink.PushRejected, Err: fmt.Errorf("build request: %w", err)}
	}
	now := c.now()
	ts := strconv.FormatInt(now.Unix(), 10)
	// One map and one backing array instead of a Header.Set (a key
	// canonicalisation and a slice) per header; the keys are the canonical
	// forms Set would store.
	vals := [...]string{ContentType, userAgent, id, ts, c.sign(id, ts, body)}
	req.Header = http.Header{
		"Content-Type":      vals[0:1:1],
		"User-Agent":        vals[1:2:2],
		"Webhook-Id":        vals[2:3:3],
		"Webhook-Timestamp": vals[3:4:4],
		"Webhook-Signature": vals[4:5:5],
	}
	if c.auth != "" {
		req.Header["Authorization"] = []string{c.auth}
	}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return c.transportFailure(err, c.now().Sub(now))
	}
	defer resp.Body.Close()
	a, _ := c.answer(resp, len(body), now)
	return a
}

// transportFailure is an attempt that got no answer (err).
func (c *Client) transportFailure(err error, d time.Duration) sink.PushAttempt {
	// As http.Client would report it: Post "<endpoint>": <cause>,
	// without the endpoint's password.
	problem, terr := c.transportError(&url.Error{Op: "Post", URL: c.redacted, Err: err})
	return sink.PushAttempt{Class: sink.PushRetryable, Err: terr, Problem: problem, Duration: d}
}

// answer classifies Kobot's answer resp to a push of size bytes started at
// now, reading its body (up to 64 KiB, so the connection can be reused);
// bodyDone says whether the body was read to its end.
func (c *Client) answer(resp *http.Response, size int, now time.Time) (a sink.PushAttempt, bodyDone bool) {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		bodyDone = drain(resp.Body, 64<<10)
		return sink.PushAttempt{Class: sink.PushDelivered, Status: resp.StatusCode, Duration: c.now().Sub(now)}, bodyDone
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	bodyDone = drain(resp.Body, 64<<10)
	r := sink.PushAttempt{Status: resp.StatusCode, Duration: c.now().Sub(now)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		r.Class = sink.PushRetryable
		r.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	default:
		r.Class = sink.PushRejected
	}
	se := &StatusError{Status: resp.StatusCode, Body: cleanSnippet(snippet), Size: size}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		se.Location = resp.Header.Get("Location")
	}
	r.Err, r.Problem = se, se.Problem()
	return r, bodyDone
}

// basicAuth is the Authorization value http.Client sends for a URL with
// userinfo, or "" without.
func basicAuth(u *url.Userinfo) string {
	if u == nil {
		return ""
	}
	pw, _ := u.Password()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw))
}

// sign returns the webhook-signature header value of one push (signature),
// with an HMAC from the client's pool: a new one costs allocations and the
// hashing of the key's two padded blocks.
func (c *Client) sign(id, ts string, body []byte) string {
	h, ok := c.macs.Get().(hash.Hash)
	if ok {
		h.Reset()
	} else {
		h = hmac.New(sha256.New, c.key)
	}
	var sum [sha256.Size]byte
	writeSigned(h, id, ts, body)
	out := h.Sum(sum[:0])
	c.macs.Put(h)
	return signaturePrefix + base64.StdEncoding.EncodeToString(out)
}

// userAgent is the User-Agent of pushes.
const userAgent = "baitoru-cdc-sink"

// StatusError is a non-2xx answer from Kobot. Its message says what the
// answer means for the operator and the fix.
type StatusError struct {
	Status   int
	Body     string // start of the response body, cleaned for logs
	Size     int    // bytes of the push's body
	Location string // a redirect's target
}

// Problem is what the answer means (sink.PushProblem).
func (e *StatusError) Problem() sink.PushProblem {
	switch s := e.Status; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return sink.ProblemSignature
	case s == http.StatusNotFound || s == http.StatusMethodNotAllowed:
		return sink.ProblemNotFound
	case s == http.StatusRequestEntityTooLarge:
		return sink.ProblemTooLarge
	case s == http.StatusTooManyRequests:
		return sink.ProblemRateLimited
	case s == http.StatusRequestTimeout || s >= 500:
		return sink.ProblemServer
	case s >= 300 && s < 400:
		return sink.ProblemRedirect
	}
	return sink.ProblemRejected
}

func (e *StatusError) Error() string {
	answer := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		answer += ": " + e.Body
	}
	p := e.Problem()
	var what string
	switch p {
	case sink.ProblemSignature:
		what = "Kobot refused the push's signature or credentials"
	case sink.ProblemNotFound:
		what = "Kobot has no webhook at sink.kobot.endpoint's path"
	case sink.ProblemTooLarge:
		what = fmt.Sprintf("Kobot refused the event as too large (%d bytes)", e.Size)
	case sink.ProblemRateLimited:
		what = "Kobot is rate-limiting the sink"
	case sink.ProblemServer:
		what = "Kobot failed to take the event"
	case sink.ProblemRedirect:
		what = "Kobot answered with a redirect"
		if e.Location != "" {
			what += " to " + e.Location
		}
	default:
		what = "Kobot rejected the event"
	}
	return fmt.Sprintf("%s (%s); fix: %s", what, answer, p.Fix())
}

// transportError is an attempt that got no answer: what went wrong, in the
// operator's terms, and the fix.
func (c *Client) transportError(err error) (sink.PushProblem, error) {
	var (
		dnsErr    *net.DNSError
		opErr     *net.OpError
		unknown   x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		tlsVErr   *tls.CertificateVerificationError
		tlsRecord tls.RecordHeaderError
		ne        net.Error
	)
	host := c.endpoint
	if u, perr := url.Parse(c.endpoint); perr == nil {
		host = u.Host
	}
	var p sink.PushProblem
	var what string
	switch {
	case errors.As(err, &dnsErr):
		p, what = sink.ProblemDNS, fmt.Sprintf("Kobot's host name %q does not resolve (%v)", dnsErr.Name, dnsErr.Err)
	case errors.As(err, &unknown), errors.As(err, &hostErr), errors.As(err, &invalid), errors.As(err, &tlsVErr):
		p, what = sink.ProblemTLS, fmt.Sprintf("Kobot's TLS certificate at %s is not trusted (%v)", host, tlsCause(err))
	case errors.As(err, &tlsRecord), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		p, what = sink.ProblemTLS, fmt.Sprintf("%s does not speak TLS (the endpoint is https:, the server answered plain HTTP): use http: in sink.kobot.endpoint, or Kobot's TLS port", host)
	case errors.As(err, &ne) && ne.Timeout():
		p, what = sink.ProblemTimeout, fmt.Sprintf("Kobot at %s did not answer within sink.kobot.timeout (%s)", host, c.timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		p, what = sink.ProblemUnreachable, fmt.Sprintf("nothing accepts connections at %s (connection refused)", host)
	case errors.As(err, &opErr):
		p, what = sink.ProblemUnreachable, fmt.Sprintf("cannot reach Kobot at %s (%v)", host, opErr.Err)
	default:
		p, what = sink.ProblemUnreachable, fmt.Sprintf("no answer from Kobot at %s (%v)", host, err)
	}
	return p, fmt.Errorf("%s; fix: %s", what, p.Fix())
}

// tlsCause is the certificate verifier's words, without the request's.
func tlsCause(err error) error {
	var tlsVErr *tls.CertificateVerificationError
	if errors.As(err, &tlsVErr) && tlsVErr.Err != nil {
		return tlsVErr.Err
	}
	return err
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 if absent or
// malformed. It is capped at 12 hours (the longest SQS visibility timeout).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, 43200)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), 12*time.Hour)
}

// cleanSnippet keeps printable text of a response body for error messages.
func cleanSnippet(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 && sb.Len() < 200 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		switch {
		case r == utf8.RuneError && n <= 1:
			sb.WriteByte('?')
		case r < 0x20 || r == 0x7f:
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	return strings.TrimSpace(sb.String())
}

// Payload returns the body pushed to Kobot: the CloudEvent object event with
// the extension attribute "kobotaccount": account appended as its last
// member. event must be a JSON object without a kobotaccount member (the
// sink's event parser guarantees both); the rest of it is kept byte for byte.
func Payload(event []byte, account string) ([]byte, error) {
	p, err := newPayload(event, account)
	if err != nil {
		return nil, err
	}
	return p.appendTo(make([]byte, 0, p.len())), nil
}

// payload is Payload's body in parts, so that a push writes it into its
// request without a copy of its own.
type payload struct {
	head    []byte // the event up to its closing brace
	comma   bool   // the event has members: a comma before kobotaccount
	account []byte // the account as a JSON string
}

// accountMember starts the appended member.
const accountMember = `"` + ExtensionAccount + `":`

func newPayload(event []byte, account string) (payload, error) {
	ev := bytes.TrimRight(event, " \t\r\n")
	if len(ev) < 2 || ev[len(ev)-1] != '}' {
		return payload{}, errors.New("event is not a JSON object")
	}
	quoted, err := json.Marshal(account)
	if err != nil {
		return payload{}, err
	}
	return payload{head: ev[:len(ev)-1], comma: len(bytes.TrimSpace(ev[1:len(ev)-1])) > 0, account: quoted}, nil
}

func (p payload) len() int {
	n := len(p.head) + len(accountMember) + len(p.account) + 1
	if p.comma {
		n++
	}
	return n
}

func (p payload) appendTo(b []byte) []byte {
	b = append(b, p.head...)
	if p.comma {
		b = append(b, ',')
	}
	b = append(b, accountMember...)
	b = append(b, p.account...)
	return append(b, '}')
}

// sendPooled makes one attempt over the client's own connections (pool):
// the request is written into the connection's buffer, signed with its
// HMAC, and bounded by the client's timeout from dial to answer.
func (c *Client) sendPooled(id string, pl payload) sink.PushAttempt {
	now := c.now()
	size := pl.len()
	build := func(cn *conn) {
		cn.body = pl.appendTo(cn.body[:0])
		cn.signed = append(cn.signed[:0], id...)
		cn.signed = append(cn.signed, '.')
		cn.signed = strconv.AppendInt(cn.signed, now.Unix(), 10)
		cn.signed = append(cn.signed, '.')
		cn.mac.Reset()
		cn.mac.Write(cn.signed)
		cn.mac.Write(cn.body)
		var sum [sha256.Size]byte
		b := append(cn.req[:0], "POST "...)
		b = append(b, c.pool.uri...)
		b = append(b, " HTTP/1.1\r\nHost: "...)
		b = append(b, c.pool.host...)
		b = append(b, "\r\nUser-Agent: "+userAgent+"\r\nContent-Type: "+ContentType+"\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(size), 10)
		b = append(b, "\r\nWebhook-Id: "...)
		b = append(b, id...)
		b = append(b, "\r\nWebhook-Timestamp: "...)
		b = append(b, cn.signed[len(id)+1:len(cn.signed)-1]...)
		b = append(b, "\r\nWebhook-Signature: "+signaturePrefix...)
		b = base64.StdEncoding.AppendEncode(b, cn.mac.Sum(sum[:0]))
		if c.auth != "" {
			b = append(b, "\r\nAuthorization: "...)
			b = append(b, c.auth...)
		}
		b = append(b, "\r\n\r\n"...)
		cn.req = append(b, cn.body...)
	}
	cn, resp, err := c.pool.roundTrip(time.Now().Add(c.timeout), build)
	if err != nil {
		return c.transportFailure(err, c.now().Sub(now))
	}
	a, done := c.answer(resp, size, now)
	c.pool.finish(cn, resp, done)
	return a
}

// validHeaderValue says whether s can be a header value as it is: printable
// ASCII (the sink's event parser allows no other event id).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// proxied says whether the environment (HTTP_PROXY, NO_PROXY) sends
// requests to u through a proxy, which the pool does not speak to.
func proxied(u *url.URL) bool {
	p, err := http.ProxyFromEnvironment(&http.Request{URL: u})
	return err != nil || p != nil
}
