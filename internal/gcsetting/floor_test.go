package gcsetting

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"testing"
	"time"
)

// sink keeps the compiler from dropping the garbage the tests make.
var sink []byte

// churn allocates n bytes of short-lived garbage in 4 KiB pieces and
// returns the collections it took.
func churn(n int) uint32 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i += 4 << 10 {
		sink = make([]byte, 4<<10)
	}
	runtime.ReadMemStats(&after)
	return after.NumGC - before.NumGC
}

// withFloor runs fn while a floor of floor bytes over percent 100 runs,
// with the process's collector at Go's default before and after.
func withFloor(t *testing.T, floor int64, fn func(f *MemoryFloor)) {
	t.Helper()
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(noLimit))
	f := NewMemoryFloor(floor, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for debug.SetMemoryLimit(-1) == noLimit && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	fn(f)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p, l := debug.SetGCPercent(100), debug.SetMemoryLimit(-1); p != 100 || l != noLimit {
		t.Errorf("after Run: percent %d, limit %d; want 100 and none restored", p, l)
	}
}

// A small live heap that allocates fast is collected a fraction as often
// under a floor as under Go's default.
func TestMemoryFloorCollectsLess(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a GiB")
	}
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC()
	var plain, floored []uint32
	for range 3 { // interleaved: the machine is shared
		runtime.GC() // the goal from this heap, not from an earlier test's
		plain = append(plain, churn(256<<20))
		withFloor(t, 128<<20, func(*MemoryFloor) { floored = append(floored, churn(256<<20)) })
	}
	slices.Sort(plain)
	slices.Sort(floored)
	t.Logf("collections for 256 MiB: %v under a 128 MiB floor, %v under Go's default", floored, plain)
	if floored[1]*3 > plain[1] {
		t.Errorf("collections for 256 MiB of garbage: %v under a 128 MiB floor, %v under Go's default; want under a third", floored, plain)
	}
}

// A live heap above the floor sets a limit above twice its size (the
// percent's goal): the collector never runs back to back near a limit
// the live heap filled.
func TestMemoryFloorFollowsLiveHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 48 MiB")
	}
	live := make([][]byte, 48)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	withFloor(t, 16<<20, func(f *MemoryFloor) {
		runtime.GC()
		churn(64 << 20)
		if l := debug.SetMemoryLimit(-1); l < 2*48<<20 {
			t.Errorf("limit %d MiB with 48 MiB alive; want at least 96 MiB", l>>20)
		}
		// What /metrics shows (client_golang's Go collector reads these).
		m := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
		metrics.Read(m)
		if p, l := int64(m[0].Value.Uint64()), m[1].Value.Uint64(); p != -1 || l < 2*48<<20 {
			t.Errorf("runtime metrics: gogc %d, gomemlimit %d MiB; want GOGC off (-1) and the limit above 96 MiB", p, l>>20)
		}
		if n := churn(128 << 20); n > 6 {
			t.Errorf("%d collections for 128 MiB of garbage with 48 MiB alive; want at most 6 (Go's default: about 2)", n)
		}
		f.mu.Lock()
		tunes := f.tunes
		f.mu.Unlock()
		if tunes == 0 {
			t.Error("the floor was never tuned after a collection")
		}
	})
	runtime.KeepAlive(live)
}

// The environment's GOGC or GOMEMLIMIT wins: the floor sets nothing.
func TestMemoryFloorLeavesTheEnvironment(t *testing.T) {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv("GOGC", "")
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv(env, map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"}[env])
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(noLimit))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- NewMemoryFloor(64<<20, 100).Run(ctx) }()
			time.Sleep(20 * time.Millisecond)
			runtime.GC()
			if l := debug.SetMemoryLimit(-1); l != noLimit {
				t.Errorf("limit %d with %s set; want none", l, env)
			}
			cancel()
			<-done
		})
	}
}

func TestFloorLogAttrs(t *testing.T) {
	for _, tc := range []struct {
		floor     int64
		env, want string
	}{
		{40 << 20, "", "41943040"},
		{0, "", "none"},
		{40 << 20, "GOGC", "41943040 (off: GOGC)"},
		{40 << 20, "GOMEMLIMIT", "41943040 (off: GOMEMLIMIT)"},
	} {
		t.Setenv("GOGC", "")
		t.Setenv("GOMEMLIMIT", "")
		if tc.env != "" {
			t.Setenv(tc.env, "1")
		}
		got := FloorLogAttrs(tc.floor)
		if len(got) != 1 || got[0].(interface{ String() string }).String() != "gc_memory_floor="+tc.want {
			t.Errorf("FloorLogAttrs(%d) with %q set = %v; want gc_memory_floor=%s", tc.floor, tc.env, got, tc.want)
		}
	}
}
