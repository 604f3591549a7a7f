package telemetry

import (
	"sync/atomic"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
)

// durations is a Prometheus histogram of durations that takes n equal
// observations at once, for the pipeline's hot path: the events of one
// transaction share a commit time, so a batch usually costs one bucket
// search and two atomic adds, not one Observe per event. It is a
// prom.Collector; safe for concurrent use.
type durations struct {
	desc   *prom.Desc
	bounds []time.Duration // upper bounds, ascending
	counts []atomic.Uint64 // per bucket (not cumulative); the last is +Inf
	sum    atomic.Int64    // nanoseconds
}

// newDurations returns a histogram with count buckets, the first ending at
// start, each next one factor times longer.
func newDurations(name, help string, start time.Duration, factor float64, count int) *durations {
	h := &durations{desc: prom.NewDesc(name, help, nil, nil), counts: make([]atomic.Uint64, count+1)}
	b := float64(start)
	for range count {
		h.bounds = append(h.bounds, time.Duration(b))
		b *= factor
	}
	return h
}

// observe records n observations of d.
func (h *durations) observe(d time.Duration, n int) {
	lo, hi := 0, len(h.bounds)
	for lo < hi { // first bound >= d
		mid := int(uint(lo+hi) >> 1)
		if h.bounds[mid] < d {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	h.counts[lo].Add(uint64(n))
	h.sum.Add(int64(d) * int64(n))
}

func (h *durations) Describe(ch chan<- *prom.Desc) { ch <- h.desc }

func (h *durations) Collect(ch chan<- prom.Metric) {
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		buckets[b.Seconds()] = cum
	}
	cum += h.counts[len(h.bounds)].Load()
	ch <- prom.MustNewConstHistogram(h.desc, cum, time.Duration(h.sum.Load()).Seconds(), buckets)
}
