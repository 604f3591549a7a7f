package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baitoru/baitoru-cdc/internal/child"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// runBinaryEnv runs the built baitoru-cdc with child.Env(extra...): none
// of this process's AWS, libpq or baitoru-cdc variables, only extra.
func runBinaryEnv(t *testing.T, extra []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Env = child.Env(extra...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("baitoru-cdc %v did not exit within 2 minutes:\n%s%s", args, out.String(), errb.String())
	}
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run baitoru-cdc %v: %v", args, err)
	}
	return res
}

// noAWSCredentials is an environment in which the AWS SDK's default chain
// finds no credentials: no keys, no profile, and an EC2 instance metadata
// service that gives no role (a stand-in answering 403, as where no
// instance profile is attached; the SDK then falls back to IMDSv1 and
// logs that it does).
func noAWSCredentials(t *testing.T) []string {
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(imds.Close)
	dir := t.TempDir()
	return []string{
		"HOME=" + dir,
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL,
	}
}

// TestNoAWSCredentials: check, run and sink against the emulator without
// AWS credentials say so, and what to set (any keys do against an
// emulator), instead of the instance metadata service's error; run and sink
// stop at once rather than retrying (the sink never says "sink ready"); the
// SDK's own warning never reaches the terminal.
func TestNoAWSCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	e := newE2E(t, testenv.PG(t))
	env := noAWSCredentials(t)
	problem := "no AWS credentials found: none in the environment (AWS_ACCESS_KEY_ID), no profile (AWS_PROFILE, ~/.aws), and no role from the EC2 instance metadata service (it answered HTTP 403)"
	fix := "fix: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an IAM role (ECS task role, EC2 instance profile); against a local emulator (sns.endpoint " + e.emu.Endpoint + ") any keys do, e.g. AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test"
	noise := []string{"SDK ", "IMDS", "ec2imds", "operation error", "permanent error"}

	res := runBinaryEnv(t, env, "check", "--config", e.config)
	var row string
	for _, l := range strings.Split(res.stdout, "\n") {
		if strings.Contains(l, "sns topic") {
			row = l
		}
	}
	if res.code != checkCritical || !strings.HasPrefix(row, "✗ ") || !strings.Contains(row, e.topic+" cannot be checked: "+problem) || !strings.Contains(res.stdout, fix) {
		t.Errorf("check without credentials: want ✗ sns topic ... %q and %q:\n%s", problem, fix, res)
	}
	for _, n := range noise {
		if strings.Contains(res.stdout+res.stderr, n) {
			t.Errorf("check printed %q:\n%s", n, res)
		}
	}

	start := time.Now()
	res = runBinaryEnv(t, env, "run", "--config", e.config)
	took := time.Since(start)
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	last := lines[len(lines)-1]
	if res.code != 1 || last != "baitoru-cdc: sns topic "+e.topic+": cannot be checked: "+problem+"; "+fix {
		t.Errorf("run without credentials: want exit 1 and the problem and fix last:\n%s", res)
	}
	if took >= topicCheckWithin {
		t.Errorf("run took %s: it retried what retrying cannot fix", took)
	}
	for _, n := range noise {
		if strings.Contains(res.stderr, n) {
			t.Errorf("run printed %q:\n%s", n, res)
		}
	}

	kb := startKobot(t, "")
	queue := e.emu.Endpoint + "/000000000000/no-credentials"
	sinkConfig := filepath.Join(t.TempDir(), "sink.yaml")
	if err := os.WriteFile(sinkConfig, []byte(fmt.Sprintf(`
log: {level: info, format: json}
sink:
  dsn: %s
  sqs: {region: %s, endpoint: %s, queue_url: %s}
  kobot: {endpoint: %s, secret: "${KOBOT_TEST_SECRET}"}
  api: {listen: "127.0.0.1:0", token: no-credentials-token}
  links:
    - {table: public.apps, field: company_id}
`, e.dsn, e.emu.Region, e.emu.Endpoint, queue, kb.URL())), 0o600); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	res = runBinaryEnv(t, append(env, "KOBOT_TEST_SECRET="+kb.secret), "sink", "--config", sinkConfig)
	took = time.Since(start)
	lines = strings.Split(strings.TrimSpace(res.stderr), "\n")
	last = lines[len(lines)-1]
	sinkFix := strings.Replace(fix, "(sns.endpoint ", "(sink.sqs.endpoint ", 1)
	if res.code != 1 || last != "baitoru-cdc: sqs queue "+queue+": "+problem+"; "+sinkFix || strings.Contains(res.stderr, "sink ready") {
		t.Errorf("sink without credentials: want exit 1, no \"sink ready\", and the problem and fix last:\n%s", res)
	}
	if took >= topicCheckWithin {
		t.Errorf("sink took %s: it retried what retrying cannot fix", took)
	}
	for _, n := range noise {
		if strings.Contains(res.stderr, n) {
			t.Errorf("sink printed %q:\n%s", n, res)
		}
	}
}
