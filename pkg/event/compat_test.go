package event

import (
	"strings"
	"testing"
)

// Behaviours found in the live comparison with Debezium 3.6.1 (connector/compat_test.go).

func TestNullBecomesDefault(t *testing.T) {
	// JsonConverter's replace.null.with.default: a NULL in a column with a default reads as it.
	col := Column{TypeName: "int4", TypeMod: -1, Optional: true, HasDefault: true, Default: []byte("42")}
	got, err := encodeOne(t, Options{}, col, Datum{Kind: DatumNull})
	if err != nil || got != "42" {
		t.Fatalf("got %s, %v; want 42", got, err)
	}
	// an unparsable default is left out (Debezium logs a warning): NULL stays null
	col.Default = []byte("items_seq_seq")
	got, err = encodeOne(t, Options{}, col, Datum{Kind: DatumNull})
	if err != nil || got != "null" {
		t.Fatalf("got %s, %v; want null", got, err)
	}
}

func TestArrayDates(t *testing.T) {
	got, err := encodeOne(t, Options{}, Column{TypeName: "_date", TypeMod: -1, Optional: true},
		txt("{infinity,-infinity,1970-01-02,\"4713-01-01 BC\",NULL}"))
	if want := "[-622191234,-625821272,1,1001860,null]"; err != nil || got != want {
		t.Fatalf("got %s, %v; want %s", got, err, want)
	}
}

func TestAppendKeyHeader(t *testing.T) {
	tbl := Table{Schema: "public", Name: "t", Key: []int{0, 1, 2}, Columns: []Column{
		{Name: "id", TypeName: "int4", TypeMod: -1},
		{Name: "s", TypeName: "text", TypeMod: -1},
		{Name: "n", TypeName: "numeric", TypeMod: (10<<16 | 2) + 4},
	}}
	e, err := NewEncoder(DefaultOptions("p", "db", "v"), tbl)
	if err != nil {
		t.Fatal(err)
	}
	h, ok, err := e.AppendKeyHeader(nil, []Datum{txt("3"), txt("a\"b\\c\n"), txt("1.5")})
	if want := "{\"id\":3,\"s\":\"a\\\"b\\\\c\n\",\"n\":1.50}"; err != nil || !ok || string(h) != want {
		t.Fatalf("got %s, %v, %v; want %s", h, ok, err, want)
	}
	k, _, _ := e.AppendKey(nil, []Datum{txt("3"), txt("x"), txt("1.5")})
	if !strings.HasPrefix(string(k), `{"schema":`) {
		t.Fatalf("key %s", k)
	}
}
