package postgres

import (
	"encoding/base64"
	"encoding/hex"
)

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

func isHex(c byte) bool { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }

func encodeUUID(dst, text []byte, typ string) ([]byte, error) {
	if len(text) != 36 {
		return dst, invalid(typ, len(text), "want 36 characters")
	}
	for i, c := range text {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return dst, invalid(typ, i, "want '-'")
			}
		} else if !isHex(c) {
			return dst, invalid(typ, i, "want a hex digit")
		}
	}
	dst = append(dst, '"')
	dst = append(dst, text...)
	return append(dst, '"'), nil
}

// encodeBytea appends the bytes of a bytea value in hex ("\x0102") or escape
// ("a\\b\001") output format as a base64 JSON string.
func encodeBytea(dst, text []byte, typ string) ([]byte, error) {
	scratch := getScratch()
	defer putScratch(scratch)
	raw := (*scratch)[:0]
	if len(text) >= 2 && text[0] == '\\' && text[1] == 'x' {
		if len(text)%2 != 0 {
			return dst, invalid(typ, len(text), "odd number of hex digits")
		}
		var err error
		if raw, err = hex.AppendDecode(raw, text[2:]); err != nil {
			return dst, invalid(typ, 2+2*len(raw), "want hex digits")
		}
	} else {
		for i := 0; i < len(text); {
			c := text[i]
			switch {
			case c != '\\':
				raw = append(raw, c)
				i++
			case i+1 < len(text) && text[i+1] == '\\':
				raw = append(raw, '\\')
				i += 2
			case i+3 < len(text) && text[i+1] >= '0' && text[i+1] <= '3' &&
				text[i+2] >= '0' && text[i+2] <= '7' && text[i+3] >= '0' && text[i+3] <= '7':
				raw = append(raw, (text[i+1]-'0')<<6|(text[i+2]-'0')<<3|(text[i+3]-'0'))
				i += 4
			default:
				return dst, invalid(typ, i, "invalid escape")
			}
		}
	}
	*scratch = raw
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, raw)
	return append(dst, '"'), nil
}
