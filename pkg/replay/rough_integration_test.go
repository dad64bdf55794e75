package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/event"
)

// emitKeyChange adds a primary-key change as pgcdc writes it: a delete of the old key (header
// __debezium.newkey, then its tombstone) on oldPart and a create of the new key (header
// __debezium.oldkey) on newPart, both at one source.lsn.
func (f *feed) emitKeyChange(table string, oldPart, newPart int, oldRow, newRow []event.Datum) {
	f.t.Helper()
	e := f.enc[table]
	f.lsn += 10
	oldKey, _, err := e.AppendKey(nil, oldRow)
	if err != nil {
		f.t.Fatal(err)
	}
	newKey, _, err := e.AppendKey(nil, newRow)
	if err != nil {
		f.t.Fatal(err)
	}
	oldHdr, _, _ := e.AppendKeyHeader(nil, oldRow)
	newHdr, _, _ := e.AppendKeyHeader(nil, newRow)
	src := event.Source{LSN: f.lsn, TxID: 1}
	del, err := e.AppendValue(nil, event.OpDelete, oldRow, nil, src, nil, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	cre, err := e.AppendValue(nil, event.OpCreate, nil, newRow, src, nil, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	hp := func(p int) kafka.Header { return kafka.Header{Key: partitionHeader, Value: []byte(strconv.Itoa(p))} }
	f.pending = append(f.pending,
		kafka.Message{Topic: e.Topic(), Key: oldKey, Value: del, Headers: []kafka.Header{hp(oldPart), {Key: headerNewKey, Value: newHdr}}},
		kafka.Message{Topic: e.Topic(), Key: oldKey, Headers: []kafka.Header{hp(oldPart), {Key: headerNewKey, Value: newHdr}}},
		kafka.Message{Topic: e.Topic(), Key: newKey, Value: cre, Headers: []kafka.Header{hp(newPart), {Key: headerOldKey, Value: oldHdr}}})
}

// A primary-key UPDATE of a row whose TOASTed column is unchanged arrives as a create with the
// placeholder: replay fills the column from the old row, also when the delete of the old key sits
// on another partition; when it cannot know the value, it stops at the record's offset (or parks
// it), never writing a wrong value.
func TestReplayKeyChangeCarriesTOAST(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	prefix := testenv.UniqueName(t, "r")
	dsn, db := newTarget(t)
	f := newFeed(t, brokers, prefix, true, 3, itemsTable)
	f.emit("items", 1, event.OpCreate, nil, text("1", "one", "first body", "1.00"))
	f.emit("items", 1, event.OpUpdate, nil, text("1", "one", "newer body", "1.50")) // the state the carry must take
	for i := 0; i < 30; i++ {                                                       // traffic on the other partitions
		id := strconv.Itoa(100 + i)
		f.emit("items", i%3, event.OpCreate, nil, text(id, "x", "b"+id, "0.00"))
	}
	f.emitKeyChange("items", 1, 2, text("1", "<null>", "<null>", "<null>"), text("5", "five", "<toast>", "1.50"))
	f.emit("items", 0, event.OpCreate, nil, text("3", "three", "body three", "3.00"))
	f.emitKeyChange("items", 0, 0, text("3", "<null>", "<null>", "<null>"), text("6", "six", "<toast>", "3.00")) // same partition
	f.emit("items", 2, event.OpUpdate, nil, text("5", "FIVE", "<toast>", "5.50"))                                // after the carry
	f.flush()
	opts := Options{Brokers: brokers, TopicPrefix: prefix, Target: dsn, CreateTables: true, BatchSize: 4, Workers: 3}
	if _, err := runReplay(t, opts); err != nil {
		t.Fatal(err)
	}
	got := queryStrings(t, db, `SELECT format('%s|%s|%s|%s', id, name, body, n) FROM items WHERE id < 100 ORDER BY id`)
	if want := "5|FIVE|newer body|5.50;6|six|body three|3.00"; strings.Join(got, ";") != want {
		t.Fatalf("items: %v, want %s", got, want)
	}
	if left := queryStrings(t, db, `SELECT topic FROM pgcdc_replay_offsets_carry`); len(left) != 0 {
		t.Errorf("saved old rows left behind: %v", left)
	}

	// A key change whose old row replay never saw (its insert is not in the topic): the body is
	// unknown. Replay stops at the create's offset; the rows before it are applied.
	f.emitKeyChange("items", 1, 1, text("7", "<null>", "<null>", "<null>"), text("8", "eight", "<toast>", "8.00"))
	f.emit("items", 1, event.OpCreate, nil, text("9", "nine", "b9", "9.00"))
	f.flush()
	_, err := runReplay(t, opts)
	if err == nil || !strings.Contains(err.Error(), "partition 1 offset") || !strings.Contains(err.Error(), "columns body were unchanged TOAST values") ||
		strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("unknown TOAST value: %v", err)
	}
	if got := queryStrings(t, db, `SELECT id::text FROM items WHERE id IN (8, 9)`); len(got) != 0 {
		t.Fatalf("rows written past the record that cannot be applied: %v", got)
	}
	// With a park file it is set aside with the reason, and replay goes on.
	opts.ParkFile = filepath.Join(t.TempDir(), "parked.jsonl")
	st, err := runReplay(t, opts)
	if err != nil || st.Parked != 1 {
		t.Fatalf("with --park-file: %+v %v", st, err)
	}
	if got := queryStrings(t, db, `SELECT format('%s|%s', id, body) FROM items WHERE id IN (8, 9) ORDER BY id`); strings.Join(got, ";") != "9|b9" {
		t.Fatalf("after parking: %v", got)
	}
	lines := readParkFile(t, opts.ParkFile)
	if len(lines) != 1 || lines[0].Partition != 1 || !strings.Contains(lines[0].Reason, "unchanged TOAST") || lines[0].Value == nil ||
		!strings.Contains(*lines[0].Value, `"eight"`) || len(lines[0].Headers) == 0 {
		t.Fatalf("park file: %+v", lines)
	}
}

func readParkFile(t *testing.T, path string) []parkedRecord {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []parkedRecord
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r parkedRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("park file line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// A malformed record and one the target refuses (a CHECK constraint) stop replay at their offset;
// with --park-topic both go to that topic with the reason, and the records around them are applied.
func TestReplayParkTopic(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	prefix := testenv.UniqueName(t, "r")
	dsn, db := newTarget(t)
	if _, err := db.Exec(context.Background(), targetDDL+`; ALTER TABLE items ADD CHECK (n < 1000)`); err != nil {
		t.Fatal(err)
	}
	f := newFeed(t, brokers, prefix, false, 1, itemsTable, logsTable)
	f.emit("items", 0, event.OpCreate, nil, text("1", "a", "b", "1.00"))
	f.pending = append(f.pending, kafka.Message{Topic: f.enc["items"].Topic(), Key: []byte(`{"id":2}`), Value: []byte(`not json`)})
	f.emit("items", 0, event.OpCreate, nil, text("3", "c", "d", "5000.00")) // violates the CHECK
	f.emit("items", 0, event.OpCreate, nil, text("4", "e", "f", "4.00"))
	f.emit("logs", 0, event.OpCreate, nil, text("x", "1"))
	f.flush()
	opts := Options{Brokers: brokers, TopicPrefix: prefix, Target: dsn, BatchSize: 100, Workers: 2}
	_, err := runReplay(t, opts)
	if err == nil || !strings.Contains(err.Error(), ".public.items partition 0 offset 1") || strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("malformed record: %v", err)
	}
	parkTopic := prefix + ".parked"
	testenv.CreateTopic(t, brokers, parkTopic, 1)
	opts.ParkTopic = parkTopic
	st, err := runReplay(t, opts)
	if err != nil || st.Parked != 2 {
		t.Fatalf("with --park-topic: %+v %v", st, err)
	}
	if got := queryStrings(t, db, `SELECT id::text FROM items ORDER BY id`); strings.Join(got, ",") != "1,4" {
		t.Fatalf("items: %v", got)
	}
	msgs, err := testenv.ReadTopic(context.Background(), brokers, parkTopic, 2, 30*time.Second)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("park topic: %d records, %v", len(msgs), err)
	}
	hdr := func(m kafka.Message, k string) string {
		for _, h := range m.Headers {
			if h.Key == k {
				return string(h.Value)
			}
		}
		return ""
	}
	if string(msgs[0].Value) != "not json" || hdr(msgs[0], HeaderParkOffset) != "1" || !strings.Contains(hdr(msgs[0], HeaderParkReason), "not a JSON object") {
		t.Errorf("first parked: %s %v", msgs[0].Value, msgs[0].Headers)
	}
	if hdr(msgs[1], HeaderParkOffset) != "2" || !strings.Contains(hdr(msgs[1], HeaderParkReason), "check constraint") || hdr(msgs[1], HeaderParkTopic) != prefix+".public.items" {
		t.Errorf("second parked: %v", msgs[1].Headers)
	}
}

// Several topics of one schema that does not exist yet, created with --create-tables: the schema
// and tables are created one topic at a time (concurrent CREATE SCHEMA IF NOT EXISTS fails with a
// duplicate key in pg_namespace).
func TestReplayCreatesOneSchemaForManyTopics(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	prefix := testenv.UniqueName(t, "r")
	dsn := testenv.NewDatabase(t)
	var tables []event.Table
	for i := 0; i < 8; i++ {
		tb := itemsTable
		tb.Schema, tb.Name = "fresh", "t"+strconv.Itoa(i)
		tables = append(tables, tb)
	}
	f := newFeed(t, brokers, prefix, true, 1, tables...)
	for _, tb := range tables {
		f.emit(tb.Name, 0, event.OpCreate, nil, text("1", "a", "b", "1.00"))
	}
	f.flush()
	st, err := runReplay(t, Options{Brokers: brokers, TopicPrefix: prefix, Target: dsn, CreateTables: true, Workers: 4})
	if err != nil || st.Topics != 8 || st.Rows != 8 {
		t.Fatalf("%+v %v", st, err)
	}
}

// A generated column in the target is computed by PostgreSQL: the event's value for it (snapshot
// events carry one) is not written, which PostgreSQL would refuse.
func TestReplayGeneratedColumn(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	prefix := testenv.UniqueName(t, "r")
	dsn, db := newTarget(t)
	if _, err := db.Exec(context.Background(), `CREATE TABLE items (id int4 PRIMARY KEY, name text, body text, n numeric(10,2) GENERATED ALWAYS AS (id * 2) STORED)`); err != nil {
		t.Fatal(err)
	}
	f := newFeed(t, brokers, prefix, true, 1, itemsTable)
	f.emit("items", 0, event.OpRead, nil, text("1", "a", "b", "7.00"))
	f.emit("items", 0, event.OpUpdate, nil, text("1", "A", "b", "7.00"))
	f.flush()
	if _, err := runReplay(t, Options{Brokers: brokers, TopicPrefix: prefix, Target: dsn}); err != nil {
		t.Fatal(err)
	}
	if got := queryStrings(t, db, `SELECT format('%s|%s|%s', id, name, n) FROM items`); strings.Join(got, ";") != "1|A|2.00" {
		t.Fatalf("items: %v", got)
	}
}

// newTarget creates a target database for t and connects to it (closed at cleanup).
func newTarget(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	dsn := testenv.NewDatabase(t)
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return dsn, db
}
