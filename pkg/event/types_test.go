package event

import (
	"strings"
	"testing"
	"time"
)

// Values of the types and modes added for Debezium 3.6.1's full mapping. The expected values
// are Debezium's own, as recorded from live runs (connector/testdata/compat).
func TestTypeValues(t *testing.T) {
	o := func(f func(*Options)) Options {
		var opts Options
		if f != nil {
			f(&opts)
		}
		return opts
	}
	iso := o(func(o *Options) { o.TimePrecision = "isostring" })
	nanos := o(func(o *Options) { o.TimePrecision = "nanoseconds" })
	micros := o(func(o *Options) { o.TimePrecision = "microseconds" })
	connect := o(func(o *Options) { o.TimePrecision = "connect" })
	snap := o(func(o *Options) { o.Snapshot = true })
	snapISO := o(func(o *Options) { o.Snapshot, o.TimePrecision = true, "isostring" })
	cases := []struct {
		name string
		opts Options
		typ  string
		mod  int32
		in   string
		want string
	}{
		{"point", Options{}, "point", -1, "(1.5,-2.25)", `{"x":1.5,"y":-2.25,"wkb":"AQEAAAAAAAAAAAD4PwAAAAAAAALA","srid":null}`},
		{"point NaN is Java's canonical NaN", Options{}, "point", -1, "(NaN,Infinity)", `{"x":"NaN","y":"Infinity","wkb":"AQEAAAAAAAAAAAD4fwAAAAAAAPB/","srid":null}`},
		{"point exponent", Options{}, "point", -1, "(1e+300,-1e-300)", `{"x":1.0E300,"y":-1.0E-300,"wkb":"AQEAAACcdQCIPOQ3flnz+MIfbqWB","srid":null}`},
		{"geometry with srid", Options{}, "geometry", -1, "0101000020E6100000000000000000F03F0000000000000040", `{"wkb":"AQEAACDmEAAAAAAAAAAA8D8AAAAAAAAAQA==","srid":4326}`},
		{"geometry without srid", Options{}, "geometry", -1, "0101000000000000000000F03F0000000000000040", `{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":null}`},
		{"geometry array (':' delimited)", Options{}, "_geometry", -1, "{0101000000000000000000F03F0000000000000040:NULL}", `[{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":null},null]`},
		{"tsvector", Options{}, "tsvector", -1, "'a' 'cat':1,3A", `"'a' 'cat':1,3A"`},
		{"ltree", Options{}, "ltree", -1, "Top.Science", `"Top.Science"`},
		{"oid", Options{}, "oid", -1, "4294967295", `4294967295`},
		{"varbit unbounded", Options{}, "varbit", -1, "101", `"BQ=="`},
		{"vector", Options{}, "vector", -1, "[1,2.5,-3]", `[1.0,2.5,-3.0]`},
		{"vector extremes", Options{}, "vector", -1, "[1e-45,3.4028235e38,1.7976931348623157e308]", `[1.0E-45,3.4028235E38,1.7976931348623157E308]`},
		{"halfvec", Options{}, "halfvec", -1, "[65504,0.0001]", `[65504.0,1.0E-4]`},
		{"sparsevec in HashMap order", Options{}, "sparsevec", -1, "{1:1.5,3:-2,5:4}/5", `{"dimensions":5,"vector":[[1,1.5],[5,4.0],[3,-2.0]]}`},
		{"sparsevec resized HashMap", Options{}, "sparsevec", -1, "{1:1,2:2,3:3,4:4,5:5,6:6,7:7,8:8,9:9,10:10,11:11,12:12,13:13,17:17,33:33,100:1e10}/1000",
			`{"dimensions":1000,"vector":[[1,1.0],[33,33.0],[2,2.0],[3,3.0],[4,4.0],[100,1.0E10],[5,5.0],[6,6.0],[7,7.0],[8,8.0],[9,9.0],[10,10.0],[11,11.0],[12,12.0],[13,13.0],[17,17.0]]}`},
		{"sparsevec empty", Options{}, "sparsevec", -1, "{}/3", `{"dimensions":3,"vector":[]}`},
		{"multi-dimensional array, flat", Options{}, "_int4", -1, "{{1,2},{3,4}}", `[1,2,3,4]`},
		{"multi-dimensional text array", Options{}, "_text", -1, `{{a,b},{"c d",NULL}}`, `["a","b","c d",null]`},
		{"array with bounds", Options{}, "_int4", -1, "[0:1]={5,6}", `[5,6]`},
		{"hstore array", Options{}, "_hstore", -1, `{"\"k\"=>\"v\"","\"a\"=>NULL"}`, `["{\"k\":\"v\"}","{\"a\":null}"]`},
		{"time array: milliseconds, 24:00 is midnight", Options{}, "_time", -1, "{00:00:00,12:34:56.789123,24:00:00,NULL}", `[0,45296789000,0,null]`},
		{"time(3) array", Options{}, "_time", 3, "{12:34:56.789}", `[45296789]`},
		{"time array isostring", iso, "_time", -1, "{12:34:56.789123,24:00:00}", `["12:34:56.789Z","00:00:00Z"]`},
		{"time array nanoseconds", nanos, "_time", -1, "{12:34:56.789123}", `[45296789000000]`},
		{"timetz array: whole seconds", Options{}, "_timetz", -1, "{12:34:56.789+02,00:00:00-14:59}", `["10:34:56Z","14:59:00Z"]`},
		{"timestamptz array -infinity", Options{}, "_timestamptz", 3, "{infinity,-infinity}", `["infinity","+292269055-12-02T23:00:00.000Z"]`},
		{"date isostring", iso, "date", -1, "2024-05-06", `"2024-05-06Z"`},
		{"date isostring BC", iso, "date", -1, "0044-03-15 BC", `"-0043-03-15Z"`},
		{"date isostring infinity", iso, "date", -1, "infinity", `"-5877611-06-21Z"`},
		{"date snapshot infinity (JDBC)", snap, "date", -1, "infinity", `-622191234`},
		{"date snapshot BC loses its era (JDBC)", snap, "date", -1, "0044-03-15 BC", `-703383`},
		{"date snapshot isostring", snapISO, "date", -1, "infinity", `"+292278994-08-16Z"`},
		{"date array isostring", iso, "_date", -1, "{2024-01-01,-infinity}", `["2024-01-01Z","+292269055-12-02Z"]`},
		{"time isostring", iso, "time", -1, "07:08:09.123456", `"07:08:09.123456Z"`},
		{"time isostring 24:00", iso, "time", -1, "24:00:00", `"00:00:00Z"`},
		{"time nanoseconds", nanos, "time", -1, "07:08:09.123456", `25689123456000`},
		{"time microseconds, time(0)", micros, "time", 0, "23:59:59", `86399000000`},
		{"time connect 24:00", connect, "time", -1, "24:00:00", `86400000`},
		{"timestamp isostring", iso, "timestamp", -1, "2024-05-06 07:08:09.123456", `"2024-05-06T07:08:09.123456Z"`},
		{"timestamp isostring infinity", iso, "timestamp", -1, "infinity", `"+294247-01-10T04:00:25.2Z"`},
		{"timestamp isostring -infinity", iso, "timestamp", -1, "-infinity", `"-290308-12-21T19:59:27.6Z"`},
		{"timestamp isostring BC", iso, "timestamp", -1, "0044-03-15 12:00:00 BC", `"-0043-03-15T12:00:00Z"`},
		{"timestamp nanoseconds", nanos, "timestamp", -1, "2024-05-06 07:08:09.123456", `1714979289123456000`},
		{"timestamp nanoseconds infinity", nanos, "timestamp", -1, "infinity", `9223372036854775807`},
		{"timestamp nanoseconds out of range", nanos, "timestamp", -1, "0001-01-01 00:00:00", `null`},
		{"timestamp microseconds, timestamp(3)", micros, "timestamp", 3, "2024-05-06 07:08:09.123", `1714979289123000`},
		{"timestamptz array: calendar fields (era dropped, cutover gap)", Options{}, "_timestamptz", 3, `{"1582-10-10 12:00:00+00","0044-03-15 12:00:00+00 BC"}`,
			`["1582-10-20T12:00:00.000Z","0044-03-15T12:00:00.000Z"]`},
		{"date array: cutover gap", iso, "_date", -1, `{1582-10-10,1582-10-04,"0044-03-15 BC"}`, `["1582-10-20Z","1582-10-04Z","0044-03-15Z"]`},
		{"date snapshot: cutover gap", snap, "date", -1, "1582-10-10", `-141422`},
		{"timestamp(3) array", Options{}, "_timestamp", 3, `{"2024-05-06 07:08:09.123"}`, `[1714979289123]`},
		{"timestamp array: Julian dates before 1582-10-15", iso, "_timestamp", -1, `{"0044-03-15 12:00:00 BC","1582-10-10 12:00:00","1582-10-15 00:00:00",infinity}`,
			`["-0043-03-13T12:00:00Z","1582-10-20T12:00:00Z","1582-10-15T00:00:00Z","+294247-01-10T04:00:25.2Z"]`},
	}
	for _, c := range cases {
		got, err := encodeOne(t, c.opts, Column{TypeName: c.typ, TypeMod: c.mod, Optional: true}, txt(c.in))
		if err != nil || got != c.want {
			t.Errorf("%s: %s %q: got %s (%v), want %s", c.name, c.typ, c.in, got, err, c.want)
		}
	}
}

func TestTypeSchemas(t *testing.T) {
	cases := []struct {
		opts Options
		typ  string
		mod  int32
		want string // the column's schema JSON, without "field"
	}{
		{Options{}, "point", -1, `{"type":"struct","fields":[{"type":"double","optional":false,"field":"x"},{"type":"double","optional":false,"field":"y"},{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Point","version":1,"doc":"Geometry (POINT)"}`},
		{Options{}, "geography", -1, `{"type":"struct","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Geography","version":1,"doc":"Geography"}`},
		{Options{}, "varbit", -1, `{"type":"bytes","optional":true,"name":"io.debezium.data.Bits","version":1,"parameters":{"length":"2147483647"}}`},
		{Options{}, "_tsvector", -1, `{"type":"array","items":{"type":"string","optional":false,"name":"io.debezium.data.Tsvector","version":1},"optional":true}`},
		{Options{}, "_ltree", -1, `{"type":"array","items":{"type":"string","optional":true,"name":"io.debezium.data.Ltree","version":1},"optional":true}`},
		{Options{}, "vector", -1, `{"type":"array","items":{"type":"double","optional":false},"optional":true,"name":"io.debezium.data.DoubleVector","version":1}`},
		{Options{}, "sparsevec", -1, `{"type":"struct","fields":[{"type":"int16","optional":false,"field":"dimensions"},{"type":"map","keys":{"type":"int16","optional":false},"values":{"type":"double","optional":false},"optional":false,"field":"vector"}],"optional":true,"name":"io.debezium.data.SparseDoubleVector","version":1,"doc":"Sparse double vector"}`},
		{Options{TimePrecision: "isostring"}, "timestamp", -1, `{"type":"string","optional":true,"name":"io.debezium.time.IsoTimestamp","version":1}`},
		{Options{TimePrecision: "nanoseconds"}, "time", -1, `{"type":"int64","optional":true,"name":"io.debezium.time.NanoTime","version":1}`},
		{Options{TimePrecision: "microseconds"}, "timestamp", 0, `{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1}`},
		{Options{TimePrecision: "adaptive"}, "time", 9, `{"type":"int64","optional":true,"name":"io.debezium.time.NanoTime","version":1}`},
	}
	for _, c := range cases {
		e, err := NewEncoder(c.opts, Table{Schema: "s", Name: "t", Columns: []Column{{Name: "c", TypeName: c.typ, TypeMod: c.mod, Optional: true}}})
		if err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		got := string(appendSchemaJSON(nil, e.cols[0].schema, ""))
		if got != c.want {
			t.Errorf("%s %+v:\n got %s\nwant %s", c.typ, c.opts, got, c.want)
		}
	}
}

func TestNameAdjustment(t *testing.T) {
	cases := []struct {
		mode  string
		field bool
		in    string
		want  string
	}{
		{AdjustNone, false, "p.public.Line Items.Key", "p.public.Line Items.Key"},
		{AdjustAvro, false, "p.public.Line_Items.Key", "p.public.Line_Items.Key"},
		{AdjustAvro, false, "1p.pub-lic.naïve", "_1p.pub_lic.na_ve"},
		{AdjustAvroUnicode, false, "t_x.public.a", "t_u005fx.public.a"},
		{AdjustAvroUnicode, false, "Ā.é🎉", "_u100._u00e9_ud83c_udf89"},
		{AdjustAvro, true, "a.b", "a_b"},
		{AdjustAvro, true, "1st", "_1st"},
		{AdjustAvro, true, "Item Id", "Item_Id"},
		{AdjustAvro, true, "_under", "_under"},
		{AdjustAvroUnicode, true, "_under", "_u005funder"},
		{AdjustAvroUnicode, true, "1st", "_u0031st"},
		{AdjustAvroUnicode, true, "a.b", "a_u002eb"},
		{AdjustAvroUnicode, true, "naïve", "na_u00efve"},
	}
	for _, c := range cases {
		a, err := newNameAdjuster(c.mode, c.field)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.adjust(c.in); got != c.want {
			t.Errorf("%s field=%v %q: got %q want %q", c.mode, c.field, c.in, got, c.want)
		}
	}
	if _, err := newNameAdjuster("avro2", false); err == nil {
		t.Error("unknown mode accepted")
	}
}

// Schema names come from the sanitized topic, then schema.name.adjustment.mode; field names go
// through field.name.adjustment.mode (keys and values alike).
func TestSchemaAndFieldNames(t *testing.T) {
	tbl := Table{Schema: "public", Name: "Line Items", Key: []int{0}, Columns: []Column{
		{Name: "Item Id", TypeName: "int4", TypeMod: -1}, {Name: "a.b", TypeName: "text", TypeMod: -1, Optional: true}}}
	opts := DefaultOptions("p_x", "db", "v")
	opts.SchemaNameAdjustment, opts.FieldNameAdjustment = AdjustAvroUnicode, AdjustAvro
	e, err := NewEncoder(opts, tbl)
	if err != nil {
		t.Fatal(err)
	}
	row := []Datum{txt("1"), txt("x")}
	key, _, _ := e.AppendKey(nil, row)
	val, _ := e.AppendValue(nil, OpCreate, nil, row, Source{}, nil, time.Unix(0, 0))
	for _, want := range []string{`"name":"p_u005fx.public.Line_u005fItems.Key"`, `"field":"Item_Id"`, `"payload":{"Item_Id":1}`} {
		if !strings.Contains(string(key), want) {
			t.Errorf("key lacks %s: %s", want, key)
		}
	}
	for _, want := range []string{`"name":"p_u005fx.public.Line_u005fItems.Value"`, `"name":"p_u005fx.public.Line_u005fItems.Envelope"`, `"field":"a_b"`, `"after":{"Item_Id":1,"a_b":"x"}`} {
		if !strings.Contains(string(val), want) {
			t.Errorf("value lacks %s", want)
		}
	}
	if e.Topic() != "p_x.public.Line_Items" {
		t.Errorf("topic %s", e.Topic())
	}
	h, _, _ := e.AppendKeyHeader(nil, row)
	if string(h) != `{"Item_Id":1}` {
		t.Errorf("key header %s", h)
	}
}

func TestTopicLength(t *testing.T) {
	long := strings.Repeat("a", 300)
	if got := SanitizeTopic(long); len(got) != 249 {
		t.Errorf("length %d, want Kafka's 249", len(got))
	}
	if SanitizeTopic(".") != "_" || SanitizeTopic("..") != "__" {
		t.Error(`"." and ".." are not valid topic names`)
	}
}

// The END event lists its tables in Debezium's java.util.HashMap order (this transaction's END
// as Debezium 3.6.1 wrote it, connector/testdata/compat/defaults/transaction.jsonl).
func TestTransactionEndOrder(t *testing.T) {
	counts := []CollectionCount{{"public.uidx", 1}, {"public.items", 1}, {"public.fullrow", 1}, {"public.nokey", 1}}
	hashMapOrder(counts)
	var got []string
	for _, c := range counts {
		got = append(got, c.Collection)
	}
	if want := "public.uidx public.items public.nokey public.fullrow"; strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}

func TestMessageContentModes(t *testing.T) {
	for mode, want := range map[string]string{
		"":                `"content":"AP8="}`,
		"base64":          `"content":"AP8="}`,
		"base64-url-safe": `"content":"AP8="}`,
		"hex":             `"content":"00ff"}`,
	} {
		opts := DefaultOptions("p", "db", "v")
		opts.BinaryHandling = mode
		m, err := NewMetaEncoder(opts)
		if err != nil {
			t.Fatal(err)
		}
		v := string(m.AppendMessageValue(nil, "app", []byte{0, 0xff}, Source{}, time.Unix(0, 0)))
		if !strings.Contains(v, want) {
			t.Errorf("%q: %s lacks %s", mode, v, want)
		}
		schema := `{"type":"bytes","optional":true,"field":"content"}`
		if mode != "" {
			schema = `{"type":"string","optional":true,"field":"content"}`
		}
		if !strings.Contains(v, schema) {
			t.Errorf("%q: content schema is not %s", mode, schema)
		}
	}
}
