package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
	"github.com/pgcdc/pgcdc/pkg/signal"
)

// incrEnv are the overrides of the incremental snapshot tests: no initial snapshot (the table is
// snapshotted by a signal while the stream runs), the signal table, bare JSON, 3 partitions.
func incrEnv(extra map[string]string) map[string]string {
	m := snapEnv(map[string]string{
		"PGCDC_SNAPSHOT_MODE":                   "no_data",
		"PGCDC_SIGNAL_TABLE":                    "public.pgcdc_signal",
		"PGCDC_SNAPSHOT_INCREMENTAL_CHUNK_ROWS": "1024",
		"PGCDC_LOG_PROGRESS_INTERVAL":           "1s",
	})
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// signalSnapshot inserts an execute-snapshot signal into the signal table.
func (e *env) signal(typ, data string) {
	e.t.Helper()
	e.exec(`INSERT INTO public.pgcdc_signal (id, type, data) VALUES ($1, $2, $3)`, fmt.Sprintf("t-%d", time.Now().UnixNano()), typ, data)
}

// logIncremental logs, when the test fails, pgcdc's log lines about incremental snapshots and
// signals, and its warnings and errors (the harness shows only the output's tail).
func (p *proc) logIncremental() {
	p.t.Cleanup(func() {
		if !p.t.Failed() {
			return
		}
		var lines []string
		for _, l := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(l, "incremental") || strings.Contains(l, "signal") || strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
				lines = append(lines, l)
			}
		}
		if len(lines) > 200 {
			lines = append(lines[:100], lines[len(lines)-100:]...)
		}
		p.t.Logf("pgcdc's incremental snapshot, signal, warning and error lines:\n%s", strings.Join(lines, "\n"))
	})
}

// lastLogValue returns field of the last JSON log line with message msg (nil when none).
func (p *proc) lastLogValue(msg, field string) any {
	lines := strings.Split(p.out.String(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.Contains(lines[i], `"message":"`+msg+`"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err == nil {
			return m[field]
		}
	}
	return nil
}

// windowTimes summarizes the per-window debug lines (PGCDC_LOG_LEVEL=debug): the mean time of
// each phase, in milliseconds.
func (p *proc) windowTimes() string {
	sums := map[string]float64{}
	n := 0
	for _, l := range strings.Split(p.out.String(), "\n") {
		if !strings.Contains(l, `"message":"incremental snapshot window"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		n++
		for _, k := range []string{"low_ms", "read_ms", "high_ms", "wait_ms"} {
			if v, ok := m[k].(float64); ok {
				sums[k] += v
			}
		}
	}
	if n == 0 {
		return "no window lines (PGCDC_LOG_LEVEL=debug shows them)"
	}
	return fmt.Sprintf("%d windows, mean ms: low %.1f read %.1f high %.1f wait %.1f", n, sums["low_ms"]/float64(n), sums["read_ms"]/float64(n), sums["high_ms"]/float64(n), sums["wait_ms"]/float64(n))
}

// incrWriters change a table at a high rate until stopped: updates (v = v + 1, so a key's v only
// grows), deletes, and inserts of new ids (a deleted id never comes back), several statements per
// transaction.
type incrWriters struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	ops     atomic.Int64
	errMu   sync.Mutex
	err     error
	nextID  atomic.Int64
	updates atomic.Int64
	deletes atomic.Int64
}

func startIncrWriters(t *testing.T, dsn, table string, n, maxID int) *incrWriters {
	w := &incrWriters{stop: make(chan struct{})}
	w.nextID.Store(int64(maxID) + 1_000_000)
	for i := 0; i < n; i++ {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		w.wg.Add(1)
		go func(seed int64) {
			defer w.wg.Done()
			defer conn.Close(context.Background())
			rng := rand.New(rand.NewSource(seed))
			deadline := time.Now().Add(10 * time.Minute) // bounded even if stop never comes
			for time.Now().Before(deadline) {
				select {
				case <-w.stop:
					return
				default:
				}
				batch := &pgx.Batch{}
				for j := 0; j < 20; j++ {
					id := rng.Intn(maxID) + 1
					switch r := rng.Intn(20); {
					case r < 2:
						batch.Queue(`DELETE FROM `+table+` WHERE id = $1`, id)
						w.deletes.Add(1)
					case r < 4:
						batch.Queue(`INSERT INTO `+table+` VALUES ($1, 0, 'new')`, w.nextID.Add(1))
					default:
						batch.Queue(`UPDATE `+table+` SET v = v + 1 WHERE id = $1`, id)
						w.updates.Add(1)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := conn.Exec(ctx, "BEGIN")
				if err == nil {
					err = conn.SendBatch(ctx, batch).Close()
				}
				if err == nil {
					_, err = conn.Exec(ctx, "COMMIT")
				}
				cancel()
				if err != nil {
					w.errMu.Lock()
					w.err = err
					w.errMu.Unlock()
					return
				}
				w.ops.Add(20)
			}
		}(int64(i + 1))
	}
	return w
}

func (w *incrWriters) finish(t *testing.T) int64 {
	t.Helper()
	close(w.stop)
	w.wg.Wait()
	if w.err != nil {
		t.Fatal(w.err)
	}
	return w.ops.Load()
}

// checkIncremental reads a table's whole topic once and checks the incremental snapshot's
// promises: the last event per key equals the row (v), keys without a row end deleted, no snapshot
// row carries an older state than a change streamed before it (v only grows), no snapshot row
// follows a delete (no resurrection), and every row the table had when the snapshot started has an
// event (none missed). It keeps a few bytes per key (the long form reads millions of records) and
// returns the number of records and of op "r" records.
func (e *env) checkIncremental(table string, initialRows int) (records, snapRows int) {
	e.t.Helper()
	type state struct {
		v       int64
		deleted bool
		seen    bool
	}
	keys := map[int64]*state{}
	var failure string
	total := e.topicSize(table)
	records = e.scanTopic(table, total, 5*time.Minute, func(m kafka.Message) {
		if failure != "" {
			return
		}
		var k struct{ ID int64 }
		if err := json.Unmarshal(m.Key, &k); err != nil {
			failure = fmt.Sprintf("key %q: %v", m.Key, err)
			return
		}
		s := keys[k.ID]
		if s == nil {
			s = &state{}
			keys[k.ID] = s
		}
		if m.Value == nil {
			s.deleted, s.seen = true, true
			return
		}
		var v struct {
			Op    string `json:"op"`
			After *struct {
				V int64 `json:"v"`
			} `json:"after"`
			Source struct {
				Snapshot string `json:"snapshot"`
			} `json:"source"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil {
			failure = fmt.Sprintf("value %q: %v", m.Value, err)
			return
		}
		where := fmt.Sprintf("id %d (partition %d offset %d)", k.ID, m.Partition, m.Offset)
		switch v.Op {
		case "d":
			s.deleted, s.seen = true, true
		case "r":
			snapRows++
			switch {
			case v.Source.Snapshot != "incremental":
				failure = fmt.Sprintf("%s: op r with source.snapshot %q, want incremental", where, v.Source.Snapshot)
			case s.deleted:
				failure = fmt.Sprintf("%s resurrected: a snapshot row (v=%d) after its delete", where, v.After.V)
			case s.seen && v.After.V < s.v:
				failure = fmt.Sprintf("%s: a snapshot row with v=%d after a streamed change to v=%d: the snapshot overrode a newer change", where, v.After.V, s.v)
			}
			s.v, s.seen = v.After.V, true
		default:
			s.v, s.seen, s.deleted = v.After.V, true, false
		}
	})
	if records < total {
		e.t.Fatalf("%s: read %d of %d records", table, records, total)
	}
	if failure != "" {
		id := int64(0)
		fmt.Sscanf(failure, "id %d", &id)
		e.t.Fatalf("%s: %s; the key's records:\n%s", table, failure, history(e.snapRecords(table, total, 5*time.Minute), id))
	}
	rows, err := e.db.Query(context.Background(), `SELECT id, v FROM `+table)
	if err != nil {
		e.t.Fatal(err)
	}
	present := map[int64]bool{}
	for rows.Next() {
		var id, v int64
		if err := rows.Scan(&id, &v); err != nil {
			e.t.Fatal(err)
		}
		present[id] = true
		s := keys[id]
		switch {
		case s == nil:
			e.t.Fatalf("%s: row %d (v=%d) has no event: missed", table, id, v)
		case s.deleted || s.v != v:
			e.t.Fatalf("%s: row %d has v=%d but its last event says deleted=%v v=%d", table, id, v, s.deleted, s.v)
		}
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	for id, s := range keys {
		if !present[id] && !s.deleted {
			e.t.Fatalf("%s: row %d is deleted but its last event is not a delete (v=%d)", table, id, s.v)
		}
	}
	for id := int64(1); id <= int64(initialRows); id++ {
		if keys[id] == nil {
			e.t.Fatalf("%s: id %d existed before the snapshot and has no event at all: missed", table, id)
		}
	}
	return records, snapRows
}

// history lists the records of id, for a failure message.
func history(recs []snapRecord, id int64) string {
	var b strings.Builder
	for _, r := range recs {
		if r.id == id {
			fmt.Fprintf(&b, "  partition %d offset %d op %q tombstone %v v=%v lsn %d txId %d snapshot %q position %s\n",
				r.partition, r.offset, r.op, r.tombstone, r.after["v"], r.source.LSN, r.source.TxID, r.source.Snapshot, r.position)
		}
	}
	return b.String()
}

// An incremental snapshot of a 100,000-row table (1,000,000 with PGCDC_TEST_LONG=1) while
// writers update, delete and insert its rows at a high rate: the stream goes on, the last event
// per key equals the final row, no snapshot row overrides a newer streamed change, no deleted row
// comes back, no row is missed.
func TestIncrementalUnderWrites(t *testing.T) {
	rows := 100_000
	if os.Getenv("PGCDC_TEST_LONG") != "" {
		rows = 1_000_000
	}
	e := newEnv(t, nil, nil)
	e.seedTable("iw", rows)
	e.exec(`ANALYZE iw`)
	p := e.start(incrEnv(nil))
	p.logIncremental()
	p.waitStreaming()
	w := startIncrWriters(t, e.dsn, "iw", 3, rows)
	time.Sleep(300 * time.Millisecond) // the stream is busy before the snapshot starts
	start := time.Now()
	e.signal("execute-snapshot", `{"data-collections": ["public.iw"], "type": "incremental"}`)
	p.waitLog("incremental snapshot: table done", 4*time.Minute)
	took := time.Since(start)
	ops := w.finish(t)
	e.waitCaughtUp(2 * time.Minute)
	records, snapRows := e.checkIncremental("iw", rows)
	t.Logf("%d rows snapshotted incrementally in %s (%.0f rows/s) under %d writes (%d updates, %d deletes); %d records, %d op r; dropped in windows: %v, chunks read again: %v; %s",
		rows, took.Round(time.Millisecond), float64(snapRows)/took.Seconds(), ops, w.updates.Load(), w.deletes.Load(), records, snapRows,
		p.lastLogValue("incremental snapshot progress", "rows_dropped"), p.lastLogValue("incremental snapshot progress", "chunks_reread"), p.windowTimes())
	if w.updates.Load() < 1000 {
		t.Fatalf("only %d updates during the snapshot: the test proves nothing", w.updates.Load())
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// incrProgress reads the incremental snapshot's progress row of table: chunks and rows recorded
// done, the last key recorded; ok is false when the table has no row (not queued, or done).
func (e *env) incrProgress(table string) (chunks, rows int64, last []string, ok bool) {
	e.t.Helper()
	err := e.db.QueryRow(context.Background(), `SELECT chunks_done, rows_done, last_key FROM pgcdc_incremental_snapshot WHERE slot_name = $1 AND table_name = $2`,
		e.slot, table).Scan(&chunks, &rows, &last)
	if err == pgx.ErrNoRows {
		return 0, 0, nil, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return chunks, rows, last, true
}

// waitChunks waits until at least n chunks of table are recorded done.
func (e *env) waitChunks(table string, n int64, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if c, _, _, ok := e.incrProgress(table); ok && c >= n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %d chunks not recorded done within %s", table, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill -9 in the middle of an incremental snapshot (some chunks recorded done, proven by the
// progress table, the process proven dead of SIGKILL): the restart continues after the last
// chunk Kafka acknowledged (no row at or below the recorded key is read again) and converges.
func TestIncrementalKillResume(t *testing.T) {
	const rows = 20000
	e := newEnv(t, nil, nil)
	e.seedTable("ik", rows)
	ov := incrEnv(map[string]string{"PGCDC_SNAPSHOT_INCREMENTAL_CHUNK_ROWS": "500", "PGCDC_SNAPSHOT_MAX_ROWS_PER_SEC": "4000"})
	p := e.start(ov)
	p.logIncremental()
	p.waitStreaming()
	w := startIncrWriters(t, e.dsn, "ik", 1, rows)
	e.signal("execute-snapshot", `{"data-collections": ["public.ik"]}`)
	e.waitChunks("public.ik", 3, time.Minute)
	p.kill()
	chunks, done, last, ok := e.incrProgress("public.ik")
	if !ok || chunks < 3 || done >= rows || len(last) != 1 {
		t.Fatalf("at the kill: entry %v, %d chunks, %d rows, last key %v: want some chunks, not all", ok, chunks, done, last)
	}
	lastID, _ := strconv.ParseInt(last[0], 10, 64)

	delete(ov, "PGCDC_SNAPSHOT_MAX_ROWS_PER_SEC")
	p2 := e.start(ov)
	p2.logIncremental()
	resumed := p2.logValue("incremental snapshot in progress: continuing after the last chunk Kafka acknowledged", "last_key", time.Minute)
	if fmt.Sprint(resumed) != fmt.Sprint([]any{last[0]}) {
		t.Fatalf("resumed after key %v, recorded %v", resumed, last)
	}
	p2.waitLog("incremental snapshot: table done", 3*time.Minute)
	ops := w.finish(t)
	e.waitCaughtUp(2 * time.Minute)
	records, snapRows := e.checkIncremental("ik", rows)
	// Rows at or below the recorded key were read once, by the killed run: the restart did not
	// read its acknowledged chunks again.
	perID := map[int64]int{}
	for _, r := range e.snapRecords("ik", records, time.Minute) {
		if r.op == "r" {
			perID[r.id]++
		}
	}
	for id, n := range perID {
		if id <= lastID && n > 1 {
			t.Fatalf("id %d (at or below the recorded last key %d) was read %d times: the restart read an acknowledged chunk again", id, lastID, n)
		}
	}
	t.Logf("killed after %d chunks (%d rows, last key %d recorded); resumed there; %d records, %d op r, %d writes during", chunks, done, lastID, records, snapRows, ops)
	p2.stop()
}

// The signals, through both channels: additional-conditions (Kafka), pause and resume (signal
// table), stop (Kafka), log, and a blocking snapshot (Kafka: it pauses the stream while it reads).
func TestIncrementalSignals(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedTable("ps", 20000)
	e.seedTable("st", 20000)
	e.seedTable("bl", 3000)
	e.exec(`CREATE TABLE rg (id int PRIMARY KEY, v int NOT NULL, region text)`)
	e.exec(`INSERT INTO rg SELECT g, g, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 3000) g`)
	topic := e.prefix + "-signal"
	ov := incrEnv(map[string]string{"PGCDC_SIGNAL_KAFKA_TOPIC": topic, "PGCDC_SNAPSHOT_INCREMENTAL_CHUNK_ROWS": "500", "PGCDC_SNAPSHOT_MAX_ROWS_PER_SEC": "5000"})
	p := e.start(ov)
	p.logIncremental()
	p.waitStreaming()
	kafkaSignal := func(typ, data string) {
		t.Helper()
		kc, err := kafkaclient.New(context.Background(), kafkaclient.Settings{Brokers: e.brokers})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := signal.SendKafka(ctx, kc, topic, e.prefix, signal.NewID(), typ, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}

	// additional-conditions, through the Kafka topic; a signal keyed for another connector is skipped.
	p.waitLog("reading signals from the Kafka signal topic", time.Minute)
	kafkaSignal("log", `{"message": "hello from the test"}`)
	p.waitLog(`"message":"hello from the test"`, time.Minute)
	kafkaSignal("execute-snapshot", `{"data-collections": ["public.rg"], "additional-conditions": [{"data-collection": "public.rg", "filter": "region = 'eu'"}]}`)
	p.waitLogCount("incremental snapshot: table done", 1, time.Minute)
	recs := e.snapRecords("rg", 1000, time.Minute)
	if len(recs) != 1000 {
		t.Fatalf("rg: %d records, want the 1000 eu rows", len(recs))
	}
	for _, r := range recs {
		if r.op != "r" || r.after["region"] != "eu" || r.source.Snapshot != "incremental" {
			t.Fatalf("rg: record %+v: want op r of an eu row, source.snapshot incremental", r)
		}
	}

	// pause and resume, through the signal table.
	e.signal("execute-snapshot", `{"data-collections": ["public.ps"]}`)
	e.waitChunks("public.ps", 2, time.Minute)
	e.signal("pause-snapshot", `{}`)
	p.waitLog("incremental snapshot paused: no window in flight", time.Minute)
	atPause := e.topicSize("ps")
	if atPause >= 20000 {
		t.Fatalf("ps: %d records at the pause: finished already", atPause)
	}
	// The stream goes on while paused; the snapshot does not: a change made now is the only
	// record after the pause.
	e.exec(`UPDATE ps SET v = v + 1 WHERE id = 20000`)
	e.waitCaughtUp(time.Minute)
	if got := e.topicSize("ps"); got != atPause+1 {
		t.Fatalf("ps: %d records after a change during the pause, want %d + 1", got, atPause)
	}
	e.signal("resume-snapshot", `{}`)
	p.waitLogCount("incremental snapshot: table done", 2, time.Minute)
	e.waitCaughtUp(time.Minute)
	e.checkIncremental("ps", 20000)

	// stop, through the Kafka topic.
	e.signal("execute-snapshot", `{"data-collections": ["public.st"]}`)
	e.waitChunks("public.st", 2, time.Minute)
	kafkaSignal("stop-snapshot", `{"data-collections": ["public.st"], "type": "incremental"}`)
	p.waitLog("signal: stop-snapshot", time.Minute)
	if _, _, _, ok := e.incrProgress("public.st"); ok {
		t.Fatal("st: still in the progress table after stop-snapshot")
	}
	e.exec(`UPDATE st SET v = v + 1 WHERE id = 1`)
	e.waitCaughtUp(time.Minute)
	atStop := e.topicSize("st")
	e.exec(`UPDATE st SET v = v + 1 WHERE id = 1`)
	e.waitCaughtUp(time.Minute)
	if got := e.topicSize("st"); got != atStop+1 || atStop >= 20000 {
		t.Fatalf("st: %d records at the stop and %d after one more change: want fewer than 20000, then one more", atStop, got)
	}

	// blocking, through the Kafka topic: the tables are read in one snapshot with the initial
	// snapshot's markers, and the stream goes on afterwards.
	kafkaSignal("execute-snapshot", `{"data-collections": ["public.bl"], "type": "blocking"}`)
	p.waitLog("blocking snapshot done: the stream goes on", time.Minute)
	e.exec(`UPDATE bl SET v = -1 WHERE id = 1`)
	e.waitCaughtUp(time.Minute)
	recs = e.snapRecords("bl", 3001, time.Minute)
	marks := map[string]int{}
	for _, r := range recs {
		if r.op == "r" {
			marks[r.source.Snapshot]++
		}
	}
	if marks["first"] != 1 || marks["last"] != 1 || marks["true"] != 2998 {
		t.Fatalf("bl: markers %v, want first 1, true 2998, last 1", marks)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// Tables that become captured later are backfilled with zero rows missed: one added to
// tables.include before a restart (pgcdc compares the captured tables with those whose rows the
// slot's topics hold), and one created while pgcdc runs (the publication refresher adds it and
// asks for its snapshot), both while writers change them.
func TestIncrementalNewTables(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.seedTable("na", 1000)
	ov := incrEnv(map[string]string{"PGCDC_SNAPSHOT_MODE": "initial", "PGCDC_TABLES_INCLUDE": "public.na"})
	p := e.start(ov)
	p.waitLog("snapshot completed", time.Minute)
	p.waitStreaming()
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}

	e.seedTable("nb", 5000)
	ov["PGCDC_TABLES_INCLUDE"] = "public.na,public.nb,public.nc_*"
	p2 := e.start(ov)
	p2.logIncremental()
	if got := p2.logValue("tables captured since the last run: snapshotting them incrementally (snapshot.backfill_new_tables)", "tables", time.Minute); fmt.Sprint(got) != "[public.nb]" {
		t.Fatalf("backfilled at the restart: %v, want [public.nb]", got)
	}
	w := startIncrWriters(t, e.dsn, "nb", 1, 5000)
	p2.waitLogCount("incremental snapshot: table done", 1, 2*time.Minute)
	// Created while pgcdc runs: its rows are written before the refresher adds it to the
	// publication, so only the backfill can publish them.
	e.exec(`CREATE TABLE nc_1 (id int PRIMARY KEY, v int NOT NULL, note text); INSERT INTO nc_1 SELECT g, g, 'x' FROM generate_series(1, 2000) g`)
	p2.waitLogCount("incremental snapshot: table done", 2, 2*time.Minute)
	w.finish(t)
	e.waitCaughtUp(time.Minute)
	e.checkIncremental("nb", 5000)
	e.checkIncremental("nc_1", 2000)
	if n := e.topicSize("na"); n != 1000 {
		t.Fatalf("na: %d records, want its 1000 snapshot rows only (not snapshotted again)", n)
	}
	p2.stop()
}
