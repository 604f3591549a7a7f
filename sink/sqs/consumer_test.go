package sqs

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAttrText(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"kobot answered 400", 100, "kobot answered 400"},
		{"", 100, "-"},
		{"a\x00b\x07c", 100, "a?b?c"},
		{"line\nbreak\ttab", 100, "line\nbreak\ttab"},
		{"bad \xff utf8", 100, "bad ? utf8"},
		{"会社会社", 7, "会社"}, // never cut inside a character
		{strings.Repeat("x", 2000), 1000, strings.Repeat("x", 1000)},
	}
	for _, tt := range tests {
		got := attrText(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) || len(got) > tt.n {
			t.Errorf("attrText(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestReceiveCount(t *testing.T) {
	for in, want := range map[string]int{"": 1, "1": 1, "4": 4, "0": 1, "-2": 1, "x": 1} {
		if got := ReceiveCount(map[string]string{"ApproximateReceiveCount": in}); got != want {
			t.Errorf("ReceiveCount(%q) = %d, want %d", in, got, want)
		}
	}
	if ReceiveCount(nil) != 1 {
		t.Error("ReceiveCount(nil) != 1")
	}
}
