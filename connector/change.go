// Package connector is the domain of baitoru-cdc: row changes read from the
// PostgreSQL replication stream, the mapping from changes to events, and the
// pipeline that publishes events and decides which WAL position may be
// acknowledged to PostgreSQL.
//
// Dependencies live in sub-packages named after them: connector/postgres reads
// the stream, connector/sns and connector/stdout publish events.
package connector

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrPermanent marks an error that retrying cannot fix (an event over the SNS
// size limit, a mapping that no longer matches the table, a slot that lost
// WAL). The connector stops on it without acknowledging past the failed change.
var ErrPermanent = errors.New("permanent error")

// ErrorText is err's text without the classification words the code wraps
// errors with to decide (": permanent error"): they mean nothing to the
// person reading it; the message before them says what is wrong.
func ErrorText(err error) string {
	return strings.ReplaceAll(err.Error(), ": "+ErrPermanent.Error(), "")
}

// LSN is a PostgreSQL write-ahead log position.
type LSN uint64

// String formats the LSN the way PostgreSQL does (e.g. "0/16B3748").
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// Op is the kind of row change.
type Op uint8

// Row change kinds, as published in events ("insert", "update", "delete").
const (
	OpInsert Op = iota + 1
	OpUpdate
	OpDelete
	// OpRead is a row re-emitted by a backfill (its state at the backfill's
	// high watermark), not a change: events "<type>.read". It is never a
	// mapped operation of the configuration.
	OpRead
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpRead:
		return "read"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ParseOp parses "insert", "update" or "delete".
func ParseOp(s string) (Op, error) {
	switch s {
	case "insert":
		return OpInsert, nil
	case "update":
		return OpUpdate, nil
	case "delete":
		return OpDelete, nil
	}
	return 0, fmt.Errorf("unknown operation %q (want insert, update or delete)", s)
}

// ValueEncoder appends the JSON form of one column value, given in PostgreSQL
// text format, to dst. It is chosen per column type by connector/postgres and
// must not retain text.
type ValueEncoder func(dst, text []byte) ([]byte, error)

// Column is one column of a relation as announced by the replication stream.
type Column struct {
	Name     string
	TypeOID  uint32
	TypeName string // e.g. "int4", "_text", "application_status"
	Key      bool   // part of the replica identity
	Encode   ValueEncoder
}

// Relation is a table as announced by a pgoutput Relation message. A new
// *Relation is created every time the server (re)announces the table, so a
// pointer identifies one version of its shape.
type Relation struct {
	ID      uint32
	Schema  string
	Name    string
	Columns []Column
	// Table is "schema.name"; QualifiedName computes it when empty.
	Table string
}

// QualifiedName is "schema.name".
func (r *Relation) QualifiedName() string {
	if r.Table != "" {
		return r.Table
	}
	return r.Schema + "." + r.Name
}

// DatumKind says how a column value is carried in a pgoutput tuple.
type DatumKind byte

// Tuple column kinds, named as in the pgoutput protocol.
const (
	DatumNull      DatumKind = 'n'
	DatumText      DatumKind = 't'
	DatumUnchanged DatumKind = 'u' // unchanged TOASTed value: not sent by the server
	DatumBinary    DatumKind = 'b'
)

// Datum is one column value of a tuple. Value aliases the receive buffer and
// is valid only during the Handler call that carries it.
type Datum struct {
	Kind  DatumKind
	Value []byte
}

// Tx is a transaction as announced by a pgoutput Begin message.
type Tx struct {
	XID        uint32
	CommitLSN  LSN       // LSN of the commit record (Begin's final LSN)
	CommitTime time.Time // commit timestamp from the server
	EndLSN     LSN       // end of the commit record; set at Commit
}

// Change is one row change of a transaction.
type Change struct {
	Tx  *Tx
	Seq int // 1-based position among the transaction's row changes
	Rel *Relation
	Op  Op
	New []Datum // insert, update
	Old []Datum // delete; update when the replica identity sent the old row or key
	// OldIsKey is true when Old carries only the replica identity key
	// columns (pgoutput 'K' tuple); the other columns are then null.
	OldIsKey bool
}
