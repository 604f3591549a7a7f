package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ciScenarios are the scenarios the CI test runs at the "ci" scale: one of
// each kind of fault (connector crash, database crash, SNS/SQS throttling,
// Kobot failing, sink crash mid-batch, slot takeover), chosen so that the
// test stays within about two minutes on a 2-core machine. `make
// reliability` runs all of them at full scale.
const ciScenarios = "1,2b,3b,4c,5a,6"

// TestReliabilityCI runs the CI subset of the fault suite at the reduced
// scale against the real binaries, a throwaway PostgreSQL and the emulator,
// and fails when any scenario lost an event or a push, or failed a check.
func TestReliabilityCI(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: starts PostgreSQL, the emulator and the binaries")
	}
	sel, err := selectScenarios(ciScenarios)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.MkdirTemp("", "reliability-ci-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of every process kept in %s", out)
			return
		}
		_ = os.RemoveAll(out)
	})
	start := time.Now()
	rep, err := run(t.Context(), scales["ci"], sel, out, tlog{t})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("%d scenarios in %s", len(rep.Results), time.Since(start).Round(time.Second))
	if len(rep.Results) != len(sel) {
		t.Fatalf("%d results for %d scenarios", len(rep.Results), len(sel))
	}
	for _, r := range rep.Results {
		if r.Lost() > 0 {
			t.Errorf("scenario %s lost %d (%d events, %d pushes)", r.ID, r.Lost(), r.LostEvents, r.LostPushes)
		}
		for _, f := range r.Failures {
			t.Errorf("scenario %s: %s", r.ID, f)
		}
		// A scenario that committed nothing, or delivered nothing, proves
		// nothing.
		if r.Rows == 0 || r.Expected == 0 || r.Delivered == 0 {
			t.Errorf("scenario %s: %d rows, %d pushes expected, %d delivered: the writer or the pipeline did not run", r.ID, r.Rows, r.Expected, r.Delivered)
		}
	}
	table, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if !strings.Contains(string(table), "| "+r.ID+" | ") {
			t.Errorf("results.md has no row for scenario %s", r.ID)
		}
	}
}

// tlog writes the suite's progress lines to the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestSelectScenarios(t *testing.T) {
	tests := []struct {
		only    string
		want    []string
		wantErr string
	}{
		{"", scenarioIDs(scenarios), ""},
		{"1", []string{"1"}, ""},
		{"4", []string{"4a", "4b", "4c", "4d"}, ""},
		{"6, 2b ,1", []string{"1", "2b", "6"}, ""},
		{"4,4b", []string{"4a", "4b", "4c", "4d"}, ""},
		{"7B", []string{"7b"}, ""},
		{"9", nil, `no scenario "9"`},
		{"1,", nil, `no scenario ""`},
	}
	for _, tt := range tests {
		t.Run(tt.only, func(t *testing.T) {
			sel, err := selectScenarios(tt.only)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := scenarioIDs(sel); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReportFailsOnLoss(t *testing.T) {
	tests := []struct {
		name   string
		r      result
		failed bool
	}{
		{"clean", result{ID: "1", Rows: 10, Published: 10, Expected: 8, Delivered: 8}, false},
		{"lost event", result{ID: "1", LostEvents: 1}, true},
		{"lost push", result{ID: "1", LostPushes: 2}, true},
		{"failed check", result{ID: "1", Failures: []string{"takeover took 20s"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			rep := &report{Results: []*result{&r}}
			if got := !rep.ok(); got != tt.failed {
				t.Fatalf("failed = %v, want %v", got, tt.failed)
			}
			md := rep.markdown()
			status := "| ok |"
			if tt.failed {
				status = "| **FAIL** |"
			}
			if !strings.Contains(md, status) || !strings.Contains(md, fmt.Sprintf("| %d | ", r.Lost())) {
				t.Fatalf("table does not show lost %d and %s:\n%s", r.Lost(), status, md)
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	a1 := `{"id":"0/1-1","data":{"application_id":1,"answers":{"q":"x"}}}`
	a1fixed := `{"id":"0/1-1","data":{"application_id":1}}`
	a1other := `{"id":"0/1-1","data":{"application_id":2}}`
	b1 := `{"id":"0/1-2","data":{"application_id":3,"answers":{}}}`
	b1other := `{"id":"0/1-2","data":{"application_id":3,"status":"x"}}`
	tests := []struct {
		name    string
		bodies  []string
		ids     []string
		dropped string
		want    []string
	}{
		{"no dropped field: every conflict counts", []string{a1, a1fixed}, []string{"0/1-1"}, "", []string{"0/1-1"}},
		{"differs only by the dropped field", []string{a1, a1fixed, b1}, []string{"0/1-1"}, "answers", nil},
		{"differs by another field too", []string{a1, a1other}, []string{"0/1-1"}, "answers", []string{"0/1-1"}},
		{"one of two", []string{a1, b1, a1fixed, b1other}, []string{"0/1-1", "0/1-2"}, "answers", []string{"0/1-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := conflicts(tt.bodies, tt.ids, tt.dropped); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCLIBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-scale", "huge"}, `-scale "huge": want full or ci`},
		{[]string{"-only", "1,42"}, `no scenario "42"; known: 1 2a`},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := cli(tt.args, &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr %q, want it to contain %q", stderr.String(), tt.want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout %q: nothing should run", stdout.String())
			}
		})
	}
}
