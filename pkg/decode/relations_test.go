package decode_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
)

// Built-in type OIDs (pg_type.dat).
const (
	oidBool    = 16
	oidInt8    = 20
	oidInt4    = 23
	oidText    = 25
	oidVarchar = 1043
	oidCustom  = 16385 // a user type (enum, domain, composite): OIDs >= 16384
)

type col struct {
	name string
	oid  uint32
	mod  int32
}

func relMsg(cols ...col) *pglogrepl.RelationMessage {
	m := &pglogrepl.RelationMessage{RelationID: 16400, Namespace: "public", RelationName: "customers", ReplicaIdentity: 'd'}
	for _, c := range cols {
		// Flags deliberately mark every column as key (as under REPLICA IDENTITY FULL): the key must
		// come from the catalog, never from these flags.
		m.Columns = append(m.Columns, &pglogrepl.RelationMessageColumn{Flags: 1, Name: c.name, DataType: c.oid, TypeModifier: c.mod})
	}
	m.ColumnNum = uint16(len(m.Columns))
	return m
}

func TestBuildTable(t *testing.T) {
	catalog := decode.CatalogTable{
		Schema: "public", Name: "customers", Identity: 'd', Key: []string{"id"}, PrimaryKey: true,
		// Catalog order differs from the message's on purpose: the message's order is the tuple order.
		Columns: []decode.CatalogColumn{
			{Name: "email", TypeOID: oidVarchar, TypeName: "varchar", TypeMod: 104},
			{Name: "id", TypeOID: oidInt4, TypeName: "int4", TypeMod: -1, NotNull: true},
			{Name: "status", TypeOID: oidCustom, TypeName: "status", TypeMod: -1, NotNull: true, EnumValues: []string{"active", "gone"}},
			{Name: "name", TypeOID: oidText, TypeName: "text", TypeMod: -1},
		},
	}
	msgCols := []col{{"id", oidInt4, -1}, {"name", oidText, -1}, {"email", oidVarchar, 104}, {"status", oidCustom, -1}}

	cases := []struct {
		name    string
		msg     *pglogrepl.RelationMessage
		cat     func(c *decode.CatalogTable)
		want    []event.Column
		wantKey []int
		wantErr []string
	}{
		{
			name: "columns in message order, catalog details joined by name",
			msg:  relMsg(msgCols...),
			want: []event.Column{
				{Name: "id", TypeOID: oidInt4, TypeName: "int4", TypeMod: -1, Optional: false},
				{Name: "name", TypeOID: oidText, TypeName: "text", TypeMod: -1, Optional: true},
				{Name: "email", TypeOID: oidVarchar, TypeName: "varchar", TypeMod: 104, Optional: true},
				{Name: "status", TypeOID: oidCustom, TypeName: "status", TypeMod: -1, Optional: false, EnumValues: []string{"active", "gone"}},
			},
			wantKey: []int{0},
		},
		{
			name: "composite key in catalog key order",
			msg:  relMsg(msgCols...),
			cat:  func(c *decode.CatalogTable) { c.Key = []string{"email", "id"} },
			want: []event.Column{
				{Name: "id", TypeOID: oidInt4, TypeName: "int4", TypeMod: -1, Optional: false},
				{Name: "name", TypeOID: oidText, TypeName: "text", TypeMod: -1, Optional: true},
				// A key column is never optional, even when the catalog does not say NOT NULL.
				{Name: "email", TypeOID: oidVarchar, TypeName: "varchar", TypeMod: 104, Optional: false},
				{Name: "status", TypeOID: oidCustom, TypeName: "status", TypeMod: -1, Optional: false, EnumValues: []string{"active", "gone"}},
			},
			wantKey: []int{2, 0},
		},
		{
			name: "no key: flags of the message ignored",
			msg:  relMsg(msgCols...),
			cat:  func(c *decode.CatalogTable) { c.Key = nil },
			want: []event.Column{
				{Name: "id", TypeOID: oidInt4, TypeName: "int4", TypeMod: -1, Optional: false},
				{Name: "name", TypeOID: oidText, TypeName: "text", TypeMod: -1, Optional: true},
				{Name: "email", TypeOID: oidVarchar, TypeName: "varchar", TypeMod: 104, Optional: true},
				{Name: "status", TypeOID: oidCustom, TypeName: "status", TypeMod: -1, Optional: false, EnumValues: []string{"active", "gone"}},
			},
			wantKey: nil,
		},
		{
			name: "published column list without the key column",
			msg: func() *pglogrepl.RelationMessage {
				m := relMsg(col{"name", oidText, -1}, col{"email", oidVarchar, 104})
				m.ReplicaIdentity = 'f' // every column flagged: the flags cannot stand in for the key
				return m
			}(),
			wantErr: []string{"public.customers", `key column "id"`, "column list"},
		},
		{
			name: "key column renamed since: the replica identity columns the message flags are the key as of the change",
			msg: func() *pglogrepl.RelationMessage {
				m := relMsg(col{"cust_id", oidInt4, -1}, col{"name", oidText, -1})
				m.Columns[1].Flags = 0
				return m
			}(),
			want: []event.Column{
				{Name: "cust_id", TypeOID: oidInt4, TypeName: "int4", TypeMod: -1, Optional: false},
				{Name: "name", TypeOID: oidText, TypeName: "text", TypeMod: -1, Optional: true},
			},
			wantKey: []int{0},
		},
		{
			name: "type modifier as of the change, not as the catalog has it now",
			msg:  relMsg(col{"id", oidInt4, -1}, col{"email", oidVarchar, 54}),
			want: []event.Column{
				{Name: "id", TypeOID: oidInt4, TypeName: "int4", TypeMod: -1, Optional: false},
				{Name: "email", TypeOID: oidVarchar, TypeName: "varchar", TypeMod: 54, Optional: true},
			},
			wantKey: []int{0},
		},
		{
			name: "a domain column's modifier comes from the domain",
			msg:  relMsg(col{"id", oidInt4, -1}, col{"email", oidVarchar, -1}),
			want: []event.Column{
				{Name: "id", TypeOID: oidInt4, TypeName: "int4", TypeMod: -1, Optional: false},
				{Name: "email", TypeOID: oidVarchar, TypeName: "varchar", TypeMod: 104, Optional: true},
			},
			wantKey: []int{0},
		},
		{
			name: "type changed since (built-in OID): name from the OID, catalog's NOT NULL not trusted",
			msg:  relMsg(col{"id", oidInt4, -1}, col{"name", oidInt8, -1}, col{"email", oidBool, -1}),
			cat: func(c *decode.CatalogTable) {
				c.Columns[3].NotNull = true // name: now NOT NULL text in the catalog
			},
			want: []event.Column{
				{Name: "id", TypeOID: oidInt4, TypeName: "int4", TypeMod: -1, Optional: false},
				{Name: "name", TypeOID: oidInt8, TypeName: "int8", TypeMod: -1, Optional: true},
				{Name: "email", TypeOID: oidBool, TypeName: "bool", TypeMod: -1, Optional: true},
			},
			wantKey: []int{0},
		},
		{
			name: "key column whose type changed stays non-optional",
			msg:  relMsg(col{"id", oidInt8, -1}, col{"name", oidText, -1}),
			want: []event.Column{
				{Name: "id", TypeOID: oidInt8, TypeName: "int8", TypeMod: -1, Optional: false},
				{Name: "name", TypeOID: oidText, TypeName: "text", TypeMod: -1, Optional: true},
			},
			wantKey: []int{0},
		},
		{
			name: "column dropped from the catalog since: built-in fallback",
			msg:  relMsg(col{"id", oidInt4, -1}, col{"legacy", oidText, -1}),
			want: []event.Column{
				{Name: "id", TypeOID: oidInt4, TypeName: "int4", TypeMod: -1, Optional: false},
				{Name: "legacy", TypeOID: oidText, TypeName: "text", TypeMod: -1, Optional: true},
			},
			wantKey: []int{0},
		},
		{
			name:    "type changed since to a non-built-in type",
			msg:     relMsg(col{"id", oidInt4, -1}, col{"status", oidCustom + 1, -1}),
			wantErr: []string{"public.customers", `column "status"`, "16386", "not a built-in type"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cat := catalog
			cat.Columns = append([]decode.CatalogColumn(nil), catalog.Columns...)
			cat.Key = append([]string(nil), catalog.Key...)
			if c.cat != nil {
				c.cat(&cat)
			}
			got, err := decode.BuildTable(c.msg, cat, nil)
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("no error; table %+v", got)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Schema != "public" || got.Name != "customers" {
				t.Errorf("table %s.%s", got.Schema, got.Name)
			}
			if !reflect.DeepEqual(got.Columns, c.want) {
				t.Errorf("columns\n got %+v\nwant %+v", got.Columns, c.want)
			}
			if !reflect.DeepEqual(got.Key, c.wantKey) {
				t.Errorf("key %v, want %v", got.Key, c.wantKey)
			}
		})
	}
}

func tuple(cols ...*pglogrepl.TupleDataColumn) *pglogrepl.TupleData {
	return &pglogrepl.TupleData{ColumnNum: uint16(len(cols)), Columns: cols}
}

func tcol(kind byte, data string) *pglogrepl.TupleDataColumn {
	c := &pglogrepl.TupleDataColumn{DataType: kind}
	if kind == 't' || kind == 'b' {
		c.Data, c.Length = []byte(data), uint32(len(data))
	}
	return c
}

func TestRow(t *testing.T) {
	cases := []struct {
		name    string
		tuple   *pglogrepl.TupleData
		want    []event.Datum
		wantErr string
	}{
		{"nil tuple", nil, nil, ""},
		{"empty tuple", tuple(), []event.Datum{}, ""},
		{"null, toast, text", tuple(tcol('n', ""), tcol('u', ""), tcol('t', "42"), tcol('t', "")),
			[]event.Datum{{Kind: event.DatumNull}, {Kind: event.DatumUnchanged}, {Kind: event.DatumText, Text: []byte("42")}, {Kind: event.DatumText, Text: []byte("")}}, ""},
		{"binary rejected", tuple(tcol('t', "1"), tcol('b', "\x00\x01")), nil, "column 1"},
		{"unknown kind rejected", tuple(tcol('x', "")), nil, "column 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decode.Row(make([]event.Datum, 0, 4), c.tuple)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want == nil {
				if got != nil {
					t.Fatalf("got %v, want nil", got)
				}
				return
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d datums, want %d", len(got), len(c.want))
			}
			for i := range got {
				if got[i].Kind != c.want[i].Kind || string(got[i].Text) != string(c.want[i].Text) {
					t.Errorf("datum %d: %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
	// dst is reused: a second call overwrites the first row's datums instead of appending.
	buf, _ := decode.Row(nil, tuple(tcol('t', "a"), tcol('t', "b")))
	buf, _ = decode.Row(buf, tuple(tcol('n', "")))
	if len(buf) != 1 || buf[0].Kind != event.DatumNull {
		t.Fatalf("reused buffer: %+v", buf)
	}
}

type fakeCatalog struct {
	tables map[uint32]decode.CatalogTable
	types  map[uint32]decode.CatalogType
	calls  int
}

func (f *fakeCatalog) DescribeType(_ context.Context, oid uint32) (decode.CatalogType, error) {
	t, ok := f.types[oid]
	if !ok {
		return t, fmt.Errorf("catalog: type %d: %w", oid, pgx.ErrNoRows)
	}
	return t, nil
}

func (f *fakeCatalog) Describe(_ context.Context, id uint32) (decode.CatalogTable, error) {
	f.calls++
	t, ok := f.tables[id]
	if !ok {
		return t, errors.New("no such relation")
	}
	return t, nil
}

func TestRelationsCache(t *testing.T) {
	ctx := context.Background()
	cat := &fakeCatalog{tables: map[uint32]decode.CatalogTable{16400: {
		Schema: "public", Name: "customers", Key: []string{"id"},
		Columns: []decode.CatalogColumn{{Name: "id", TypeOID: oidInt4, TypeName: "int4", NotNull: true}, {Name: "name", TypeOID: oidText, TypeName: "text"}},
	}}}
	rels := decode.NewRelations(cat)
	if _, err := rels.Get(16400); err == nil || !strings.Contains(err.Error(), "before its Relation message") {
		t.Fatalf("Get before Update: %v", err)
	}
	rel, err := rels.Update(ctx, relMsg(col{"id", oidInt4, -1}, col{"name", oidText, -1}))
	if err != nil {
		t.Fatal(err)
	}
	if rel.Name != "public.customers" || rel.ID != 16400 || !reflect.DeepEqual(rel.Key, []int{0}) {
		t.Fatalf("relation: %s (%d) key %v", rel.Name, rel.ID, rel.Key)
	}
	if got, err := rels.Get(16400); err != nil || got != rel {
		t.Fatalf("Get after Update: %v %v", got, err)
	}
	// A new Relation message (schema change) replaces the entry.
	rel2, err := rels.Update(ctx, relMsg(col{"id", oidInt4, -1}))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rels.Get(16400); got != rel2 || len(got.Table.Columns) != 1 {
		t.Fatalf("entry not rebuilt: %+v", got)
	}
	rels.Reset()
	if _, err := rels.Get(16400); err == nil {
		t.Fatal("Get after Reset succeeded")
	}
	m := relMsg(col{"id", oidInt4, -1})
	m.RelationID = 1
	if _, err := rels.Update(ctx, m); err == nil || !strings.Contains(err.Error(), "no such relation") {
		t.Fatalf("catalog error not returned: %v", err)
	}
	// A relation dropped since its changes were written: described from the message alone, the
	// key from the replica identity flags.
	m = &pglogrepl.RelationMessage{RelationID: 2, Namespace: "public", RelationName: "gone", ReplicaIdentity: 'd', ColumnNum: 2,
		Columns: []*pglogrepl.RelationMessageColumn{{Flags: 1, Name: "id", DataType: oidInt4, TypeModifier: -1}, {Name: "v", DataType: oidText, TypeModifier: -1}}}
	rels = decode.NewRelations(noRowsCatalog{})
	rel, err = rels.Update(ctx, m)
	if err != nil {
		t.Fatalf("dropped relation: %v", err)
	}
	if rel.Name != "public.gone" || !reflect.DeepEqual(rel.Key, []int{0}) || rel.Table.Columns[1].TypeName != "text" {
		t.Fatalf("dropped relation described as %s key %v columns %+v", rel.Name, rel.Key, rel.Table.Columns)
	}
}

// noRowsCatalog knows no relation: each was dropped since.
type noRowsCatalog struct{}

func (noRowsCatalog) Describe(_ context.Context, id uint32) (decode.CatalogTable, error) {
	return decode.CatalogTable{}, fmt.Errorf("catalog: relation %d: %w", id, pgx.ErrNoRows)
}

func (noRowsCatalog) DescribeType(_ context.Context, oid uint32) (decode.CatalogType, error) {
	return decode.CatalogType{}, fmt.Errorf("catalog: type %d: %w", oid, pgx.ErrNoRows)
}
