package route

import (
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/deliver/payload"
)

func change(topic, schema, table, op string) *payload.Event {
	v := `{"before":null,"after":{"id":1},"source":{"name":"app","schema":"` + schema + `","table":"` + table + `","lsn":1},"op":"` + op + `"}`
	return payload.Parse(kafka.Message{Topic: topic, Value: []byte(v)})
}

func TestCompileDefaults(t *testing.T) {
	r := &Route{Name: "orders", URL: "https://hooks.example.com/x", Tables: []string{"public.orders", "sales.*"}, Timeout: time.Second}
	if err := r.Compile("app"); err != nil {
		t.Fatal(err)
	}
	if r.Format != payload.Debezium || r.Ops != DefaultOps || r.TriggerName != "orders" || r.IDHeader != "id" ||
		strings.Join(r.Topics, ",") != "app.public.orders,app.sales.*" {
		t.Fatalf("defaults: %+v", r)
	}
	raw := &Route{Name: "outbox", URL: "http://x", Topics: []string{"outbox.event.*"}, Format: payload.Raw, Timeout: time.Second}
	if err := raw.Compile("app"); err != nil || raw.Ops != "" {
		t.Fatalf("raw: %v %q", err, raw.Ops)
	}
}

func TestCompileErrors(t *testing.T) {
	r := &Route{URL: "ftp://x?token=secret", Format: "xml", Ops: "cx", Tables: []string{"orders", "a.b.c"}, Topics: []string{"[a"}}
	err := r.Compile("app")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"name: required", "url:", "payload:", "timeout:", `unknown op 'x'`, `bad pattern "orders"`, `bad pattern "a.b.c"`, `bad glob "[a"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows the URL's query: %v", err)
	}
	if err := (&Route{Name: "x", URL: "http://x", Timeout: time.Second}).Compile("app"); err == nil || !strings.Contains(err.Error(), "topics or tables") {
		t.Fatalf("no topics/tables: %v", err)
	}
}

func TestMatches(t *testing.T) {
	r := &Route{Name: "r", URL: "http://x", Topics: []string{"app.public.*"}, Tables: []string{"public.ord*"}, Ops: "cu", Timeout: time.Second}
	if err := r.Compile("app"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		e    *payload.Event
		want bool
	}{
		{change("app.public.orders", "public", "orders", "c"), true},
		{change("app.public.orders", "public", "orders", "u"), true},
		{change("app.public.orders", "public", "orders", "d"), false},
		{change("app.public.users", "public", "users", "c"), false},
		{change("other.public.orders", "public", "orders", "c"), false},
		{payload.Parse(kafka.Message{Topic: "app.public.orders", Value: []byte(`{"x":1}`)}), false},
	} {
		if got := r.Matches(tc.e); got != tc.want {
			t.Errorf("%s %s %c: %v, want %v", tc.e.Topic, tc.e.Table(), tc.e.Op, got, tc.want)
		}
	}
	raw := &Route{Name: "o", URL: "http://x", Topics: []string{"outbox.event.*"}, Format: payload.Raw, Timeout: time.Second}
	_ = raw.Compile("app")
	if !raw.Matches(payload.Parse(kafka.Message{Topic: "outbox.event.OrderCreated", Value: []byte(`{"x":1}`)})) {
		t.Error("raw route does not take an outbox record")
	}
	if r.RedactedURL() != "http://x" || (&Route{URL: "https://u:p@h/x?k=v"}).RedactedURL() != "https://h/x?..." {
		t.Errorf("redacted: %s", (&Route{URL: "https://u:p@h/x?k=v"}).RedactedURL())
	}
}
