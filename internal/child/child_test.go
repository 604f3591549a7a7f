package child

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// roleEnv makes the test binary the parent of TestKilledWithParent.
const roleEnv = "CHILD_TEST_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "parent" {
		// Start a long sleep, print its pid, wait to be killed.
		p, err := Start(Spec{Name: "sleep", Path: "/bin/sh", Args: []string{"-c", "sleep 60"}, Env: Env()})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(p.Pid())
		select {}
	}
	os.Exit(m.Run())
}

func sh(t *testing.T, script string, spec Spec) *Process {
	t.Helper()
	spec.Path, spec.Args = "/bin/sh", []string{"-c", script}
	if spec.Name == "" {
		spec.Name = "sh"
	}
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestEnv(t *testing.T) {
	for k, v := range map[string]string{
		"BAITORU_CDC_SNS_ENDPOINT": "x", "SINK_DB_HOST": "x", "KOBOT_ENDPOINT": "x", "LINKS_API_TOKEN": "x",
		"PGHOST": "x", "AWS_REGION": "x", "FAUXQS_PORT": "1", "NODE_OPTIONS": "x", "LANG": "ja_JP.UTF-8", "LC_TIME": "ja_JP",
		"CHILD_TEST_KEPT": "yes",
	} {
		t.Setenv(k, v)
	}
	env := Env("AWS_REGION=us-east-1")
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if dropped(k) && !slices.Contains([]string{"AWS_REGION=us-east-1", "LANG=C", "LC_ALL=C"}, kv) {
			t.Errorf("Env kept %s", kv)
		}
	}
	for _, want := range []string{"CHILD_TEST_KEPT=yes", "LANG=C", "LC_ALL=C", "AWS_REGION=us-east-1"} {
		if !slices.Contains(env, want) {
			t.Errorf("Env lacks %s", want)
		}
	}
	if env[len(env)-1] != "AWS_REGION=us-east-1" {
		t.Errorf("extra is not last: %v", env[len(env)-3:])
	}
}

func TestLogsAndStop(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "p.log")
	p := sh(t, `echo plain; echo '{"msg":"ready","port":7}' >&2; trap 'exit 3' TERM; while :; do sleep 0.05; done`,
		Spec{Name: "server", LogPath: logPath, Env: Env()})
	l, _, err := p.WaitLog(`^ready$`, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l["port"] != float64(7) {
		t.Fatalf("line %v", l)
	}
	if err := p.WaitOutput(`^plain$`, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(10 * time.Second); err == nil || err.Error() != "server exited with status 3" {
		t.Fatalf("Stop: %v, want status 3", err)
	}
	if p.ExitCode() != 3 || !p.Exited() {
		t.Fatalf("exit code %d", p.ExitCode())
	}
	b, err := os.ReadFile(logPath)
	if err != nil || !strings.Contains(string(b), "plain\n") || !strings.Contains(string(b), `"msg":"ready"`) {
		t.Fatalf("log file %q %v", b, err)
	}
	if got := p.Output(); got != "plain\n{\"msg\":\"ready\",\"port\":7}" && got != "{\"msg\":\"ready\",\"port\":7}\nplain" {
		t.Fatalf("output %q", got)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	p := sh(t, `trap '' TERM; echo started; while :; do sleep 0.05; done`, Spec{Env: Env()})
	if err := p.WaitOutput(`^started$`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(300 * time.Millisecond); !errors.Is(err, ErrKilled) {
		t.Fatalf("Stop: %v, want ErrKilled", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("killed after %s, before the grace period", d)
	}
	if p.ExitCode() != -1 {
		t.Fatalf("exit code %d, want -1 (signal)", p.ExitCode())
	}
}

func TestStdoutApart(t *testing.T) {
	var out strings.Builder
	p := sh(t, `echo data; echo log >&2`, Spec{Stdout: &out, Env: Env()})
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if out.String() != "data\n" || p.Output() != "log" {
		t.Fatalf("stdout %q, output %q", out.String(), p.Output())
	}
}

func TestWaitLogFailsWhenExited(t *testing.T) {
	p := sh(t, `echo bye; exit 2`, Spec{Name: "quitter", Env: Env()})
	_, _, err := p.WaitLog(`^never$`, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "quitter exited (exit status 2)") || !strings.Contains(err.Error(), "bye") {
		t.Fatalf("WaitLog: %v", err)
	}
	if err := p.Wait(time.Second); err == nil || err.Error() != "quitter exited with status 2" {
		t.Fatalf("Wait: %v", err)
	}
	if err := p.ExitError(5); !strings.Contains(err.Error(), "bye") {
		t.Fatalf("ExitError: %v", err)
	}
}

// TestKilledWithParent: a child dies with the process that started it,
// even when that process is killed (SIGKILL: no cleanup runs).
func TestKilledWithParent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes for seconds")
	}
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), roleEnv+"=parent")
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = parent.Process.Kill(); _ = parent.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	pid, convErr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || convErr != nil {
		t.Fatalf("parent said %q (%v)", line, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("child %d not running: %v", pid, err)
	}
	_ = parent.Process.Kill()
	_ = parent.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d still runs 10s after its parent was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
