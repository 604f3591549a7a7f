// Package child starts and supervises the processes that the tests, the
// demo, the benchmarks and the fault suite run: the baitoru-cdc binaries,
// PostgreSQL, the emulator, stand-ins. Every child runs in its own process
// group and is killed when this process dies, however it dies (Pdeathsig,
// set from one OS thread that lives as long as the process), so a killed
// test or Ctrl-C leaves nothing running.
//
// A Process keeps its output: every line is written to its log file and
// kept in memory for WaitLog, Output and Tail. baitoru-cdc logs JSON lines;
// WaitLog matches their "msg".
package child

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env is this process's environment without what would redirect or
// reconfigure a child: baitoru-cdc's configuration overrides (BAITORU_*,
// SINK_*, KOBOT_*, LINKS_API_TOKEN), libpq (PG*), AWS settings (AWS_*),
// the emulator's and Node's (FAUXQS_*, NODE_*) and the locale (the C locale
// is set), followed by extra. The caller passes what the child needs in
// extra. It is the one filter for every child the tools and tests start
// (the command tests pass os.Environ() on purpose: they set variables with
// t.Setenv for the binary under test).
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if dropped(k) {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LANG=C", "LC_ALL=C")
	return append(env, extra...)
}

func dropped(k string) bool {
	for _, p := range []string{"BAITORU_", "SINK_", "KOBOT_", "PG", "AWS_", "FAUXQS_", "NODE_", "LC_"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return k == "LINKS_API_TOKEN" || k == "LANG"
}

// The spawner starts children from one locked OS thread that never exits:
// Pdeathsig fires when the thread that started a child exits, not the
// process, and the Go runtime may retire any other thread.
var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

// StartCmd starts cmd in its own process group; the child gets deathSig
// when this process dies. Use it for a child whose output is handled by the
// caller (Start does the rest for the others).
func StartCmd(cmd *exec.Cmd, deathSig syscall.Signal) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = deathSig
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			for r := range spawnCh {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnCh <- spawnReq{cmd: cmd, errc: errc}
	return <-errc
}

// Spec says what to start.
type Spec struct {
	Name string // in errors, e.g. "connector"
	Path string // the binary
	Args []string
	// Env is the child's whole environment, as exec.Cmd.Env: nil inherits
	// ours; Env(extra...) is ours filtered.
	Env []string
	Dir string
	// LogPath, when set, receives every line of standard error (and of
	// standard output unless Stdout is set).
	LogPath string
	// Stdout, when set, receives standard output instead (data rather than
	// logs, such as the stdout publisher's events); it is then neither
	// written to the log nor kept.
	Stdout io.Writer
}

// Process is a running (or exited) child. Its methods are safe for
// concurrent use.
type Process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	err     error // from Wait, set before done is closed

	mu    sync.Mutex
	lines []string
}

// ErrKilled is wrapped by Stop's error when the process did not stop within
// its grace period after SIGTERM and was killed.
var ErrKilled = errors.New("killed")

// Start starts s.Path with SIGKILL as its death signal and begins
// collecting its output.
func Start(s Spec) (*Process, error) {
	p := &Process{name: s.Name, logPath: s.LogPath, done: make(chan struct{})}
	if p.name == "" {
		p.name = s.Path
	}
	var logf *os.File
	if s.LogPath != "" {
		f, err := os.Create(s.LogPath)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", p.name, err)
		}
		logf = f
	}
	closeLog := func() {
		if logf != nil {
			logf.Close()
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		closeLog()
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd = exec.Command(s.Path, s.Args...)
	p.cmd.Env, p.cmd.Dir = s.Env, s.Dir
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if s.Stdout != nil {
		p.cmd.Stdout = s.Stdout
	}
	if err := StartCmd(p.cmd, syscall.SIGKILL); err != nil {
		closeLog()
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	pw.Close()
	p.started = time.Now()
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer pr.Close()
		r := bufio.NewReaderSize(pr, 64<<10)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				if logf != nil {
					_, _ = logf.WriteString(line)
				}
				p.mu.Lock()
				p.lines = append(p.lines, strings.TrimSuffix(line, "\n"))
				p.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := p.cmd.Wait()
		<-read // every line is in before done closes
		closeLog()
		p.err = err
		close(p.done)
	}()
	return p, nil
}

// Name is the name the process was started with.
func (p *Process) Name() string { return p.name }

// LogPath is where its output is written ("" for nowhere).
func (p *Process) LogPath() string { return p.logPath }

// Pid is the process id (and process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Cmd is the underlying command; its ProcessState is set once Done is
// closed.
func (p *Process) Cmd() *exec.Cmd { return p.cmd }

// Started is when the process was started.
func (p *Process) Started() time.Time { return p.started }

// Done is closed when the process has exited and its output is read.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether Done is closed.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is exec.Cmd.Wait's error once the process exited (nil for status 0
// and while it runs).
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// ExitCode is the exit status, -1 while running or when a signal ended it.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// ExitError says how the process ended and shows the last n lines of its
// output, for an error message when it should still be running.
func (p *Process) ExitError(n int) error {
	where := ""
	if p.logPath != "" {
		where = "; log " + p.logPath
	}
	return fmt.Errorf("%s exited (%v)%s:\n%s", p.name, p.Err(), where, p.Tail(n))
}

// Output is everything the process wrote so far, one line per line.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// Tail is the last n lines of the output, indented.
func (p *Process) Tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := p.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// Line is a JSON log line.
type Line map[string]any

// FindLog returns the first JSON log line at index from or later whose
// msg matches re, and the index after it; nil and -1 when there is none.
func (p *Process) FindLog(re *regexp.Regexp, from int) (Line, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := max(from, 0); i < len(p.lines); i++ {
		if l := parseLine(p.lines[i]); l != nil {
			if msg, _ := l["msg"].(string); re.MatchString(msg) {
				return l, i + 1
			}
		}
	}
	return nil, -1
}

func parseLine(s string) Line {
	if !strings.HasPrefix(s, "{") {
		return nil
	}
	var l Line
	if json.Unmarshal([]byte(s), &l) != nil {
		return nil
	}
	return l
}

// WaitLog waits until the process logged a JSON line whose msg matches the
// regular expression pattern, and returns the line and when it was seen.
// It fails when the process exits first or timeout passes, with the tail of
// the output.
func (p *Process) WaitLog(pattern string, timeout time.Duration) (Line, time.Time, error) {
	re := regexp.MustCompile(pattern)
	var l Line
	err := p.waitLine(timeout, fmt.Sprintf("log %q", pattern), func(s string) bool {
		if m := parseLine(s); m != nil {
			if msg, _ := m["msg"].(string); re.MatchString(msg) {
				l = m
				return true
			}
		}
		return false
	})
	return l, time.Now(), err
}

// WaitOutput waits until a line of the output matches the regular
// expression pattern (JSON or not).
func (p *Process) WaitOutput(pattern string, timeout time.Duration) error {
	re := regexp.MustCompile(pattern)
	return p.waitLine(timeout, fmt.Sprintf("write a line matching %q", pattern), re.MatchString)
}

func (p *Process) waitLine(timeout time.Duration, what string, match func(string) bool) error {
	deadline := time.Now().Add(timeout)
	seen := 0
	for {
		exited := p.Exited() // before reading: every line is in once done is closed
		p.mu.Lock()
		lines := p.lines[seen:len(p.lines):len(p.lines)]
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return nil
			}
		}
		if exited {
			return fmt.Errorf("%s exited (%v) before it did %s; log %s:\n%s", p.name, p.err, what, p.logPath, p.Tail(15))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not %s within %s; log %s:\n%s", p.name, what, timeout, p.logPath, p.Tail(15))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Wait waits up to timeout for the process to exit by itself and returns
// how it ended (nil for status 0).
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.name, timeout)
	}
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to grace, then kills the process group
// (the error then wraps ErrKilled). Otherwise it returns how the process
// ended: nil for status 0.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return p.exitErr()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s after SIGTERM: %w", p.name, grace, ErrKilled)
	}
}

func (p *Process) exitErr() error {
	if p.err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && ee.Exited() {
		return fmt.Errorf("%s exited with status %d", p.name, ee.ExitCode())
	}
	return fmt.Errorf("%s: %v", p.name, p.err)
}
