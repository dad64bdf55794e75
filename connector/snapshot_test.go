package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// snapEnv are the overrides every snapshot test uses: bare JSON keys and values, 3 partitions.
func snapEnv(extra map[string]string) map[string]string {
	m := map[string]string{
		"PGCDC_EVENTS_KEY_SCHEMAS":   "false",
		"PGCDC_EVENTS_VALUE_SCHEMAS": "false",
		"PGCDC_KAFKA_PARTITIONS":     "3",
		"PGCDC_HEARTBEAT_INTERVAL":   "500ms",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// snapRecord is one record of a topic written without schemas.
type snapRecord struct {
	key       string
	id        int64
	partition int
	offset    int64
	tombstone bool
	op        string
	after     map[string]any
	source    struct {
		Snapshot string `json:"snapshot"`
		Sequence string `json:"sequence"`
		TxID     int64  `json:"txId"`
		LSN      int64  `json:"lsn"`
		TsMs     int64  `json:"ts_ms"`
	}
	position string
}

// topicSize is the number of records in a table's topic (sum of the partitions' end offsets).
func (e *env) topicSize(table string) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", e.brokers[0])
	if err != nil {
		e.t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(e.topic(table))
	conn.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, p := range parts {
		lc, err := kafka.DialLeader(ctx, "tcp", e.brokers[0], e.topic(table), p.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		last, err := lc.ReadLastOffset()
		lc.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		n += int(last)
	}
	return n
}

// snapRecords reads want records of a table's topic (partitions in offset order).
func (e *env) snapRecords(table string, want int, timeout time.Duration) []snapRecord {
	e.t.Helper()
	var out []snapRecord
	n := e.scanTopic(table, want, timeout, func(m kafka.Message) {
		r := snapRecord{key: string(m.Key), partition: m.Partition, offset: m.Offset, tombstone: m.Value == nil}
		var k struct{ ID int64 }
		if m.Key != nil {
			if err := json.Unmarshal(m.Key, &k); err != nil {
				e.t.Fatalf("key %q: %v", m.Key, err)
			}
			r.id = k.ID
		}
		for _, h := range m.Headers {
			if h.Key == "pgcdc.position" {
				r.position = string(h.Value)
			}
		}
		if m.Value != nil {
			var v struct {
				Op     string          `json:"op"`
				After  map[string]any  `json:"after"`
				Source json.RawMessage `json:"source"`
			}
			if err := json.Unmarshal(m.Value, &v); err != nil {
				e.t.Fatalf("value %q: %v", m.Value, err)
			}
			r.op, r.after = v.Op, v.After
			if err := json.Unmarshal(v.Source, &r.source); err != nil {
				e.t.Fatal(err)
			}
		}
		out = append(out, r)
	})
	if n < want {
		e.t.Fatalf("%s: read %d of %d records within %s", e.topic(table), n, want, timeout)
	}
	return out
}

// waitCaughtUp waits until the slot confirmed everything written so far: Kafka then holds every
// change committed before the call.
func (e *env) waitCaughtUp(timeout time.Duration) {
	e.t.Helper()
	target := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	deadline := time.Now().Add(timeout)
	for e.confirmedFlush() < target {
		if time.Now().After(deadline) {
			e.t.Fatalf("slot did not confirm %s within %s (at %s)", fmtLSN(target), timeout, fmtLSN(e.confirmedFlush()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkLastEventIsState reads a table's whole topic and checks that the last event of every key
// equals the row's state (v column), and that keys without a row end deleted.
func (e *env) checkLastEventIsState(table string) (records int) {
	e.t.Helper()
	total := e.topicSize(table)
	recs := e.snapRecords(table, total, 3*time.Minute)
	last := map[int64]snapRecord{}
	for _, r := range recs {
		last[r.id] = r
	}
	rows, err := e.db.Query(context.Background(), `SELECT id, v FROM `+table)
	if err != nil {
		e.t.Fatal(err)
	}
	state, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]int64, error) {
		var r [2]int64
		return r, row.Scan(&r[0], &r[1])
	})
	if err != nil {
		e.t.Fatal(err)
	}
	present := map[int64]bool{}
	for _, s := range state {
		present[s[0]] = true
		r, ok := last[s[0]]
		if !ok {
			e.t.Fatalf("%s: row %d (v=%d) has no event", table, s[0], s[1])
		}
		if r.tombstone || r.op == "d" || int64(r.after["v"].(float64)) != s[1] {
			e.t.Fatalf("%s: row %d has v=%d but its last event (partition %d offset %d) is op %q tombstone=%v after=%v",
				table, s[0], s[1], r.partition, r.offset, r.op, r.tombstone, r.after)
		}
	}
	for id, r := range last {
		if !present[id] && !r.tombstone && r.op != "d" {
			e.t.Fatalf("%s: row %d is deleted but its last event is op %q after=%v", table, id, r.op, r.after)
		}
	}
	return len(recs)
}

// logValue returns field of the first JSON log line with message msg, waiting up to timeout.
func (p *proc) logValue(msg, field string, timeout time.Duration) any {
	p.t.Helper()
	p.waitLog(`"message":"`+msg+`"`, timeout)
	for _, line := range strings.Split(p.out.String(), "\n") {
		if !strings.Contains(line, `"message":"`+msg+`"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			p.t.Fatalf("log line %q: %v", line, err)
		}
		return m[field]
	}
	p.t.Fatalf("no log line %q", msg)
	return nil
}

// progress reads the progress table: the snapshot's state and its chunks done / total.
func (e *env) progress() (state string, done, total int) {
	e.t.Helper()
	err := e.db.QueryRow(context.Background(), `SELECT coalesce((SELECT state FROM pgcdc_snapshot_progress WHERE slot_name = $1 AND chunk = -1), ''),
		count(*) FILTER (WHERE state = 'done'), count(*) FROM pgcdc_snapshot_progress WHERE slot_name = $1 AND chunk >= 0`, e.slot).Scan(&state, &done, &total)
	if err != nil {
		e.t.Fatal(err)
	}
	return
}

func (e *env) seedTable(table string, rows int) {
	e.exec(fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, v int NOT NULL, note text)`, table))
	e.exec(fmt.Sprintf(`INSERT INTO %s SELECT g, g, 'row ' || g FROM generate_series(1, %d) g`, table, rows))
}

// A new slot: every existing row once as op "r" in the slot's exported snapshot, keyed and
// partitioned like streamed events, markers as Debezium sets them; then streaming from the slot's
// consistent point; a restart does not snapshot again.
func TestSnapshotInitial(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE composite (a int, b text, v int, PRIMARY KEY (a, b))`)
	e.exec(`INSERT INTO composite SELECT g % 7, 'b' || g, g FROM generate_series(1, 300) g`)
	e.exec(`CREATE TABLE empty (id int PRIMARY KEY, v int)`)
	e.exec(`CREATE TABLE nokey (v int, note text)`)
	e.exec(`ALTER TABLE nokey REPLICA IDENTITY FULL`)
	e.exec(`INSERT INTO nokey SELECT g, repeat('x', 200) FROM generate_series(1, 1000) g`)
	e.exec(`ANALYZE nokey`)
	e.seedTable("orders", 2500)
	before := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)

	p := e.start(snapEnv(map[string]string{"PGCDC_SNAPSHOT_CHUNK_ROWS": "400", "PGCDC_SNAPSHOT_WORKERS": "3"}))
	if exported := p.logValue("snapshot starting", "exported_snapshot", time.Minute); exported != true {
		t.Fatalf("a new slot must give an exported snapshot, log says %v", exported)
	}
	p.waitStreaming()
	slotStart := parseLSN(t, p.logValue("snapshot starting", "slot_lsn", time.Second).(string))
	if chunks := p.logValue("snapshot starting", "chunks", time.Second).(float64); chunks < 1+1+2+7 {
		t.Fatalf("%v chunks: want several per table (key ranges for orders and composite, ctid ranges for nokey)", chunks)
	}

	orders := e.snapRecords("orders", 2500, time.Minute)
	composite := e.snapRecords("composite", 300, time.Minute)
	nokey := e.snapRecords("nokey", 1000, time.Minute)
	markers := map[string]map[string]int{}
	var txID int64
	positions := map[string]bool{}
	for name, recs := range map[string][]snapRecord{"orders": orders, "composite": composite, "nokey": nokey} {
		markers[name] = map[string]int{}
		for _, r := range recs {
			if r.op != "r" {
				t.Fatalf("%s: op %q, want r", name, r.op)
			}
			markers[name][r.source.Snapshot]++
			if uint64(r.source.LSN) != slotStart || r.source.Sequence != fmt.Sprintf(`[null,"%d"]`, slotStart) {
				t.Fatalf("%s: source.lsn %d sequence %s, want the slot's consistent point %d", name, r.source.LSN, r.source.Sequence, slotStart)
			}
			if txID == 0 {
				txID = r.source.TxID
			}
			if r.source.TxID != txID || txID == 0 {
				t.Fatalf("%s: txId %d, want one snapshot transaction id (%d)", name, r.source.TxID, txID)
			}
			if positions[r.position] {
				t.Fatalf("position %s twice: (lsn, pgcdc.position) must identify a snapshot record", r.position)
			}
			positions[r.position] = true
		}
	}
	if uint64(orders[0].source.LSN) < before {
		t.Fatalf("snapshot LSN %d is before the writes that preceded the slot (%d)", orders[0].source.LSN, before)
	}
	// Tables in order: composite, empty, nokey, orders.
	want := map[string]map[string]int{
		"composite": {"first": 1, "last_in_data_collection": 1, "true": 298},
		"nokey":     {"first_in_data_collection": 1, "last_in_data_collection": 1, "true": 998},
		"orders":    {"first_in_data_collection": 1, "last": 1, "true": 2498},
	}
	for name, w := range want {
		if fmt.Sprint(markers[name]) != fmt.Sprint(w) {
			t.Errorf("%s: source.snapshot counts %v, want %v", name, markers[name], w)
		}
	}
	ids := map[int64]int{}
	for _, r := range orders {
		ids[r.id]++
	}
	if len(ids) != 2500 {
		t.Fatalf("orders: %d distinct keys, want 2500", len(ids))
	}
	if n := e.topicSize("empty"); n != 0 {
		t.Fatalf("empty table: %d records", n)
	}

	// Streaming starts at the consistent point; updates land on the snapshot record's partition.
	e.exec(`UPDATE orders SET v = -v WHERE id IN (1, 2, 3, 1000, 2500)`)
	recs := e.snapRecords("orders", 2505, time.Minute)
	part := map[int64]int{}
	streamed := 0
	for _, r := range recs {
		if r.op == "r" {
			part[r.id] = r.partition
			continue
		}
		streamed++
		if r.op != "u" || r.source.Snapshot != "false" || part[r.id] != r.partition || uint64(r.source.LSN) <= slotStart {
			t.Fatalf("streamed event %+v: want op u, snapshot false, partition %d of its snapshot record, LSN after %d", r, part[r.id], slotStart)
		}
	}
	if streamed != 5 {
		t.Fatalf("%d streamed events, want 5", streamed)
	}
	if st, done, total := e.progress(); st != "done" || done != total || total == 0 {
		t.Fatalf("progress table: state %q, %d of %d chunks done", st, done, total)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// A restart streams only: the snapshot is recorded as done.
	p2 := e.start(snapEnv(nil))
	p2.waitStreaming()
	e.exec(`INSERT INTO orders VALUES (9999, 1, 'new')`)
	e.waitCaughtUp(time.Minute)
	if n := e.topicSize("orders"); n != 2506 {
		t.Fatalf("orders topic holds %d records after the restart, want 2506 (no second snapshot)", n)
	}
	if strings.Contains(p2.out.String(), "snapshot starting") {
		t.Fatal("the restart snapshotted again")
	}
	p2.stop()
}

// Each snapshot.mode: no_data, initial_only, always, when_needed (initial is TestSnapshotInitial).
func TestSnapshotModes(t *testing.T) {
	testenv.Require(t)
	t.Run("no_data", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.seedTable("m", 100)
		p := e.start(snapEnv(map[string]string{"PGCDC_SNAPSHOT_MODE": "no_data"}))
		p.waitStreaming()
		e.exec(`INSERT INTO m VALUES (101, 101)`)
		recs := e.snapRecords("m", 1, time.Minute)
		e.waitCaughtUp(time.Minute)
		if n := e.topicSize("m"); n != 1 || recs[0].op != "c" || recs[0].id != 101 {
			t.Fatalf("no_data: %d records, first %+v; want only the insert", n, recs[0])
		}
		var exists bool
		_ = e.db.QueryRow(context.Background(), `SELECT to_regclass('pgcdc_snapshot_progress') IS NOT NULL`).Scan(&exists)
		if exists {
			t.Fatal("no_data created the progress table")
		}
		p.stop()
	})
	t.Run("initial_only", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.seedTable("m", 100)
		p := e.start(snapEnv(map[string]string{"PGCDC_SNAPSHOT_MODE": "initial_only"}))
		if code, sig := p.wait(2 * time.Minute); code != 0 || sig != 0 {
			t.Fatalf("initial_only: exit %d signal %v, want 0", code, sig)
		}
		if strings.Contains(p.out.String(), `"message":"streaming"`) || !strings.Contains(p.out.String(), "exiting without streaming") {
			t.Fatal("initial_only must exit after the snapshot without streaming")
		}
		if n := e.topicSize("m"); n != 100 {
			t.Fatalf("initial_only: %d records, want 100", n)
		}
		// The slot stayed at the snapshot's start: a later start streams what happened since.
		e.exec(`UPDATE m SET v = 0 WHERE id = 7`)
		p2 := e.start(snapEnv(nil))
		p2.waitStreaming()
		e.waitCaughtUp(time.Minute)
		if n := e.checkLastEventIsState("m"); n != 101 {
			t.Fatalf("%d records, want 100 snapshot records and 1 update", n)
		}
		p2.stop()
	})
	t.Run("always", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.seedTable("m", 100)
		overrides := snapEnv(map[string]string{"PGCDC_SNAPSHOT_MODE": "always"})
		p := e.start(overrides)
		p.waitStreaming()
		e.snapRecords("m", 100, time.Minute)
		p.stop()
		e.exec(`UPDATE m SET v = -1 WHERE id = 5`) // while pgcdc is down: snapshot and stream both carry it
		p2 := e.start(overrides)
		if exported := p2.logValue("snapshot starting", "exported_snapshot", time.Minute); exported != false {
			t.Fatalf("an existing slot has no exported snapshot; log says %v", exported)
		}
		p2.waitStreaming()
		e.waitCaughtUp(time.Minute)
		if n := e.checkLastEventIsState("m"); n != 201 {
			t.Fatalf("%d records, want 2x100 snapshot records and the update", n)
		}
		p2.stop()
	})
	t.Run("when_needed", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.seedTable("m", 100)
		overrides := snapEnv(map[string]string{"PGCDC_SNAPSHOT_MODE": "when_needed"})
		p := e.start(overrides)
		p.waitStreaming()
		e.snapRecords("m", 100, time.Minute)
		p.stop()
		p = e.start(overrides) // slot and completed snapshot: nothing to do
		p.waitStreaming()
		e.exec(`INSERT INTO m VALUES (101, 101)`)
		e.waitCaughtUp(time.Minute)
		if n := e.topicSize("m"); n != 101 {
			t.Fatalf("%d records, want 101 (no second snapshot)", n)
		}
		p.stop()
		e.waitSlotReleased(30 * time.Second)
		e.exec(`SELECT pg_drop_replication_slot($1)`, e.slot)
		e.exec(`UPDATE m SET v = -7 WHERE id = 7`) // lost to any slot: only a snapshot brings it
		// initial refuses a new slot for a snapshot recorded as done: changes would be lost silently.
		p = e.start(snapEnv(nil))
		if code, _ := p.wait(time.Minute); code == 0 || !strings.Contains(p.out.String(), "its snapshot is recorded as done") {
			t.Fatalf("initial with a dropped slot: exit %d, want an error naming the problem", code)
		}
		p = e.start(overrides)
		p.waitStreaming()
		e.waitCaughtUp(time.Minute)
		if n := e.checkLastEventIsState("m"); n != 101+101 {
			t.Fatalf("%d records, want 101 + a new snapshot of 101 rows", n)
		}
		p.stop()
	})
}

// writer changes random rows of a table (updates, deletes, inserts) until stopped.
type writer struct {
	stop chan struct{}
	done chan struct{}
	ops  atomic.Int64
	err  error
}

func startWriter(t *testing.T, dsn, table string, maxID int) *writer {
	rng := rand.New(rand.NewSource(1))
	return startWriterSQL(t, dsn, 500*time.Microsecond, func(int) (string, []any) {
		id := rng.Intn(maxID) + 1
		switch rng.Intn(10) {
		case 0:
			return `DELETE FROM ` + table + ` WHERE id = $1`, []any{id}
		case 1, 2:
			return `INSERT INTO ` + table + ` VALUES ($1, $1 * 10, 'ins') ON CONFLICT (id) DO UPDATE SET v = excluded.v + 1`, []any{id}
		default:
			return `UPDATE ` + table + ` SET v = v + 1 WHERE id = $1`, []any{id}
		}
	})
}

// startWriterSQL runs the statement stmt(i) for i = 0, 1, ... with a pause after each, until
// finish (bounded to two minutes). stmt runs on the writer's goroutine.
func startWriterSQL(t *testing.T, dsn string, pause time.Duration, stmt func(i int) (string, []any)) *writer {
	t.Helper()
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer conn.Close(context.Background())
		deadline := time.Now().Add(2 * time.Minute)
		for i := 0; time.Now().Before(deadline); i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			sql, args := stmt(i)
			if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
				w.err = err
				return
			}
			w.ops.Add(1)
			time.Sleep(pause)
		}
	}()
	return w
}

func (w *writer) finish(t *testing.T) int64 {
	close(w.stop)
	<-w.done
	if w.err != nil {
		t.Fatal(w.err)
	}
	return w.ops.Load()
}

// Writes run during two snapshots: the exported one of a new slot, then (mode always, existing
// slot) a fresh one that overlaps the stream. The last event per key across the topic equals the
// table's final state.
func TestSnapshotConcurrentWrites(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedTable("cw", 20000)
	overrides := snapEnv(map[string]string{
		"PGCDC_SNAPSHOT_CHUNK_ROWS": "1000", "PGCDC_SNAPSHOT_WORKERS": "2", "PGCDC_SNAPSHOT_MAX_ROWS_PER_SEC": "10000",
	})
	w := startWriter(t, e.dsn, "cw", 24000)
	p := e.start(overrides)
	p.waitLog("snapshot completed", 2*time.Minute)
	opsDuring1 := w.ops.Load()
	p.waitStreaming()
	time.Sleep(500 * time.Millisecond)
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	overrides["PGCDC_SNAPSHOT_MODE"] = "always"
	p2 := e.start(overrides)
	if exported := p2.logValue("snapshot starting", "exported_snapshot", time.Minute); exported != false {
		t.Fatalf("second snapshot: exported_snapshot %v, want false (existing slot)", exported)
	}
	before2 := w.ops.Load()
	p2.waitLog("snapshot completed", 2*time.Minute)
	opsDuring2 := w.ops.Load() - before2
	p2.waitStreaming()
	time.Sleep(500 * time.Millisecond)
	ops := w.finish(t)
	if opsDuring1 < 100 || opsDuring2 < 100 {
		t.Fatalf("only %d and %d writes during the snapshots: the test proves nothing", opsDuring1, opsDuring2)
	}
	e.waitCaughtUp(2 * time.Minute)
	n := e.checkLastEventIsState("cw")
	t.Logf("%d writes (%d during the first snapshot, %d during the second); %d records; last event per key = table state", ops, opsDuring1, opsDuring2, n)
	p2.stop()
}

// kill -9 when some but not all chunks are acknowledged (read from the progress table): the
// slot has not moved, and the restart resumes the remaining chunks and converges.
func TestSnapshotKillResume(t *testing.T) {
	e := newEnv(t, nil, nil)
	const rows = 20000
	e.seedTable("kr", rows)
	overrides := snapEnv(map[string]string{
		"PGCDC_SNAPSHOT_CHUNK_ROWS": "500", "PGCDC_SNAPSHOT_WORKERS": "2", "PGCDC_SNAPSHOT_MAX_ROWS_PER_SEC": "4000",
	})
	p := e.start(overrides)
	p.waitLog("snapshot starting", time.Minute)
	slotAtStart := e.confirmedFlush()
	deadline := time.Now().Add(time.Minute)
	for {
		if st, done, _ := e.progress(); st == "running" && done >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no chunk recorded done within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
	state, done, total := e.progress()
	if state != "running" || done < 1 || done >= total {
		t.Fatalf("at the kill: state %q, %d of %d chunks done; want some but not all", state, done, total)
	}
	if got := e.confirmedFlush(); got != slotAtStart {
		t.Fatalf("the slot moved during the snapshot: %s -> %s", fmtLSN(slotAtStart), fmtLSN(got))
	}
	var doneRows int64
	if err := e.db.QueryRow(context.Background(), `SELECT coalesce(sum(rows_done), 0)::int8 FROM pgcdc_snapshot_progress WHERE slot_name = $1 AND chunk >= 0 AND state = 'done'`, e.slot).Scan(&doneRows); err != nil {
		t.Fatal(err)
	}
	written := e.topicSize("kr")
	// Changes while pgcdc is down, in chunks done and not done.
	e.exec(`UPDATE kr SET v = -v WHERE id % 400 = 1`)

	delete(overrides, "PGCDC_SNAPSHOT_MAX_ROWS_PER_SEC")
	p2 := e.start(overrides)
	if resumed := p2.logValue("snapshot starting", "resumed", time.Minute); resumed != true {
		t.Fatalf("restart: resumed=%v, want true", resumed)
	}
	p2.waitStreaming()
	rows2 := int64(p2.logValue("snapshot completed", "rows", time.Second).(float64))
	if rows2+doneRows != rows {
		t.Fatalf("second run read %d rows, first run's done chunks %d: want them to add up to %d (resume, not restart)", rows2, doneRows, rows)
	}
	e.waitCaughtUp(time.Minute)
	n := e.checkLastEventIsState("kr")
	if dups := n - rows - rows/400; dups < 0 || dups > written-int(doneRows) {
		t.Fatalf("%d records: %d duplicates, want at most the %d records of chunks not recorded done at the kill", n, dups, written-int(doneRows))
	}
	t.Logf("killed at %d/%d chunks (%d rows done, %d records written); resumed with %d rows; %d records in all", done, total, doneRows, written, rows2, n)
	p2.stop()
}

// PGCDC_TEST_SNAPSHOT_BENCH=1: a 5,000,000-row table, snapshot throughput and peak RSS of the
// (non-race) binary next to COPY (SELECT ...) TO STDOUT of the same table.
func TestSnapshotBench(t *testing.T) {
	if os.Getenv("PGCDC_TEST_SNAPSHOT_BENCH") == "" {
		t.Skip("set PGCDC_TEST_SNAPSHOT_BENCH=1 to run the 5,000,000-row snapshot measurement")
	}
	e := newEnv(t, nil, nil)
	const rows = 5_000_000
	e.exec(`CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL, note text, ts timestamptz)`)
	e.exec(fmt.Sprintf(`INSERT INTO big SELECT g, g %% 1000, md5(g::text), '2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, %d) g`, rows))
	e.exec(`VACUUM ANALYZE big`)

	start := time.Now()
	res, err := e.db.PgConn().CopyTo(context.Background(), discard{}, `COPY (SELECT id, v, note, ts FROM big) TO STDOUT`)
	if err != nil {
		t.Fatal(err)
	}
	copyTook := time.Since(start)
	if res.RowsAffected() != rows {
		t.Fatalf("COPY: %d rows", res.RowsAffected())
	}

	start = time.Now()
	p := e.start(snapEnv(map[string]string{"PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES": "8MiB", "PGCDC_LOG_PROGRESS_INTERVAL": "10s"}))
	p.waitLog("snapshot completed", 20*time.Minute)
	took := time.Since(start)
	hwm := p.vmHWM()
	rate := p.logValue("snapshot completed", "rows_per_sec", time.Second).(float64)
	if n := e.topicSize("big"); n != rows {
		t.Fatalf("topic holds %d records, want %d", n, rows)
	}
	t.Logf("COPY TO STDOUT: %s (%.0f rows/s); pgcdc snapshot: %.0f rows/s (start to completed %s), VmHWM %.1f MiB",
		copyTook.Round(time.Millisecond), rows/copyTook.Seconds(), rate, took.Round(time.Millisecond), float64(hwm)/(1<<20))
	if hwm > 120<<20 {
		t.Fatalf("VmHWM %d MiB: memory must stay bounded (max_in_flight_bytes 8MiB)", hwm>>20)
	}
	p.stop()
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
