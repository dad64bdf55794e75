package outbox

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

var outboxRel = &decode.Relation{ID: 16500, Name: "public.outbox", Key: []int{0}, Table: event.Table{
	Schema: "public", Name: "outbox", Key: []int{0},
	Columns: []event.Column{
		{Name: "id", TypeOID: 2950, TypeName: "uuid", TypeMod: -1},
		{Name: "aggregatetype", TypeOID: 1043, TypeName: "varchar", TypeMod: 259, Optional: true},
		{Name: "aggregateid", TypeOID: 1043, TypeName: "varchar", TypeMod: 259},
		{Name: "type", TypeOID: 1043, TypeName: "varchar", TypeMod: 259},
		{Name: "payload", TypeOID: 3802, TypeName: "jsonb", TypeMod: -1, Optional: true},
		{Name: "seq", TypeOID: 23, TypeName: "int4", TypeMod: -1, Optional: true},
	},
}}

var otherRel = &decode.Relation{ID: 16600, Name: "public.orders", Key: []int{0}, Table: event.Table{
	Schema: "public", Name: "orders", Key: []int{0},
	Columns: []event.Column{{Name: "id", TypeOID: 23, TypeName: "int4", TypeMod: -1}},
}}

func datums(vals ...string) []event.Datum {
	out := make([]event.Datum, len(vals))
	for i, v := range vals {
		if v == "NULL" {
			out[i] = event.Datum{Kind: event.DatumNull}
		} else {
			out[i] = event.Datum{Kind: event.DatumText, Text: []byte(v)}
		}
	}
	return out
}

func options(mod func(*Options)) Options {
	o := Defaults()
	o.Tables = []string{"public.outbox"}
	o.MessagePrefixes = []string{"orders|billing"}
	o.Event = event.Options{TopicPrefix: "app"}
	o.Log = zerolog.Nop()
	if mod != nil {
		mod(&o)
	}
	return o
}

// failedAs reports whether want is set; then err must contain it.
func failedAs(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
	return true
}

func newStep(t *testing.T, mod func(*Options)) *Step {
	t.Helper()
	r, err := New(options(mod))
	if err != nil {
		t.Fatal(err)
	}
	return r.Step()
}

// render is a record as "topic key=... value=... h:k=v ...".
func render(recs []kafkasink.Record) []string {
	var out []string
	for _, r := range recs {
		var b strings.Builder
		b.WriteString(r.Topic)
		b.WriteString(" key=")
		if r.Key == nil {
			b.WriteString("<null>")
		} else {
			b.Write(r.Key)
		}
		b.WriteString(" value=")
		if r.Value == nil {
			b.WriteString("<null>")
		} else {
			b.Write(r.Value)
		}
		for _, h := range r.Headers {
			b.WriteString(" h:" + h.Key + "=")
			if h.Value == nil {
				b.WriteString("<null>")
			} else {
				b.Write(h.Value)
			}
		}
		out = append(out, b.String())
	}
	return out
}

var raw = []kafkasink.Record{{Topic: "app.public.outbox", Key: []byte(`{"id":"x"}`), Value: []byte(`{"op":"c"}`), Table: "public.outbox"}}

func row(payload string) []event.Datum {
	return datums("2f1e5c3a-0000-4000-8000-000000000001", "Order", "o-1", "OrderCreated", payload, "7")
}

func TestTableEvents(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Options)
		kind decode.Kind
		rel  *decode.Relation
		row  []event.Datum
		want []string
	}{
		{name: "defaults: topic from aggregatetype, key aggregateid, value payload, id header", kind: decode.KindInsert, rel: outboxRel, row: row(`{"a": 1}`),
			want: []string{`outbox.event.Order key="o-1" value="{\"a\": 1}" h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "snapshot rows are routed as inserts", kind: decode.KindRead, rel: outboxRel, row: row(`{"a": 1}`),
			want: []string{`outbox.event.Order key="o-1" value="{\"a\": 1}" h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "schemas", mod: func(o *Options) { o.Event.KeySchemas, o.Event.ValueSchemas = true, true }, kind: decode.KindInsert, rel: outboxRel, row: row(`{"a": 1}`),
			want: []string{`outbox.event.Order key={"schema":{"type":"string","optional":false},"payload":"o-1"} value={"schema":{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1},"payload":"{\"a\": 1}"} h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "raw events kept before the event", mod: func(o *Options) { o.RawEvents = true }, kind: decode.KindInsert, rel: outboxRel, row: row(`1`),
			want: []string{`app.public.outbox key={"id":"x"} value={"op":"c"}`, `outbox.event.Order key="o-1" value="1" h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "update: nothing (warn)", kind: decode.KindUpdate, rel: outboxRel, row: row(`{}`)},
		{name: "update with raw events: the raw event only", mod: func(o *Options) { o.RawEvents = true }, kind: decode.KindUpdate, rel: outboxRel, row: row(`{}`),
			want: []string{`app.public.outbox key={"id":"x"} value={"op":"c"}`}},
		{name: "delete: nothing", kind: decode.KindDelete, rel: outboxRel, row: row(`{}`)},
		{name: "another table: untouched", kind: decode.KindInsert, rel: otherRel, row: datums("1"),
			want: []string{`app.public.outbox key={"id":"x"} value={"op":"c"}`}},
		{name: "null payload: the value null (JsonConverter writes null)", kind: decode.KindInsert, rel: outboxRel, row: row("NULL"),
			want: []string{`outbox.event.Order key="o-1" value=null h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "null payload with tombstones: a tombstone keeping key and headers", mod: func(o *Options) { o.TombstoneOnEmptyPayload = true }, kind: decode.KindInsert, rel: outboxRel, row: row("NULL"),
			want: []string{`outbox.event.Order key="o-1" value=<null> h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "additional fields: header with alias, envelope", mod: func(o *Options) {
			o.AdditionalFields = []string{"type:header:eventType", "seq:envelope", "aggregateid:envelope:agg"}
		}, kind: decode.KindInsert, rel: outboxRel, row: row(`{"a": 1}`),
			want: []string{`outbox.event.Order key="o-1" value={"payload":"{\"a\": 1}","seq":7,"agg":"o-1"} h:id=2f1e5c3a-0000-4000-8000-000000000001 h:eventType=OrderCreated`}},
		{name: "envelope schema named after the routing value", mod: func(o *Options) {
			o.AdditionalFields = []string{"seq:envelope"}
			o.Event.ValueSchemas = true
		}, kind: decode.KindInsert, rel: outboxRel, row: row(`{"a": 1}`),
			want: []string{`outbox.event.Order key="o-1" value={"schema":{"type":"struct","fields":[{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"payload"},{"type":"int32","optional":true,"field":"seq"}],"optional":false,"name":"app.public.outbox.Order.Value"},"payload":{"payload":"{\"a\": 1}","seq":7}} h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "missing additional field ignored", mod: func(o *Options) {
			o.AdditionalFields = []string{"nope:header"}
			o.AdditionalMissing = "ignore"
		}, kind: decode.KindInsert, rel: outboxRel, row: row(`2`),
			want: []string{`outbox.event.Order key="o-1" value="2" h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "null header", mod: func(o *Options) { o.AdditionalFields = []string{"seq:header"} }, kind: decode.KindInsert, rel: outboxRel,
			row:  datums("2f1e5c3a-0000-4000-8000-000000000001", "Order", "o-1", "T", "1", "NULL"),
			want: []string{`outbox.event.Order key="o-1" value="1" h:id=2f1e5c3a-0000-4000-8000-000000000001 h:seq=<null>`}},
		{name: "expand: JSON with an inferred schema", mod: func(o *Options) {
			o.ExpandJSONPayload = true
			o.Event.ValueSchemas = true
		}, kind: decode.KindInsert, rel: outboxRel, row: row(`{"n": 1, "l": 12345678901, "d": 1.50, "s": "x", "b": true, "z": null, "e": [], "o": {"k": [1, 2]}}`),
			want: []string{`outbox.event.Order key="o-1" value={"schema":{"type":"struct","fields":[{"type":"int32","optional":true,"field":"n"},{"type":"int64","optional":true,"field":"l"},{"type":"double","optional":true,"field":"d"},{"type":"string","optional":true,"field":"s"},{"type":"boolean","optional":true,"field":"b"},{"type":"struct","fields":[{"type":"array","items":{"type":"int32","optional":true},"optional":true,"field":"k"}],"optional":true,"name":"payload.o","field":"o"}],"optional":true,"name":"payload"},"payload":{"n":1,"l":12345678901,"d":1.5,"s":"x","b":true,"o":{"k":[1,2]}}} h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "expand: nulls kept as optional bytes", mod: func(o *Options) {
			o.ExpandJSONPayload = true
			o.JSONNullFields = "optional_bytes"
		}, kind: decode.KindInsert, rel: outboxRel, row: row(`{"z": null, "a": [null, 1]}`),
			want: []string{`outbox.event.Order key="o-1" value={"z":null,"a":[null,1]} h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "expand: not an object: the string as it is", mod: func(o *Options) { o.ExpandJSONPayload = true }, kind: decode.KindInsert, rel: outboxRel, row: row(`[1, 2]`),
			want: []string{`outbox.event.Order key="o-1" value="[1, 2]" h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "expand: a mixed array: the string as it is", mod: func(o *Options) { o.ExpandJSONPayload = true }, kind: decode.KindInsert, rel: outboxRel, row: row(`{"a": [1, "x"]}`),
			want: []string{`outbox.event.Order key="o-1" value="{\"a\": [1, \"x\"]}" h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "no key", mod: func(o *Options) { o.EventKeyField = "" }, kind: decode.KindInsert, rel: outboxRel, row: row(`1`),
			want: []string{`outbox.event.Order key=<null> value="1" h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "regex and Java replacement", mod: func(o *Options) {
			o.TopicRegex = `(?<kind>[A-Z][a-z]+)`
			o.TopicReplacement = `ev\-${kind}.$1`
		}, kind: decode.KindInsert, rel: outboxRel, row: row(`1`),
			want: []string{`ev-Order.Order key="o-1" value="1" h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "regex not matching: the routing value is the topic", mod: func(o *Options) { o.TopicRegex, o.TopicReplacement = `[a-z]+`, "x" }, kind: decode.KindInsert, rel: outboxRel, row: row(`1`),
			want: []string{`Order key="o-1" value="1" h:id=2f1e5c3a-0000-4000-8000-000000000001`}},
		{name: "invalid event skipped: a topic Kafka refuses", mod: func(o *Options) { o.InvalidEvent = "skip" }, kind: decode.KindInsert, rel: outboxRel,
			row: datums("2f1e5c3a-0000-4000-8000-000000000001", "Order/2", "o-1", "T", "1", "1")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStep(t, c.mod)
			ch := &decode.Change{Kind: c.kind, LSN: 100, Relation: c.rel, After: c.row, Txn: &decode.Txn{Xid: 5}}
			if c.kind == decode.KindDelete {
				ch.After, ch.Before = nil, c.row
			}
			got, err := s.Apply(ch, append([]kafkasink.Record(nil), raw...))
			if err != nil {
				t.Fatal(err)
			}
			if g, w := strings.Join(render(got), "\n"), strings.Join(c.want, "\n"); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func TestTableEventErrors(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Options)
		row  []event.Datum
		want string
	}{
		{"null routing value", nil, datums("2f1e5c3a-0000-4000-8000-000000000001", "NULL", "o-1", "T", "1", "1"), `null "aggregatetype"`},
		{"topic Kafka refuses", nil, datums("2f1e5c3a-0000-4000-8000-000000000001", "a b", "o-1", "T", "1", "1"), "character Kafka does not allow"},
		{"missing payload column", func(o *Options) { o.PayloadField = "body" }, row("1"), `no column "body" (outbox.payload_field)`},
		{"missing key column", func(o *Options) { o.EventKeyField = "agg" }, row("1"), `no column "agg" (outbox.event_key_field)`},
		{"routing column not a string", func(o *Options) { o.RouteByField = "seq" }, row("1"), "not a string column"},
		{"missing additional field", func(o *Options) { o.AdditionalFields = []string{"nope:envelope"} }, row("1"), `no column "nope"`},
		{"update with fatal", func(o *Options) { o.InvalidOp = "fatal" }, nil, "unexpected update"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStep(t, c.mod)
			ch := &decode.Change{Kind: decode.KindInsert, LSN: 100, Relation: outboxRel, After: c.row}
			if c.row == nil {
				ch.Kind, ch.After = decode.KindUpdate, row("1")
			}
			_, err := s.Apply(ch, nil)
			failedAs(t, err, c.want)
		})
	}
}

func TestTruncateDropsOutboxTables(t *testing.T) {
	s := newStep(t, nil)
	recs := []kafkasink.Record{{Topic: "app.public.outbox", Table: "public.outbox"}, {Topic: "app.public.orders", Table: "public.orders"}}
	got, err := s.Apply(&decode.Change{Kind: decode.KindTruncate, Relations: []*decode.Relation{outboxRel, otherRel}}, recs)
	if err != nil || len(got) != 1 || got[0].Table != "public.orders" {
		t.Fatalf("got %v, %v; want the orders truncate only", got, err)
	}
}

func TestMessageEvents(t *testing.T) {
	rawMsg := []kafkasink.Record{{Topic: "app.message", Value: []byte(`{"op":"m"}`)}}
	cases := []struct {
		name          string
		mod           func(*Options)
		prefix        string
		content       string
		nonTx         bool
		want          []string
		wantErr       string
		inputsRawKept bool
	}{
		{name: "routed by prefix", prefix: "orders", content: `{"id": "e-1", "aggregateid": "o-1", "type": "OrderCreated", "payload": {"n": 1, "x": null, "l": [{"a": 1}]}}`,
			want: []string{`outbox.event.orders key="o-1" value={"n":1,"l":[{"a":1}]} h:id=e-1`}},
		{name: "with schemas: the payload struct named payload, the key's schema inferred", prefix: "orders",
			mod:     func(o *Options) { o.Event.KeySchemas, o.Event.ValueSchemas = true, true },
			content: `{"id": 5, "aggregateid": "o-1", "payload": {"n": 1.0}}`,
			want:    []string{`outbox.event.orders key={"schema":{"type":"string","optional":true},"payload":"o-1"} value={"schema":{"type":"struct","fields":[{"type":"double","optional":true,"field":"n"}],"optional":true,"name":"payload"},"payload":{"n":1.0}} h:id=5`}},
		{name: "routed by a content field", prefix: "billing", mod: func(o *Options) { o.MessageRouteByField = "aggregatetype" },
			content: `{"id": "e-2", "aggregatetype": "Invoice", "aggregateid": "i-1", "payload": "text"}`,
			want:    []string{`outbox.event.Invoice key="i-1" value="text" h:id=e-2`}},
		{name: "envelope schema named after the routing value", prefix: "orders", mod: func(o *Options) {
			o.AdditionalFields = []string{"type:envelope"}
			o.Event.ValueSchemas = true
		}, content: `{"id": "e-3", "aggregateid": "o-1", "type": "T", "payload": {"n": 1}}`,
			want: []string{`outbox.event.orders key="o-1" value={"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":true,"field":"n"}],"optional":true,"name":"payload","field":"payload"},{"type":"string","optional":true,"field":"type"}],"optional":false,"name":"orders"},"payload":{"payload":{"n":1},"type":"T"}} h:id=e-3`}},
		{name: "headers of structs and arrays as Values writes them", prefix: "orders", mod: func(o *Options) { o.AdditionalFields = []string{"meta:header", "tags:header"} },
			content: `{"id": "e-4", "aggregateid": "o-1", "meta": {"a": "q\"", "b": 1.5}, "tags": ["x", "y"], "payload": 1}`,
			want:    []string{`outbox.event.orders key="o-1" value=1 h:id=e-4 h:meta={"a":"q\"","b":1.5} h:tags=["x","y"]`}},
		{name: "null payload field kept: tombstone", prefix: "orders", mod: func(o *Options) {
			o.MessageNullFields = true
			o.TombstoneOnEmptyPayload = true
		}, content: `{"id": "e-5", "aggregateid": "o-1", "payload": null}`,
			want: []string{`outbox.event.orders key="o-1" value=<null> h:id=e-5`}},
		{name: "raw message kept", prefix: "orders", mod: func(o *Options) { o.RawEvents = true }, content: `{"id": "e-6", "aggregateid": "o-1", "payload": 2}`,
			want: []string{`app.message key=<null> value={"op":"m"}`, `outbox.event.orders key="o-1" value=2 h:id=e-6`}},
		{name: "another prefix: untouched", prefix: "audit", content: `not json`, want: []string{`app.message key=<null> value={"op":"m"}`}},
		{name: "non-transactional: not routed", prefix: "orders", nonTx: true, content: `{"id": "e-7", "aggregateid": "o-1", "payload": 2}`,
			want: []string{`app.message key=<null> value={"op":"m"}`}},
		{name: "not JSON", prefix: "orders", content: `hello`, wantErr: "content is not JSON"},
		{name: "an array", prefix: "orders", content: `[1]`, wantErr: "not an object"},
		{name: "no id", prefix: "orders", content: `{"aggregateid": "o-1", "payload": 1}`, wantErr: `no field "id"`},
		{name: "null payload left out: no payload field", prefix: "orders", content: `{"id": 1, "aggregateid": "o-1", "payload": null}`, wantErr: `no field "payload"`},
		{name: "no key field", prefix: "orders", content: `{"id": 1, "payload": 1}`, wantErr: `no field "aggregateid"`},
		{name: "integer beyond 64 bits", prefix: "orders", content: `{"id": 1, "aggregateid": "a", "payload": {"n": 123456789012345678901}}`, wantErr: "does not fit in 64 bits"},
		{name: "invalid skipped", prefix: "orders", mod: func(o *Options) { o.InvalidEvent = "skip" }, content: `hello`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStep(t, c.mod)
			ch := &decode.Change{Kind: decode.KindMessage, LSN: 100, Message: decode.Message{Prefix: c.prefix, Content: []byte(c.content), Transactional: !c.nonTx}}
			if !c.nonTx {
				ch.Txn = &decode.Txn{Xid: 5}
			}
			got, err := s.Apply(ch, append([]kafkasink.Record(nil), rawMsg...))
			if failedAs(t, err, c.wantErr) {
				return
			}
			if g, w := strings.Join(render(got), "\n"), strings.Join(c.want, "\n"); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func TestJSONInference(t *testing.T) {
	cases := []struct {
		name, doc      string
		keepNulls      bool
		schema, value  string
		schemaErr, err string
	}{
		{name: "numbers", doc: `{"i": 2147483647, "l": 2147483648, "n": -1, "d": 1e2, "f": 0.000001, "g": 1e7, "h": -0.0}`,
			schema: `{"type":"struct","fields":[{"type":"int32","optional":true,"field":"i"},{"type":"int64","optional":true,"field":"l"},{"type":"int32","optional":true,"field":"n"},{"type":"double","optional":true,"field":"d"},{"type":"double","optional":true,"field":"f"},{"type":"double","optional":true,"field":"g"},{"type":"double","optional":true,"field":"h"}],"optional":true,"name":"payload"}`,
			value:  `{"i":2147483647,"l":2147483648,"n":-1,"d":100.0,"f":1.0E-6,"g":1.0E7,"h":-0.0}`},
		{name: "strings escaped as Jackson does", doc: `{"s": "a\"b\\c\n\u0001é/"}`,
			value: `{"s":"a\"b\\c\n\u0001é/"}`},
		{name: "repeated key: first place, last value", doc: `{"a": 1, "b": 2, "a": 3}`, value: `{"a":3,"b":2}`},
		{name: "objects of one shape: an optional struct", doc: `{"l": [{"a": 1}, {"a": 2}]}`,
			schema: `{"type":"struct","fields":[{"type":"array","items":{"type":"struct","fields":[{"type":"int32","optional":true,"field":"a"}],"optional":true,"name":"payload.l"},"optional":true,"field":"l"}],"optional":true,"name":"payload"}`,
			value:  `{"l":[{"a":1},{"a":2}]}`},
		{name: "objects of two shapes: merged into a required struct", doc: `{"l": [{"a": 1}, {"b": "x"}]}`,
			schema: `{"type":"struct","fields":[{"type":"array","items":{"type":"struct","fields":[{"type":"int32","optional":true,"field":"a"},{"type":"string","optional":true,"field":"b"}],"optional":false,"name":"payload.l"},"optional":true,"field":"l"}],"optional":true,"name":"payload"}`,
			value:  `{"l":[{"a":1,"b":null},{"a":null,"b":"x"}]}`},
		{name: "merged with a null element: required, fails", doc: `{"l": [{"a": 1}, {"b": 2}, null]}`, err: "null for a required struct"},
		{name: "nulls kept: bytes give way to a type", doc: `{"l": [{"a": null}, {"a": 5}]}`, keepNulls: true,
			value: `{"l":[{"a":null},{"a":5}]}`},
		{name: "merged: a field of another type fails", doc: `{"l": [{"a": 1}, {"a": "x"}]}`, err: "does not fit the inferred schema (int32)"},
		{name: "mixed array", doc: `{"a": [1, "x"]}`, schemaErr: "not homogeneous"},
		{name: "mixed numbers", doc: `{"a": [1, 2.5]}`, schemaErr: "not homogeneous (int32 and double numbers)"},
		{name: "only nulls", doc: `{"a": [null]}`, schemaErr: "unrecognized member schema"},
		{name: "arrays of arrays of objects: unnamed structs", doc: `{"a": [[{"b": {"c": 1}}]]}`,
			schema: `{"type":"struct","fields":[{"type":"array","items":{"type":"array","items":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":true,"field":"c"}],"optional":true,"name":"b","field":"b"}],"optional":true},"optional":true},"optional":true,"field":"a"}],"optional":true,"name":"payload"}`},
		{name: "big integer", doc: `{"a": 123456789012345678901}`, err: "does not fit in 64 bits"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := parseJSON([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			in := inferrer{keepNulls: c.keepNulls}
			s, err := in.schema("payload", true, n)
			if failedAs(t, err, c.schemaErr) {
				return
			}
			if c.schema != "" {
				if got := string(event.AppendSchema(nil, s, "")); got != c.schema {
					t.Errorf("schema\n%s\nwant\n%s", got, c.schema)
				}
			}
			v, err := appendValue(nil, n, s, "payload")
			if failedAs(t, err, c.err) {
				return
			}
			if c.value != "" && !bytes.Equal(v, []byte(c.value)) {
				t.Errorf("value\n%s\nwant\n%s", v, c.value)
			}
		})
	}
}

func TestReplacement(t *testing.T) {
	cases := []struct {
		regex, repl, value, want, err string
	}{
		{regex: "(?<routedByValue>.*)", repl: "outbox.event.${routedByValue}", value: "order", want: "outbox.event.order"},
		{regex: "(a)(b)?", repl: "$1-$2-$12", value: "a", want: "a--a2"},
		{regex: "(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)", repl: "$12", value: "abcdefghijkl", want: "l"},
		{regex: "x", repl: `lit\$\\`, value: "x", want: `lit$\`},
		{regex: "x", repl: "y", value: "xx", want: "xx"},
		{regex: "(?<a>x)", repl: "${b}", err: "no group with name {b}"},
		{regex: "x", repl: "$", err: "group index is missing"},
		{regex: "x", repl: `\`, err: "character to be escaped is missing"},
		{regex: "(?=x)", repl: "y", err: "outbox.topic_regex"},
	}
	for _, c := range cases {
		tr, err := newTopicRouter(c.regex, c.repl)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s / %s: error %v, want %q", c.regex, c.repl, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.topic(c.value); got != c.want {
			t.Errorf("%s / %s on %q: %q, want %q", c.regex, c.repl, c.value, got, c.want)
		}
	}
}

func TestOptionErrors(t *testing.T) {
	cases := []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.AdditionalFields = []string{"x:partition"} }, "placement partition is not supported"},
		{func(o *Options) { o.AdditionalFields = []string{"x"} }, "want column:placement"},
		{func(o *Options) { o.AdditionalFields = []string{"x:body"} }, "unknown placement"},
		{func(o *Options) { o.InvalidOp = "explode" }, "outbox.op_invalid_behavior"},
		{func(o *Options) { o.JSONNullFields = "zero" }, "outbox.json_null_fields"},
		{func(o *Options) { o.MessagePrefixes = []string{"("} }, "outbox.messages.prefixes"},
		{func(o *Options) { o.EventIDField = "" }, "outbox.event_id_field: required"},
	}
	for _, c := range cases {
		if _, err := New(options(c.mod)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}
