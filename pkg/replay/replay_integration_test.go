package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/event"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// partitionHeader makes the test writer put a record on the partition it names.
const partitionHeader = "test.partition"

type headerBalancer struct{}

func (headerBalancer) Balance(m kafka.Message, _ ...int) int {
	for _, h := range m.Headers {
		if h.Key == partitionHeader {
			p, _ := strconv.Atoi(string(h.Value))
			return p
		}
	}
	return 0
}

// feed writes hand-made pgcdc records, as pgcdc's encoder writes them.
type feed struct {
	t       *testing.T
	w       *kafka.Writer
	enc     map[string]*event.Encoder
	parts   int
	lsn     uint64
	pending []kafka.Message
}

func newFeed(t *testing.T, brokers []string, prefix string, schemas bool, parts int, tables ...event.Table) *feed {
	f := &feed{t: t, parts: parts, enc: map[string]*event.Encoder{}, lsn: 1000,
		w: &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: headerBalancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 10000}}
	t.Cleanup(func() { f.w.Close() })
	for _, tb := range tables {
		opts := event.DefaultOptions(prefix, "src", "test")
		opts.KeySchemas, opts.ValueSchemas = schemas, schemas
		e, err := event.NewEncoder(opts, tb)
		if err != nil {
			t.Fatal(err)
		}
		f.enc[tb.Name] = e
		testenv.CreateTopic(t, brokers, e.Topic(), parts)
	}
	return f
}

func text(vals ...string) []event.Datum {
	out := make([]event.Datum, len(vals))
	for i, v := range vals {
		switch v {
		case "<null>":
			out[i] = event.Datum{Kind: event.DatumNull}
		case "<toast>":
			out[i] = event.Datum{Kind: event.DatumUnchanged}
		default:
			out[i] = event.Datum{Kind: event.DatumText, Text: []byte(v)}
		}
	}
	return out
}

// emit adds one event (and a tombstone after a delete) on partition part, at the next LSN.
func (f *feed) emit(table string, part int, op event.Op, before, after []event.Datum) {
	f.t.Helper()
	e := f.enc[table]
	f.lsn += 10
	var key []byte
	if e.HasKey() && op != event.OpTruncate {
		row := after
		if row == nil {
			row = before
		}
		var err error
		if key, _, err = e.AppendKey(nil, row); err != nil {
			f.t.Fatal(err)
		}
	}
	val, err := e.AppendValue(nil, op, before, after, event.Source{LSN: f.lsn, TxID: 1}, nil, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	h := []kafka.Header{{Key: partitionHeader, Value: []byte(strconv.Itoa(part))}}
	f.pending = append(f.pending, kafka.Message{Topic: e.Topic(), Key: key, Value: val, Headers: h})
	if op == event.OpDelete && key != nil {
		f.pending = append(f.pending, kafka.Message{Topic: e.Topic(), Key: key, Value: nil, Headers: h})
	}
}

func (f *feed) flush() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.w.WriteMessages(ctx, f.pending...); err != nil {
		f.t.Fatal(err)
	}
	f.pending = nil
}

var itemsTable = event.Table{Schema: "public", Name: "items", Key: []int{0}, Columns: []event.Column{
	{Name: "id", TypeName: "int4", TypeMod: -1},
	{Name: "name", TypeName: "text", TypeMod: -1, Optional: true},
	{Name: "body", TypeName: "text", TypeMod: -1, Optional: true},
	{Name: "n", TypeName: "numeric", TypeMod: (10<<16 | 2) + 4, Optional: true},
}}

var logsTable = event.Table{Schema: "public", Name: "logs", Columns: []event.Column{
	{Name: "tag", TypeName: "text", TypeMod: -1, Optional: true},
	{Name: "v", TypeName: "int4", TypeMod: -1, Optional: true},
}}

const targetDDL = `CREATE TABLE items (id int4 PRIMARY KEY, name text, body text, n numeric(10,2));
	CREATE TABLE logs (tag text, v int4)`

func queryStrings(t *testing.T, db *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func runReplay(t *testing.T, o Options) (Stats, error) {
	t.Helper()
	o.UntilEnd = true
	o.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Run(ctx, o)
}

// TestReplayEngine applies hand-made records covering what pgcdc's stream cannot produce yet
// (truncate events) or only rarely (placeholders): truncates ordered across three partitions, a
// keyless table, a primary-key change, an unchanged TOAST value that keeps the target's value
// across runs, resume from the stored offsets, and a full second replay yielding the same rows.
func TestReplayEngine(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	for _, schemas := range []bool{true, false} {
		t.Run(map[bool]string{true: "schemas", false: "no-schemas"}[schemas], func(t *testing.T) {
			prefix := testenv.UniqueName(t, "r")
			dsn, db := newTarget(t)
			if !schemas {
				if _, err := db.Exec(context.Background(), targetDDL); err != nil {
					t.Fatal(err)
				}
			}
			f := newFeed(t, brokers, prefix, schemas, 3, itemsTable, logsTable)
			p := func(id int) int { return id % 3 }
			for id := 1; id <= 6; id++ {
				f.emit("items", p(id), event.OpCreate, nil, text(strconv.Itoa(id), "n"+strconv.Itoa(id), "body", "1.50"))
			}
			f.emit("items", p(2), event.OpUpdate, nil, text("2", "two", "<toast>", "2.25"))
			f.emit("items", p(3), event.OpDelete, text("3", "<null>", "<null>", "<null>"), nil)
			f.emit("items", p(4), event.OpDelete, text("4", "<null>", "<null>", "<null>"), nil) // key change 4 => 40
			f.emit("items", p(40), event.OpCreate, nil, text("40", "forty", "b40", "40.00"))
			// the truncate sits on partition 1; events after it on partitions 0 and 2 must wait for it
			f.emit("items", 1, event.OpTruncate, nil, nil)
			f.emit("items", p(9), event.OpCreate, nil, text("9", "nine", "long body", "9.99"))
			f.emit("items", p(8), event.OpCreate, nil, text("8", "eight", "b8", "-0.01"))
			f.emit("items", p(7), event.OpCreate, nil, text("7", "seven", "b7", "7.00"))
			f.emit("items", p(7), event.OpUpdate, nil, text("7", "SEVEN", "<toast>", "7.70")) // same batch: takes "b7"
			// keyless table (REPLICA IDENTITY FULL before images), one partition
			f.emit("logs", 0, event.OpCreate, nil, text("a", "1"))
			f.emit("logs", 0, event.OpCreate, nil, text("b", "2"))
			f.emit("logs", 0, event.OpCreate, nil, text("a", "1"))
			f.emit("logs", 0, event.OpUpdate, text("a", "1"), text("a", "5"))
			f.emit("logs", 0, event.OpDelete, text("b", "2"), nil)
			f.flush()

			opts := Options{Brokers: brokers, TopicPrefix: prefix, Target: dsn, CreateTables: schemas, BatchSize: 3, Workers: 3}
			st, err := runReplay(t, opts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Records != 22 || st.Rows != 20 { // 20 events + 2 tombstones (keyless deletes have none)
				t.Fatalf("stats %+v, want 22 records, 20 rows", st)
			}
			items := `SELECT format('%s|%s|%s|%s', id, name, body, n) FROM items ORDER BY id`
			want := []string{"7|SEVEN|b7|7.70", "8|eight|b8|-0.01", "9|nine|long body|9.99"}
			if got := queryStrings(t, db, items); strings.Join(got, ";") != strings.Join(want, ";") {
				t.Fatalf("items after replay:\n got %v\nwant %v", got, want)
			}
			logs := `SELECT format('%s|%s', tag, v) FROM logs ORDER BY tag, v`
			if got := queryStrings(t, db, logs); strings.Join(got, ";") != "a|1;a|5" {
				t.Fatalf("logs after replay: %v", got)
			}

			// A later TOAST-unchanged update, in a run of its own: the target keeps the body.
			f.emit("items", p(9), event.OpUpdate, nil, text("9", "NINE", "<toast>", "9.99"))
			f.flush()
			if st, err = runReplay(t, opts); err != nil {
				t.Fatal(err)
			}
			if st.Records != 1 {
				t.Fatalf("resumed run applied %d records, want 1 (the new one)", st.Records)
			}
			want[2] = "9|NINE|long body|9.99"
			if got := queryStrings(t, db, items); strings.Join(got, ";") != strings.Join(want, ";") {
				t.Fatalf("items after the TOAST update:\n got %v\nwant %v", got, want)
			}
			offsets := queryStrings(t, db, `SELECT format('%s/%s=%s', topic, partition, next_offset) FROM pgcdc_replay_offsets ORDER BY 1`)
			if len(offsets) != 4 { // items: 3 partitions, logs: partition 0
				t.Fatalf("offsets: %v", offsets)
			}

			// Replaying everything again over the same target yields the same rows.
			if _, err := db.Exec(context.Background(), `DELETE FROM pgcdc_replay_offsets WHERE topic LIKE '%items'`); err != nil {
				t.Fatal(err)
			}
			if st, err = runReplay(t, opts); err != nil {
				t.Fatal(err)
			}
			if got := queryStrings(t, db, items); strings.Join(got, ";") != strings.Join(want, ";") || st.Records != 18 {
				t.Fatalf("second full replay (%d records):\n got %v\nwant %v", st.Records, got, want)
			}
		})
	}
}

// TestReplayRefusals: what replay cannot do ends it at once with the reason.
func TestReplayRefusals(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	prefix := testenv.UniqueName(t, "r")
	dsn := testenv.NewDatabase(t)
	f := newFeed(t, brokers, prefix, false, 1, itemsTable)
	f.emit("items", 0, event.OpCreate, nil, text("1", "a", "b", "1.00"))
	f.flush()
	opts := Options{Brokers: brokers, TopicPrefix: prefix, Target: dsn}
	_, err := runReplay(t, opts)
	if err == nil || !strings.Contains(err.Error(), "public.items does not exist") {
		t.Fatalf("missing table without --create-tables: %v", err)
	}
	opts.CreateTables = true
	if _, err = runReplay(t, opts); err == nil || !strings.Contains(err.Error(), "carry no schema") {
		t.Fatalf("--create-tables without schemas: %v", err)
	}
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(context.Background(), `CREATE TABLE items (id int4 PRIMARY KEY, name text, n numeric(10,2))`); err != nil {
		t.Fatal(err)
	}
	if _, err = runReplay(t, opts); err == nil || !strings.Contains(err.Error(), `column "body"`) {
		t.Fatalf("column missing in the target: %v", err)
	}
	if _, err := db.Exec(context.Background(), `ALTER TABLE items ADD COLUMN body int4`); err != nil {
		t.Fatal(err)
	}
	if _, err = runReplay(t, opts); err == nil || !strings.Contains(err.Error(), `column "body" (integer)`) || !strings.Contains(err.Error(), "expected an integer") {
		t.Fatalf("type mismatch: %v", err)
	}

	// A compacted topic of a table with TOASTable columns.
	topic := prefix + ".public.docs"
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil {
		t.Fatal(err)
	}
	docs := itemsTable
	docs.Name = "docs"
	g := newFeed(t, brokers, prefix, true, 1, docs)
	g.emit("docs", 0, event.OpCreate, nil, text("1", "a", "b", "1.00"))
	g.flush()
	opts = Options{Brokers: brokers, Topics: []string{topic}, Target: dsn, CreateTables: true}
	_, err = runReplay(t, opts)
	if err == nil || !strings.Contains(err.Error(), "compacted") || !strings.Contains(err.Error(), "name, body") {
		t.Fatalf("compacted topic with TOASTable columns: %v", err)
	}
	opts.AllowCompactedTOAST = true
	if _, err = runReplay(t, opts); err != nil {
		t.Fatalf("--allow-compacted-toast: %v", err)
	}
	if got := queryStrings(t, db, `SELECT name FROM docs`); len(got) != 1 || got[0] != "a" {
		t.Fatalf("docs: %v", got)
	}
	_ = errors.New
	_ = fmt.Sprint
}
