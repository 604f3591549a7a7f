package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// TestBackfillCommands: backfill start requests (idempotently, by id) and
// refuses a table the config does not map; list and status show a request
// no connector took up yet; cancel records a cancel and refuses an unknown
// id; a start followed while no connector streams the slot says so, once.
// (The connector's side is TestBackfillWatermarks and its siblings in
// connector/postgres.)
func TestBackfillCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	admin := testenv.PG(t).NewDatabase(t)
	testenv.MustExec(t, admin, dbaDDL)
	emu := testenv.Emu(t)
	topic, err := emu.CreateTopic(context.Background(), fmt.Sprintf("bf-cli-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	dbaConfig(t, cfg, admin, topic, emu)
	if res := runCLI(t, "setup", "--config", cfg, "--dsn", admin); res.code != 0 {
		t.Fatalf("setup: %s", res)
	}
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"start", "--table", "public.nope", "--wait=false"}, 1, `table "public.nope" is not mapped`},
		{[]string{"start", "--table", "public.postings", "--where", "posting_id > 0", "--id", "bf-a", "--wait=false"}, 0, "backfill bf-a requested: public.postings where posting_id > 0"},
		{[]string{"start", "--table", "public.postings", "--id", "bf-a", "--wait=false"}, 0, "backfill bf-a was already requested"},
		{[]string{"start", "--table", "public.postings", "--id", "bad id;", "--wait=false"}, 1, "a backfill id is 1 to 100 letters"},
		{[]string{"list"}, 0, "bf-a"},
		{[]string{"status", "bf-a"}, 0, "requested"},
		{[]string{"cancel", "bf-a"}, 0, "backfill bf-a: cancel requested"},
		{[]string{"cancel", "bf-nope"}, 1, "no such backfill"},
		{[]string{"status", "bf-nope"}, 1, "no such backfill"},
	} {
		args := append([]string{"backfill", c.args[0], "--config", cfg, "--dsn", admin}, c.args[1:]...)
		res := runCLI(t, args...)
		if res.code != c.code || !strings.Contains(res.stdout+res.stderr, c.out) {
			t.Errorf("%s: exit %d, want %d with %q: %s", strings.Join(c.args, " "), res.code, c.code, c.out, res)
		}
	}
	var n int
	if err := testenvQueryRow(admin, `SELECT count(*) FROM baitoru_cdc.backfill_requests WHERE backfill_id = 'bf-a'`, &n); err != nil || n != 2 {
		t.Fatalf("requests of bf-a: %d %v (want a start and a cancel)", n, err)
	}

	notTakenHint = 200 * time.Millisecond
	t.Cleanup(func() { notTakenHint = 15 * time.Second })
	root := &cobra.Command{Use: "baitoru-cdc", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(backfillCmd())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"backfill", "start", "--config", cfg, "--dsn", admin, "--table", "public.postings", "--id", "bf-wait"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("start, followed until the context ends: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "not taken yet after 200ms: the connector that streams slot "); n != 1 {
		t.Errorf("start followed with no connector: the hint %d times, want once:\n%s", n, out.String())
	}
}
