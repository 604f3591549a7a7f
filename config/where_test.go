package config

import "testing"

func TestCheckWhere(t *testing.T) {
	tests := []struct {
		expr string
		ok   bool
	}{
		{"published", true},
		{"company_id % 2 = 0 AND (status = 'open' OR status = 'new')", true},
		{"title <> 'a;b -- c /* d */ (e'", true},
		{`"we;ird)" IS NOT NULL`, true},
		{`E'it\'s' = name`, true},
		{"name = 'it''s'", true},
		{"true); DROP TABLE x; --", false},
		{"true; DROP TABLE x", false},
		{"true -- comment", false},
		{"true /* c */", false},
		{"a = $$x$$", false},
		{"(a = 1", false},
		{"a = 1)", false},
		{"a = 1) OR (b = 2", false},
		{"name = 'unterminated", false},
		{`"unterminated = 1`, false},
		// Not an E string: a backslash before the quote is literal, so
		// the string ends there and the ';' is outside it.
		{`name = date'x\'; DROP TABLE t; --'`, false},
		{"   ", false},
	}
	for _, tc := range tests {
		err := checkWhere(tc.expr)
		if (err == nil) != tc.ok {
			t.Errorf("checkWhere(%q) = %v, want ok=%v", tc.expr, err, tc.ok)
		}
	}
}
