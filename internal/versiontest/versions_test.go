package versiontest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// Id ranges of the scenario's rows in table items.
const (
	snapshotRows = 1000      // ids 1..1000, present before pgcdc first starts
	writerBase   = 1_000_000 // the background writer's inserts
	large1Base   = 2_000_000 // the large transaction with postgres.streaming off
	large2Base   = 3_000_000 // the large transaction with postgres.streaming on
	abortedBase  = 4_000_000 // a large streamed transaction that rolls back: never delivered
	gapID        = 5_000_000 // inserted while the slot was gone: only a snapshot brings it
	largeRows    = 20_000
)

// TestVersions runs the cross-version scenario on every supported PostgreSQL version.
func TestVersions(t *testing.T) {
	testenv.Require(t)
	brokers := testenv.SharedKafka(t)
	pgcdcBinary(t)
	for _, v := range testenv.PostgresVersions {
		t.Run(fmt.Sprintf("pg%d", v), func(t *testing.T) { runScenario(t, v, brokers) })
	}
}

// scenario is one version's run.
type scenario struct {
	t       *testing.T
	version int
	d       *db
	dsn     string
	brokers []string
	vars    map[string]string // pgcdc's configuration
	slot    string
}

func (s *scenario) start(overrides map[string]string) *pgcdc {
	vars := map[string]string{}
	for k, v := range s.vars {
		vars[k] = v
	}
	for k, v := range overrides {
		vars[k] = v
	}
	return runPgcdc(s.t, vars)
}

func runScenario(t *testing.T, version int, brokers []string) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// logical_decoding_work_mem at its minimum: the large transactions exceed it, so the server
	// spills them (streaming off) or streams them in progress (streaming on).
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{Version: version, Settings: map[string]string{"logical_decoding_work_mem": "64kB"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close) // after the database's own cleanup
	if pg.Major != version {
		t.Fatalf("started PostgreSQL %d, want %d", pg.Major, version)
	}
	s := &scenario{t: t, version: version, brokers: brokers, dsn: pg.NewDatabase(t)}
	s.d = connect(t, s.dsn)
	s.slot = testenv.UniqueName(t, "slot")
	prefix := testenv.UniqueName(t, "v")
	s.vars = map[string]string{
		"PGCDC_POSTGRES_DSN":                          s.dsn,
		"PGCDC_POSTGRES_SLOT":                         s.slot,
		"PGCDC_POSTGRES_PUBLICATION":                  testenv.UniqueName(t, "pub"),
		"PGCDC_POSTGRES_STATUS_INTERVAL":              "500ms",
		"PGCDC_POSTGRES_CONNECT_TIMEOUT":              "20s",
		"PGCDC_POSTGRES_PUBLICATION_REFRESH_INTERVAL": "0s",
		"PGCDC_POSTGRES_SPOOL_DIR":                    filepath.Join(t.TempDir(), "spool"),
		"PGCDC_TABLES_INCLUDE":                        "public.items,public.vtypes",
		"PGCDC_KAFKA_BROKERS":                         strings.Join(brokers, ","),
		"PGCDC_KAFKA_TOPIC_PREFIX":                    prefix,
		"PGCDC_KAFKA_CONNECT_TIMEOUT":                 "20s",
		"PGCDC_EVENTS_KEY_SCHEMAS":                    "false",
		"PGCDC_EVENTS_VALUE_SCHEMAS":                  "false",
		"PGCDC_HEARTBEAT_INTERVAL":                    "1s",
		"PGCDC_LOG_PROGRESS_INTERVAL":                 "0s",
		"PGCDC_METRICS_LISTEN":                        "127.0.0.1:0",
	}
	s.d.exec(`CREATE EXTENSION hstore`)
	s.d.exec(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`)
	s.d.exec(`CREATE TABLE items (id bigint PRIMARY KEY, txn int NOT NULL, pad text NOT NULL,
		dbl bigint GENERATED ALWAYS AS (id * 2) STORED)`)
	s.d.exec(typesTableSQL())
	// Publication row filter and column list (PostgreSQL 15+): only EU rows, without the secret.
	s.d.exec(`CREATE TABLE filtered (id int, region text, secret text, PRIMARY KEY (id, region))`)
	filters := map[string]string{
		"PGCDC_TABLES_INCLUDE":     "public.items,public.vtypes,public.filtered",
		"PGCDC_TABLES_ROW_FILTERS": "public.filtered=region = 'eu'",
		"PGCDC_TABLES_COLUMNS":     "public.filtered=id,region",
	}
	if version < 15 {
		p := s.start(filters)
		if st := p.exit(time.Minute); st.ExitCode() == 0 || !strings.Contains(p.out.String(), "need PostgreSQL 15 or newer") {
			t.Fatalf("row filters on PostgreSQL %d: %v, want a refusal:\n%s", version, st, lastBytes(p.out.String(), 3000))
		}
	} else {
		for k, v := range filters {
			s.vars[k] = v
		}
	}
	s.d.exec(`INSERT INTO items (id, txn, pad) SELECT g, 0, md5(g::text) FROM generate_series(1, $1::int) g`, snapshotRows)

	// Phase 1: snapshot, then streaming with protocol v1 (postgres.streaming off).
	p := s.start(map[string]string{"PGCDC_POSTGRES_STREAMING": "false"})
	p.waitLog(`"message":"streaming"`, 90*time.Second)
	for _, q := range typesInsertSQL() {
		s.d.exec(q)
	}
	s.d.exec(`INSERT INTO filtered VALUES (1, 'eu', 's1'), (2, 'us', 's2'), (3, 'eu', 's3')`)
	s.d.exec(`UPDATE filtered SET secret = 's1b' WHERE id = 1`)
	w := startWriter(t, s.dsn)
	w.waitTxns(20)
	s.d.exec(`INSERT INTO items (id, txn, pad) SELECT g, 1, repeat('x', 40) FROM generate_series($1::bigint, $2::bigint) g`, large1Base+1, large1Base+largeRows)
	s.d.waitConfirmed(p, s.slot, s.d.lsn(`SELECT pg_current_wal_insert_lsn()::text`), 2*time.Minute)
	spilled, _ := s.slotStats()
	if spilled == 0 {
		t.Errorf("no transaction spilled to disk with postgres.streaming off (pg_stat_replication_slots.spill_txns = 0): the large transaction did not exceed logical_decoding_work_mem")
	}

	// kill -9 under the running workload; phase 2 streams in-progress transactions (protocol v2).
	p.kill()
	w.waitTxns(w.txns() + 10) // committed while pgcdc is down
	p = s.start(map[string]string{"PGCDC_POSTGRES_STREAMING": "true"})
	p.waitLog(`"message":"streaming"`, 90*time.Second)
	s.d.exec(`INSERT INTO items (id, txn, pad) SELECT g, 2, repeat('y', 40) FROM generate_series($1::bigint, $2::bigint) g`, large2Base+1, large2Base+largeRows)
	s.rollBackLarge()

	// DDL while the writer runs: rows inserted after it carry the new column.
	s.d.exec(`ALTER TABLE items ADD COLUMN note text NOT NULL DEFAULT 'n'`)
	afterDDL := w.nextID()
	w.waitTxns(w.txns() + 10)
	w.stop()
	s.d.waitConfirmed(p, s.slot, s.d.lsn(`SELECT pg_current_wal_insert_lsn()::text`), 2*time.Minute)
	if _, streamed := s.slotStats(); streamed == 0 {
		t.Errorf("no transaction streamed in progress with postgres.streaming on (pg_stat_replication_slots.stream_txns = 0)")
	}
	p.stop()

	topic := prefix + ".public.items"
	s.checkItems(decodeItems(t, readAll(t, brokers, topic)), w, afterDDL)
	s.checkTypes(readAll(t, brokers, prefix+".public.vtypes"))
	if version >= 15 {
		s.checkFiltered(readAll(t, brokers, prefix+".public.filtered"))
	}
	s.recreatedSlot(topic)
	t.Logf("PostgreSQL %d: %d writer transactions, 2 x %d-row transactions (spilled, streamed), scenario took %s",
		version, w.txns(), largeRows, time.Since(began).Round(100*time.Millisecond))
}

// slotStats reads the spilled and streamed transaction counts of the slot (PostgreSQL 14+).
func (s *scenario) slotStats() (spilled, streamed int64) {
	s.t.Helper()
	err := s.d.conn.QueryRow(context.Background(), `SELECT coalesce(sum(spill_txns), 0)::int8, coalesce(sum(stream_txns), 0)::int8
		FROM pg_stat_replication_slots WHERE slot_name = $1`, s.slot).Scan(&spilled, &streamed)
	if err != nil {
		s.t.Fatal(err)
	}
	return spilled, streamed
}

// rollBackLarge streams a transaction larger than logical_decoding_work_mem with a savepoint, then
// rolls it back: none of its rows may reach Kafka.
func (s *scenario) rollBackLarge() {
	s.t.Helper()
	ctx := context.Background()
	tx, err := s.d.conn.Begin(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back below
	for _, q := range []string{
		`INSERT INTO items (id, txn, pad) SELECT g, 3, repeat('z', 40) FROM generate_series($1::bigint, $1::bigint + 5000) g`,
		`SAVEPOINT sp`,
		`INSERT INTO items (id, txn, pad) SELECT g, 3, repeat('z', 40) FROM generate_series($1::bigint + 5001, $1::bigint + 10000) g`,
	} {
		if strings.Contains(q, "$1") {
			_, err = tx.Exec(ctx, q, abortedBase)
		} else {
			_, err = tx.Exec(ctx, q)
		}
		if err != nil {
			s.t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		s.t.Fatal(err)
	}
}

// writer commits small transactions in the background: inserts of new rows, and updates and
// deletes of rows it inserted before.
type writer struct {
	t      *testing.T
	conn   *pgx.Conn
	quit   chan struct{}
	wg     sync.WaitGroup
	next   atomic.Int64 // next id to insert
	n      atomic.Int64 // committed transactions
	mu     sync.Mutex
	err    error
	stopMu sync.Once
}

func startWriter(t *testing.T, dsn string) *writer {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{t: t, conn: conn, quit: make(chan struct{})}
	w.next.Store(writerBase + 1)
	w.wg.Add(1)
	go w.run()
	t.Cleanup(w.stop)
	return w
}

func (w *writer) run() {
	defer w.wg.Done()
	defer w.conn.Close(context.Background())
	for i := 0; ; i++ {
		select {
		case <-w.quit:
			return
		case <-time.After(20 * time.Millisecond):
		}
		// The ids are taken before the transaction runs: ids at or past a value read after a DDL
		// returned belong to transactions that inserted after it (a transaction that inserted before
		// the DDL took its ids before, even if its commit lets the DDL through before it returns).
		from := w.next.Add(10) - 10
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := pgx.BeginFunc(ctx, w.conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO items (id, txn, pad) SELECT g, $3, md5(g::text) FROM generate_series($1::bigint, $2::bigint) g`, from, from+9, i); err != nil {
				return err
			}
			if from > writerBase+40 { // update one earlier row and delete another
				if _, err := tx.Exec(ctx, `UPDATE items SET txn = $2, pad = md5(pad) WHERE id = $1`, from-17, i); err != nil {
					return err
				}
				if i%3 == 0 {
					if _, err := tx.Exec(ctx, `DELETE FROM items WHERE id = $1`, from-33); err != nil {
						return err
					}
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		w.n.Add(1)
	}
}

func (w *writer) txns() int64   { return w.n.Load() }
func (w *writer) nextID() int64 { return w.next.Load() }

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// waitTxns waits until n transactions are committed.
func (w *writer) waitTxns(n int64) {
	w.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for w.txns() < n {
		if err := w.failed(); err != nil {
			w.t.Fatalf("writer: %v", err)
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("writer committed %d transactions in 1m, want %d", w.txns(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the writer and waits for it.
func (w *writer) stop() {
	w.stopMu.Do(func() { close(w.quit) })
	w.wg.Wait()
	if err := w.failed(); err != nil {
		w.t.Errorf("writer: %v", err)
	}
}

// itemEvent is a change event of table items (schemas off).
type itemEvent struct {
	Op     string                     `json:"op"`
	Before map[string]json.RawMessage `json:"before"`
	After  map[string]json.RawMessage `json:"after"`
}

// checkItems compares the topic with the table: every row that ever existed was delivered (as a
// snapshot read or an insert), no row of the rolled-back transaction was, the last event of every
// key equals the row (or is its delete and tombstone), streamed events never carry the generated
// column, and rows inserted after the DDL carry the new column.
func (s *scenario) checkItems(msgs []tombstoneOr, w *writer, afterDDL int64) {
	t := s.t
	t.Helper()
	type state struct {
		deleted bool
		txn     int64
	}
	created := map[int64]bool{}
	last := map[int64]state{}
	reads, notes, missingNote := 0, 0, 0
	for _, m := range msgs {
		id := m.id
		if m.tombstone {
			last[id] = state{deleted: true}
			continue
		}
		ev := m.ev
		switch ev.Op {
		case "r", "c", "u":
			if ev.Op == "r" {
				reads++
			} else if _, ok := ev.After["dbl"]; ok {
				t.Errorf("id %d: a streamed %q event carries the generated column dbl (publish_generated_columns must stay off)", id, ev.Op)
			}
			if ev.Op != "u" {
				created[id] = true
			}
			var txn int64
			if err := json.Unmarshal(ev.After["txn"], &txn); err != nil {
				t.Fatalf("id %d: txn %s: %v", id, ev.After["txn"], err)
			}
			last[id] = state{txn: txn}
			if id >= afterDDL && id < large1Base && ev.Op == "c" {
				if string(ev.After["note"]) == `"n"` {
					notes++
				} else {
					missingNote++
				}
			}
		case "d":
			last[id] = state{deleted: true}
		default:
			t.Errorf("id %d: op %q", id, ev.Op)
		}
		if id > abortedBase && id < gapID {
			t.Errorf("id %d of the rolled-back transaction was delivered (op %s)", id, ev.Op)
		}
	}
	if reads != snapshotRows {
		t.Errorf("%d snapshot reads, want %d", reads, snapshotRows)
	}
	if notes == 0 || missingNote > 0 {
		t.Errorf("after the DDL: %d inserts carry the new column, %d lack it", notes, missingNote)
	}
	// Every row inserted was delivered.
	want := []struct{ from, to int64 }{{1, snapshotRows}, {writerBase + 1, w.nextID() - 1},
		{large1Base + 1, large1Base + largeRows}, {large2Base + 1, large2Base + largeRows}}
	lost := 0
	for _, r := range want {
		for id := r.from; id <= r.to; id++ {
			if !created[id] {
				lost++
				if lost <= 5 {
					t.Errorf("row %d was inserted but never delivered", id)
				}
			}
		}
	}
	// The last event of every key equals the row.
	rows, err := s.d.conn.Query(context.Background(), `SELECT id, txn FROM items`)
	if err != nil {
		t.Fatal(err)
	}
	final := map[int64]int64{}
	for rows.Next() {
		var id, txn int64
		if err := rows.Scan(&id, &txn); err != nil {
			t.Fatal(err)
		}
		final[id] = txn
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	mismatch := 0
	for id, st := range last {
		txn, exists := final[id]
		if exists == st.deleted || (exists && txn != st.txn) {
			mismatch++
			if mismatch <= 5 {
				t.Errorf("id %d: last event (deleted %v, txn %d) differs from the row (exists %v, txn %d)", id, st.deleted, st.txn, exists, txn)
			}
		}
	}
	for id := range final {
		if _, ok := last[id]; !ok {
			mismatch++
		}
	}
	t.Logf("items: %d records, %d keys, %d lost, %d final-state mismatches, %d inserts after the DDL", len(msgs), len(last), lost, mismatch, notes)
	if lost > 0 || mismatch > 0 {
		t.Errorf("%d rows lost, %d keys whose last event differs from the table", lost, mismatch)
	}
}

// tombstoneOr is a decoded record of items: a tombstone or a change event, with its key's id.
type tombstoneOr struct {
	id        int64
	tombstone bool
	ev        itemEvent
}

// checkFiltered: the row filter let only the EU rows through, the column list only id and region.
func (s *scenario) checkFiltered(msgs []kafka.Message) {
	t := s.t
	t.Helper()
	var got []string
	for _, m := range msgs {
		var ev itemEvent
		if m.Value == nil {
			continue
		}
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if _, ok := ev.After["secret"]; ok {
			t.Errorf("filtered: the column list did not hold back secret: %s", m.Value)
		}
		got = append(got, ev.Op+string(ev.After["id"])+string(ev.After["region"]))
	}
	if want := `c1"eu",c3"eu",u1"eu"`; strings.Join(got, ",") != want {
		t.Errorf("filtered: events %v, want %s", got, want)
	}
}

// decodeItems decodes the records of items.
func decodeItems(t *testing.T, msgs []kafka.Message) []tombstoneOr {
	t.Helper()
	out := make([]tombstoneOr, 0, len(msgs))
	for _, m := range msgs {
		var key struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(m.Key, &key); err != nil {
			t.Fatalf("key %q: %v", m.Key, err)
		}
		r := tombstoneOr{id: key.ID, tombstone: m.Value == nil}
		if m.Value != nil {
			if err := json.Unmarshal(m.Value, &r.ev); err != nil {
				t.Fatalf("offset %d: %v\n%s", m.Offset, err, m.Value)
			}
		}
		out = append(out, r)
	}
	return out
}

// recreatedSlot drops the slot and creates it again behind pgcdc's back (what a failover to a
// standby without it, followed by a new slot, amounts to): pgcdc must refuse to start on it, and
// with snapshot.mode when_needed must replace it and deliver the row made in the gap.
func (s *scenario) recreatedSlot(topic string) {
	t := s.t
	t.Helper()
	s.d.exec(`SELECT pg_drop_replication_slot($1)`, s.slot)
	s.d.exec(`INSERT INTO items (id, txn, pad) VALUES ($1, 9, 'gap')`, gapID)
	s.d.exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, s.slot)
	p := s.start(map[string]string{"PGCDC_POSTGRES_STREAMING": "true"})
	st := p.exit(time.Minute)
	if st.ExitCode() == 0 || !strings.Contains(p.out.String(), "ahead of the last position pgcdc confirmed on it") ||
		!strings.Contains(p.out.String(), "snapshot.mode: when_needed") {
		t.Fatalf("pgcdc on a slot created again: %v, want a refusal naming the problem and the recovery:\n%s", st, lastBytes(p.out.String(), 3000))
	}
	p = s.start(map[string]string{"PGCDC_POSTGRES_STREAMING": "true", "PGCDC_SNAPSHOT_MODE": "when_needed"})
	p.waitLog(`"message":"streaming"`, 2*time.Minute)
	p.stop()
	for _, m := range decodeItems(t, readAll(t, s.brokers, topic)) {
		if m.id == gapID && !m.tombstone && m.ev.Op == "r" {
			return
		}
	}
	t.Errorf("the row inserted while the slot was gone (id %d) was not delivered by the when_needed snapshot", gapID)
}

// typeCol is one column of the type subset: its type and the values of rows 1, 3 and 4 of
// connector/compat_cases_test.go's alltypes table ("" = not inserted, not compared).
type typeCol struct {
	name, typ string
	vals      [3]string
}

var typeIDs = [3]int{1, 3, 4}

var typeCols = []typeCol{
	{"f4", "float4", [3]string{"1.5", "'NaN'", "'-Infinity'"}},
	{"f8", "float8", [3]string{"3.14159265358979", "'Infinity'", "'NaN'"}},
	{"n12", "numeric(12,3)", [3]string{"123456789.123", "-999999999.999", "0.001"}},
	{"nu", "numeric", [3]string{"3.14159", "", "'NaN'"}},
	{"m", "money", [3]string{"1234.56", "-92233720368547758.08", "0"}},
	{"t", "text", [3]string{"'text'", `'héllo wörld ✓ 🎉 "q" \ back' || chr(10) || chr(9) || chr(1)`, ""}},
	{"ip", "inet", [3]string{"'192.168.0.1/24'", "'::1'", "'10.1.2.3'"}},
	{"mac8", "macaddr8", [3]string{"'08:00:2b:01:02:03:04:05'", "'00:00:00:00:00:00:00:00'", "NULL"}},
	{"r8", "int8range", [3]string{"'[1,1000000000000)'", "'(,5]'", "NULL"}},
	{"rts", "tsrange", [3]string{"'[2024-01-01 10:00,2024-01-02 11:00)'", "'(,)'", "NULL"}},
	{"rtz", "tstzrange", [3]string{"'[2024-01-01 10:00+00,2024-01-02 11:00+02)'", "'empty'", "NULL"}},
	{"u", "uuid", [3]string{"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'", "NULL"}},
	{"j", "json", [3]string{`'{"a": 1, "b": [1, 2.50, "x"]}'`, "'[]'", "'null'"}},
	{"jb", "jsonb", [3]string{`'{"a": 1, "b": [1, 2.50, "x"]}'`, "'{}'", `'"str"'`}},
	{"ba", "bytea", [3]string{`'\xdeadbeef00'`, `'\x'`, `'\x00ff'`}},
	{"d", "date", [3]string{"'2024-05-06'", "'infinity'", "'-infinity'"}},
	{"tm", "time", [3]string{"'07:08:09.123456'", "'00:00:00'", "'12:00:00.000001'"}},
	{"ttz", "timetz", [3]string{"'07:08:09.5+02'", "'00:00:00-14:59'", "'23:59:59.999999+14'"}},
	{"ts", "timestamp", [3]string{"'2024-05-06 07:08:09.123456'", "'infinity'", "'1970-01-01 00:00:00.000001'"}},
	{"tz", "timestamptz", [3]string{"'2024-05-06 07:08:09.123456+02'", "'-infinity'", "'2000-02-29 12:00:00-08'"}},
	{"iv", "interval", [3]string{"'1 year 2 mons 3 days 04:05:06.789'", "'-178000000 years'", "'-1 days +02:03:04.5'"}},
	{"e", "mood", [3]string{"'happy'", "'sad'", "'ok'"}},
	{"ai4", "int4[]", [3]string{"'{1,2,3}'", "'{}'", "'{NULL}'"}},
	{"at", "text[]", [3]string{`'{"a","b c","d\"e",NULL}'`, "'{}'", `'{""}'`}},
	{"anum", "numeric[]", [3]string{"'{1.5,NULL,-2}'", "'{}'", "'{0.000001}'"}},
	{"af8", "float8[]", [3]string{"'{1.5,NaN,Infinity}'", "'{}'", "'{-0}'"}},
	{"atz", "timestamptz[]", [3]string{`'{"2024-05-06 07:08:09+00"}'`, "'{}'", "NULL"}},
	{"bt8", "bit(8)", [3]string{"B'10101010'", "B'00000000'", "NULL"}},
	{"vb", "varbit(16)", [3]string{"B'1011'", "B''", "NULL"}},
	{"hs", "hstore", [3]string{`'a=>1, "b c"=>"d e", n=>NULL'`, "''", `'"k"=>"v"'`}},
}

func typesTableSQL() string {
	var b strings.Builder
	b.WriteString("CREATE TABLE vtypes (id int PRIMARY KEY")
	for _, c := range typeCols {
		fmt.Fprintf(&b, ", %s %s", c.name, c.typ)
	}
	b.WriteString(")")
	return b.String()
}

func typesInsertSQL() []string {
	var out []string
	for i, id := range typeIDs {
		cols, vals := []string{"id"}, []string{strconv.Itoa(id)}
		for _, c := range typeCols {
			if c.vals[i] != "" {
				cols, vals = append(cols, c.name), append(vals, c.vals[i])
			}
		}
		out = append(out, fmt.Sprintf("INSERT INTO vtypes (%s) VALUES (%s)", strings.Join(cols, ", "), strings.Join(vals, ", ")))
	}
	return out
}

// canonical re-encodes a JSON value with its numbers as written (key order and spacing normalized).
func canonical(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "invalid JSON: " + string(raw)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// checkTypes compares the type subset with what Debezium 3.6.1 streamed for the same values (the
// golden records of connector/testdata/compat/defaults, same event settings but the schemas).
func (s *scenario) checkTypes(msgs []kafka.Message) {
	t := s.t
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "connector", "testdata", "compat", "defaults", "public.alltypes.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[int]map[string]json.RawMessage{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var rec struct {
			Value *struct {
				Payload struct {
					Op    string                     `json:"op"`
					After map[string]json.RawMessage `json:"after"`
				} `json:"payload"`
			} `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Value == nil || rec.Value.Payload.Op != "c" {
			continue
		}
		// The compat run streams its rows 1-6 again as 101-106 (the snapshot reads 1-6).
		var id int
		_ = json.Unmarshal(rec.Value.Payload.After["id"], &id)
		if id > 100 {
			id -= 100
		}
		if _, seen := want[id]; !seen {
			want[id] = rec.Value.Payload.After
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	got := map[int]map[string]json.RawMessage{}
	for _, m := range msgs {
		var ev itemEvent
		if m.Value == nil || json.Unmarshal(m.Value, &ev) != nil || ev.Op != "c" {
			continue
		}
		var id int
		_ = json.Unmarshal(ev.After["id"], &id)
		got[id] = ev.After
	}
	compared := 0
	for i, id := range typeIDs {
		if got[id] == nil || want[id] == nil {
			t.Errorf("vtypes row %d: pgcdc event present %v, Debezium record present %v", id, got[id] != nil, want[id] != nil)
			continue
		}
		for _, c := range typeCols {
			if c.vals[i] == "" {
				continue
			}
			compared++
			if g, w := canonical(got[id][c.name]), canonical(want[id][c.name]); g != w {
				t.Errorf("PostgreSQL %d, %s (%s) of row %d: pgcdc %s, Debezium %s", s.version, c.name, c.typ, id, g, w)
			}
		}
	}
	t.Logf("types: %d values of %d types equal Debezium's", compared, len(typeCols))
}
