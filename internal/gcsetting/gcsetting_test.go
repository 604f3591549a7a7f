package gcsetting

import (
	"os"
	"runtime/debug"
	"testing"
)

// restore puts the process's collector back as it was after the test.
func restore(t *testing.T) {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	l := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(p)
		debug.SetMemoryLimit(l)
	})
}

// unsetenv removes name from the environment for the test.
func unsetenv(t *testing.T, name string) {
	t.Setenv(name, "") // restores the old value after the test
	os.Unsetenv(name)
}

func TestApply(t *testing.T) {
	tests := []struct {
		name           string
		gogc, memlimit string // "": unset
		emptyEnv       bool   // set both to ""
		percent        int
		limit          int64
		want           Setting
	}{
		{name: "config", percent: 400, limit: 256 << 20,
			want: Setting{Percent: 400, MemoryLimit: 256 << 20}},
		{name: "no limit", percent: 150, limit: 0,
			want: Setting{Percent: 150, MemoryLimit: noLimit}},
		{name: "empty variables", gogc: "", memlimit: "", emptyEnv: true, percent: 400, limit: 256 << 20,
			want: Setting{Percent: 400, MemoryLimit: 256 << 20}},
		{name: "environment wins", gogc: "1", memlimit: "1", percent: 400, limit: 256 << 20,
			want: Setting{Percent: 77, MemoryLimit: 99 << 20, PercentFromEnv: true, MemoryLimitFromEnv: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restore(t)
			unsetenv(t, "GOGC")
			unsetenv(t, "GOMEMLIMIT")
			if tt.emptyEnv {
				t.Setenv("GOGC", "")
				t.Setenv("GOMEMLIMIT", "")
			}
			if tt.gogc != "" {
				// The runtime read the variables at start; stand for
				// what it read with values of its own.
				t.Setenv("GOGC", tt.gogc)
				t.Setenv("GOMEMLIMIT", tt.memlimit)
				debug.SetGCPercent(77)
				debug.SetMemoryLimit(99 << 20)
			}
			got := Apply(tt.percent, tt.limit)
			if got != tt.want {
				t.Errorf("Apply(%d, %d) = %+v, want %+v", tt.percent, tt.limit, got, tt.want)
			}
			if p := debug.SetGCPercent(-1); p != tt.want.Percent {
				t.Errorf("GC percent in force %d, want %d", p, tt.want.Percent)
			}
			debug.SetGCPercent(tt.want.Percent)
			if l := debug.SetMemoryLimit(-1); l != tt.want.MemoryLimit {
				t.Errorf("memory limit in force %d, want %d", l, tt.want.MemoryLimit)
			}
		})
	}
}

func TestLogAttrs(t *testing.T) {
	got := Setting{Percent: -1, MemoryLimit: noLimit, PercentFromEnv: true}.LogAttrs()
	want := []string{"gc_percent=off (GOGC)", "gc_memory_limit=none"}
	if len(got) != len(want) {
		t.Fatalf("LogAttrs() = %v", got)
	}
	for i, a := range got {
		if s := a.(interface{ String() string }).String(); s != want[i] {
			t.Errorf("attr %d = %q, want %q", i, s, want[i])
		}
	}
}
