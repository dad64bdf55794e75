package payload

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

const rowSchema = `{"type":"struct","fields":[
 {"type":"int32","optional":false,"field":"id"},
 {"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"field":"price"},
 {"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"ts"},
 {"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"d"},
 {"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"doc"},
 {"type":"bytes","optional":true,"field":"bin"},
 {"type":"array","optional":true,"items":{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"0"}},"field":"nums"},
 {"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"tstz"},
 {"type":"string","optional":true,"field":"note"}
],"optional":true,"name":"app.public.orders.Value","field":"%s"}`

var envelopeSchema = `{"type":"struct","fields":[` + strings.Replace(rowSchema, "%s", "before", 1) + `,` +
	strings.Replace(rowSchema, "%s", "after", 1) + `,{"type":"struct","fields":[],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"string","optional":false,"field":"op"}],"optional":false,"name":"app.public.orders.Envelope"}`

const afterRow = `{"id":7,"price":"BM4=","ts":1714564800123456,"d":19844,"doc":"{\"a\": [1, 2]}","bin":"AQL/","nums":["+w==",null],"tstz":"2024-05-01T12:00:00.5Z","note":"x\"y"}`
const beforeRow = `{"id":7,"price":null,"ts":null,"d":null,"doc":null,"bin":null,"nums":null,"tstz":null,"note":"old"}`
const source = `{"version":"0.1","connector":"postgresql","name":"app","ts_ms":1714564800123,"ts_us":1714564800123456,"snapshot":"false","db":"shop","sequence":"[null,\"123456\"]","schema":"public","table":"orders","txId":99,"lsn":123456,"xmin":null}`

func changeValue(op, before, after string, schemas bool) []byte {
	payload := `{"before":` + before + `,"after":` + after + `,"source":` + source + `,"transaction":null,"op":"` + op + `","ts_ms":1714564801000}`
	if !schemas {
		return []byte(payload)
	}
	return []byte(`{"schema":` + envelopeSchema + `,"payload":` + payload + `}`)
}

func record(value []byte, headers ...kafka.Header) kafka.Message {
	return kafka.Message{Topic: "app.public.orders", Partition: 1, Offset: 42, Key: []byte(`{"id":7}`), Value: value,
		Headers: headers, Time: time.Unix(1714564802, 0)}
}

var pos3 = kafka.Header{Key: HeaderPosition, Value: []byte("3")}

func TestParse(t *testing.T) {
	for _, schemas := range []bool{false, true} {
		e := Parse(record(changeValue("u", beforeRow, afterRow, schemas), pos3))
		if !e.Change || e.Op != 'u' || e.Table() != "public.orders" || !e.Source.HasLSN || e.Source.LSN != 123456 ||
			e.Source.Name != "app" || e.Source.TxID != 99 || !e.HasPosition || e.Position != 3 {
			t.Fatalf("schemas=%v: %+v", schemas, e)
		}
		if string(e.After) != afterRow || string(e.Before) != beforeRow {
			t.Fatalf("rows: %s / %s", e.Before, e.After)
		}
		if (e.valueSchema != nil) != schemas {
			t.Fatalf("schema presence %v", e.valueSchema != nil)
		}
		if got := e.CommitTime(); !got.Equal(time.UnixMicro(1714564800123456)) {
			t.Fatalf("commit time %s", got)
		}
	}
	for _, v := range []string{`{"id":"order-1","type":"OrderCreated"}`, `not json`, `[1,2]`, `{"payload":{"x":1},"schema":{}}`} {
		if e := Parse(record([]byte(v))); e.Change {
			t.Errorf("%s parsed as a change event", v)
		}
	}
}

func TestIDs(t *testing.T) {
	// Expected values from Python's uuid.uuid5 with the namespace in id.go.
	if got := uuid5([16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}, "x"); got != "4cd605e7-afa2-5360-b5b9-c5e9fb5c76f4" {
		t.Fatalf("uuid5 = %s", got)
	}
	e := Parse(record(changeValue("c", "null", afterRow, false), pos3))
	e.Source.LSN = 123456
	if got := e.ID("id"); got != "6511a176-88d7-504c-b8f1-bad8061bc3aa" {
		t.Fatalf("change event id %s", got)
	}
	// The same event published twice (a pgcdc restart) lands at another offset: same id.
	again := record(changeValue("c", "null", afterRow, false), pos3)
	again.Offset = 99
	if Parse(again).ID("id") != e.ID("id") {
		t.Fatal("re-published event got another id")
	}
	outbox := Parse(record([]byte(`{"x":1}`), kafka.Header{Key: "id", Value: []byte("evt-17")}))
	if outbox.ID("id") != "evt-17" || !isUUID(outbox.UUID("id")) {
		t.Fatalf("outbox id %s / %s", outbox.ID("id"), outbox.UUID("id"))
	}
	plain := Parse(kafka.Message{Topic: "t", Partition: 1, Offset: 42, Value: []byte("x")})
	if plain.ID("id") != "6647e08c-1a3b-5c5c-8d17-6fecd6b00ffc" {
		t.Fatalf("coordinates id %s", plain.ID("id"))
	}
	// A dead-letter copy keeps its original's id.
	dlq := Parse(kafka.Message{Topic: "dlq", Partition: 0, Offset: 5, Value: []byte("x")})
	dlq.OriginTopic, dlq.OriginPartition, dlq.OriginOffset = "t", 1, 42
	if dlq.ID("") != plain.ID("") {
		t.Fatal("dead-letter copy changed the id")
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, b)
	}
	return m
}

func TestDebeziumAndRaw(t *testing.T) {
	bd := NewBuilder()
	v := changeValue("c", "null", afterRow, true)
	p, err := bd.Prepare(Debezium, Parse(record(v)), Options{})
	if err != nil || string(p.Body(1, 3)) != string(v) || p.ContentType() != "application/json" {
		t.Fatalf("debezium: %v %s", err, p.Body(1, 3))
	}
	p, err = bd.Prepare(Raw, Parse(record([]byte(`{"orderId":1}`))), Options{})
	if err != nil || string(p.Body(1, 1)) != `{"orderId":1}` || p.ContentType() != "application/json" {
		t.Fatalf("raw: %v", err)
	}
	p, _ = bd.Prepare(Raw, Parse(record([]byte{0xff, 0x00})), Options{})
	if p.ContentType() != "application/octet-stream" {
		t.Fatalf("raw binary content type %s", p.ContentType())
	}
	var skip *Skip
	if _, err := bd.Prepare(Raw, Parse(record(nil)), Options{}); !errors.As(err, &skip) || skip.Reason != SkipTombstone {
		t.Fatalf("tombstone: %v", err)
	}
	if _, err := bd.Prepare(Debezium, Parse(record([]byte(`{"x":1}`))), Options{}); !errors.As(err, &skip) || skip.Reason != SkipNotChange {
		t.Fatalf("not a change: %v", err)
	}
}

func TestFlat(t *testing.T) {
	bd := NewBuilder()
	for _, tc := range []struct {
		op, before, after string
		want              string
	}{
		{"c", "null", `{"id":1,"name":"a"}`, `{"id":1,"name":"a","__op":"c","__schema":"public","__table":"orders","__lsn":123456,"__source_ts_ms":1714564800123,"__deleted":"false"}`},
		{"u", "null", `{"id":1,"name":"b"}`, `{"id":1,"name":"b","__op":"u","__schema":"public","__table":"orders","__lsn":123456,"__source_ts_ms":1714564800123,"__deleted":"false"}`},
		{"d", `{"id":1,"name":null}`, "null", `{"id":1,"name":null,"__op":"d","__schema":"public","__table":"orders","__lsn":123456,"__source_ts_ms":1714564800123,"__deleted":"true"}`},
		{"t", "null", "null", `{"__op":"t","__schema":"public","__table":"orders","__lsn":123456,"__source_ts_ms":1714564800123,"__deleted":"false"}`},
	} {
		for _, schemas := range []bool{false, true} {
			p, err := bd.Prepare(Flat, Parse(record(changeValue(tc.op, tc.before, tc.after, schemas))), Options{})
			if err != nil {
				t.Fatalf("%s: %v", tc.op, err)
			}
			if got := string(p.Body(1, 1)); got != tc.want {
				t.Errorf("%s (schemas %v):\n got %s\nwant %s", tc.op, schemas, got, tc.want)
			}
		}
	}
}

func TestHasura(t *testing.T) {
	bd := NewBuilder()
	o := Options{TriggerName: "orders_trigger", IDHeader: "id"}
	p, err := bd.Prepare(Hasura, Parse(record(changeValue("u", beforeRow, afterRow, true), pos3)), o)
	if err != nil {
		t.Fatal(err)
	}
	first, third := decode(t, p.Body(1, 5)), decode(t, p.Body(3, 5))
	if di := third["delivery_info"].(map[string]any); di["current_retry"] != json.Number("2") || di["max_retries"] != json.Number("4") {
		t.Fatalf("delivery_info %v", di)
	}
	if di := first["delivery_info"].(map[string]any); di["current_retry"] != json.Number("0") {
		t.Fatalf("delivery_info %v", di)
	}
	want := map[string]any{
		"event": map[string]any{
			"session_variables": nil,
			"op":                "UPDATE",
			"data": map[string]any{
				"old": map[string]any{"id": json.Number("7"), "price": nil, "ts": nil, "d": nil, "doc": nil, "bin": nil, "nums": nil, "tstz": nil, "note": "old"},
				"new": map[string]any{
					"id":    json.Number("7"),
					"price": json.Number("12.30"),
					"ts":    "2024-05-01T12:00:00.123456",
					"d":     "2024-05-01",
					"doc":   map[string]any{"a": []any{json.Number("1"), json.Number("2")}},
					"bin":   `\x0102ff`,
					"nums":  []any{json.Number("-5"), nil},
					"tstz":  "2024-05-01T12:00:00.5Z",
					"note":  `x"y`,
				},
			},
		},
		"created_at":    "2024-05-01T12:00:00.123456",
		"id":            "6511a176-88d7-504c-b8f1-bad8061bc3aa",
		"delivery_info": map[string]any{"max_retries": json.Number("4"), "current_retry": json.Number("0")},
		"trigger":       map[string]any{"name": "orders_trigger"},
		"table":         map[string]any{"schema": "public", "name": "orders"},
	}
	if !reflect.DeepEqual(first, want) {
		gb, _ := json.MarshalIndent(first, "", " ")
		t.Fatalf("hasura body:\n%s", gb)
	}
	// Ops: insert, delete, snapshot read; truncate is not expressible.
	for op, want := range map[string][2]bool{"c": {false, true}, "d": {true, false}, "r": {false, true}} {
		before, after := "null", afterRow
		if op == "d" {
			before, after = beforeRow, "null"
		}
		p, err := bd.Prepare(Hasura, Parse(record(changeValue(op, before, after, true))), o)
		if err != nil {
			t.Fatal(err)
		}
		data := decode(t, p.Body(1, 1))["event"].(map[string]any)["data"].(map[string]any)
		if (data["old"] != nil) != want[0] || (data["new"] != nil) != want[1] {
			t.Errorf("op %s: data %v", op, data)
		}
	}
	var skip *Skip
	if _, err := bd.Prepare(Hasura, Parse(record(changeValue("t", "null", "null", true))), o); !errors.As(err, &skip) || skip.Reason != SkipOp {
		t.Fatalf("truncate: %v", err)
	}
	// Without schemas the values stay as Debezium wrote them.
	p, err = bd.Prepare(Hasura, Parse(record(changeValue("c", "null", afterRow, false))), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, p.Body(1, 1))["event"].(map[string]any)["data"].(map[string]any)["new"].(map[string]any)["price"]; got != "BM4=" {
		t.Fatalf("price without schema: %v", got)
	}
	// A value that cannot be converted is an error naming the column.
	bad := strings.Replace(afterRow, `"price":"BM4="`, `"price":"***"`, 1)
	if _, err := bd.Prepare(Hasura, Parse(record(changeValue("c", "null", bad, true))), o); err == nil || !strings.Contains(err.Error(), "column price") {
		t.Fatalf("bad decimal: %v", err)
	}
}
