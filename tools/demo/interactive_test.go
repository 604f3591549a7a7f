package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestInteractiveCtrlC runs `make demo`'s binary as a person does: without
// -check, in a session of its own whose foreground process group gets the
// SIGINT of a Ctrl-C. It checks that the demo keeps running after the
// sample rows, prints a row inserted meanwhile as Kobot receives it, and
// on Ctrl-C exits 0 having stopped every process it started (nothing left
// in its session) and removed every file (its TMPDIR is empty).
func TestInteractiveCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs the whole demo")
	}
	root := testenv.ModuleRoot()
	bin := filepath.Join(t.TempDir(), "demo")
	build := exec.Command("go", "build", "-o", bin, "./tools/demo")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./tools/demo: %v\n%s", err, out)
	}
	// Everything the demo creates goes under TMPDIR; PostgreSQL runs as
	// the postgres user when we are root, so the directory must be
	// traversable by others.
	tmp, err := os.MkdirTemp("", "demo-interactive-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	// Setsid: the demo leads a new session and process group, as a shell
	// runs a foreground job; its children keep the session.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	t.Cleanup(func() { // after a failure: whatever is left of the demo
		for _, p := range sessionProcs(pid) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})

	var mu sync.Mutex
	var out strings.Builder
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			select {
			case lines <- sc.Text():
			default:
			}
		}
		exited <- cmd.Wait()
		close(lines)
	}()
	output := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	waitLine := func(re *regexp.Regexp, timeout time.Duration) []string {
		t.Helper()
		deadline := time.After(timeout)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("demo exited before printing %s:\n%s", re, output())
				}
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-deadline:
				t.Fatalf("demo did not print %s within %s:\n%s", re, timeout, output())
			}
		}
	}

	waitLine(regexp.MustCompile(`^demo: OK: \d+ linked events reached Kobot`), 90*time.Second)
	dsn := waitLine(regexp.MustCompile(`"(postgres://[^"]+/baitoru\?[^"]*)"`), 10*time.Second)[1]
	waitLine(regexp.MustCompile(`^Ctrl-C stops everything`), 10*time.Second)

	// Still running: a row committed now reaches Kobot and is printed.
	if err := testenv.Exec(context.Background(), dsn,
		`INSERT INTO applications (application_id, company_id, posting_id, applicant_name, applicant_email)
		 VALUES (424242, 1, 101, 'テスト', 'test@example.jp')`); err != nil {
		t.Fatal(err)
	}
	waitLine(regexp.MustCompile(`✓ .*baitoru\.applications\.insert .*commit→receipt [0-9.]+ms .*"application_id":424242`), 30*time.Second)

	procs := sessionProcs(pid)
	if len(procs) < 6 { // demo, PostgreSQL (and its workers), emulator, receiver, connector, sink
		t.Fatalf("only %d processes in the demo's session: %v", len(procs), procs)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) == 0 {
		t.Fatal("the demo created nothing under TMPDIR: the emptiness check below would prove nothing")
	}

	// Ctrl-C: the terminal sends SIGINT to the foreground process group.
	start := time.Now()
	if err := syscall.Kill(-pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo exited with %v after Ctrl-C:\n%s", err, output())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("demo still running 60s after Ctrl-C:\n%s", output())
	}
	t.Logf("demo stopped %s after Ctrl-C", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(output(), "demo: stopped the connector, the sink, the receiver, the emulator and PostgreSQL") {
		t.Errorf("no stop summary:\n%s", output())
	}
	if left := sessionProcs(pid); len(left) > 0 {
		t.Errorf("processes of the demo still running after it exited: %v", left)
	}
	// Only the logs it advertised stay, where it says.
	m := regexp.MustCompile(`the logs stay in (\S+)/\{([a-z,-]+)\}\.log`).FindStringSubmatch(output())
	if m == nil {
		t.Fatalf("the demo did not say where its logs stay:\n%s", output())
	}
	var left []string
	_ = filepath.WalkDir(tmp, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, path)
		}
		return nil
	})
	var want []string
	for _, n := range strings.Split(m[2], ",") {
		want = append(want, filepath.Join(m[1], n+".log"))
	}
	slices.Sort(left)
	slices.Sort(want)
	if !slices.Equal(left, want) || len(want) < 4 {
		t.Errorf("after Ctrl-C the demo left %v under TMPDIR; want exactly the logs it named: %v", left, want)
	}
	for _, f := range want {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("log %s: %v (empty or missing)", f, err)
		}
	}
}

// sessionProcs returns the live (not zombie) processes of session sid.
func sessionProcs(sid int) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...; comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 4 || fields[0] == "Z" {
			continue
		}
		if n, _ := strconv.Atoi(fields[3]); n == sid {
			p, _ := strconv.Atoi(strings.Fields(s)[0])
			out = append(out, p)
		}
	}
	return out
}
