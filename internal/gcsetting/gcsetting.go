// Package gcsetting applies a process's garbage collector settings from its
// configuration, leaving the ones the environment sets (GOGC, GOMEMLIMIT)
// to the environment.
package gcsetting

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
)

// Setting is the collector's setting in force after Apply.
type Setting struct {
	// Percent is the heap growth between collections (GOGC); -1: off.
	Percent int
	// MemoryLimit is the soft memory limit in bytes (GOMEMLIMIT);
	// math.MaxInt64: none.
	MemoryLimit int64
	// PercentFromEnv and MemoryLimitFromEnv say that the environment's
	// GOGC and GOMEMLIMIT set them, and the configuration's value was left
	// aside.
	PercentFromEnv, MemoryLimitFromEnv bool
}

// Apply sets the collector's percent (as GOGC) and soft memory limit in
// bytes (as GOMEMLIMIT; 0: none) for the whole process, each unless the
// environment sets it (to anything but the empty string, which the runtime
// ignores too): the runtime has read GOGC and GOMEMLIMIT at start, and an
// operator's variable wins over the configuration. A percent below
// 1 is left as it is (config validates it). It returns the setting in
// force.
func Apply(percent int, memoryLimit int64) Setting {
	var s Setting
	s.PercentFromEnv = envSet("GOGC")
	s.MemoryLimitFromEnv = envSet("GOMEMLIMIT")
	if !s.PercentFromEnv && percent >= 1 {
		debug.SetGCPercent(percent)
	}
	if !s.MemoryLimitFromEnv && memoryLimit >= 0 {
		if memoryLimit == 0 {
			memoryLimit = noLimit
		}
		debug.SetMemoryLimit(memoryLimit)
	}
	s.Percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(s.Percent)
	s.MemoryLimit = debug.SetMemoryLimit(-1) // a negative limit only reads it
	return s
}

// envSet reports whether the environment sets name to anything but the
// empty string (which the runtime ignores too).
func envSet(name string) bool { return os.Getenv(name) != "" }

// noLimit is the runtime's "no memory limit".
const noLimit = int64(^uint64(0) >> 1)

// LogAttrs describes s for a log line: gc_percent and gc_memory_limit,
// "off" and "none" for no collector and no limit, each followed by
// "(GOGC)" or "(GOMEMLIMIT)" when the environment set it.
func (s Setting) LogAttrs() []any {
	p := strconv.Itoa(s.Percent)
	if s.Percent < 0 {
		p = "off"
	}
	if s.PercentFromEnv {
		p += " (GOGC)"
	}
	l := strconv.FormatInt(s.MemoryLimit, 10)
	if s.MemoryLimit == noLimit {
		l = "none"
	}
	if s.MemoryLimitFromEnv {
		l += " (GOMEMLIMIT)"
	}
	return []any{slog.String("gc_percent", p), slog.String("gc_memory_limit", l)}
}
