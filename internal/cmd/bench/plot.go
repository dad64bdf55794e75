package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A hand-written SVG line chart over a categorical x axis: one figure is a row of panels sharing
// the x categories (e.g. rows/s beside CPU µs per event), each with its own y axis and legend.

// plotSeries is one line of a panel: a value per x category; a value that is NaN or <= 0 is
// missing (not drawn). Color is an SVG color; empty takes the next of plotColors.
type plotSeries struct {
	Name   string
	Color  string
	Values []float64
}

func (s plotSeries) color(i int) string {
	if s.Color != "" {
		return s.Color
	}
	return plotColors[i%len(plotColors)]
}

type plotPanel struct {
	YLabel string
	Series []plotSeries
}

type plotFigure struct {
	Title  string
	XLabel string
	X      []string
	Panels []plotPanel
}

var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}

const (
	plotPanelW, plotPlotH           = 360, 220
	plotLeft, plotRight, plotBottom = 62, 14, 54
	plotCharW                       = 6.2 // estimated width of a character at font-size 11
)

// svg renders the figure. Each panel's y axis starts at 0, or is logarithmic (decades) when its
// positive values span more than a factor of 30.
func (f plotFigure) svg() []byte {
	// Legend rows above the plots: entries wrap at the panel's width.
	legendRows := 1
	for _, p := range f.Panels {
		legendRows = max(legendRows, len(legendLayout(p.Series)))
	}
	top := 36 + 16*legendRows
	width := plotPanelW * max(1, len(f.Panels))
	height := top + plotPlotH + plotBottom
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n", width/2, esc(f.Title))
	for i, p := range f.Panels {
		f.panel(&b, p, float64(i*plotPanelW), float64(top))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func (f plotFigure) panel(b *bytes.Buffer, p plotPanel, x0, top float64) {
	left, right := x0+plotLeft, x0+plotPanelW-plotRight
	bottom := top + plotPlotH
	n := max(1, len(f.X))
	band := (right - left) / float64(n)
	xAt := func(i int) float64 { return left + band*(float64(i)+0.5) }
	ax := newAxis(p.Series)
	yAt := func(v float64) float64 { return bottom - ax.frac(v)*plotPlotH }

	// Legend.
	legend := legendLayout(p.Series)
	for r, row := range legend {
		lx := left
		y := top - 12 - float64(16*(len(legend)-1-r))
		for _, i := range row {
			c := p.Series[i].color(i)
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx, y-4, lx+16, y-4, esc(c))
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+20, y, esc(p.Series[i].Name))
			lx += legendWidth(p.Series[i].Name)
		}
	}
	// Grid, y ticks, y label.
	for _, t := range ax.ticks {
		y := yAt(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, right, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-4, y+4, fmtTick(t))
	}
	ylabel := p.YLabel
	if ax.log {
		ylabel += " (log scale)"
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
		x0+14, top+plotPlotH/2, x0+14, top+plotPlotH/2, esc(ylabel))
	// Axes, x categories, x label.
	fmt.Fprintf(b, `<polyline points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="none" stroke="#333"/>`+"\n", left, top, left, bottom, right, bottom)
	for i, x := range f.X {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", xAt(i), bottom+16, esc(x))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (left+right)/2, bottom+38, esc(f.XLabel))
	// Series: a line through the present points (broken at missing ones), a marker per point.
	for si, s := range p.Series {
		c := s.color(si)
		var seg []string
		flush := func() {
			if len(seg) > 1 {
				fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(seg, " "), esc(c))
			}
			seg = seg[:0]
		}
		for i, v := range s.Values {
			if i >= len(f.X) || !present(v) {
				flush()
				continue
			}
			seg = append(seg, fmt.Sprintf("%.1f,%.1f", xAt(i), yAt(v)))
		}
		flush()
		for i, v := range s.Values {
			if i < len(f.X) && present(v) {
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s</title></circle>`+"\n",
					xAt(i), yAt(v), esc(c), esc(fmt.Sprintf("%s, %s: %s", s.Name, f.X[i], fmtValue(v))))
			}
		}
	}
}

func present(v float64) bool { return v > 0 && !math.IsInf(v, 0) }

// legendLayout groups the series indexes into rows that fit the panel's width.
func legendLayout(series []plotSeries) [][]int {
	var rows [][]int
	w := 0.0
	for i, s := range series {
		ew := legendWidth(s.Name)
		if len(rows) == 0 || w+ew > plotPanelW-plotLeft-plotRight {
			rows = append(rows, nil)
			w = 0
		}
		rows[len(rows)-1] = append(rows[len(rows)-1], i)
		w += ew
	}
	return rows
}

func legendWidth(name string) float64 { return 20 + plotCharW*float64(len([]rune(name))) + 12 }

// axis maps values to [0, 1] of the plot's height.
type axis struct {
	log    bool
	lo, hi float64 // the range; for a log axis, of log10 of the values
	ticks  []float64
}

func newAxis(series []plotSeries) axis {
	lo, hi := math.Inf(1), 0.0
	for _, s := range series {
		for _, v := range s.Values {
			if present(v) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if hi == 0 { // nothing to draw
		return axis{lo: 0, hi: 1, ticks: []float64{0, 1}}
	}
	if hi/lo > 30 {
		a := axis{log: true, lo: math.Floor(math.Log10(lo)), hi: math.Ceil(math.Log10(hi))}
		if a.hi == a.lo {
			a.hi++
		}
		for e := a.lo; e <= a.hi; e++ {
			a.ticks = append(a.ticks, math.Pow(10, e))
		}
		return a
	}
	step := niceStep(hi / 4)
	a := axis{lo: 0, hi: math.Ceil(hi/step) * step}
	for t := 0.0; t <= a.hi+step/2; t += step {
		a.ticks = append(a.ticks, t)
	}
	return a
}

func (a axis) frac(v float64) float64 {
	if a.log {
		return (math.Log10(v) - a.lo) / (a.hi - a.lo)
	}
	return (v - a.lo) / (a.hi - a.lo)
}

// niceStep is the smallest of 1, 2, 2.5, 5 × 10^k that is >= x.
func niceStep(x float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// fmtTick writes an axis value briefly: 0.5, 20, 1.5k, 2M.
func fmtTick(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
}

// fmtValue writes a point's value for its tooltip: whole numbers from 100 on, else one decimal.
func fmtValue(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
