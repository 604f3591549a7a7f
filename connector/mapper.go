package connector

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// Mapping is one mapped table, resolved: which operations of the table
// become events, with which columns, attributes, key and row filter. It is
// the one compiled form of a table of the configuration: package config
// builds it, with every default applied and every rule checked (operations
// are insert, update or delete, each once; attributes and key columns are
// published; Where is one SQL boolean expression), and the mapper, the
// publication planner and the subscription all read it. Code that builds a
// Mapping itself must keep those rules.
type Mapping struct {
	Table      string // schema.name
	Ops        []Op   // published operations, each once
	Topic      string // empty: the publisher's default topic
	TypePrefix string // CloudEvents type prefix; the type is TypePrefix + "." + op
	// Columns are the published columns, in order; empty: none are
	// listed (the planner then publishes every column of the table).
	Columns    []MappedColumn
	Attributes []MappedAttribute
	Key        []string // source column names
	// Where is the row filter: a SQL boolean expression over the table's
	// columns; empty: every row.
	Where string
	// LargePayloads says where events too large for SNS go (ClaimCheck);
	// nil: nowhere, such an event stops the connector.
	LargePayloads *LargePayloads
}

// MappedColumn is one published column.
type MappedColumn struct {
	Column string // name in the table
	Name   string // field name in the event's data
	// Transform is applied to the value before it is published; nil: the
	// value is published as it is.
	Transform *Transform
}

// MappedAttribute is one SNS message attribute: a published column's value
// (through Transform when set), or the constant Value when Column is empty.
type MappedAttribute struct {
	Column string
	Name   string
	Type   string // "String" or "Number"
	// Value is a constant attribute, sent with every event of the table
	// (Column is then empty).
	Value string
	// Transform derives the attribute from the column's value (e.g. the
	// hash of a column whose data field is masked); nil: the value as it is.
	Transform *Transform
}

// Publishes reports whether the mapping publishes op.
func (m *Mapping) Publishes(op Op) bool { return slices.Contains(m.Ops, op) }

// ColumnNames returns the names in the table of the published columns.
func (m *Mapping) ColumnNames() []string {
	out := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		out[i] = c.Column
	}
	return out
}

// TypeChange is a published column whose type changed between two
// announcements of its table (ALTER COLUMN … TYPE): its values in events may
// change JSON form (a number becoming a string, a string an object).
type TypeChange struct {
	Table   string // schema.name
	Column  string // column name in the table
	Field   string // field name in the event's data
	OldType string // PostgreSQL type names, e.g. "int8", "text"
	NewType string
}

// Mapper turns changes into events. It is used by the single goroutine that
// reads the replication stream and is not safe for concurrent use.
type Mapper struct {
	source   string // CloudEvents source, "baitoru/<database>"
	version  string // mapping version ("mappingversion" attribute); "" leaves it out
	mappings []*Mapping
	byTable  map[string]*Mapping
	plans    map[uint32]*plan // by relation ID; replaced when the relation is re-announced
	// colTypes remembers the type of every published column as last
	// announced (kept across Reset: a reconnect re-announces the same
	// types), so that a change of type is reported once.
	colTypes    map[[2]string]string
	typeChanges []TypeChange
	buf         []byte
	tx          *Tx
	txLSN       []byte // the commit LSN, text form
	txHead      []byte // `"lsn":"...","xid":N` of the current transaction
	txTime      []byte // `"time":"..."` of the current transaction
	idScratch   []byte // appendReadEventID's
	readSlab    readSlab
}

// NewMapper returns a Mapper for the given mappings. source is the
// CloudEvents source attribute (e.g. "baitoru/baitoru").
func NewMapper(source string, mappings []*Mapping) *Mapper {
	m := &Mapper{source: source, mappings: mappings, byTable: map[string]*Mapping{}, plans: map[uint32]*plan{}, colTypes: map[[2]string]string{}}
	for _, mp := range mappings {
		m.byTable[mp.Table] = mp
	}
	return m
}

// Mapping returns the mapping of a schema-qualified table, or nil.
func (m *Mapper) Mapping(table string) *Mapping { return m.byTable[table] }

// SetMappings replaces the mappings; version (see MappingVersion), when not
// empty, is written in every event as the CloudEvents extension attribute
// "mappingversion". The caller calls it between transactions (the
// Pipeline does, at Begin), so every event of a transaction is encoded by
// one version. Reader goroutine only.
func (m *Mapper) SetMappings(mappings []*Mapping, version string) {
	m.mappings = mappings
	m.byTable = make(map[string]*Mapping, len(mappings))
	for _, mp := range mappings {
		m.byTable[mp.Table] = mp
	}
	m.version = version
	clear(m.plans)
}

// Version is the mapping version set by SetMappings ("" when none).
func (m *Mapper) Version() string { return m.version }

// Mappings returns the mappings in use.
func (m *Mapper) Mappings() []*Mapping { return m.mappings }

// TypeChanges returns the type changes of published columns seen since the
// previous call (each change once), and forgets them.
func (m *Mapper) TypeChanges() []TypeChange {
	tc := m.typeChanges
	m.typeChanges = nil
	return tc
}

// MissingColumnsError is the mapping error of a change whose relation (as
// the stream announced it) lacks columns the mapping names: a rename or a
// dropped column, or a publication column list that lost them. It wraps
// ErrPermanent.
type MissingColumnsError struct {
	Table   string   // schema.name
	Columns []string // the mapped columns (and key, attribute columns) missing
	Have    []string // the relation's columns
}

func (e *MissingColumnsError) Error() string {
	return fmt.Sprintf("mapping of %s names columns the table does not have in the stream: %s (the table has: %s); fix the mapping in the config, or add the columns to the publication",
		e.Table, strings.Join(e.Columns, ", "), strings.Join(e.Have, ", "))
}

func (e *MissingColumnsError) Unwrap() error { return ErrPermanent }

// SkipRelation makes Map return nil for the changes of this version of the
// relation (until the stream announces the table again): their events
// would lack mapped columns. The caller makes sure the loss is recorded.
func (m *Mapper) SkipRelation(rel *Relation) {
	m.plans[rel.ID] = &plan{rel: rel, skip: true}
}

// Reset forgets compiled relation plans; call it when the stream restarts
// (relations are re-announced on every connection).
func (m *Mapper) Reset() {
	clear(m.plans)
	m.tx = nil
}

type plan struct {
	skip    bool // the changes of this version of the relation are not published (SkipRelation)
	rel     *Relation
	m       *Mapping
	ops     [5]bool   // the mapping publishes Op (OpRead: always)
	types   [5]string // CloudEvents type per Op
	cols    []planColumn
	attrs   []planAttr
	key     []int
	head    [5][]byte // `{"specversion":"1.0","id":"` is per event; this is `"source":...,"type":"..."`
	tableOp [5][]byte // `"table":"...","op":"..."`
}

type planColumn struct {
	idx   int
	field []byte // `"name":`
	name  string
	enc   ValueEncoder
	key   bool
	tf    *Transform // nil: published as it is
}

type planAttr struct {
	idx   int // -1: the constant value
	name  string
	typ   string
	value string     // the constant (idx -1)
	tf    *Transform // nil: the column's value as it is
}

func (m *Mapper) compile(rel *Relation, mp *Mapping) (*plan, error) {
	p := &plan{rel: rel, m: mp}
	index := make(map[string]int, len(rel.Columns))
	for i, c := range rel.Columns {
		index[c.Name] = i
	}
	var missing []string
	for _, c := range mp.Columns {
		i, ok := index[c.Column]
		if !ok {
			missing = append(missing, c.Column)
			continue
		}
		m.noteType(mp.Table, c, rel.Columns[i].TypeName)
		if err := c.Transform.CheckType(mp.Table, c.Column, rel.Columns[i].TypeName); err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrPermanent)
		}
		enc := rel.Columns[i].Encode
		if enc == nil {
			enc = EncodeString
		}
		p.cols = append(p.cols, planColumn{
			idx: i, field: appendJSONString(nil, c.Name), name: c.Name,
			enc: enc, key: rel.Columns[i].Key, tf: c.Transform,
		})
		p.cols[len(p.cols)-1].field = append(p.cols[len(p.cols)-1].field, ':')
	}
	for _, k := range mp.Key {
		i, ok := index[k]
		if !ok {
			missing = append(missing, k)
			continue
		}
		p.key = append(p.key, i)
	}
	for _, a := range mp.Attributes {
		if a.Column == "" {
			p.attrs = append(p.attrs, planAttr{idx: -1, name: a.Name, typ: a.Type, value: a.Value})
			continue
		}
		i, ok := index[a.Column]
		if !ok {
			missing = append(missing, a.Column)
			continue
		}
		if err := a.Transform.CheckType(mp.Table, a.Column, rel.Columns[i].TypeName); err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrPermanent)
		}
		p.attrs = append(p.attrs, planAttr{idx: i, name: a.Name, typ: a.Type, tf: a.Transform})
	}
	if len(missing) > 0 {
		have := make([]string, len(rel.Columns))
		for i, c := range rel.Columns {
			have[i] = c.Name
		}
		return nil, &MissingColumnsError{Table: mp.Table, Columns: missing, Have: have}
	}
	for _, op := range append(slices.Clip(mp.Ops), OpRead) {
		if int(op) >= len(p.ops) {
			continue
		}
		p.ops[op] = true
		p.types[op] = mp.TypePrefix + "." + op.String()
		b := []byte(`,"source":`)
		b = appendJSONString(b, m.source)
		b = append(b, `,"type":`...)
		b = appendJSONString(b, p.types[op])
		if m.version != "" {
			b = append(b, `,"mappingversion":`...)
			b = appendJSONString(b, m.version)
		}
		p.head[op] = b
		t := []byte(`,"table":`)
		t = appendJSONString(t, mp.Table)
		t = append(t, `,"op":"`...)
		t = append(t, op.String()...)
		t = append(t, '"')
		p.tableOp[op] = t
	}
	return p, nil
}

// noteType records the announced type of a published column, and a
// TypeChange when it differs from the previous announcement.
func (m *Mapper) noteType(table string, c MappedColumn, typ string) {
	if typ == "" {
		return
	}
	k := [2]string{table, c.Column}
	if old, ok := m.colTypes[k]; ok && old != typ {
		m.typeChanges = append(m.typeChanges, TypeChange{Table: table, Column: c.Column, Field: c.Name, OldType: old, NewType: typ})
	}
	m.colTypes[k] = typ
}

// Map returns the event for a change, or nil when the change's table or
// operation is not mapped. Errors wrap ErrPermanent: a value the column's
// encoder rejects, or a mapping that names columns the relation lacks.
func (m *Mapper) Map(c *Change) (*Event, error) {
	if c.Op == OpRead {
		return nil, fmt.Errorf("map %s: a read is mapped with MapRead: %w", c.Rel.QualifiedName(), ErrPermanent)
	}
	return m.mapChange(c, "", "", nil)
}

// MapRead returns the read event of a row re-emitted by backfill (c.Op is
// OpRead, c.New the row, c.Tx the transaction of the backfill's high
// watermark, whose position the event carries): the same mapping as live
// events of the table (columns, names, attributes, key), type
// "<prefix>.read", SNS attribute op=read, and the extension "backfill"
// naming it. Its id is ReadEventID(backfill, table, rowKey): the same when a
// chunk is sent again, another for another backfill. A table without a
// mapping yields nil.
func (m *Mapper) MapRead(c *Change, backfill, rowKey string) (*Event, error) {
	if c.Op != OpRead {
		return nil, fmt.Errorf("map read of %s: op %s: %w", c.Rel.QualifiedName(), c.Op, ErrPermanent)
	}
	r, err := m.EncodeRead(c.Rel, c.New, backfill, rowKey)
	if err != nil || r == nil {
		return nil, err
	}
	if c.Tx != m.tx {
		m.startTx(c.Tx)
	}
	return r.assemble(c.Tx, m.txTime, m.txHead), nil
}

// ReadEventID is the id of the read event of the row of table whose primary
// key is rowKey, re-emitted by backfill: "<backfill>-<hash of table and
// key>", stable for the backfill and new for the next one.
func ReadEventID(backfill, table, rowKey string) string {
	b, _ := appendReadEventID(nil, nil, backfill, table, rowKey)
	return string(b)
}

// appendReadEventID appends ReadEventID(backfill, table, rowKey) to b,
// hashing in scratch (returned for reuse): no allocation once both have
// room.
func appendReadEventID(b, scratch []byte, backfill, table, rowKey string) ([]byte, []byte) {
	scratch = append(append(append(scratch[:0], table...), 0), rowKey...)
	sum := sha256.Sum256(scratch)
	b = append(b, backfill...)
	b = append(b, '-')
	return hex.AppendEncode(b, sum[:12]), scratch
}

// mapChange encodes c's event. With split (a read encoded before its high
// watermark, see EncodeRead) the transaction's parts ("time", "lsn",
// "xid") are left out of the body, their places recorded in split, and the
// event is split's.
func (m *Mapper) mapChange(c *Change, backfill, rowKey string, split *ReadEvent) (*Event, error) {
	p := m.plans[c.Rel.ID]
	if p == nil || p.rel != c.Rel {
		mp := m.byTable[c.Rel.QualifiedName()]
		if mp == nil {
			return nil, nil
		}
		var err error
		if p, err = m.compile(c.Rel, mp); err != nil {
			return nil, err
		}
		m.plans[c.Rel.ID] = p
	}
	if p.skip || int(c.Op) >= len(p.ops) || !p.ops[c.Op] {
		return nil, nil
	}
	if split == nil && c.Tx != m.tx {
		m.startTx(c.Tx)
	}

	row := c.New
	if c.Op == OpDelete {
		row = c.Old
	}
	// Everything of the event that is built per row lives in one buffer:
	// the body, then the id, key and attribute values, which are strings
	// over it (it is never modified once built).
	b := m.buf[:0]
	b = append(b, `{"specversion":"1.0","id":"`...)
	idStart := len(b)
	if split != nil {
		b, m.idScratch = appendReadEventID(b, m.idScratch, backfill, c.Rel.QualifiedName(), rowKey)
	} else {
		b = append(b, m.txLSN...)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(c.Seq), 10)
	}
	idEnd := len(b)
	b = append(b, '"')
	b = append(b, p.head[c.Op]...)
	keyStart, keyEnd := -1, -1
	if len(p.key) > 0 {
		keyStart = len(b) + len(`,"subject":`)
		b = append(b, `,"subject":`...)
		b = appendKey(b, row, p.key)
		if len(b) == keyStart+2 { // "": no subject
			b = b[:keyStart-len(`,"subject":`)]
			keyStart = -1
		} else {
			keyEnd = len(b)
		}
	}
	if split != nil {
		split.timeAt = int32(len(b))
	} else {
		b = append(b, m.txTime...)
	}
	b = append(b, `,"datacontenttype":"application/json"`...)
	b = append(b, p.tableOp[c.Op]...)
	if backfill != "" {
		b = append(b, `,"backfill":`...)
		b = appendJSONString(b, backfill)
	}
	if split != nil {
		split.headAt = int32(len(b))
	} else {
		b = append(b, m.txHead...)
	}
	b = append(b, `,"data":`...)
	var unchanged []string
	var err error
	b, unchanged, err = p.appendRow(b, row, c.Op == OpDelete && c.OldIsKey, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s of %s: %w", c.Op, b[idStart:idEnd], p.m.Table, err)
	}
	if c.Op == OpUpdate && c.Old != nil {
		b = append(b, `,"old":`...)
		if b, _, err = p.appendRow(b, c.Old, c.OldIsKey, nil); err != nil {
			return nil, fmt.Errorf("%s %s of %s (old row): %w", c.Op, b[idStart:idEnd], p.m.Table, err)
		}
	}
	if len(unchanged) > 0 {
		b = append(b, `,"unchanged":[`...)
		for i, name := range unchanged {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, name)
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	bodyLen := len(b)
	m.buf = b

	size := bodyLen + (idEnd - idStart)
	if keyStart >= 0 {
		size += keyEnd - keyStart
	}
	for _, a := range p.attrs {
		switch {
		case a.tf != nil:
			size += 64
		case a.idx >= 0 && a.idx < len(row):
			size += len(row[a.idx].Value)
		}
	}
	var buf []byte
	var ev *Event
	if split != nil {
		// A read's bytes: the body, the room for the transaction's
		// parts, then the attribute values, which assemble does not
		// move.
		buf = m.readSlab.bytes(size + readTxRoom)
		buf = append(buf, b...)
		buf = buf[:bodyLen+readTxRoom]
		ev = &split.Event
		ev.Table, ev.Op, ev.Type, ev.Topic = p.m.Table, c.Op, p.types[c.Op], p.m.Topic
	} else {
		buf = make([]byte, 0, size)
		buf = append(buf, b...)
		ev = &Event{
			Table:      p.m.Table,
			Op:         c.Op,
			Type:       p.types[c.Op],
			Topic:      p.m.Topic,
			CommitTime: c.Tx.CommitTime,
			CommitLSN:  c.Tx.CommitLSN,
		}
	}
	ev.Body = buf[:bodyLen:bodyLen]
	if split != nil {
		ev.Body = buf[: bodyLen : bodyLen+readTxRoom]
	}
	ev.ID = bytesString(buf[idStart:idEnd])
	if keyStart >= 0 {
		// The subject is a JSON string; the key is its unquoted value
		// (the common case: no escapes needed).
		raw := buf[keyStart+1 : keyEnd-1]
		if bytes.IndexByte(raw, '\\') < 0 {
			ev.Key = bytesString(raw)
		} else {
			ev.Key = keyOf(row, p.key)
		}
	}
	ev.Attributes = ev.attrs[:3]
	ev.Attributes[0] = Attribute{Name: "table", Type: "String", Value: p.m.Table}
	ev.Attributes[1] = Attribute{Name: "op", Type: "String", Value: c.Op.String()}
	ev.Attributes[2] = Attribute{Name: "type", Type: "String", Value: ev.Type}
	for _, a := range p.attrs {
		if a.idx < 0 {
			ev.Attributes = append(ev.Attributes, Attribute{Name: a.name, Type: a.typ, Value: a.value})
			continue
		}
		if a.idx >= len(row) || row[a.idx].Kind != DatumText || len(row[a.idx].Value) == 0 {
			continue // SNS has no null attribute; the value is in the body
		}
		v := row[a.idx].Value
		if a.tf != nil {
			if a.tf.Kind == TransformNull {
				continue
			}
			v = a.tf.Apply(nil, v)
			if len(v) == 0 {
				continue
			}
		}
		if a.typ == "Number" && !isSNSNumber(v) {
			continue // NaN, Infinity: SNS would refuse the message
		}
		start := len(buf)
		buf = append(buf, v...)
		ev.Attributes = append(ev.Attributes, Attribute{Name: a.name, Type: a.typ, Value: bytesString(buf[start:])})
	}
	return ev, nil
}

// bytesString returns a string sharing b's memory; b must never change.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// appendKey appends the JSON string of the key columns' values joined by
// "/" (an empty string when they are all null).
func appendKey(b []byte, row []Datum, idx []int) []byte {
	if len(idx) == 1 {
		if idx[0] < len(row) && row[idx[0]].Kind == DatumText {
			return AppendJSONString(b, row[idx[0]].Value)
		}
		return append(b, '"', '"')
	}
	return appendJSONString(b, keyOf(row, idx))
}

// appendRow appends the JSON object of the published columns of row. With
// keyOnly, only replica identity columns are present in row. Unchanged TOAST
// values are left out of the object and returned by name.
func (p *plan) appendRow(b []byte, row []Datum, keyOnly bool, unchanged []string) ([]byte, []string, error) {
	b = append(b, '{')
	first := true
	for i := range p.cols {
		pc := &p.cols[i]
		if keyOnly && !pc.key {
			continue
		}
		if pc.idx >= len(row) {
			continue
		}
		d := row[pc.idx]
		if d.Kind == DatumUnchanged {
			unchanged = append(unchanged, pc.name)
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, pc.field...)
		switch d.Kind {
		case DatumNull:
			b = append(b, "null"...)
		case DatumText:
			if pc.tf != nil {
				b = pc.tf.AppendJSON(b, d.Value)
				continue
			}
			var err error
			if b, err = pc.enc(b, d.Value); err != nil {
				return b, nil, fmt.Errorf("column %s: %w: %w", pc.name, err, ErrPermanent)
			}
		default:
			return b, nil, fmt.Errorf("column %s: unexpected binary value (the connector streams in text mode): %w", pc.name, ErrPermanent)
		}
	}
	return append(b, '}'), unchanged, nil
}

func (m *Mapper) startTx(tx *Tx) {
	m.tx = tx
	m.txLSN = append(m.txLSN[:0], tx.CommitLSN.String()...)
	h := []byte(`,"lsn":"`)
	h = append(h, tx.CommitLSN.String()...)
	h = append(h, `","xid":`...)
	h = strconv.AppendUint(h, uint64(tx.XID), 10)
	m.txHead = h
	t := []byte(`,"time":"`)
	t = tx.CommitTime.UTC().AppendFormat(t, "2006-01-02T15:04:05.000000Z07:00")
	t = append(t, '"')
	m.txTime = t
}

func keyOf(row []Datum, idx []int) string {
	if len(idx) == 1 {
		if idx[0] < len(row) && row[idx[0]].Kind == DatumText {
			return string(row[idx[0]].Value)
		}
		return ""
	}
	var sb strings.Builder
	for i, j := range idx {
		if i > 0 {
			sb.WriteByte('/')
		}
		if j < len(row) && row[j].Kind == DatumText {
			sb.Write(row[j].Value)
		}
	}
	return sb.String()
}

// isSNSNumber reports whether s is a finite decimal number SNS accepts as a
// Number attribute.
func isSNSNumber(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	digits := true
	for i, c := range s {
		if !(c >= '0' && c <= '9' || i == 0 && c == '-' && len(s) > 1) {
			digits = false
			break
		}
	}
	if digits && len(s) <= 38 {
		return true
	}
	f, err := strconv.ParseFloat(string(s), 64)
	return err == nil && f-f == 0
}

// EncodeString is the fallback ValueEncoder: the text form as a JSON string.
func EncodeString(dst, text []byte) ([]byte, error) {
	return AppendJSONString(dst, text), nil
}

func appendJSONString(dst []byte, s string) []byte {
	return AppendJSONString(dst, []byte(s))
}

// AppendJSONString appends s as a JSON string, as encoding/json writes one
// without HTML escaping: quotes, backslashes and control characters
// escaped, U+2028 and U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
// Used by the mapper and by the type encoders. It costs about 1 µs and two
// small allocations per string; a hand-written escaper without allocations
// (0.1 µs) made no difference end to end: `go run ./tools/bench -compare`,
// medians of 6 interleaved runs of 200,000 rows, connector CPU 14.5 vs
// 15.7, 10.9 vs 10.7 and 11.4 vs 10.8 µs/row on the three workloads
// (this one first), the hand-written one cheaper in 9 of 18 pairs.
// A string of printable ASCII without quote or backslash (which
// encoding/json writes as it is) is appended directly, without the
// encoder's two allocations: in make bench's backfill item (several such
// strings per row: status, source, timestamps, the subject) the connector's
// CPU per backfilled row was 4.5, 5.1, 6.1, 4.5 µs with it against 5.2,
// 5.3, 5.9, 6.1 µs without (interleaved runs of 300,000 rows, load 5–7),
// and BenchmarkReadOnReader's encoding 15 → 5 allocations per row.
func AppendJSONString(dst []byte, s []byte) []byte {
	plain := true
	for _, c := range s {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	e := stringEncoders.Get().(*stringEncoder)
	e.buf.Reset()
	_ = e.enc.Encode(string(s)) // a string always encodes
	dst = append(dst, bytes.TrimSuffix(e.buf.Bytes(), []byte{'\n'})...)
	if e.buf.Cap() <= 64<<10 { // the pool must not keep a huge value's buffer alive
		stringEncoders.Put(e)
	}
	return dst
}

// stringEncoder is a reusable encoding/json encoder of strings.
type stringEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var stringEncoders = sync.Pool{New: func() any {
	e := &stringEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}
