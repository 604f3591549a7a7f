package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a configuration, located by file, line and
// key path (e.g. "tables[1].columns[2].rename"). A value that came from an
// environment override has Env set (e.g. "BAITORU_CDC_PUBLISHER_LANES") and
// no line. Messages never contain secrets (passwords, the webhook secret, the
// API token).
type Problem struct {
	File    string
	Line    int    // 1-based; 0 when unknown or when Env is set
	Env     string // environment variable the value came from, if any
	Path    string // key path; empty for problems of the whole file
	Message string
}

// String formats the problem as "file:line: key.path: message", or
// "file (from BAITORU_CDC_X): key.path: message" for an environment override.
// A problem of tables written in code (CompileTables) has no file: it is
// "key.path: message".
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" || p.Env != "" || p.Line > 0 {
		b.WriteString(p.File)
		switch {
		case p.Env != "":
			fmt.Fprintf(&b, " (from %s)", p.Env)
		case p.Line > 0:
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in one configuration. It is the error
// returned by Load and the Validate methods; Error has one problem a line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sorted orders problems by line, environment overrides after the file's
// lines; problems on the same line keep the order they were found in.
func (ps Problems) sorted() Problems {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone(ps)
	slices.SortStableFunc(out, func(a, b Problem) int {
		return cmp.Compare(a.sortKey(), b.sortKey())
	})
	return out
}

func (p Problem) sortKey() int {
	switch {
	case p.Env != "":
		return 1 << 30
	case p.Line == 0 && p.Path == "":
		return 0 // problems of the whole file first
	case p.Line == 0:
		return 1<<30 - 1
	}
	return p.Line
}

// err returns ps as an error, or nil when there are none.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps.sorted()
}
