package event

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
)

// The expected hashes were computed with Java 17 as Debezium 3.6.1's MaskStrings does
// (MessageDigest over salt.getBytes() and, for V1, the ObjectOutputStream bytes of the String).
func TestHashMatchesJava(t *testing.T) {
	big := make([]byte, 70000)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	for _, tc := range []struct {
		kind  MapperKind
		value string
		want  string
	}{
		{HashV1, "alice", "35471f566562bee05b3f4e6a5300bcded388ebf8e80dfd0627e622f871e3d41f"},
		{HashV1, "", "c03d43cc1b99b435eb8052eec9a3b514542d2154cb5e758b4c541b218c33bc70"},
		{HashV1, "héllo ✓ 🎉", "ebf960015975cfd80cdd55cc85d1fa11aa66bbdb6504eaee0ab8209ca4aaba1e"},
		{HashV1, "a\x00b", "38c0b4b723e7d3b8347f4e86edd03f2ef3bd18ca221b2aa8e06c8f427b9608ee"},
		{HashV1, string(big), "b50c7047177d5a08d95c1d62e6df2a16ccd833ea45ffcd04937305fc4a83d42b"}, // TC_LONGSTRING
		{HashV2, "alice", "28caad97f168f471b34710a1418e28ab"},
		{HashV2, "héllo ✓ 🎉", "1b917d12e765b567eb122a7c9780f434"},
	} {
		m := &Mapper{Kind: tc.kind, NewHash: sha256.New, Salt: []byte("pepper")}
		if tc.kind == HashV2 {
			m.NewHash, m.Salt = md5.New, []byte("x")
		}
		e := &Encoder{}
		if got := e.hash(&colMapper{m: m, h: m.NewHash(), length: unknownLength}, tc.value); got != tc.want {
			t.Errorf("%v %.20q: %s, want %s", tc.kind, tc.value, got, tc.want)
		}
	}
}

func TestTruncateUTF16(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 3, "hel"}, {"hé", 5, "hé"}, {"ab🎉c", 3, "ab"}, {"ab🎉c", 4, "ab🎉"}, {"", 2, ""}, {"abc", 0, ""},
	} {
		if got := truncateUTF16(tc.in, tc.n); got != tc.want {
			t.Errorf("truncateUTF16(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func peopleTable() Table {
	mask := &Mapper{Kind: MaskChars, N: 4}
	return Table{Schema: "public", Name: "people", Columns: []Column{
		{Name: "id", TypeName: "int4", TypeMod: -1},
		{Name: "email", TypeName: "text", TypeMod: -1, Mapper: mask},               // masked (and the key below)
		{Name: "age", TypeName: "int4", TypeMod: -1, Optional: true, Mapper: mask}, // schema parameter only
		{Name: "nick", TypeName: "varchar", TypeMod: 8 + 4, Optional: true, Mapper: &Mapper{Kind: HashV2, NewHash: md5.New, Salt: []byte("x")}},
		{Name: "bio", TypeName: "text", TypeMod: -1, Optional: true, Mapper: &Mapper{Kind: Truncate, N: 3}},
		{Name: "short", TypeName: "varchar", TypeMod: 2 + 4, Optional: true, Mapper: &Mapper{Kind: Truncate, N: 3}}, // length 2: nothing to cut
		{Name: "blob", TypeName: "bytea", TypeMod: -1, Optional: true, Mapper: &Mapper{Kind: Truncate, N: 2}},
		{Name: "secret", TypeName: "text", TypeMod: -1, Optional: true, Omit: true},
	}, Key: []int{1}}
}

func TestShapedTable(t *testing.T) {
	o := DefaultOptions("pgcdc", "shop", "0.1.0")
	o.KeySchemas = false
	tb := peopleTable()
	e, err := NewEncoder(o, tb)
	if err != nil {
		t.Fatal(err)
	}
	row := []Datum{txt("1"), txt("alice@example.com"), txt("42"), txt("alice"), txt("héllo"), txt("ab"), txt(`\xdeadbeef`), txt("s3cret")}
	k, _, err := e.AppendKey(nil, row)
	if err != nil || string(k) != `{"email":"alice@example.com"}` {
		t.Errorf("key %s %v: the key keeps the column's own value, as in Debezium", k, err)
	}
	v, err := e.AppendValue(nil, OpCreate, nil, row, src1, nil, procTm)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Schema struct {
			Fields []struct {
				Field  string
				Fields []map[string]any
			}
		}
		Payload struct{ After map[string]any }
	}
	if err := json.Unmarshal(v, &env); err != nil {
		t.Fatal(err)
	}
	after := env.Payload.After
	want := map[string]any{"id": 1.0, "email": "****", "age": 42.0, "nick": "28caad97", "bio": "hél", "short": "ab", "blob": "3q0="}
	for f, w := range want {
		if after[f] != w {
			t.Errorf("after.%s = %v, want %v", f, after[f], w)
		}
	}
	if _, ok := after["secret"]; ok || len(after) != len(want) {
		t.Errorf("after %v: secret is omitted", after)
	}
	params := map[string]any{}
	for _, f := range env.Schema.Fields[1].Fields {
		if p, ok := f["parameters"]; ok {
			params[f["field"].(string)] = p
		}
	}
	for f, w := range map[string]string{"email": `{"masked":"true"}`, "age": `{"masked":"true"}`, "nick": `{"masked":"true"}`, "bio": `{"truncateLength":"3"}`, "blob": `{"truncateLength":"2"}`} {
		got, _ := json.Marshal(params[f])
		if string(got) != w {
			t.Errorf("schema of %s: parameters %s, want %s", f, got, w)
		}
	}
	if _, ok := params["short"]; ok {
		t.Error("short (varchar(2)) cannot be cut to 3: no truncateLength parameter")
	}

	// NULLs: masked as asterisks, hashed and truncated ones stay null; TOAST placeholders are values.
	null := Datum{Kind: DatumNull}
	v, err = e.AppendValue(nil, OpUpdate, nil, []Datum{txt("1"), {Kind: DatumUnchanged}, null, null, {Kind: DatumUnchanged}, null, null, null}, src1, nil, procTm)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(v); !strings.Contains(s, `"after":{"id":1,"email":"****","age":null,"nick":null,"bio":"__d","short":null,"blob":null}`) {
		t.Errorf("nulls and placeholders: %s", s)
	}
}

func TestMaskedValueNeverInErrors(t *testing.T) {
	tb := peopleTable()
	tb.Columns[2].Mapper = &Mapper{Kind: MaskChars, N: 4}
	e, err := NewEncoder(DefaultOptions("pgcdc", "shop", "0.1.0"), tb)
	if err != nil {
		t.Fatal(err)
	}
	row := []Datum{txt("1"), txt("a"), txt("not-a-number-SECRET"), txt("n"), txt("b"), txt("s"), txt(`\x00`), txt("x")}
	_, err = e.AppendValue(nil, OpCreate, nil, row, src1, nil, procTm)
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), `"age"`) {
		t.Errorf("error %v: names the column, never the value", err)
	}
}

func TestLogicalTableNames(t *testing.T) {
	tb := ordersTable()
	tb.SchemaName = "pgcdc.all_orders"
	tb.KeyFields = []KeyField{{"__dbz__physicalTableIdentifier", "pgcdc.public.orders"}}
	e, err := NewEncoder(DefaultOptions("pgcdc", "shop", "0.1.0"), tb)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _ := e.AppendKey(nil, row1)
	want := `{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"__dbz__physicalTableIdentifier"}],"optional":false,"name":"pgcdc.all_orders.Key"},"payload":{"id":1,"__dbz__physicalTableIdentifier":"pgcdc.public.orders"}}`
	if string(k) != want {
		t.Errorf("key\n got %s\nwant %s", k, want)
	}
	v, _ := e.AppendValue(nil, OpCreate, nil, row1, src1, nil, procTm)
	if !strings.Contains(string(v), `"name":"pgcdc.all_orders.Value","field":"before"`) || !strings.Contains(string(v), `"name":"pgcdc.all_orders.Envelope","version":2}`) {
		t.Errorf("value schema names: %s", v)
	}
	if e.Topic() != "pgcdc.public.orders" {
		t.Errorf("topic %s: the encoder keeps the physical topic (the route step renames)", e.Topic())
	}
}

func TestFlat(t *testing.T) {
	e, err := NewEncoder(DefaultOptions("pgcdc", "shop", "0.1.0"), ordersTable())
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFlat(e, FlatOptions{Deleted: true, DropKeepSchemaCompatible: true, Fields: []FlatField{
		{"", "op", "__op"}, {"source", "table", "__table"}, {"source", "lsn", "__lsn"}, {"source", "ts_ms", "__source_ts_ms"}, {"transaction", "id", "__id"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.AppendValue(nil, OpCreate, row1, src1, nil, procTm, nil)
	wantSchema := `{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"note"},` +
		`{"type":"string","optional":true,"field":"__deleted"},{"type":"string","optional":true,"field":"__op"},{"type":"string","optional":true,"field":"__table"},` +
		`{"type":"int64","optional":true,"field":"__lsn"},{"type":"int64","optional":true,"field":"__source_ts_ms"},{"type":"string","optional":true,"field":"__id"}],` +
		`"optional":false,"name":"pgcdc.public.orders.Value"}`
	want := `{"schema":` + wantSchema + `,"payload":{"id":1,"note":"hi","__deleted":"false","__op":"c","__table":"orders","__lsn":27113520,"__source_ts_ms":1704164645123,"__id":null}}`
	if err != nil || string(v) != want {
		t.Errorf("create:\n got %s\nwant %s (%v)", v, want, err)
	}
	// a delete (rewrite): the before image, __deleted true; dropping note (optional) but not id
	// (required) nor the added fields, which come after the drop on a delete
	v, _ = f.AppendValue(nil, OpDelete, row1, src1, nil, procTm, []string{"note", "id", "__op"})
	if s := string(v); !strings.Contains(s, `"payload":{"id":1,"__deleted":"true","__op":"d","__table":"orders"`) || strings.Contains(s, `"field":"note"`) {
		t.Errorf("delete: %s", v)
	}
	// an update: added fields can be dropped
	v, _ = f.AppendValue(nil, OpUpdate, row1, src1, nil, procTm, []string{"__op"})
	if s := string(v); strings.Contains(s, `__op`) {
		t.Errorf("update dropping __op: %s", v)
	}
	if n := string(f.AppendNull(nil)); n != `{"schema":{"type":"struct","fields":[`+wantRowSchema+`},"payload":null}` {
		t.Errorf("null value %s", n)
	}
	if h := f.HeaderValue(FlatField{"source", "lsn", "__lsn"}, OpCreate, src1, nil, procTm); string(h) != "27113520" {
		t.Errorf("header %q", h)
	}
	if h := f.HeaderValue(FlatField{"source", "xmin", "__xmin"}, OpCreate, src1, nil, procTm); h != nil {
		t.Errorf("null header %q", h)
	}
	if _, err := NewFlat(e, FlatOptions{Fields: []FlatField{{"source", "nope", "__nope"}}}); err == nil || !strings.Contains(err.Error(), "source.nope") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestChangedFields(t *testing.T) {
	tb := ordersTable()
	tb.Columns = append(tb.Columns, Column{Name: "qty", TypeName: "int4", TypeMod: -1, Optional: true, HasDefault: true, Default: []byte("42")})
	e, err := NewEncoder(DefaultOptions("pgcdc", "shop", "0.1.0"), tb)
	if err != nil {
		t.Fatal(err)
	}
	before := []Datum{txt("1"), txt("hi"), txt("42")}
	after := []Datum{txt("1"), txt("ho"), {Kind: DatumNull}} // null differs from 42 although the JSON would write the default
	ch, un, err := e.ChangedFields(before, after)
	if err != nil || strings.Join(ch, ",") != "note,qty" || strings.Join(un, ",") != "id" {
		t.Errorf("changed %v unchanged %v %v", ch, un, err)
	}
}

// Shaping and name adjustment together: field.name.adjustment.mode names the value's and the
// key's fields, of mapped columns too, and the names ChangedFields lists and Flat drops;
// schema.name.adjustment.mode names the schemas derived from the topic, while a
// ByLogicalTableRouter name (Table.SchemaName) is used as the transform gives it (its own
// schema.name.adjustment.mode defaults to none in Debezium 3.6.1).
func TestShapingWithNameAdjustment(t *testing.T) {
	tb := Table{Schema: "public", Name: "Line Items", Key: []int{0, 1}, Columns: []Column{
		{Name: "Item Id", TypeName: "int4", TypeMod: -1},
		{Name: "e-mail", TypeName: "text", TypeMod: -1, Mapper: &Mapper{Kind: MaskChars, N: 3}},
		{Name: "a.b", TypeName: "text", TypeMod: -1, Optional: true},
		{Name: "se cret", TypeName: "text", TypeMod: -1, Optional: true, Omit: true},
	}}
	opts := DefaultOptions("p_x", "db", "v")
	opts.SchemaNameAdjustment, opts.FieldNameAdjustment = AdjustAvroUnicode, AdjustAvro
	e, err := NewEncoder(opts, tb)
	if err != nil {
		t.Fatal(err)
	}
	before := []Datum{txt("1"), txt("a@x"), txt("x"), txt("s")}
	after := []Datum{txt("1"), txt("a@x"), txt("y"), txt("s")}
	key, _, _ := e.AppendKey(nil, after)
	keySchema := `{"type":"struct","fields":[{"type":"int32","optional":false,"field":"Item_Id"},{"type":"string","optional":false,"field":"e_mail"}],"optional":false,"name":"p_u005fx.public.Line_u005fItems.Key"}`
	wantKey := `{"schema":` + keySchema + `,"payload":{"Item_Id":1,"e_mail":"a@x"}}`
	if string(key) != wantKey {
		t.Errorf("key (the column's own value and schema, the adjusted field name)\n got %s\nwant %s", key, wantKey)
	}
	val, _ := e.AppendValue(nil, OpUpdate, before, after, Source{}, nil, procTm)
	for _, want := range []string{`"name":"p_u005fx.public.Line_u005fItems.Value"`, `"name":"p_u005fx.public.Line_u005fItems.Envelope"`,
		`{"type":"string","optional":false,"parameters":{"masked":"true"},"field":"e_mail"}`, `"after":{"Item_Id":1,"e_mail":"***","a_b":"y"}`} {
		if !strings.Contains(string(val), want) {
			t.Errorf("value lacks %s: %s", want, val)
		}
	}
	if strings.Contains(string(val), "cret") {
		t.Errorf("the omitted column is in the value: %s", val)
	}
	changed, unchanged, err := e.ChangedFields(before, after)
	if err != nil || strings.Join(changed, ",") != "a_b" || strings.Join(unchanged, ",") != "Item_Id,e_mail" {
		t.Errorf("ChangedFields: changed %v, unchanged %v (%v)", changed, unchanged, err)
	}
	f, err := NewFlat(e, FlatOptions{DropKeepSchemaCompatible: true})
	if err != nil {
		t.Fatal(err)
	}
	flat, _ := f.AppendValue(nil, OpUpdate, after, Source{}, nil, procTm, []string{"a_b"})
	if s := string(flat); !strings.Contains(s, `"payload":{"Item_Id":1,"e_mail":"***"}`) || strings.Contains(s, `"a_b"`) {
		t.Errorf("flat value without the dropped field a_b: %s", s)
	}
	fk, _, _ := f.AppendKey(nil, after, []string{"e_mail"}) // a required key field: kept
	if string(fk) != wantKey {
		t.Errorf("flat key %s", fk)
	}
	f, err = NewFlat(e, FlatOptions{DropKeepSchemaCompatible: false})
	if err != nil {
		t.Fatal(err)
	}
	fk, _, _ = f.AppendKey(nil, after, []string{"e_mail"}) // without keep_schema_compatible: dropped
	wantCut := `{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"Item_Id"}],"optional":false,"name":"p_u005fx.public.Line_u005fItems.Key"},"payload":{"Item_Id":1}}`
	if string(fk) != wantCut {
		t.Errorf("flat key without e_mail\n got %s\nwant %s", fk, wantCut)
	}

	tb.SchemaName = "p-x.all_items"
	tb.KeyFields = []KeyField{{"__dbz__physicalTableIdentifier", "p_x.public.Line_Items"}}
	r, err := NewEncoder(opts, tb)
	if err != nil {
		t.Fatal(err)
	}
	key, _, _ = r.AppendKey(nil, after)
	if want := `"fields":[{"type":"int32","optional":false,"field":"Item_Id"},{"type":"string","optional":false,"field":"e_mail"},{"type":"string","optional":false,"field":"__dbz__physicalTableIdentifier"}],"optional":false,"name":"p-x.all_items.Key"}`; !strings.Contains(string(key), want) {
		t.Errorf("routed key lacks %s: %s", want, key)
	}
	val, _ = r.AppendValue(nil, OpCreate, nil, after, Source{}, nil, procTm)
	if !strings.Contains(string(val), `"name":"p-x.all_items.Value"`) || !strings.Contains(string(val), `"name":"p-x.all_items.Envelope"`) {
		t.Errorf("routed value schema names: %s", val)
	}
}
