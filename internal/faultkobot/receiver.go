// Package faultkobot is a Kobot webhook endpoint with programmable faults,
// for the reliability suite (tools/reliability): it verifies every push's
// Standard Webhooks signature, records it by (kobotaccount, event id), and
// can be made slow (answering after the sink's timeout), down (connection
// refused), failing (500 to every push), or rejecting one account (a
// permanent 4xx). Its accounting tells apart a push Kobot processed once,
// a duplicate the sink should have prevented, and a duplicate that only
// Kobot's own deduplication can absorb (the first answer came too late for
// the sink to see it).
package faultkobot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

// Path is where the receiver takes pushes.
const Path = "/webhooks/baitoru"

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

// Receiver is the endpoint. Its methods are safe for concurrent use.
type Receiver struct {
	key kobot.Secret

	mu         sync.Mutex
	addr       string
	srv        *http.Server
	conns      map[net.Conn]struct{}
	down       bool
	slow       time.Duration
	failStatus int            // answer this to every push when non-zero
	reject     map[string]int // account → status
	pairs      map[Pair]*Push
	bad        []string // pushes that failed verification, and why
	requests   int
	inflight   int
}

// New returns a receiver verifying pushes with secret ("whsec_...").
func New(secret string) (*Receiver, error) {
	key, err := kobot.ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	return &Receiver{key: key, conns: map[net.Conn]struct{}{}, reject: map[string]int{}, pairs: map[Pair]*Push{}}, nil
}

// Start listens on 127.0.0.1 on a free port and serves in the background
// until Close.
func (rv *Receiver) Start() error {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.addr != "" {
		return errors.New("faultkobot: already started")
	}
	return rv.listenLocked("127.0.0.1:0")
}

func (rv *Receiver) listenLocked(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("faultkobot: listen %s: %w", addr, err)
	}
	rv.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, rv.serve)
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

// URL is the push endpoint, the sink's sink.kobot.endpoint.
func (rv *Receiver) URL() string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return "http://" + rv.addr + Path
}

// Down makes the endpoint unreachable (connection refused) until Up.
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

// Pushes returns a copy of what was received, by pair.
func (rv *Receiver) Pushes() map[Pair]Push {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	out := make(map[Pair]Push, len(rv.pairs))
	for k, v := range rv.pairs {
		out[k] = *v
	}
	return out
}

// Bad returns the pushes that failed signature verification or were not
// CloudEvents for Kobot (must stay empty).
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

// Close stops the receiver.
func (rv *Receiver) Close() error {
	rv.Down()
	return nil
}

func (rv *Receiver) badPush(w http.ResponseWriter, status int, format string, a ...any) {
	rv.mu.Lock()
	rv.bad = append(rv.bad, fmt.Sprintf(format, a...))
	rv.mu.Unlock()
	http.Error(w, "bad push", status)
}

func (rv *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		rv.badPush(w, http.StatusRequestEntityTooLarge, "read body: %v", err)
		return
	}
	if err := kobot.Verify(rv.key, r.Header, body, time.Now(), kobot.DefaultTolerance); err != nil {
		rv.badPush(w, http.StatusUnauthorized, "webhook-id %s: %v", r.Header.Get(kobot.HeaderID), err)
		return
	}
	var ev struct {
		ID      string `json:"id"`
		Account string `json:"kobotaccount"`
		Data    struct {
			CompanyID     json.RawMessage `json:"company_id"`
			ApplicationID int64           `json:"application_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.Account == "" {
		rv.badPush(w, http.StatusBadRequest, "not a CloudEvent for a Kobot account: %.200s", body)
		return
	}
	if h := r.Header.Get(kobot.HeaderID); h != ev.ID {
		rv.badPush(w, http.StatusBadRequest, "webhook-id %s differs from the event id %s", h, ev.ID)
		return
	}
	pair := Pair{Account: ev.Account, EventID: ev.ID}

	rv.mu.Lock()
	rv.requests++
	rv.inflight++
	defer func() {
		rv.mu.Lock()
		rv.inflight--
		rv.mu.Unlock()
	}()
	slow, fail, reject := rv.slow, rv.failStatus, rv.reject[ev.Account]
	p := rv.pairs[pair]
	if p == nil {
		p = &Push{CompanyID: string(ev.Data.CompanyID), ApplicationID: ev.Data.ApplicationID}
		rv.pairs[pair] = p
	}
	status := fail
	if status == 0 {
		status = reject
	}
	if status != 0 {
		p.Refused++
		rv.mu.Unlock()
		w.WriteHeader(status)
		return
	}
	rv.mu.Unlock()

	if slow > 0 {
		time.Sleep(slow)
	}
	rv.mu.Lock()
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
	w.WriteHeader(http.StatusNoContent)
}
