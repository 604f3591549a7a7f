package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// child is a process the demo started: one of the real binaries. It runs in
// its own process group and gets SIGKILL if the demo dies (Pdeathsig: the
// demo starts children from its main thread only, see init).
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error

	mu    sync.Mutex
	lines []string // stderr lines (JSON logs of baitoru-cdc)
}

// start runs bin with args; env is added to a cleaned copy of ours. Its
// stderr goes to logPath and is scanned for log lines; stdout, when not
// nil, receives its standard output.
func start(name, logPath, bin string, args, env []string, stdout io.Writer) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, logPath: logPath, done: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = append(testenv.ChildEnv(), env...)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if stdout != nil {
		c.cmd.Stdout = stdout
	} else {
		c.cmd.Stdout = logf
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			c.mu.Lock()
			c.lines = append(c.lines, line)
			c.mu.Unlock()
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read everything first
		c.err = c.cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

// waitLog waits until the child logged a JSON line with msg and returns
// the line's attributes.
func (c *child) waitLog(msg string, timeout time.Duration) (map[string]any, error) {
	deadline := time.Now().Add(timeout)
	seen := 0
	for {
		c.mu.Lock()
		lines := c.lines[seen:]
		seen = len(c.lines)
		c.mu.Unlock()
		for _, l := range lines {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
				return m, nil
			}
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("%s exited (%v) before logging %q; log %s:\n%s", c.name, c.err, msg, c.logPath, c.tail(20))
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not log %q within %s; log %s:\n%s", c.name, msg, timeout, c.logPath, c.tail(20))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// tail returns the last n lines of the child's log.
func (c *child) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := c.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// stop sends SIGTERM and waits up to grace, then kills the process group.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.done:
		return c.exitErr()
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.exitErr()
	case <-time.After(grace):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", c.name, grace)
	}
}

func (c *child) exitErr() error {
	if c.err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) && ee.Exited() {
		return fmt.Errorf("%s exited with status %d", c.name, ee.ExitCode())
	}
	return fmt.Errorf("%s: %v", c.name, c.err)
}

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
