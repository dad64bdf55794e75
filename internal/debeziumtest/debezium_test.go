package debeziumtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/debeziumtest"
	"github.com/pgcdc/pgcdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestDebeziumRecords runs Debezium against a fresh database, makes inserts, an update, a delete and
// a primary-key change, and checks the records it writes (with and without converter schemas). The
// records are logged whole so that pgcdc's encoder can be checked against them.
func TestDebeziumRecords(t *testing.T) {
	for _, schemas := range []bool{true, false} {
		t.Run(fmt.Sprintf("schemas=%v", schemas), func(t *testing.T) { runItems(t, schemas) })
	}
}

func runItems(t *testing.T, schemas bool) {
	testenv.Require(t)
	dsn := testenv.NewDatabase(t)
	brokers := testenv.SharedKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`CREATE TABLE public.items (id int PRIMARY KEY, name text, price numeric(10,2), ts timestamptz)`)
	// Column defaults show up as "default" in the schemas; this table shows where.
	exec(`CREATE TABLE public.withdefaults (id int PRIMARY KEY DEFAULT 7, label text NOT NULL DEFAULT 'none', qty int DEFAULT 42)`)

	prefix := testenv.UniqueName(t, "dbz")
	start := time.Now()
	c, err := debeziumtest.Start(ctx, debeziumtest.Options{
		PostgresDSN:  dsn,
		Brokers:      brokers,
		TopicPrefix:  prefix,
		Slot:         testenv.UniqueName(t, "slot"),
		Publication:  testenv.UniqueName(t, "pub"),
		Tables:       []string{"public.items", "public.withdefaults"},
		Extra:        map[string]string{"publication.autocreate.mode": "filtered"},
		KeySchemas:   schemas,
		ValueSchemas: schemas,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Debezium started in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Kafka Connect log:\n%s", c.Log())
		}
		stop := time.Now()
		c.Stop()
		t.Logf("Debezium stopped in %s", time.Since(stop).Round(time.Millisecond))
	})

	exec(`INSERT INTO public.items VALUES (1, 'apple', 1.50, '2024-05-06 07:08:09.123456+00')`)
	exec(`INSERT INTO public.items VALUES (2, 'pear', -12345678.99, NULL)`)
	exec(`UPDATE public.items SET name = 'green apple', price = 2.25 WHERE id = 1`)
	exec(`DELETE FROM public.items WHERE id = 2`)
	exec(`UPDATE public.items SET id = 3 WHERE id = 1`)
	exec(`INSERT INTO public.withdefaults DEFAULT VALUES`)
	// Two changes in one transaction: shows how source.sequence and lsn move inside a transaction.
	exec(`BEGIN; INSERT INTO public.withdefaults VALUES (8, 'eight', 8); INSERT INTO public.withdefaults VALUES (9, 'nine', 9); COMMIT`)

	topic := prefix + ".public.items"
	// c, c, u, d + tombstone, then the key change: d + tombstone + c.
	msgs, err := debeziumtest.ReadTopic(ctx, brokers, topic, 8, time.Minute)
	if err != nil {
		t.Fatalf("read %s: %v (got %d records)", topic, err, len(msgs))
	}
	if len(msgs) != 8 {
		t.Fatalf("got %d records, want 8", len(msgs))
	}
	t.Logf("all %d records read %s after Start was called", len(msgs), time.Since(start).Round(time.Millisecond))

	dmsgs, err := debeziumtest.ReadTopic(ctx, brokers, prefix+".public.withdefaults", 3, time.Minute)
	if err != nil {
		t.Fatalf("read %s.public.withdefaults: %v", prefix, err)
	}
	for _, m := range dmsgs {
		t.Logf("withdefaults record:\nkey: %s\nvalue: %s", m.Key, m.Value)
	}
	if schemas && !bytes.Contains(dmsgs[0].Value, []byte(`"default":42`)) {
		t.Errorf("withdefaults: no default for qty in the value schema: %s", dmsgs[0].Value)
	}

	type want struct {
		op        string // "" for a tombstone
		id        int
		beforeNil bool
		header    string
	}
	wants := []want{
		{op: "c", id: 1, beforeNil: true},
		{op: "c", id: 2, beforeNil: true},
		{op: "u", id: 1, beforeNil: true}, // REPLICA IDENTITY DEFAULT: no old row
		{op: "d", id: 2},
		{op: "", id: 2},
		{op: "d", id: 1, header: "__debezium.newkey"},
		{op: "", id: 1},
		{op: "c", id: 3, beforeNil: true, header: "__debezium.oldkey"},
	}
	logged := map[string]bool{}
	for i, m := range msgs {
		w := wants[i]
		key := payload(t, m.Key, schemas)
		var k struct{ ID int }
		if err := json.Unmarshal(key, &k); err != nil || k.ID != w.id {
			t.Errorf("record %d: key %s, want id %d (%v)", i, m.Key, w.id, err)
		}
		if schemas {
			checkKeySchema(t, m.Key)
		}
		kind := w.op
		if w.header != "" {
			kind += "+" + w.header
		}
		if w.op == "" {
			kind = "tombstone"
			if m.Value != nil {
				t.Errorf("record %d: want a tombstone, got value %s", i, m.Value)
			}
		} else {
			var v struct {
				Op     string
				Before json.RawMessage
				After  json.RawMessage
				Source map[string]any
			}
			if err := json.Unmarshal(payload(t, m.Value, schemas), &v); err != nil {
				t.Fatalf("record %d: value %s: %v", i, m.Value, err)
			}
			if v.Op != w.op {
				t.Errorf("record %d: op %q, want %q", i, v.Op, w.op)
			}
			if isNull(v.Before) != w.beforeNil {
				t.Errorf("record %d (%s): before = %s", i, w.op, v.Before)
			}
			if isNull(v.After) != (w.op == "d") {
				t.Errorf("record %d (%s): after = %s", i, w.op, v.After)
			}
			if _, ok := v.Source["lsn"].(float64); !ok {
				t.Errorf("record %d: source.lsn missing or not a number: %v", i, v.Source["lsn"])
			}
			if v.Source["name"] != prefix || v.Source["table"] != "items" || v.Source["connector"] != "postgresql" {
				t.Errorf("record %d: source %v", i, v.Source)
			}
		}
		if w.header != "" && !hasHeader(m, w.header) {
			t.Errorf("record %d (%s): header %s missing (headers %v)", i, w.op, w.header, m.Headers)
		}
		if !logged[kind] || !schemas { // without schemas every record is short enough to show
			logged[kind] = true
			t.Logf("%s record (partition %d, offset %d):\nkey: %s\nvalue: %s\nheaders: %s",
				kind, m.Partition, m.Offset, m.Key, m.Value, headers(m))
		}
	}
}

// payload returns the "payload" member of a JsonConverter record written with schemas, or the record.
func payload(t *testing.T, b []byte, schemas bool) []byte {
	t.Helper()
	if !schemas || b == nil {
		return b
	}
	var env struct {
		Schema  json.RawMessage `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Schema == nil {
		t.Fatalf("not a {schema, payload} record: %s (%v)", b, err)
	}
	return env.Payload
}

func checkKeySchema(t *testing.T, key []byte) {
	t.Helper()
	var env struct {
		Schema struct {
			Type   string
			Name   string
			Fields []struct{ Field, Type string }
		}
	}
	if err := json.Unmarshal(key, &env); err != nil {
		t.Fatal(err)
	}
	if env.Schema.Type != "struct" || len(env.Schema.Fields) != 1 || env.Schema.Fields[0].Field != "id" || env.Schema.Fields[0].Type != "int32" {
		t.Errorf("key schema: %s", key)
	}
}

func isNull(b json.RawMessage) bool { return b == nil || bytes.Equal(b, []byte("null")) }

func hasHeader(m kafka.Message, key string) bool {
	for _, h := range m.Headers {
		if h.Key == key {
			return true
		}
	}
	return false
}

func headers(m kafka.Message) string {
	var b bytes.Buffer
	for _, h := range m.Headers {
		fmt.Fprintf(&b, "%s=%s ", h.Key, h.Value)
	}
	return b.String()
}
