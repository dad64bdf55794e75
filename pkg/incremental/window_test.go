package incremental

import (
	"testing"

	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/snapshot"
)

func txt(s string) event.Datum { return event.Datum{Kind: event.DatumText, Text: []byte(s)} }

// The key of a change's row and of a chunk's row (text values) encode alike; NULL, absent and
// unchanged TOAST values are told apart.
func TestKeyOf(t *testing.T) {
	null := event.Datum{Kind: event.DatumNull}
	cases := []struct {
		name     string
		row      []event.Datum
		vals     [][]byte
		cols     []int
		ok, null bool
	}{
		{"one column", []event.Datum{txt("7"), txt("x")}, [][]byte{[]byte("7"), []byte("x")}, []int{0}, true, false},
		{"composite", []event.Datum{txt("a"), txt("b"), txt("c")}, [][]byte{[]byte("a"), []byte("b"), []byte("c")}, []int{2, 0}, true, false},
		{"null", []event.Datum{null, txt("b")}, [][]byte{nil, []byte("b")}, []int{0, 1}, true, true},
		{"empty text is not null", []event.Datum{txt("")}, [][]byte{{}}, []int{0}, true, false},
	}
	for _, c := range cases {
		k, ok, isNull := keyOf(nil, c.row, c.cols)
		if ok != c.ok || isNull != c.null {
			t.Errorf("%s: ok %v null %v", c.name, ok, isNull)
		}
		if v := keyOfValues(nil, c.vals, c.cols); string(v) != string(k) {
			t.Errorf("%s: change key %q, chunk key %q", c.name, k, v)
		}
	}
	if _, ok, _ := keyOf(nil, []event.Datum{{Kind: event.DatumUnchanged}}, []int{0}); ok {
		t.Error("an unchanged TOAST value gave a key")
	}
	if _, ok, _ := keyOf(nil, []event.Datum{txt("1")}, []int{3}); ok {
		t.Error("a column past the row gave a key")
	}
	// "a" + "bc" and "ab" + "c" differ.
	k1, _, _ := keyOf(nil, []event.Datum{txt("a"), txt("bc")}, []int{0, 1})
	k2, _, _ := keyOf(nil, []event.Datum{txt("ab"), txt("c")}, []int{0, 1})
	if string(k1) == string(k2) {
		t.Error("composite keys collide")
	}
	n1, _, _ := keyOf(nil, []event.Datum{null}, []int{0})
	e1, _, _ := keyOf(nil, []event.Datum{txt("")}, []int{0})
	if string(n1) == string(e1) {
		t.Error("NULL and '' collide")
	}
}

// A snapshot does not see the transactions it lists, nor any from xmax on (modulo 2^32).
func TestParseSnapshot(t *testing.T) {
	inv, err := parseSnapshot("100:105:100,103")
	if err != nil {
		t.Fatal(err)
	}
	for xid, want := range map[uint32]bool{99: false, 100: true, 101: false, 103: true, 104: false, 105: true, 4000000000: false} {
		if got := inv.has(xid); got != want {
			t.Errorf("xid %d: invisible %v, want %v", xid, got, want)
		}
	}
	// An epoch in the 64-bit xids: the low 32 bits count, and wraparound compares circularly.
	inv, err = parseSnapshot("8589934590:8589934593:")
	if err != nil {
		t.Fatal(err)
	}
	for xid, want := range map[uint32]bool{4294967294: false, 0: false, 1: true, 2: true} {
		if got := inv.has(xid); got != want {
			t.Errorf("epoch 2, xid %d: invisible %v, want %v", xid, got, want)
		}
	}
	for _, bad := range []string{"", "1:2", "a:2:", "1:2:x"} {
		if _, err := parseSnapshot(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// The ring answers whether a transaction the chunk's snapshot did not see changed the table
// before the low watermark, and forgets what it overwrote.
func TestRing(t *testing.T) {
	var r ring
	r.push(10, "public.a")
	r.push(11, "public.b")
	mark := r.total
	r.push(12, "public.a") // after the low watermark: the window sees it
	inv := invisible{xmax: 1000, running: map[uint32]bool{10: true, 11: true, 12: true}}
	if xid, ok := r.before(mark, "public.a", inv); !ok || xid != 10 {
		t.Errorf("before: %d %v, want 10 true", xid, ok)
	}
	if _, ok := r.before(mark, "public.c", inv); ok {
		t.Error("another table's transaction counted")
	}
	if _, ok := r.before(mark, "public.a", invisible{xmax: 1000}); ok {
		t.Error("a transaction the snapshot saw counted")
	}
	if xid, ok := r.before(mark, "public.a", invisible{xmax: 10}); !ok || xid != 10 {
		t.Error("a transaction from xmax on did not count")
	}
	for i := 0; i < ringSize; i++ {
		r.push(uint32(20+i), "public.z")
	}
	if _, ok := r.before(mark, "public.a", inv); ok {
		t.Error("an overwritten entry counted")
	}
}

func TestParseWatermark(t *testing.T) {
	for in, want := range map[string][2]string{"open:x-1": {markOpen, "x-1"}, "close:x-2": {markClose, "x-2"}} {
		k, id, ok := parseWatermark([]byte(in))
		if !ok || k != want[0] || id != want[1] {
			t.Errorf("%q: %q %q %v", in, k, id, ok)
		}
	}
	if _, _, ok := parseWatermark([]byte("other")); ok {
		t.Error("a foreign content parsed")
	}
}

// Chunk bounds are compared in SQL as row values, cast to each key column's type; the filter
// is ANDed in; the key's text follows the columns, aliased (a column of the same name would make
// ORDER BY ambiguous).
func TestChunkQuery(t *testing.T) {
	tb := &snapshot.Table{Schema: "s", Name: "t", Columns: []snapshot.Column{{Name: "a"}, {Name: "b"}, {Name: "v"}},
		Key: []string{"a", "b"}, KeyTypes: []string{"integer", "text"}, Filter: "region = 'eu'"}
	sql, args := chunkQuery(tb, []string{"1", "x"}, []string{"9", "z"}, 100)
	want := `SELECT "a", "b", "v", "a"::text AS "__pgcdc_key_0", "b"::text AS "__pgcdc_key_1" FROM ONLY "s"."t" WHERE (region = 'eu') AND ROW("a", "b") > ROW($1::integer, $2::text) AND ROW("a", "b") <= ROW($3::integer, $4::text) ORDER BY "a", "b" LIMIT 100`
	if sql != want {
		t.Errorf("query:\n got %s\nwant %s", sql, want)
	}
	if len(args) != 4 || string(args[0]) != "1" || string(args[3]) != "z" {
		t.Errorf("args %q", args)
	}
	tb.Filter = ""
	sql, args = chunkQuery(tb, nil, []string{"9", "z"}, 5)
	if want := `SELECT "a", "b", "v", "a"::text AS "__pgcdc_key_0", "b"::text AS "__pgcdc_key_1" FROM ONLY "s"."t" WHERE ROW("a", "b") <= ROW($1::integer, $2::text) ORDER BY "a", "b" LIMIT 5`; sql != want || len(args) != 2 {
		t.Errorf("first chunk:\n got %s\nwant %s", sql, want)
	}
}
