package connector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"unicode/utf8"
)

// TransformKind says what a Transform does to a column's value.
type TransformKind int

// The transforms. The zero value is no transform.
const (
	TransformNone TransformKind = iota
	// TransformHash replaces the value with the lowercase hex HMAC-SHA-256
	// of its text form under Transform.Key: equal values stay equal (and
	// joinable) across events, tables and restarts, but unreadable.
	TransformHash
	// TransformMask keeps the first First and last Last characters and
	// replaces every other character with '*'. A value of First+Last
	// characters or fewer is masked whole, so a short value is never shown.
	TransformMask
	// TransformTruncate cuts the value to at most MaxBytes bytes (never in
	// the middle of a character) or MaxChars characters.
	TransformTruncate
	// TransformNull publishes null whatever the value: the field stays in
	// the event (consumers keep their shape), the value never leaves.
	TransformNull
)

func (k TransformKind) String() string {
	switch k {
	case TransformHash:
		return "hash"
	case TransformMask:
		return "mask"
	case TransformTruncate:
		return "truncate"
	case TransformNull:
		return "null"
	}
	return "none"
}

// Transform is what the mapper does to one column's value before it is
// published. Package config builds it (every parameter checked, the hash key
// read from the environment); a NULL stays null under every transform.
type Transform struct {
	Kind     TransformKind
	Key      []byte // TransformHash: the HMAC key
	First    int    // TransformMask: characters kept at the start
	Last     int    // TransformMask: characters kept at the end
	MaxBytes int    // TransformTruncate: at most this many bytes (0: no byte limit)
	MaxChars int    // TransformTruncate: at most this many characters (0: no limit)
	// At says where the transform is written, e.g.
	// "config.yaml:42: tables[0].columns[3].transform", for messages.
	At string
}

// textTypes are the PostgreSQL types whose values are character strings: the
// only ones mask and truncate apply to (their result is a string, which
// would change the JSON form of a number, a date or a document).
var textTypes = []string{"text", "varchar", "bpchar", "citext", "name"}

// CheckType returns an error naming the problem when the transform cannot
// apply to a column of PostgreSQL type typeName (as announced in the stream,
// e.g. "int8", "text"); hash and null apply to every type.
func (t *Transform) CheckType(table, column, typeName string) error {
	if t == nil || typeName == "" {
		return nil
	}
	switch t.Kind {
	case TransformMask, TransformTruncate:
		if !slices.Contains(textTypes, typeName) {
			return fmt.Errorf("%s: %s applies to character columns (text, varchar, char, citext) but %s.%s is %s; use hash or null, or remove the transform",
				t.At, t.Kind, table, column, typeName)
		}
	}
	return nil
}

// AppendJSON appends the JSON value that replaces text (the column's text
// form, never NULL): a JSON string, or null for TransformNull.
func (t *Transform) AppendJSON(dst, text []byte) []byte {
	if t.Kind == TransformNull {
		return append(dst, "null"...)
	}
	var scratch [64]byte
	return AppendJSONString(dst, t.Apply(scratch[:0], text))
}

// Apply appends the transformed text form of text to dst. It is not called
// for TransformNull (there is no text), nor for NULL values.
func (t *Transform) Apply(dst, text []byte) []byte {
	switch t.Kind {
	case TransformHash:
		mac := hmac.New(sha256.New, t.Key)
		mac.Write(text)
		var sum [sha256.Size]byte
		return hex.AppendEncode(dst, mac.Sum(sum[:0]))
	case TransformMask:
		n := utf8.RuneCount(text)
		keep := t.First+t.Last < n
		i := 0
		for len(text) > 0 {
			_, size := utf8.DecodeRune(text)
			if keep && (i < t.First || i >= n-t.Last) {
				dst = append(dst, text[:size]...)
			} else {
				dst = append(dst, '*')
			}
			text = text[size:]
			i++
		}
		return dst
	case TransformTruncate:
		if t.MaxChars > 0 {
			end, i := 0, 0
			for end < len(text) && i < t.MaxChars {
				_, size := utf8.DecodeRune(text[end:])
				end += size
				i++
			}
			text = text[:end]
		}
		if t.MaxBytes > 0 && len(text) > t.MaxBytes {
			end := t.MaxBytes
			for end > 0 && !utf8.RuneStart(text[end]) {
				end--
			}
			text = text[:end]
		}
		return append(dst, text...)
	}
	return append(dst, text...)
}
