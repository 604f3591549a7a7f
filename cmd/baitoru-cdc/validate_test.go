package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// clearOverrides empties, for the test, every BAITORU_CDC_* variable and
// every variable the shipped config.yaml references, so that its defaults
// apply as in a clean environment (an empty variable counts as unset).
func clearOverrides(t *testing.T) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "BAITORU_CDC_") {
			t.Setenv(name, "")
		}
	}
	data, err := os.ReadFile("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(string(data), -1) {
		t.Setenv(m[1], "")
	}
}

func runValidate(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	cmd := validateCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), err
}

func TestValidateCommand(t *testing.T) {
	clearOverrides(t)
	sinkOnly := filepath.Join(t.TempDir(), "sink.yaml")
	if err := os.WriteFile(sinkOnly, []byte(`
sink:
  dsn: postgres://sink@localhost:5432/sink
  sqs:
    region: ap-northeast-1
    queue_url: https://sqs.ap-northeast-1.amazonaws.com/123456789012/q
  kobot:
    endpoint: https://user:pw@kobot.example.com/hook?token=abc
    secret: whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
  api:
    token: 0123456789abcdef0123
  links:
    - table: public.applications
      field: company_id
`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := "../../testdata/config/secret_not_echoed_other_error/config.yaml"
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		code     int
		stdout   string   // exact, for valid files
		problems []string // lines of the error message, for invalid files (a regexp for the shipped file, whose lines move)
	}{
		{
			name: "shipped config, as the demo runs it",
			args: []string{"--config", "../../config.yaml"},
			env:  map[string]string{"BAITORU_CDC_DEMO": "true"},
			stdout: "../../config.yaml: valid: 2 tables (public.applications insert; public.job_postings insert,update), " +
				"publisher sns → arn:aws:sns:us-east-1:000000000000:baitoru-events; " +
				"sink http://localhost:4566/000000000000/baitoru-kobot → http://localhost:9000/webhooks/baitoru (2 link rules)\n",
		},
		{
			name: "shipped config with secrets of one's own",
			args: []string{"--config", "../../config.yaml"},
			env:  map[string]string{"KOBOT_WEBHOOK_SECRET": "whsec_b3duLXNlY3JldC1mb3ItdmFsaWRhdGUtdGVzdA==", "LINKS_API_TOKEN": "own-token-for-validate-test"},
			stdout: "../../config.yaml: valid: 2 tables (public.applications insert; public.job_postings insert,update), " +
				"publisher sns → arn:aws:sns:us-east-1:000000000000:baitoru-events; " +
				"sink http://localhost:4566/000000000000/baitoru-kobot → http://localhost:9000/webhooks/baitoru (2 link rules)\n",
		},
		{
			name: "shipped config without secrets: the public demo ones are refused",
			args: []string{"--config", "../../config.yaml"},
			code: 1,
			problems: []string{
				`^\.\./\.\./config\.yaml:\d+: sink\.kobot\.secret: is the public demo secret \(config\.yaml's fallback when KOBOT_WEBHOOK_SECRET is unset\), which anyone can read: set KOBOT_WEBHOOK_SECRET to a secret of your own .*; demo: true \(BAITORU_CDC_DEMO=true\) allows it in a local demo only$`,
				`^\.\./\.\./config\.yaml:\d+: sink\.api\.token: is the public demo token \(config\.yaml's fallback when LINKS_API_TOKEN is unset\), which anyone can read: set LINKS_API_TOKEN to a token of your own .* or use token_file; demo: true \(BAITORU_CDC_DEMO=true\) allows it in a local demo only$`,
				`^\.\./\.\./config\.yaml: invalid: 2 problems$`,
			},
		},
		{
			name:   "sink only, credentials in URL not shown",
			args:   []string{"-c", sinkOnly},
			stdout: sinkOnly + ": valid: sink https://sqs.ap-northeast-1.amazonaws.com/123456789012/q → https://kobot.example.com/hook (1 link rule)\n",
		},
		{
			name: "invalid",
			args: []string{"--config", bad},
			code: 1,
			problems: []string{
				bad + `:12: publisher.kind: "kinesis" is not a publisher kind; use sns or stdout`,
				bad + ":20: sink.kobot.secret: must start with whsec_ (a Standard Webhooks secret); the value is not shown",
				bad + ":22: sink.api.token: too short (9 characters); use at least 16 random characters (the value is not shown)",
				bad + ": invalid: 3 problems",
			},
		},
		{
			name:     "missing file",
			args:     []string{"--config", "does-not-exist.yaml"},
			code:     1,
			problems: []string{"does-not-exist.yaml: cannot read the file: no such file or directory; fix: name the configuration file with --config FILE (the default is config.yaml in the current directory)", "does-not-exist.yaml: invalid: 1 problem"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			out, err := runValidate(t, tt.args...)
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit code %d (err %v), want %d", got, err, tt.code)
			}
			if tt.code == 0 {
				if out != tt.stdout {
					t.Errorf("stdout:\n%q\nwant\n%q", out, tt.stdout)
				}
				return
			}
			var ee *exitError
			if !errors.As(err, &ee) {
				t.Fatalf("error %T, want *exitError", err)
			}
			got := strings.Split(ee.msg, "\n")
			match := len(got) == len(tt.problems)
			for i := 0; match && i < len(got); i++ {
				if strings.HasPrefix(tt.problems[i], "^") {
					match = regexp.MustCompile(tt.problems[i]).MatchString(got[i])
				} else {
					match = got[i] == tt.problems[i]
				}
			}
			if !match {
				t.Errorf("message:\n%s\nwant\n%s", ee.msg, strings.Join(tt.problems, "\n"))
			}
			if strings.Contains(ee.msg+out, "s3cr3t-pw") {
				t.Errorf("output shows a secret:\n%s", ee.msg)
			}
		})
	}
}

// TestValidateProcess runs the built binary: the exit code is what a CI job
// or a deploy script sees, and problems go to stderr.
func TestValidateProcess(t *testing.T) {
	clearOverrides(t)
	t.Setenv("BAITORU_CDC_DEMO", "true") // the shipped file's public fallback secrets
	bin := buildBinary(t)
	for _, tt := range []struct {
		config string
		code   int
		stdout string
		stderr string
	}{
		{"../../config.yaml", 0, "../../config.yaml: valid: 2 tables", ""},
		{"../../testdata/config/yaml_syntax/config.yaml", 1, "", "../../testdata/config/yaml_syntax/config.yaml:10: YAML syntax error: did not find expected key\n"},
		{"../../testdata/config/bad_dsn_password_not_echoed/config.yaml", 1, "", "source.dsn: not a valid PostgreSQL connection string"},
	} {
		cmd := exec.Command(bin, "validate", "--config", tt.config)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			code = xe.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code || !strings.HasPrefix(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("validate %s: exit %d, stdout %q, stderr %q; want exit %d, stdout prefix %q, stderr containing %q",
				tt.config, code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderr)
		}
		if strings.Contains(stdout.String()+stderr.String(), "s3cr3t-pw") {
			t.Errorf("validate %s shows the password", tt.config)
		}
	}
}

// TestConfigProblemsCounted: every command that loads a configuration ends
// an invalid one as validate does: each problem, then the count.
func TestConfigProblemsCounted(t *testing.T) {
	clearOverrides(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("source:\n  slott: cdc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"validate"}, {"run"}, {"sink"}, {"check"}, {"setup"}, {"teardown"}, {"plan"},
		{"backfill", "start", "--table", "public.applications"}, {"backfill", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := newRootCmd()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(append(args, "--config", bad))
			err := cmd.Execute()
			var ee *exitError
			if !errors.As(err, &ee) || ee.code == 0 {
				t.Fatalf("error %v, want an exit code", err)
			}
			lines := strings.Split(ee.msg, "\n")
			if !strings.Contains(ee.msg, bad+":2: source.slott: unknown key; did you mean slot?") {
				t.Errorf("message does not name the mistyped key:\n%s", ee.msg)
			}
			if last := lines[len(lines)-1]; !regexp.MustCompile(`^` + regexp.QuoteMeta(bad) + `: invalid: \d+ problems?$`).MatchString(last) {
				t.Errorf("last line %q, want %q", last, bad+": invalid: N problems")
			}
		})
	}
}
