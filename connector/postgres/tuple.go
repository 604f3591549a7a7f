package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/baitoru/baitoru-cdc/connector"
)

// The pgoutput row messages (Insert, Update, Delete) and Begin/Commit are
// decoded here without allocating: they are the hot path. Other messages
// (Relation, Type, Truncate, Message) go through pglogrepl.

var errShort = errors.New("message too short")

// pgEpoch is 2000-01-01 00:00:00 UTC, the origin of PostgreSQL timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func pgTime(us int64) time.Time { return pgEpoch.Add(time.Duration(us) * time.Microsecond) }

// beginMessage is pgoutput's Begin: Byte1('B') Int64 final LSN, Int64
// commit timestamp, Int32 xid.
func parseBegin(src []byte) (connector.Tx, error) {
	if len(src) < 21 {
		return connector.Tx{}, fmt.Errorf("begin: %w", errShort)
	}
	return connector.Tx{
		CommitLSN:  connector.LSN(binary.BigEndian.Uint64(src[1:])),
		CommitTime: pgTime(int64(binary.BigEndian.Uint64(src[9:]))),
		XID:        binary.BigEndian.Uint32(src[17:]),
	}, nil
}

// parseCommit decodes pgoutput's Commit: Byte1('C') Int8 flags, Int64 commit
// LSN, Int64 transaction end LSN, Int64 commit timestamp.
func parseCommit(src []byte) (commitLSN, endLSN connector.LSN, err error) {
	if len(src) < 26 {
		return 0, 0, fmt.Errorf("commit: %w", errShort)
	}
	return connector.LSN(binary.BigEndian.Uint64(src[2:])), connector.LSN(binary.BigEndian.Uint64(src[10:])), nil
}

// parseTupleData decodes a TupleData into dst (reused); the datums alias src.
func parseTupleData(src []byte, dst []connector.Datum) ([]connector.Datum, int, error) {
	if len(src) < 2 {
		return dst, 0, fmt.Errorf("tuple: %w", errShort)
	}
	n := int(binary.BigEndian.Uint16(src))
	off := 2
	dst = dst[:0]
	for i := 0; i < n; i++ {
		if off >= len(src) {
			return dst, off, fmt.Errorf("tuple column %d: %w", i, errShort)
		}
		kind := connector.DatumKind(src[off])
		off++
		switch kind {
		case connector.DatumNull, connector.DatumUnchanged:
			dst = append(dst, connector.Datum{Kind: kind})
		case connector.DatumText, connector.DatumBinary:
			if off+4 > len(src) {
				return dst, off, fmt.Errorf("tuple column %d length: %w", i, errShort)
			}
			l := int(binary.BigEndian.Uint32(src[off:]))
			off += 4
			if l < 0 || off+l > len(src) {
				return dst, off, fmt.Errorf("tuple column %d value: %w", i, errShort)
			}
			dst = append(dst, connector.Datum{Kind: kind, Value: src[off : off+l : off+l]})
			off += l
		default:
			return dst, off, fmt.Errorf("tuple column %d: unknown kind %q", i, byte(kind))
		}
	}
	return dst, off, nil
}

// rowMessage is a decoded Insert, Update or Delete.
type rowMessage struct {
	relID    uint32
	op       connector.Op
	new, old []connector.Datum // old is nil when the message has no old tuple
	oldIsKey bool
	oldBuf   []connector.Datum
}

// parseRow decodes Insert ('I' relid 'N' tuple), Update ('U' relid
// ['K'|'O' tuple] 'N' tuple) and Delete ('D' relid 'K'|'O' tuple) into m,
// reusing its slices.
func parseRow(src []byte, m *rowMessage) error {
	if len(src) < 6 {
		return fmt.Errorf("row message: %w", errShort)
	}
	m.relID = binary.BigEndian.Uint32(src[1:])
	m.old, m.oldIsKey = nil, false
	rest := src[5:]
	var err error
	var n int
	switch src[0] {
	case 'I':
		m.op = connector.OpInsert
		if rest[0] != 'N' {
			return fmt.Errorf("insert: unexpected tuple type %q", rest[0])
		}
		m.new, _, err = parseTupleData(rest[1:], m.new)
	case 'U':
		m.op = connector.OpUpdate
		if rest[0] == 'K' || rest[0] == 'O' {
			m.oldIsKey = rest[0] == 'K'
			m.oldBuf, n, err = parseTupleData(rest[1:], m.oldBuf)
			m.old = m.oldBuf
			if err != nil {
				return fmt.Errorf("update old tuple: %w", err)
			}
			rest = rest[1+n:]
			if len(rest) == 0 {
				return fmt.Errorf("update: %w", errShort)
			}
		}
		if rest[0] != 'N' {
			return fmt.Errorf("update: unexpected tuple type %q", rest[0])
		}
		m.new, _, err = parseTupleData(rest[1:], m.new)
	case 'D':
		m.op = connector.OpDelete
		if rest[0] != 'K' && rest[0] != 'O' {
			return fmt.Errorf("delete: unexpected tuple type %q", rest[0])
		}
		m.oldIsKey = rest[0] == 'K'
		m.oldBuf, _, err = parseTupleData(rest[1:], m.oldBuf)
		m.old = m.oldBuf
		m.new = m.new[:0]
	default:
		return fmt.Errorf("not a row message: %q", src[0])
	}
	return err
}
