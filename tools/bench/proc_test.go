package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestProcCPU: procCPU counts a few milliseconds of work to within a tick
// (what getrusage says of the same process), where /proc/PID/stat's ticks
// of 10 ms could say nothing.
func TestProcCPU(t *testing.T) {
	for _, spin := range []time.Duration{3 * time.Millisecond, 40 * time.Millisecond} {
		p0, r0 := procCPU(os.Getpid()), selfCPU()
		for t0 := rusageThread(); rusageThread()-t0 < spin; {
		}
		p, r := procCPU(os.Getpid())-p0, selfCPU()-r0
		if p <= 0 || p < r/2 || p > r*2+2*time.Millisecond {
			t.Errorf("spun %s: procCPU counted %s, getrusage %s", spin, p, r)
		}
	}
}

// rusageThread is the CPU time of the calling thread.
func rusageThread() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
