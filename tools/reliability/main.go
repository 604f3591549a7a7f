// Command reliability is the fault suite (`make reliability`):
// it builds baitoru-cdc, starts a throwaway source PostgreSQL, a sink
// PostgreSQL and the SNS/SQS emulator, and runs each scenario as its own
// stage — connector, sink, a fault proxy in front of the emulator, a Kobot
// receiver with programmable faults, a writer committing rows — injecting
// the scenario's faults while rows are committed. It then measures, per
// scenario: rows committed, events published, pushes delivered to Kobot,
// lost (must be 0), duplicates delivered, recovery time.
//
// The table goes to standard output and to <out>/results.md, the figures
// to <out>/results.json, each process's log to <out>/<stage>/. The exit
// status is 1 when any scenario lost anything or failed a check, 2 on bad
// flags.
//
//	go run ./tools/reliability               # full scale (make reliability)
//	go run ./tools/reliability -scale ci     # the reduced scale (the CI test)
//	go run ./tools/reliability -only 1,4     # scenario 1 and every 4x
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs the suite with command-line args and returns the exit status.
func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reliability", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scaleName := fs.String("scale", "full", "size of the run: full (make reliability) or ci (reduced, the CI test)")
	out := fs.String("out", "reliability-results", "directory for results.md, results.json and the processes' logs")
	only := fs.String("only", "", "comma-separated scenario ids to run (e.g. 1,2a,4: a bare number selects all its letters); empty: all")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "reliability: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	sc, ok := scales[*scaleName]
	if !ok {
		fmt.Fprintf(stderr, "reliability: -scale %q: want full or ci\n", *scaleName)
		return 2
	}
	sel, err := selectScenarios(*only)
	if err != nil {
		fmt.Fprintf(stderr, "reliability: -only: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, sc, sel, *out, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "reliability: %v\n", err)
		return 1
	}
	if !rep.ok() {
		fmt.Fprintf(stderr, "reliability: FAILED: %s\n", strings.Join(rep.failed(), ", "))
		return 1
	}
	return 0
}

// selectScenarios resolves -only: ids separated by commas; "4" selects
// 4a..4d, "4b" only 4b.
func selectScenarios(only string) ([]scenario, error) {
	if strings.TrimSpace(only) == "" {
		return scenarios, nil
	}
	var sel []scenario
	for _, id := range strings.Split(only, ",") {
		id = strings.ToLower(strings.TrimSpace(id))
		n := 0
		for _, s := range scenarios {
			if s.id == id || strings.TrimRight(s.id, "abcdefgh") == id {
				if !slices.ContainsFunc(sel, func(x scenario) bool { return x.id == s.id }) {
					sel = append(sel, s)
				}
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("no scenario %q; known: %s", id, strings.Join(scenarioIDs(scenarios), " "))
		}
	}
	// Keep the table's order.
	sort.SliceStable(sel, func(i, j int) bool { return indexOf(sel[i].id) < indexOf(sel[j].id) })
	return sel, nil
}

func indexOf(id string) int {
	return slices.IndexFunc(scenarios, func(s scenario) bool { return s.id == id })
}

func scenarioIDs(ss []scenario) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.id
	}
	return ids
}

// report is a run: where, when, at which scale, and each scenario's result.
type report struct {
	Scale   string        `json:"scale"`
	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Machine string        `json:"machine"`
	Results []*result     `json:"results"`
}

func (rep *report) ok() bool { return len(rep.failed()) == 0 }

// failed lists the scenarios that lost something or failed a check.
func (rep *report) failed() []string {
	var ids []string
	for _, r := range rep.Results {
		if r.Lost() > 0 || len(r.Failures) > 0 {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// run starts the environment, runs the scenarios one after the other,
// prints progress and the table to w, and writes results.md and
// results.json to out. The error is about the run itself (environment,
// files); a scenario's problems are in its result.
func run(ctx context.Context, sc scale, sel []scenario, out string, w io.Writer) (*report, error) {
	out, err := filepath.Abs(out)
	if err != nil {
		return nil, err
	}
	rep := &report{Scale: sc.name, Started: time.Now().UTC(), Machine: machine()}
	fmt.Fprintf(w, "reliability: scale %s, %d scenarios, %s\n", sc.name, len(sel), rep.Machine)
	e, err := newEnv(ctx, out, w)
	if err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	defer e.close()
	for _, s := range sel {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(w, "== %s: %s\n", s.id, s.title)
		r := runScenario(ctx, e, sc, s)
		rep.Results = append(rep.Results, r)
		fmt.Fprintf(w, "   %s\n", summary(r))
	}
	rep.Elapsed = time.Since(rep.Started)
	if ctx.Err() != nil {
		return rep, errors.New("interrupted")
	}
	table := rep.markdown()
	fmt.Fprintf(w, "\n%s", table)
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(table), 0o644); err != nil {
		return rep, err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return rep, err
	}
	if err := os.WriteFile(filepath.Join(out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return rep, err
	}
	fmt.Fprintf(w, "results in %s\n", filepath.Join(out, "results.md"))
	return rep, nil
}

// summary is a scenario's one-line outcome.
func summary(r *result) string {
	status := "ok"
	if r.Lost() > 0 || len(r.Failures) > 0 {
		status = "FAIL"
	}
	return fmt.Sprintf("%s: %d rows, %d events, %d/%d pushes delivered, lost %d, duplicates %d, recovery %s (%s)",
		status, r.Rows, r.Published, r.Delivered, r.Expected, r.Lost(), r.DupAfterAck+r.DupAfterLate, recovery(r), r.Elapsed.Round(time.Second))
}

// recovery is the longest recovery time of a result, "-" without faults.
func recovery(r *result) string {
	if len(r.Recovery) == 0 {
		return "-"
	}
	return fmtDur(slices.Max(r.Recovery))
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}

// markdown is the run's table, then each scenario's notes and failures.
func (rep *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Reliability suite, scale %s, %s, %s, %s.\n\n", rep.Scale, rep.Started.Format("2006-01-02 15:04 UTC"), rep.Machine, rep.Elapsed.Round(time.Second))
	b.WriteString("| # | scenario | rows committed | events published | pushes delivered / expected | lost | duplicates delivered | recovery (max) | result |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rep.Results {
		status := "ok"
		if r.Lost() > 0 || len(r.Failures) > 0 {
			status = "**FAIL**"
		}
		dups := fmt.Sprint(r.DupAfterAck + r.DupAfterLate)
		if r.DupAfterAck+r.DupAfterLate > 0 {
			dups = fmt.Sprintf("%s (%d after ack, %d after late answer)", dups, r.DupAfterAck, r.DupAfterLate)
		}
		rec := recovery(r)
		if len(r.Takeover) > 0 {
			rec += fmt.Sprintf("; takeover %s", fmtDur(slices.Max(r.Takeover)))
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d (%d messages) | %d / %d | %d | %s | %s | %s |\n",
			r.ID, r.Title, r.Rows, r.Published, r.Messages, r.Delivered, r.Expected, r.Lost(), dups, rec, status)
	}
	b.WriteString("\n")
	for _, r := range rep.Results {
		if len(r.Notes) == 0 && len(r.Failures) == 0 && len(r.DLQ) == 0 {
			continue
		}
		fmt.Fprintf(&b, "- **%s** (%s):", r.ID, r.Elapsed.Round(time.Second))
		for _, f := range r.Failures {
			fmt.Fprintf(&b, " FAILURE: %s;", f)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(&b, " %s;", n)
		}
		if len(r.DLQ) > 0 {
			keys := make([]string, 0, len(r.DLQ))
			for k := range r.DLQ {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s %d", k, r.DLQ[k]))
			}
			fmt.Fprintf(&b, " DLQ: %s;", strings.Join(parts, ", "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// machine describes where the run happened: CPUs, OS, Go version.
func machine() string {
	host, _ := os.Hostname()
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	s := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if model != "" {
		s += " (" + model + ")"
	}
	return fmt.Sprintf("%s, %s/%s, %s, host %s", s, runtime.GOOS, runtime.GOARCH, runtime.Version(), host)
}
