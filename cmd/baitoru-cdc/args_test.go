package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandMistakes: a mistyped command or subcommand, a stray or
// missing argument, a flag value of the wrong kind and a configuration file
// that is not one each end with exit code code and a message naming what
// was typed, what was meant where it is close, and where to look; never
// cobra's or strconv's words, nor a password. The real binary; no
// database needed.
func TestCommandMistakes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte("source:\n  dsn: postgres://cdc@127.0.0.1:1/db\npublisher:\n  kind: stdout\ntables:\n  - table: public.a\n    columns:\n      - column: id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, endpoint := range map[string]string{"kobot-noscheme.yaml": "kobot.example.com/hook", "kobot-port.yaml": "https://kobot.example.com:99999/hook"} {
		sink := fmt.Sprintf(`sink:
  dsn: postgres://s@127.0.0.1:1/s
  sqs: {region: ap-northeast-1, queue_url: "https://sqs.ap-northeast-1.amazonaws.com/1/q"}
  kobot: {endpoint: %q, secret: "whsec_c2luay1jbWQtd3Jvbmctc2VjcmV0LTAxMjM="}
  api: {token: "0123456789abcdef0123"}
  links:
    - {table: public.applications, field: company_id}
`, endpoint)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sink), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		args []string // "{dir}" is a directory
		code int
		want []string
	}{
		{"a subcommand's name at the top", []string{"strat"}, 1,
			[]string{`baitoru-cdc: unknown command "strat"; did you mean "baitoru-cdc backfill start"? (baitoru-cdc --help lists the commands)`}},
		{"a misspelt command", []string{"backfil", "list"}, 1,
			[]string{`baitoru-cdc: unknown command "backfil"; did you mean "baitoru-cdc backfill list"?`}},
		{"a misspelt command with its flags", []string{"backfil", "list", "--config", "x.yaml"}, 1,
			[]string{`unknown command "backfil"; did you mean "baitoru-cdc backfill list"?`}},
		{"a misspelt top command", []string{"chek"}, 1, []string{`did you mean "baitoru-cdc check"?`}},
		{"nothing close", []string{"deploy"}, 1,
			[]string{`baitoru-cdc: unknown command "deploy" (baitoru-cdc --help lists the commands)`}},
		{"a misspelt backfill subcommand", []string{"backfill", "lst"}, 1,
			[]string{`baitoru-cdc backfill: unknown command "lst"; did you mean "baitoru-cdc backfill list"? (baitoru-cdc backfill --help lists the commands)`}},
		{"backfill status without its ID", []string{"backfill", "status"}, 1,
			[]string{`baitoru-cdc backfill status: missing the backfill's ID (backfill list shows them), e.g. baitoru-cdc backfill status --config config.yaml bf-20261206-224445`}},
		{"backfill cancel with two IDs", []string{"backfill", "cancel", "a", "b"}, 1,
			[]string{`baitoru-cdc backfill cancel: takes one argument, the backfill's ID (backfill list shows them); got 2 (a b)`}},
		{"run with an argument", []string{"run", "config.yaml"}, 1,
			[]string{`baitoru-cdc run: unexpected argument "config.yaml": the command takes only flags, written --name value (see baitoru-cdc run --help)`}},
		{"--gap not a number", []string{"backfill", "start", "--gap", "three"}, 1,
			[]string{`baitoru-cdc backfill start: --gap "three": not a whole number (see baitoru-cdc backfill start --help)`}},
		{"--gap negative", []string{"backfill", "start", "--gap", "-3"}, 2,
			[]string{`backfill start: --gap -3: a gap's id is a positive whole number, as check lists it`}},
		{"--wait not a boolean", []string{"backfill", "start", "--wait=maybe"}, 1,
			[]string{`--wait "maybe": not true or false (or the flag alone for true)`}},
		{"version --json not a boolean", []string{"version", "--json=2"}, 1,
			[]string{`baitoru-cdc version: --json "2": not true or false`}},
		{"plan without --config", []string{"plan"}, 1,
			[]string{`baitoru-cdc plan: name the new configuration with --config FILE, e.g. baitoru-cdc plan --config new.yaml --running config.yaml`}},
		{"a missing configuration file", []string{"validate", "--config", "{dir}/nope.yaml"}, 1,
			[]string{`{dir}/nope.yaml: cannot read the file: no such file or directory; fix: name the configuration file with --config FILE`}},
		{"a directory for the configuration file", []string{"run", "-c", "{dir}"}, 1,
			[]string{`{dir}: cannot read the file: is a directory; fix: --config takes the file, not its directory, e.g. --config {dir}/config.yaml`}},
		{"backfill takes -c like the other commands", []string{"backfill", "list", "-c", "{dir}"}, 1,
			[]string{`{dir}: cannot read the file: is a directory`}},
		{"sink with a directory", []string{"sink", "--config", "{dir}"}, 1, []string{`{dir}: cannot read the file: is a directory`}},
		{"setup --dsn that is no connection string", []string{"setup", "--config", "{dir}/ok.yaml", "--dsn", "host=127.0.0.1 port=abc"}, 1,
			[]string{"baitoru-cdc: --dsn: cannot parse `host=127.0.0.1 port=abc`: invalid port; fix: write --dsn as a URL, postgres://USER@HOST:5432/DATABASE?sslmode=verify-full, or as keywords, host=HOST port=5432 user=USER dbname=DATABASE"}},
		{"backfill list --dsn with a password, unparsable", []string{"backfill", "list", "--config", "{dir}/ok.yaml", "--dsn", "postgres://u:pw-not-shown@[::1"}, 1,
			[]string{"baitoru-cdc: --dsn: cannot parse `postgres://u:xxxxx@[::1`", "fix: write --dsn as a URL"}},
		{"check --dsn that is no connection string", []string{"check", "--config", "{dir}/ok.yaml", "--dsn", "notadsn"}, checkCritical,
			[]string{"✗ connect  --dsn: cannot parse `notadsn`", "fix: write --dsn as a URL"}},
		{"a Kobot endpoint without its scheme", []string{"validate", "--config", "{dir}/kobot-noscheme.yaml"}, 1,
			[]string{"{dir}/kobot-noscheme.yaml:4: sink.kobot.endpoint: not an http or https URL; write e.g. https://kobot.example.com/webhooks/baitoru"}},
		{"a Kobot endpoint with a port out of range", []string{"validate", "--config", "{dir}/kobot-port.yaml"}, 1,
			[]string{`{dir}/kobot-port.yaml:4: sink.kobot.endpoint: the URL's port "99999" is not a port number (1-65535)`}},
		{"check with a missing file: unknown", []string{"check", "--config", "{dir}/nope.yaml"}, checkUnknown,
			[]string{`cannot read the file: no such file or directory`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "{dir}", dir)
			}
			res := runBinaryEnv(t, nil, args...)
			if res.code != tc.code {
				t.Errorf("exit %d, want %d", res.code, tc.code)
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "{dir}", dir); !strings.Contains(res.stdout+res.stderr, w) {
					t.Errorf("the output does not say %q", w)
				}
			}
			for _, never := range []string{"strconv.", "pw-not-shown", "accepts 1 arg", "Did you mean this", "required flag(s)", "Usage:"} {
				if strings.Contains(res.stdout+res.stderr, never) {
					t.Errorf("the output has %q", never)
				}
			}
			if t.Failed() {
				t.Logf("baitoru-cdc %s:\n%s", strings.Join(args, " "), res)
			}
		})
	}
}

// TestGroupCommandAlone: a command that only groups others, called alone,
// shows its help and succeeds.
func TestGroupCommandAlone(t *testing.T) {
	for _, args := range [][]string{nil, {"backfill"}} {
		res := runBinaryEnv(t, nil, args...)
		if res.code != 0 || !strings.Contains(res.stdout, "Available Commands:") {
			t.Errorf("baitoru-cdc %v:\n%s", args, res)
		}
	}
}
