package route_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/route"
)

// users: id (key), email, note; REPLICA IDENTITY FULL in the tests that give a before image.
var users = &decode.Relation{ID: 16600, Name: "public.users", Key: []int{0}, Table: event.Table{
	Schema: "public", Name: "users", Key: []int{0},
	Columns: []event.Column{
		{Name: "id", TypeOID: 23, TypeName: "int4", TypeMod: -1},
		{Name: "email", TypeOID: 25, TypeName: "text", TypeMod: -1, Optional: true},
		{Name: "note", TypeOID: 25, TypeName: "text", TypeMod: -1, Optional: true},
	},
}}

// raw routes the steps and returns the records as they are.
func raw(t *testing.T, o route.Options, steps []step) []kafkasink.Record {
	t.Helper()
	r, err := route.New(o)
	if err != nil {
		t.Fatal(err)
	}
	txn := &decode.Txn{Xid: 7, CommitTime: commitTime, BeginLSN: 100, LastCommit: 90}
	var out []kafkasink.Record
	for _, s := range append(append([]step{{lsn: 100, kind: decode.KindBegin}}, steps...), step{lsn: 200, kind: decode.KindCommit}) {
		ch := &decode.Change{Kind: s.kind, LSN: s.lsn, Relation: s.rel, Before: s.before, After: s.after, BeforeIsKey: s.beforeIsKey, Txn: txn}
		if s.kind == decode.KindMessage {
			ch.Message = s.msg
		}
		if s.kind == decode.KindTruncate {
			ch.Relations, ch.Relation = []*decode.Relation{s.rel}, nil
		}
		if err := r.Route(ch, func(rec kafkasink.Record) error { out = append(out, rec); return nil }); err != nil {
			t.Fatalf("route %s: %v", s.kind, err)
		}
	}
	return out
}

func headerOf(r kafkasink.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func TestShapingColumnsAndKeys(t *testing.T) {
	sh, err := route.NewShaping(route.ShapingOptions{
		ColumnExcludeList: []string{`PUBLIC\.USERS\.NOTE`},
		ColumnMappers:     map[string]string{"column.mask.with.3.chars": `public\.users\.email, public\.log\.line`},
		MessageKeyColumns: "public.users:email;public.log:line",
	})
	if err != nil {
		t.Fatal(err)
	}
	o := options()
	o.Shaping = sh
	var logged bytes.Buffer
	o.Log = zerolog.New(&logged)
	recs := raw(t, o, []step{
		{lsn: 110, kind: decode.KindInsert, rel: users, after: row("1", "a@x", "n")},
		{lsn: 120, kind: decode.KindUpdate, rel: users, before: row("1", "a@x", "n"), after: row("1", "b@x", "n")}, // the key column changed
		{lsn: 130, kind: decode.KindInsert, rel: keyless, after: row("hello")},
	})
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Key)+" "+string(r.Value))
	}
	for i, want := range []string{
		`{"email":"a@x"} {"before":null,"after":{"id":1,"email":"***"}`,
		`{"email":"a@x"} {"before":{"id":1,"email":"***"},"after":null`, // a key change: delete + tombstone + create
		`{"email":"a@x"} `,
		`{"email":"b@x"} {"before":null,"after":{"id":1,"email":"***"}`,
		`{"line":"hello"} {"before":null,"after":{"line":"***"}`, // message.key.columns keys a table without a key
	} {
		if i >= len(got) || !strings.HasPrefix(got[i], want) {
			t.Errorf("record %d:\n got %v\nwant %s...", i, got, want)
			break
		}
	}
	if len(got) != 5 {
		t.Errorf("%d records: %q", len(got), got)
	}
	// A masked key column is named in a warning (its values never are).
	if l := logged.String(); !strings.Contains(l, `"table":"public.users","column":"email"`) || strings.Contains(l, "a@x") {
		t.Errorf("log: %s", l)
	}

	// Snapshot rows are shaped the same way.
	r, _ := route.New(o)
	var snap []kafkasink.Record
	if err := r.Snapshot(users, row("2", "c@x", "n"), event.Source{Snapshot: "true", LSN: 90}, 0, func(rec kafkasink.Record) error {
		snap = append(snap, rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(snap) != 1 || string(snap[0].Key) != `{"email":"c@x"}` || !strings.Contains(string(snap[0].Value), `"after":{"id":2,"email":"***"}`) {
		t.Errorf("snapshot %s %s", snap[0].Key, snap[0].Value)
	}
}

func TestSkippedOperations(t *testing.T) {
	changes := []step{
		{lsn: 100, kind: decode.KindBegin},
		{lsn: 110, kind: decode.KindInsert, rel: customers, after: row("1", "a"), txn: true},
		{lsn: 120, kind: decode.KindUpdate, rel: customers, after: row("1", "b"), txn: true},
		{lsn: 130, kind: decode.KindUpdate, rel: customers, before: row("1", "NULL"), beforeIsKey: true, after: row("2", "b"), txn: true},
		{lsn: 140, kind: decode.KindDelete, rel: customers, before: row("2", "NULL"), beforeIsKey: true, txn: true},
		{lsn: 200, kind: decode.KindCommit},
	}
	for _, tc := range []struct {
		skip event.Op
		want []string
	}{
		{event.OpUpdate, []string{ // every update skipped and not counted, key changes too (Debezium's publication does not publish them)
			`app.transaction key={"id":"7:100"} BEGIN events=<nil> pgcdc.position=0`,
			`app.public.customers key={"id":1} op=c after=1 tx=7:110/1/1 pgcdc.position=1`,
			`app.public.customers key={"id":2} op=d before=2 tx=7:140/2/2 pgcdc.position=2`,
			`app.public.customers key={"id":2} tombstone pgcdc.position=3`,
			`app.transaction key={"id":"7:200"} END events=2 pgcdc.position=4`,
		}},
		{event.OpDelete, []string{ // a key change's delete half (and its tombstone) skipped, its create published
			`app.transaction key={"id":"7:100"} BEGIN events=<nil> pgcdc.position=0`,
			`app.public.customers key={"id":1} op=c after=1 tx=7:110/1/1 pgcdc.position=1`,
			`app.public.customers key={"id":1} op=u after=1 tx=7:120/2/2 pgcdc.position=2`,
			`app.public.customers key={"id":2} op=c after=2 tx=7:130/3/3 __debezium.oldkey={"id":1} pgcdc.position=3`,
			`app.transaction key={"id":"7:200"} END events=3 pgcdc.position=4`,
		}},
	} {
		o := options()
		o.TransactionMetadata = true
		o.SkippedOperations = map[event.Op]bool{tc.skip: true}
		got := runRouter(t, mustRouter(t, o), changes)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("skipping %c:\ngot\n%s\nwant\n%s", tc.skip, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

func mustRouter(t *testing.T, o route.Options) *route.Router {
	t.Helper()
	r, err := route.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestUnwrapDeleteModes(t *testing.T) {
	changes := []step{
		{lsn: 110, kind: decode.KindInsert, rel: users, after: row("1", "a", "n")},
		{lsn: 120, kind: decode.KindDelete, rel: users, before: row("1", "a", "n")},
		{lsn: 130, kind: decode.KindTruncate, rel: users},
	}
	for _, tc := range []struct {
		mode string
		want []string // value of each record ("<tombstone>" for a nil value) and its __op header
	}{
		{"drop", []string{`{"id":1,"email":"a","note":"n","__op":"c"} c`}},
		{"tombstone", []string{`{"id":1,"email":"a","note":"n","__op":"c"} c`, `null d`}},
		{"rewrite", []string{`{"id":1,"email":"a","note":"n","__deleted":"false","__op":"c"} c`, `{"id":1,"email":"a","note":"n","__deleted":"true","__op":"d"} d`}},
		{"rewrite-with-tombstone", []string{`{"id":1,"email":"a","note":"n","__deleted":"false","__op":"c"} c`, `{"id":1,"email":"a","note":"n","__deleted":"true","__op":"d"} d`, `<tombstone> d`}},
		{"delete-to-tombstone", []string{`{"id":1,"email":"a","note":"n","__op":"c"} c`, `<tombstone> d`}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			u, err := route.NewUnwrap(route.UnwrapOptions{DeleteTombstoneHandlingMode: tc.mode, AddFields: []string{"op"}, AddFieldsPrefix: "__", AddHeaders: []string{"op"}, AddHeadersPrefix: "__"}, "", "")
			if err != nil {
				t.Fatal(err)
			}
			o := options()
			o.Unwrap, o.Truncate = u, true
			var got []string
			for _, r := range raw(t, o, changes) {
				v := string(r.Value)
				if r.Value == nil {
					v = "<tombstone>"
				}
				h, _ := headerOf(r, "__op")
				got = append(got, v+" "+h)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestChangedFieldsAndDrop(t *testing.T) {
	u, err := route.NewUnwrap(route.UnwrapOptions{DropFieldsHeaderName: "Unchanged", DropFieldsKeepSchemaCompatible: true}, "Changed", "Unchanged")
	if err != nil {
		t.Fatal(err)
	}
	o := options()
	o.ChangedHeader, o.UnchangedHeader, o.Unwrap = "Changed", "Unchanged", u
	recs := raw(t, o, []step{
		{lsn: 110, kind: decode.KindInsert, rel: users, after: row("1", "a", "n")},
		{lsn: 120, kind: decode.KindUpdate, rel: users, before: row("1", "a", "n"), after: row("1", "b", "n")},
	})
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	if c, _ := headerOf(recs[0], "Changed"); c != `[]` {
		t.Errorf("insert: Changed=%s, want [] (no before image)", c)
	}
	c, _ := headerOf(recs[1], "Changed")
	un, _ := headerOf(recs[1], "Unchanged")
	if c != `["email"]` || un != `["id","note"]` {
		t.Errorf("update: Changed=%s Unchanged=%s", c, un)
	}
	// the unchanged optional field is dropped, the required key column is kept
	if v := string(recs[1].Value); v != `{"id":1,"email":"b"}` {
		t.Errorf("update value %s", v)
	}
	if _, err := route.NewUnwrap(route.UnwrapOptions{DropFieldsHeaderName: "Other"}, "Changed", ""); err == nil {
		t.Error("a header pgcdc does not write: no error")
	}
	if _, err := route.NewUnwrap(route.UnwrapOptions{AddFields: []string{"source.nope"}}, "", ""); err == nil {
		t.Error("an unknown field: no error")
	}
}

func TestTopicRouters(t *testing.T) {
	ltr, err := route.NewLogicalTableRouter(route.LogicalTableRouterOptions{TopicRegex: `(.*)\.public\.(customers|users)`, TopicReplacement: "$1.people", KeyEnforceUniqueness: true})
	if err != nil {
		t.Fatal(err)
	}
	rr, err := route.NewRegexRouter(`app\.(.*)`, "renamed_$1")
	if err != nil {
		t.Fatal(err)
	}
	o := options()
	o.Event.KeySchemas = true
	o.Steps = []route.Step{ltr, rr}
	recs := raw(t, o, []step{
		{lsn: 110, kind: decode.KindInsert, rel: customers, after: row("1", "a")},
		{lsn: 120, kind: decode.KindDelete, rel: users, before: row("1", "a", "n")},
		{lsn: 130, kind: decode.KindInsert, rel: keyless, after: row("x")},
		// Steps see logical decoding messages too: the routers leave their topic alone.
		{lsn: 140, kind: decode.KindMessage, msg: decode.Message{Prefix: "audit", Content: []byte("x"), Transactional: true}},
	})
	var got []string
	for _, r := range recs {
		got = append(got, r.Topic+" "+string(r.Key))
	}
	want := []string{
		`renamed_people {"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"__dbz__physicalTableIdentifier"}],"optional":false,"name":"app.people.Key"},"payload":{"id":1,"__dbz__physicalTableIdentifier":"app.public.customers"}}`,
		`renamed_people {"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"__dbz__physicalTableIdentifier"}],"optional":false,"name":"app.people.Key"},"payload":{"id":1,"__dbz__physicalTableIdentifier":"app.public.users"}}`,
		`renamed_people {"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"__dbz__physicalTableIdentifier"}],"optional":false,"name":"app.people.Key"},"payload":{"id":1,"__dbz__physicalTableIdentifier":"app.public.users"}}`,
		`renamed_public.log `,
		`app.message {"schema":{"type":"struct","fields":[{"type":"string","optional":true,"field":"prefix"}],"optional":false,"name":"io.debezium.connector.postgresql.MessageKey","version":1},"payload":{"prefix":"audit"}}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if tp := route.RenameTopic(o.Steps, "app.public.users"); tp != "renamed_people" {
		t.Errorf("RenameTopic %s", tp)
	}
	if _, err := route.NewRegexRouter(`(a`, "x"); err == nil {
		t.Error("bad regex: no error")
	}
	if _, err := route.NewLogicalTableRouter(route.LogicalTableRouterOptions{TopicRegex: "(.*)", TopicReplacement: "$2"}); err == nil {
		t.Error("bad replacement: no error")
	}
}

func TestLogicalTableRouterKeyField(t *testing.T) {
	for _, tc := range []struct {
		opts route.LogicalTableRouterOptions
		want string
	}{
		{route.LogicalTableRouterOptions{TopicRegex: `(.*)\.public\.(customers)`, TopicReplacement: "$1.all", KeyEnforceUniqueness: false},
			`{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"app.all.Key"},"payload":{"id":1}}`},
		{route.LogicalTableRouterOptions{TopicRegex: `(.*)\.public\.(customers)`, TopicReplacement: "$1.all", KeyEnforceUniqueness: true,
			KeyFieldName: "src", KeyFieldRegex: `.*\.(\w+)`, KeyFieldReplacement: "t_$1"},
			`{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"src"}],"optional":false,"name":"app.all.Key"},"payload":{"id":1,"src":"t_customers"}}`},
	} {
		l, err := route.NewLogicalTableRouter(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		o := options()
		o.Event.KeySchemas = true
		o.Steps = []route.Step{l}
		recs := raw(t, o, []step{{lsn: 110, kind: decode.KindInsert, rel: customers, after: row("1", "a")}})
		if len(recs) != 1 || recs[0].Topic != "app.all" || string(recs[0].Key) != tc.want {
			t.Errorf("%+v:\n got %s %s\nwant %s", tc.opts, recs[0].Topic, recs[0].Key, tc.want)
		}
	}
	if _, err := route.NewLogicalTableRouter(route.LogicalTableRouterOptions{TopicRegex: "(.*)", TopicReplacement: "x", KeyFieldRegex: "(.*)"}); err == nil {
		t.Error("key.field.regex without key.field.replacement: no error")
	}
}
