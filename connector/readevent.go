package connector

// ReadEvent is the read event of a backfilled row, encoded before the
// chunk's high watermark was decoded: everything but the parts that come
// from the high watermark's transaction ("time", "lsn", "xid"), whose places
// in the body it records. The backfill's runner encodes a chunk's rows as it
// reads them (EncodeRead, on a Mapper of its own); at the high watermark the
// stream's reader only assembles them (assemble: no allocation), so a live
// transaction decoded after it does not wait for the chunk to be mapped.
// The assembled body is byte for byte the one MapRead returns.
type ReadEvent struct {
	// Event is the event to be: Body lacks the transaction's parts and
	// has room for them in its capacity (readTxRoom); CommitTime and
	// CommitLSN are unset. ID and Key are strings over Body's bytes
	// before timeAt, the attribute values over bytes after the room
	// (or constants): assemble moves neither.
	Event
	timeAt, headAt int32 // where "time" goes; where "lsn" and "xid" go
}

// EncodeRead encodes the read event of row (the published columns of rel,
// in text form; not retained) of the backfill: see MapRead, of which it is
// the first half. A table without a mapping yields nil. Errors wrap
// ErrPermanent (a value the column's encoder rejects, a mapping naming
// columns rel lacks).
func (m *Mapper) EncodeRead(rel *Relation, row []Datum, backfill, rowKey string) (*ReadEvent, error) {
	r := m.readSlab.event()
	c := Change{Rel: rel, Op: OpRead, New: row}
	ev, err := m.mapChange(&c, backfill, rowKey, r)
	if err != nil || ev == nil {
		return nil, err
	}
	return r, nil
}

// readSlab hands out the read events and body bytes of a Mapper's
// EncodeRead calls from blocks shared by many rows, instead of two
// allocations per row: a backfill allocates a GiB per million rows. Kept
// by hand because make bench's item 10 shows it end to end: 13 % less of
// the connector's CPU per backfilled row and a median of 0.55× COPY
// against 0.51× without (docs/benchmarks.md). A block stays alive while
// any event carved from it is, which a chunk's events (published
// together) make short. Not safe for concurrent use (a Mapper's owner).
type readSlab struct {
	events []ReadEvent
	buf    []byte
}

// Block sizes: 128 events (60 KiB); 64 KiB of bodies. A body larger than
// a quarter block gets an allocation of its own.
const (
	slabEvents = 128
	slabBytes  = 64 << 10
)

// event returns a zero ReadEvent.
func (s *readSlab) event() *ReadEvent {
	if len(s.events) == 0 {
		s.events = make([]ReadEvent, slabEvents)
	}
	r := &s.events[0]
	s.events = s.events[1:]
	return r
}

// bytes returns an empty slice of capacity n: appending past n
// reallocates, never touching the bytes of another event.
func (s *readSlab) bytes(n int) []byte {
	if n > slabBytes/4 {
		return make([]byte, 0, n)
	}
	if len(s.buf) < n {
		s.buf = make([]byte, slabBytes)
	}
	b := s.buf[:0:n]
	s.buf = s.buf[n:]
	return b
}

// readTxRoom is the room EncodeRead leaves after a read's body for the
// transaction's parts (`,"time":"…"` and `,"lsn":"…","xid":…`, 83 bytes at
// most), so that assemble inserts them in place.
const readTxRoom = 96

// assemble returns r's event in the transaction tx, whose encoded "time"
// and "lsn"/"xid" parts are txTime and txHead (Mapper.startTx): the parts
// go into the body's room, the bytes after each place moved right (copy
// is memmove); bytes before timeAt, where the id and the key are, do not
// move. r is spent.
func (r *ReadEvent) assemble(tx *Tx, txTime, txHead []byte) *Event {
	ev := &r.Event
	body := ev.Body
	grow := len(txTime) + len(txHead)
	timeAt, headAt := int(r.timeAt), int(r.headAt)
	var nb []byte
	if cap(body)-len(body) >= grow {
		nb = body[:len(body)+grow]
	} else {
		nb = make([]byte, len(body)+grow)
		copy(nb, body[:timeAt])
	}
	copy(nb[headAt+grow:], body[headAt:])
	copy(nb[timeAt+len(txTime):], body[timeAt:headAt])
	copy(nb[timeAt:], txTime)
	copy(nb[headAt+len(txTime):], txHead)
	ev.Body = nb[:len(nb):len(nb)]
	ev.CommitTime, ev.CommitLSN = tx.CommitTime, tx.CommitLSN
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
