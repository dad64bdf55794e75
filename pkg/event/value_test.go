package event

import (
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"
)

// encodeOne encodes a single nullable column value and returns the JSON of
// "after.c".
func encodeOne(t *testing.T, opts Options, col Column, d Datum) (string, error) {
	t.Helper()
	col.Name = "c"
	e, err := NewEncoder(opts, Table{Schema: "public", Name: "t", Columns: []Column{col}})
	if err != nil {
		return "", err
	}
	out, err := e.AppendValue(nil, OpCreate, nil, []Datum{d}, Source{CommitTime: time.Unix(0, 0)}, nil, time.Unix(0, 0))
	if err != nil {
		return "", err
	}
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	s := string(out)
	i := strings.Index(s, `"after":{"c":`)
	j := strings.Index(s, `},"source":`)
	if i < 0 || j < 0 {
		t.Fatalf("unexpected output %s", s)
	}
	return s[i+len(`"after":{"c":`) : j], nil
}

func txt(s string) Datum { return Datum{Kind: DatumText, Text: []byte(s)} }

func numTypmod(p, s int) int32 { return int32((p<<16)|s) + 4 }

// epochDays computes days since 1970-01-01 with the time package (proleptic
// Gregorian like java.time), independently of the package's own calendar code.
func epochDays(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

func i64(v int64) string { return big.NewInt(v).String() }

func TestScalarValues(t *testing.T) {
	noSchema := Options{TopicPrefix: "p"}
	mode := func(f func(*Options)) Options { o := noSchema; f(&o); return o }
	tsMicros := func(tm time.Time) string { return i64(tm.UnixMicro()) }
	cases := []struct {
		name string
		opts Options
		typ  string
		mod  int32
		in   string
		want string
	}{
		{"bool t", noSchema, "bool", -1, "t", "true"},
		{"bool f", noSchema, "bool", -1, "f", "false"},
		{"int2 min", noSchema, "int2", -1, "-32768", "-32768"},
		{"int4 max", noSchema, "int4", -1, "2147483647", "2147483647"},
		{"int8 min", noSchema, "int8", -1, "-9223372036854775808", "-9223372036854775808"},
		{"oid", noSchema, "oid", -1, "4294967295", "4294967295"},
		// Java Double.toString / Float.toString
		{"float8 plain", noSchema, "float8", -1, "1.5", "1.5"},
		{"float8 int", noSchema, "float8", -1, "3", "3.0"},
		{"float8 big", noSchema, "float8", -1, "1e+20", "1.0E20"},
		{"float8 1e7", noSchema, "float8", -1, "10000000", "1.0E7"},
		{"float8 below 1e7", noSchema, "float8", -1, "9999999.5", "9999999.5"},
		{"float8 small", noSchema, "float8", -1, "0.0001", "1.0E-4"},
		{"float8 1e-3", noSchema, "float8", -1, "0.001", "0.001"},
		{"float8 neg zero", noSchema, "float8", -1, "-0", "-0.0"},
		{"float8 max", noSchema, "float8", -1, "1.7976931348623157e+308", "1.7976931348623157E308"},
		{"float8 NaN", noSchema, "float8", -1, "NaN", `"NaN"`},
		{"float8 +Inf", noSchema, "float8", -1, "Infinity", `"Infinity"`},
		{"float8 -Inf", noSchema, "float8", -1, "-Infinity", `"-Infinity"`},
		{"float8 0.1", noSchema, "float8", -1, "0.1", "0.1"},
		{"float4 pi", noSchema, "float4", -1, "3.14", "3.14"},
		{"float4 extra digits", noSchema, "float4", -1, "0.100000001", "0.1"},
		{"float4 NaN", noSchema, "float4", -1, "NaN", `"NaN"`},
		// numeric(p,s): base64 of BigInteger.toByteArray() of the unscaled value
		{"numeric 12.50", noSchema, "numeric", numTypmod(10, 2), "12.50", `"BOI="`},         // 1250 = 0x04E2
		{"numeric rescale", noSchema, "numeric", numTypmod(5, 2), "1.5", `"AJY="`},          // 150 = 0x0096
		{"numeric zero", noSchema, "numeric", numTypmod(5, 2), "0.00", `"AA=="`},            // 0
		{"numeric -1.00", noSchema, "numeric", numTypmod(5, 2), "-1.00", `"nA=="`},          // -100 = 0x9C
		{"numeric 128", noSchema, "numeric", numTypmod(3, 0), "128", `"AIA="`},              // 0x0080
		{"numeric -128", noSchema, "numeric", numTypmod(3, 0), "-128", `"gA=="`},            // 0x80
		{"numeric -129", noSchema, "numeric", numTypmod(3, 0), "-129", `"/38="`},            // 0xFF7F
		{"numeric NaN precise", noSchema, "numeric", numTypmod(5, 2), "NaN", `null`},        // not representable
		{"varnumeric", noSchema, "numeric", -1, "1.2300", `{"scale":2,"value":"ew=="}`},     // 123
		{"varnumeric int", noSchema, "numeric", -1, "100", `{"scale":0,"value":"ZA=="}`},    // 100
		{"varnumeric zero", noSchema, "numeric", -1, "0.000", `{"scale":0,"value":"AA=="}`}, // BigDecimal.ZERO
		{"varnumeric neg", noSchema, "numeric", -1, "-0.5", `{"scale":1,"value":"+w=="}`},   // -5 = 0xFB
		{"numeric double", mode(func(o *Options) { o.DecimalHandling = "double" }), "numeric", numTypmod(10, 2), "12.50", "12.5"},
		{"numeric double NaN", mode(func(o *Options) { o.DecimalHandling = "double" }), "numeric", -1, "NaN", `"NaN"`},
		{"numeric string", mode(func(o *Options) { o.DecimalHandling = "string" }), "numeric", numTypmod(10, 2), "12.50", `"12.50"`},
		{"numeric string var", mode(func(o *Options) { o.DecimalHandling = "string" }), "numeric", -1, "1.2300", `"1.2300"`},
		{"numeric string NaN", mode(func(o *Options) { o.DecimalHandling = "string" }), "numeric", -1, "NaN", `"NAN"`},
		{"money", noSchema, "money", -1, "$1,234.56", `"AeJA"`}, // 123456 = 0x01E240
		{"money neg", noSchema, "money", -1, "-$1.00", `"nA=="`},
		{"money double", mode(func(o *Options) { o.DecimalHandling = "double" }), "money", -1, "$1,234.56", "1234.56"},
		// strings
		{"text escapes", noSchema, "text", -1, "a\x01\"\\/é\n\t\x7f", `"a\u0001\"\\/é\n\t` + "\x7f" + `"`},
		{"text ctrl", noSchema, "text", -1, "\x1f\b\f\r", `"\u001F\b\f\r"`},
		{"varchar", noSchema, "varchar", 14, "hello", `"hello"`},
		{"uuid", noSchema, "uuid", -1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"jsonb", noSchema, "jsonb", -1, `{"a": [1, "x"]}`, `"{\"a\": [1, \"x\"]}"`},
		{"xml", noSchema, "xml", -1, `<a>b</a>`, `"<a>b</a>"`},
		{"inet", noSchema, "inet", -1, `10.0.0.1/8`, `"10.0.0.1/8"`},
		// bytea: JsonConverter writes bytes as base64
		{"bytea", noSchema, "bytea", -1, `\x0a0b`, `"Cgs="`},
		{"bytea empty", noSchema, "bytea", -1, `\x`, `""`},
		{"bytea escape fmt", noSchema, "bytea", -1, `a\\\001`, `"YVwB"`},
		{"bytea hex mode", mode(func(o *Options) { o.BinaryHandling = "hex" }), "bytea", -1, `\x0aFF`, `"0aff"`},
		{"bytea base64 mode", mode(func(o *Options) { o.BinaryHandling = "base64" }), "bytea", -1, `\x0a0b`, `"Cgs="`},
		{"bytea urlsafe mode", mode(func(o *Options) { o.BinaryHandling = "base64-url-safe" }), "bytea", -1, `\xfbff`, `"-_8="`},
		// dates: days since epoch
		{"date", noSchema, "date", -1, "2024-01-02", i64(epochDays(2024, 1, 2))},
		{"date epoch", noSchema, "date", -1, "1970-01-01", "0"},
		{"date pre-epoch", noSchema, "date", -1, "1969-12-31", "-1"},
		{"date BC", noSchema, "date", -1, "0044-03-15 BC", i64(epochDays(-43, 3, 15))},
		{"date infinity", noSchema, "date", -1, "infinity", i64(epochDays(-5877611, 6, 21))},
		{"date -infinity", noSchema, "date", -1, "-infinity", i64(epochDays(-5877611, 6, 22))},
		// time: adaptive => Time (ms, p<=3) or MicroTime (µs)
		{"time micro", noSchema, "time", -1, "04:05:06.789", "14706789000"},
		{"time(3) millis", noSchema, "time", 3, "04:05:06.789", "14706789"},
		{"time 24:00", noSchema, "time", -1, "24:00:00", "86400000000"},
		{"time connect", mode(func(o *Options) { o.TimePrecision = "connect" }), "time", -1, "04:05:06.789", "14706789"},
		{"time(0) adaptive_time_microseconds", mode(func(o *Options) { o.TimePrecision = "adaptive_time_microseconds" }), "time", 0, "00:00:01", "1000000"},
		// timestamp: Timestamp (ms, p<=3) or MicroTimestamp
		{"timestamp micro", noSchema, "timestamp", -1, "2024-01-02 03:04:05.123456", tsMicros(time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC))},
		{"timestamp(3)", noSchema, "timestamp", 3, "2024-01-02 03:04:05.123", i64(time.Date(2024, 1, 2, 3, 4, 5, 123000000, time.UTC).UnixMilli())},
		{"timestamp pre-epoch ms", noSchema, "timestamp", 3, "1969-12-31 23:59:59.999", "-1"},
		{"timestamp BC", noSchema, "timestamp", -1, "0044-03-15 12:00:00 BC", tsMicros(time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC))},
		{"timestamp infinity", noSchema, "timestamp", -1, "infinity", "9223372036825200000"},
		{"timestamp -infinity", noSchema, "timestamp", -1, "-infinity", "-9223372036832400000"},
		{"timestamp(3) infinity", noSchema, "timestamp", 3, "infinity", "9223372036825200"},
		// timestamptz: ZonedTimestamp, UTC, fraction width = precision (6 by default)
		{"timestamptz", noSchema, "timestamptz", -1, "2024-01-02 03:04:05.123456+00", `"2024-01-02T03:04:05.123456Z"`},
		{"timestamptz pad", noSchema, "timestamptz", -1, "2024-01-02 03:04:05.1+00", `"2024-01-02T03:04:05.100000Z"`},
		{"timestamptz no frac", noSchema, "timestamptz", -1, "2024-01-02 03:04:05+00", `"2024-01-02T03:04:05.000000Z"`},
		{"timestamptz offset", noSchema, "timestamptz", -1, "2024-01-02 03:04:05+05:30", `"2024-01-01T21:34:05.000000Z"`},
		{"timestamptz offset secs", noSchema, "timestamptz", -1, "1900-01-01 00:00:00+00:53:28", `"1899-12-31T23:06:32.000000Z"`},
		{"timestamptz(0)", noSchema, "timestamptz", 0, "2024-01-02 03:04:05+00", `"2024-01-02T03:04:05Z"`},
		{"timestamptz(3)", noSchema, "timestamptz", 3, "2024-01-02 03:04:05.5-01", `"2024-01-02T04:04:05.500Z"`},
		{"timestamptz BC", noSchema, "timestamptz", 0, "0044-03-15 12:00:00+00 BC", `"-0043-03-15T12:00:00Z"`},
		{"timestamptz far", noSchema, "timestamptz", 0, "12345-01-01 00:00:00+00", `"+12345-01-01T00:00:00Z"`},
		{"timestamptz infinity", noSchema, "timestamptz", -1, "infinity", `"infinity"`},
		{"timestamptz -infinity", noSchema, "timestamptz", -1, "-infinity", `"-infinity"`},
		// timetz: ZonedTime, shifted to UTC, ISO_OFFSET_TIME
		{"timetz", noSchema, "timetz", -1, "10:15:30.5+05:30", `"04:45:30.5Z"`},
		{"timetz zero frac", noSchema, "timetz", -1, "10:15:30+00", `"10:15:30Z"`},
		{"timetz wrap", noSchema, "timetz", -1, "01:00:00+02", `"23:00:00Z"`},
		// interval: MicroDuration with 365.25/12-day months, or ISO string
		{"interval day hour", noSchema, "interval", -1, "1 day 01:00:00", "90000000000"},
		{"interval mon", noSchema, "interval", -1, "1 mon", "2629800000000"},
		{"interval year", noSchema, "interval", -1, "1 year", "31557600000000"},
		{"interval neg", noSchema, "interval", -1, "-00:00:01.5", "-1500000"},
		{"interval zero", noSchema, "interval", -1, "00:00:00", "0"},
		{"interval string", mode(func(o *Options) { o.IntervalHandling = "string" }), "interval", -1, "1 year 2 mons 3 days 04:05:06.789", `"P1Y2M3DT4H5M6.789S"`},
		{"interval string zero", mode(func(o *Options) { o.IntervalHandling = "string" }), "interval", -1, "00:00:00", `"P0Y0M0DT0H0M0S"`},
		{"interval string neg", mode(func(o *Options) { o.IntervalHandling = "string" }), "interval", -1, "-1 days -00:00:01.5", `"P0Y0M-1DT0H0M-1.5S"`},
		// bit(1); bit(n): BitSet.toByteArray (little-endian, minimal)
		{"bit(1)", noSchema, "bit", 1, "1", "true"},
		{"bit(8)", noSchema, "bit", 8, "10101010", `"qg=="`},
		{"bit(8) zero", noSchema, "bit", 8, "00000000", `""`},
		{"varbit(16)", noSchema, "varbit", 16, "1011", `"Cw=="`},
		{"bit(12)", noSchema, "bit", 12, "100000000001", `"AQg="`},
		// hstore: json text in Java HashMap order (bucket = spread hash & 15)
		{"hstore json", noSchema, "hstore", -1, `"a"=>"1", "b c"=>"d e", "n"=>NULL`, `"{\"a\":\"1\",\"b c\":\"d e\",\"n\":null}"`},
		{"hstore map", mode(func(o *Options) { o.HstoreHandling = "map" }), "hstore", -1, `"k"=>"v"`, `{"k":"v"}`},
		{"hstore empty", noSchema, "hstore", -1, ``, `"{}"`},
		// Java prints at least two digits (JDK 19+ Double/Float.toString)
		{"float8 min", noSchema, "float8", -1, "5e-324", "4.9E-324"},
		{"float4 min", noSchema, "float4", -1, "1e-45", "1.4E-45"},
		{"float8 1e20", noSchema, "float8", -1, "1e+20", "1.0E20"},
		// extremes: microseconds since 1970 overflow as in Java (saturating toMicros, then wrapping)
		{"timestamp max", noSchema, "timestamp", -1, "294276-12-31 23:59:59.999999", "-9223372036853775810"},
		{"timestamptz max", noSchema, "timestamptz", -1, "294276-12-31 23:59:59.999999+00", `"+294276-12-31T23:59:59.999999Z"`},
		{"money min", noSchema, "money", -1, "-$92,233,720,368,547,758.08", `"gAAAAAAAAAA="`},
		// arrays
		{"int4[]", noSchema, "_int4", -1, "{1,NULL,3}", "[1,null,3]"},
		{"int4[] empty", noSchema, "_int4", -1, "{}", "[]"},
		{"int4[] bounds", noSchema, "_int4", -1, "[0:1]={5,6}", "[5,6]"},
		{"text[] quoted", noSchema, "_text", -1, `{"a b","c\"d",NULL,"NULL",x,"\\"}`, `["a b","c\"d",null,"NULL","x","\\"]`},
		{"numeric[]", noSchema, "_numeric", numTypmod(5, 2), "{1.50,NULL}", `["AJY=",null]`},
		{"date[]", noSchema, "_date", -1, "{1970-01-02}", "[1]"},
		{"timestamptz[]", noSchema, "_timestamptz", -1, `{"2024-01-02 03:04:05+00"}`, `["2024-01-02T03:04:05.000000Z"]`},
		{"bool[]", noSchema, "_bool", -1, "{t,f}", "[true,false]"},
		{"float8[]", noSchema, "_float8", -1, "{1,NaN}", `[1.0,"NaN"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeOne(t, tc.opts, Column{TypeName: tc.typ, TypeMod: tc.mod, Optional: true}, txt(tc.in))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %s want %s", got, tc.want)
			}
		})
	}
}

func TestNull(t *testing.T) {
	for _, typ := range []string{"int4", "text", "numeric", "timestamptz", "_int4", "bytea"} {
		got, err := encodeOne(t, Options{}, Column{TypeName: typ, TypeMod: -1, Optional: true}, Datum{Kind: DatumNull})
		if err != nil || got != "null" {
			t.Errorf("%s: got %q, %v", typ, got, err)
		}
	}
}

// A NULL (absent value) in a NOT NULL column (e.g. non-key columns of a
// REPLICA IDENTITY DEFAULT delete) gets the type's fallback, as Debezium's
// JdbcValueConverters.convertValue does.
func TestNotNullFallback(t *testing.T) {
	cases := map[string]string{
		"int4": "0", "int8": "0", "text": `""`, "bool": "false", "float8": "0.0",
		"numeric": `{"scale":0,"value":"AA=="}`, "date": "0", "timestamptz": `"1970-01-01T00:00:00Z"`,
		"bytea": `""`, "_text": "[]", "uuid": `""`,
	}
	for typ, want := range cases {
		got, err := encodeOne(t, Options{}, Column{TypeName: typ, TypeMod: -1}, Datum{Kind: DatumNull})
		if err != nil || got != want {
			t.Errorf("%s: got %q want %q (%v)", typ, got, want, err)
		}
	}
}

func TestLargeNumeric(t *testing.T) {
	digits := strings.Repeat("9876543211", 100) // 1000 digits
	for _, neg := range []bool{false, true} {
		in := digits[:990] + "." + digits[990:]
		n, _ := new(big.Int).SetString(digits, 10)
		if neg {
			in = "-" + in
			n.Neg(n)
		}
		// independent two's complement: n mod 2^(8*len) with len = bitLength/8+1
		var bl int
		if n.Sign() >= 0 {
			bl = n.BitLen()
		} else {
			bl = new(big.Int).Not(n).BitLen()
		}
		size := bl/8 + 1
		mod := new(big.Int).Lsh(big.NewInt(1), uint(8*size))
		v := new(big.Int).Mod(n, mod).FillBytes(make([]byte, size))
		want := `{"scale":10,"value":"` + base64.StdEncoding.EncodeToString(v) + `"}`
		got, err := encodeOne(t, Options{}, Column{TypeName: "numeric", TypeMod: -1, Optional: true}, txt(in))
		if err != nil || got != want {
			t.Errorf("neg=%v: got %.80s... want %.80s... (%v)", neg, got, want, err)
		}
	}
}

func TestToastPlaceholder(t *testing.T) {
	ph := Datum{Kind: DatumUnchanged}
	cases := []struct {
		typ, want string
	}{
		{"text", `"__debezium_unavailable_value"`},
		{"jsonb", `"__debezium_unavailable_value"`},
		{"bytea", `"` + base64.StdEncoding.EncodeToString([]byte(DefaultUnavailableValue)) + `"`},
		{"_text", `["__debezium_unavailable_value"]`},
	}
	for _, tc := range cases {
		got, err := encodeOne(t, Options{}, Column{TypeName: tc.typ, TypeMod: -1, Optional: true}, ph)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %s want %s (%v)", tc.typ, got, tc.want, err)
		}
	}
	got, err := encodeOne(t, Options{UnavailableValue: "X"}, Column{TypeName: "_int4", TypeMod: -1, Optional: true}, ph)
	if err != nil || got != "[88]" {
		t.Errorf("_int4: got %s (%v)", got, err)
	}
	// Where Debezium's placeholder does not fit the column's schema, it writes null (observed with
	// Debezium 3.6.1); so does pgcdc.
	for _, c := range []struct {
		opts Options
		typ  string
		want string
	}{
		{Options{}, "int4", "null"},
		{Options{}, "_int2", "null"},
		{Options{}, "_numeric", "null"},
		{Options{}, "varbit", "null"},
		{Options{}, "geometry", "null"},
		{Options{BinaryHandling: "base64"}, "bytea", "null"},
		{Options{BinaryHandling: "base64-url-safe"}, "bytea", "null"},
		{Options{BinaryHandling: "hex"}, "bytea", `"__debezium_unavailable_value"`},
		{Options{BinaryHandling: "hex"}, "_bytea", "null"},
		{Options{}, "_bytea", `["X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="]`},
		{Options{TimePrecision: "isostring"}, "_date", "null"},
		{Options{TimePrecision: "connect"}, "_date", "null"},
		{Options{UnavailableValue: "X"}, "_date", "[88]"},
		{Options{UnavailableValue: "X"}, "_int8", "[88]"},
		{Options{}, "_uuid", `["b68a35a7-17ad-35b3-af2a-ae46edb4545a"]`},
		{Options{}, "hstore", `"{\"__debezium_unavailable_value\":\"__debezium_unavailable_value\"}"`},
		{Options{HstoreHandling: "map"}, "hstore", `{"__debezium_unavailable_value":"__debezium_unavailable_value"}`},
		{Options{}, "tsvector", `"__debezium_unavailable_value"`},
		{Options{DecimalHandling: "string"}, "numeric", `"__debezium_unavailable_value"`},
		{Options{}, "numeric", "null"},
	} {
		got, err := encodeOne(t, c.opts, Column{TypeName: c.typ, TypeMod: -1, Optional: true}, ph)
		if err != nil || got != c.want {
			t.Errorf("%s %+v: got %s want %s (%v)", c.typ, c.opts, got, c.want, err)
		}
	}
}

func TestInvalidValueError(t *testing.T) {
	e, err := NewEncoder(Options{}, Table{Schema: "public", Name: "orders", Columns: []Column{
		{Name: "price", TypeName: "numeric", TypeMod: numTypmod(10, 2), Optional: true}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.AppendValue(nil, OpCreate, nil, []Datum{txt("abc")}, Source{}, nil, time.Unix(0, 0))
	if err == nil || !strings.HasPrefix(err.Error(), `public.orders column "price" (numeric): invalid value "abc": `) {
		t.Fatalf("got %v", err)
	}
	long := strings.Repeat("x", 200)
	_, err = e.AppendValue(nil, OpCreate, nil, []Datum{txt(long)}, Source{}, nil, time.Unix(0, 0))
	if err == nil || strings.Contains(err.Error(), long) || !strings.Contains(err.Error(), `..."`[3:]) {
		t.Fatalf("not truncated: %v", err)
	}
	for _, c := range []struct{ typ, in string }{
		{"int2", "32768"}, {"int4", "1.5"}, {"bool", "x"}, {"date", "2024-13-01"}, {"timestamptz", "2024-01-01 00:00:00"},
		{"_int4", "{{1,2},{3,4}"}, {"_int4", "{1,x}"}, {"numeric", "1.2.3"}, {"bytea", `\x0`}, {"interval", "3 fortnights"},
	} {
		if _, err := encodeOne(t, Options{}, Column{TypeName: c.typ, TypeMod: -1, Optional: true}, txt(c.in)); err == nil {
			t.Errorf("%s %q: want error", c.typ, c.in)
		}
	}
}

func TestUnknownType(t *testing.T) {
	tbl := Table{Schema: "public", Name: "shapes", Columns: []Column{{Name: "p", TypeName: "box", TypeOID: 603, TypeMod: -1, Optional: true}}}
	_, err := NewEncoder(Options{}, tbl)
	want := `public.shapes column "p": type "box" (oid 603) has no Debezium mapping: set events.unknown_types: text`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v want prefix %s", err, want)
	}
	for _, typ := range []string{"_money", "_interval", "_xml", "_name", "_varbit", "_point", "_bit", "circle", "int4multirange", "pg_lsn", "regclass"} {
		if _, err := NewEncoder(Options{}, Table{Schema: "s", Name: "t", Columns: []Column{{Name: "c", TypeName: typ, TypeMod: -1}}}); err == nil {
			t.Errorf("%s: want unsupported", typ)
		}
	}
	got, err := encodeOne(t, Options{UnknownTypesAsText: true}, Column{TypeName: "box", TypeMod: -1, Optional: true}, txt("(3,4),(1,2)"))
	if err != nil || got != `"(3,4),(1,2)"` {
		t.Fatalf("as text: %s %v", got, err)
	}
}
