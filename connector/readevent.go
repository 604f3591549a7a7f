package connector

import (
	"unsafe"
)

// ReadEvent is the read event of a backfilled row, encoded before the
// chunk's high watermark was decoded: everything but the parts that come
// from the high watermark's transaction ("time", "lsn", "xid"), whose places
// in the body it records. The backfill's runner encodes a chunk's rows as it
// reads them (EncodeRead, on a Mapper of its own); at the high watermark the
// stream's reader only assembles them (assemble: no allocation), so a live
// transaction decoded after it does not wait for the chunk to be mapped.
// The assembled body is byte for byte the one MapRead returns.
type ReadEvent struct {
	// Event is the event to be: Body lacks the transaction's parts,
	// CommitTime and CommitLSN are unset; ID, Key and the attribute
	// values are strings over buf (or constants).
	Event
	// buf holds the body without the transaction's parts (bodyLen
	// bytes), then the bytes of the attribute values, and room for the
	// parts (readTxRoom).
	buf                     []byte
	bodyLen, timeAt, headAt int32 // timeAt: where "time" goes; headAt: "lsn" and "xid"
}

// EncodeRead encodes the read event of row (the published columns of rel,
// in text form; not retained) of the backfill: see MapRead, of which it is
// the first half. A table without a mapping yields nil. Errors wrap
// ErrPermanent (a value the column's encoder rejects, a mapping naming
// columns rel lacks).
func (m *Mapper) EncodeRead(rel *Relation, row []Datum, backfill, rowKey string) (*ReadEvent, error) {
	r := &ReadEvent{}
	c := Change{Rel: rel, Op: OpRead, New: row}
	ev, err := m.mapChange(&c, backfill, rowKey, r)
	if err != nil || ev == nil {
		return nil, err
	}
	return r, nil
}

// readTxRoom is the room EncodeRead leaves in a read's buffer for the
// transaction's parts (`,"time":"…"` and `,"lsn":"…","xid":…`, 83 bytes at
// most), so that assemble moves them in place.
const readTxRoom = 96

// assemble returns r's event in the transaction tx, whose encoded "time"
// and "lsn"/"xid" parts are txTime and txHead (Mapper.startTx). The parts
// go into r's buffer, in place (its room allows), and the event's strings
// are moved with the bytes; r is spent.
func (r *ReadEvent) assemble(tx *Tx, txTime, txHead []byte) *Event {
	old := r.buf
	grow := len(txTime) + len(txHead)
	timeAt, headAt := int(r.timeAt), int(r.headAt)
	var nb []byte
	if cap(old)-len(old) >= grow {
		// Move the tail, then the middle, right (copy is memmove), and
		// write the parts into the gaps. Only bytes from timeAt on move:
		// the id and the key, before it, stay where they are.
		nb = old[:len(old)+grow]
		copy(nb[headAt+grow:], old[headAt:len(old)])
		copy(nb[timeAt+len(txTime):], old[timeAt:headAt])
		copy(nb[timeAt:], txTime)
		copy(nb[headAt+len(txTime):], txHead)
	} else {
		nb = make([]byte, 0, len(old)+grow)
		nb = append(nb, old[:timeAt]...)
		nb = append(nb, txTime...)
		nb = append(nb, old[timeAt:headAt]...)
		nb = append(nb, txHead...)
		nb = append(nb, old[headAt:]...)
	}
	bodyLen := int(r.bodyLen) + grow
	// A string over old moves to the same bytes in nb; others stay.
	move := func(s string) string {
		if len(s) == 0 || len(old) == 0 {
			return s
		}
		off := int(uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(unsafe.SliceData(old))))
		if off < 0 || off+len(s) > len(old) {
			return s
		}
		switch {
		case off >= headAt:
			off += grow
		case off >= timeAt:
			off += len(txTime)
		}
		return bytesString(nb[off : off+len(s)])
	}
	ev := &r.Event
	ev.ID, ev.Key = move(ev.ID), move(ev.Key)
	ev.Body = nb[:bodyLen:bodyLen]
	ev.CommitTime, ev.CommitLSN = tx.CommitTime, tx.CommitLSN
	for i := range ev.Attributes {
		ev.Attributes[i].Value = move(ev.Attributes[i].Value)
	}
	r.buf = nil
	return ev
}

// mappingState is a set of mappings as a Mapper uses them.
type mappingState struct {
	source   string
	mappings []*Mapping
	version  string
}

// ReadEncoder encodes a backfill's reads on the runner's goroutine, with a
// Mapper of its own that follows the pipeline's mappings (the pipeline's
// Mapper belongs to the stream's reader). Not safe for concurrent use.
type ReadEncoder struct {
	p     *Pipeline
	m     *Mapper
	state *mappingState
}

// sync takes the pipeline's newest mappings; it returns the mapping of
// table and the version the following encodings use.
func (e *ReadEncoder) sync(table string) (*Mapping, string) {
	if s := e.p.mapState.Load(); s != e.state {
		if e.m == nil {
			e.m = NewMapper(s.source, nil)
		}
		e.m.SetMappings(s.mappings, s.version)
		e.state = s
	}
	return e.m.Mapping(table), e.m.Version()
}

// txParts returns the encoded "time" and "lsn"/"xid" parts of tx.
func (m *Mapper) txParts(tx *Tx) (time, head []byte) {
	if tx != m.tx {
		m.startTx(tx)
	}
	return m.txTime, m.txHead
}
