// Package buildinfo says which build of baitoru-cdc is running: the
// release tag, the commit and the build date, stamped at link time by the
// Makefile and the image build:
//
//	go build -ldflags "-X github.com/baitoru/baitoru-cdc/internal/buildinfo.version=v1.2.0
//	  -X github.com/baitoru/baitoru-cdc/internal/buildinfo.commit=9fefb9c...
//	  -X github.com/baitoru/baitoru-cdc/internal/buildinfo.date=2026-12-06T13:00:00Z" ./cmd/...
//
// A binary built without them (go build, go install, go run) falls back
// to what the Go toolchain records (runtime/debug.ReadBuildInfo): the
// module version when installed as module@version, the VCS revision, its
// commit time and whether the tree was modified.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by -ldflags -X (see the package comment); empty when not stamped.
var (
	version string
	commit  string
	date    string
)

// Info describes one build.
type Info struct {
	// Version is the release tag (git describe), the module version, or
	// "dev" when neither is known.
	Version string `json:"version"`
	// Commit is the full VCS revision, "" when unknown.
	Commit string `json:"commit"`
	// Date is the build date (RFC 3339, UTC) when stamped, else the
	// commit's time from the VCS; "" when unknown.
	Date string `json:"date"`
	// Dirty says the working tree had uncommitted changes.
	Dirty bool `json:"dirty"`
	// Go is the toolchain version, e.g. go1.26.8.
	Go string `json:"go"`
	// Platform is GOOS/GOARCH, e.g. linux/amd64.
	Platform string `json:"platform"`
}

// Get returns the build information of the running binary.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	return resolve(version, commit, date, bi, ok)
}

// resolve prefers the stamped values and fills what is missing from the
// toolchain's record.
func resolve(version, commit, date string, bi *debug.BuildInfo, ok bool) Info {
	in := Info{Version: version, Commit: commit, Date: date, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if strings.HasSuffix(in.Version, "-dirty") || strings.HasSuffix(in.Version, "+dirty") {
		in.Dirty = true
	}
	if ok && bi != nil {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version // a release, or Go's pseudo-version of the commit
			in.Dirty = in.Dirty || strings.HasSuffix(in.Version, "+dirty")
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Commit == "" {
					in.Commit = s.Value
				}
			case "vcs.time":
				if in.Date == "" {
					in.Date = s.Value
				}
			case "vcs.modified":
				if commit == "" && s.Value == "true" {
					in.Dirty = true
				}
			}
		}
		if bi.GoVersion != "" {
			in.Go = bi.GoVersion
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	return in
}

// ShortCommit is the first 12 characters of the commit.
func (in Info) ShortCommit() string {
	if len(in.Commit) > 12 {
		return in.Commit[:12]
	}
	return in.Commit
}

// String is one line, e.g. "v1.2.0 (commit 9fefb9c1a2b3, built
// 2026-12-06T13:00:00Z, go1.26.8 linux/amd64)".
func (in Info) String() string {
	var parts []string
	if in.Commit != "" {
		c := "commit " + in.ShortCommit()
		if in.Dirty && !strings.HasSuffix(in.Version, "dirty") {
			c += ", modified"
		}
		parts = append(parts, c)
	}
	if in.Date != "" {
		parts = append(parts, "built "+in.Date)
	}
	parts = append(parts, in.Go+" "+in.Platform)
	return fmt.Sprintf("%s (%s)", in.Version, strings.Join(parts, ", "))
}

// LogAttrs are the attributes of the first log line of a long-running
// command: version, commit, build date, Go version.
func (in Info) LogAttrs() []any {
	return []any{"version", in.Version, "commit", in.ShortCommit(), "built", in.Date, "go", in.Go}
}

// Collector is the gauge baitoru_cdc_build_info{version,commit,date,goversion},
// always 1, for /metrics (dashboards join it to tell which build runs).
func (in Info) Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "baitoru_cdc_build_info",
		Help: "Always 1; the labels say which build of baitoru-cdc runs (version, commit, build date, Go version).",
		ConstLabels: prometheus.Labels{
			"version": in.Version, "commit": in.Commit, "date": in.Date, "goversion": in.Go,
		},
	})
	g.Set(1)
	return g
}
