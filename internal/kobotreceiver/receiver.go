// Package kobotreceiver is a reference Kobot endpoint for the sink's
// pushes, used by tools/kobot-receiver and the demo: it verifies each push's
// Standard Webhooks signature with kobot.Verify, drops duplicates by
// (kobotaccount, event id), and reports every accepted push as a Receipt
// with its commit→receipt latency.
package kobotreceiver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/baitoru/baitoru-cdc/sink/kobot"
)

// maxBody bounds a push: an SNS message is at most 256 KiB, plus the
// kobotaccount attribute.
const maxBody = 512 << 10

// Receipt is what the receiver reports about one verified push (the JSON
// lines of kobot-receiver -json).
type Receipt struct {
	ReceivedAt time.Time       `json:"received_at"`
	ID         string          `json:"id"`
	Account    string          `json:"kobotaccount"`
	Type       string          `json:"type"`
	Table      string          `json:"table"`
	Op         string          `json:"op"`
	Subject    string          `json:"subject,omitempty"`
	CommitTime time.Time       `json:"commit_time"`
	LatencyMS  float64         `json:"commit_to_receipt_ms"` // received_at − the event's time (its commit)
	Duplicate  bool            `json:"duplicate"`            // already received for this account: acknowledged, not processed again
	Data       json.RawMessage `json:"data"`
}

// Receiver is a reference Kobot endpoint: it verifies the Standard
// Webhooks signature of every push (401 when it does not match, so the sink
// retries and then dead-letters), answers 204, drops duplicates by
// (kobotaccount, event id), and hands each receipt to onReceipt. Safe for
// concurrent use.
type Receiver struct {
	key       kobot.Secret
	tolerance time.Duration
	now       func() time.Time
	log       *slog.Logger
	onReceipt func(Receipt)

	mu   sync.Mutex
	seen map[[2]string]struct{}
	fifo [][2]string // insertion order, to forget the oldest
}

// maxSeen bounds the duplicate filter's memory.
const maxSeen = 100_000

// New returns a receiver verifying with key; onReceipt is called, possibly
// concurrently, once per accepted push before it is answered.
func New(key kobot.Secret, log *slog.Logger, onReceipt func(Receipt)) *Receiver {
	return &Receiver{key: key, tolerance: kobot.DefaultTolerance, now: time.Now, log: log, onReceipt: onReceipt,
		seen: map[[2]string]struct{}{}}
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
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	now := rv.now()
	// Verify before parsing: an unsigned body is not looked at.
	if err := kobot.Verify(rv.key, r.Header, body, now, rv.tolerance); err != nil {
		rv.log.Warn("rejected push: bad signature", "error", err, "webhook_id", r.Header.Get(kobot.HeaderID), "remote", r.RemoteAddr)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var ev struct {
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Subject string          `json:"subject"`
		Time    time.Time       `json:"time"`
		Table   string          `json:"table"`
		Op      string          `json:"op"`
		Account string          `json:"kobotaccount"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		if err == nil {
			err = errors.New("no id")
		}
		rv.log.Warn("rejected push: not a CloudEvent", "error", err, "webhook_id", r.Header.Get(kobot.HeaderID))
		http.Error(w, "not a CloudEvent", http.StatusBadRequest)
		return
	}
	if hid := r.Header.Get(kobot.HeaderID); hid != ev.ID {
		rv.log.Warn("rejected push: webhook-id differs from the event id", "webhook_id", hid, "id", ev.ID)
		http.Error(w, "webhook-id differs from the event id", http.StatusBadRequest)
		return
	}
	rc := Receipt{
		ReceivedAt: now.UTC(), ID: ev.ID, Account: ev.Account, Type: ev.Type, Table: ev.Table, Op: ev.Op,
		Subject: ev.Subject, CommitTime: ev.Time, Data: ev.Data,
	}
	if !ev.Time.IsZero() {
		rc.LatencyMS = float64(now.Sub(ev.Time).Microseconds()) / 1000
	}
	rc.Duplicate = !rv.remember([2]string{ev.Account, ev.ID})
	rv.onReceipt(rc)
	w.WriteHeader(http.StatusNoContent)
}

// remember records key and reports whether it is new.
func (rv *Receiver) remember(key [2]string) bool {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if _, ok := rv.seen[key]; ok {
		return false
	}
	rv.seen[key] = struct{}{}
	rv.fifo = append(rv.fifo, key)
	if len(rv.fifo) > maxSeen {
		delete(rv.seen, rv.fifo[0])
		rv.fifo = rv.fifo[1:]
	}
	return true
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
