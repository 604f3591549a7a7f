package sink

// A link's history: when Kobot starts a link, the rows that already exist
// for its key (e.g. every job posting of company 7) are re-sent to it.
//
// The transport is Baitoru's database. The sink records what the link needs
// (one History per table of a sink.links rule with history) in its own
// database, in the same statement that creates the link, then inserts a
// start request per table into baitoru_cdc.backfill_requests as the
// least-privilege requester role. The connector streaming the slot reads
// the requests from its replication stream and backfills each table with
// the link key as the filter; its read events carry the backfill id in
// their "backfill" extension. Why this transport rather than an API on the
// connector:
//
//   - authenticated: PostgreSQL authenticates the requester role, which
//     may only insert requests and read progress (no table of Baitoru's,
//     no replication), and the sink needs no route into the connector,
//     which listens on nothing but its metrics port;
//   - idempotent: the backfill id is derived from the link id and the
//     table (HistoryID), and a request with an id that exists changes
//     nothing, so a request repeated after a timeout or a crash is one
//     backfill;
//   - survives a restart of either side: the sink's record outlives the
//     sink (Histories.Run retries what Baitoru's database has not taken
//     yet), and a request is a committed row that outlives the connector
//     and reaches whichever replica streams the slot; progress is a row
//     the connector keeps, read back for GET /v1/links/{id}.
//
// Only the link that started gets the history: a read event whose backfill
// id names a link (HistoryLink) is pushed to that link alone, if it is
// still active; other links of the same key already have those rows. Live
// events are unchanged, and the delivery log still decides "pushed once
// per link".

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// History states, as GET /v1/links/{id} shows them; the connector's own
// (running, done, cancelled, failed) follow HistoryRequested.
const (
	// HistoryPending: recorded by the sink, not yet in Baitoru's database
	// (it was unreachable); retried every sink.history.interval.
	HistoryPending = "pending"
	// HistoryRequested: in Baitoru's database; no connector started it yet.
	HistoryRequested = "requested"
	// HistoryUnknown: Baitoru's database did not answer the progress query.
	HistoryUnknown = "unknown"
)

// HistoryTable is a table whose existing rows a link gets when it starts:
// the rows whose Field (a published field, as in the events) equals the
// link key.
type HistoryTable struct{ Table, Field string }

// History is one link-start backfill: the rows of Table whose Field is the
// link's Key.
type History struct {
	LinkID       int64
	Key          string
	Table, Field string
	BackfillID   string
	// Requested: Baitoru's database holds the start request.
	Requested bool
}

// HistoryProgress is the state of one History, as the links API shows it.
type HistoryProgress struct {
	Table      string `json:"table"`
	BackfillID string `json:"backfill_id"`
	// State is pending, requested, running, done, cancelled, failed or
	// unknown.
	State         string     `json:"state"`
	RowsDone      int64      `json:"rows_done"`
	RowsEstimated int64      `json:"rows_estimated"`
	Error         string     `json:"error,omitempty"`
	UpdatedAt     *time.Time `json:"updated_at,omitempty"`
}

// maxBackfillID is the longest backfill id Baitoru's request table takes.
const maxBackfillID = 100

// HistoryID is the backfill id of link's history of table:
// "<prefix>-<link id>-<table>", characters a backfill id cannot hold
// replaced by '_', at most 100 characters. The same link and table always
// give the same id (what makes the request idempotent); another link,
// another id.
func HistoryID(prefix string, linkID int64, table string) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('-')
	b.WriteString(strconv.FormatInt(linkID, 10))
	b.WriteByte('-')
	for _, r := range table {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == ':', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > maxBackfillID {
		s = s[:maxBackfillID]
	}
	return s
}

// HistoryLink returns the link whose history backfill is (an id made by
// HistoryID with prefix); ok is false for any other backfill id (e.g. one
// started with `baitoru-cdc backfill start`), whose reads go to every
// active link of their key.
func HistoryLink(prefix, backfill string) (linkID int64, ok bool) {
	if prefix == "" {
		return 0, false
	}
	rest, ok := strings.CutPrefix(backfill, prefix+"-")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "-")
	if !ok || num == "" || num[0] == '0' {
		return 0, false
	}
	id, err := strconv.ParseInt(num, 10, 64)
	if err != nil || id < 1 {
		return 0, false
	}
	return id, true
}

// HistoryLog is the sink database's record of link histories
// (postgres.Store implements it; the Store writes a new link's histories
// with the link).
type HistoryLog interface {
	// PendingHistory returns up to limit histories not yet requested, of
	// active links, oldest first.
	PendingHistory(ctx context.Context, limit int) ([]History, error)
	// MarkRequested records that Baitoru's database holds these backfills.
	MarkRequested(ctx context.Context, backfillIDs []string) error
	// LinkHistory returns the histories of a link, by table.
	LinkHistory(ctx context.Context, linkID int64) ([]History, error)
}

// BackfillRequester is Baitoru's side (sink/requester implements it over
// the requester role).
type BackfillRequester interface {
	// RequestBackfills inserts a start request per history; one whose id
	// exists changes nothing.
	RequestBackfills(ctx context.Context, hs []History) error
	// CancelBackfills inserts a cancel request per id (idempotent).
	CancelBackfills(ctx context.Context, backfillIDs []string) error
	// BackfillProgress returns the state of the backfills of ids that
	// Baitoru's database knows; the others are absent.
	BackfillProgress(ctx context.Context, backfillIDs []string) (map[string]HistoryProgress, error)
}

// Histories forwards the histories the sink recorded to Baitoru's database
// and reports their progress. Safe for concurrent use.
type Histories struct {
	log      HistoryLog
	req      BackfillRequester
	interval time.Duration
	logger   *slog.Logger
	mu       sync.Mutex // one Forward at a time
}

// NewHistories returns the forwarder; Run retries every interval.
func NewHistories(log HistoryLog, req BackfillRequester, interval time.Duration, logger *slog.Logger) *Histories {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &Histories{log: log, req: req, interval: interval, logger: logger}
}

// forwardBatch bounds the histories one Forward requests per round.
const forwardBatch = 100

// Forward requests every pending history from Baitoru's database and
// records that it did; it returns how many it requested. An error leaves
// the rest pending for the next call.
func (h *Histories) Forward(ctx context.Context) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for {
		hs, err := h.log.PendingHistory(ctx, forwardBatch)
		if err != nil {
			return n, fmt.Errorf("read pending link histories: %w", err)
		}
		if len(hs) == 0 {
			return n, nil
		}
		if err := h.req.RequestBackfills(ctx, hs); err != nil {
			return n, fmt.Errorf("request link histories from Baitoru's database: %w", err)
		}
		ids := make([]string, len(hs))
		for i, x := range hs {
			ids[i] = x.BackfillID
			h.logger.Info("link history requested", "link_id", x.LinkID, "table", x.Table, "backfill", x.BackfillID, x.Field, x.Key)
		}
		if err := h.log.MarkRequested(ctx, ids); err != nil {
			return n, fmt.Errorf("record link histories requested: %w", err)
		}
		n += len(hs)
		if len(hs) < forwardBatch {
			return n, nil
		}
	}
}

// Run forwards pending histories every interval until ctx ends; a failure
// is logged (with the fix) and retried. It returns nil when ctx ends.
func (h *Histories) Run(ctx context.Context) error {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	failing := false
	for {
		_, err := h.Forward(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			h.logger.Warn("cannot request link histories yet; retrying (check sink.history.dsn and the requester role's grants in setup's script)", "err", err, "retry_in", h.interval)
			failing = true
		case err == nil && failing:
			h.logger.Info("link histories requested again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Progress returns the state of a link's histories, by table: pending
// until Baitoru's database took the request, then its backfill's state
// and rows. When Baitoru's database does not answer, the state of a
// requested history is unknown (and the error is logged); the link is
// still shown.
func (h *Histories) Progress(ctx context.Context, linkID int64) ([]HistoryProgress, error) {
	hs, err := h.log.LinkHistory(ctx, linkID)
	if err != nil {
		return nil, fmt.Errorf("read link history: %w", err)
	}
	if len(hs) == 0 {
		return nil, nil
	}
	var ids []string
	for _, x := range hs {
		if x.Requested {
			ids = append(ids, x.BackfillID)
		}
	}
	var got map[string]HistoryProgress
	failed := false
	if len(ids) > 0 {
		if got, err = h.req.BackfillProgress(ctx, ids); err != nil {
			h.logger.Warn("cannot read link history progress from Baitoru's database", "link_id", linkID, "err", err)
			failed = true
		}
	}
	out := make([]HistoryProgress, len(hs))
	for i, x := range hs {
		p := HistoryProgress{Table: x.Table, BackfillID: x.BackfillID, State: HistoryPending}
		switch {
		case !x.Requested:
		case failed:
			p.State = HistoryUnknown
		default:
			if g, ok := got[x.BackfillID]; ok {
				p = g
				p.Table, p.BackfillID = x.Table, x.BackfillID
			} else {
				p.State = HistoryRequested
			}
		}
		out[i] = p
	}
	return out, nil
}

// Cancel asks Baitoru's database to cancel the link's histories (a stopped
// link gets nothing more; rows already sent stay sent). Histories not yet
// requested are never requested (PendingHistory skips stopped links).
func (h *Histories) Cancel(ctx context.Context, linkID int64) error {
	hs, err := h.log.LinkHistory(ctx, linkID)
	if err != nil {
		return fmt.Errorf("read link history: %w", err)
	}
	var ids []string
	for _, x := range hs {
		if x.Requested {
			ids = append(ids, x.BackfillID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := h.req.CancelBackfills(ctx, ids); err != nil {
		return fmt.Errorf("cancel link history: %w", err)
	}
	return nil
}
