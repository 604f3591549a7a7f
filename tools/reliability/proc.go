package main

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

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// proc is a running baitoru-cdc process (run or sink). It has its own
// process group and gets SIGKILL when the suite dies. Its standard error
// (JSON logs) and output go to a log file and are kept in memory for
// waitLog and for the secret checks.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	err     error

	mu    sync.Mutex
	lines []string
}

// spawner starts children from one locked OS thread that lives as long as
// the process: Pdeathsig fires when the thread that started a child exits,
// and the Go runtime may retire other threads.
var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked
			for r := range spawnCh {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnCh <- spawnReq{cmd, errc}
	return <-errc
}

// startProc runs bin with args; env is added to a cleaned copy of ours.
func startProc(name, logPath, bin string, args, env []string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, logPath: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := spawn(p.cmd); err != nil {
		logf.Close()
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pw.Close()
	p.started = time.Now()
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
		pr.Close()
	}()
	go func() {
		p.err = p.cmd.Wait()
		<-scanned
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// cleanEnv is testenv.ChildEnv with the emulator's dummy credentials.
func cleanEnv() []string {
	return append(testenv.ChildEnv(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true")
}

// output returns everything the process wrote so far.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// logLine is a parsed JSON log line.
type logLine map[string]any

// findLog returns the first JSON log line from index from whose msg
// matches re, and the index after it.
func (p *proc) findLog(re *regexp.Regexp, from int) (logLine, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from; i < len(p.lines); i++ {
		var l logLine
		if json.Unmarshal([]byte(p.lines[i]), &l) != nil {
			continue
		}
		if msg, _ := l["msg"].(string); re.MatchString(msg) {
			return l, i + 1
		}
	}
	return nil, -1
}

// waitLog waits until the process logged a JSON line whose msg matches
// pattern, and returns it with the time it was seen.
func (p *proc) waitLog(pattern string, timeout time.Duration) (logLine, time.Time, error) {
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for {
		if l, _ := p.findLog(re, 0); l != nil {
			return l, time.Now(), nil
		}
		if p.exited() {
			if l, _ := p.findLog(re, 0); l != nil {
				return l, time.Now(), nil
			}
			return nil, time.Time{}, fmt.Errorf("%s exited (%v) before logging %q; log %s:\n%s", p.name, p.err, pattern, p.logPath, p.tail(15))
		}
		if time.Now().After(deadline) {
			return nil, time.Time{}, fmt.Errorf("%s did not log %q within %s; log %s:\n%s", p.name, pattern, timeout, p.logPath, p.tail(15))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tail returns the last n lines of the output, indented.
func (p *proc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := p.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to grace; then kills. It returns the
// exit error (nil for status 0).
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return p.exitErr()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", p.name, grace)
	}
}

// wait waits up to timeout for the process to exit by itself.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.name, timeout)
	}
}

// exitCode is the exit status, -1 when killed by a signal or still running.
func (p *proc) exitCode() int {
	if !p.exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) exitErr() error {
	if p.err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && ee.Exited() {
		return fmt.Errorf("%s exited with status %d", p.name, ee.ExitCode())
	}
	return fmt.Errorf("%s: %v", p.name, p.err)
}
