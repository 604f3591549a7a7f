package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

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

// --- scalar encoders ---

const hexDigits = "0123456789abcdef"

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validInteger reports whether s is an integer in JSON number syntax
// (optional '-' when signed, no leading zeros).
func validInteger(s []byte, signed bool) (int, bool) {
	i := 0
	if signed && len(s) > 0 && s[0] == '-' {
		i++
	}
	if i == len(s) {
		return i, false
	}
	if s[i] == '0' && len(s) > i+1 {
		return i + 1, false
	}
	for ; i < len(s); i++ {
		if !isDigit(s[i]) {
			return i, false
		}
	}
	return i, true
}

func encodeInt(dst, text []byte, typ string) ([]byte, error) {
	if off, ok := validInteger(text, true); !ok {
		return dst, invalid(typ, off, "want an integer")
	}
	return append(dst, text...), nil
}

func encodeUint(dst, text []byte, typ string) ([]byte, error) {
	if off, ok := validInteger(text, false); !ok {
		return dst, invalid(typ, off, "want an unsigned integer")
	}
	return append(dst, text...), nil
}

// validNumber reports whether s is a JSON number.
func validNumber(s []byte) (int, bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i == len(s):
		return i, false
	case s[i] == '0':
		i++
	case isDigit(s[i]):
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || !isDigit(s[i]) {
			return i, false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || !isDigit(s[i]) {
			return i, false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i, i == len(s)
}

func isSpecialFloat(s []byte) bool {
	switch string(s) {
	case "NaN", "Infinity", "-Infinity":
		return true
	}
	return false
}

func encodeFloat(dst, text []byte, typ string) ([]byte, error) {
	if isSpecialFloat(text) {
		dst = append(dst, '"')
		dst = append(dst, text...)
		return append(dst, '"'), nil
	}
	if off, ok := validNumber(text); !ok {
		return dst, invalid(typ, off, "want a number, NaN or [-]Infinity")
	}
	return append(dst, text...), nil
}

func encodeNumeric(dst, text []byte, typ string) ([]byte, error) {
	if !isSpecialFloat(text) {
		i := 0
		if i < len(text) && text[i] == '-' {
			i++
		}
		digits := i
		for i < len(text) && isDigit(text[i]) {
			i++
		}
		ok := i > digits
		if ok && i < len(text) && text[i] == '.' {
			i++
			frac := i
			for i < len(text) && isDigit(text[i]) {
				i++
			}
			ok = i > frac
		}
		if !ok || i != len(text) {
			return dst, invalid(typ, i, "want a decimal number, NaN or [-]Infinity")
		}
	}
	dst = append(dst, '"')
	dst = append(dst, text...)
	return append(dst, '"'), nil
}

func encodeBool(dst, text []byte, typ string) ([]byte, error) {
	switch string(text) {
	case "t", "true": // boolout writes t/f; the ::text cast writes true/false
		return append(dst, "true"...), nil
	case "f", "false":
		return append(dst, "false"...), nil
	}
	return dst, invalid(typ, 0, "want t or f")
}

var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()

func encodeUUID(dst, text []byte, typ string) ([]byte, error) {
	if len(text) != 36 {
		return dst, invalid(typ, len(text), "want 36 characters")
	}
	for i, c := range text {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return dst, invalid(typ, i, "want '-'")
			}
		} else if hexVal[c] == 0xff {
			return dst, invalid(typ, i, "want a hex digit")
		}
	}
	dst = append(dst, '"')
	dst = append(dst, text...)
	return append(dst, '"'), nil
}

// --- dates and times ---

// civil is a parsed date/time value. year uses astronomical numbering
// (1 BC = 0).
type civil struct {
	year           int64
	month, day     int
	hour, min, sec int
	frac           []byte // fraction digits, without '.'
	offset         int    // zone offset east of UTC, seconds
}

const (
	partDate = 1 << iota
	partTime
	partZone
)

// parseNum reads exactly n digits at s[i:].
func parseNum(s []byte, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range s[i : i+n] {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(month int, year int64) int {
	switch month {
	case 2:
		if isLeap(year) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parseCivil parses PostgreSQL's ISO DateStyle output:
// "YYYY-MM-DD[ HH:MM:SS[.f…][±HH[:MM[:SS]]]][ BC]" with parts as selected.
// Years have 4 to 9 digits.
func parseCivil(s []byte, parts int, typ string) (civil, error) {
	var c civil
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i < 4 || i > 9 {
		return c, invalid(typ, i, "want a year of 4 to 9 digits")
	}
	for _, d := range s[:i] {
		c.year = c.year*10 + int64(d-'0')
	}
	var ok bool
	if i+6 > len(s) || s[i] != '-' || s[i+3] != '-' {
		return c, invalid(typ, i, "want -MM-DD")
	}
	if c.month, ok = parseNum(s, i+1, 2); !ok || c.month < 1 || c.month > 12 {
		return c, invalid(typ, i+1, "want a month")
	}
	if c.day, ok = parseNum(s, i+4, 2); !ok || c.day < 1 || c.day > 31 {
		return c, invalid(typ, i+4, "want a day")
	}
	i += 6
	if parts&partTime != 0 {
		if i+9 > len(s) || s[i] != ' ' || s[i+3] != ':' || s[i+6] != ':' {
			return c, invalid(typ, i, "want HH:MM:SS")
		}
		if c.hour, ok = parseNum(s, i+1, 2); !ok || c.hour > 23 {
			return c, invalid(typ, i+1, "want an hour")
		}
		if c.min, ok = parseNum(s, i+4, 2); !ok || c.min > 59 {
			return c, invalid(typ, i+4, "want a minute")
		}
		if c.sec, ok = parseNum(s, i+7, 2); !ok || c.sec > 59 {
			return c, invalid(typ, i+7, "want a second")
		}
		i += 9
		if i < len(s) && s[i] == '.' {
			i++
			start := i
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			if i == start || i-start > 9 {
				return c, invalid(typ, i, "want 1 to 9 fraction digits")
			}
			c.frac = s[start:i]
		}
	}
	if parts&partZone != 0 {
		if i >= len(s) || (s[i] != '+' && s[i] != '-') {
			return c, invalid(typ, i, "want a zone offset")
		}
		sign := 1
		if s[i] == '-' {
			sign = -1
		}
		h, ok := parseNum(s, i+1, 2)
		if !ok {
			return c, invalid(typ, i+1, "want offset hours")
		}
		i += 3
		off := h * 3600
		for unit := 60; unit >= 1 && i < len(s) && s[i] == ':'; unit /= 60 {
			v, ok := parseNum(s, i+1, 2)
			if !ok || v > 59 {
				return c, invalid(typ, i+1, "want offset minutes or seconds")
			}
			off += v * unit
			i += 3
		}
		c.offset = sign * off
	}
	if i < len(s) {
		if string(s[i:]) != " BC" {
			return c, invalid(typ, i, "unexpected text")
		}
		if c.year == 0 {
			return c, invalid(typ, 0, "year 0 BC")
		}
		c.year = 1 - c.year
	} else if c.year == 0 {
		return c, invalid(typ, 0, "year 0")
	}
	if c.day > daysIn(c.month, c.year) {
		return c, invalid(typ, 5, "day out of range for month")
	}
	return c, nil
}

// daysFromCivil returns days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := int64((m + 9) % 12)
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	m = int(mp + 3)
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// toUTC shifts c by its zone offset.
func (c *civil) toUTC() {
	if c.offset == 0 {
		return
	}
	secs := daysFromCivil(c.year, c.month, c.day)*86400 +
		int64(c.hour*3600+c.min*60+c.sec) - int64(c.offset)
	days := floorDiv(secs, 86400)
	rem := int(secs - days*86400)
	c.year, c.month, c.day = civilFromDays(days)
	c.hour, c.min, c.sec = rem/3600, rem/60%60, rem%60
	c.offset = 0
}

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

// appendYear writes years 1–9999 as 4 digits and others in ISO 8601
// expanded form: a sign and at least 6 digits.
func appendYear(dst []byte, y int64) []byte {
	if y >= 1 && y <= 9999 {
		return append(dst, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
	}
	if y < 0 {
		dst = append(dst, '-')
		y = -y
	} else {
		dst = append(dst, '+')
	}
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], y, 10)
	for n := len(b); n < 6; n++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}

func (c *civil) appendJSON(dst []byte, parts int) []byte {
	dst = append(dst, '"')
	dst = appendYear(dst, c.year)
	dst = append(dst, '-')
	dst = append2(dst, c.month)
	dst = append(dst, '-')
	dst = append2(dst, c.day)
	if parts&partTime != 0 {
		dst = append(dst, 'T')
		dst = append2(dst, c.hour)
		dst = append(dst, ':')
		dst = append2(dst, c.min)
		dst = append(dst, ':')
		dst = append2(dst, c.sec)
		if len(c.frac) > 0 {
			dst = append(dst, '.')
			dst = append(dst, c.frac...)
		}
	}
	if parts&partZone != 0 {
		dst = append(dst, 'Z')
	}
	return append(dst, '"')
}

func encodeCivil(dst, text []byte, parts int, typ string) ([]byte, error) {
	switch string(text) {
	case "infinity":
		return append(dst, `"infinity"`...), nil
	case "-infinity":
		return append(dst, `"-infinity"`...), nil
	}
	c, err := parseCivil(text, parts, typ)
	if err != nil {
		return dst, err
	}
	c.toUTC()
	return c.appendJSON(dst, parts), nil
}

// --- json ---

// encodeJSON embeds valid JSON with insignificant whitespace removed,
// invalid UTF-8 replaced by U+FFFD and U+2028/U+2029 escaped; text that is
// not valid JSON (by encoding/json's rules, nesting depth included) becomes
// a JSON string.
//
// It validates and compacts in one pass (jsonCompactor): json.Valid
// followed by a compaction pass cost twice as much, and jsonb columns are
// on the connector's hot path.
func encodeJSON(dst, text []byte) ([]byte, error) {
	c := jsonCompactor{src: text, dst: dst}
	if c.value(0) && c.skipSpace() == len(text) {
		return c.dst, nil
	}
	return connector.AppendJSONString(dst, text), nil
}

// maxJSONDepth is encoding/json's limit on nested arrays and objects.
const maxJSONDepth = 10000

// jsonCompactor checks that src is one JSON value (RFC 8259, as
// encoding/json reads it: any bytes but controls inside strings) and
// appends it to dst without insignificant whitespace, with invalid UTF-8
// inside strings replaced by \ufffd and U+2028/U+2029 escaped. On invalid
// input a method returns false and dst holds a partial copy.
type jsonCompactor struct {
	src []byte
	i   int
	dst []byte
}

// skipSpace skips JSON whitespace and returns the position reached.
func (c *jsonCompactor) skipSpace() int {
	for c.i < len(c.src) {
		switch c.src[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return c.i
		}
	}
	return c.i
}

// value reads one value; depth counts the arrays and objects around it.
func (c *jsonCompactor) value(depth int) bool {
	if c.skipSpace() == len(c.src) {
		return false
	}
	switch c.src[c.i] {
	case '{':
		if depth >= maxJSONDepth {
			return false
		}
		c.dst = append(c.dst, '{')
		c.i++
		if c.skipSpace() < len(c.src) && c.src[c.i] == '}' {
			c.dst = append(c.dst, '}')
			c.i++
			return true
		}
		for {
			if c.skipSpace() == len(c.src) || c.src[c.i] != '"' || !c.str() {
				return false
			}
			if c.skipSpace() == len(c.src) || c.src[c.i] != ':' {
				return false
			}
			c.dst = append(c.dst, ':')
			c.i++
			if !c.value(depth + 1) {
				return false
			}
			if c.skipSpace() == len(c.src) {
				return false
			}
			switch c.src[c.i] {
			case ',':
				c.dst = append(c.dst, ',')
				c.i++
			case '}':
				c.dst = append(c.dst, '}')
				c.i++
				return true
			default:
				return false
			}
		}
	case '[':
		if depth >= maxJSONDepth {
			return false
		}
		c.dst = append(c.dst, '[')
		c.i++
		if c.skipSpace() < len(c.src) && c.src[c.i] == ']' {
			c.dst = append(c.dst, ']')
			c.i++
			return true
		}
		for {
			if !c.value(depth + 1) {
				return false
			}
			if c.skipSpace() == len(c.src) {
				return false
			}
			switch c.src[c.i] {
			case ',':
				c.dst = append(c.dst, ',')
				c.i++
			case ']':
				c.dst = append(c.dst, ']')
				c.i++
				return true
			default:
				return false
			}
		}
	case '"':
		return c.str()
	case 't':
		return c.literal("true")
	case 'f':
		return c.literal("false")
	case 'n':
		return c.literal("null")
	}
	return c.number()
}

func (c *jsonCompactor) literal(lit string) bool {
	if end := c.i + len(lit); end > len(c.src) || string(c.src[c.i:end]) != lit {
		return false
	}
	c.dst = append(c.dst, lit...)
	c.i += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *jsonCompactor) number() bool {
	s, i := c.src, c.i
	digits := func() bool { // one or more
		start := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i == len(s):
		return false
	case s[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	c.dst = append(c.dst, s[c.i:i]...)
	c.i = i
	return true
}

// str reads a string starting at its opening quote.
func (c *jsonCompactor) str() bool {
	s := c.src
	c.i++
	start := c.i - 1 // copy the opening quote with the first run
	for c.i < len(s) {
		b := s[c.i]
		switch {
		case b == '"':
			c.i++
			c.dst = append(c.dst, s[start:c.i]...)
			return true
		case b == '\\':
			if c.i+1 == len(s) {
				return false
			}
			switch s[c.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				c.i += 2
			case 'u':
				if c.i+6 > len(s) {
					return false
				}
				for _, h := range s[c.i+2 : c.i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				c.i += 6
			default:
				return false
			}
		case b < 0x20:
			return false
		case b < utf8.RuneSelf:
			c.i++
		default:
			r, size := utf8.DecodeRune(s[c.i:])
			switch {
			case r == utf8.RuneError && size == 1:
				c.dst = append(c.dst, s[start:c.i]...)
				c.dst = append(c.dst, `\ufffd`...)
				c.i++
				start = c.i
			case r == '\u2028' || r == '\u2029':
				c.dst = append(c.dst, s[start:c.i]...)
				c.dst = append(c.dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
				c.i += size
				start = c.i
			default:
				c.i += size
			}
		}
	}
	return false
}

// --- bytea ---

const base64Std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// b64 is a streaming standard base64 encoder appending to a byte slice.
type b64 struct {
	acc uint32
	n   int
}

func (b *b64) add(dst []byte, c byte) []byte {
	b.acc = b.acc<<8 | uint32(c)
	b.n++
	if b.n == 3 {
		dst = append(dst, base64Std[b.acc>>18&0x3f], base64Std[b.acc>>12&0x3f], base64Std[b.acc>>6&0x3f], base64Std[b.acc&0x3f])
		b.acc, b.n = 0, 0
	}
	return dst
}

func (b *b64) flush(dst []byte) []byte {
	switch b.n {
	case 1:
		v := b.acc << 16
		dst = append(dst, base64Std[v>>18&0x3f], base64Std[v>>12&0x3f], '=', '=')
	case 2:
		v := b.acc << 8
		dst = append(dst, base64Std[v>>18&0x3f], base64Std[v>>12&0x3f], base64Std[v>>6&0x3f], '=')
	}
	b.acc, b.n = 0, 0
	return dst
}

// encodeBytea appends the bytes of a bytea value in hex ("\x0102") or escape
// ("a\\b\001") output format as a base64 JSON string.
func encodeBytea(dst, text []byte, typ string) ([]byte, error) {
	mark := len(dst)
	dst = append(dst, '"')
	var b b64
	if len(text) >= 2 && text[0] == '\\' && text[1] == 'x' {
		hex := text[2:]
		if len(hex)%2 != 0 {
			return dst[:mark], invalid(typ, len(text), "odd number of hex digits")
		}
		// Whole groups: 6 hex digits → 3 bytes → 4 base64 characters.
		i := 0
		for ; i+6 <= len(hex); i += 6 {
			h := hex[i : i+6]
			var v uint32
			for _, c := range h {
				x := hexVal[c]
				if x == 0xff {
					return dst[:mark], invalid(typ, 2+i, "want hex digits")
				}
				v = v<<4 | uint32(x)
			}
			dst = append(dst, base64Std[v>>18&0x3f], base64Std[v>>12&0x3f], base64Std[v>>6&0x3f], base64Std[v&0x3f])
		}
		for ; i < len(hex); i += 2 {
			hi, lo := hexVal[hex[i]], hexVal[hex[i+1]]
			if hi == 0xff || lo == 0xff {
				return dst[:mark], invalid(typ, 2+i, "want hex digits")
			}
			dst = b.add(dst, hi<<4|lo)
		}
	} else {
		for i := 0; i < len(text); {
			c := text[i]
			if c != '\\' {
				dst = b.add(dst, c)
				i++
				continue
			}
			switch {
			case i+1 < len(text) && text[i+1] == '\\':
				dst = b.add(dst, '\\')
				i += 2
			case i+3 < len(text) && text[i+1] >= '0' && text[i+1] <= '3' &&
				text[i+2] >= '0' && text[i+2] <= '7' && text[i+3] >= '0' && text[i+3] <= '7':
				dst = b.add(dst, (text[i+1]-'0')<<6|(text[i+2]-'0')<<3|(text[i+3]-'0'))
				i += 4
			default:
				return dst[:mark], invalid(typ, i, "invalid escape")
			}
		}
	}
	dst = b.flush(dst)
	return append(dst, '"'), nil
}

// --- arrays ---

// maxArrayDims is PostgreSQL's MAXDIM.
const maxArrayDims = 6

// arrayEncoder returns the encoder of an array type whose elements are
// encoded by elem and separated by delim.
func arrayEncoder(typ string, elem connector.ValueEncoder, delim byte) connector.ValueEncoder {
	return func(dst, text []byte) ([]byte, error) {
		mark := len(dst)
		out, err := encodeArray(dst, text, typ, elem, delim)
		if err != nil {
			return dst[:mark], err
		}
		return out, nil
	}
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// encodeArray converts PostgreSQL array text ("{1,2}", "{{a,b},{c,NULL}}",
// `{"x \"y\"",NULL}`, "[0:1]={1,2}") to a JSON array.
func encodeArray(dst, s []byte, typ string, elem connector.ValueEncoder, delim byte) ([]byte, error) {
	i := 0
	for i < len(s) && isArraySpace(s[i]) {
		i++
	}
	// Optional dimension decoration: [lo:hi][lo:hi]...=
	if i < len(s) && s[i] == '[' {
		for i < len(s) && s[i] == '[' {
			i++
			for _, sep := range [...]byte{':', ']'} {
				if i < len(s) && s[i] == '-' {
					i++
				}
				start := i
				for i < len(s) && isDigit(s[i]) {
					i++
				}
				if i == start || i >= len(s) || s[i] != sep {
					return dst, invalid(typ, i, "invalid dimension decoration")
				}
				i++
			}
		}
		if i >= len(s) || s[i] != '=' {
			return dst, invalid(typ, i, "want '=' after dimensions")
		}
		i++
	}
	if i >= len(s) || s[i] != '{' {
		return dst, invalid(typ, i, "want '{'")
	}

	const (
		afterOpen = iota
		afterElem // element or closed sub-array
		afterDelim
	)
	var scratch *[]byte
	defer func() {
		if scratch != nil {
			scratchPool.Put(scratch)
		}
	}()
	depth, state, n := 0, afterDelim, 0
	for i < len(s) {
		c := s[i]
		switch {
		case isArraySpace(c):
			i++
		case c == '{':
			if state == afterElem {
				return dst, invalid(typ, i, "want delimiter or '}'")
			}
			if depth++; depth > maxArrayDims {
				return dst, invalid(typ, i, "too many dimensions")
			}
			dst = append(dst, '[')
			state = afterOpen
			i++
		case c == '}':
			if state == afterDelim {
				return dst, invalid(typ, i, "want element")
			}
			dst = append(dst, ']')
			state = afterElem
			i++
			if depth--; depth == 0 {
				for i < len(s) && isArraySpace(s[i]) {
					i++
				}
				if i != len(s) {
					return dst, invalid(typ, i, "text after array")
				}
				return dst, nil
			}
		case c == delim:
			if state != afterElem {
				return dst, invalid(typ, i, "want element")
			}
			dst = append(dst, ',')
			state = afterDelim
			i++
		default:
			if state == afterElem {
				return dst, invalid(typ, i, "want delimiter or '}'")
			}
			n++
			start := i
			var val []byte
			quoted, escaped := c == '"', false
			if quoted {
				i++
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' {
						escaped = true
						i++
					}
					i++
				}
				if i >= len(s) {
					return dst, invalid(typ, start, "unterminated quoted element")
				}
				val = s[start+1 : i]
				i++
			} else {
				end := i // end of the element without trailing space
				for i < len(s) && s[i] != delim && s[i] != '}' {
					switch s[i] {
					case '{', '"':
						return dst, invalid(typ, i, "unexpected character in element")
					case '\\':
						escaped = true
						i++
						if i >= len(s) {
							return dst, invalid(typ, i, "unterminated escape")
						}
						end = i + 1
					default:
						if !isArraySpace(s[i]) {
							end = i + 1
						}
					}
					i++
				}
				val = s[start:end]
				if !escaped && len(val) == 4 && (val[0]|0x20) == 'n' && (val[1]|0x20) == 'u' &&
					(val[2]|0x20) == 'l' && (val[3]|0x20) == 'l' {
					dst = append(dst, "null"...)
					state = afterElem
					continue
				}
			}
			if escaped {
				if scratch == nil {
					scratch = scratchPool.Get().(*[]byte)
				}
				b := (*scratch)[:0]
				for j := 0; j < len(val); j++ {
					if val[j] == '\\' && j+1 < len(val) {
						j++
					}
					b = append(b, val[j])
				}
				*scratch = b
				val = b
			}
			var err error
			if dst, err = elem(dst, val); err != nil {
				return dst, &ValueError{Type: typ, Offset: start, Reason: "element " + strconv.Itoa(n), Err: err}
			}
			state = afterElem
		}
	}
	return dst, invalid(typ, i, "unterminated array")
}
