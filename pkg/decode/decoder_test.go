package decode_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	pg "github.com/pgcdc/pgcdc/internal/pgoutputtest"
	"github.com/pgcdc/pgcdc/internal/spool"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
)

const relID = 16400

var commitTime = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func customersCatalog() *fakeCatalog {
	return &fakeCatalog{tables: map[uint32]decode.CatalogTable{relID: {
		Schema: "public", Name: "customers", Key: []string{"id"}, PrimaryKey: true,
		Columns: []decode.CatalogColumn{{Name: "id", TypeOID: oidInt4, TypeName: "int4", NotNull: true}, {Name: "name", TypeOID: oidText, TypeName: "text"}},
	}}}
}

var customerCols = []pg.Col{{Name: "id", OID: oidInt4, TypeMod: -1, Key: true}, {Name: "name", OID: oidText, TypeMod: -1}}

// msg is a pgoutput message at a WAL position.
type msg struct {
	lsn  pglogrepl.LSN
	data []byte
}

// describe renders a change compactly for comparison.
func describe(ch *decode.Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s@%d", ch.Kind, ch.LSN)
	if ch.Txn != nil {
		fmt.Fprintf(&b, " xid=%d", ch.Txn.Xid)
		if ch.Kind == decode.KindBegin {
			fmt.Fprintf(&b, " begin=%d last=%d", ch.Txn.BeginLSN, ch.Txn.LastCommit)
		}
	}
	if ch.Relation != nil && ch.Kind != decode.KindRelation {
		fmt.Fprintf(&b, " %s", ch.Relation.Name)
	}
	row := func(name string, r []event.Datum) {
		if r == nil {
			return
		}
		parts := make([]string, len(r))
		for i, d := range r {
			switch d.Kind {
			case event.DatumNull:
				parts[i] = "NULL"
			case event.DatumUnchanged:
				parts[i] = "TOAST"
			default:
				parts[i] = string(d.Text)
			}
		}
		fmt.Fprintf(&b, " %s=[%s]", name, strings.Join(parts, " "))
	}
	row("before", ch.Before)
	if ch.BeforeIsKey {
		b.WriteString("(key)")
	}
	row("after", ch.After)
	for _, r := range ch.Relations {
		fmt.Fprintf(&b, " %s", r.Name)
	}
	if ch.Kind == decode.KindMessage {
		fmt.Fprintf(&b, " %s:%s tx=%v", ch.Message.Prefix, ch.Message.Content, ch.Message.Transactional)
	}
	return b.String()
}

func run(t *testing.T, d *decode.Decoder, msgs []msg) ([]string, error) {
	t.Helper()
	var got []string
	for _, m := range msgs {
		err := d.Decode(context.Background(), m.lsn, m.data, func(ch *decode.Change) error {
			got = append(got, describe(ch))
			return nil
		})
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestDecoder(t *testing.T) {
	rel := pg.Relation(0, relID, "public", "customers", 'd', customerCols...)
	cases := []struct {
		name    string
		msgs    []msg
		want    []string
		wantErr string
		idle    bool // Idle() after the messages
	}{
		{
			name: "a transaction of every row change",
			msgs: []msg{
				{100, pg.Begin(190, commitTime, 7)},
				{101, rel},
				{110, pg.Insert(0, relID, pg.Texts("1", "ada"))},
				{120, pg.Update(0, relID, 0, nil, pg.Texts("1", "ada lovelace"))},
				{130, pg.Update(0, relID, 'K', []pg.Value{pg.Text("1"), pg.Null}, pg.Texts("2", "ada lovelace"))},
				{140, pg.Update(0, relID, 'O', pg.Texts("2", "long text"), []pg.Value{pg.Text("2"), pg.Unchanged})},
				{150, pg.Delete(0, relID, 'K', []pg.Value{pg.Text("2"), pg.Null})},
				{160, pg.Truncate(0, relID)},
				{190, pg.Commit(185, 190, commitTime)},
			},
			want: []string{
				"begin@100 xid=7 begin=100 last=0",
				"relation@101 xid=7",
				"insert@110 xid=7 public.customers after=[1 ada]",
				"update@120 xid=7 public.customers after=[1 ada lovelace]",
				"update@130 xid=7 public.customers before=[1 NULL](key) after=[2 ada lovelace]",
				// Unchanged TOAST is taken from the full old row (REPLICA IDENTITY FULL).
				"update@140 xid=7 public.customers before=[2 long text] after=[2 long text]",
				"delete@150 xid=7 public.customers before=[2 NULL](key)",
				"truncate@160 xid=7 public.customers",
				"commit@190 xid=7",
			},
			idle: true,
		},
		{
			name: "the next transaction carries the previous commit's end",
			msgs: []msg{
				{100, pg.Begin(150, commitTime, 7)}, {101, rel}, {110, pg.Insert(0, relID, pg.Texts("1", "a"))}, {150, pg.Commit(140, 150, commitTime)},
				{200, pg.Begin(250, commitTime, 8)}, {210, pg.Insert(0, relID, pg.Texts("2", "b"))}, {250, pg.Commit(240, 250, commitTime)},
			},
			want: []string{
				"begin@100 xid=7 begin=100 last=0", "relation@101 xid=7", "insert@110 xid=7 public.customers after=[1 a]", "commit@150 xid=7",
				"begin@200 xid=8 begin=200 last=150", "insert@210 xid=8 public.customers after=[2 b]", "commit@250 xid=8",
			},
			idle: true,
		},
		{
			name: "unchanged TOAST without an old row stays unchanged",
			msgs: []msg{{100, pg.Begin(150, commitTime, 7)}, {101, rel}, {110, pg.Update(0, relID, 0, nil, []pg.Value{pg.Text("1"), pg.Unchanged})}},
			want: []string{"begin@100 xid=7 begin=100 last=0", "relation@101 xid=7", "update@110 xid=7 public.customers after=[1 TOAST]"},
		},
		{
			name: "messages in and outside transactions",
			msgs: []msg{
				{90, pg.Message(0, false, 90, "audit", []byte("alone"))},
				{100, pg.Begin(150, commitTime, 7)},
				{110, pg.Message(0, true, 110, "outbox", []byte("in"))},
				{150, pg.Commit(140, 150, commitTime)},
			},
			want: []string{
				"message@90 audit:alone tx=false",
				"begin@100 xid=7 begin=100 last=0", "message@110 xid=7 outbox:in tx=true", "commit@150 xid=7",
			},
			idle: true,
		},
		{
			name:    "a change outside a transaction",
			msgs:    []msg{{101, rel}, {110, pg.Insert(0, relID, pg.Texts("1", "a"))}},
			want:    []string{"relation@101"},
			wantErr: "insert at LSN 0/6E outside a transaction",
		},
		{
			name:    "a change before its relation",
			msgs:    []msg{{100, pg.Begin(150, commitTime, 7)}, {110, pg.Insert(0, relID, pg.Texts("1", "a"))}},
			want:    []string{"begin@100 xid=7 begin=100 last=0"},
			wantErr: "before its Relation message",
		},
		{
			name:    "a commit outside a transaction",
			msgs:    []msg{{150, pg.Commit(140, 150, commitTime)}},
			wantErr: "commit at LSN 0/96 outside a transaction",
			idle:    true,
		},
		{
			name:    "a malformed message names its LSN",
			msgs:    []msg{{0x1_0000_0010, []byte{'I', 0, 0}}},
			wantErr: "cannot decode the pgoutput message at LSN 1/10",
			idle:    true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decode.NewDecoder(decode.NewRelations(customersCatalog()), nil)
			got, err := run(t, d, c.msgs)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if c.wantErr == "" && d.Idle() != c.idle {
				t.Fatalf("Idle() = %v, want %v", d.Idle(), c.idle)
			}
		})
	}
}

// Protocol 2: a transaction streamed while in progress leaves the decoder only at its Stream
// Commit, as one transaction; a subtransaction rolled back to its savepoint is dropped, a whole
// aborted transaction leaves nothing, and an interleaved one is kept apart.
func TestDecoderStreamedTransactions(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	d := decode.NewDecoder(decode.NewRelations(customersCatalog()), sp)
	const xid, sub, other = 700, 701, 800
	msgs := []msg{
		{100, pg.StreamStart(xid, true)},
		{101, pg.Relation(xid, relID, "public", "customers", 'd', customerCols...)},
		{110, pg.Insert(xid, relID, pg.Texts("1", "kept"))},
		{111, pg.StreamStop()},
		{120, pg.StreamStart(other, true)},
		{121, pg.Relation(other, relID, "public", "customers", 'd', customerCols...)},
		{122, pg.Insert(other, relID, pg.Texts("9", "aborted"))},
		{123, pg.StreamStop()},
		{130, pg.StreamStart(xid, false)},
		{131, pg.Insert(sub, relID, pg.Texts("2", "rolled back"))},
		{132, pg.Insert(xid, relID, pg.Texts("3", "kept too"))},
		{133, pg.StreamStop()},
		{140, pg.StreamAbort(xid, sub)},
	}
	got, err := run(t, d, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("changes before the commit: %v", got)
	}
	if d.Idle() || !d.AtBoundary() {
		t.Fatalf("with spooled transactions: Idle() = %v (want false), AtBoundary() = %v (want true)", d.Idle(), d.AtBoundary())
	}
	got, err = run(t, d, []msg{{150, pg.StreamAbort(other, other)}, {160, pg.StreamCommit(xid, 155, 160, commitTime)}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"begin@101 xid=700 begin=101 last=0", "relation@101 xid=700",
		"insert@110 xid=700 public.customers after=[1 kept]", "insert@132 xid=700 public.customers after=[3 kept too]",
		"commit@160 xid=700",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !d.Idle() {
		t.Fatal("not idle after every streamed transaction ended")
	}
}

// Reset forgets what a broken session left half done.
func TestDecoderReset(t *testing.T) {
	d := decode.NewDecoder(decode.NewRelations(customersCatalog()), nil)
	rel := pg.Relation(0, relID, "public", "customers", 'd', customerCols...)
	if _, err := run(t, d, []msg{{100, pg.Begin(150, commitTime, 7)}, {101, rel}, {110, pg.Insert(0, relID, pg.Texts("1", "a"))}}); err != nil {
		t.Fatal(err)
	}
	if d.Idle() || d.AtBoundary() {
		t.Fatal("idle in the middle of a transaction")
	}
	if err := d.Reset(); err != nil {
		t.Fatal(err)
	}
	if !d.Idle() {
		t.Fatal("not idle after Reset")
	}
	if _, err := run(t, d, []msg{{100, pg.Begin(150, commitTime, 7)}, {110, pg.Insert(0, relID, pg.Texts("1", "a"))}}); err == nil || !strings.Contains(err.Error(), "before its Relation message") {
		t.Fatalf("relation kept across Reset: %v", err)
	}
}

func TestParse(t *testing.T) {
	valid := pg.Insert(0, relID, pg.Texts("1", "ada"))
	msg, err := decode.Parse(valid, false)
	if err != nil {
		t.Fatalf("valid insert: %v", err)
	}
	ins2, ok := msg.(*pglogrepl.InsertMessageV2) // ParseV2 returns the V2 types, as the decoder expects
	if !ok {
		t.Fatalf("valid insert parsed as %T", msg)
	}
	if ins := &ins2.InsertMessage; ins.RelationID != relID || len(ins.Tuple.Columns) != 2 || string(ins.Tuple.Columns[1].Data) != "ada" {
		t.Fatalf("valid insert parsed as %+v", ins)
	}
	// A tuple whose column claims more bytes than the message has: pglogrepl's TupleData.Decode
	// indexes past the end (it does no bounds checking) and panics.
	overlong := pg.Insert(0, relID, pg.Texts("ab"))
	binary.BigEndian.PutUint32(overlong[len(overlong)-6:], 100)
	// A tuple that announces more columns than it carries.
	missingCols := pg.Insert(0, relID, pg.Texts("1"))
	binary.BigEndian.PutUint16(missingCols[6:], 3)
	cases := []struct {
		name     string
		data     []byte
		inStream bool
		want     []string
	}{
		{"empty", nil, false, []string{"empty message"}},
		{"truncated insert", []byte{'I', 0, 0}, false, nil},
		{"insert without tuple", pg.Insert(0, relID, nil)[:5], false, nil},
		{"insert with bad tuple type", append(pg.Insert(0, relID, nil)[:5], 'X', 0, 0, 0), false, nil},
		{"column longer than the message", overlong, false, []string{"malformed message", `'I'`}},
		{"more columns announced than sent", missingCols, false, []string{"malformed message"}},
		{"truncated update", []byte{'U', 0, 0, 0x40, 0x10, 'N'}, false, nil},
		{"truncated delete", []byte{'D', 0, 0}, false, nil},
		{"truncated relation", []byte{'R', 0, 0, 0x40}, false, nil},
		{"truncated begin", []byte{'B', 0, 0, 0, 0}, false, nil},
		{"truncated commit", []byte{'C', 0}, false, nil},
		{"truncated truncate", []byte{'T', 0}, false, nil},
		{"truncated stream start", []byte{'S', 0}, false, nil},
		{"truncated insert in a stream", []byte{'I', 0, 0, 0, 1, 0}, true, nil},
		{"unknown message type", []byte{'Z', 1, 2, 3}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var msg pglogrepl.Message
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Parse panicked: %v", r)
					}
				}()
				msg, err = decode.Parse(c.data, c.inStream)
			}()
			if err == nil {
				t.Fatalf("no error; parsed %#v", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A catalog whose answers a test changes between calls (DDL happening meanwhile).
type changingCatalog struct {
	table decode.CatalogTable
	types map[uint32]decode.CatalogType
}

func (c *changingCatalog) Describe(context.Context, uint32) (decode.CatalogTable, error) {
	return c.table, nil
}

func (c *changingCatalog) DescribeType(_ context.Context, oid uint32) (decode.CatalogType, error) {
	t, ok := c.types[oid]
	if !ok {
		return t, fmt.Errorf("catalog: type %d: %w", oid, pgx.ErrNoRows)
	}
	return t, nil
}

// Schema changes between the write and the decode: every value is described with the column as it
// was when the change was written.
func TestDecoderSchemaAsOfTheChange(t *testing.T) {
	const moodOID, colourOID = 16390, 16395
	mood := decode.CatalogColumn{Name: "mood", TypeOID: moodOID, TypeName: "mood", TypeMod: -1, EnumValues: []string{"happy", "sad"}}
	cat := &changingCatalog{table: decode.CatalogTable{Schema: "public", Name: "customers", Key: []string{"id"}, PrimaryKey: true,
		Columns: []decode.CatalogColumn{{Name: "id", TypeOID: oidInt4, TypeName: "int4", NotNull: true}, mood}}}
	d := decode.NewDecoder(decode.NewRelations(cat), nil)
	var rels []*decode.Relation
	var rows []string
	decodeAll := func(msgs ...msg) {
		t.Helper()
		for _, m := range msgs {
			if err := d.Decode(context.Background(), m.lsn, m.data, func(ch *decode.Change) error {
				switch ch.Kind {
				case decode.KindRelation:
					rels = append(rels, ch.Relation)
				case decode.KindInsert:
					rows = append(rows, fmt.Sprintf("%s:%v", ch.Relation.Table.Columns[1].TypeName, ch.Relation.Table.Columns[1].EnumValues))
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	moodCols := []pg.Col{{Name: "id", OID: oidInt4, TypeMod: -1, Key: true}, {Name: "mood", OID: moodOID, TypeMod: -1}}
	decodeAll(msg{100, pg.Begin(200, commitTime, 7)}, msg{101, pg.Relation(0, relID, "public", "customers", 'd', moodCols...)},
		msg{110, pg.Insert(0, relID, pg.Texts("1", "happy"))})
	// ALTER TYPE mood ADD VALUE 'ok', then a row with it: the labels read earlier lack it.
	cat.table.Columns[1].EnumValues = []string{"happy", "ok", "sad"}
	decodeAll(msg{120, pg.Insert(0, relID, pg.Texts("2", "ok"))})
	if len(rels) != 2 {
		t.Fatalf("%d relation descriptions, want 2 (the second after the new label)", len(rels))
	}
	want := []string{"mood:[happy sad]", "mood:[happy ok sad]"}
	if strings.Join(rows, " ") != strings.Join(want, " ") {
		t.Fatalf("rows %v, want %v", rows, want)
	}

	// The column's type changed since (ALTER COLUMN ... TYPE colour): a change written before it
	// comes with the old type's OID, described by OID; a type dropped since keeps the name its
	// Type message gave.
	cat.table.Columns[1] = decode.CatalogColumn{Name: "mood", TypeOID: colourOID, TypeName: "colour", TypeMod: -1}
	cat.types = map[uint32]decode.CatalogType{moodOID: {TypeName: "mood", TypeMod: -1, EnumValues: []string{"happy", "ok", "sad"}}}
	rels = nil
	decodeAll(msg{130, pg.Relation(0, relID, "public", "customers", 'd', moodCols...)})
	if c := rels[0].Table.Columns[1]; c.TypeName != "mood" || len(c.EnumValues) != 3 {
		t.Fatalf("column described as %+v, want the old type mood with its labels", c)
	}
	delete(cat.types, moodOID)
	typeMsg := []byte{'Y'}
	typeMsg = binary.BigEndian.AppendUint32(typeMsg, moodOID)
	typeMsg = append(append(typeMsg, "public"...), 0)
	typeMsg = append(append(typeMsg, "mood"...), 0)
	decodeAll(msg{140, typeMsg}, msg{141, pg.Relation(0, relID, "public", "customers", 'd', moodCols...)})
	if c := rels[1].Table.Columns[1]; c.TypeName != "public.mood" {
		t.Fatalf("dropped type described as %+v, want the Type message's name", c)
	}
}
