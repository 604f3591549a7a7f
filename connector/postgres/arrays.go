package postgres

import (
	"strconv"

	"github.com/baitoru/baitoru-cdc/connector"
)

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
			putScratch(scratch)
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
					scratch = getScratch()
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
