package postgres

import (
	"strconv"
	"time"
)

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
	return c, nil
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
	// Package time does the calendar: it normalises an impossible day
	// (Feb 30 becomes Mar 2), which is how one is found, and it moves the
	// value to UTC. Offsets are whole seconds: the fraction is unchanged.
	t := time.Date(int(c.year), time.Month(c.month), c.day, c.hour, c.min, c.sec, 0, time.UTC)
	if t.Day() != c.day {
		return dst, invalid(typ, 5, "day out of range for month")
	}
	t = t.Add(-time.Duration(c.offset) * time.Second)
	year, month, day := t.Date()
	dst = append(dst, '"')
	dst = appendYear(dst, int64(year))
	dst = append(dst, '-')
	dst = append2(dst, int(month))
	dst = append(dst, '-')
	dst = append2(dst, day)
	if parts&partTime != 0 {
		hour, min, sec := t.Clock()
		dst = append(dst, 'T')
		dst = append2(dst, hour)
		dst = append(dst, ':')
		dst = append2(dst, min)
		dst = append(dst, ':')
		dst = append2(dst, sec)
		if len(c.frac) > 0 {
			dst = append(dst, '.')
			dst = append(dst, c.frac...)
		}
	}
	if parts&partZone != 0 {
		dst = append(dst, 'Z')
	}
	return append(dst, '"'), nil
}
