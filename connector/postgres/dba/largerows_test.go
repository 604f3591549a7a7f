package dba

import "testing"

// TestCanExceed: which column types can make an event over SNS's limit
// on their own (format_type names, as check reads them).
func TestCanExceed(t *testing.T) {
	const limit = 262144
	for _, tc := range []struct {
		typ  string
		want bool
	}{
		{"text", true},
		{"jsonb", true},
		{"json", true},
		{"bytea", true},
		{"xml", true},
		{"character varying", true},
		{"character varying(20)", false},
		{"character varying(43690)", false}, // 6 bytes a character at most: 262140
		{"character varying(43691)", true},
		{"character(10)", false},
		{"character", false},
		{"integer[]", true},
		{"bigint", false},
		{"numeric(10,2)", false},
		{"timestamp with time zone", false},
		{"uuid", false},
	} {
		if got := canExceed(tc.typ, limit); got != tc.want {
			t.Errorf("canExceed(%q) = %v, want %v", tc.typ, got, tc.want)
		}
	}
}
