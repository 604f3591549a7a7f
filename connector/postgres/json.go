package postgres

import (
	"unicode/utf8"

	"github.com/baitoru/baitoru-cdc/connector"
)

// encodeJSON embeds valid JSON with insignificant whitespace removed,
// invalid UTF-8 replaced by U+FFFD and U+2028/U+2029 escaped; text that is
// not valid JSON (by encoding/json's rules, nesting depth included) becomes
// a JSON string.
//
// It validates and compacts in one pass with jsonCompactor, a hand-written
// piece kept because make bench shows it end to end: with json.Compact
// instead (encoding/json's one-pass validate-and-compact, plus a pass for
// the invalid UTF-8 and U+2028/U+2029 it leaves), the connector used 20 %
// more CPU per row on the one-transaction workload (11.3 → 13.5 µs/row,
// medians of 6 interleaved runs of 200,000 rows of
// `go run ./tools/bench -compare`, load average 26–31 on 2 cores; 18–24 %
// in two earlier measurements of 8 runs) and 10 % more on 10 × 20k rows
// (11.4 → 12.6); per value, BenchmarkEncodeJSON 0.8 → 3.3 µs.
// FuzzEncodeJSONMatchesReference compares it with json.Valid plus
// compaction.
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

// next reads what follows a member of an object or array: a comma (end
// false) or its closing bracket (end true); ok is false for anything else.
func (c *jsonCompactor) next(closing byte) (end, ok bool) {
	if c.skipSpace() == len(c.src) {
		return false, false
	}
	switch b := c.src[c.i]; b {
	case ',', closing:
		c.dst = append(c.dst, b)
		c.i++
		return b == closing, true
	}
	return false, false
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
			if end, ok := c.next('}'); !ok || end {
				return ok
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
			if end, ok := c.next(']'); !ok || end {
				return ok
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
