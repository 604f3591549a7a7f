package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// histogram is a Prometheus histogram scraped from a /metrics endpoint:
// cumulative counts per upper bound, +Inf last.
type histogram struct {
	le     []float64
	counts []float64
}

// scrapeHistogram reads the buckets of the histogram name (without
// labels other than le) from url.
func scrapeHistogram(ctx context.Context, url, name string) (histogram, error) {
	var h histogram
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return h, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + `_bucket{le="`
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		leStr, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		le, err1 := strconv.ParseFloat(leStr, 64)
		if leStr == "+Inf" {
			le, err1 = math.Inf(1), nil
		}
		n, err2 := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err1 != nil || err2 != nil {
			return h, fmt.Errorf("metric line %q: bad number", line)
		}
		bs = append(bs, bucket{le, n})
	}
	if err := sc.Err(); err != nil {
		return h, err
	}
	if len(bs) == 0 {
		return h, fmt.Errorf("%s not served by %s", name, url)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, b := range bs {
		h.le = append(h.le, b.le)
		h.counts = append(h.counts, b.n)
	}
	return h, nil
}

// scrapeSum returns the sum of every series of the metric name (a counter
// or a histogram's _count) served at url.
func scrapeSum(ctx context.Context, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: bad number", line)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("%s not served by %s", name, url)
	}
	return sum, sc.Err()
}

// minus returns h − before (the observations made in between); before may
// be empty.
func (h histogram) minus(before histogram) histogram {
	out := histogram{le: h.le, counts: make([]float64, len(h.counts))}
	copy(out.counts, h.counts)
	if len(before.counts) == len(h.counts) {
		for i := range out.counts {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

func (h histogram) total() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantile estimates the q-quantile the way PromQL's histogram_quantile
// does: linear interpolation inside the bucket holding it. A quantile in
// the +Inf bucket returns the highest finite bound.
func (h histogram) quantile(q float64) float64 {
	total := h.total()
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	lower, prev := 0.0, 0.0
	for i, n := range h.counts {
		if n >= rank {
			if math.IsInf(h.le[i], 1) {
				return lower
			}
			if n == prev {
				return h.le[i]
			}
			return lower + (h.le[i]-lower)*(rank-prev)/(n-prev)
		}
		lower, prev = h.le[i], n
	}
	return lower
}

// bucketBounds names the bounds around v, for saying how coarse an
// estimate is ("16–32 ms").
func (h histogram) bucketBounds(v float64) string {
	lower := 0.0
	for _, le := range h.le {
		if v <= le {
			if math.IsInf(le, 1) {
				return fmt.Sprintf("> %g ms", lower*1000)
			}
			return fmt.Sprintf("%g–%g ms", lower*1000, le*1000)
		}
		lower = le
	}
	return ""
}
