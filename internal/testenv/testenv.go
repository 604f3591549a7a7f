// Package testenv starts the real dependencies that baitoru-cdc's integration
// tests, the demo and the benchmarks run against: a throwaway PostgreSQL
// cluster with wal_level=logical (the machine's own initdb/postgres binaries)
// and the fauxqs SNS/SQS emulator (pinned under tools/emulator, run by a pinned
// Node 22).
//
// A test package shares one cluster and one emulator per test binary:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		if testing.Short() {
//			t.Skip("integration test")
//		}
//		dsn := testenv.PG(t).NewDatabase(t)
//		emu := testenv.Emu(t)
//		...
//	}
//
// A missing dependency is a test failure whose message says how to install it
// (make deps), never a skip. Servers listen on 127.0.0.1 on free ports, so
// test binaries running in parallel do not collide. Child processes are put in
// their own process group and get SIGQUIT/SIGKILL if this process dies, so an
// interrupted test run does not leave servers behind.
package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Main runs the tests of a package and then stops the shared PostgreSQL
// cluster and emulator started by PG and Emu, removing their directories.
// Call it from TestMain; it does not return.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	stopShared()
	os.Exit(code)
}

// ModuleRoot returns the directory holding baitoru-cdc's go.mod: the first
// parent of the working directory whose go.mod names the module, else the
// module this package was compiled from. It returns "" when neither is found.
func ModuleRoot() string {
	if wd, err := os.Getwd(); err == nil {
		if dir := findModule(wd); dir != "" {
			return dir
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if dir := findModule(filepath.Dir(file)); dir != "" {
			return dir
		}
	}
	return ""
}

const modulePath = "github.com/baitoru/baitoru-cdc"

func findModule(dir string) string {
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 2 && f[0] == "module" && f[1] == modulePath {
					return dir
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	return port, nil
}

// logTail returns the last n lines of the file at path, for error messages.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ownerFile, in each temporary directory, holds the pid of the process that
// created it, so a later run can remove directories whose owner died
// without cleaning up (killed test binary).
const ownerFile = "testenv.owner"

// makeTempDir creates a temporary directory under parent with the prefix,
// records this process as its owner and, once per process and parent,
// removes the testenv directories there whose owner is gone.
func makeTempDir(parent, prefix string) (string, error) {
	sweepMu.Lock()
	if !swept[parent] {
		swept[parent] = true
		sweepStale(parent)
	}
	sweepMu.Unlock()
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

var (
	sweepMu sync.Mutex
	swept   = map[string]bool{}
)

func sweepStale(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "baitoru-*-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or still being created
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // owner alive
		}
		os.RemoveAll(dir)
	}
}
