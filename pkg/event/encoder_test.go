package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func ordersTable() Table {
	return Table{Schema: "public", Name: "orders", Columns: []Column{
		{Name: "id", TypeName: "int4", TypeMod: -1},
		{Name: "note", TypeName: "text", TypeMod: -1, Optional: true},
	}, Key: []int{0}}
}

var (
	commit = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	procTm = time.Date(2024, 1, 2, 3, 4, 6, 0, time.UTC)
	row1   = []Datum{txt("1"), txt("hi")}
	src1   = Source{CommitTime: commit, TxID: 746, LSN: 27113520, LastCommitLSN: 27113000}
)

// Expected bytes follow JsonConverter's schema layout and Debezium's envelope
// (see schema.go for the sources).
const wantKeySchema = `{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"pgcdc.public.orders.Key"},"payload":{"id":1}}`

const wantRowSchema = `{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"note"}],"optional":true,"name":"pgcdc.public.orders.Value"`

const wantValueSchema = `{"type":"struct","fields":[` +
	`{"type":"struct","fields":[` + wantRowSchema + `,"field":"before"},` +
	`{"type":"struct","fields":[` + wantRowSchema + `,"field":"after"},` +
	`{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"},{"type":"string","optional":true,"field":"origin"},{"type":"int64","optional":true,"field":"origin_lsn"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,"field":"source"},` +
	`{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"},` +
	`{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}` +
	`],"optional":false,"name":"pgcdc.public.orders.Envelope","version":2}`

const wantPayloadCreate = `{"before":null,"after":{"id":1,"note":"hi"},"source":{"version":"0.1.0","connector":"postgresql","name":"pgcdc","ts_ms":1704164645123,"snapshot":"false","db":"shop","sequence":"[\"27113000\",\"27113520\"]","ts_us":1704164645123456,"ts_ns":1704164645123456789,"schema":"public","table":"orders","txId":746,"lsn":27113520,"xmin":null,"origin":null,"origin_lsn":null},"transaction":null,"op":"c","ts_ms":1704164646000,"ts_us":1704164646000000,"ts_ns":1704164646000000000}`

func TestRecordWithSchemas(t *testing.T) {
	e, err := NewEncoder(DefaultOptions("pgcdc", "shop", "0.1.0"), ordersTable())
	if err != nil {
		t.Fatal(err)
	}
	if e.Topic() != "pgcdc.public.orders" {
		t.Errorf("topic %s", e.Topic())
	}
	k, ok, err := e.AppendKey(nil, row1)
	if err != nil || !ok || string(k) != wantKeySchema {
		t.Errorf("key:\n got %s\nwant %s (%v %v)", k, wantKeySchema, ok, err)
	}
	v, err := e.AppendValue([]byte("prefix"), OpCreate, nil, row1, src1, nil, procTm)
	want := "prefix" + `{"schema":` + wantValueSchema + `,"payload":` + wantPayloadCreate + `}`
	if err != nil || string(v) != want {
		t.Errorf("value:\n got %s\nwant %s (%v)", v, want, err)
	}
	if !json.Valid(k) || !json.Valid(v[len("prefix"):]) {
		t.Error("invalid JSON")
	}
}

func TestRecordWithoutSchemas(t *testing.T) {
	o := DefaultOptions("pgcdc", "shop", "0.1.0")
	o.KeySchemas, o.ValueSchemas = false, false
	e, err := NewEncoder(o, ordersTable())
	if err != nil {
		t.Fatal(err)
	}
	k, ok, err := e.AppendKey(nil, row1)
	if err != nil || !ok || string(k) != `{"id":1}` {
		t.Errorf("key %s", k)
	}
	v, err := e.AppendValue(nil, OpCreate, nil, row1, src1, nil, procTm)
	if err != nil || string(v) != wantPayloadCreate {
		t.Errorf("value:\n got %s\nwant %s (%v)", v, wantPayloadCreate, err)
	}
	// delete with key-only before image (REPLICA IDENTITY DEFAULT), snapshot
	// marker, transaction block, null LSNs
	v, err = e.AppendValue(nil, OpDelete, []Datum{txt("1"), {Kind: DatumNull}}, nil,
		Source{CommitTime: commit, Snapshot: "last"}, &Transaction{ID: "746:27113520", TotalOrder: 3, DataCollectionOrder: 2}, procTm)
	want := `{"before":{"id":1,"note":null},"after":null,"source":{"version":"0.1.0","connector":"postgresql","name":"pgcdc","ts_ms":1704164645123,"snapshot":"last","db":"shop","sequence":"[null,null]","ts_us":1704164645123456,"ts_ns":1704164645123456789,"schema":"public","table":"orders","txId":null,"lsn":null,"xmin":null,"origin":null,"origin_lsn":null},"transaction":{"id":"746:27113520","total_order":3,"data_collection_order":2},"op":"d","ts_ms":1704164646000,"ts_us":1704164646000000,"ts_ns":1704164646000000000}`
	if err != nil || string(v) != want {
		t.Errorf("delete:\n got %s\nwant %s (%v)", v, want, err)
	}
	if !json.Valid(v) {
		t.Error("invalid JSON")
	}
}

func TestNoKey(t *testing.T) {
	tbl := ordersTable()
	tbl.Key = nil
	e, err := NewEncoder(DefaultOptions("pgcdc", "shop", "0.1.0"), tbl)
	if err != nil {
		t.Fatal(err)
	}
	dst := []byte("x")
	out, ok, err := e.AppendKey(dst, row1)
	if ok || err != nil || string(out) != "x" {
		t.Errorf("got %q %v %v", out, ok, err)
	}
}

func TestDefaultsAndEnum(t *testing.T) {
	tbl := Table{Schema: "public", Name: "c", Columns: []Column{
		{Name: "id", TypeName: "int4", TypeMod: -1, HasDefault: true}, // nextval(...): fallback 0
		{Name: "status", TypeName: "text", TypeMod: -1, Optional: true, HasDefault: true, Default: []byte("active")},
		{Name: "mood", TypeName: "mood", TypeMod: -1, Optional: true, EnumValues: []string{"sad", "ok", "happy"}},
	}, Key: []int{0}}
	e, err := NewEncoder(DefaultOptions("p", "d", "v"), tbl)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _ := e.AppendKey(nil, []Datum{txt("7"), txt("x"), txt("ok")})
	wantK := `{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"default":0,"field":"id"}],"optional":false,"name":"p.public.c.Key"},"payload":{"id":7}}`
	if string(k) != wantK {
		t.Errorf("key:\n got %s\nwant %s", k, wantK)
	}
	v, err := e.AppendValue(nil, OpRead, nil, []Datum{txt("7"), txt("x"), txt("ok")}, Source{Snapshot: "true"}, nil, procTm)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{
		`{"type":"string","optional":true,"default":"active","field":"status"}`,
		`{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"sad,ok,happy"},"field":"mood"}`,
		`"after":{"id":7,"status":"x","mood":"ok"}`,
	} {
		if !contains(v, frag) {
			t.Errorf("missing %s in %s", frag, v)
		}
	}
	if !json.Valid(v) {
		t.Error("invalid JSON")
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

func TestColumnSchemas(t *testing.T) {
	cases := []struct {
		col  Column
		opts Options
		want string
	}{
		{Column{TypeName: "numeric", TypeMod: numTypmod(10, 2)}, Options{}, `{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"c"}`},
		{Column{TypeName: "numeric", TypeMod: -1, Optional: true}, Options{}, `{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal","field":"c"}`},
		{Column{TypeName: "money", TypeMod: -1}, Options{}, `{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"field":"c"}`},
		{Column{TypeName: "_int4", TypeMod: -1, Optional: true}, Options{}, `{"type":"array","items":{"type":"int32","optional":true},"optional":true,"field":"c"}`},
		{Column{TypeName: "timestamptz", TypeMod: -1}, Options{}, `{"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"c"}`},
		{Column{TypeName: "timestamp", TypeMod: -1}, Options{}, `{"type":"int64","optional":false,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"c"}`},
		{Column{TypeName: "timestamp", TypeMod: 3}, Options{}, `{"type":"int64","optional":false,"name":"io.debezium.time.Timestamp","version":1,"field":"c"}`},
		{Column{TypeName: "time", TypeMod: 0}, Options{}, `{"type":"int32","optional":false,"name":"io.debezium.time.Time","version":1,"field":"c"}`},
		{Column{TypeName: "time", TypeMod: -1}, Options{}, `{"type":"int64","optional":false,"name":"io.debezium.time.MicroTime","version":1,"field":"c"}`},
		{Column{TypeName: "date", TypeMod: -1}, Options{}, `{"type":"int32","optional":false,"name":"io.debezium.time.Date","version":1,"field":"c"}`},
		{Column{TypeName: "interval", TypeMod: -1}, Options{}, `{"type":"int64","optional":false,"name":"io.debezium.time.MicroDuration","version":1,"field":"c"}`},
		{Column{TypeName: "interval", TypeMod: -1}, Options{IntervalHandling: "string"}, `{"type":"string","optional":false,"name":"io.debezium.time.Interval","version":1,"field":"c"}`},
		{Column{TypeName: "uuid", TypeMod: -1}, Options{}, `{"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"c"}`},
		{Column{TypeName: "json", TypeMod: -1}, Options{}, `{"type":"string","optional":false,"name":"io.debezium.data.Json","version":1,"field":"c"}`},
		{Column{TypeName: "bytea", TypeMod: -1}, Options{}, `{"type":"bytes","optional":false,"field":"c"}`},
		{Column{TypeName: "int2", TypeMod: -1}, Options{}, `{"type":"int16","optional":false,"field":"c"}`},
		// JsonConverter names FLOAT32/FLOAT64 "float"/"double" (checked against Debezium 3.6.1)
		{Column{TypeName: "float4", TypeMod: -1}, Options{}, `{"type":"float","optional":false,"field":"c"}`},
		{Column{TypeName: "float8", TypeMod: -1}, Options{}, `{"type":"double","optional":false,"field":"c"}`},
		{Column{TypeName: "bit", TypeMod: 8}, Options{}, `{"type":"bytes","optional":false,"name":"io.debezium.data.Bits","version":1,"parameters":{"length":"8"},"field":"c"}`},
		{Column{TypeName: "hstore", TypeMod: -1}, Options{}, `{"type":"string","optional":false,"name":"io.debezium.data.Json","version":1,"field":"c"}`},
		{Column{TypeName: "hstore", TypeMod: -1}, Options{HstoreHandling: "map"}, `{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":true},"optional":false,"field":"c"}`},
		{Column{TypeName: "date", TypeMod: -1}, Options{TimePrecision: "connect"}, `{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Date","version":1,"field":"c"}`},
	}
	for _, tc := range cases {
		tc.col.Name = "c"
		o := tc.opts
		o.ValueSchemas = true
		e, err := NewEncoder(o, Table{Schema: "s", Name: "t", Columns: []Column{tc.col}})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := e.AppendValue(nil, OpCreate, nil, []Datum{{Kind: DatumNull}}, Source{}, nil, procTm)
		if !contains(v, `{"type":"struct","fields":[`+tc.want+`],"optional":true,"name":".s.t.Value","field":"after"}`) {
			t.Errorf("%s(%d): schema %s not in %s", tc.col.TypeName, tc.col.TypeMod, tc.want, v[:300])
		}
	}
}

func TestSanitizeTopic(t *testing.T) {
	cases := map[string]string{
		"pgcdc.public.orders": "pgcdc.public.orders",
		"a b$c":               "a_b_c",
		"sch.tä":              "sch.t_",
		"x😀y":                 "x__y", // outside the BMP: two UTF-16 chars
		"A-Z_0.9":             "A-Z_0.9",
	}
	for in, want := range cases {
		if got := SanitizeTopic(in); got != want {
			t.Errorf("%q: got %q want %q", in, got, want)
		}
	}
	e, _ := NewEncoder(Options{TopicPrefix: "p"}, Table{Schema: "my schema", Name: "t/1"})
	if e.Topic() != "p.my_schema.t_1" {
		t.Errorf("topic %s", e.Topic())
	}
}

func BenchmarkAppendValue(b *testing.B) {
	tbl := Table{Schema: "public", Name: "orders", Columns: []Column{
		{Name: "id", TypeName: "int8", TypeMod: -1},
		{Name: "customer", TypeName: "text", TypeMod: -1, Optional: true},
		{Name: "price", TypeName: "numeric", TypeMod: numTypmod(10, 2), Optional: true},
		{Name: "qty", TypeName: "int4", TypeMod: -1, Optional: true},
		{Name: "created", TypeName: "timestamptz", TypeMod: -1, Optional: true},
		{Name: "paid", TypeName: "bool", TypeMod: -1, Optional: true},
	}, Key: []int{0}}
	row := []Datum{txt("123456"), txt("Jane \"JD\" Doe"), txt("1234.50"), txt("3"), txt("2024-01-02 03:04:05.123456+00"), txt("t")}
	for _, schemas := range []bool{true, false} {
		name := "schemas"
		if !schemas {
			name = "noschemas"
		}
		b.Run(name, func(b *testing.B) {
			o := DefaultOptions("pgcdc", "shop", "0.1.0")
			o.ValueSchemas, o.KeySchemas = schemas, schemas
			e, err := NewEncoder(o, tbl)
			if err != nil {
				b.Fatal(err)
			}
			var buf []byte
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				buf, err = e.AppendValue(buf[:0], OpCreate, nil, row, src1, nil, procTm)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
