// Package postgres reads Baitoru's PostgreSQL write-ahead log through
// logical replication (pgoutput over a pgx replication connection), decodes
// it into connector changes, and confirms to the server only what the
// connector's pipeline reports as accepted. It also watches the slot while
// the connector runs (SlotMonitor) and keeps an idle slot moving
// (Heartbeat). Creating, checking and dropping the publication and the slot
// is the DBA's side, in package dba.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baitoru/baitoru-cdc/connector"
)

// Handler receives the decoded stream, one message at a time (see
// connector.Message), from the subscription's single reading goroutine, in
// stream order. It may block (back-pressure) and must not retain a
// message's change. An error ends the session; one wrapping
// connector.ErrPermanent ends Run. (*connector.Pipeline).Handle is one.
type Handler func(ctx context.Context, m connector.Message) error

// PositionObserver is told the position the subscription may confirm to
// the server when it moves (the metrics implement it). Called from the
// reading goroutine.
type PositionObserver interface {
	Flushed(lsn connector.LSN)
}

// Options configure a Subscription. The values of the configuration come
// resolved from package config (source.*): the subscription applies no
// default of its own to them.
type Options struct {
	// DSN of the source database (a regular connection string; the
	// replication connection is derived from it).
	DSN string
	// Pool lends the regular connection a session holds beside its
	// replication connection: column types, connector-side row filters
	// (NewPool).
	Pool        *pgxpool.Pool
	Slot        string
	Publication string
	// Mappings are the mapped tables; the connector evaluates their row
	// filters (Where) itself when the publication cannot (see
	// ConnectorRowFilters).
	Mappings []*connector.Mapping
	// StatusInterval is the period of standby status updates; required
	// (greater than zero).
	StatusInterval time.Duration
	// ReconnectInitial and ReconnectMax bound the reconnection backoff
	// (zero: reconnect at once).
	ReconnectInitial, ReconnectMax time.Duration
	// ShutdownGrace bounds the wait for in-flight events on shutdown
	// (zero: none).
	ShutdownGrace time.Duration
	// SlotBusyRetry is the wait between attempts while another connector
	// streams the slot (a standby replica waiting to take over); default
	// 2s. Not in the configuration file.
	SlotBusyRetry time.Duration
	// BackfillPublication publishes the backfill requests table; streamed
	// with Publication when it exists and the server carries logical
	// messages (14+). Empty: backfill is off.
	BackfillPublication string
	// Acked returns the handler's acknowledged position: every event of
	// every transaction whose commit ends at or before it was accepted
	// downstream. Required; safe for concurrent use.
	// (*connector.Pipeline).Acked is one.
	Acked func() connector.LSN
	// Mapping, when set, gives the mapping of a table for the transaction
	// being decoded (after its MsgBegin; (*connector.Pipeline).Mapping
	// follows reloads at transaction boundaries): the row filters the
	// connector evaluates itself are then that mapping's. Nil: those of
	// Mappings, fixed.
	Mapping func(table string) *connector.Mapping
	// Observer, when set, is told the position that may be confirmed.
	Observer PositionObserver
	// ConnectorRowFilters evaluates the mappings' row filters in the
	// connector (see rowFilters) rather than relying on the publication's.
	// It is automatic on PostgreSQL < 15, whose publications have none.
	ConnectorRowFilters bool
	// Streaming asks a PostgreSQL 14+ server to stream large transactions
	// before their commit (pgoutput protocol 2): the connector holds them
	// (StreamMemory, then a file in StreamSpillDir) and publishes them at
	// their commit. A PostgreSQL 13 server cannot: the connector warns and
	// reads transactions at their commit, as without it.
	Streaming bool
	// StreamMemory bounds the bytes of streamed, not yet committed
	// transactions held in memory (run: source.stream_memory_bytes);
	// beyond it they spill to a file. Zero or less: no bound.
	StreamMemory int64
	// StreamSpillDir is where streamed transactions spill; empty: the
	// system's temporary directory ($TMPDIR).
	StreamSpillDir string
}

func (o *Options) defaults() {
	if o.SlotBusyRetry <= 0 {
		o.SlotBusyRetry = 2 * time.Second
	}
	if o.StreamMemory <= 0 {
		o.StreamMemory = math.MaxInt64
	}
}

// Subscription streams one replication slot. Run is its only long-running
// method; it is not safe to call Run twice concurrently.
type Subscription struct {
	opts    Options
	h       Handler
	log     *slog.Logger
	types   *Types
	streams atomic.Bool
	// received is the end of the last WAL data received (the "written"
	// position); reported is the flush position last reported (or the
	// slot's confirmed position); idle is the WAL end of the latest
	// keepalive that came while nothing was pending; told is the position
	// last told to the observer. Reading goroutine only.
	received, reported, idle, told connector.LSN
	// slotSeen is set once a session found the slot: from then on a
	// missing slot is an error, never a new slot (that would skip rows).
	slotSeen bool
	// noStreamWarned: the warning that the server cannot stream was given.
	noStreamWarned bool
}

// New returns a Subscription that hands the stream to h and confirms what
// opts.Acked reports. It does not connect. A nil h or opts.Acked is a
// programming error: New panics.
func New(opts Options, h Handler, log *slog.Logger) *Subscription {
	if h == nil || opts.Acked == nil {
		panic("postgres.New: a handler and Options.Acked are required")
	}
	opts.defaults()
	return &Subscription{opts: opts, h: h, log: log, types: NewTypes()}
}

// Streaming reports whether the subscription is connected and streaming.
// Safe for concurrent use (readiness checks).
func (s *Subscription) Streaming() bool { return s.streams.Load() }

// errSlotBusy means another process streams the slot.
var errSlotBusy = errors.New("replication slot is active in another process")

// Run connects, streams, and reconnects with backoff until ctx ends or a
// permanent error occurs (a lost slot, a failed publish, a mapping that
// does not match the table). On ctx end it stops reading, lets in-flight
// events finish within the shutdown grace period, sends a final status
// update with what was accepted, and returns nil.
func (s *Subscription) Run(ctx context.Context) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = s.opts.ReconnectInitial
	bo.MaxInterval = s.opts.ReconnectMax
	attempt := 0 // failed connections since the last stream
	for {
		streamed, err := s.session(ctx)
		s.streams.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, connector.ErrPermanent) {
			return err
		}
		// Everything read before the break is published (or retried by the
		// publisher) before reading again; the transaction being read is
		// dropped and re-read from the slot.
		if err := s.h(ctx, connector.Message{Kind: connector.MsgFlush}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := s.h(ctx, connector.Message{Kind: connector.MsgRollback}); err != nil {
			return err
		}
		if streamed {
			bo.Reset()
			attempt = 0
		}
		attempt++
		wait := bo.NextBackOff()
		switch {
		case errors.Is(err, errSlotBusy):
			wait = s.opts.SlotBusyRetry
			s.log.Info("waiting for the replication slot; another connector streams it", "slot", s.opts.Slot, "error", err, "retry_in", wait)
		case streamed:
			s.log.Warn("replication stream interrupted; reconnecting", "error", err, "retry_in", wait.Round(time.Millisecond))
		default: // no stream was open: the connection or its start failed
			s.log.Warn("cannot connect to PostgreSQL to stream; retrying", "error", err, "attempt", attempt, "retry_in", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// session runs one connection. streamed reports whether streaming started.
func (s *Subscription) session(ctx context.Context) (streamed bool, err error) {
	replCfg, err := pgconn.ParseConfig(s.opts.DSN)
	if err != nil {
		return false, fmt.Errorf("parse source dsn: %w: %w", redact(err), connector.ErrPermanent)
	}
	for k, v := range sessionParams {
		replCfg.RuntimeParams[k] = v
	}
	replCfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, replCfg)
	if err != nil {
		return false, ConnectError(ctx, err, replCfg)
	}
	defer conn.Close(context.Background())

	pooled, err := Acquire(ctx, s.opts.Pool)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			// The session broke: so may have this connection. The next
			// session gets a fresh one.
			_ = pooled.Hijack().Close(context.Background())
			return
		}
		pooled.Release()
	}()
	meta := pooled.Conn()

	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return false, fmt.Errorf("identify system: %w", err)
	}
	server, err := ServerVersion(ctx, meta)
	if err != nil {
		return false, err
	}
	slot, err := s.slot(ctx, meta)
	if err != nil {
		return false, err
	}
	if slot.ActivePID != 0 {
		return false, fmt.Errorf("%w: slot %s is streamed by pid %d", errSlotBusy, s.opts.Slot, slot.ActivePID)
	}
	s.reported = max(s.reported, slot.ConfirmedFlush)
	start := s.flushed()
	pubs := []string{s.opts.Publication}
	if s.opts.BackfillPublication != "" && Supports(server, FeatureBackfill) {
		var exists bool
		if err := meta.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.opts.BackfillPublication).Scan(&exists); err != nil {
			return false, fmt.Errorf("look up publication %s: %w", s.opts.BackfillPublication, err)
		}
		if exists {
			pubs = append(pubs, s.opts.BackfillPublication)
		}
	}
	if err := pglogrepl.StartReplication(ctx, conn, s.opts.Slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: pluginArgs(server, pubs, s.modeFor(server)),
	}); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			return false, fmt.Errorf("%w: %s", errSlotBusy, pgErr.Message)
		}
		if slotLostByServer(err) {
			// The server refuses to stream an invalidated slot: retrying
			// cannot help, and a new slot would skip rows.
			return false, fmt.Errorf("start replication on slot %s: %s: %w", s.opts.Slot, err, lostError(s.opts.Slot, slot.ConfirmedFlush, connector.LSN(sys.XLogPos)))
		}
		return false, fmt.Errorf("start replication on slot %s: %w", s.opts.Slot, err)
	}
	s.log.Info("streaming",
		"database", sys.DBName, "slot", s.opts.Slot, "publication", s.opts.Publication,
		"resume_lsn", start.String(), "server_wal_end", sys.XLogPos.String(), "timeline", sys.Timeline,
		"server_version", versionText(server))
	s.streams.Store(true)
	return true, s.stream(ctx, conn, meta, server)
}

// streamMode says whether a session asks the server to stream large
// transactions before their commit.
type streamMode bool

const (
	atCommit   streamMode = false // protocol 1: every transaction at its commit
	inProgress streamMode = true  // protocol 2, streaming on
)

// modeFor decides the session's stream mode: Options.Streaming where the
// server can (14+); on an older server it warns once and reads at commit.
func (s *Subscription) modeFor(server int) streamMode {
	if !s.opts.Streaming {
		return atCommit
	}
	if Supports(server, FeatureStreaming) {
		return inProgress
	}
	if !s.noStreamWarned {
		s.noStreamWarned = true
		s.log.Warn("source.streaming is on, but this PostgreSQL cannot stream transactions before their commit (14+): large transactions reach the connector at their commit, spilled to disk on the server; upgrade PostgreSQL or set source.streaming: false to silence this",
			"server_version", versionText(server))
	}
	return atCommit
}

// pluginArgs are pgoutput's options for a server (server_version_num):
// protocol 1, which every supported version serves, or protocol 2 with
// streaming on when the session streams in-progress transactions (14+);
// and logical decoding messages (heartbeats, backfill watermarks) where
// pgoutput has the option (14+; 13 refuses it). The publications are
// quoted: their names are exact.
func pluginArgs(server int, publications []string, mode streamMode) []string {
	proto := "proto_version '1'"
	if mode == inProgress {
		proto = "proto_version '2'"
	}
	names := make([]string, len(publications))
	for i, p := range publications {
		names[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	args := []string{
		proto,
		"publication_names '" + escapeLiteral(strings.Join(names, ",")) + "'",
	}
	if Supports(server, FeatureMessages) {
		args = append(args, "messages 'true'")
	}
	if mode == inProgress {
		args = append(args, "streaming 'on'")
	}
	return args
}

// escapeLiteral doubles the quotes of s for a '...' string literal.
func escapeLiteral(s string) string { return strings.ReplaceAll(s, "'", "''") }

// sessionParams make the walsender's text output stable and lossless: the
// value encoders rely on them.
var sessionParams = map[string]string{
	"application_name":   "baitoru-cdc",
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "iso_8601",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
}

// stream reads messages until ctx ends or the connection breaks.
func (s *Subscription) stream(ctx context.Context, conn *pgconn.PgConn, meta *pgx.Conn, server int) error {
	netConn := conn.Conn()
	stopWake := context.AfterFunc(ctx, func() { _ = netConn.SetReadDeadline(time.Now()) })
	defer stopWake()

	d := decoder{rels: map[uint32]*connector.Relation{}, types: s.types, meta: meta, log: s.log,
		spools: newSpools(s.opts.StreamMemory, s.opts.StreamSpillDir)}
	// Partial streamed transactions end with the session: the server
	// streams them again from their start.
	defer d.spools.closeAll()
	if s.opts.ConnectorRowFilters || !Supports(server, FeatureRowFilters) {
		d.filters = newRowFilters(s.opts.Mappings, s.opts.Mapping, meta)
	}
	if where := rowFilterTables(s.opts.Mappings); len(where) > 0 && d.filters != nil {
		s.log.Info("row filters (where:) are evaluated by the connector, not by the publication: every row of the filtered tables leaves the server (PostgreSQL before 15 has no publication row filters)",
			"server_version", versionText(server), "tables", len(where))
	}
	nextStatus := time.Now().Add(s.opts.StatusInterval)
	var deadline time.Time
	var lastSent connector.LSN
	for {
		if ctx.Err() != nil {
			return s.shutdown(conn)
		}
		if now := time.Now(); !now.Before(nextStatus) {
			if err := s.sendStatus(ctx, conn); err != nil {
				return err
			}
			nextStatus = now.Add(s.opts.StatusInterval)
		}
		if !nextStatus.Equal(deadline) {
			// The read wakes up for the next status update (and at once
			// when ctx ends, through stopWake). Set only when it changes:
			// it is a timer update, and this loop runs per message.
			_ = netConn.SetReadDeadline(nextStatus)
			deadline = nextStatus
		}
		raw, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if isTimeout(err) {
				continue
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch msg := raw.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				if nothingPending(d.inTx || d.inStream, d.committed, s.opts.Acked()) {
					s.idle = max(s.idle, connector.LSN(ka.ServerWALEnd))
				}
				if flush := s.flushed(); ka.ReplyRequested || flush != lastSent {
					if err := s.sendStatus(ctx, conn); err != nil {
						return err
					}
					lastSent = flush
					nextStatus = time.Now().Add(s.opts.StatusInterval)
				}
			case pglogrepl.XLogDataByteID:
				if len(msg.Data) < 25 {
					return fmt.Errorf("xlogdata: %w", errShort)
				}
				walStart := connector.LSN(uint64(msg.Data[1])<<56 | uint64(msg.Data[2])<<48 | uint64(msg.Data[3])<<40 | uint64(msg.Data[4])<<32 |
					uint64(msg.Data[5])<<24 | uint64(msg.Data[6])<<16 | uint64(msg.Data[7])<<8 | uint64(msg.Data[8]))
				if err := d.handle(ctx, msg.Data[25:], s.h); err != nil {
					return err
				}
				if walStart > s.received {
					s.received = walStart
				}
			}
		case *pgproto3.ErrorResponse:
			err := pgconn.ErrorResponseToPgError(msg)
			if slotLostByServer(err) {
				return fmt.Errorf("replication stream: %s: %w", err, lostError(s.opts.Slot, s.flushed(), s.received))
			}
			return fmt.Errorf("replication stream: %w", err)
		case *pgproto3.CopyDone:
			return errors.New("server ended the replication stream")
		}
	}
}

// shutdown lets in-flight events finish, then confirms what was accepted.
func (s *Subscription) shutdown(conn *pgconn.PgConn) error {
	grace, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	defer cancel()
	if err := s.h(grace, connector.Message{Kind: connector.MsgFlush}); err != nil {
		s.log.Warn("shutdown: in-flight events not all accepted; they will be re-sent after restart", "error", err)
	}
	_ = conn.Conn().SetReadDeadline(time.Time{})
	final, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := s.sendStatus(final, conn); err != nil {
		s.log.Warn("shutdown: final status update", "error", err)
		return nil
	}
	s.log.Info("stopped; final position confirmed", "confirmed_lsn", s.reported.String())
	return nil
}

// status is what a standby status update reports now (standbyStatus);
// the observer is told a flush position that moved.
func (s *Subscription) status() (write, flush connector.LSN) {
	write, flush = standbyStatus(ackState{Received: s.received, Acked: s.opts.Acked(), Idle: s.idle, Reported: s.reported})
	if flush > s.told {
		s.told = flush
		if s.opts.Observer != nil {
			s.opts.Observer.Flushed(flush)
		}
	}
	return write, flush
}

// flushed is the position a status update would confirm now.
func (s *Subscription) flushed() connector.LSN {
	_, flush := s.status()
	return flush
}

func (s *Subscription) sendStatus(ctx context.Context, conn *pgconn.PgConn) error {
	written, flushed := s.status()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(written),
		WALFlushPosition: pglogrepl.LSN(flushed),
		WALApplyPosition: pglogrepl.LSN(flushed),
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	s.reported = flushed
	return nil
}

func isTimeout(err error) bool {
	if pgconn.Timeout(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// decoder turns pgoutput messages into handler calls. Used by the reading
// goroutine only.
type decoder struct {
	rels  map[uint32]*connector.Relation
	types *Types
	meta  *pgx.Conn
	log   *slog.Logger

	inTx bool
	// committed is the end of the last commit handed to the handler.
	committed connector.LSN
	tx        *connector.Tx
	seq       int
	row       rowMessage
	change    connector.Change
	warned    map[uint32]bool
	// filters evaluates where: in the connector; nil when the publication
	// filters rows itself.
	filters *rowFilters

	// inStream is set between Stream Start and Stream Stop, whose
	// transaction is streamXID; spools hold the streamed transactions
	// until their end (streamed.go).
	inStream  bool
	streamXID uint32
	spools    spools
}

// apply decodes one message of protocol 1 (a streamed transaction's
// messages replayed at its commit included) and hands it to h.
func (d *decoder) apply(ctx context.Context, data []byte, h Handler) error {
	switch data[0] {
	case 'I', 'U', 'D':
		if err := parseRow(data, &d.row); err != nil {
			return fmt.Errorf("decode row: %w", err)
		}
		rel := d.rels[d.row.relID]
		if rel == nil {
			return fmt.Errorf("row for unknown relation %d (no Relation message first)", d.row.relID)
		}
		d.seq++
		d.change = connector.Change{
			Tx: d.tx, Seq: d.seq, Rel: rel, Op: d.row.op,
			New: d.row.new, Old: d.row.old, OldIsKey: d.row.oldIsKey,
		}
		if keep, err := d.filters.apply(ctx, &d.change); err != nil || !keep {
			return err
		}
		return h(ctx, connector.Message{Kind: connector.MsgChange, Change: &d.change})
	case 'B':
		tx, err := parseBegin(data)
		if err != nil {
			return err
		}
		d.tx = &tx
		d.seq = 0
		d.inTx = true
		return h(ctx, connector.Message{Kind: connector.MsgBegin, Tx: d.tx})
	case 'C':
		_, end, err := parseCommit(data)
		if err != nil {
			return err
		}
		if d.tx != nil {
			d.tx.EndLSN = end
		}
		d.inTx = false
		d.committed = end
		return h(ctx, connector.Message{Kind: connector.MsgCommit, End: end})
	case 'R':
		var rm pglogrepl.RelationMessage
		if err := rm.Decode(data[1:]); err != nil {
			return fmt.Errorf("decode relation: %w", err)
		}
		rel, err := d.relation(ctx, &rm)
		if err != nil {
			return err
		}
		d.rels[rm.RelationID] = rel
	case 'T':
		var tm pglogrepl.TruncateMessage
		if err := tm.Decode(data[1:]); err == nil {
			for _, id := range tm.RelationIDs {
				if rel := d.rels[id]; rel != nil {
					d.log.Warn("TRUNCATE is not published as events", "table", rel.QualifiedName())
				}
			}
		}
	case 'M':
		// Logical decoding messages: heartbeats (nothing to publish) and
		// backfill watermarks.
		var m pglogrepl.LogicalDecodingMessage
		if err := m.Decode(data[1:]); err != nil {
			return fmt.Errorf("decode logical message: %w", err)
		}
		var tx *connector.Tx
		if m.Transactional && d.inTx {
			tx = d.tx
		}
		return h(ctx, connector.Message{Kind: connector.MsgLogical, Tx: tx, Prefix: m.Prefix, Content: m.Content})
	case 'Y', 'O':
		// Type (types are resolved from pg_type), Origin: nothing to
		// publish.
	}
	return nil
}

func (d *decoder) relation(ctx context.Context, rm *pglogrepl.RelationMessage) (*connector.Relation, error) {
	oids := make([]uint32, len(rm.Columns))
	for i, c := range rm.Columns {
		oids[i] = c.DataType
	}
	if err := d.types.Resolve(ctx, d.meta, oids); err != nil {
		return nil, fmt.Errorf("resolve column types of %s.%s: %w", rm.Namespace, rm.RelationName, err)
	}
	rel := &connector.Relation{ID: rm.RelationID, Schema: rm.Namespace, Name: rm.RelationName,
		Table: rm.Namespace + "." + rm.RelationName}
	for _, c := range rm.Columns {
		rel.Columns = append(rel.Columns, connector.Column{
			Name:     c.Name,
			TypeOID:  c.DataType,
			TypeName: d.types.Name(c.DataType),
			Key:      c.Flags&1 != 0,
			Encode:   d.types.Encoder(c.DataType),
		})
	}
	return rel, nil
}
