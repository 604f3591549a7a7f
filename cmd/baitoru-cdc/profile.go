package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Environment variables that make any command write pprof profiles, for
// benchmarks (tools/bench) and for investigating a slow deployment:
//
//	BAITORU_CDC_CPUPROFILE=<file>  CPU profile of the whole command
//	BAITORU_CDC_MEMPROFILE=<file>  heap profile written when the command
//	                               returns (after a GC): in-use memory and
//	                               the allocations made since start
//	                               (go tool pprof -sample_index=alloc_space)
const (
	envCPUProfile = "BAITORU_CDC_CPUPROFILE"
	envMemProfile = "BAITORU_CDC_MEMPROFILE"
)

// withProfiles runs fn under the profiles the environment asks for and
// writes them when fn returns. Without either variable it only calls fn.
// main wires it in one line:
//
//	err := withProfiles(func() error { return root.ExecuteContext(ctx) })
//
// A profile file that cannot be created fails the command before fn runs;
// one that cannot be written afterwards is reported on stderr and fn's
// error is returned unchanged.
func withProfiles(fn func() error) error {
	cpuPath, memPath := os.Getenv(envCPUProfile), os.Getenv(envMemProfile)
	if cpuPath == "" && memPath == "" {
		return fn()
	}
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return fmt.Errorf("%s: %w", envCPUProfile, err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("%s: start cpu profile: %w", envCPUProfile, err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "baitoru-cdc: %s: %v\n", envCPUProfile, err)
			}
		}()
	}
	var memFile *os.File
	if memPath != "" {
		f, err := os.Create(memPath)
		if err != nil {
			return fmt.Errorf("%s: %w", envMemProfile, err)
		}
		memFile = f
	}
	err := fn()
	if memFile != nil {
		runtime.GC() // up-to-date in-use figures
		werr := pprof.Lookup("heap").WriteTo(memFile, 0)
		if cerr := memFile.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			fmt.Fprintf(os.Stderr, "baitoru-cdc: %s: %v\n", envMemProfile, werr)
		}
	}
	return err
}
