package postgres

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
