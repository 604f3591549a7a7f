package gcsetting

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
)

// MemoryFloor lets the Go runtime use a floor of memory before its garbage
// collector runs more often than a percent (GOGC) requires: after each
// collection it sets the runtime's soft memory limit to the larger of the
// floor and what the percent lets the heap grow to (live × (1 +
// percent/100), plus the runtime's memory outside the heap), with the
// percent itself off. The collector then starts when the limit is near.
//
// A process whose live heap is small but which allocates fast (the
// connector during a backfill: a few MiB live, a GiB allocated per million
// rows) otherwise collects every few MiB and spends a third of its CPU in
// the collector. A fixed GOMEMLIMIT with a high GOGC has the same effect
// while the live heap is small, but makes the collector run back to back
// once the live heap nears the limit (a backlog for SNS); the floor moves
// the limit up with the live heap, so it never collects more often than
// the percent alone would, and the limit keeps the runtime's resident
// memory near the floor while the live heap is small.
//
// Go has no floor of its own; the limit is set anew after every collection
// from a cleanup (runtime.AddCleanup) of an object made for that purpose,
// the way uber-go's and bytedance's GC tuners hook the collector. Kept by
// hand because no maintained module sets a limit from the live heap: make
// bench's item 10 (backfill) shows the CPU it saves end to end.
type MemoryFloor struct {
	floor   uint64
	percent uint64

	mu      sync.Mutex
	stopped bool
	sample  []metrics.Sample
	limit   int64 // set last
	tunes   int   // collections seen (tests)
}

// Indexes of MemoryFloor.sample.
const (
	sLive = iota
	sStacks
	sGlobals
	sTotal
	sReleased
	sObjects
	sUnused
	sFree
)

// NewMemoryFloor returns a floor of floor bytes over percent (Go's default
// is 100). It does nothing until Run.
func NewMemoryFloor(floor int64, percent int) *MemoryFloor {
	names := []string{
		sLive:     "/gc/heap/live:bytes",
		sStacks:   "/gc/scan/stack:bytes",
		sGlobals:  "/gc/scan/globals:bytes",
		sTotal:    "/memory/classes/total:bytes",
		sReleased: "/memory/classes/heap/released:bytes",
		sObjects:  "/memory/classes/heap/objects:bytes",
		sUnused:   "/memory/classes/heap/unused:bytes",
		sFree:     "/memory/classes/heap/free:bytes",
	}
	f := &MemoryFloor{floor: uint64(max(floor, 0)), percent: uint64(max(percent, 1))}
	for _, n := range names {
		f.sample = append(f.sample, metrics.Sample{Name: n})
	}
	return f
}

// floorActive is set while a MemoryFloor runs: the collector's settings
// are the process's, so one floor at a time keeps them.
var floorActive atomic.Bool

// Run keeps the floor until ctx ends, then restores the percent and no
// limit. It does nothing when the floor is zero, when the environment sets
// GOGC or GOMEMLIMIT (an operator's variable wins), or while another
// MemoryFloor of the process runs.
func (f *MemoryFloor) Run(ctx context.Context) error {
	if f.floor == 0 || envSet("GOGC") || envSet("GOMEMLIMIT") || !floorActive.CompareAndSwap(false, true) {
		<-ctx.Done()
		return nil
	}
	defer floorActive.Store(false)
	f.mu.Lock()
	f.tuneLocked()
	debug.SetGCPercent(-1)
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.stopped = true
	debug.SetGCPercent(int(f.percent))
	debug.SetMemoryLimit(noLimit)
	f.mu.Unlock()
	return nil
}

// arm registers tune to run after the next collection.
func (f *MemoryFloor) arm() {
	s := new([16]byte) // not tiny-allocated: the cleanup needs an object of its own
	runtime.AddCleanup(s, func(f *MemoryFloor) { f.tune() }, f)
}

// tune sets the limit from the last collection; the runtime's cleanup
// goroutine calls it after each.
func (f *MemoryFloor) tune() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.tunes++
		f.tuneLocked()
	}
}

func (f *MemoryFloor) tuneLocked() {
	metrics.Read(f.sample)
	v := func(i int) uint64 { return f.sample[i].Value.Uint64() }
	live := v(sLive)
	// The percent's goal, as the runtime computes it, plus the memory
	// the runtime holds outside the heap (stacks, metadata, buffers).
	goal := live + (live+v(sStacks)+v(sGlobals))*f.percent/100
	heap := v(sObjects) + v(sUnused) + v(sFree)
	outside := v(sTotal) - v(sReleased) - min(heap, v(sTotal)-v(sReleased))
	limit := int64(min(max(f.floor, goal+outside), uint64(noLimit)))
	if limit != f.limit {
		debug.SetMemoryLimit(limit)
		f.limit = limit
	}
	f.arm()
}

// FloorLogAttrs describes a floor of floor bytes for a log line:
// gc_memory_floor, "none" for none, and "(GOGC)" or "(GOMEMLIMIT)" when the
// environment's variable wins over it.
func FloorLogAttrs(floor int64) []any {
	v := strconv.FormatInt(floor, 10)
	switch {
	case floor == 0:
		v = "none"
	case envSet("GOGC"):
		v += " (off: GOGC)"
	case envSet("GOMEMLIMIT"):
		v += " (off: GOMEMLIMIT)"
	}
	return []any{slog.String("gc_memory_floor", v)}
}
