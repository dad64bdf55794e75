package main

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestSweepRows(t *testing.T) {
	tests := []struct {
		rows    int64
		payload int
		want    int64
	}{
		{200_000, 0, 200_000},
		{200_000, sweepWidePayload, 200_000},   // in the row: not scaled
		{200_000, sweepToastPayload, 2_000},    // ~1 KB of payload per row: 200 MB
		{20_000, sweepToastPayload, 200},       // -quick
		{10_000_000, sweepToastPayload, 2_684}, // at most 256 MiB of payload
		{5_000, sweepToastPayload, 100},        // at least 100 rows
		{50, sweepToastPayload, 50},            // or all of them
	}
	for _, tc := range tests {
		if got := sweepRows(tc.rows, tc.payload); got != tc.want {
			t.Errorf("sweepRows(%d, %d) = %d, want %d", tc.rows, tc.payload, got, tc.want)
		}
	}
}

func TestSplitRows(t *testing.T) {
	tests := []struct {
		rows int64
		n    int
		want []int64
	}{
		{10, 1, []int64{10}},
		{10, 3, []int64{4, 3, 3}},
		{9, 3, []int64{3, 3, 3}},
		{2, 4, []int64{1, 1, 0, 0}},
		{200_000, 1000, slices.Repeat([]int64{200}, 1000)},
	}
	for _, tc := range tests {
		if got := splitRows(tc.rows, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("splitRows(%d, %d) = %v, want %v", tc.rows, tc.n, got, tc.want)
		}
	}
}

// TestSweepChunks follows bench_sweep_chunk's loop (rows s..e of a transaction: for k below
// min(ntables, e-s+1), table (s-1+k) mod ntables gets rows s+k, s+k+ntables, ... up to e) over the
// transactions bench_sweep_load and the client's last one write, and checks every row lands once,
// in the table splitRows counts it for.
func TestSweepChunks(t *testing.T) {
	tests := []struct {
		rows   int64
		tables int
		perTxn int
	}{
		{1000, 1, 100},
		{20_000, 100, 100},
		{20_000, 1000, 100},
		{20_000, 1000, 10_000},
		{2_000, 7, 1},
		{1_234, 100, 333},
	}
	for _, tc := range tests {
		got := make([]int64, tc.tables)
		seen := make([]bool, tc.rows+1)
		chunk := func(s, e int64) {
			for k := int64(0); k < min(int64(tc.tables), e-s+1); k++ {
				tbl := (s - 1 + k) % int64(tc.tables)
				for g := s + k; g <= e; g += int64(tc.tables) {
					if (g-1)%int64(tc.tables) != tbl || seen[g] {
						t.Fatalf("%+v: row %d into table %d (seen before: %v)", tc, g, tbl, seen[g])
					}
					seen[g] = true
					got[tbl]++
				}
			}
		}
		lastFirst := max(tc.rows-int64(tc.perTxn)+1, 1)
		for s := int64(1); s <= lastFirst-1; s += int64(tc.perTxn) {
			chunk(s, min(s+int64(tc.perTxn)-1, lastFirst-1))
		}
		chunk(lastFirst, tc.rows)
		if !slices.Equal(got, splitRows(tc.rows, tc.tables)) {
			t.Errorf("%+v: rows per table %v, want %v", tc, got, splitRows(tc.rows, tc.tables))
		}
		if i := slices.Index(seen[1:], false); i >= 0 {
			t.Errorf("%+v: row %d not written", tc, i+1)
		}
	}
}

func TestSweepTables(t *testing.T) {
	tests := []struct {
		prefix string
		n      int
		names  []string // first and last
		glob   string
		regex  string
	}{
		{"sw01", 1, []string{"sw01", "sw01"}, "sw01", `public\.sw01`},
		{"sw08", 100, []string{"sw08_0000", "sw08_0099"}, "sw08_[0-9][0-9][0-9][0-9]", `public\.sw08_[0-9]{4}`},
		{"sw09", 1000, []string{"sw09_0000", "sw09_0999"}, "sw09_[0-9][0-9][0-9][0-9]", `public\.sw09_[0-9]{4}`},
	}
	others := []string{"sw10", "sw10_0001", "sw0", "bench", "sw01x", "sw09_x", "sw099_0001", "sw09_00001", "sw09_001"}
	for _, tc := range tests {
		names := sweepTableNames(tc.prefix, tc.n)
		if len(names) != tc.n || names[0] != tc.names[0] || names[len(names)-1] != tc.names[1] {
			t.Errorf("sweepTableNames(%s, %d): %d names %s..%s", tc.prefix, tc.n, len(names), names[0], names[len(names)-1])
		}
		glob, regex := sweepInclude(tc.prefix, tc.n)
		if glob != tc.glob || regex != tc.regex {
			t.Errorf("sweepInclude(%s, %d) = %q, %q", tc.prefix, tc.n, glob, regex)
		}
		re := regexp.MustCompile("^(?:" + regex + ")$") // Debezium matches the whole name
		match := func(table string) (bool, bool) {
			g, err := path.Match("public."+glob, "public."+table)
			if err != nil {
				t.Fatal(err)
			}
			return g, re.MatchString("public." + table)
		}
		for _, n := range names {
			if g, r := match(n); !g || !r {
				t.Errorf("%s: not matched (glob %v, regex %v)", n, g, r)
			}
		}
		for _, n := range others {
			if g, r := match(n); (g || r) && !slices.Contains(names, n) {
				t.Errorf("%s: matched by the patterns of %s (glob %v, regex %v)", n, tc.prefix, g, r)
			}
		}
	}
}

func TestSweepPlan(t *testing.T) {
	plan := sweepPlan(sweepFactors, 200_000)
	var names []string
	for _, f := range plan {
		names = append(names, f.Name)
		if len(f.Points) != 3 {
			t.Fatalf("%s: %d points", f.Name, len(f.Points))
		}
		defaults := 0
		for _, p := range f.Points {
			// How the point differs from the default one.
			var diff []string
			if p.PayloadBytes != 0 {
				diff = append(diff, "rowsize")
			}
			if p.Partitions != 1 {
				diff = append(diff, "partitions")
			}
			if p.Tables != 1 {
				diff = append(diff, "tables")
			}
			if p.RowsPerTxn != sweepBaseTxn {
				diff = append(diff, "txn")
			}
			switch {
			case len(diff) == 0:
				defaults++
			case len(diff) > 1 || diff[0] != f.Name:
				t.Errorf("%s %s: differs from the default in %v", f.Name, p.Value, diff)
			}
			wantRows := int64(200_000)
			if p.PayloadBytes == sweepToastPayload {
				wantRows = 2_000
			}
			if p.Rows != wantRows {
				t.Errorf("%s %s: %d rows, want %d", f.Name, p.Value, p.Rows, wantRows)
			}
			if p.slug == "" || strings.ContainsAny(p.slug, " /,") {
				t.Errorf("%s %s: slug %q", f.Name, p.Value, p.slug)
			}
		}
		if defaults != 1 {
			t.Errorf("%s: %d default points, want 1", f.Name, defaults)
		}
	}
	if !slices.Equal(names, sweepFactors) {
		t.Errorf("factors %v", names)
	}
	rs := plan[0].Points
	if rs[1].PayloadStorage != "plain" || rs[2].PayloadStorage != "external" || rs[2].PayloadBytes != 100_000 || rs[1].PayloadBytes != 2_000 {
		t.Errorf("row sizes: %+v", rs)
	}
}

func TestParseSweepFactors(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"rowsize,partitions,tables,txn", sweepFactors, false},
		{"txn, rowsize", []string{"rowsize", "txn"}, false}, // run in the fixed order
		{"tables,tables", []string{"tables"}, false},
		{"rows", nil, true},
		{" , ", nil, true},
	}
	for _, tc := range tests {
		got, err := parseSweepFactors(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("parseSweepFactors(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestSweepFigure(t *testing.T) {
	f := SweepFactor{Name: "rowsize", Title: "row size", Points: []SweepPoint{
		{Value: "120 B", Rows: 1000, Limit: &Run{RowsPerSec: 50000}, Pgcdc: &Run{RowsPerSec: 20000, ClientCPUPerEvent: 15, WalsenderPerEvent: 6, BrokerPerEvent: -1, PeakRSS: 64 << 20}},
		{Value: "2 KB", Rows: 1000, Limit: &Run{RowsPerSec: 30000}, Error: "pgcdc failed"},
		{Value: "100 KB TOAST", Rows: 100, Limit: &Run{RowsPerSec: 900}, Pgcdc: &Run{RowsPerSec: 500, ClientCPUPerEvent: 90, WalsenderPerEvent: 40, BrokerPerEvent: 30, PeakRSS: 128 << 20}},
	}}
	fig := sweepFigure(f, 1000, false)
	if !strings.Contains(fig.Title, "1,000 rows a point, 100 for 100 KB TOAST") {
		t.Errorf("title %q", fig.Title)
	}
	if !slices.Equal(fig.X, []string{"120 B", "2 KB", "100 KB TOAST"}) || len(fig.Panels) != 3 {
		t.Fatalf("x %v, %d panels", fig.X, len(fig.Panels))
	}
	want := map[string][]float64{
		"rows/s pgcdc":                  {20000, -1, 500},
		"rows/s pg_recvlogical (limit)": {50000, 30000, 900},
		"CPU µs/event pgcdc":            {15, -1, 90},
		"CPU µs/event its walsender":    {6, -1, 40},
		"CPU µs/event broker":           {-1, -1, 30},
		"peak RSS MiB pgcdc":            {64, -1, 128},
	}
	n := 0
	for _, p := range fig.Panels {
		for _, s := range p.Series {
			n++
			if w, ok := want[p.YLabel+" "+s.Name]; !ok || !slices.Equal(s.Values, w) {
				t.Errorf("%s %s: %v, want %v", p.YLabel, s.Name, s.Values, w)
			}
		}
	}
	if n != len(want) {
		t.Errorf("%d series, want %d", n, len(want))
	}
	if got := len(sweepFigure(f, 1000, true).Panels[0].Series); got != 3 {
		t.Errorf("with Debezium: %d rate series, want 3", got)
	}
}

func TestGroupThousands(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 200000: "200,000", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := groupThousands(in); got != want {
			t.Errorf("groupThousands(%d) = %q, want %q", in, got, want)
		}
	}
}
