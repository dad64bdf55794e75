package route_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/route"
)

var (
	commitTime = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	now        = time.Date(2026, 12, 7, 10, 0, 1, 0, time.UTC)
	customers  = &decode.Relation{ID: 16400, Name: "public.customers", Key: []int{0}, Table: event.Table{
		Schema: "public", Name: "customers", Key: []int{0},
		Columns: []event.Column{{Name: "id", TypeOID: 23, TypeName: "int4", TypeMod: -1}, {Name: "name", TypeOID: 25, TypeName: "text", TypeMod: -1, Optional: true}},
	}}
	keyless = &decode.Relation{ID: 16500, Name: "public.log", Table: event.Table{
		Schema: "public", Name: "log", Columns: []event.Column{{Name: "line", TypeOID: 25, TypeName: "text", TypeMod: -1, Optional: true}},
	}}
)

func row(vals ...string) []event.Datum {
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

func options() route.Options {
	o := route.Options{Event: event.DefaultOptions("app", "db", "test"), TombstonesOnDelete: true, Messages: true, Now: func() time.Time { return now }}
	o.Event.KeySchemas, o.Event.ValueSchemas = false, false
	return o
}

// summary renders a record: topic, key, op (or tombstone), before/after ids, and headers.
func summary(t *testing.T, r kafkasink.Record) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s key=%s", r.Topic, r.Key)
	if r.Value == nil {
		b.WriteString(" tombstone")
	} else {
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("value %s: %v", r.Value, err)
		}
		switch {
		case v["op"] != nil:
			fmt.Fprintf(&b, " op=%v", v["op"])
			for _, side := range []string{"before", "after"} {
				if img, ok := v[side].(map[string]any); ok {
					fmt.Fprintf(&b, " %s=%v", side, img["id"])
				}
			}
			if tx, ok := v["transaction"].(map[string]any); ok {
				fmt.Fprintf(&b, " tx=%v/%v/%v", tx["id"], tx["total_order"], tx["data_collection_order"])
			}
		case v["status"] != nil:
			fmt.Fprintf(&b, " %v events=%v", v["status"], v["event_count"])
		default:
			b.WriteString(" value")
		}
	}
	for _, h := range r.Headers {
		fmt.Fprintf(&b, " %s=%s", h.Key, h.Value)
	}
	return b.String()
}

type step struct {
	lsn  pglogrepl.LSN
	kind decode.Kind
	rel  *decode.Relation
	// before, after
	before, after []event.Datum
	beforeIsKey   bool
	msg           decode.Message
	txn           bool // part of the transaction (else a message outside any)
}

func runRouter(t *testing.T, r *route.Router, steps []step) []string {
	t.Helper()
	txn := &decode.Txn{Xid: 7, CommitTime: commitTime, BeginLSN: 100, LastCommit: 90}
	var got []string
	for _, s := range steps {
		ch := &decode.Change{Kind: s.kind, LSN: s.lsn, Relation: s.rel, Before: s.before, After: s.after, BeforeIsKey: s.beforeIsKey, Message: s.msg}
		if s.txn || s.kind == decode.KindBegin || s.kind == decode.KindCommit {
			ch.Txn = txn
		}
		if s.kind == decode.KindTruncate {
			ch.Relations, ch.Relation = []*decode.Relation{s.rel}, nil
		}
		if err := r.Route(ch, func(rec kafkasink.Record) error {
			got = append(got, summary(t, rec))
			return nil
		}); err != nil {
			t.Fatalf("route %s@%d: %v", s.kind, s.lsn, err)
		}
	}
	return got
}

func TestRouter(t *testing.T) {
	tx := func(steps ...step) []step {
		return append(append([]step{{lsn: 100, kind: decode.KindBegin}}, steps...), step{lsn: 200, kind: decode.KindCommit})
	}
	cases := []struct {
		name  string
		opts  func(o *route.Options)
		steps []step
		want  []string
	}{
		{
			name: "row changes numbered in their transaction; a delete is followed by its tombstone",
			steps: tx(
				step{lsn: 110, kind: decode.KindInsert, rel: customers, after: row("1", "ada"), txn: true},
				step{lsn: 120, kind: decode.KindUpdate, rel: customers, after: row("1", "ada l"), txn: true},
				step{lsn: 130, kind: decode.KindDelete, rel: customers, before: row("1", "NULL"), beforeIsKey: true, txn: true},
			),
			want: []string{
				`app.public.customers key={"id":1} op=c after=1 pgcdc.position=0`,
				`app.public.customers key={"id":1} op=u after=1 pgcdc.position=1`,
				`app.public.customers key={"id":1} op=d before=1 pgcdc.position=2`,
				`app.public.customers key={"id":1} tombstone pgcdc.position=3`,
			},
		},
		{
			name: "a primary-key change is a delete of the old key and a create of the new one, as Debezium writes it",
			steps: tx(
				step{lsn: 110, kind: decode.KindUpdate, rel: customers, before: row("1", "NULL"), beforeIsKey: true, after: row("2", "ada"), txn: true},
			),
			want: []string{
				`app.public.customers key={"id":1} op=d before=1 __debezium.newkey={"id":2} pgcdc.position=0`,
				`app.public.customers key={"id":1} tombstone __debezium.newkey={"id":2} pgcdc.position=1`,
				`app.public.customers key={"id":2} op=c after=2 __debezium.oldkey={"id":1} pgcdc.position=2`,
			},
		},
		{
			name: "an update with the old key alone and an unchanged key has no before",
			steps: tx(
				step{lsn: 110, kind: decode.KindUpdate, rel: customers, before: row("1", "NULL"), beforeIsKey: true, after: row("1", "b"), txn: true},
			),
			want: []string{`app.public.customers key={"id":1} op=u after=1 pgcdc.position=0`},
		},
		{
			name:  "no tombstones when disabled; a keyless table's delete has a null key and no tombstone",
			opts:  func(o *route.Options) { o.TombstonesOnDelete = false },
			steps: tx(step{lsn: 110, kind: decode.KindDelete, rel: customers, before: row("1", "NULL"), beforeIsKey: true, txn: true}),
			want:  []string{`app.public.customers key={"id":1} op=d before=1 pgcdc.position=0`},
		},
		{
			name:  "keyless table",
			steps: tx(step{lsn: 110, kind: decode.KindDelete, rel: keyless, before: row("x"), txn: true}),
			want:  []string{`app.public.log key= op=d before=<nil> pgcdc.position=0`},
		},
		{
			name:  "truncate is published only when enabled",
			steps: tx(step{lsn: 110, kind: decode.KindTruncate, rel: customers, txn: true}),
			want:  nil,
		},
		{
			name:  "truncate enabled",
			opts:  func(o *route.Options) { o.Truncate = true },
			steps: tx(step{lsn: 110, kind: decode.KindTruncate, rel: customers, txn: true}),
			want:  []string{`app.public.customers key= op=t pgcdc.position=0`},
		},
		{
			name: "transaction metadata: BEGIN before the first event, END after the last, ids as Debezium forms them",
			opts: func(o *route.Options) { o.TransactionMetadata = true },
			steps: tx(
				step{lsn: 110, kind: decode.KindInsert, rel: customers, after: row("1", "a"), txn: true},
				step{lsn: 120, kind: decode.KindInsert, rel: customers, after: row("2", "b"), txn: true},
			),
			want: []string{
				`app.transaction key={"id":"7:100"} BEGIN events=<nil> pgcdc.position=0`,
				`app.public.customers key={"id":1} op=c after=1 tx=7:110/1/1 pgcdc.position=1`,
				`app.public.customers key={"id":2} op=c after=2 tx=7:120/2/2 pgcdc.position=2`,
				`app.transaction key={"id":"7:200"} END events=2 pgcdc.position=3`,
			},
		},
		{
			name:  "transaction metadata: nothing for a transaction without events",
			opts:  func(o *route.Options) { o.TransactionMetadata = true },
			steps: tx(),
			want:  nil,
		},
		{
			name: "messages: filtered by prefix; pgcdc's heartbeats never published as messages",
			opts: func(o *route.Options) { o.MessagePrefixExclude = []string{"secret.*"} },
			steps: []step{
				{lsn: 90, kind: decode.KindMessage, msg: decode.Message{Prefix: "audit", Content: []byte("x")}},
				{lsn: 91, kind: decode.KindMessage, msg: decode.Message{Prefix: "secret-stuff", Content: []byte("x")}},
				{lsn: 92, kind: decode.KindMessage, msg: decode.Message{Prefix: route.HeartbeatPrefix, Content: []byte("x")}},
			},
			want: []string{`app.message key={"prefix":"audit"} op=m pgcdc.position=0`},
		},
		{
			name:  "heartbeat records when asked, for transactional heartbeats",
			opts:  func(o *route.Options) { o.HeartbeatTopic = true },
			steps: tx(step{lsn: 110, kind: decode.KindMessage, msg: decode.Message{Prefix: route.HeartbeatPrefix, Transactional: true}, txn: true}),
			want:  []string{`__debezium-heartbeat.app key={"serverName":"app"} value pgcdc.position=0`},
		},
		{
			name: "steps transform the records of a change, filters drop changes before they are encoded",
			opts: func(o *route.Options) {
				o.Steps = []route.Step{renameTopic{"app.public.customers", "people"}, dropKeyless{}}
			},
			steps: tx(
				step{lsn: 110, kind: decode.KindInsert, rel: customers, after: row("1", "a"), txn: true},
				step{lsn: 120, kind: decode.KindInsert, rel: keyless, after: row("x"), txn: true},
			),
			want: []string{`people key={"id":1} op=c after=1 pgcdc.position=0`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := options()
			if c.opts != nil {
				c.opts(&o)
			}
			r, err := route.New(o)
			if err != nil {
				t.Fatal(err)
			}
			for _, rel := range []*decode.Relation{customers, keyless} {
				if err := r.Route(&decode.Change{Kind: decode.KindRelation, Relation: rel}, nil); err != nil {
					t.Fatal(err)
				}
			}
			got := runRouter(t, r, c.steps)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

type renameTopic struct{ from, to string }

func (s renameTopic) Apply(_ *decode.Change, recs []kafkasink.Record) ([]kafkasink.Record, error) {
	for i := range recs {
		if recs[i].Topic == s.from {
			recs[i].Topic = s.to
		}
	}
	return recs, nil
}

type dropKeyless struct{}

func (dropKeyless) Apply(_ *decode.Change, recs []kafkasink.Record) ([]kafkasink.Record, error) {
	return recs, nil
}
func (dropKeyless) Keep(ch *decode.Change) bool {
	return ch.Relation == nil || len(ch.Relation.Key) > 0
}

// A snapshot row is an op "r" event with the position the snapshot gives it.
func TestRouterSnapshot(t *testing.T) {
	r, err := route.New(options())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	src := event.Source{CommitTime: commitTime, Snapshot: "first", TxID: 5, LSN: 300}
	if err := r.Snapshot(customers, row("1", "a"), src, 1<<32|7, func(rec kafkasink.Record) error {
		got = append(got, summary(t, rec))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`app.public.customers key={"id":1} op=r after=1 pgcdc.position=%d`, int64(1<<32|7))
	if len(got) != 1 || got[0] != want {
		t.Fatalf("snapshot records %v, want [%s]", got, want)
	}
}

// An encoder for a relation is built when the relation is (re)described, and a type the encoder
// cannot map is an error naming the table and column.
func TestRouterUnsupportedType(t *testing.T) {
	r, err := route.New(options())
	if err != nil {
		t.Fatal(err)
	}
	weird := &decode.Relation{ID: 1, Name: "public.w", Table: event.Table{Schema: "public", Name: "w",
		Columns: []event.Column{{Name: "shape", TypeOID: 99999, TypeName: "mystery", TypeMod: -1}}}}
	err = r.Route(&decode.Change{Kind: decode.KindRelation, Relation: weird}, nil)
	if err == nil || !strings.Contains(err.Error(), "public.w") || !strings.Contains(err.Error(), "shape") {
		t.Fatalf("unsupported type: %v", err)
	}
}

func TestKeyChanged(t *testing.T) {
	txt := func(s string) event.Datum { return event.Datum{Kind: event.DatumText, Text: []byte(s)} }
	null := event.Datum{Kind: event.DatumNull}
	toast := event.Datum{Kind: event.DatumUnchanged}
	absent := event.Datum{Kind: event.DatumAbsent}
	cases := []struct {
		name          string
		key           []int
		before, after []event.Datum
		want          bool
	}{
		{"same key, other column changed", []int{0}, []event.Datum{txt("1"), txt("a")}, []event.Datum{txt("1"), txt("b")}, false},
		{"key changed", []int{0}, []event.Datum{txt("1"), txt("a")}, []event.Datum{txt("2"), txt("a")}, true},
		{"key in a later column changed", []int{1}, []event.Datum{txt("x"), txt("1")}, []event.Datum{txt("x"), txt("10")}, true},
		{"composite key, second part changed", []int{0, 2}, []event.Datum{txt("1"), txt("a"), txt("p")}, []event.Datum{txt("1"), txt("a"), txt("q")}, true},
		{"composite key same", []int{2, 0}, []event.Datum{txt("1"), txt("a"), txt("p")}, []event.Datum{txt("1"), txt("b"), txt("p")}, false},
		{"prefix is not equality", []int{0}, []event.Datum{txt("1")}, []event.Datum{txt("11")}, true},
		{"empty text is not null", []int{0}, []event.Datum{null}, []event.Datum{txt("")}, true},
		{"null to null", []int{0}, []event.Datum{null}, []event.Datum{null}, false},
		{"unchanged TOAST key column ignored", []int{0, 1}, []event.Datum{txt("1"), txt("long")}, []event.Datum{txt("1"), toast}, false},
		{"unchanged TOAST ignored, other key part changed", []int{0, 1}, []event.Datum{txt("1"), txt("long")}, []event.Datum{txt("2"), toast}, true},
		{"absent vs text", []int{0}, []event.Datum{absent}, []event.Datum{txt("1")}, true},
		{"no key columns", nil, []event.Datum{txt("1")}, []event.Datum{txt("2")}, false},
		{"after shorter than key index", []int{2}, []event.Datum{txt("1"), txt("2"), txt("3")}, []event.Datum{txt("1"), txt("2")}, true},
		{"before shorter than key index", []int{1}, []event.Datum{txt("1")}, []event.Datum{txt("1"), txt("2")}, true},
		{"both empty", []int{0}, nil, nil, true},
		{"length mismatch outside the key", []int{0}, []event.Datum{txt("1")}, []event.Datum{txt("1"), txt("extra")}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := route.KeyChanged(c.key, c.before, c.after); got != c.want {
				t.Errorf("KeyChanged(%v) = %v, want %v", c.key, got, c.want)
			}
		})
	}
}

// A table a filter drops is not described: a type without a mapping in a table the connector does
// not capture (a FOR ALL TABLES publication carries every table) stops nothing.
func TestRouterFilteredRelationNotDescribed(t *testing.T) {
	opts := options()
	opts.Steps = []route.Step{dropKeyless{}}
	r, err := route.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	weird := &decode.Relation{ID: 1, Name: "public.w", Table: event.Table{Schema: "public", Name: "w",
		Columns: []event.Column{{Name: "shape", TypeOID: 99999, TypeName: "mystery", TypeMod: -1}}}}
	if err := r.Route(&decode.Change{Kind: decode.KindRelation, Relation: weird}, nil); err != nil {
		t.Fatalf("filtered relation described: %v", err)
	}
	if err := r.Route(&decode.Change{Kind: decode.KindInsert, Relation: weird, After: row("x")}, nil); err != nil {
		t.Fatalf("filtered insert: %v", err)
	}
}

// With value schemas, the schema part of a value is a prefix shared by every record of the relation
// version (kafkasink.Record.ValuePrefix): the record's own Value holds the payload's rest, and the
// two together are the whole envelope. A new relation version gets a new prefix; the old one is
// left as it was, since records in flight still point at it.
func TestRouterSharedSchemaPrefix(t *testing.T) {
	o := options()
	o.Event.ValueSchemas = true
	r, err := route.New(o)
	if err != nil {
		t.Fatal(err)
	}
	var recs []kafkasink.Record
	emit := func(rec kafkasink.Record) error { recs = append(recs, rec); return nil }
	txn := &decode.Txn{Xid: 7, CommitTime: commitTime, BeginLSN: 100, LastCommit: 90}
	steps := []*decode.Change{
		{Kind: decode.KindRelation, Relation: customers},
		{Kind: decode.KindBegin, Txn: txn, LSN: 100},
		{Kind: decode.KindInsert, Txn: txn, LSN: 101, Relation: customers, After: row("1", "a")},
		{Kind: decode.KindInsert, Txn: txn, LSN: 102, Relation: customers, After: row("2", "b")},
		{Kind: decode.KindDelete, Txn: txn, LSN: 103, Relation: customers, Before: row("2", "NULL"), BeforeIsKey: true},
	}
	for _, ch := range steps {
		if err := r.Route(ch, emit); err != nil {
			t.Fatal(err)
		}
	}
	if len(recs) != 4 { // two inserts, the delete and its tombstone
		t.Fatalf("%d records, want 4", len(recs))
	}
	prefix := recs[0].ValuePrefix
	if len(prefix) < 200 || !strings.HasPrefix(string(prefix), `{"schema":{"type":"struct","fields":[`) || !strings.HasSuffix(string(prefix), `,"payload":{"before":`) {
		t.Fatalf("shared prefix %.80q... (%d bytes)", prefix, len(prefix))
	}
	for i, rec := range recs[:3] {
		if &rec.ValuePrefix[0] != &prefix[0] {
			t.Errorf("record %d has a prefix of its own, not the shared one", i)
		}
		if strings.Contains(string(rec.Value), `"type":"struct"`) {
			t.Errorf("record %d's own value still holds the schema: %.80q", i, rec.Value)
		}
		var v struct {
			Schema  map[string]any `json:"schema"`
			Payload struct {
				Op    string         `json:"op"`
				After map[string]any `json:"after"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(rec.FullValue(), &v); err != nil || v.Schema["name"] != "app.public.customers.Envelope" {
			t.Fatalf("record %d: full value %.120q: %v, schema %v", i, rec.FullValue(), err, v.Schema["name"])
		}
		if want := []string{"c", "c", "d"}[i]; v.Payload.Op != want {
			t.Errorf("record %d: op %q, want %q", i, v.Payload.Op, want)
		}
	}
	if recs[3].Value != nil || recs[3].FullValue() != nil {
		t.Errorf("tombstone value %q, want null", recs[3].FullValue())
	}
	before := string(prefix)
	renamed := *customers
	renamed.Table.Columns = append([]event.Column{}, customers.Table.Columns...)
	renamed.Table.Columns[1].Name = "full_name"
	if err := r.Route(&decode.Change{Kind: decode.KindRelation, Relation: &renamed}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Route(&decode.Change{Kind: decode.KindInsert, Txn: txn, LSN: 104, Relation: &renamed, After: row("3", "c")}, emit); err != nil {
		t.Fatal(err)
	}
	if p := recs[4].ValuePrefix; !strings.Contains(string(p), `"field":"full_name"`) || string(prefix) != before {
		t.Errorf("after the relation changed: new prefix has full_name %v, old prefix unchanged %v", strings.Contains(string(p), `"field":"full_name"`), string(prefix) == before)
	}
}
