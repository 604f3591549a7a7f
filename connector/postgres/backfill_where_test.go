package postgres

import (
	"errors"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
)

// TestCompileWhere: a backfill predicate becomes SQL over the published
// columns only; anything else (a second statement, a function call, a
// cast, a comment, a sub-query, an unpublished column) is refused.
func TestCompileWhere(t *testing.T) {
	fields := map[string]string{"company": "company_id", "company_id": "company_id", "title": "title", "opens_on": "opens_on"}
	for _, c := range []struct{ in, want, err string }{
		{"company_id = 7", `"company_id" = '7'`, ""},
		{"company = 7 AND (title <> 'a''b' OR title IS NULL)", `"company_id" = '7' AND ("title" <> 'a''b' OR "title" IS NULL)`, ""},
		{"opens_on >= '2026-01-01' and not company in (1, 2)", `"opens_on" >= '2026-01-01' AND NOT "company_id" IN ('1', '2')`, ""},
		{"company_id not in (3) and company_id between -1 and 2.5e3", `"company_id" NOT IN ('3') AND "company_id" BETWEEN '-1' AND '2.5e3'`, ""},
		{"title = 'x\\'; DROP TABLE t; --'", "", `"; DROP TAB"`},
		{"title = 'it''s; DROP TABLE t'", `"title" = 'it''s; DROP TABLE t'`, ""},
		{"", "", ""},
		{"company_id = 7; DROP TABLE postings", "", `";`},
		{"company_id = 7 OR pg_sleep(1) IS NULL", "", "pg_sleep is not a published field"},
		{"secret = 's'", "", "secret is not a published field"},
		{"company_id = 7 -- x", "", `"-`},
		{"company_id = 7 /* x */", "", `"/`},
		{"company_id = 7::text", "", `":`},
		{"company_id IN (SELECT 1)", "", "expected a value"},
		{"company_id = 7) OR (true", "", `unexpected ")"`},
		{"company_id = title", "", "expected a value"},
		{"company_id = ", "", "a value is missing"},
		{"company_id = 'unterminated", "", "unterminated string"},
		{"company_id = 1.2.3", "", "is not a number"},
		{`"company_id" = 1`, `"company_id" = '1'`, ""},
	} {
		got, err := CompileWhere(c.in, fields)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, connector.ErrBackfillRefused)):
			t.Errorf("%q: error %v, want one containing %q (refused)", c.in, err, c.err)
		case c.err == "" && got != c.want:
			t.Errorf("%q:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}
