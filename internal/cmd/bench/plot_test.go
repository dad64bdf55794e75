package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

type svgText struct {
	Text string `xml:",chardata"`
}

type svgCircle struct {
	Title string `xml:"title"`
}

type svgDoc struct {
	XMLName   xml.Name    `xml:"svg"`
	Texts     []svgText   `xml:"text"`
	Circles   []svgCircle `xml:"circle"`
	Polylines []struct {
		Points string `xml:"points,attr"`
	} `xml:"polyline"`
}

func TestPlotSVG(t *testing.T) {
	tests := []struct {
		name   string
		fig    plotFigure
		points []string // circle titles expected, in order
		lines  int      // polylines: one per panel for the axes, plus one per unbroken segment
		texts  []string // texts that must appear
		log    bool     // some y label says log scale
	}{
		{
			name: "one panel, one series",
			fig: plotFigure{Title: "partitions", XLabel: "kafka.partitions", X: []string{"1", "6", "24"},
				Panels: []plotPanel{{YLabel: "rows/s", Series: []plotSeries{{Name: "pgcdc", Values: []float64{20000, 18000, 15000}}}}}},
			points: []string{"pgcdc, 1: 20000", "pgcdc, 6: 18000", "pgcdc, 24: 15000"},
			lines:  2,
			texts:  []string{"partitions", "kafka.partitions", "1", "6", "24", "rows/s", "pgcdc", "0", "20k"},
		},
		{
			name: "two panels, a missing value breaks the line",
			fig: plotFigure{Title: "row size", XLabel: "row", X: []string{"100 B", "2 KB", "100 KB"},
				Panels: []plotPanel{
					{YLabel: "rows/s", Series: []plotSeries{
						{Name: "pgcdc", Values: []float64{20000, 9000, 800}},
						{Name: "pg_recvlogical (limit)", Values: []float64{60000, 30000, 1500}},
					}},
					{YLabel: "CPU µs/event", Series: []plotSeries{
						{Name: "pgcdc", Values: []float64{15, -1, 40}},
						{Name: "broker", Values: []float64{4, 6, math.NaN()}},
					}},
				}},
			points: []string{"pgcdc, 100 B: 20000", "pgcdc, 2 KB: 9000", "pgcdc, 100 KB: 800",
				"pg_recvlogical (limit), 100 B: 60000", "pg_recvlogical (limit), 2 KB: 30000", "pg_recvlogical (limit), 100 KB: 1500",
				"pgcdc, 100 B: 15.0", "pgcdc, 100 KB: 40.0", "broker, 100 B: 4.0", "broker, 2 KB: 6.0"},
			lines: 2 + 2 + 1, // axes of two panels, two full lines, broker's first two points (pgcdc's are single points)
			texts: []string{"row size", "100 KB", "rows/s (log scale)", "CPU µs/event", "pg_recvlogical (limit)", "broker"},
			log:   true,
		},
		{
			name: "escaped names, nothing to draw",
			fig: plotFigure{Title: "a < b & c", XLabel: "x", X: []string{"<1>"},
				Panels: []plotPanel{{YLabel: "y", Series: []plotSeries{{Name: "\"q\"", Values: []float64{0}}}}}},
			lines: 1,
			texts: []string{"a < b & c", "<1>", "\"q\""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.fig.svg()
			// Well-formed: every token decodes up to the end.
			dec := xml.NewDecoder(bytes.NewReader(out))
			for {
				if _, err := dec.Token(); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("not well-formed XML: %v\n%s", err, out)
				}
			}
			var doc svgDoc
			if err := xml.Unmarshal(out, &doc); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			var got []string
			for _, c := range doc.Circles {
				got = append(got, c.Title)
			}
			if strings.Join(got, "|") != strings.Join(tc.points, "|") {
				t.Errorf("points:\n got %q\nwant %q", got, tc.points)
			}
			if len(doc.Polylines) != tc.lines {
				t.Errorf("polylines: got %d, want %d", len(doc.Polylines), tc.lines)
			}
			texts := map[string]bool{}
			for _, x := range doc.Texts {
				texts[x.Text] = true
			}
			for _, want := range tc.texts {
				if !texts[want] {
					t.Errorf("no text %q in %v", want, doc.Texts)
				}
			}
			if got := bytes.Contains(out, []byte("(log scale)")); got != tc.log {
				t.Errorf("log scale: got %v, want %v", got, tc.log)
			}
		})
	}
}

func TestAxis(t *testing.T) {
	tests := []struct {
		name  string
		vals  []float64
		log   bool
		ticks []float64
	}{
		{"linear", []float64{3, 17}, false, []float64{0, 5, 10, 15, 20}},
		{"linear thousands", []float64{21000, 55000}, false, []float64{0, 20000, 40000, 60000}},
		{"log", []float64{2, 900}, true, []float64{1, 10, 100, 1000}},
		{"empty", []float64{-1}, false, []float64{0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAxis([]plotSeries{{Values: tc.vals}})
			if a.log != tc.log || !floatsEqual(a.ticks, tc.ticks) {
				t.Errorf("got log %v ticks %v, want %v %v", a.log, a.ticks, tc.log, tc.ticks)
			}
			for _, v := range tc.vals {
				if present(v) {
					if f := a.frac(v); f < 0 || f > 1 {
						t.Errorf("frac(%v) = %v, outside [0, 1]", v, f)
					}
				}
			}
		})
	}
}

func floatsEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9*math.Max(1, math.Abs(b[i])) {
			return false
		}
	}
	return true
}
