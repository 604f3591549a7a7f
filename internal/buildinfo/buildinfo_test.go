package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/baitoru/baitoru-cdc", Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "9fefb9c1a2b3c4d5e6f708192a3b4c5d6e7f8091"},
		{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	installed := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/baitoru/baitoru-cdc", Version: "v1.4.0"}}
	tests := []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  Info
		line                  string
	}{
		{"stamped by make", "v1.4.0-3-g9fefb9c", "9fefb9c1a2b3c4d5e6f708192a3b4c5d6e7f8091", "2026-12-06T13:00:00Z", vcs,
			Info{Version: "v1.4.0-3-g9fefb9c", Commit: "9fefb9c1a2b3c4d5e6f708192a3b4c5d6e7f8091", Date: "2026-12-06T13:00:00Z", Go: "go1.26.8"},
			"v1.4.0-3-g9fefb9c (commit 9fefb9c1a2b3, built 2026-12-06T13:00:00Z, go1.26.8 "},
		{"stamped dirty tree", "v1.4.0-dirty", "9fefb9c1a2b3c4d5e6f708192a3b4c5d6e7f8091", "2026-12-06T13:00:00Z", nil,
			Info{Version: "v1.4.0-dirty", Commit: "9fefb9c1a2b3c4d5e6f708192a3b4c5d6e7f8091", Date: "2026-12-06T13:00:00Z", Dirty: true},
			"v1.4.0-dirty (commit 9fefb9c1a2b3, built 2026-12-06T13:00:00Z, "},
		{"go build in a checkout", "", "", "", vcs,
			Info{Version: "dev", Commit: "9fefb9c1a2b3c4d5e6f708192a3b4c5d6e7f8091", Date: "2026-12-01T10:00:00Z", Dirty: true, Go: "go1.26.8"},
			"dev (commit 9fefb9c1a2b3, modified, built 2026-12-01T10:00:00Z, go1.26.8 "},
		{"go install module@version", "", "", "", installed,
			Info{Version: "v1.4.0", Go: "go1.26.8"}, "v1.4.0 (go1.26.8 "},
		{"nothing known", "", "", "", nil, Info{Version: "dev"}, "dev ("},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.version, tt.commit, tt.date, tt.bi, tt.bi != nil)
			if tt.want.Go == "" {
				tt.want.Go = got.Go
			}
			tt.want.Platform = got.Platform
			if got != tt.want {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
			if !strings.HasPrefix(got.String(), tt.line) {
				t.Errorf("String = %q, want prefix %q", got.String(), tt.line)
			}
		})
	}
}

func TestCollector(t *testing.T) {
	in := Info{Version: "v1.4.0", Commit: "9fefb9c", Date: "2026-12-06T13:00:00Z", Go: "go1.26.8"}
	reg := prometheus.NewRegistry()
	reg.MustRegister(in.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "baitoru_cdc_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v", mfs)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"version": "v1.4.0", "commit": "9fefb9c", "date": "2026-12-06T13:00:00Z", "goversion": "go1.26.8"}
	if m.GetGauge().GetValue() != 1 || fmt.Sprint(labels) != fmt.Sprint(want) {
		t.Errorf("baitoru_cdc_build_info %v = %v, want %v = 1", labels, m.GetGauge().GetValue(), want)
	}
}
