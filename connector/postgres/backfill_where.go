package postgres

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/connector"
)

// A backfill's predicate (`backfill start --where`) is written by people
// and by the sink, and is run by the connector's role inside its chunk
// query. It is therefore not pasted as SQL: it is parsed into a small
// grammar, and only names of published fields, comparison operators and
// literals are accepted:
//
//	expr    = and { OR and }
//	and     = not { AND not }
//	not     = [ NOT ] primary
//	primary = "(" expr ")" | field cmp
//	cmp     = op literal | IS [ NOT ] NULL | [ NOT ] IN "(" literal { "," literal } ")"
//	        | BETWEEN literal AND literal
//	op      = "=" | "<>" | "!=" | "<" | "<=" | ">" | ">="
//	literal = number | 'string' | TRUE | FALSE
//
// A field is a published field of the table (the event's field name, or the
// column name); it is rendered as the quoted column, and literals as quoted
// SQL strings that PostgreSQL types from the column (so `opens_on >=
// '2026-01-01'` compares dates). No function call, cast, sub-query, comment
// or second statement can pass, so the predicate cannot make the
// connector's role do anything but filter rows. A hand-written parser:
// there is no PostgreSQL expression parser among the module's
// dependencies, and this grammar is small.

// whereToken is one token of a predicate.
type whereToken struct {
	kind byte // 'i' identifier, 'n' number, 's' string, 'o' operator or punctuation
	text string
}

func lexWhere(s string) ([]whereToken, error) {
	var out []whereToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			var sb strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated string starting at %q", s[i:])
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						sb.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				sb.WriteByte(s[j])
				j++
			}
			out = append(out, whereToken{'s', sb.String()})
			i = j + 1
		case c >= '0' && c <= '9' || c == '-' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' || c == '.':
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E') {
				j++
			}
			out = append(out, whereToken{'n', s[i:j]})
			i = j
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unterminated quoted name starting at %q", s[i:])
			}
			out = append(out, whereToken{'i', s[i+1 : i+1+j]})
			i += j + 2
		case c < 0x80 && (unicode.IsLetter(rune(c)) || c == '_'):
			j := i + 1
			for j < len(s) && s[j] < 0x80 && (unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j])) || s[j] == '_') {
				j++
			}
			out = append(out, whereToken{'i', s[i:j]})
			i = j
		case strings.HasPrefix(s[i:], "<=") || strings.HasPrefix(s[i:], ">=") || strings.HasPrefix(s[i:], "<>") || strings.HasPrefix(s[i:], "!="):
			out = append(out, whereToken{'o', s[i : i+2]})
			i += 2
		case strings.IndexByte("=<>(),", c) >= 0:
			out = append(out, whereToken{'o', s[i : i+1]})
			i++
		default:
			return nil, fmt.Errorf("%q is not allowed (use field names, comparisons, AND, OR, NOT, IN, BETWEEN, IS NULL and literals)", s[i:min(len(s), i+10)])
		}
	}
	return out, nil
}

// whereParser renders a predicate into SQL over the table's columns.
type whereParser struct {
	toks   []whereToken
	pos    int
	fields map[string]string // field or column name → column
	out    strings.Builder
}

// CompileWhere parses a backfill predicate and renders it as SQL over the
// table's columns; fields maps each published field (and column) name to
// its column. Errors wrap connector.ErrBackfillRefused.
func CompileWhere(where string, fields map[string]string) (string, error) {
	toks, err := lexWhere(where)
	if err != nil {
		return "", fmt.Errorf("predicate %q: %s: %w", where, err, connector.ErrBackfillRefused)
	}
	if len(toks) == 0 {
		return "", nil
	}
	p := &whereParser{toks: toks, fields: fields}
	if err := p.expr(); err != nil {
		return "", fmt.Errorf("predicate %q: %s: %w", where, err, connector.ErrBackfillRefused)
	}
	if p.pos < len(p.toks) {
		return "", fmt.Errorf("predicate %q: unexpected %q: %w", where, p.toks[p.pos].text, connector.ErrBackfillRefused)
	}
	return p.out.String(), nil
}

func (p *whereParser) peek() whereToken {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return whereToken{}
}

func (p *whereParser) keyword(k string) bool {
	t := p.peek()
	if t.kind == 'i' && strings.EqualFold(t.text, k) {
		p.pos++
		return true
	}
	return false
}

func (p *whereParser) punct(o string) bool {
	t := p.peek()
	if t.kind == 'o' && t.text == o {
		p.pos++
		return true
	}
	return false
}

func (p *whereParser) expr() error {
	if err := p.and(); err != nil {
		return err
	}
	for p.keyword("or") {
		p.out.WriteString(" OR ")
		if err := p.and(); err != nil {
			return err
		}
	}
	return nil
}

func (p *whereParser) and() error {
	if err := p.not(); err != nil {
		return err
	}
	for p.keyword("and") {
		p.out.WriteString(" AND ")
		if err := p.not(); err != nil {
			return err
		}
	}
	return nil
}

func (p *whereParser) not() error {
	if p.keyword("not") {
		p.out.WriteString("NOT ")
	}
	return p.primary()
}

func (p *whereParser) primary() error {
	if p.punct("(") {
		p.out.WriteByte('(')
		if err := p.expr(); err != nil {
			return err
		}
		if !p.punct(")") {
			return fmt.Errorf("missing )")
		}
		p.out.WriteByte(')')
		return nil
	}
	t := p.peek()
	if t.kind != 'i' || isWhereKeyword(t.text) {
		if t.text == "" {
			return fmt.Errorf("a comparison is missing at the end")
		}
		return fmt.Errorf("expected a field name, got %q", t.text)
	}
	col, ok := p.fields[t.text]
	if !ok {
		col, ok = p.fields[strings.ToLower(t.text)]
	}
	if !ok {
		return fmt.Errorf("%s is not a published field of the table (the predicate may name only what events carry)", t.text)
	}
	p.pos++
	p.out.WriteString(pgx.Identifier{col}.Sanitize())
	switch {
	case p.keyword("is"):
		p.out.WriteString(" IS ")
		if p.keyword("not") {
			p.out.WriteString("NOT ")
		}
		if !p.keyword("null") {
			return fmt.Errorf("IS must be followed by NULL or NOT NULL")
		}
		p.out.WriteString("NULL")
		return nil
	case p.keyword("between"):
		p.out.WriteString(" BETWEEN ")
		if err := p.literal(); err != nil {
			return err
		}
		if !p.keyword("and") {
			return fmt.Errorf("BETWEEN needs AND")
		}
		p.out.WriteString(" AND ")
		return p.literal()
	}
	not := p.keyword("not")
	if p.keyword("in") {
		if not {
			p.out.WriteString(" NOT")
		}
		p.out.WriteString(" IN (")
		if !p.punct("(") {
			return fmt.Errorf("IN needs a list in parentheses")
		}
		for n := 0; ; n++ {
			if n > 0 {
				p.out.WriteString(", ")
			}
			if err := p.literal(); err != nil {
				return err
			}
			if p.punct(")") {
				break
			}
			if !p.punct(",") {
				return fmt.Errorf("IN list: expected , or )")
			}
		}
		p.out.WriteByte(')')
		return nil
	}
	if not {
		return fmt.Errorf("NOT after a field must be followed by IN")
	}
	op := p.peek()
	switch op.text {
	case "=", "<>", "!=", "<", "<=", ">", ">=":
		if op.kind != 'o' {
			return fmt.Errorf("expected a comparison after %s", t.text)
		}
	default:
		return fmt.Errorf("expected a comparison after %s, got %q", t.text, op.text)
	}
	p.pos++
	p.out.WriteString(" " + op.text + " ")
	return p.literal()
}

func (p *whereParser) literal() error {
	t := p.peek()
	switch {
	case t.kind == 's':
		p.out.WriteString(quoteLiteral(t.text))
	case t.kind == 'n':
		if !isNumber(t.text) {
			return fmt.Errorf("%q is not a number", t.text)
		}
		p.out.WriteString(quoteLiteral(t.text))
	case t.kind == 'i' && (strings.EqualFold(t.text, "true") || strings.EqualFold(t.text, "false")):
		p.out.WriteString(strings.ToUpper(t.text))
	default:
		if t.text == "" {
			return fmt.Errorf("a value is missing at the end")
		}
		return fmt.Errorf("expected a value (number, 'string', true or false), got %q", t.text)
	}
	p.pos++
	return nil
}

func isWhereKeyword(s string) bool {
	switch strings.ToLower(s) {
	case "and", "or", "not", "is", "null", "in", "between", "true", "false":
		return true
	}
	return false
}

func isNumber(s string) bool {
	digits, dot, exp := 0, false, false
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '-' && i == 0:
		case c == '.' && !dot && !exp:
			dot = true
		case (c == 'e' || c == 'E') && !exp && digits > 0:
			exp = true
		default:
			return false
		}
	}
	return digits > 0
}

// quoteLiteral quotes s as a SQL string literal (standard_conforming_strings
// is on in the connector's sessions: a backslash is an ordinary character).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
