package snapshot

import (
	"context"
	"testing"
	"time"
)

func TestMarkerPrecedence(t *testing.T) {
	mid := &Chunk{Seq: 1}
	firstOfTable := &Chunk{Seq: 0}
	lastOfTable := &Chunk{Seq: 2, LastInTable: true}
	only := &Chunk{Seq: 0, LastInTable: true}
	first := &Chunk{Seq: 0, FirstInSnapshot: true}
	last := &Chunk{Seq: 3, LastInTable: true, LastInSnapshot: true}
	single := &Chunk{Seq: 0, LastInTable: true, FirstInSnapshot: true, LastInSnapshot: true}
	cases := []struct {
		c           *Chunk
		first, last bool
		want        string
	}{
		{mid, false, false, MarkTrue},
		{mid, true, true, MarkTrue},
		{firstOfTable, true, false, MarkFirstInData},
		{firstOfTable, false, false, MarkTrue},
		{lastOfTable, false, true, MarkLastInData},
		{only, true, true, MarkLastInData}, // one-row table: Debezium writes last_in_data_collection
		{first, true, false, MarkFirst},
		{first, false, true, MarkTrue},
		{last, false, true, MarkLast},
		{single, true, true, MarkLast}, // one row in the whole snapshot: last wins
		{single, true, false, MarkFirst},
	}
	for i, c := range cases {
		if got := Marker(c.c, c.first, c.last); got != c.want {
			t.Errorf("case %d: Marker = %q, want %q", i, got, c.want)
		}
	}
}

func TestMarkPlanMarkers(t *testing.T) {
	mk := func(n int) []*Chunk {
		var cs []*Chunk
		for i := 0; i < n; i++ {
			cs = append(cs, &Chunk{Seq: i, LastInTable: i == n-1})
		}
		return cs
	}
	tables := [][]*Chunk{mk(1), mk(2), mk(3), mk(1)}
	all := MarkPlan(tables, []bool{true, false, false, true})
	if len(all) != 7 {
		t.Fatalf("%d chunks", len(all))
	}
	for i, c := range all {
		if c.Ordinal != i {
			t.Fatalf("chunk %d has ordinal %d", i, c.Ordinal)
		}
	}
	for _, c := range all {
		if c.FirstInSnapshot {
			t.Fatal(`the first table is empty: as in Debezium, no record is "first"`)
		}
	}
	if !tables[2][2].LastInSnapshot || tables[3][0].LastInSnapshot {
		t.Fatal("last chunk must be the last non-empty table's final chunk")
	}
	if tables[2][1].TableOrder != 2 {
		t.Fatalf("table order %d", tables[2][1].TableOrder)
	}
	tables = [][]*Chunk{mk(2), mk(1)}
	MarkPlan(tables, []bool{false, true})
	if !tables[0][0].FirstInSnapshot || !tables[0][1].LastInSnapshot {
		t.Fatal("first and last chunk must be the first table's, the only non-empty one")
	}
	none := MarkPlan([][]*Chunk{mk(1)}, []bool{true})
	if none[0].FirstInSnapshot || none[0].LastInSnapshot {
		t.Fatal("an all-empty plan has no first or last record")
	}
}

func TestChunkQueries(t *testing.T) {
	tb := &Table{Schema: "public", Name: "Orders", Columns: []Column{{Name: "a"}, {Name: "b"}, {Name: "v"}},
		Key: []string{"a", "b"}, KeyTypes: []string{"integer", "character varying(10)"}}
	cases := []struct {
		c    *Chunk
		sql  string
		args []string
	}{
		{&Chunk{Kind: KindKey, Upper: []string{"5", "x"}},
			`SELECT "a", "b", "v" FROM ONLY "public"."Orders" WHERE ROW("a", "b") <= ROW($1::integer, $2::character varying(10)) ORDER BY "a", "b"`, []string{"5", "x"}},
		{&Chunk{Kind: KindKey, Lower: []string{"5", "x"}, Upper: []string{"9", "y"}},
			`SELECT "a", "b", "v" FROM ONLY "public"."Orders" WHERE ROW("a", "b") > ROW($1::integer, $2::character varying(10)) AND ROW("a", "b") <= ROW($3::integer, $4::character varying(10)) ORDER BY "a", "b"`, []string{"5", "x", "9", "y"}},
		{&Chunk{Kind: KindKey},
			`SELECT "a", "b", "v" FROM ONLY "public"."Orders" ORDER BY "a", "b"`, nil},
		{&Chunk{Kind: KindCTID, Lower: []string{"0"}, Upper: []string{"128"}},
			`SELECT "a", "b", "v" FROM ONLY "public"."Orders" WHERE ctid >= $1::tid AND ctid < $2::tid`, []string{"(0,0)", "(128,0)"}},
		{&Chunk{Kind: KindCTID, Lower: []string{"128"}},
			`SELECT "a", "b", "v" FROM ONLY "public"."Orders" WHERE ctid >= $1::tid`, []string{"(128,0)"}},
	}
	for i, c := range cases {
		sql, args := query(tb, c.c)
		if sql != c.sql {
			t.Errorf("case %d:\n got %s\nwant %s", i, sql, c.sql)
		}
		if len(args) != len(c.args) {
			t.Fatalf("case %d: args %q, want %q", i, args, c.args)
		}
		for j := range args {
			if string(args[j]) != c.args[j] {
				t.Errorf("case %d: arg %d = %q, want %q", i, j, args[j], c.args[j])
			}
		}
	}
	part := &Table{Schema: "s", Name: "p", Columns: []Column{{Name: "x"}}, Partitioned: true}
	if sql, _ := query(part, &Chunk{Kind: KindAll}); sql != `SELECT "x" FROM "s"."p"` {
		t.Errorf("partitioned: %s", sql)
	}
}

func TestCtidStepAndETA(t *testing.T) {
	if got := ctidStep(1000, 10, 1000); got != 10 { // 100 rows per block
		t.Errorf("ctidStep = %d, want 10", got)
	}
	if got := ctidStep(1000, 0, -1); got != 20 { // never analyzed: 50 rows per block
		t.Errorf("ctidStep unanalyzed = %d, want 20", got)
	}
	if got := ctidStep(1, 10, 1000); got != 1 {
		t.Errorf("ctidStep tiny = %d, want 1", got)
	}
	if got := eta(500, 1500, 100); got != 10*time.Second {
		t.Errorf("eta = %s, want 10s", got)
	}
	if eta(2000, 1500, 100) != 0 || eta(1, 0, 100) != -1 || eta(1, 10, 0) != -1 {
		t.Error("eta edge cases")
	}
	p := NewProgress([]*Chunk{{Estimate: 100, Done: true}, {Estimate: 300}, {Estimate: 300}})
	p.rows.Add(150)
	p.ChunkDone()
	r := p.Report(p.start.Add(3 * time.Second))
	if r.Estimate != 600 || r.ChunksDone != 2 || r.ChunksTotal != 3 || r.RowsPerSec != 50 || r.ETA != 9*time.Second {
		t.Errorf("report %+v", r)
	}
}

func TestRowBufKeepsNulls(t *testing.T) {
	var r rowBuf
	src := [][]byte{[]byte("a"), nil, {}, []byte("bcd")}
	r.set(src)
	src[0][0] = 'z' // the copy must not alias the source
	if string(r.vals[0]) != "a" || r.vals[1] != nil || r.vals[2] == nil || len(r.vals[2]) != 0 || string(r.vals[3]) != "bcd" {
		t.Fatalf("copy %q", r.vals)
	}
	r.set([][]byte{nil})
	if len(r.vals) != 1 || r.vals[0] != nil {
		t.Fatalf("reuse %q", r.vals)
	}
}

func TestLimiter(t *testing.T) {
	if newLimiter(0) != nil {
		t.Fatal("no limit configured, yet a limiter")
	}
	l := newLimiter(1000)
	begin := time.Now()
	for i := 0; i < 300; i++ {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(begin); took < 150*time.Millisecond || took > 5*time.Second {
		t.Fatalf("300 rows at 1000/s (burst 100) took %s", took)
	}
	// A token bucket, not an average since the start: time spent idle does not buy a burst.
	slow := newLimiter(100)
	time.Sleep(500 * time.Millisecond)
	begin = time.Now()
	for i := 0; i < 40; i++ {
		if err := slow.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(begin); took < 250*time.Millisecond {
		t.Fatalf("40 rows at 100/s after an idle half second took %s: the idle time was spent as a burst", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newLimiter(1).Wait(ctx); err == nil {
		t.Fatal("a cancelled wait must return an error")
	}
}

func TestLiteralsAndLSN(t *testing.T) {
	if got := QuoteLiteral("00000003-0000001B-1'"); got != `'00000003-0000001B-1'''` {
		t.Errorf("QuoteLiteral = %s", got)
	}
}
