package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/baitoru/baitoru-cdc/connector"
)

// Types turns PostgreSQL text-format column values, as pgoutput sends them
// (proto_version '1', text mode), into JSON. The connector's sessions run
// with TimeZone=UTC, DateStyle=ISO, IntervalStyle=iso_8601,
// extra_float_digits=3 and bytea_output=hex; the encoders rely on the ISO
// DateStyle and accept any time zone offset and both bytea formats.
//
// JSON mapping (column type → JSON value):
//
//	PostgreSQL type                          JSON
//	---------------------------------------  ------------------------------------------------------------
//	int2, int4, int8, oid, xid, xid8, cid    number, digits copied as sent (no float conversion): 9007199254740993
//	numeric                                  string, exactly the text: "1234.5600", "NaN", "Infinity", "-Infinity"
//	float4, float8                           number as sent (1.5, 1e+100, -0); "NaN", "Infinity", "-Infinity" as strings
//	bool                                     true / false (from t / f)
//	text, varchar, bpchar, name, "char",     string (control characters, quotes and backslashes escaped,
//	  unknown, citext and other category-S     U+2028/U+2029 escaped, invalid UTF-8 replaced by U+FFFD);
//	  base types                               bpchar keeps its padding
//	uuid                                     string "0b9e4b8a-7c1f-4a0e-9d3c-2f6f1e0b8a11"
//	date                                     string "2026-11-25"
//	timestamp                                string "2026-11-25T03:00:00.123456" (no zone)
//	timestamptz                              string, RFC 3339 in UTC: "2026-11-25T03:00:00.123456Z"
//	                                           (other offsets are converted to UTC; fraction kept as sent)
//	date/timestamp/timestamptz ±infinity     "infinity" / "-infinity"
//	  … outside years 1–9999                 ISO 8601 expanded year: sign and at least 6 digits, astronomical
//	                                           numbering (1 BC = +000000, 44 BC = -000043):
//	                                           "0044-03-15 00:00:00+00 BC" → "-000043-03-15T00:00:00Z",
//	                                           "10000-01-01" → "+010000-01-01" (JavaScript's Date parses
//	                                           this form for years within ±275760)
//	time, timetz, interval                   string as sent ("03:00:00.5", "03:00:00+09", "P1Y2M3DT4H5M6S")
//	json, jsonb                              the JSON itself, whitespace outside strings removed (invalid JSON: string);
//	                                           a JSON null value and SQL NULL both appear as null
//	bytea                                    string, standard base64 with padding (hex and escape input formats)
//	inet, cidr, macaddr, macaddr8, money,    string of the text as sent
//	  bit, varbit, xml, jsonpath, tsvector,
//	  tsquery, pg_lsn, tid, geometric types,
//	  reg* types, refcursor, aclitem, snapshots
//	enum                                     string (the label)
//	domain                                   as its base type
//	array of any of these                    JSON array (nested for multi-dimensional arrays); elements encoded as
//	                                           their type above, NULL elements as null; explicit lower bounds
//	                                           ("[0:1]={1,2}") are dropped: [1,2]
//	range, multirange, composite, record,    string of the text as sent (Handled reports false)
//	  int2vector, oidvector, unknown OIDs
//	NULL (any type)                          null (written by the caller, never passed to an encoder)
//
// Encoders return an error wrapping ErrInvalidValue, naming the type but not
// the value, for text that is not valid for the type (int4 "12a"); they never
// panic and, on success, always append valid JSON.
//
// Builtin types are known without a query; Resolve loads enums, domains,
// composite types, extension types and their arrays from pg_type. A Types is
// safe for concurrent use.
type Types struct {
	mu       sync.RWMutex
	resolved map[uint32]TypeInfo
	enc      map[uint32]connector.ValueEncoder // encoders of fully known types
}

// TypeInfo describes a column type; resolved from pg_type for non-builtin OIDs.
type TypeInfo struct {
	OID      uint32
	Name     string // typname, e.g. "int4", "_text", "application_status"
	Type     byte   // typtype: 'b' base, 'e' enum, 'd' domain, 'c' composite, 'r' range, 'm' multirange, 'p' pseudo
	Category byte   // typcategory: 'A' array, 'N' numeric, 'S' string, 'E' enum, ...
	Elem     uint32 // element type OID for arrays (typelem), 0 otherwise
	Base     uint32 // base type OID for domains (typbasetype), 0 otherwise
	Delim    byte   // array delimiter (typdelim), ',' for almost all
}

// ErrInvalidValue is wrapped by every error an encoder returns: the text is
// not a valid value of the column type. Retrying cannot fix it.
var ErrInvalidValue = errors.New("invalid value")

// ValueError reports text that is not a valid value of Type. It never holds
// the value itself (column values may be personal data).
type ValueError struct {
	Type   string // type name, e.g. "int4", "_int4"
	Offset int    // byte offset in the text where the problem was found
	Reason string
	Err    error // for arrays: the element's error
}

func (e *ValueError) Error() string {
	s := "invalid " + e.Type + " value: " + e.Reason + " at byte " + strconv.Itoa(e.Offset)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrInvalidValue) true.
func (e *ValueError) Is(target error) bool { return target == ErrInvalidValue }

// Unwrap returns the element's error, if any.
func (e *ValueError) Unwrap() error { return e.Err }

func invalid(typ string, off int, reason string) error {
	return &ValueError{Type: typ, Offset: off, Reason: reason}
}

// NewTypes returns a Types that knows PostgreSQL's builtin types.
func NewTypes() *Types {
	return &Types{resolved: map[uint32]TypeInfo{}, enc: map[uint32]connector.ValueEncoder{}}
}

// Info returns what is known about a type OID.
func (t *Types) Info(oid uint32) (TypeInfo, bool) {
	if ti, ok := builtinInfo[oid]; ok {
		return ti, true
	}
	t.mu.RLock()
	ti, ok := t.resolved[oid]
	t.mu.RUnlock()
	return ti, ok
}

// Name returns the type's typname, or "oid <n>" when the OID is unknown.
func (t *Types) Name(oid uint32) string {
	if ti, ok := t.Info(oid); ok {
		return ti.Name
	}
	return "oid " + strconv.FormatUint(uint64(oid), 10)
}

// resolveSQL loads the requested types and, recursively, their element and
// base types.
const resolveSQL = `WITH RECURSIVE deps(oid) AS (
    SELECT o FROM unnest($1::oid[]) AS o
  UNION
    SELECT x.oid FROM deps d JOIN pg_catalog.pg_type t ON t.oid = d.oid,
      LATERAL (VALUES (t.typelem), (t.typbasetype)) AS x(oid)
    WHERE x.oid <> 0
)
SELECT t.oid, t.typname::text, t.typtype::text, t.typcategory::text,
       CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END, t.typbasetype, t.typdelim::text
FROM pg_catalog.pg_type t JOIN deps d ON t.oid = d.oid`

// Resolve loads TypeInfo for the OIDs it does not know (enums, domains,
// composite and extension types, their arrays), with their element and base
// types, in one query on conn. OIDs that pg_type does not hold stay unknown
// (encoded as strings). Call it before Encoder for a relation's columns;
// conn must not be used concurrently by the caller during the call.
func (t *Types) Resolve(ctx context.Context, conn *pgx.Conn, oids []uint32) error {
	var missing []uint32
	t.mu.RLock()
	for _, oid := range oids {
		if _, ok := builtinInfo[oid]; ok {
			continue
		}
		if _, ok := t.resolved[oid]; !ok {
			missing = append(missing, oid)
		}
	}
	t.mu.RUnlock()
	if len(missing) == 0 {
		return nil
	}
	rows, err := conn.Query(ctx, resolveSQL, missing)
	if err != nil {
		return fmt.Errorf("query pg_type: %w", err)
	}
	var found []TypeInfo
	for rows.Next() {
		var (
			ti                  TypeInfo
			typtype, cat, delim string
		)
		if err := rows.Scan(&ti.OID, &ti.Name, &typtype, &cat, &ti.Elem, &ti.Base, &delim); err != nil {
			rows.Close()
			return fmt.Errorf("scan pg_type: %w", err)
		}
		ti.Type, ti.Category, ti.Delim = firstByte(typtype), firstByte(cat), firstByte(delim)
		found = append(found, ti)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query pg_type: %w", err)
	}
	t.mu.Lock()
	for _, ti := range found {
		if _, ok := builtinInfo[ti.OID]; !ok {
			t.resolved[ti.OID] = ti
		}
	}
	t.mu.Unlock()
	return nil
}

func firstByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

// maxTypeDepth bounds the element/base chain followed for one type.
const maxTypeDepth = 16

// Encoder returns the ValueEncoder for a column type OID. Unknown OIDs (not
// builtin, not resolved) get the text-as-string encoder. The encoder is safe
// for concurrent use and does not allocate for scalar types.
func (t *Types) Encoder(oid uint32) connector.ValueEncoder {
	t.mu.RLock()
	enc, ok := t.enc[oid]
	t.mu.RUnlock()
	if ok {
		return enc
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	enc, complete := t.build(oid, 0)
	if complete {
		t.enc[oid] = enc
	}
	return enc
}

// Handled reports whether the connector encodes the type natively; false
// means values fall back to their text form as a JSON string (ranges,
// composites, unknown OIDs, arrays of those, domains over those).
func (t *Types) Handled(oid uint32) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.handled(oid, 0)
}

func (t *Types) info(oid uint32) (TypeInfo, bool) {
	if ti, ok := builtinInfo[oid]; ok {
		return ti, true
	}
	ti, ok := t.resolved[oid]
	return ti, ok
}

func (t *Types) handled(oid uint32, depth int) bool {
	if depth > maxTypeDepth {
		return false
	}
	if k, ok := builtinKind[oid]; ok {
		if k == kindArray {
			return t.handled(builtinInfo[oid].Elem, depth+1)
		}
		return k != kindFallback
	}
	ti, ok := t.resolved[oid]
	if !ok {
		return false
	}
	switch {
	case ti.Type == 'e':
		return true
	case ti.Type == 'd':
		return t.handled(ti.Base, depth+1)
	case ti.Type == 'b' && ti.Category == 'A' && ti.Elem != 0:
		return t.handled(ti.Elem, depth+1)
	case ti.Type == 'b' && ti.Category == 'S':
		return true
	}
	return false
}

// build returns the encoder for oid and whether every type it depends on
// is known (only then may it be cached). Called with t.mu held.
func (t *Types) build(oid uint32, depth int) (connector.ValueEncoder, bool) {
	if depth > maxTypeDepth {
		return connector.EncodeString, false
	}
	if k, ok := builtinKind[oid]; ok {
		if k == kindArray {
			ti := builtinInfo[oid]
			elem, _ := t.build(ti.Elem, depth+1)
			return arrayEncoder(ti.Name, elem, builtinInfo[ti.Elem].Delim), true
		}
		return builtinEnc[oid], true
	}
	ti, ok := t.resolved[oid]
	if !ok {
		return connector.EncodeString, false
	}
	switch {
	case ti.Type == 'd':
		return t.build(ti.Base, depth+1)
	case ti.Type == 'b' && ti.Category == 'A' && ti.Elem != 0:
		elem, complete := t.build(ti.Elem, depth+1)
		delim := byte(',')
		if ei, ok := t.info(ti.Elem); ok && ei.Delim != 0 {
			delim = ei.Delim
		}
		return arrayEncoder(ti.Name, elem, delim), complete
	}
	// Enums, category-S base types (citext), composites, ranges and other
	// extension types: the text as a JSON string.
	return connector.EncodeString, true
}

// kind selects the encoder of a builtin type.
type kind uint8

const (
	kindFallback kind = iota // text as JSON string; not natively handled
	kindString               // text as JSON string; natively handled
	kindInt
	kindUint
	kindFloat
	kindNumeric
	kindBool
	kindUUID
	kindDate
	kindTimestamp
	kindTimestamptz
	kindJSON
	kindBytea
	kindArray
)

// scalarEncoder returns the encoder of a builtin non-array type; errors name
// the type.
func scalarEncoder(k kind, name string) connector.ValueEncoder {
	switch k {
	case kindInt:
		return func(dst, text []byte) ([]byte, error) { return encodeInt(dst, text, name) }
	case kindUint:
		return func(dst, text []byte) ([]byte, error) { return encodeUint(dst, text, name) }
	case kindFloat:
		return func(dst, text []byte) ([]byte, error) { return encodeFloat(dst, text, name) }
	case kindNumeric:
		return func(dst, text []byte) ([]byte, error) { return encodeNumeric(dst, text, name) }
	case kindBool:
		return func(dst, text []byte) ([]byte, error) { return encodeBool(dst, text, name) }
	case kindUUID:
		return func(dst, text []byte) ([]byte, error) { return encodeUUID(dst, text, name) }
	case kindDate:
		return func(dst, text []byte) ([]byte, error) { return encodeCivil(dst, text, partDate, name) }
	case kindTimestamp:
		return func(dst, text []byte) ([]byte, error) { return encodeCivil(dst, text, partDate|partTime, name) }
	case kindTimestamptz:
		return func(dst, text []byte) ([]byte, error) {
			return encodeCivil(dst, text, partDate|partTime|partZone, name)
		}
	case kindJSON:
		return encodeJSON
	case kindBytea:
		return func(dst, text []byte) ([]byte, error) { return encodeBytea(dst, text, name) }
	}
	return connector.EncodeString
}

// builtinType is one row of the builtin table: a base type and its array.
type builtinType struct {
	oid      uint32
	name     string
	typtype  byte
	category byte
	delim    byte
	kind     kind
	array    uint32 // typarray, 0 if none
}

// builtinTypes lists the builtin types of PostgreSQL 15 that can be table
// columns (TestTypesBuiltinsMatchCatalog checks it against pg_type).
var builtinTypes = []builtinType{
	{pgtype.BoolOID, "bool", 'b', 'B', ',', kindBool, pgtype.BoolArrayOID},
	{pgtype.ByteaOID, "bytea", 'b', 'U', ',', kindBytea, pgtype.ByteaArrayOID},
	{pgtype.QCharOID, "char", 'b', 'Z', ',', kindString, pgtype.QCharArrayOID},
	{pgtype.NameOID, "name", 'b', 'S', ',', kindString, pgtype.NameArrayOID},
	{pgtype.Int8OID, "int8", 'b', 'N', ',', kindInt, pgtype.Int8ArrayOID},
	{pgtype.Int2OID, "int2", 'b', 'N', ',', kindInt, pgtype.Int2ArrayOID},
	{22, "int2vector", 'b', 'A', ',', kindFallback, 1006},
	{pgtype.Int4OID, "int4", 'b', 'N', ',', kindInt, pgtype.Int4ArrayOID},
	{24, "regproc", 'b', 'N', ',', kindString, 1008},
	{pgtype.TextOID, "text", 'b', 'S', ',', kindString, pgtype.TextArrayOID},
	{pgtype.OIDOID, "oid", 'b', 'N', ',', kindUint, pgtype.OIDArrayOID},
	{pgtype.TIDOID, "tid", 'b', 'U', ',', kindString, pgtype.TIDArrayOID},
	{pgtype.XIDOID, "xid", 'b', 'U', ',', kindUint, pgtype.XIDArrayOID},
	{pgtype.CIDOID, "cid", 'b', 'U', ',', kindUint, pgtype.CIDArrayOID},
	{30, "oidvector", 'b', 'A', ',', kindFallback, 1013},
	{pgtype.JSONOID, "json", 'b', 'U', ',', kindJSON, pgtype.JSONArrayOID},
	{pgtype.XMLOID, "xml", 'b', 'U', ',', kindString, pgtype.XMLArrayOID},
	{pgtype.PointOID, "point", 'b', 'G', ',', kindString, pgtype.PointArrayOID},
	{pgtype.LsegOID, "lseg", 'b', 'G', ',', kindString, pgtype.LsegArrayOID},
	{pgtype.PathOID, "path", 'b', 'G', ',', kindString, pgtype.PathArrayOID},
	{pgtype.BoxOID, "box", 'b', 'G', ';', kindString, pgtype.BoxArrayOID},
	{pgtype.PolygonOID, "polygon", 'b', 'G', ',', kindString, pgtype.PolygonArrayOID},
	{pgtype.LineOID, "line", 'b', 'G', ',', kindString, pgtype.LineArrayOID},
	{pgtype.CIDROID, "cidr", 'b', 'I', ',', kindString, pgtype.CIDRArrayOID},
	{pgtype.Float4OID, "float4", 'b', 'N', ',', kindFloat, pgtype.Float4ArrayOID},
	{pgtype.Float8OID, "float8", 'b', 'N', ',', kindFloat, pgtype.Float8ArrayOID},
	{pgtype.UnknownOID, "unknown", 'p', 'X', ',', kindString, 0},
	{pgtype.CircleOID, "circle", 'b', 'G', ',', kindString, pgtype.CircleArrayOID},
	{pgtype.Macaddr8OID, "macaddr8", 'b', 'U', ',', kindString, 775},
	{790, "money", 'b', 'N', ',', kindString, 791},
	{pgtype.MacaddrOID, "macaddr", 'b', 'U', ',', kindString, pgtype.MacaddrArrayOID},
	{pgtype.InetOID, "inet", 'b', 'I', ',', kindString, pgtype.InetArrayOID},
	{pgtype.ACLItemOID, "aclitem", 'b', 'U', ',', kindString, pgtype.ACLItemArrayOID},
	{pgtype.BPCharOID, "bpchar", 'b', 'S', ',', kindString, pgtype.BPCharArrayOID},
	{pgtype.VarcharOID, "varchar", 'b', 'S', ',', kindString, pgtype.VarcharArrayOID},
	{pgtype.DateOID, "date", 'b', 'D', ',', kindDate, pgtype.DateArrayOID},
	{pgtype.TimeOID, "time", 'b', 'D', ',', kindString, pgtype.TimeArrayOID},
	{pgtype.TimestampOID, "timestamp", 'b', 'D', ',', kindTimestamp, pgtype.TimestampArrayOID},
	{pgtype.TimestamptzOID, "timestamptz", 'b', 'D', ',', kindTimestamptz, pgtype.TimestamptzArrayOID},
	{pgtype.IntervalOID, "interval", 'b', 'T', ',', kindString, pgtype.IntervalArrayOID},
	{pgtype.TimetzOID, "timetz", 'b', 'D', ',', kindString, pgtype.TimetzArrayOID},
	{pgtype.BitOID, "bit", 'b', 'V', ',', kindString, pgtype.BitArrayOID},
	{pgtype.VarbitOID, "varbit", 'b', 'V', ',', kindString, pgtype.VarbitArrayOID},
	{pgtype.NumericOID, "numeric", 'b', 'N', ',', kindNumeric, pgtype.NumericArrayOID},
	{1790, "refcursor", 'b', 'U', ',', kindString, 2201},
	{2202, "regprocedure", 'b', 'N', ',', kindString, 2207},
	{2203, "regoper", 'b', 'N', ',', kindString, 2208},
	{2204, "regoperator", 'b', 'N', ',', kindString, 2209},
	{2205, "regclass", 'b', 'N', ',', kindString, 2210},
	{2206, "regtype", 'b', 'N', ',', kindString, 2211},
	{pgtype.RecordOID, "record", 'p', 'P', ',', kindFallback, pgtype.RecordArrayOID},
	{pgtype.UUIDOID, "uuid", 'b', 'U', ',', kindUUID, pgtype.UUIDArrayOID},
	{2970, "txid_snapshot", 'b', 'U', ',', kindString, 2949},
	{3220, "pg_lsn", 'b', 'U', ',', kindString, 3221},
	{pgtype.TSVectorOID, "tsvector", 'b', 'U', ',', kindString, pgtype.TSVectorArrayOID},
	{3615, "tsquery", 'b', 'U', ',', kindString, 3645},
	{3734, "regconfig", 'b', 'N', ',', kindString, 3735},
	{3769, "regdictionary", 'b', 'N', ',', kindString, 3770},
	{pgtype.JSONBOID, "jsonb", 'b', 'U', ',', kindJSON, pgtype.JSONBArrayOID},
	{pgtype.Int4rangeOID, "int4range", 'r', 'R', ',', kindFallback, pgtype.Int4rangeArrayOID},
	{pgtype.NumrangeOID, "numrange", 'r', 'R', ',', kindFallback, pgtype.NumrangeArrayOID},
	{pgtype.TsrangeOID, "tsrange", 'r', 'R', ',', kindFallback, pgtype.TsrangeArrayOID},
	{pgtype.TstzrangeOID, "tstzrange", 'r', 'R', ',', kindFallback, pgtype.TstzrangeArrayOID},
	{pgtype.DaterangeOID, "daterange", 'r', 'R', ',', kindFallback, pgtype.DaterangeArrayOID},
	{pgtype.Int8rangeOID, "int8range", 'r', 'R', ',', kindFallback, pgtype.Int8rangeArrayOID},
	{pgtype.JSONPathOID, "jsonpath", 'b', 'U', ',', kindString, pgtype.JSONPathArrayOID},
	{4089, "regnamespace", 'b', 'N', ',', kindString, 4090},
	{4096, "regrole", 'b', 'N', ',', kindString, 4097},
	{4191, "regcollation", 'b', 'N', ',', kindString, 4192},
	{pgtype.Int4multirangeOID, "int4multirange", 'm', 'R', ',', kindFallback, pgtype.Int4multirangeArrayOID},
	{pgtype.NummultirangeOID, "nummultirange", 'm', 'R', ',', kindFallback, pgtype.NummultirangeArrayOID},
	{pgtype.TsmultirangeOID, "tsmultirange", 'm', 'R', ',', kindFallback, pgtype.TsmultirangeArrayOID},
	{pgtype.TstzmultirangeOID, "tstzmultirange", 'm', 'R', ',', kindFallback, pgtype.TstzmultirangeArrayOID},
	{pgtype.DatemultirangeOID, "datemultirange", 'm', 'R', ',', kindFallback, pgtype.DatemultirangeArrayOID},
	{pgtype.Int8multirangeOID, "int8multirange", 'm', 'R', ',', kindFallback, pgtype.Int8multirangeArrayOID},
	{5038, "pg_snapshot", 'b', 'U', ',', kindString, 5039},
	{pgtype.XID8OID, "xid8", 'b', 'U', ',', kindUint, pgtype.XID8ArrayOID},
}

var (
	builtinInfo = map[uint32]TypeInfo{}
	builtinKind = map[uint32]kind{}
	builtinEnc  = map[uint32]connector.ValueEncoder{} // non-array builtins
)

func init() {
	for _, b := range builtinTypes {
		builtinInfo[b.oid] = TypeInfo{OID: b.oid, Name: b.name, Type: b.typtype, Category: b.category, Delim: b.delim}
		builtinKind[b.oid] = b.kind
		builtinEnc[b.oid] = scalarEncoder(b.kind, b.name)
		if b.array != 0 {
			// Array types carry their element's delimiter (only _box differs).
			builtinInfo[b.array] = TypeInfo{OID: b.array, Name: "_" + b.name, Type: 'b', Category: 'A', Elem: b.oid, Delim: b.delim}
			builtinKind[b.array] = kindArray
		}
	}
	// _record is a pseudo-type, not an array type.
	builtinInfo[pgtype.RecordArrayOID] = TypeInfo{OID: pgtype.RecordArrayOID, Name: "_record", Type: 'p', Category: 'P', Delim: ','}
	builtinKind[pgtype.RecordArrayOID] = kindFallback
	builtinEnc[pgtype.RecordArrayOID] = connector.EncodeString
	// int2vector and oidvector are category A with an element type, but
	// their text form is space-separated, not an array literal.
	for oid, elem := range map[uint32]uint32{22: pgtype.Int2OID, 30: pgtype.OIDOID} {
		ti := builtinInfo[oid]
		ti.Elem = elem
		builtinInfo[oid] = ti
	}
}

// scratchPool holds the encoders' scratch buffers (escaped array elements,
// decoded bytea).
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func getScratch() *[]byte { return scratchPool.Get().(*[]byte) }

// putScratch returns a buffer to the pool, unless one huge value grew it:
// the pool must not keep megabytes alive.
func putScratch(b *[]byte) {
	if cap(*b) > 64<<10 {
		return
	}
	scratchPool.Put(b)
}
