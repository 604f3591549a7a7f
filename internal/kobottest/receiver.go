// Package kobottest is the stand-in for Kobot's webhook endpoint: the one
// the sink's tests push to, the demo's kobot-receiver serves and the fault
// suite breaks on purpose. It verifies every push's Standard Webhooks
// signature (as Kobot must, see docs/kobot.md), checks that the body is a
// CloudEvent for a Kobot account whose id is the webhook-id, and accounts
// for every (kobotaccount, event id) pair: processed once, a duplicate the
// sink should have prevented, or a duplicate only Kobot's own
// deduplication can absorb (the first answer came too late for the sink).
//
// Fault knobs: Down/Up (connection refused), Slow (answer after the sink's
// timeout, while still applying the push), Fail (one status for every
// push), Reject (a status for one account), Respond (a status per push).
package kobottest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

// Path is where a started receiver takes pushes.
const Path = "/webhooks/baitoru"

// maxBody bounds a push: an SNS message is at most 256 KiB, plus the
// kobotaccount attribute.
const maxBody = 1 << 20

// Options configure a Receiver. Secret is required.
type Options struct {
	Secret kobot.Secret
	// Verify checks a push's signature; by default kobot.Verify with
	// Secret and kobot.DefaultTolerance. The sink's tests pass the
	// verification code of the integration guide.
	Verify func(h http.Header, body []byte, now time.Time) error
	// OnReceipt, when set, is called (possibly concurrently) once per
	// push answered 2xx, before the answer is written.
	OnReceipt func(Receipt)
	// Record keeps every push with its body for Log (tests).
	Record bool
	// MaxPairs bounds the pairs remembered for duplicate detection and
	// Pairs, forgetting the oldest; 0 keeps them all (the fault suite
	// counts every one).
	MaxPairs int
	Log      *slog.Logger     // rejected pushes; nil discards
	Now      func() time.Time // nil: time.Now
}

// Request is one push as it arrived (Options.Record).
type Request struct {
	ID        string // the webhook-id header
	Account   string // kobotaccount of the body
	Body      []byte
	Event     map[string]any // the body parsed; nil when it is not a JSON object
	VerifyErr error          // the signature check's verdict
	At        time.Time
}

// Pair names one expected delivery: an event to a Kobot account.
type Pair struct {
	Account string
	EventID string
}

// Push is what the receiver knows about one pair.
type Push struct {
	CompanyID     string // data.company_id of the event (its JSON text)
	ApplicationID int64  // data.application_id, 0 if absent
	// First is when the receiver first processed the pair (answered 2xx).
	First time.Time
	// Processed counts the 2xx answers (the pair was applied this many
	// times without Kobot's own deduplication).
	Processed int
	// Late counts 2xx answers written after the sink had given up on the
	// request (its timeout passed): the sink saw a failure and retries.
	Late int
	// AfterAck counts 2xx answers to pushes that arrived after the sink
	// had already received a 2xx for this pair: duplicates the delivery
	// log is there to prevent (unless the sink died before writing it).
	AfterAck int
	// Refused counts non-2xx answers (faults).
	Refused int

	acked bool // an on-time 2xx was answered
}

// Duplicates returns the 2xx answers beyond the first, split into those
// the sink could have prevented (it had received a 2xx for the pair before)
// and those only Kobot's deduplication absorbs (every earlier 2xx reached
// the sink too late, so it retried).
func (p *Push) Duplicates() (afterAck, afterLate int) {
	if p.Processed <= 1 {
		return 0, 0
	}
	return p.AfterAck, p.Processed - 1 - p.AfterAck
}

// Receipt is what the receiver reports about one push it answered 2xx
// (the JSON lines of kobot-receiver -json).
type Receipt struct {
	ReceivedAt time.Time `json:"received_at"`
	ID         string    `json:"id"`
	Account    string    `json:"kobotaccount"`
	Type       string    `json:"type"`
	Table      string    `json:"table"`
	Op         string    `json:"op"`
	Subject    string    `json:"subject,omitempty"`
	CommitTime time.Time `json:"commit_time"`
	LatencyMS  float64   `json:"commit_to_receipt_ms"` // received_at − the event's time (its commit)
	Duplicate  bool      `json:"duplicate"`            // already processed for this account: acknowledged, not processed again
	// LSN is the event's commit position ("lsn" extension); Backfill names
	// the backfill of a read event ("backfill" extension).
	LSN      string          `json:"lsn,omitempty"`
	Backfill string          `json:"backfill,omitempty"`
	Data     json.RawMessage `json:"data"`
}

// Format is the one-line text form of a receipt:
//
//	12:00:00.207 baitoru.applications.insert id=0/16B3748-1 account=kobot-demo subject=1 commit→receipt 84.2ms {"application_id":…}
func Format(r Receipt) string {
	dup := ""
	if r.Duplicate {
		dup = " (duplicate, dropped)"
	}
	return fmt.Sprintf("%s %s id=%s account=%s subject=%s commit→receipt %.1fms%s %s",
		r.ReceivedAt.Local().Format("15:04:05.000"), r.Type, r.ID, r.Account, r.Subject, r.LatencyMS, dup, r.Data)
}

// Receiver is the endpoint: an http.Handler, or a server of its own with
// Start. Its methods are safe for concurrent use.
type Receiver struct {
	o Options

	mu         sync.Mutex
	addr       string
	srv        *http.Server
	conns      map[net.Conn]struct{}
	down       bool
	slow       time.Duration
	failStatus int            // answer this to every push when non-zero
	reject     map[string]int // account → status
	respond    func(r Request, n int) int
	pairs      map[Pair]*Push
	order      []Pair // insertion order, to forget the oldest (MaxPairs)
	log        []Request
	bad        []string // pushes that failed verification, and why
	requests   int
	inflight   int
}

// New returns a receiver; it serves nothing until mounted or started.
func New(o Options) *Receiver {
	if o.Verify == nil {
		key := o.Secret
		o.Verify = func(h http.Header, body []byte, now time.Time) error {
			return kobot.Verify(key, h, body, now, kobot.DefaultTolerance)
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Receiver{o: o, conns: map[net.Conn]struct{}{}, reject: map[string]int{}, pairs: map[Pair]*Push{}}
}

// Start listens on 127.0.0.1 on a free port and serves Path in the
// background until Close.
func (rv *Receiver) Start() error {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.addr != "" {
		return errors.New("kobottest: already started")
	}
	return rv.listenLocked("127.0.0.1:0")
}

func (rv *Receiver) listenLocked(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("kobottest: listen %s: %w", addr, err)
	}
	rv.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle(Path, rv)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, s http.ConnState) {
			rv.mu.Lock()
			defer rv.mu.Unlock()
			switch s {
			case http.StateNew:
				rv.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(rv.conns, c)
			}
		},
	}
	rv.srv = srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// URL is the push endpoint of a started receiver, the sink's
// sink.kobot.endpoint.
func (rv *Receiver) URL() string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return "http://" + rv.addr + Path
}

// Down makes a started endpoint unreachable (connection refused) until Up.
func (rv *Receiver) Down() {
	rv.mu.Lock()
	if rv.down || rv.srv == nil {
		rv.mu.Unlock()
		return
	}
	rv.down = true
	srv := rv.srv
	rv.srv = nil
	conns := make([]net.Conn, 0, len(rv.conns))
	for c := range rv.conns {
		conns = append(conns, c)
	}
	clear(rv.conns)
	rv.mu.Unlock()
	_ = srv.Close()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Up listens again on the same address.
func (rv *Receiver) Up() error {
	var err error
	for i := 0; i < 50; i++ {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		rv.mu.Lock()
		if !rv.down {
			rv.mu.Unlock()
			return nil
		}
		if err = rv.listenLocked(rv.addr); err == nil {
			rv.down = false
		}
		rv.mu.Unlock()
		if err == nil {
			return nil
		}
	}
	return err
}

// Close stops a started receiver.
func (rv *Receiver) Close() error {
	rv.Down()
	return nil
}

// Slow makes every push wait d before it is processed and answered 2xx
// (0 ends it). With d beyond the sink's sink.kobot.timeout the sink gives
// up first and retries, while Kobot still applies the push.
func (rv *Receiver) Slow(d time.Duration) {
	rv.mu.Lock()
	rv.slow = d
	rv.mu.Unlock()
}

// Fail answers status (e.g. 500) to every push without processing it;
// Fail(0) ends it.
func (rv *Receiver) Fail(status int) {
	rv.mu.Lock()
	rv.failStatus = status
	rv.mu.Unlock()
}

// Reject answers status (e.g. 400) to every push for account; status 0
// ends it.
func (rv *Receiver) Reject(account string, status int) {
	rv.mu.Lock()
	if status == 0 {
		delete(rv.reject, account)
	} else {
		rv.reject[account] = status
	}
	rv.mu.Unlock()
}

// Respond decides the status of every verified push that Fail and Reject
// leave alone (nil: 204). n is the push's 0-based index among all pushes
// received; f runs outside the receiver's lock (it may call Log, or
// sleep) after the push was recorded.
func (rv *Receiver) Respond(f func(r Request, n int) int) {
	rv.mu.Lock()
	rv.respond = f
	rv.mu.Unlock()
}

// Log returns every push received so far, in order (Options.Record).
func (rv *Receiver) Log() []Request {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]Request(nil), rv.log...)
}

// Pairs returns a copy of what was received, by pair.
func (rv *Receiver) Pairs() map[Pair]Push {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	out := make(map[Pair]Push, len(rv.pairs))
	for k, v := range rv.pairs {
		out[k] = *v
	}
	return out
}

// Bad returns the pushes that failed signature verification or were not
// CloudEvents for a Kobot account (must stay empty).
func (rv *Receiver) Bad() []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]string(nil), rv.bad...)
}

// Requests is the number of pushes received, faults included.
func (rv *Receiver) Requests() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.requests
}

// InFlight is the number of pushes being answered right now.
func (rv *Receiver) InFlight() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.inflight
}

// ServeHTTP handles one push.
func (rv *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		rv.badPush(w, http.StatusRequestEntityTooLarge, "read body: %v", err)
		return
	}
	now := rv.o.Now()
	req := Request{ID: r.Header.Get(kobot.HeaderID), Body: body, At: now}
	req.VerifyErr = rv.o.Verify(r.Header, body, now)
	var ev struct {
		ID       string          `json:"id"`
		Type     string          `json:"type"`
		Subject  string          `json:"subject"`
		Time     time.Time       `json:"time"`
		Table    string          `json:"table"`
		Op       string          `json:"op"`
		Account  string          `json:"kobotaccount"`
		LSN      string          `json:"lsn"`
		Backfill string          `json:"backfill"`
		Data     json.RawMessage `json:"data"`
	}
	// Only a verified body is looked at.
	parseErr := errors.New("not verified")
	if req.VerifyErr == nil {
		if parseErr = json.Unmarshal(body, &ev); parseErr == nil {
			_ = json.Unmarshal(body, &req.Event)
			req.Account = ev.Account
		}
	}

	rv.mu.Lock()
	n := rv.requests
	rv.requests++
	if rv.o.Record {
		rv.log = append(rv.log, req)
	}
	rv.mu.Unlock()

	switch {
	case req.VerifyErr != nil:
		rv.o.Log.Warn("rejected push: bad signature", "error", req.VerifyErr, "webhook_id", req.ID, "remote", r.RemoteAddr)
		rv.badPush(w, http.StatusUnauthorized, "webhook-id %s: %v", req.ID, req.VerifyErr)
		return
	case parseErr != nil || ev.ID == "" || ev.Account == "":
		rv.o.Log.Warn("rejected push: not a CloudEvent for a Kobot account", "error", parseErr, "webhook_id", req.ID)
		rv.badPush(w, http.StatusBadRequest, "not a CloudEvent for a Kobot account: %.200s", body)
		return
	case req.ID != ev.ID:
		rv.o.Log.Warn("rejected push: webhook-id differs from the event id", "webhook_id", req.ID, "id", ev.ID)
		rv.badPush(w, http.StatusBadRequest, "webhook-id %s differs from the event id %s", req.ID, ev.ID)
		return
	}
	pair := Pair{Account: ev.Account, EventID: ev.ID}

	rv.mu.Lock()
	rv.inflight++
	defer func() {
		rv.mu.Lock()
		rv.inflight--
		rv.mu.Unlock()
	}()
	slow, status, respond := rv.slow, rv.failStatus, rv.respond
	if status == 0 {
		status = rv.reject[ev.Account]
	}
	p := rv.pairLocked(pair, ev.Data)
	if status != 0 {
		p.Refused++
		rv.mu.Unlock()
		w.WriteHeader(status)
		return
	}
	rv.mu.Unlock()

	status = http.StatusNoContent
	if respond != nil {
		status = respond(req, n)
	}
	if status < 200 || status > 299 {
		rv.mu.Lock()
		p.Refused++
		rv.mu.Unlock()
		w.WriteHeader(status)
		return
	}
	if slow > 0 {
		time.Sleep(slow)
	}
	rv.mu.Lock()
	dup := p.Processed > 0
	p.Processed++
	if p.First.IsZero() {
		p.First = time.Now()
	}
	// The server cancels the request's context when the client closed
	// the connection: the sink timed out and will try again.
	late := r.Context().Err() != nil
	if p.acked {
		p.AfterAck++
	}
	if late {
		p.Late++
	} else {
		p.acked = true
	}
	rv.mu.Unlock()
	if rv.o.OnReceipt != nil {
		rc := Receipt{
			ReceivedAt: now.UTC(), ID: ev.ID, Account: ev.Account, Type: ev.Type, Table: ev.Table, Op: ev.Op,
			Subject: ev.Subject, CommitTime: ev.Time, Data: ev.Data, Duplicate: dup, LSN: ev.LSN, Backfill: ev.Backfill,
		}
		if !ev.Time.IsZero() {
			rc.LatencyMS = float64(now.Sub(ev.Time).Microseconds()) / 1000
		}
		rv.o.OnReceipt(rc)
	}
	w.WriteHeader(status)
}

// pairLocked returns the pair's record, creating it (and forgetting the
// oldest beyond MaxPairs).
func (rv *Receiver) pairLocked(pair Pair, data json.RawMessage) *Push {
	if p := rv.pairs[pair]; p != nil {
		return p
	}
	var d struct {
		CompanyID     json.RawMessage `json:"company_id"`
		ApplicationID int64           `json:"application_id"`
	}
	_ = json.Unmarshal(data, &d)
	p := &Push{CompanyID: string(d.CompanyID), ApplicationID: d.ApplicationID}
	rv.pairs[pair] = p
	if rv.o.MaxPairs > 0 {
		rv.order = append(rv.order, pair)
		if len(rv.order) > rv.o.MaxPairs {
			delete(rv.pairs, rv.order[0])
			rv.order = rv.order[1:]
		}
	}
	return p
}

func (rv *Receiver) badPush(w http.ResponseWriter, status int, format string, a ...any) {
	rv.mu.Lock()
	rv.bad = append(rv.bad, fmt.Sprintf(format, a...))
	rv.mu.Unlock()
	http.Error(w, "bad push", status)
}
