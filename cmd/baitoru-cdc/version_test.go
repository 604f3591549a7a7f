package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/internal/buildinfo"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// makeLDFlags returns the -ldflags value the Makefile's build target uses,
// as `make -n build` prints it (so the test fails when the Makefile stops
// stamping, or stamps a variable that does not exist).
func makeLDFlags(t *testing.T, target string) string {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", "-n", target)
	cmd.Dir = testenv.ModuleRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", target, err, out)
	}
	m := regexp.MustCompile(`-ldflags='([^']*)'`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("make %s builds without -ldflags:\n%s", target, out)
	}
	return m[1]
}

func gitOut(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = testenv.ModuleRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// TestVersion builds the command as `make build` does and checks that
// `version`, `version --json` and `--version` name the commit, the tag
// (git describe) and the build date; and that a plain `go build`, without
// the Makefile's stamps, still names the commit (from the VCS information
// Go records).
func TestVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command twice")
	}
	head := gitOut(t, "rev-parse", "HEAD")
	describe := gitOut(t, "describe", "--tags", "--always", "--dirty")
	dir := t.TempDir()
	build := func(name string, args ...string) string {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", append(append([]string{"build"}, args...), "-o", bin, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, out)
		}
		return bin
	}
	run := func(bin string, args ...string) string {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
		}
		return string(out)
	}

	for _, target := range []string{"build", "image-context"} {
		flags := makeLDFlags(t, target)
		for _, want := range []string{".version=" + describe, ".commit=" + head, ".date="} {
			if !strings.Contains(flags, "github.com/baitoru/baitoru-cdc/internal/buildinfo"+want) {
				t.Errorf("make %s: -ldflags %q do not stamp buildinfo%s", target, flags, want)
			}
		}
	}
	stamped := build("stamped", "-ldflags="+makeLDFlags(t, "build"))
	var in buildinfo.Info
	if err := json.Unmarshal([]byte(run(stamped, "version", "--json")), &in); err != nil {
		t.Fatal(err)
	}
	if in.Version != describe || in.Commit != head || !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(in.Date) || in.Go == "" {
		t.Errorf("version --json = %+v; want version %s, commit %s, a build date", in, describe, head)
	}
	line := run(stamped, "version")
	wantLine := "baitoru-cdc " + describe + " (commit " + head[:12]
	if !strings.HasPrefix(line, wantLine) || !strings.Contains(line, "built "+in.Date) || strings.Count(line, "\n") != 1 {
		t.Errorf("version = %q, want %q… built %s", line, wantLine, in.Date)
	}
	if got := run(stamped, "--version"); got != line {
		t.Errorf("--version = %q, want the same line as version: %q", got, line)
	}

	// go build / go install: the commit from what Go records.
	plain := build("plain", "-buildvcs=true")
	var fb buildinfo.Info
	if err := json.Unmarshal([]byte(run(plain, "version", "--json")), &fb); err != nil {
		t.Fatal(err)
	}
	dirty := gitOut(t, "status", "--porcelain") != ""
	// Go 1.24+ derives a pseudo-version from the commit (v0.0.0-<time>-<commit>[+dirty]).
	if fb.Commit != head || fb.Dirty != dirty || fb.Date == "" || (fb.Version != "dev" && !strings.Contains(fb.Version, head[:12])) {
		t.Errorf("unstamped build: version --json = %#v; want commit %s, dirty %v, the commit time, version dev or a pseudo-version of the commit", fb, head, dirty)
	}
}

// checkBuildInfo checks that p's first log line names the build (msg, and
// version, commit, built, go as the binary's `version --json` says) and
// that metricsURL serves baitoru_cdc_build_info with the same labels.
func checkBuildInfo(t *testing.T, p *proc, msg, metricsURL string) {
	t.Helper()
	out, err := exec.Command(buildBinary(t), "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var in buildinfo.Info
	if err := json.Unmarshal(out, &in); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(p.output(), "\n")
	var l map[string]any
	if err := json.Unmarshal([]byte(first), &l); err != nil {
		t.Fatalf("first log line is not JSON: %v: %s", err, first)
	}
	if l["msg"] != msg || l["version"] != in.Version || l["commit"] != in.ShortCommit() || l["built"] != in.Date || l["go"] != in.Go {
		t.Errorf("first log line %s; want msg %q with version %q, commit %q, built %q, go %q", first, msg, in.Version, in.ShortCommit(), in.Date, in.Go)
	}
	if v := sample(scrape(t, metricsURL), "baitoru_cdc_build_info", "version", in.Version, "commit", in.Commit, "date", in.Date, "goversion", in.Go); v != 1 {
		t.Errorf("%s: baitoru_cdc_build_info{version=%q,commit=%q,date=%q,goversion=%q} = %v, want 1", metricsURL, in.Version, in.Commit, in.Date, in.Go, v)
	}
}
