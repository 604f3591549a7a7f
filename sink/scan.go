package sink

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// scanMaxDepth bounds the nesting scanObject follows; deeper documents go
// to the json.Decoder path (whose own limit is 10,000).
const scanMaxDepth = 512

// scanObject reads b as one JSON object (optionally surrounded by JSON
// whitespace) and returns its members, each value's bytes aliasing b
// without surrounding whitespace, exactly as decodeObjectMembers returns
// them. It reports ok=false, and the caller falls back to
// decodeObjectMembers, for anything it does not take: malformed JSON, a
// member name with an escape or a non-ASCII byte (whose decoded form could
// differ from its bytes), a duplicate name, nesting deeper than
// scanMaxDepth. It accepts only what encoding/json accepts (RFC 8259;
// like encoding/json it does not check UTF-8 inside strings).
//
// It is a hand-written parser in front of the json.Decoder path, kept
// because make bench shows it end to end: without it (every message through
// decodeObjectMembers) the sink used 15 % more CPU per message in the
// bench's sink phase (289 → 332 µs, medians of 6 interleaved drains of
// 10,000 messages each, `go run ./tools/bench -compare`, load average
// 38–47 on 2 cores; 231 → 268 µs in an earlier measurement).
// TestScanObjectMatchesDecoder and FuzzScanObject compare the two paths.
func scanObject(b []byte) (map[string]json.RawMessage, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	m := make(map[string]json.RawMessage, 16)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			// Name: a string of printable ASCII without escapes.
			if i >= len(b) || b[i] != '"' {
				return nil, false
			}
			start := i + 1
			j := start
			for j < len(b) && b[j] != '"' {
				if c := b[j]; c < 0x20 || c >= 0x80 || c == '\\' {
					return nil, false
				}
				j++
			}
			if j >= len(b) {
				return nil, false
			}
			name := b[start:j]
			i = skipSpace(b, j+1)
			if i >= len(b) || b[i] != ':' {
				return nil, false
			}
			i = skipSpace(b, i+1)
			end, ok := scanValue(b, i, 0)
			if !ok {
				return nil, false
			}
			if _, dup := m[string(name)]; dup {
				return nil, false
			}
			m[internName(name)] = json.RawMessage(b[i:end:end])
			i = skipSpace(b, end)
			if i >= len(b) {
				return nil, false
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return nil, false
			}
			i = skipSpace(b, i+1)
		}
	}
	if skipSpace(b, i) != len(b) {
		return nil, false
	}
	return m, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanValue returns the end of the JSON value starting at b[i].
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{':
		if depth >= scanMaxDepth {
			return 0, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			end, ok := scanString(b, i)
			if !ok {
				return 0, false
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i = skipSpace(b, i+1)
			if i, ok = scanValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		if depth >= scanMaxDepth {
			return 0, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	}
	return 0, false
}

// scanString returns the end of the JSON string starting at b[i] == '"'.
func scanString(b []byte, i int) (int, bool) {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			if i+1 >= len(b) {
				return 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, false
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return 0, false
					}
				}
				i += 6
			default:
				return 0, false
			}
		default:
			i++
		}
	}
	return 0, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// scanNumber returns the end of the JSON number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// maxNames bounds the member names internName keeps: the attributes of
// CloudEvents and SNS envelopes and the mapped columns of data are a few
// dozen; names beyond the bound are copied per message.
const maxNames = 1024

// names is internName's table: read without a lock, replaced whole (copy on
// write) when a name is added, which stops after maxNames.
var names struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]string]
}

// internName returns b as a string, the same string for the same bytes
// every time, so a message's member names are not copied per message: the
// same dozen names recur in every event.
func internName(b []byte) string {
	m := names.m.Load()
	if m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
		if len(*m) >= maxNames {
			return string(b)
		}
	}
	s := string(b)
	names.mu.Lock()
	defer names.mu.Unlock()
	old := names.m.Load()
	n := 0
	if old != nil {
		n = len(*old)
	}
	if n >= maxNames {
		return s
	}
	nm := make(map[string]string, n+1)
	if old != nil {
		for k, v := range *old {
			nm[k] = v
		}
	}
	nm[s] = s
	names.m.Store(&nm)
	return s
}
