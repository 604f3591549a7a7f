package testenv

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	mainCalled atomic.Bool
	warnOnce   sync.Once

	pgOnce   sync.Once
	sharedPG *Postgres
	pgErr    error

	emuOnce   sync.Once
	sharedEmu *Emulator
	emuErr    error
)

// PG returns the test binary's shared PostgreSQL cluster (wal_level=logical),
// starting it on first use. Tests isolate themselves with NewDatabase. A test
// that stops the shared cluster must start it again before it ends; tests that
// need other settings, or that restart the server, are clearer with OwnPG.
// The cluster is stopped by Main.
func PG(t testing.TB) *Postgres {
	t.Helper()
	warnMain(t)
	pgOnce.Do(func() {
		start := time.Now()
		sharedPG, pgErr = StartPostgres(PostgresOptions{})
		if pgErr == nil {
			t.Logf("testenv: postgres started on port %d in %v (log %s)", sharedPG.Port, time.Since(start).Round(time.Millisecond), sharedPG.LogPath)
		}
	})
	if pgErr != nil {
		t.Fatalf("testenv: %v", pgErr)
	}
	if err := sharedPG.Start(); err != nil { // a previous test may have left it stopped
		t.Fatalf("testenv: %v", err)
	}
	return sharedPG
}

// OwnPG starts a cluster for this test alone, closed on cleanup.
func OwnPG(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	p, err := StartPostgres(opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return p
}

// Emu returns the test binary's shared SNS/SQS emulator, starting it on
// first use. Tests isolate themselves with unique topic and queue names. A
// test that stops it must start it again; OwnEmu gives a dedicated one. The
// emulator is stopped by Main.
func Emu(t testing.TB) *Emulator {
	t.Helper()
	warnMain(t)
	emuOnce.Do(func() {
		start := time.Now()
		sharedEmu, emuErr = StartEmulator(EmulatorOptions{})
		if emuErr == nil {
			t.Logf("testenv: emulator started at %s in %v (log %s)", sharedEmu.Endpoint, time.Since(start).Round(time.Millisecond), sharedEmu.LogPath)
		}
	})
	if emuErr != nil {
		t.Fatalf("testenv: %v", emuErr)
	}
	if err := sharedEmu.Start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return sharedEmu
}

// OwnEmu starts an emulator for this test alone, closed on cleanup.
func OwnEmu(t testing.TB, opts EmulatorOptions) *Emulator {
	t.Helper()
	e, err := StartEmulator(opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return e
}

func warnMain(t testing.TB) {
	if mainCalled.Load() {
		return
	}
	warnOnce.Do(func() {
		t.Logf("testenv: call testenv.Main(m) from TestMain, or the shared servers' directories stay behind in %s", os.TempDir())
	})
}

func stopShared() {
	if sharedPG != nil {
		if err := sharedPG.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		}
	}
	if sharedEmu != nil {
		if err := sharedEmu.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		}
	}
}
