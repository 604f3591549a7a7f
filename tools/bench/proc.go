package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/child"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// proc is a process the bench started (the connector, the sink, the
// baseline reader), supervised by package child, with the bench's
// measurements of it.
type proc struct{ *child.Process }

// startProcess starts bin with args and env (added to child.Env). Its
// output goes to logDir/name.log; stdout, when not nil, receives its
// standard output instead.
func startProcess(name, logDir, bin string, args, env []string, stdout io.Writer) (*proc, error) {
	c, err := child.Start(child.Spec{Name: name, Path: bin, Args: args, Env: child.Env(env...),
		LogPath: filepath.Join(logDir, name+".log"), Stdout: stdout})
	if err != nil {
		return nil, err
	}
	return &proc{c}, nil
}

// exitErr describes how the process ended, with the tail of its log.
func (c *proc) exitErr() error { return c.ExitError(15) }

// aborted is how the process ended (exitErr) once it has, nil while it
// runs: the abort check of a wait for something it should do.
func (c *proc) aborted() error {
	if c.Exited() {
		return c.exitErr()
	}
	return nil
}

// vmHWM returns the process's peak resident set size so far (VmHWM), in
// bytes; 0 when it cannot be read.
func (c *proc) vmHWM() int64 { return procStatusKB(c.Pid(), "VmHWM") * 1024 }

func procStatusKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n
	}
	return 0
}

// stop sends SIGTERM and waits up to grace for exit, then kills. A slow
// stop is reported on stderr (it is a finding too).
func (c *proc) stop(grace time.Duration) {
	if c.Exited() {
		return
	}
	start := time.Now()
	err := c.Stop(grace)
	switch {
	case errors.Is(err, child.ErrKilled):
		fmt.Fprintf(os.Stderr, "%s bench: %s did not stop %s after SIGTERM; killed\n", time.Now().Format("15:04:05"), c.Name(), grace)
	case time.Since(start) > 2*time.Second:
		fmt.Fprintf(os.Stderr, "%s bench: %s took %s to stop after SIGTERM\n", time.Now().Format("15:04:05"), c.Name(), time.Since(start).Round(time.Millisecond))
	}
}

// wait waits for exit or ctx.
func (c *proc) wait(ctx context.Context) error {
	select {
	case <-c.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// usage returns the peak RSS (bytes) and CPU time (user+system) of an
// exited process, from wait4's rusage.
func (c *proc) usage() (maxRSS int64, cpu time.Duration) {
	st := c.Cmd().ProcessState
	if !c.Exited() || st == nil {
		return 0, 0
	}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		maxRSS = ru.Maxrss * 1024
	}
	return maxRSS, st.UserTime() + st.SystemTime()
}

// procCPU returns the CPU time process pid used so far; 0 when it cannot
// be read. It sums the run time of the process's threads from
// /proc/PID/task/*/schedstat (nanoseconds): /proc/PID/stat counts in ticks
// of 10 ms, which rounds a small item's backfill to nothing. The ticks
// are the answer only when schedstat cannot be read (the two are not
// mixed: a difference of readings would jump). A thread that exited takes
// its time with it; the processes measured keep theirs (Go's threads,
// PostgreSQL's single-threaded backends, Node's pool).
func procCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*/schedstat", pid))
	var ns time.Duration
	read := 0
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		ns += time.Duration(v)
		read++
	}
	if read == 0 {
		return procTicks(pid)
	}
	return ns
}

// procTicks returns the CPU time (user+system) of process pid from
// /proc/PID/stat, in ticks of 10 ms; 0 when it cannot be read.
func procTicks(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// emulatorPID finds the emulator's process by the port in its environment.
func emulatorPID(port int) int {
	want := []byte(fmt.Sprintf("FAUXQS_PORT=%d\x00", port))
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		return pid
	}
	return 0
}

// goTool returns the go command.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// buildConnector builds ./cmd/baitoru-cdc into dir and returns the path of
// the plain binary and of the one that writes profiles when
// BAITORU_CDC_CPUPROFILE / BAITORU_CDC_MEMPROFILE are set: the same binary,
// since main.go wires withProfiles (an error if it stopped doing so, rather
// than a bench without profiles).
func buildConnector(ctx context.Context, dir string) (plain, profiling, note string, err error) {
	root := testenv.ModuleRoot()
	if root == "" {
		return "", "", "", errors.New("cannot find the baitoru-cdc module root (run from inside the repository)")
	}
	plain = filepath.Join(dir, "baitoru-cdc")
	if err := goBuild(ctx, root, plain, nil); err != nil {
		return "", "", "", err
	}
	mainGo := filepath.Join(root, "cmd", "baitoru-cdc", "main.go")
	src, err := os.ReadFile(mainGo)
	if err != nil {
		return "", "", "", fmt.Errorf("read %s: %w", mainGo, err)
	}
	if !strings.Contains(string(src), "withProfiles(") {
		return "", "", "", errors.New("cmd/baitoru-cdc/main.go does not call withProfiles: the bench's profiles need it (BAITORU_CDC_CPUPROFILE, BAITORU_CDC_MEMPROFILE)")
	}
	return plain, plain, "", nil
}

func goBuild(ctx context.Context, root, out string, extra []string) error {
	return goBuildPkg(ctx, root, out, "./cmd/baitoru-cdc", extra...)
}

// goBuildPkg builds pkg in the module at dir into out.
func goBuildPkg(ctx context.Context, dir, out, pkg string, extra ...string) error {
	args := append([]string{"build"}, extra...)
	args = append(args, "-o", out, pkg)
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// hasCommand reports whether the binary knows the subcommand.
func hasCommand(ctx context.Context, bin, sub string) bool {
	cmd := exec.CommandContext(ctx, bin, sub, "--help")
	out, err := cmd.CombinedOutput()
	return err == nil && !strings.Contains(string(out), "unknown command")
}

// selfCPU returns the CPU time (user+system) the bench's own process used
// so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
