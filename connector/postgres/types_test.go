package postgres

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/baitoru/baitoru-cdc/internal/testenv"

	"github.com/baitoru/baitoru-cdc/connector"
)

// Type OIDs used by the unit tests. Resolved OIDs are made up; the
// integration test uses real ones.
const (
	testEnumOID      = 900001
	testEnumArrOID   = 900002
	testDomainOID    = 900003 // domain over int4
	testDomainArrOID = 900004 // array of the domain
	testDomDomOID    = 900005 // domain over the domain
	testCitextOID    = 900006 // extension base type, category S
	testCompositeOID = 900007
	testCompArrOID   = 900008
	testExtOtherOID  = 900009 // extension base type, category U (e.g. hstore)
	testUnknownOID   = 999999 // never resolved
	testUnkArrOID    = 900010 // array whose element OID is unknown
)

// testTypes returns a Types with custom types registered as Resolve would.
func testTypes() *Types {
	t := NewTypes()
	for _, ti := range []TypeInfo{
		{OID: testEnumOID, Name: "application_status", Type: 'e', Category: 'E', Delim: ','},
		{OID: testEnumArrOID, Name: "_application_status", Type: 'b', Category: 'A', Elem: testEnumOID, Delim: ','},
		{OID: testDomainOID, Name: "positive_int", Type: 'd', Category: 'N', Base: pgtype.Int4OID, Delim: ','},
		{OID: testDomainArrOID, Name: "_positive_int", Type: 'b', Category: 'A', Elem: testDomainOID, Delim: ','},
		{OID: testDomDomOID, Name: "small_positive_int", Type: 'd', Category: 'N', Base: testDomainOID, Delim: ','},
		{OID: testCitextOID, Name: "citext", Type: 'b', Category: 'S', Delim: ','},
		{OID: testCompositeOID, Name: "address", Type: 'c', Category: 'C', Delim: ','},
		{OID: testCompArrOID, Name: "_address", Type: 'b', Category: 'A', Elem: testCompositeOID, Delim: ','},
		{OID: testExtOtherOID, Name: "hstore", Type: 'b', Category: 'U', Delim: ','},
		{OID: testUnkArrOID, Name: "_mystery", Type: 'b', Category: 'A', Elem: testUnknownOID, Delim: ','},
	} {
		t.resolved[ti.OID] = ti
	}
	return t
}

type encodeCase struct {
	in   string
	want string // JSON, or "" when an error is expected
}

// ok and bad build encodeCases.
func ok(in, want string) encodeCase { return encodeCase{in, want} }
func bad(in string) encodeCase      { return encodeCase{in, ""} }

var encodeCases = []struct {
	oid   uint32
	cases []encodeCase
}{
	{pgtype.Int2OID, []encodeCase{ok("0", "0"), ok("-32768", "-32768"), ok("32767", "32767"),
		bad(""), bad("-"), bad("12a"), bad("1.0"), bad(" 1"), bad("+1"), bad("007"), bad("1e3")}},
	{pgtype.Int4OID, []encodeCase{ok("-2147483648", "-2147483648"), ok("2147483647", "2147483647"), ok("-0", "-0"),
		bad("12a"), bad("--1"), bad("0x10"), bad("１２")}},
	{pgtype.Int8OID, []encodeCase{ok("9223372036854775807", "9223372036854775807"),
		ok("-9223372036854775808", "-9223372036854775808"), ok("9007199254740993", "9007199254740993"),
		bad("NaN"), bad("1,000")}},
	{pgtype.OIDOID, []encodeCase{ok("4294967295", "4294967295"), ok("0", "0"), bad("-1"), bad("x")}},
	{pgtype.XIDOID, []encodeCase{ok("1234", "1234"), bad("-1")}},
	{pgtype.XID8OID, []encodeCase{ok("18446744073709551615", "18446744073709551615")}},
	{pgtype.NumericOID, []encodeCase{ok("0", `"0"`), ok("-1.50", `"-1.50"`), ok("1234567890.0987654321", `"1234567890.0987654321"`),
		ok("0.00000000000000000001", `"0.00000000000000000001"`), ok("NaN", `"NaN"`), ok("Infinity", `"Infinity"`),
		ok("-Infinity", `"-Infinity"`), ok("007", `"007"`),
		bad(""), bad("1."), bad(".5"), bad("1e5"), bad("nan"), bad("12a"), bad("-"), bad(`1"`)}},
	{pgtype.Float8OID, []encodeCase{ok("0", "0"), ok("-0", "-0"), ok("1.5", "1.5"), ok("1e+100", "1e+100"),
		ok("1.5e-07", "1.5e-07"), ok("-1.7976931348623157e+308", "-1.7976931348623157e+308"),
		ok("5e-324", "5e-324"), ok("0.1", "0.1"),
		ok("NaN", `"NaN"`), ok("Infinity", `"Infinity"`), ok("-Infinity", `"-Infinity"`),
		bad("inf"), bad("1."), bad(".1"), bad("1e"), bad("1e+"), bad("01"), bad("1.5x"), bad("")}},
	{pgtype.Float4OID, []encodeCase{ok("3.4028235e+38", "3.4028235e+38"), ok("-1.2345678e-05", "-1.2345678e-05"),
		ok("NaN", `"NaN"`), bad("nan")}},
	{pgtype.BoolOID, []encodeCase{ok("t", "true"), ok("f", "false"), ok("true", "true"), ok("false", "false"), bad("tru"), bad(""), bad("T"), bad("1")}},
	{pgtype.TextOID, []encodeCase{
		ok("", `""`),
		ok("hello", `"hello"`),
		ok(`a"b\c/d`, `"a\"b\\c/d"`),
		ok("line1\nline2\r\ttab\b\f", `"line1\nline2\r\ttab\b\f"`),
		ok("\x00\x01\x1f\x7f", `"\u0000\u0001\u001f`+"\x7f"+`"`),
		ok("山田 太郎 🎉", `"山田 太郎 🎉"`),
		ok("a\u2028b\u2029c", `"a\u2028b\u2029c"`),
		ok("bad\xffutf8\xc3", `"bad\ufffdutf8\ufffd"`),
		ok("\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`), // surrogate half is invalid UTF-8
		ok("<script>&", `"<script>&"`),
		ok("NULL", `"NULL"`),
	}},
	{pgtype.VarcharOID, []encodeCase{ok("x y", `"x y"`)}},
	{pgtype.BPCharOID, []encodeCase{ok("ab   ", `"ab   "`)}},
	{pgtype.NameOID, []encodeCase{ok("pg_class", `"pg_class"`)}},
	{pgtype.QCharOID, []encodeCase{ok("a", `"a"`), ok("\\001", `"\\001"`)}},
	{pgtype.UnknownOID, []encodeCase{ok("x", `"x"`)}},
	{pgtype.UUIDOID, []encodeCase{ok("0b9e4b8a-7c1f-4a0e-9d3c-2f6f1e0b8a11", `"0b9e4b8a-7c1f-4a0e-9d3c-2f6f1e0b8a11"`),
		ok("00000000-0000-0000-0000-000000000000", `"00000000-0000-0000-0000-000000000000"`),
		bad("0b9e4b8a7c1f4a0e9d3c2f6f1e0b8a11"), bad("0b9e4b8a-7c1f-4a0e-9d3c-2f6f1e0b8a1g"),
		bad("0b9e4b8a-7c1f-4a0e-9d3c+2f6f1e0b8a11"), bad("")}},
	{pgtype.DateOID, []encodeCase{ok("2026-11-25", `"2026-11-25"`), ok("0001-01-01", `"0001-01-01"`),
		ok("9999-12-31", `"9999-12-31"`), ok("2024-02-29", `"2024-02-29"`),
		ok("infinity", `"infinity"`), ok("-infinity", `"-infinity"`),
		ok("0044-03-15 BC", `"-000043-03-15"`), ok("0001-12-31 BC", `"+000000-12-31"`),
		ok("4713-01-01 BC", `"-004712-01-01"`), ok("10000-01-01", `"+010000-01-01"`),
		ok("5874897-12-31", `"+5874897-12-31"`),
		bad("2026-13-01"), bad("2026-00-01"), bad("2026-02-30"), bad("2025-02-29"), bad("2026-11-25 "),
		bad("26-11-25"), bad("2026/11/25"), bad("2026-11-25 AD"), bad("0000-01-01"), bad("Infinity"), bad("")}},
	{pgtype.TimestampOID, []encodeCase{
		ok("2026-11-25 03:00:00", `"2026-11-25T03:00:00"`),
		ok("2026-11-25 03:00:00.123456", `"2026-11-25T03:00:00.123456"`),
		ok("2026-11-25 23:59:59.5", `"2026-11-25T23:59:59.5"`),
		ok("0044-03-15 12:00:00 BC", `"-000043-03-15T12:00:00"`),
		ok("294276-12-31 23:59:59.999999", `"+294276-12-31T23:59:59.999999"`),
		ok("infinity", `"infinity"`), ok("-infinity", `"-infinity"`),
		bad("2026-11-25"), bad("2026-11-25T03:00:00"), bad("2026-11-25 24:00:00"), bad("2026-11-25 03:60:00"),
		bad("2026-11-25 03:00:60"), bad("2026-11-25 03:00:00."), bad("2026-11-25 03:00:00+00"),
		bad("2026-11-25 03:00:00.1234567890")}},
	{pgtype.TimestamptzOID, []encodeCase{
		ok("2026-11-25 03:00:00+00", `"2026-11-25T03:00:00Z"`),
		ok("2026-11-25 03:00:00.123456+00", `"2026-11-25T03:00:00.123456Z"`),
		ok("2026-11-25 12:00:00.5+09", `"2026-11-25T03:00:00.5Z"`),
		ok("2026-11-25 08:30:00+05:30", `"2026-11-25T03:00:00Z"`),
		ok("2026-11-24 22:00:00-05", `"2026-11-25T03:00:00Z"`),
		ok("1800-01-01 09:18:59+09:18:59", `"1800-01-01T00:00:00Z"`),
		ok("1799-12-31 19:03:58-04:56:02", `"1800-01-01T00:00:00Z"`),
		ok("2026-01-01 08:59:59.999999+09", `"2025-12-31T23:59:59.999999Z"`),
		ok("2024-03-01 00:30:00+01", `"2024-02-29T23:30:00Z"`),
		ok("0001-01-01 00:00:00+09", `"+000000-12-31T15:00:00Z"`),
		ok("0044-03-15 00:00:00+00 BC", `"-000043-03-15T00:00:00Z"`),
		ok("0044-03-15 09:18:59+09:18:59 BC", `"-000043-03-15T00:00:00Z"`),
		ok("10000-01-01 00:00:00+00", `"+010000-01-01T00:00:00Z"`),
		ok("9999-12-31 23:00:00-01", `"+010000-01-01T00:00:00Z"`),
		ok("294276-12-31 23:59:59.999999+00", `"+294276-12-31T23:59:59.999999Z"`),
		ok("4714-11-24 00:00:00+00 BC", `"-004713-11-24T00:00:00Z"`),
		ok("infinity", `"infinity"`), ok("-infinity", `"-infinity"`),
		bad("2026-11-25 03:00:00"), bad("2026-11-25 03:00:00Z"), bad("2026-11-25 03:00:00+0"),
		bad("2026-11-25 03:00:00+00:"), bad("2026-11-25 03:00:00+00:60"), bad("2026-11-25 03:00:00+00 AD"),
		bad("2026-11-25 03:00:00+00:00:00:00"), bad("2026-11-25"), bad("")}},
	{pgtype.TimeOID, []encodeCase{ok("03:00:00.123456", `"03:00:00.123456"`), ok("24:00:00", `"24:00:00"`)}},
	{pgtype.TimetzOID, []encodeCase{ok("03:00:00+09", `"03:00:00+09"`), ok("03:00:00-05:30", `"03:00:00-05:30"`)}},
	{pgtype.IntervalOID, []encodeCase{ok("P1Y2M3DT4H5M6S", `"P1Y2M3DT4H5M6S"`), ok("PT0S", `"PT0S"`),
		ok("P1Y2M-3DT4H5.5S", `"P1Y2M-3DT4H5.5S"`), ok("1 year 2 mons", `"1 year 2 mons"`)}},
	{pgtype.JSONBOID, []encodeCase{
		ok(`{"a": 1, "b": [1, 2, {"c": null}], "d": "x y"}`, `{"a":1,"b":[1,2,{"c":null}],"d":"x y"}`),
		ok(`[]`, `[]`), ok(`"str"`, `"str"`), ok(`12.50`, `12.50`), ok(`null`, `null`), ok(`true`, `true`),
		ok(`{"k": "a\"b\\ \n"}`, `{"k":"a\"b\\ \n"}`),
		ok(`{"k": "\u2028 `+"\u2028"+`"}`, `{"k":"\u2028 \u2028"}`),
		ok(`{"ja": "山田"}`, `{"ja":"山田"}`),
		ok("{\"k\": \"bad\xff\"}", `{"k":"bad\ufffd"}`),
		ok("{\"a\"\n:\t1\r}", `{"a":1}`),
		ok(`{"a": 1`, `"{\"a\": 1"`), // invalid JSON: a string
		ok(``, `""`),
		ok(`NaN`, `"NaN"`),
	}},
	{pgtype.JSONOID, []encodeCase{ok(`{"b":2,  "a":1, "a":3}`, `{"b":2,"a":1,"a":3}`), ok(" [1,\n 2] ", `[1,2]`)}},
	{pgtype.ByteaOID, []encodeCase{
		ok(`\x`, `""`), ok(`\x00`, `"AA=="`), ok(`\x0102`, `"AQI="`), ok(`\x010203`, `"AQID"`),
		ok(`\xdeadbeef`, `"3q2+7w=="`), ok(`\xDEADBEEF`, `"3q2+7w=="`),
		ok(`\x48656c6c6f2c20776f726c6421`, `"SGVsbG8sIHdvcmxkIQ=="`),
		ok(`abc`, `"YWJj"`), ok(`a\\b\000\377`, `"YVxiAP8="`), ok(``, `""`),
		bad(`\x0`), bad(`\x0g`), bad(`\xzz0102`), bad(`a\b`), bad(`\400`), bad(`\12`), bad(`\`)}},
	{pgtype.InetOID, []encodeCase{ok("192.168.0.1/24", `"192.168.0.1/24"`), ok("::1", `"::1"`)}},
	{790, []encodeCase{ok("$1,234.56", `"$1,234.56"`), ok("-$0.01", `"-$0.01"`)}}, // money
	{pgtype.BitOID, []encodeCase{ok("1010", `"1010"`)}},
	{pgtype.XMLOID, []encodeCase{ok(`<a x="1">&amp;</a>`, `"<a x=\"1\">&amp;</a>"`)}},
	{pgtype.BoxOID, []encodeCase{ok("(1,1),(0,0)", `"(1,1),(0,0)"`)}},
	{pgtype.Int4rangeOID, []encodeCase{ok("[1,5)", `"[1,5)"`), ok("empty", `"empty"`)}},
	{pgtype.RecordOID, []encodeCase{ok(`(1,"a b")`, `"(1,\"a b\")"`)}},
	{22, []encodeCase{ok("1 2 3", `"1 2 3"`)}}, // int2vector
	{pgtype.Int4ArrayOID, []encodeCase{
		ok("{}", "[]"), ok("{1,2,3}", "[1,2,3]"), ok("{1,NULL,3}", "[1,null,3]"), ok("{NULL}", "[null]"),
		ok("{null,Null}", "[null,null]"),
		ok("{{1,2},{3,4}}", "[[1,2],[3,4]]"), ok("{{{1},{2}},{{3},{4}}}", "[[[1],[2]],[[3],[4]]]"),
		ok("[0:1]={1,2}", "[1,2]"), ok("[-2:-1][1:2]={{1,2},{3,4}}", "[[1,2],[3,4]]"),
		ok(` { 1 , 2 } `, "[1,2]"), ok(`{"1","2"}`, "[1,2]"), ok(`{{1,2},{NULL,NULL}}`, "[[1,2],[null,null]]"),
		ok("{{{{{{1}}}}}}", "[[[[[[1]]]]]]"),
		bad("{1,2a}"), bad("{1,,2}"), bad("{,1}"), bad("{1,}"), bad("{1"), bad("{1}}"), bad("{1} x"),
		bad("1,2"), bad(""), bad("{"), bad("}"), bad("{{{{{{{1}}}}}}}"), bad("[0:1]{1,2}"), bad("[0:]={1}"),
		bad("[0:1={1}"), bad(`{"1}`), bad("{1 2}"), bad("{1{2}}"), bad("{{1}{2}}"), bad(`{"NULL"}`), bad(`{1"2"}`),
	}},
	{pgtype.TextArrayOID, []encodeCase{
		ok("{}", "[]"),
		ok("{a,b}", `["a","b"]`),
		ok(`{"a\"b","NULL",NULL,""," x ","a,b","{}","back\\slash"}`, `["a\"b","NULL",null,""," x ","a,b","{}","back\\slash"]`),
		ok(`{nullx,xnull,NULLNULL}`, `["nullx","xnull","NULLNULL"]`),
		ok(`{a b, c }`, `["a b","c"]`),
		ok(`{a\,b,\N\U\L\L,x\ }`, `["a,b","NULL","x "]`),
		ok(`{{a,b},{"c d",NULL}}`, `[["a","b"],["c d",null]]`),
		ok("{\"line\nbreak\",\"tab\tx\"}", `["line\nbreak","tab\tx"]`),
		ok(`{山田,"太郎 🎉"}`, `["山田","太郎 🎉"]`),
		ok(`{"\u2028"}`, `["u2028"]`), // backslash-u is not an escape in array text
		bad(`{"a}`), bad(`{a"b}`), bad(`{a\}`), bad(`{"a\"}`), bad(`{"a" "b"}`),
	}},
	{pgtype.NumericArrayOID, []encodeCase{ok("{1.50,NaN,-Infinity,NULL}", `["1.50","NaN","-Infinity",null]`), bad("{1.5.0}")}},
	{pgtype.Float8ArrayOID, []encodeCase{ok("{1.5,NaN,Infinity,-0,1e+100}", `[1.5,"NaN","Infinity",-0,1e+100]`)}},
	{pgtype.BoolArrayOID, []encodeCase{ok("{t,f,NULL}", "[true,false,null]"), bad("{t,x}")}},
	{pgtype.JSONBArrayOID, []encodeCase{
		ok(`{"{\"a\": 1}","[1, 2]",NULL,"\"s\"",3,null}`, `[{"a":1},[1,2],null,"s",3,null]`),
		ok(`{"{\"k\": \"a\\\\\\\"b\"}"}`, `[{"k":"a\\\"b"}]`),
	}},
	{pgtype.ByteaArrayOID, []encodeCase{ok(`{"\\x0102","\\x",NULL}`, `["AQI=","",null]`), bad(`{"\\x0"}`)}},
	{pgtype.TimestamptzArrayOID, []encodeCase{
		ok(`{"2026-11-25 03:00:00+00","2026-11-25 12:00:00.5+09",infinity,NULL,"0044-03-15 00:00:00+00 BC"}`,
			`["2026-11-25T03:00:00Z","2026-11-25T03:00:00.5Z","infinity",null,"-000043-03-15T00:00:00Z"]`),
		bad(`{"2026-11-25 03:00:00"}`),
	}},
	{pgtype.DateArrayOID, []encodeCase{ok(`{2026-11-25,"0044-03-15 BC",-infinity}`, `["2026-11-25","-000043-03-15","-infinity"]`)}},
	{pgtype.UUIDArrayOID, []encodeCase{ok(`{0b9e4b8a-7c1f-4a0e-9d3c-2f6f1e0b8a11}`, `["0b9e4b8a-7c1f-4a0e-9d3c-2f6f1e0b8a11"]`)}},
	{pgtype.BoxArrayOID, []encodeCase{ok(`{(1,1),(0,0);(3,3),(2,2)}`, `["(1,1),(0,0)","(3,3),(2,2)"]`)}},
	{pgtype.Int4rangeArrayOID, []encodeCase{ok(`{"[1,5)",empty}`, `["[1,5)","empty"]`)}},
	{testEnumOID, []encodeCase{ok("applied", `"applied"`), ok(`in "review"`, `"in \"review\""`)}},
	{testEnumArrOID, []encodeCase{ok(`{applied,"in review",NULL}`, `["applied","in review",null]`)}},
	{testDomainOID, []encodeCase{ok("42", "42"), bad("4x2")}},
	{testDomDomOID, []encodeCase{ok("7", "7"), bad("7.0")}},
	{testDomainArrOID, []encodeCase{ok("{1,NULL}", "[1,null]"), bad("{a}")}},
	{testCitextOID, []encodeCase{ok("MiXeD", `"MiXeD"`)}},
	{testCompositeOID, []encodeCase{ok(`(1,"a ""b""")`, `"(1,\"a \"\"b\"\"\")"`)}},
	{testCompArrOID, []encodeCase{ok(`{"(1,x)","(2,\"y z\")"}`, `["(1,x)","(2,\"y z\")"]`)}},
	{testExtOtherOID, []encodeCase{ok(`"a"=>"1"`, `"\"a\"=>\"1\""`)}},
	{testUnknownOID, []encodeCase{ok("{1,2}", `"{1,2}"`)}},
	{testUnkArrOID, []encodeCase{ok("{x,NULL}", `["x",null]`)}},
}

// TestEncodeTypes encodes text of every type and checks the JSON, that
// errors wrap ErrInvalidValue and name the type, and that the prefix in dst
// is kept (and nothing else appended on error).
func TestEncodeTypes(t *testing.T) {
	types := testTypes()
	for _, tc := range encodeCases {
		name := types.Name(tc.oid)
		enc := types.Encoder(tc.oid)
		for _, c := range tc.cases {
			t.Run(fmt.Sprintf("%s/%q", name, c.in), func(t *testing.T) {
				prefix := []byte(`{"x":`)
				got, err := enc(bytes.Clone(prefix), []byte(c.in))
				if !bytes.HasPrefix(got, prefix) {
					t.Fatalf("prefix lost: %q", got)
				}
				out := string(got[len(prefix):])
				if c.want == "" {
					if err == nil {
						t.Fatalf("no error, got %s", out)
					}
					if !errors.Is(err, ErrInvalidValue) {
						t.Errorf("error %v does not wrap ErrInvalidValue", err)
					}
					typ := name
					if ti, ok := types.Info(tc.oid); ok && ti.Type == 'd' {
						typ = "int4" // domains report their base type
					}
					if !strings.Contains(err.Error(), "invalid "+typ+" value") {
						t.Errorf("error %q does not name type %s", err, typ)
					}
					if c.in != "" && len(c.in) > 2 && strings.Contains(err.Error(), c.in) {
						t.Errorf("error %q contains the value", err)
					}
					if out != "" {
						t.Errorf("appended %q on error", out)
					}
					return
				}
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				if out != c.want {
					t.Errorf("got  %s\nwant %s", out, c.want)
				}
				if !json.Valid([]byte(out)) {
					t.Errorf("not valid JSON: %s", out)
				}
			})
		}
	}
}

func TestTypesHandled(t *testing.T) {
	types := testTypes()
	for _, c := range []struct {
		oid  uint32
		want bool
	}{
		{pgtype.Int4OID, true}, {pgtype.TextOID, true}, {pgtype.JSONBOID, true}, {pgtype.InetOID, true},
		{pgtype.IntervalOID, true}, {790, true}, {pgtype.TextArrayOID, true}, {pgtype.BoxArrayOID, true},
		{pgtype.Int4rangeOID, false}, {pgtype.Int4multirangeOID, false}, {pgtype.Int4rangeArrayOID, false},
		{pgtype.RecordOID, false}, {pgtype.RecordArrayOID, false}, {22, false}, {30, false},
		{testEnumOID, true}, {testEnumArrOID, true}, {testDomainOID, true}, {testDomDomOID, true},
		{testDomainArrOID, true}, {testCitextOID, true}, {testCompositeOID, false}, {testCompArrOID, false},
		{testExtOtherOID, false}, {testUnknownOID, false}, {testUnkArrOID, false},
	} {
		if got := types.Handled(c.oid); got != c.want {
			t.Errorf("Handled(%d %s) = %v, want %v", c.oid, types.Name(c.oid), got, c.want)
		}
	}
}

// TestTypesEncoderCache checks that encoders of types with unknown parts are
// not cached, so that a later Resolve takes effect.
func TestTypesEncoderCache(t *testing.T) {
	types := NewTypes()
	const arr, elem = 910001, 910002
	types.resolved[arr] = TypeInfo{OID: arr, Name: "_mood", Type: 'b', Category: 'A', Elem: elem, Delim: ','}
	got, err := types.Encoder(arr)(nil, []byte("{happy}"))
	if err != nil || string(got) != `["happy"]` { // element unknown: its text as a string
		t.Fatalf("got %s, %v", got, err)
	}
	if _, cached := types.enc[arr]; cached {
		t.Fatal("encoder with an unknown element was cached")
	}
	if types.Name(elem) != "oid 910002" {
		t.Errorf("Name of unknown OID = %q", types.Name(elem))
	}
	types.resolved[elem] = TypeInfo{OID: elem, Name: "mood", Type: 'd', Base: pgtype.Int4OID, Delim: ','}
	if _, err := types.Encoder(arr)(nil, []byte("{happy}")); err == nil {
		t.Fatal("resolved element type not used")
	}
	if _, cached := types.enc[arr]; !cached {
		t.Fatal("complete encoder not cached")
	}
}

// TestTypesConcurrent uses one Types from several goroutines (run with
// -race).
func TestTypesConcurrent(t *testing.T) {
	types := testTypes()
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				tc := encodeCases[(g+i)%len(encodeCases)]
				_ = types.Handled(tc.oid)
				_ = types.Name(tc.oid)
				_, _ = types.Encoder(tc.oid)(nil, []byte(tc.cases[0].in))
			}
		}()
	}
	for range 4 {
		<-done
	}
}

// TestTypesResolveKnown checks that Resolve does not query for known OIDs.
func TestTypesResolveKnown(t *testing.T) {
	types := NewTypes()
	if err := types.Resolve(context.Background(), nil, []uint32{pgtype.Int4OID, pgtype.TextArrayOID, pgtype.JSONBOID}); err != nil {
		t.Fatal(err)
	}
}

// TestTypesBuiltinNames checks the builtin table's names against pgx's.
func TestTypesBuiltinNames(t *testing.T) {
	m := pgtype.NewMap()
	n := 0
	for oid, ti := range builtinInfo {
		pt, ok := m.TypeForOID(oid)
		if !ok {
			continue
		}
		n++
		if pt.Name != ti.Name {
			t.Errorf("OID %d: name %q, pgx says %q", oid, ti.Name, pt.Name)
		}
	}
	if n < 100 {
		t.Errorf("only %d builtin OIDs known to pgx", n)
	}
}

// TestEncodeNoAllocs checks that the encoders do not allocate, but for
// string values, which encoding/json escapes (connector.AppendJSONString):
// at most two allocations per string.
func TestEncodeNoAllocs(t *testing.T) {
	types := NewTypes()
	for _, c := range []struct {
		oid    uint32
		in     string
		allocs float64
	}{
		{pgtype.Int8OID, "9223372036854775807", 0},
		{pgtype.Float8OID, "1.5e-07", 0},
		{pgtype.Float8OID, "NaN", 0},
		{pgtype.NumericOID, "1234.5678", 0},
		{pgtype.BoolOID, "t", 0},
		{pgtype.TextOID, "山田 \"太郎\"\n\xff\u2028", 2},
		{pgtype.UUIDOID, "0b9e4b8a-7c1f-4a0e-9d3c-2f6f1e0b8a11", 0},
		{pgtype.DateOID, "2026-11-25", 0},
		{pgtype.TimestampOID, "2026-11-25 03:00:00.123456", 0},
		{pgtype.TimestamptzOID, "2026-11-25 03:00:00.123456+00", 0},
		{pgtype.TimestamptzOID, "0044-03-15 09:18:59+09:18:59 BC", 0},
		{pgtype.JSONBOID, `{"q1": "はい", "q2": ["平日", "土日"], "q3": 3}`, 0},
		{pgtype.ByteaOID, `\x48656c6c6f2c20776f726c6421`, 0},
		{pgtype.ByteaOID, `a\\b\000`, 0},
		{pgtype.Int4ArrayOID, `{1,2,3}`, 0},
		{pgtype.TextArrayOID, `{ab,"b c",NULL}`, 4},
	} {
		enc := types.Encoder(c.oid)
		in := []byte(c.in)
		dst := make([]byte, 0, 1024)
		if _, err := enc(dst, in); err != nil {
			t.Fatalf("%s %q: %v", types.Name(c.oid), c.in, err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = enc(dst[:0], in) }); n > c.allocs {
			t.Errorf("%s %q: %v allocs per value, want at most %v", types.Name(c.oid), c.in, n, c.allocs)
		}
	}
}

// TestEncodeStringRoundTrip checks random strings, valid and invalid
// UTF-8, against encoding/json.
func TestEncodeStringRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", " ", `"`, `\`, "/", "\n", "\x00", "\x1f", "\x7f", "é", "山", "🎉",
		"\u2028", "\u2029", "\xff", "\xc3", "\xed\xa0\x80", "\ufffd", "<", "&"}
	for range 2000 {
		var sb strings.Builder
		for range r.IntN(20) {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := sb.String()
		out, err := connector.EncodeString(nil, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, out, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); back != want && back != validRunes(s) {
			t.Fatalf("%q → %s → %q", s, out, back)
		}
		if bytes.ContainsRune(out, '\u2028') || bytes.ContainsRune(out, '\u2029') || !utf8.Valid(out) {
			t.Fatalf("%q → %s: raw U+2028/9 or invalid UTF-8", s, out)
		}
	}
}

// validRunes replaces every invalid byte (not every invalid run) by U+FFFD.
func validRunes(s string) string {
	var sb strings.Builder
	for _, r := range s {
		sb.WriteRune(r)
	}
	return sb.String()
}

// TestEncodeByteaRoundTrip checks random bytes in both bytea formats.
func TestEncodeByteaRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	enc := NewTypes().Encoder(pgtype.ByteaOID)
	for n := range 200 {
		b := make([]byte, n%40)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		var esc strings.Builder
		for _, c := range b {
			switch {
			case c == '\\':
				esc.WriteString(`\\`)
			case c < 0x20 || c > 0x7e:
				fmt.Fprintf(&esc, `\%03o`, c)
			default:
				esc.WriteByte(c)
			}
		}
		for _, text := range []string{`\x` + hex.EncodeToString(b), `\x` + strings.ToUpper(hex.EncodeToString(b)), esc.String()} {
			out, err := enc(nil, []byte(text))
			if err != nil {
				t.Fatalf("%q: %v", text, err)
			}
			if want := `"` + base64.StdEncoding.EncodeToString(b) + `"`; string(out) != want {
				t.Fatalf("%q: got %s want %s", text, out, want)
			}
		}
	}
}

// TestEncodeTimestamptzRandom checks random instants written with random
// offsets, as PostgreSQL would print them, against package time.
func TestEncodeTimestamptzRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	enc := NewTypes().Encoder(pgtype.TimestamptzOID)
	lo := time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(9999, 12, 30, 0, 0, 0, 0, time.UTC).Unix()
	for range 5000 {
		u := time.Unix(lo+r.Int64N(hi-lo), int64(r.IntN(1e6))*1000).UTC()
		off := r.IntN(2*15*3600+1) - 15*3600
		switch r.IntN(3) {
		case 0:
			off -= off % 3600
		case 1:
			off -= off % 60
		}
		local := u.In(time.FixedZone("", off))
		text := local.Format("2006-01-02 15:04:05.999999")
		sign, a := "+", off
		if off < 0 {
			sign, a = "-", -off
		}
		text += fmt.Sprintf("%s%02d", sign, a/3600)
		if a%3600 != 0 {
			text += fmt.Sprintf(":%02d", a/60%60)
			if a%60 != 0 {
				text += fmt.Sprintf(":%02d", a%60)
			}
		}
		out, err := enc(nil, []byte(text))
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		want := `"` + u.Format("2006-01-02T15:04:05.999999Z") + `"`
		if string(out) != want {
			t.Fatalf("%s: got %s want %s", text, out, want)
		}
	}
}

// TestEncodeDatesWide: dates over PostgreSQL's whole range, BC and
// far-future years included, written as PostgreSQL prints them, come out
// in ISO 8601 (astronomical, expanded years outside 1–9999); a timestamptz
// half an hour past midnight an hour east of UTC comes out the day before.
func TestEncodeDatesWide(t *testing.T) {
	types := NewTypes()
	date, tstz := types.Encoder(pgtype.DateOID), types.Encoder(pgtype.TimestamptzOID)
	pg := func(u time.Time, clock string) string { // PostgreSQL's ISO DateStyle
		y, bc := u.Year(), ""
		if y <= 0 {
			y, bc = 1-y, " BC"
		}
		return fmt.Sprintf("%04d-%02d-%02d%s%s", y, u.Month(), u.Day(), clock, bc)
	}
	iso := func(u time.Time) string {
		y := u.Year()
		year := fmt.Sprintf("%04d", y)
		if y < 1 || y > 9999 {
			year = fmt.Sprintf("%+07d", y)
		}
		return fmt.Sprintf("%s-%02d-%02d", year, u.Month(), u.Day())
	}
	first := time.Date(-4712, 1, 1, 0, 0, 0, 0, time.UTC) // 4713 BC
	last := time.Date(294276, 12, 31, 0, 0, 0, 0, time.UTC)
	n := 0
	for u := first; !u.After(last); u = u.AddDate(0, 0, 997) {
		for _, day := range []time.Time{u, time.Date(u.Year(), 2, 29, 0, 0, 0, 0, time.UTC), time.Date(u.Year(), 1, 1, 0, 0, 0, 0, time.UTC)} {
			if day.Month() != 2 && day.Day() == 29 {
				continue // not a leap year
			}
			n++
			text := pg(day, "")
			if out, err := date(nil, []byte(text)); err != nil || string(out) != `"`+iso(day)+`"` {
				t.Fatalf("date %s: %s %v, want %q", text, out, err, iso(day))
			}
			text = pg(day, " 00:30:00+01")
			want := `"` + iso(day.AddDate(0, 0, -1)) + `T23:30:00Z"`
			if out, err := tstz(nil, []byte(text)); err != nil || string(out) != want {
				t.Fatalf("timestamptz %s: %s %v, want %s", text, out, err, want)
			}
		}
	}
	for _, bad := range []string{"2023-02-29", "2024-02-30", "0002-02-29 BC", "0100-02-29", "2024-04-31"} {
		if out, err := date(nil, []byte(bad)); err == nil {
			t.Errorf("date %s: %s, want an error", bad, out)
		}
	}
	if n < 100_000 {
		t.Fatalf("only %d dates checked", n)
	}
}

// --- integration ---

// walsenderSettings are the session settings of the connector's walsender
// connection, which fix the text form of values.
var walsenderSettings = []string{
	"SET TimeZone='UTC'", "SET DateStyle='ISO, MDY'", "SET IntervalStyle='iso_8601'",
	"SET extra_float_digits=3", "SET bytea_output='hex'",
}

// TestTypesBuiltinsMatchCatalog checks every entry of the builtin table
// against pg_type of a real server.
func TestTypesBuiltinsMatchCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	conn := typesConn(t, testenv.PG(t).NewDatabase(t))
	ctx := context.Background()
	oids := make([]uint32, 0, len(builtinInfo))
	for oid := range builtinInfo {
		oids = append(oids, oid)
	}
	// Resolve into a scratch Types by pretending nothing is builtin: query directly.
	rows, err := conn.Query(ctx, `SELECT t.oid, t.typname::text, t.typtype::text, t.typcategory::text,
		CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END, t.typbasetype, t.typdelim::text
		FROM pg_type t WHERE t.oid = ANY($1)`, oids)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint32]TypeInfo{}
	for rows.Next() {
		var ti TypeInfo
		var typ, cat, delim string
		if err := rows.Scan(&ti.OID, &ti.Name, &typ, &cat, &ti.Elem, &ti.Base, &delim); err != nil {
			t.Fatal(err)
		}
		ti.Type, ti.Category, ti.Delim = typ[0], cat[0], delim[0]
		got[ti.OID] = ti
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for oid, want := range builtinInfo {
		if got[oid] != want {
			t.Errorf("OID %d: table %+v, pg_type %+v", oid, want, got[oid])
		}
	}
	// Every base type a table column can have should be in the table.
	var missing []string
	rows, err = conn.Query(ctx, `SELECT typname::text FROM pg_type
		WHERE oid < 16384 AND typtype IN ('b','r','m') AND typname NOT LIKE '\_%'
		  AND typnamespace = 'pg_catalog'::regnamespace AND typname NOT IN
		  ('pg_node_tree','pg_ndistinct','pg_dependencies','pg_mcv_list','pg_ddl_command','gtsvector','pg_brin_bloom_summary','pg_brin_minmax_multi_summary')
		  AND oid <> ALL($1) ORDER BY 1`, oids)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		missing = append(missing, n)
	}
	if len(missing) > 0 {
		t.Errorf("builtin types not in the table: %v", missing)
	}
}

func typesConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, s := range walsenderSettings {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return conn
}

// TestTypesGolden creates the tables of testdata/types/<case>/setup.sql on a
// real server, reads every value back as text with the connector's session
// settings, encodes it and compares with want.json. Each value is also
// checked against PostgreSQL's own to_json where the mappings agree.
func TestTypesGolden(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pg := testenv.PG(t)
	dirs, err := filepath.Glob(filepath.Join("testdata", "types", "*", "setup.sql"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no testdata/types/*/setup.sql (%v)", err)
	}
	for _, setup := range dirs {
		dir := filepath.Dir(setup)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			sql, err := os.ReadFile(setup)
			if err != nil {
				t.Fatal(err)
			}
			conn := typesConn(t, pg.NewDatabase(t))
			ctx := context.Background()
			if _, err := conn.Exec(ctx, string(sql)); err != nil {
				t.Fatalf("setup.sql: %v", err)
			}
			got := encodeTable(t, conn, "t")
			path := filepath.Join(dir, "want.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
				for i := 0; i < len(gl) || i < len(wl); i++ {
					var g, w string
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if g != w {
						t.Errorf("%s line %d:\n got  %s\n want %s", path, i+1, g, w)
					}
				}
			}
		})
	}
}

type tableColumn struct {
	name string
	oid  uint32
}

// encodeTable encodes every row of table (ordered by its first column) and
// renders the result with one value per line, values as encoded.
func encodeTable(t *testing.T, conn *pgx.Conn, table string) []byte {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT attname::text, atttypid FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tableColumn, error) {
		var c tableColumn
		return c, r.Scan(&c.name, &c.oid)
	})
	if err != nil {
		t.Fatal(err)
	}
	oids := make([]uint32, len(cols))
	for i, c := range cols {
		oids[i] = c.oid
	}
	types := NewTypes()
	if err := types.Resolve(ctx, conn, oids); err != nil {
		t.Fatal(err)
	}

	// Values are read in text format, so they are the type's output
	// function's text, as pgoutput sends them (not the ::text cast, which
	// differs for bool, bpchar, inet and cidr).
	var sel []string
	for _, c := range cols {
		q := pgx.Identifier{c.name}.Sanitize()
		sel = append(sel, q, "to_json("+q+")::text")
	}
	rr := conn.PgConn().ExecParams(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+table+" ORDER BY 1", nil, nil, nil, nil)
	var out bytes.Buffer
	out.WriteString("{\n  \"columns\": [\n")
	for i, c := range cols {
		fmt.Fprintf(&out, "    {\"name\": %q, \"type\": %q, \"handled\": %v}", c.name, types.Name(c.oid), types.Handled(c.oid))
		out.WriteString(sep(i, len(cols)))
	}
	out.WriteString("  ],\n  \"rows\": [\n")
	first := true
	for rr.NextRow() {
		vals := rr.Values()
		if !first {
			out.WriteString(",\n")
		}
		first = false
		out.WriteString("    {\n")
		for i, c := range cols {
			text, pgJSON := vals[2*i], vals[2*i+1]
			var enc []byte
			if text == nil {
				enc = []byte("null")
			} else {
				enc, err = types.Encoder(c.oid)(nil, text)
				if err != nil {
					t.Fatalf("column %s (%s) text %q: %v", c.name, types.Name(c.oid), text, err)
				}
				if !json.Valid(enc) {
					t.Fatalf("column %s: invalid JSON %s", c.name, enc)
				}
				if pgJSON != nil {
					checkAgainstToJSON(t, types, c, string(text), enc, pgJSON)
				}
			}
			fmt.Fprintf(&out, "      %q: %s", c.name, enc)
			out.WriteString(sep(i, len(cols)))
		}
		out.WriteString("    }")
	}
	if _, err := rr.Close(); err != nil {
		t.Fatal(err)
	}
	out.WriteString("\n  ]\n}\n")
	return out.Bytes()
}

func sep(i, n int) string {
	if i < n-1 {
		return ",\n"
	}
	return "\n"
}

var bigOrBCYear = regexp.MustCompile(`(^|[^0-9])[0-9]{5,}-|\bBC\b`)

// checkAgainstToJSON compares an encoded value with PostgreSQL's to_json of
// the same value where the two mappings agree by design: everything except
// numeric (string here), bytea (base64 here), timestamptz (Z here), BC and
// 5-digit years (ISO 8601 expanded form here), composites (objects in
// to_json) and arrays of those.
func checkAgainstToJSON(t *testing.T, types *Types, c tableColumn, text string, ours, theirs []byte) {
	t.Helper()
	base := c.oid
	isArray := false
	for range maxTypeDepth {
		ti, _ := types.Info(base)
		switch {
		case ti.Type == 'd':
			base = ti.Base
			continue
		case ti.Category == 'A' && ti.Elem != 0 && base != 22 && base != 30: // not int2vector, oidvector
			isArray = true
			base = ti.Elem
			continue
		}
		break
	}
	bi, _ := types.Info(base)
	switch {
	case builtinKind[base] == kindUint && !isArray: // to_json: a string of the digits
		if `"`+string(ours)+`"` != string(theirs) {
			t.Errorf("column %s (%s): ours %s, to_json %s", c.name, types.Name(c.oid), ours, theirs)
		}
		return
	case base == pgtype.NumericOID && !isArray:
		want := string(theirs)
		if !strings.HasPrefix(want, `"`) {
			want = `"` + want + `"`
		}
		if string(ours) != want {
			t.Errorf("column %s numeric %q: ours %s, to_json %s", c.name, text, ours, theirs)
		}
		return
	case base == pgtype.ByteaOID && !isArray:
		var s string
		if err := json.Unmarshal(ours, &s); err != nil {
			t.Fatal(err)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("column %s: %s is not base64: %v", c.name, ours, err)
		}
		var pgHex string
		_ = json.Unmarshal(theirs, &pgHex)
		if `\x`+hex.EncodeToString(b) != pgHex {
			t.Errorf("column %s bytea: ours %s (%x), to_json %s", c.name, ours, b, theirs)
		}
		return
	case base == pgtype.TimestamptzOID && !isArray:
		var o, p string
		_ = json.Unmarshal(ours, &o)
		_ = json.Unmarshal(theirs, &p)
		if bigOrBCYear.MatchString(p) || strings.Contains(p, "infinity") {
			if strings.Contains(p, "infinity") && o != p {
				t.Errorf("column %s: ours %s, to_json %s", c.name, ours, theirs)
			}
			return
		}
		to, err1 := time.Parse(time.RFC3339Nano, o)
		tp, err2 := time.Parse(time.RFC3339Nano, p)
		if err1 != nil || err2 != nil || !to.Equal(tp) || !strings.HasSuffix(o, "Z") {
			t.Errorf("column %s timestamptz: ours %s, to_json %s (%v, %v)", c.name, ours, theirs, err1, err2)
		}
		return
	case base == pgtype.NumericOID, base == pgtype.ByteaOID, base == pgtype.TimestamptzOID,
		builtinKind[base] == kindUint, bi.Type == 'c' || base == pgtype.RecordOID:
		return
	case (base == pgtype.DateOID || base == pgtype.TimestampOID) && bigOrBCYear.Match(theirs):
		return
	}
	var o, p any
	do := json.NewDecoder(bytes.NewReader(ours))
	do.UseNumber()
	dp := json.NewDecoder(bytes.NewReader(theirs))
	dp.UseNumber()
	if err := do.Decode(&o); err != nil {
		t.Fatal(err)
	}
	if err := dp.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, p) {
		t.Errorf("column %s (%s) text %q: ours %s, to_json %s", c.name, types.Name(c.oid), text, ours, theirs)
	}
}

// BenchmarkEncode measures the encoders of common column types.
func BenchmarkEncode(b *testing.B) {
	types := NewTypes()
	for _, c := range []struct {
		name string
		oid  uint32
		in   string
	}{
		{"int8", pgtype.Int8OID, "123456789012"},
		{"text", pgtype.TextOID, "taro.yamada@example.jp"},
		{"text_ja", pgtype.TextOID, "山田 太郎 (東京都千代田区)"},
		{"timestamptz", pgtype.TimestamptzOID, "2026-11-25 03:00:00.123456+00"},
		{"timestamptz_offset", pgtype.TimestamptzOID, "2026-11-25 12:00:00.123456+09"},
		{"jsonb", pgtype.JSONBOID, `{"q1": "はい", "q2": ["平日", "土日"], "q3": 3}`},
		{"numeric", pgtype.NumericOID, "1234567.89"},
		{"float8", pgtype.Float8OID, "3.141592653589793"},
		{"bool", pgtype.BoolOID, "t"},
		{"uuid", pgtype.UUIDOID, "0b9e4b8a-7c1f-4a0e-9d3c-2f6f1e0b8a11"},
		{"bytea", pgtype.ByteaOID, `\x48656c6c6f2c20776f726c6421`},
		{"text[]", pgtype.TextArrayOID, `{applied,"in review",NULL,"a \"quoted\" one"}`},
		{"int4[]", pgtype.Int4ArrayOID, `{1,2,3,4,5,6,7,8}`},
	} {
		enc := types.Encoder(c.oid)
		in := []byte(c.in)
		b.Run(c.name, func(b *testing.B) {
			dst := make([]byte, 0, 1024)
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				var err error
				if dst, err = enc(dst[:0], in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
