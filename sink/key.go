package sink

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// numberSyntax is JSON's number grammar: what a link key looks like when it
// is a number, whether written as a JSON number (7, 7.0, 7e0) or as a string
// ("7.0", the text of a PostgreSQL numeric column).
var numberSyntax = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$`)

// maxKeyExponent bounds the exponent of a numeric key: any larger one makes
// a canonical text over MaxLinkKeyBytes (unless the number is 0), and
// bounding it bounds the work of canonicalising.
const maxKeyExponent = 2 * MaxLinkKeyBytes

// CanonicalKey returns the form in which a link key is stored and compared,
// or an error saying why s is not a valid key (see ValidateKey).
//
// A key in JSON number syntax is a number and is compared by value: its
// canonical text is the plain decimal without exponent, leading "+", trailing
// fraction zeros or a negative zero, so 7, 7.0, 7e0, 70E-1, "7.0" and "7"
// are all the key "7", and 1.50 is "1.5". Any other string is compared
// exactly ("007" and "7" are different keys, as are "a" and "A"). The links
// API stores keys in this form and the sink applies it to every event's key,
// so a company id matches whether its producer wrote it as an integer, a
// numeric or a string.
func CanonicalKey(s string) (string, error) {
	if err := ValidateKey(s); err != nil {
		return "", err
	}
	if c, ok := canonicalFast(s); ok {
		return c, nil
	}
	m := numberSyntax.FindStringSubmatch(s)
	if m == nil {
		return s, nil
	}
	c, err := canonicalNumber(s, m[2], m[3])
	if err != nil {
		return "", err
	}
	if len(c) > MaxLinkKeyBytes {
		return "", fmt.Errorf("is the number %s, whose plain decimal text is longer than %d bytes", clipString(s), MaxLinkKeyBytes)
	}
	return c, nil
}

// canonicalFast is CanonicalKey's answer for the keys events carry nearly
// always, without the regular expression and big.Rat of the general path
// (about a dozen allocations a key; the sink canonicalises every event's
// key): a plain integer (its own canonical text, but for "-0") and a string
// that cannot be a JSON number because it starts with neither a digit nor
// "-" (compared exactly). ok is false for anything else, which takes the
// general path. s is a valid key (ValidateKey). TestCanonicalFastAgrees
// checks it against the general path.
func canonicalFast(s string) (c string, ok bool) {
	if b := s[0]; b != '-' && (b < '0' || b > '9') {
		return s, true
	}
	digits := s
	if s[0] == '-' {
		digits = s[1:]
	}
	if digits == "" || len(digits) > 1 && digits[0] == '0' {
		return "", false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", false
		}
	}
	if digits == "0" {
		return "0", true // 0 and -0
	}
	return s, true
}

// canonicalNumber returns the plain decimal text of the JSON number s, whose
// fraction digits are frac and exponent exp (both may be empty).
func canonicalNumber(s, frac, exp string) (string, error) {
	if !strings.ContainsAny(mantissa(s), "123456789") {
		return "0", nil // 0, -0.000, 0e99: zero whatever the exponent
	}
	e := 0
	if exp != "" {
		n, err := strconv.Atoi(exp)
		if err != nil || n > maxKeyExponent || n < -maxKeyExponent {
			return "", fmt.Errorf("is the number %s, whose plain decimal text is longer than %d bytes", clipString(s), MaxLinkKeyBytes)
		}
		e = n
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "", errors.New("is not a valid number")
	}
	if r.IsInt() {
		return r.Num().String(), nil
	}
	// The exact decimal has at most len(frac)-e fraction digits.
	c := r.FloatString(max(len(frac)-e, 0))
	if strings.Contains(c, ".") {
		c = strings.TrimRight(strings.TrimRight(c, "0"), ".")
	}
	return c, nil
}

// mantissa is the part of a JSON number before its exponent.
func mantissa(s string) string {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		return s[:i]
	}
	return s
}
