package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// bar is one horizontal bar of a chart panel.
type bar struct {
	label  string
	value  float64
	text   string  // printed after the bar
	target float64 // 0: none
	// higherBetter: the target is a minimum (ratios, rates), else a maximum.
	higherBetter bool
}

const (
	chartWidth  = 900
	labelWidth  = 290
	valueWidth  = 110
	barHeight   = 18
	rowHeight   = 26
	panelMargin = 16
)

// chart renders the throughput ratios, latency percentiles and peak RSS as
// an SVG, each panel with its own scale and the targets drawn as
// dashed red lines. A bar is green when it meets its target.
func (r *Results) chart() string {
	type panel struct {
		title string
		bars  []bar
	}
	var panels []panel

	var ratios []bar
	for _, wl := range []string{"main", "one-tx", "split"} {
		base, conn := r.stream(wl, "baseline"), r.stream(wl, "connector")
		if base == nil || conn == nil {
			continue
		}
		v := conn.RowsPerSec / base.RowsPerSec
		ratios = append(ratios, bar{label: "stdout ÷ bare reader, " + r.workloadShort(wl), value: v,
			text: fmt.Sprintf("%.2f×", v), target: targetDiscardRatio, higherBetter: true})
	}
	if p := r.Publish; p != nil && p.Ratio > 0 {
		ratios = append(ratios, bar{label: "emulator ÷ bare PublishBatch loop", value: p.Ratio,
			text: fmt.Sprintf("%.2f×", p.Ratio), target: targetPublishRatio, higherBetter: true})
	}
	if len(ratios) > 0 {
		panels = append(panels, panel{"Connector throughput ÷ reference (green: target met, orange: missed; dashed: target)", ratios})
	}
	for _, family := range []string{"SNS", "Kobot"} {
		var bars []bar
		var title string
		for _, l := range r.Latency {
			if !strings.Contains(l.Path, family) || l.Histogram != "" {
				continue
			}
			target := latencyTarget(l.Path)
			title = fmt.Sprintf("Latency commit→%s at %s rows/s (ms; p99 target %.0f ms)", family, count(l.Rate), target)
			for _, q := range []struct {
				name string
				v    float64
			}{{"p50", l.P50}, {"p95", l.P95}, {"p99", l.P99}} {
				t := 0.0
				if q.name == "p99" {
					t = target
				}
				bars = append(bars, bar{label: q.name + " · " + l.Short,
					value: q.v, text: fmt.Sprintf("%.1f ms", q.v), target: t})
			}
		}
		if len(bars) > 0 {
			panels = append(panels, panel{title, bars})
		}
	}
	var rss []bar
	for _, wl := range []string{"one-tx", "split", "main"} {
		if s := r.stream(wl, "connector"); s != nil {
			t := 0.0
			if wl == "one-tx" {
				t = targetRSSMiB
			}
			_, peak := r.runs(wl, "connector")
			v := float64(peak) / (1 << 20)
			rss = append(rss, bar{label: r.workloadShort(wl), value: v, text: fmt.Sprintf("%.1f MiB", v), target: t})
		}
	}
	if len(rss) > 0 {
		panels = append(panels, panel{fmt.Sprintf("Connector peak RSS (MiB; target %.0f MiB for one big transaction)", targetRSSMiB), rss})
	}

	height := panelMargin
	for _, p := range panels {
		height += 30 + len(p.bars)*rowHeight + 24 + panelMargin
	}
	if len(panels) == 0 {
		height += 40
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartWidth, height)
	if len(panels) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no figures measured</text>`+"\n", panelMargin, panelMargin+20)
	}
	y := panelMargin
	for _, p := range panels {
		y = drawPanel(&b, y, p.title, p.bars)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// workloadShort is a short label of a workload: "1M rows in 10,000 tx".
func (r *Results) workloadShort(name string) string {
	for _, w := range r.Workloads {
		if w.Name == name {
			return fmt.Sprintf("%s rows in %s tx", shortCount(w.Rows), count(w.Txs))
		}
	}
	return name
}

func shortCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return count(n)
}

// drawPanel draws one panel starting at y and returns the y below it.
func drawPanel(b *strings.Builder, y int, title string, bars []bar) int {
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", panelMargin, y+16, html.EscapeString(title))
	y += 30
	maxV := 0.0
	for _, br := range bars {
		maxV = math.Max(maxV, math.Max(br.value, br.target))
	}
	scale := niceMax(maxV * 1.05)
	x0 := panelMargin + labelWidth
	width := chartWidth - x0 - valueWidth - panelMargin
	px := func(v float64) float64 { return float64(x0) + v/scale*float64(width) }
	top := y
	for i, br := range bars {
		ry := y + i*rowHeight
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", x0-8, ry+barHeight-4, html.EscapeString(br.label))
		color := "#4a78c2"
		if br.target > 0 {
			ok := br.value <= br.target
			if br.higherBetter {
				ok = br.value >= br.target
			}
			color = "#3b9a57"
			if !ok {
				color = "#d0803a"
			}
		}
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, ry, math.Max(px(br.value)-float64(x0), 1), barHeight, color)
		fmt.Fprintf(b, `<text x="%.1f" y="%d">%s</text>`+"\n", px(br.value)+4, ry+barHeight-4, html.EscapeString(br.text))
		if br.target > 0 {
			fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c0392b" stroke-width="2" stroke-dasharray="4,3"/>`+"\n",
				px(br.target), ry-3, px(br.target), ry+barHeight+3)
		}
	}
	bottom := y + len(bars)*rowHeight
	// Axis with five ticks.
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`+"\n", x0, top-4, x0, bottom)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`+"\n", x0, bottom, x0+width, bottom)
	for i := 0; i <= 4; i++ {
		v := scale * float64(i) / 4
		x := px(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888"/>`+"\n", x, bottom, x, bottom+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", x, bottom+16, tick(v))
	}
	return bottom + 24 + panelMargin
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func tick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
