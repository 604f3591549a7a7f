package config

import (
	"errors"
	"fmt"
	"strings"
)

// checkWhere checks the shape of a row filter (tables[].where) before
// PostgreSQL ever parses it: one expression, so that it cannot end the
// statement it is put in (CREATE PUBLICATION ... WHERE (...), or the
// connector's own SELECT on PostgreSQL before 15). It refuses ';', comments,
// dollar quoting and parentheses that close more than they open; quotes
// must be closed. PostgreSQL then parses it (setup runs every statement
// alone with the extended protocol, which refuses several statements) and
// setup checks that the publication it made is the one planned.
func checkWhere(expr string) error {
	depth := 0
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for ; j < len(expr); j++ {
				if expr[j] == c {
					if j+1 < len(expr) && expr[j+1] == c { // doubled quote
						j++
						continue
					}
					break
				}
				if c == '\'' && expr[j] == '\\' && escapeString(expr, i) {
					j++ // E'...\'...'
				}
			}
			if j >= len(expr) {
				return fmt.Errorf("unterminated %c quote", c)
			}
			i = j
		case c == ';':
			return errors.New("';' is not allowed: one expression, not statements")
		case c == '-' && i+1 < len(expr) && expr[i+1] == '-', c == '/' && i+1 < len(expr) && expr[i+1] == '*':
			return errors.New("comments are not allowed")
		case c == '$':
			return errors.New("'$' (dollar quoting, parameters) is not allowed; use '...' string literals")
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return errors.New("')' closes a parenthesis the expression did not open")
			}
		}
	}
	if depth != 0 {
		return errors.New("unbalanced parentheses")
	}
	if strings.TrimSpace(expr) == "" {
		return errors.New("empty expression")
	}
	return nil
}

// escapeString reports whether the quote at i starts an E'...' string: an
// E (or e) that begins a token right before it.
func escapeString(expr string, i int) bool {
	if i == 0 || (expr[i-1] != 'E' && expr[i-1] != 'e') {
		return false
	}
	if i == 1 {
		return true
	}
	c := expr[i-2]
	return !(c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80)
}
