package postgres

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/baitoru/baitoru-cdc/connector"
)

// Streaming of large transactions (pgoutput protocol 2, PostgreSQL 14+).
//
// With source.streaming, the server sends a transaction bigger than its
// logical_decoding_work_mem while it is still running, in blocks between
// Stream Start and Stream Stop; blocks of several transactions interleave
// with each other and with ordinary (Begin ... Commit) transactions. Every
// message inside a block carries the xid of the (sub)transaction it belongs
// to. The transaction ends with Stream Commit or Stream Abort, outside any
// block.
//
// The decoder holds each streamed transaction's messages in a spool (memory,
// then a file: see spools) and hands nothing to the handler before Stream
// Commit. There it replays them through the ordinary decoding path, between
// Begin and Commit of a transaction with the commit's LSN, time and xid:
// the handler sees exactly what a non-streamed read gives (same order, same
// positions, so the same event ids), and Relation messages of the stream
// reach the relation cache only then. Stream Abort drops the transaction,
// or a subtransaction from its first change on (a savepoint rolled back).
//
// Acknowledgement is unchanged: the pipeline confirms a commit only once
// its events and all earlier ones were accepted; keepalives move nothing
// inside a block. After a broken connection the open spools are dropped:
// the server streams every transaction that commits after the confirmed
// position again from its start.

// handle dispatches one pgoutput message: the messages of a stream block
// go to their transaction's spool, the rest is decoded.
func (d *decoder) handle(ctx context.Context, data []byte, h Handler) error {
	if len(data) == 0 {
		return nil
	}
	if d.inStream {
		switch data[0] {
		case 'I', 'U', 'D', 'R', 'Y', 'T', 'M':
			return d.spoolMessage(data)
		}
	}
	switch data[0] {
	case 'S':
		var m pglogrepl.StreamStartMessageV2
		if err := m.DecodeV2(data[1:], false); err != nil {
			return fmt.Errorf("decode stream start: %w", err)
		}
		if err := d.spools.start(m.Xid, m.FirstSegment == 1); err != nil {
			return err
		}
		if m.FirstSegment == 1 {
			d.log.Debug("streamed transaction started", "xid", m.Xid)
		}
		d.inStream, d.streamXID = true, m.Xid
		return nil
	case 'E':
		d.inStream = false
		return nil
	case 'c':
		return d.streamCommit(ctx, data, h)
	case 'A':
		var m pglogrepl.StreamAbortMessageV2
		if err := m.DecodeV2(data[1:], false); err != nil {
			return fmt.Errorf("decode stream abort: %w", err)
		}
		if m.SubXid == m.Xid {
			d.log.Debug("streamed transaction aborted: its changes are dropped", "xid", m.Xid)
		} else {
			d.log.Debug("streamed subtransaction rolled back: its changes are dropped", "xid", m.Xid, "subxid", m.SubXid)
		}
		return d.spools.abort(m.Xid, m.SubXid)
	}
	return d.apply(ctx, data, h)
}

// spoolMessage stores a message of the current stream block without its
// xid field: Byte1 type, Int32 xid, then what protocol 1 sends.
func (d *decoder) spoolMessage(data []byte) error {
	if len(data) < 5 {
		return fmt.Errorf("streamed message %q: %w", data[0], errShort)
	}
	xid := binary.BigEndian.Uint32(data[1:5])
	// The type byte moves over the xid: the record is data[4:].
	data[4] = data[0]
	return d.spools.add(d.streamXID, xid, data[4:])
}

// streamCommit replays a committed streamed transaction to h, as if it had
// been read between Begin and Commit.
func (d *decoder) streamCommit(ctx context.Context, data []byte, h Handler) error {
	var m pglogrepl.StreamCommitMessageV2
	if err := m.DecodeV2(data[1:], false); err != nil {
		return fmt.Errorf("decode stream commit: %w", err)
	}
	s := d.spools.take(m.Xid)
	defer s.close()
	d.tx = &connector.Tx{XID: m.Xid, CommitLSN: connector.LSN(m.CommitLSN), CommitTime: m.CommitTime.UTC()}
	d.seq = 0
	d.inTx = true
	if err := h(ctx, connector.Message{Kind: connector.MsgBegin, Tx: d.tx}); err != nil {
		return err
	}
	if err := s.replay(func(rec []byte) error { return d.apply(ctx, rec, h) }); err != nil {
		return err
	}
	end := connector.LSN(m.TransactionEndLSN)
	d.tx.EndLSN = end
	d.inTx = false
	d.committed = end
	return h(ctx, connector.Message{Kind: connector.MsgCommit, End: end})
}
