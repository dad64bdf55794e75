package event

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// README's type table ("Types") is generated from the encoder itself: TestREADMETypeTable renders
// it from typeDocs through NewEncoder and fails when README differs (rewrite it with
// go test ./pkg/event -run TestREADMETypeTable -update-readme), and TestTypeDocsCoverMapping fails
// when the encoder maps a type the table does not list.

var updateREADME = flag.Bool("update-readme", false, "rewrite README.md's type table from the encoder")

type typeDoc struct {
	pg      string // the type as written in DDL
	name    string // pg_type.typname handed to the encoder ("_x" for arrays)
	mod     int32  // atttypmod
	example string // PostgreSQL text output of a value
	enum    []string
	note    string
}

var typeDocs = []typeDoc{
	{pg: "boolean", name: "bool", mod: -1, example: "t"},
	{pg: "smallint", name: "int2", mod: -1, example: "-32768"},
	{pg: "integer", name: "int4", mod: -1, example: "42"},
	{pg: "bigint", name: "int8", mod: -1, example: "9223372036854775807"},
	{pg: "oid", name: "oid", mod: -1, example: "4294967295"},
	{pg: "real", name: "float4", mod: -1, example: "1.5"},
	{pg: "double precision", name: "float8", mod: -1, example: "NaN"},
	{pg: "numeric(12,3)", name: "numeric", mod: (12<<16 | 3) + 4, example: "1234.5"},
	{pg: "numeric", name: "numeric", mod: -1, example: "3.14159"},
	{pg: "money", name: "money", mod: -1, example: "-$1,234.56"},
	{pg: "text", name: "text", mod: -1, example: "héllo"},
	{pg: "varchar(n)", name: "varchar", mod: 14, example: "x"},
	{pg: "char(n)", name: "bpchar", mod: 9, example: "ab   "},
	{pg: `"char"`, name: "char", mod: -1, example: "x"},
	{pg: "name", name: "name", mod: -1, example: "pg_class", note: "streamed: Debezium writes null (see Differences)"},
	{pg: "citext", name: "citext", mod: -1, example: "AbC"},
	{pg: "inet", name: "inet", mod: -1, example: "192.168.0.1/24"},
	{pg: "cidr", name: "cidr", mod: -1, example: "10.0.0.0/8"},
	{pg: "macaddr", name: "macaddr", mod: -1, example: "08:00:2b:01:02:03"},
	{pg: "macaddr8", name: "macaddr8", mod: -1, example: "08:00:2b:01:02:03:04:05"},
	{pg: "int4range", name: "int4range", mod: -1, example: "[1,10)"},
	{pg: "int8range", name: "int8range", mod: -1, example: "(,6)"},
	{pg: "numrange", name: "numrange", mod: -1, example: "(1.5,2.5]"},
	{pg: "tsrange", name: "tsrange", mod: -1, example: `["2024-01-01 10:00:00","2024-01-02 11:00:00")`},
	{pg: "tstzrange", name: "tstzrange", mod: -1, example: `["2024-01-01 10:00:00+00",)`},
	{pg: "daterange", name: "daterange", mod: -1, example: "[2024-01-01,2024-02-01)"},
	{pg: "uuid", name: "uuid", mod: -1, example: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{pg: "json", name: "json", mod: -1, example: `{"a": 1}`},
	{pg: "jsonb", name: "jsonb", mod: -1, example: `{"a": 1}`},
	{pg: "xml", name: "xml", mod: -1, example: "<a>x</a>"},
	{pg: "bytea", name: "bytea", mod: -1, example: `\xdeadbeef`},
	{pg: "date", name: "date", mod: -1, example: "2024-05-06", note: "snapshot records: as Debezium reads them through JDBC (BC dates lose their era, infinity differs)"},
	{pg: "time", name: "time", mod: -1, example: "07:08:09.123456"},
	{pg: "time(3)", name: "time", mod: 3, example: "07:08:09.123"},
	{pg: "timetz", name: "timetz", mod: -1, example: "07:08:09.5+02"},
	{pg: "timestamp", name: "timestamp", mod: -1, example: "2024-05-06 07:08:09.123456"},
	{pg: "timestamp(3)", name: "timestamp", mod: 3, example: "2024-05-06 07:08:09.123"},
	{pg: "timestamptz", name: "timestamptz", mod: -1, example: "2024-05-06 07:08:09.5+02"},
	{pg: "timestamptz(3)", name: "timestamptz", mod: 3, example: "2024-05-06 07:08:09.1+00"},
	{pg: "interval", name: "interval", mod: -1, example: "1 year 2 mons 3 days 04:05:06.789"},
	{pg: "bit / bit(1), varbit(1)", name: "bit", mod: 1, example: "1"},
	{pg: "bit(n), varbit(n)", name: "bit", mod: 10, example: "1010101010"},
	{pg: "varbit", name: "varbit", mod: -1, example: "101"},
	{pg: "hstore", name: "hstore", mod: -1, example: `"a"=>"1", "n"=>NULL`},
	{pg: "ltree", name: "ltree", mod: -1, example: "Top.Science"},
	{pg: "isbn", name: "isbn", mod: -1, example: "0-393-04002-X"},
	{pg: "tsvector", name: "tsvector", mod: -1, example: "'a' 'cat':1,3A"},
	{pg: "point", name: "point", mod: -1, example: "(1.5,-2.25)"},
	{pg: "geometry (PostGIS)", name: "geometry", mod: -1, example: "0101000020E6100000000000000000F03F0000000000000040"},
	{pg: "geography (PostGIS)", name: "geography", mod: -1, example: "0101000020E6100000000000000000F03F0000000000000040"},
	{pg: "vector (pgvector)", name: "vector", mod: -1, example: "[1,2.5,-3]"},
	{pg: "halfvec (pgvector)", name: "halfvec", mod: -1, example: "[1.5,-0.25]"},
	{pg: "sparsevec (pgvector)", name: "sparsevec", mod: -1, example: "{1:1.5,3:-2,5:4}/5"},
	{pg: "enum", name: "mood", mod: -1, example: "happy", enum: []string{"sad", "ok", "happy"}},
	{pg: "enum[]", name: "_mood", mod: -1, example: "{sad,happy}", enum: []string{"sad", "ok", "happy"}},
	{pg: "int4[] (arrays of the types above Debezium maps in arrays)", name: "_int4", mod: -1, example: "{1,NULL,3}"},
	{pg: "int4[] holding a multi-dimensional value", name: "_int4", mod: -1, example: "{{1,2},{3,4}}", note: "flat, row-major (see Differences)"},
	{pg: "numeric(5,2)[]", name: "_numeric", mod: (5<<16 | 2) + 4, example: "{1.5,NULL}"},
	{pg: "date[]", name: "_date", mod: -1, example: "{2024-01-01,infinity}", note: "as pgjdbc's java.sql.Date: BC dates lose their era, infinity as Debezium writes it"},
	{pg: "time[]", name: "_time", mod: -1, example: "{12:34:56.789123,24:00:00}", note: "as pgjdbc's java.sql.Time: milliseconds, 24:00:00 is 0"},
	{pg: "timetz[]", name: "_timetz", mod: -1, example: "{12:34:56.789+02}", note: "whole seconds"},
	{pg: "timestamp[]", name: "_timestamp", mod: -1, example: `{"2024-05-06 07:08:09.5"}`, note: "as pgjdbc's java.sql.Timestamp: dates before 1582-10-15 read as Julian (also in timestamptz[])"},
	{pg: "timestamptz[]", name: "_timestamptz", mod: -1, example: `{"2024-05-06 07:08:09+00",-infinity}`},
	{pg: "bytea[]", name: "_bytea", mod: -1, example: `{"\\xdead",NULL}`},
	{pg: "hstore[]", name: "_hstore", mod: -1, example: `{"\"k\"=>\"v\""}`},
	{pg: "tsvector[]", name: "_tsvector", mod: -1, example: `{"'a'"}`},
	{pg: "geometry[]", name: "_geometry", mod: -1, example: "{0101000000000000000000F03F0000000000000040}"},
	{pg: "box, circle, line, lseg, path, polygon, *multirange, pg_lsn, tsquery, txid_snapshot, reg*, xid, composite types, arrays of money, name, interval, varbit, xml, point, bit", name: "box", mod: -1, example: "(3,4),(1,2)",
		note: "Debezium drops the column, or with include.unknown.datatypes writes the bytes of pgjdbc's rendering of the value (arrays of money ... bit are dropped even then)"},
}

// The other values of each mode; the first of each list is the default.
var docModes = []struct {
	key    string
	values []string
	set    func(*Options, string)
}{
	{"decimal_handling", []string{"precise", "double", "string"}, func(o *Options, v string) { o.DecimalHandling = v }},
	{"time_precision", []string{"adaptive", "adaptive_time_microseconds", "connect", "isostring", "microseconds", "nanoseconds"}, func(o *Options, v string) { o.TimePrecision = v }},
	{"binary_handling", []string{"bytes", "base64", "base64-url-safe", "hex"}, func(o *Options, v string) { o.BinaryHandling = v }},
	{"interval_handling", []string{"numeric", "string"}, func(o *Options, v string) { o.IntervalHandling = v }},
	{"hstore_handling", []string{"json", "map"}, func(o *Options, v string) { o.HstoreHandling = v }},
	{"unknown_types", []string{"error", "text"}, func(o *Options, v string) { o.UnknownTypesAsText = v == "text" }},
}

// docCell encodes d's example with opts: the schema in short form and the value.
func docCell(d typeDoc, opts Options) (schema, value string) {
	col := Column{Name: "c", TypeName: d.name, TypeMod: d.mod, Optional: true, EnumValues: d.enum}
	e, err := NewEncoder(opts, Table{Schema: "s", Name: "t", Columns: []Column{col}})
	if err != nil {
		return "none", "error naming table, column, type and events.unknown_types"
	}
	v, err := e.cols[0].appendValue(nil, []byte(d.example), &e.s)
	if err != nil {
		return shortSchema(e.cols[0].schema), "error: " + err.Error()
	}
	s := string(v)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return shortSchema(e.cols[0].schema), s
}

// shortSchema writes a Connect schema compactly: type, logical name, parameters, fields.
func shortSchema(s *connectSchema) string {
	var b strings.Builder
	switch s.typ {
	case "array":
		b.WriteString("array<" + shortSchema(s.items) + ">")
	case "map":
		b.WriteString("map<" + shortSchema(s.keys) + ", " + shortSchema(s.values) + ">")
	default:
		b.WriteString(s.typ)
	}
	if s.name != "" {
		b.WriteString(" " + s.name)
	}
	if len(s.params) > 0 {
		var ps []string
		for _, p := range s.params {
			v := p[1]
			if len(v) > 30 {
				v = v[:27] + "..."
			}
			ps = append(ps, strings.TrimPrefix(p[0], "connect.decimal.")+"="+v)
		}
		b.WriteString(" (" + strings.Join(ps, ", ") + ")")
	}
	if s.typ == "struct" {
		var fs []string
		for _, f := range s.fields {
			fs = append(fs, f.name)
		}
		b.WriteString(" {" + strings.Join(fs, ", ") + "}")
	}
	return b.String()
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// renderTypeTable renders README's type table.
func renderTypeTable() string {
	var b strings.Builder
	b.WriteString("| PostgreSQL | schema (Debezium 3.6.1 and pgcdc, default modes) | example value | other modes (pgcdc = Debezium unless noted) |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, d := range typeDocs {
		base := Options{}
		schema, value := docCell(d, base)
		var others []string
		for _, m := range docModes {
			for _, v := range m.values[1:] {
				opts := base
				m.set(&opts, v)
				s, val := docCell(d, opts)
				if s == schema && val == value {
					continue
				}
				cell := "`" + m.key + ": " + v + "`: "
				if s != schema {
					cell += "`" + s + "` "
				}
				cell += "`" + val + "`"
				others = append(others, cell)
			}
		}
		if d.note != "" {
			others = append(others, d.note)
		}
		ex := d.example
		if len(ex) > 40 {
			ex = ex[:37] + "..."
		}
		fmt.Fprintf(&b, "| %s `%s` | `%s` | `%s` | %s |\n", mdEscape(d.pg), mdEscape(ex), mdEscape(schema), mdEscape(value), mdEscape(strings.Join(others, "; ")))
	}
	return b.String()
}

const (
	tableBegin = "<!-- type table: generated by go test ./pkg/event -run TestREADMETypeTable -update-readme -->\n"
	tableEnd   = "<!-- end of type table -->\n"
)

func TestREADMETypeTable(t *testing.T) {
	path := "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, tableBegin)
	j := strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no type table between %q and %q", strings.TrimSpace(tableBegin), strings.TrimSpace(tableEnd))
	}
	want := renderTypeTable()
	got := readme[i+len(tableBegin) : j]
	if got == want {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(path, []byte(readme[:i+len(tableBegin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for k := 0; k < max(len(gl), len(wl)); k++ {
		var g, w string
		if k < len(gl) {
			g = gl[k]
		}
		if k < len(wl) {
			w = wl[k]
		}
		if g != w {
			t.Fatalf("README.md's type table differs from the encoder at line %d:\nREADME: %s\ncode:   %s\n(rewrite it with go test ./pkg/event -run TestREADMETypeTable -update-readme)", k+1, g, w)
		}
	}
}

// Every type name the encoder maps (the cases of scalarCodec, the array element types) has a row
// in the type table.
func TestTypeDocsCoverMapping(t *testing.T) {
	documented := map[string]bool{}
	for _, d := range typeDocs {
		documented[strings.TrimPrefix(d.name, "_")] = true
		for _, w := range strings.FieldsFunc(d.pg, func(r rune) bool { return r == ',' || r == ' ' || r == '/' || r == '(' || r == ')' }) {
			documented[strings.Trim(w, `"`)] = true
		}
	}
	aliases := map[string]string{"varchar": "varchar(n)", "bpchar": "char(n)", "varbit": "varbit"}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "types_map.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mapped []string
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "scalarCodec" {
			return true
		}
		for _, st := range fn.Body.List {
			sw, ok := st.(*ast.SwitchStmt)
			if !ok {
				continue
			}
			for _, c := range sw.Body.List {
				for _, e := range c.(*ast.CaseClause).List {
					if lit, ok := e.(*ast.BasicLit); ok {
						s, _ := strconv.Unquote(lit.Value)
						mapped = append(mapped, s)
					}
				}
			}
		}
		return false
	})
	if len(mapped) < 40 {
		t.Fatalf("found only %d type names in scalarCodec: has its switch moved?", len(mapped))
	}
	for et := range arrayElements {
		mapped = append(mapped, et)
	}
	slices.Sort(mapped)
	for _, name := range slices.Compact(mapped) {
		if !documented[name] && !documented[aliases[name]] {
			t.Errorf("type %q is mapped by the encoder but has no row in README's type table (typeDocs)", name)
		}
	}
}
