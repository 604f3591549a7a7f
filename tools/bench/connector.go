package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// mappingYAML is the mapping of public.applications the connector runs
// with: the shipped config.yaml's (7 of 11 columns, one renamed, the key
// and two attributes).
const mappingYAML = `tables:
  - table: public.applications
    operations: [insert]
    key: [company_id]
    columns:
      - column: application_id
      - column: company_id
      - column: posting_id
      - column: status
      - column: source
        rename: channel
      - column: answers
      - column: applied_at
    attributes:
      - column: company_id
        type: Number
      - column: status
`

// connectorConfig writes the configuration of one connector run and
// returns its path. kind is "stdout" or "sns" (then topicARN is used, at
// endpoint, or at the emulator when endpoint is empty); metricsAddr, when
// set, is where the connector serves /metrics.
// status_interval is 100ms so that the slot's confirmed position, which the
// bench polls, trails what was published by at most 100ms.
func (b *bench) connectorConfig(name, slot, kind, topicARN, endpoint, metricsAddr string) (string, error) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "source:\n  dsn: %q\n  slot: %s\n  publication: %s\n  create: false\n  status_interval: 100ms\n",
		b.dsn, slot, publication)
	fmt.Fprintf(&sb, "publisher:\n  kind: %s\n  lanes: %d\n", kind, b.o.Lanes)
	if kind == "sns" {
		if endpoint == "" {
			endpoint = b.emu.Endpoint
		}
		fmt.Fprintf(&sb, "sns:\n  region: %s\n  endpoint: %s\n  topic_arn: %s\n", b.emu.Region, endpoint, topicARN)
	}
	if metricsAddr != "" {
		fmt.Fprintf(&sb, "metrics:\n  listen: %q\n", metricsAddr)
	}
	sb.WriteString("log:\n  level: warn\n")
	sb.WriteString(mappingYAML)
	path := filepath.Join(b.out, "config", name+".yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(sb.String()), 0o644)
}

// lineCounter is the connector's stdout: it counts lines (events), notes
// when the first arrived and when the want-th did, and drops the bytes
// (or keeps the lines, with capture).
type lineCounter struct {
	want    int
	capture bool
	done    chan struct{}

	mu          sync.Mutex
	n           int
	first, last time.Time
	lines       [][]byte
	partial     []byte
}

func newLineCounter(want int, capture bool) *lineCounter {
	return &lineCounter{want: want, capture: capture, done: make(chan struct{})}
}

func (c *lineCounter) Write(p []byte) (int, error) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first.IsZero() {
		c.first = now
	}
	if c.capture {
		rest := p
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				c.partial = append(c.partial, rest...)
				break
			}
			line := append(c.partial, rest[:i]...)
			c.partial = nil
			c.lines = append(c.lines, bytes.Clone(line))
			rest = rest[i+1:]
		}
	}
	before := c.n
	c.n += bytes.Count(p, []byte{'\n'})
	if before < c.want && c.n >= c.want {
		c.last = now
		close(c.done)
	}
	return len(p), nil
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *lineCounter) times() (first, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first, c.last
}

// Profiles are CPU and heap profiles of one process over one workload.
type Profiles struct {
	Process   string   `json:"process"` // "connector" or "sink"
	Workload  string   `json:"workload"`
	CPUFile   string   `json:"cpu_file"`
	HeapFile  string   `json:"heap_file"`
	CPUTop    []string `json:"cpu_top"`    // go tool pprof -top
	AllocTop  []string `json:"alloc_top"`  // -sample_index=alloc_space
	ObjectTop []string `json:"object_top"` // -sample_index=alloc_objects
}

// profileEnv returns the environment making the profiling binary write
// name-cpu.pprof and name-heap.pprof into the output directory.
func (b *bench) profileEnv(name string) (env []string, cpu, heap string) {
	cpu = filepath.Join(b.out, name+"-cpu.pprof")
	heap = filepath.Join(b.out, name+"-heap.pprof")
	os.Remove(cpu)
	os.Remove(heap)
	return []string{"BAITORU_CDC_CPUPROFILE=" + cpu, "BAITORU_CDC_MEMPROFILE=" + heap}, cpu, heap
}

// profile runs the connector once more over workload w, with CPU and heap
// profiles (not the measured run: profiling costs a few percent), and
// keeps the top of each. Files are named connector-<workload>-*.
func (b *bench) profile(ctx context.Context, w *Workload, slot string) error {
	if b.profBin == "" {
		b.res.Unavailable[itemProfile] = "no profiling build (see notes)"
		return nil
	}
	name := "connector-" + w.Name
	env, cpu, heap := b.profileEnv(name)
	if _, err := b.measureDiscard(ctx, w, slot, connectorRun{bin: b.profBin, env: env}); err != nil {
		return fmt.Errorf("profiled run: %w", err)
	}
	p, err := b.readProfiles(ctx, name, cpu, heap)
	if p != nil {
		p.Workload = b.res.workloadLabel(w.Name) + ", publisher stdout"
		b.res.Profiles = append(b.res.Profiles, p)
	}
	return err
}

// readProfiles checks that the profiles were written and keeps the top of
// each (the full listings go to name-*.txt next to them).
func (b *bench) readProfiles(ctx context.Context, name, cpu, heap string) (*Profiles, error) {
	process := name
	for _, f := range []string{cpu, heap} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			return nil, fmt.Errorf("profiled %s wrote no %s: does baitoru-cdc call withProfiles?", process, filepath.Base(f))
		}
	}
	p := &Profiles{Process: strings.SplitN(process, "-", 2)[0], CPUFile: filepath.Base(cpu), HeapFile: filepath.Base(heap)}
	var errs []error
	for _, q := range []struct {
		file, out string
		args      []string
		dst       *[]string
	}{
		{cpu, "-cpu-top.txt", nil, &p.CPUTop},
		{heap, "-alloc-space-top.txt", []string{"-sample_index=alloc_space"}, &p.AllocTop},
		{heap, "-alloc-objects-top.txt", []string{"-sample_index=alloc_objects"}, &p.ObjectTop},
		{cpu, "-cpu-cum.txt", []string{"-cum"}, nil},
	} {
		args := append([]string{"tool", "pprof", "-top", "-nodecount=40"}, q.args...)
		args = append(args, b.profBin, q.file)
		cmd := exec.CommandContext(ctx, goTool(), args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		outb, err := cmd.Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("go tool pprof %s: %w: %s", filepath.Base(q.file), err, stderr.String()))
			continue
		}
		_ = os.WriteFile(filepath.Join(b.out, name+q.out), outb, 0o644)
		if q.dst != nil {
			*q.dst = pprofTop(string(outb), 15)
		}
	}
	return p, errors.Join(errs...)
}

// pprofTop keeps the header line and the first n rows of a pprof -top.
func pprofTop(out string, n int) []string {
	var keep []string
	rows := -1
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "Showing nodes"), strings.HasPrefix(l, "Duration:"), strings.HasPrefix(l, "Type:"):
			keep = append(keep, strings.TrimSpace(l))
		case strings.Contains(l, "flat%"):
			keep = append(keep, l)
			rows = 0
		case rows >= 0 && rows < n && strings.TrimSpace(l) != "":
			keep = append(keep, l)
			rows++
		}
	}
	return keep
}

func jsonUnmarshalLine(s string, v any) error {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return errors.New("no output")
	}
	return json.Unmarshal([]byte(s), v)
}
