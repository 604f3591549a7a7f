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

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// child is a process the bench started (the connector, the sink, the
// baseline reader). It runs in its own process group and is killed if the
// bench dies.
type child struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	logPath string
	started time.Time
}

// startProcess starts bin with args and env (added to a clean copy of ours).
// stdout, when nil, goes to the log file with stderr.
func startProcess(name, logDir, bin string, args, env []string, stdout io.Writer) (*child, error) {
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stderr = logf
	cmd.Stdout = logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), logPath: logPath, started: time.Now()}
	go func() {
		c.waitErr = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

// cleanEnv is our environment without variables that would change how the
// children behave (their own configuration and profiles are set explicitly).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "BAITORU_CDC_") || strings.HasPrefix(k, "PG") || k == roleEnv {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// exitErr describes how the process ended, with the tail of its log.
func (c *child) exitErr() error {
	return fmt.Errorf("%s exited (%v); log %s:\n%s", c.name, c.waitErr, c.logPath, tail(c.logPath, 15))
}

// vmHWM returns the process's peak resident set size so far (VmHWM), in
// bytes; 0 when it cannot be read.
func (c *child) vmHWM() int64 { return procStatusKB(c.pid(), "VmHWM") * 1024 }

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
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	start := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if d := time.Since(start); d > 2*time.Second {
			fmt.Fprintf(os.Stderr, "%s bench: %s took %s to stop after SIGTERM\n", time.Now().Format("15:04:05"), c.name, d.Round(time.Millisecond))
		}
	case <-time.After(grace):
		fmt.Fprintf(os.Stderr, "%s bench: %s did not stop %s after SIGTERM; killed\n", time.Now().Format("15:04:05"), c.name, grace)
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
}

// wait waits for exit or ctx.
func (c *child) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// usage returns the peak RSS (bytes) and CPU time (user+system) of an
// exited process, from wait4's rusage.
func (c *child) usage() (maxRSS int64, cpu time.Duration) {
	if !c.exited() || c.cmd.ProcessState == nil {
		return 0, 0
	}
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS = ru.Maxrss * 1024
	}
	return maxRSS, c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
}

// procCPU returns the CPU time (user+system) process pid used so far; 0
// when it cannot be read.
func procCPU(pid int) time.Duration {
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

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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
// BAITORU_CDC_CPUPROFILE / BAITORU_CDC_MEMPROFILE are set (the same binary
// once main.go wires withProfiles; until then a build whose main.go is
// overlaid with that one line, so the product's files are never edited).
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
	if _, err := os.Stat(filepath.Join(root, "cmd", "baitoru-cdc", "profile.go")); err != nil {
		return plain, "", "cmd/baitoru-cdc/profile.go is missing: no profiles", nil
	}
	if strings.Contains(string(src), "withProfiles(") {
		return plain, plain, "", nil
	}
	const call = "err := root.ExecuteContext(ctx)"
	if !strings.Contains(string(src), call) {
		return plain, "", "main.go neither calls withProfiles nor has the line to overlay: no profiles", nil
	}
	patched := strings.Replace(string(src), call, "err := withProfiles(func() error { return root.ExecuteContext(ctx) })", 1)
	patchedPath := filepath.Join(dir, "main_profiling.go")
	if err := os.WriteFile(patchedPath, []byte(patched), 0o644); err != nil {
		return "", "", "", err
	}
	overlay := filepath.Join(dir, "overlay.json")
	ov := fmt.Sprintf(`{"Replace":{%q:%q}}`, mainGo, patchedPath)
	if err := os.WriteFile(overlay, []byte(ov), 0o644); err != nil {
		return "", "", "", err
	}
	profiling = filepath.Join(dir, "baitoru-cdc-profiling")
	if err := goBuild(ctx, root, profiling, []string{"-overlay", overlay}); err != nil {
		return "", "", "", err
	}
	return plain, profiling, "main.go does not call withProfiles yet: profiles come from a build overlaying main.go with that one call", nil
}

func goBuild(ctx context.Context, root, out string, extra []string) error {
	args := append([]string{"build"}, extra...)
	args = append(args, "-o", out, "./cmd/baitoru-cdc")
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/baitoru-cdc: %w\n%s", err, b)
	}
	return nil
}

// hasCommand reports whether the binary knows the subcommand.
func hasCommand(ctx context.Context, bin, sub string) bool {
	cmd := exec.CommandContext(ctx, bin, sub, "--help")
	out, err := cmd.CombinedOutput()
	return err == nil && !strings.Contains(string(out), "unknown command")
}
