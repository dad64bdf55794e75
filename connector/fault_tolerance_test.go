package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// This file proves, fault kind by fault kind, what docs/faults.md states: transient faults never end
// the process and lose nothing; permanent ones end it with what happened and how to recover, and
// never make pgcdc recreate a lost slot or publication. internal/chaos combines the transient ones.

// ftWorkload inserts rows with increasing ids, perTxn per transaction, and survives PostgreSQL
// restarts and dropped connections: after a failed statement it reconnects, waits until the old
// backend is gone, and settles the transaction by looking for its rows.
type ftWorkload struct {
	t        *testing.T
	dsn      string
	table    string
	perTxn   int
	next     atomic.Int64 // first id not committed
	failures atomic.Int64 // transactions cut by a fault
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	err      error
}

func startFTWorkload(t *testing.T, dsn, table string, perTxn int) *ftWorkload {
	w := &ftWorkload{t: t, dsn: dsn, table: table, perTxn: perTxn, stop: make(chan struct{})}
	w.next.Store(1)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if err := w.run(); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-w.stop:
		default:
			close(w.stop)
		}
		w.wg.Wait()
	})
	return w
}

func (w *ftWorkload) connect() (*pgx.Conn, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, w.dsn)
		cancel()
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("workload: cannot connect for 2m: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (w *ftWorkload) run() error {
	conn, err := w.connect()
	if err != nil {
		return err
	}
	defer func() { conn.Close(context.Background()) }()
	insert := fmt.Sprintf(`INSERT INTO %s SELECT g, g FROM generate_series($1::int, $2::int) g`, w.table)
	for {
		select {
		case <-w.stop:
			return nil
		default:
		}
		from := w.next.Load()
		to := from + int64(w.perTxn) - 1
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := conn.Exec(ctx, insert, from, to)
		cancel()
		if err != nil {
			w.failures.Add(1)
			pid := conn.PgConn().PID()
			conn.Close(context.Background())
			if conn, err = w.connect(); err != nil {
				return err
			}
			n, err := w.settle(conn, pid, from, to)
			if err != nil {
				return err
			}
			if n == 0 {
				continue // not committed: write the same ids again
			}
		}
		w.next.Store(to + 1)
		time.Sleep(3 * time.Millisecond)
	}
}

// settle waits until backend pid is gone and returns how many of the transaction's rows exist (0 or
// all of them).
func (w *ftWorkload) settle(conn *pgx.Conn, pid uint32, from, to int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		var alive bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, int64(pid)).Scan(&alive); err != nil {
			return 0, fmt.Errorf("workload: settle: %w", err)
		}
		if !alive {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var n int64
	if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE id BETWEEN $1 AND $2`, w.table), from, to).Scan(&n); err != nil {
		return 0, fmt.Errorf("workload: settle: %w", err)
	}
	if n != 0 && n != to-from+1 {
		return 0, fmt.Errorf("workload: transaction %d..%d half there (%d rows)", from, to, n)
	}
	return n, nil
}

func (w *ftWorkload) rows() int { return int(w.next.Load() - 1) }

func (w *ftWorkload) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// waitRows waits until n rows are committed.
func (w *ftWorkload) waitRows(n int) {
	w.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for w.rows() < n {
		if err := w.failed(); err != nil {
			w.t.Fatal(err)
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("workload did not reach %d rows in 2m (at %d)", n, w.rows())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finish stops the workload and returns the rows committed.
func (w *ftWorkload) finish() int {
	w.t.Helper()
	close(w.stop)
	w.wg.Wait()
	if err := w.failed(); err != nil {
		w.t.Fatal(err)
	}
	return w.rows()
}

// expectAll reads table's topic until every id 1..total was seen at least once and returns the
// number of extra copies.
func (e *env) expectAll(table string, total int, timeout time.Duration) (dups int) {
	e.t.Helper()
	distinct := 0
	deadline := time.Now().Add(timeout)
	want := total
	for {
		seen := make([]int, total+1)
		distinct, dups = 0, 0
		read := e.scanTopic(table, want, time.Until(deadline), func(m kafka.Message) {
			var v struct {
				After struct {
					ID int `json:"id"`
				} `json:"after"`
			}
			if err := json.Unmarshal(m.Value, &v); err != nil || v.After.ID < 1 || v.After.ID > total {
				return
			}
			if seen[v.After.ID]++; seen[v.After.ID] == 1 {
				distinct++
			} else {
				dups++
			}
		})
		if distinct == total {
			return dups
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %d of %d rows after %s", table, distinct, total, timeout)
		}
		want = read + 1 // duplicates took the place of missing rows: read on
	}
}

// readEventually reads want records of a table whose topic pgcdc creates when its first change
// arrives.
func (e *env) readEventually(table string, want int, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs, err := testenv.ReadTopic(context.Background(), e.brokers, e.topic(table), want, 5*time.Second)
		if err == nil && len(msgs) >= want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %d of %d records after %s (%v)", e.topic(table), len(msgs), want, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// alive fails the test when pgcdc has exited.
func (p *proc) alive(after string) {
	p.t.Helper()
	select {
	case <-p.done:
		p.t.Fatalf("pgcdc exited after %s (%v):\n%s", after, p.err, tail(p.out.String(), 6000))
	default:
	}
}

func (e *env) postmasterStart() time.Time {
	e.t.Helper()
	var ts time.Time
	if err := e.db.QueryRow(context.Background(), `SELECT pg_postmaster_start_time()`).Scan(&ts); err != nil {
		e.t.Fatal(err)
	}
	return ts
}

// findRecord scans table's topic for the record whose after.id is id and returns its after image.
func (e *env) findRecord(table string, id int, timeout time.Duration) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var found map[string]any
		e.scanTopic(table, 1<<30, 3*time.Second, func(m kafka.Message) {
			var v struct {
				After   map[string]any `json:"after"`
				Payload struct {
					After map[string]any `json:"after"`
				} `json:"payload"` // with value schemas
			}
			if json.Unmarshal(m.Value, &v) != nil {
				return
			}
			after := v.After
			if after == nil {
				after = v.Payload.After
			}
			if f, ok := after["id"].(float64); ok && int(f) == id {
				found = after
			}
		})
		if found != nil {
			return found
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: no event for id %d within %s", table, id, timeout)
		}
	}
}

// PostgreSQL restarts, fast (sessions rolled back, shutdown checkpoint) and immediate (no checkpoint,
// crash recovery), while a workload writes: pgcdc keeps running, every committed row arrives, and
// each of its connections comes back: the replication stream, the catalog connection (a schema
// change after the restart needs a catalog lookup), the publication refresher (a table created after
// the restart is added and captured) and the heartbeat writer (heartbeat records resume).
func TestPostgresRestartIsTransient(t *testing.T) {
	pg := startDedicatedPostgres(t, testenv.PostgresOptions{})
	e := newEnv(t, pg, nil)
	e.exec(`CREATE TABLE pr (id int PRIMARY KEY, v int); CREATE TABLE mk (id int PRIMARY KEY)`)
	p := e.start(map[string]string{
		"PGCDC_EVENTS_VALUE_SCHEMAS":     "false",
		"PGCDC_HEARTBEAT_INTERVAL":       "300ms",
		"PGCDC_HEARTBEAT_TOPIC":          "true",
		"PGCDC_POSTGRES_STATUS_INTERVAL": "500ms",
	})
	p.waitStreaming()
	hbTopic := "__debezium-heartbeat." + e.prefix
	w := startFTWorkload(t, e.dsn, "pr", 20)
	for i, mode := range []struct {
		name string
		mode testenv.StopMode
	}{{"fast", testenv.StopFast}, {"immediate", testenv.StopImmediate}} {
		w.waitRows(w.rows() + 1000)
		before := e.postmasterStart()
		hbBefore, _ := testenv.ReadTopic(context.Background(), e.brokers, hbTopic, 1<<30, 3*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := pg.Restart(ctx, mode.mode); err != nil {
			cancel()
			t.Fatalf("%s restart: %v", mode.name, err)
		}
		cancel()
		e.connect()
		if after := e.postmasterStart(); !after.After(before) {
			t.Fatalf("%s restart: postmaster start time %s, not after %s", mode.name, after, before)
		}
		w.waitRows(w.rows() + 1000)
		p.alive(mode.name + " restart")

		// The catalog connection: a new column needs a catalog lookup for the Relation message.
		col := fmt.Sprintf("after_%s", mode.name)
		e.exec(fmt.Sprintf(`ALTER TABLE mk ADD COLUMN %s text DEFAULT 'x'`, col))
		e.exec(`INSERT INTO mk (id) VALUES ($1)`, i+1)
		if got := e.findRecord("mk", i+1, time.Minute); got[col] != "x" {
			t.Fatalf("after the %s restart: event %v lacks the new column %s", mode.name, got, col)
		}
		// The publication refresher.
		newTable := fmt.Sprintf("pr_new_%s", mode.name)
		e.exec(fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY)`, newTable))
		e.waitPublished(newTable, time.Minute)
		e.exec(fmt.Sprintf(`INSERT INTO %s VALUES (7)`, newTable))
		e.readEventually(newTable, 1, time.Minute)
		// The heartbeat writer.
		if _, err := testenv.ReadTopic(context.Background(), e.brokers, hbTopic, len(hbBefore)+3, time.Minute); err != nil {
			t.Fatalf("heartbeats did not resume after the %s restart: %v", mode.name, err)
		}
		p.alive(mode.name + " restart")
		t.Logf("%s restart: postmaster started again, pgcdc (pid %d) kept running; catalog, refresher and heartbeat connections recovered",
			mode.name, p.cmd.Process.Pid)
	}
	total := w.finish()
	dups := e.expectAll("pr", total, 3*time.Minute)
	if !strings.Contains(p.out.String(), "replication stream broke; reconnecting") {
		t.Error("pgcdc never logged the reconnect")
	}
	t.Logf("%d rows across two restarts (%d transactions cut by them, settled by reading the table), all delivered, %d duplicates", total, w.failures.Load(), dups)
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// pgcdcBackends returns the pids of pgcdc's regular (non-walsender) connections to e's database and
// its walsender's.
func (e *env) pgcdcBackends() (regular []int32, walsender int32) {
	e.t.Helper()
	rows, err := e.db.Query(context.Background(), `SELECT pid, backend_type FROM pg_stat_activity
		WHERE application_name = 'pgcdc' AND datname = current_database()`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid int32
		var typ string
		if err := rows.Scan(&pid, &typ); err != nil {
			e.t.Fatal(err)
		}
		if typ == "walsender" {
			walsender = pid
		} else {
			regular = append(regular, pid)
		}
	}
	return regular, walsender
}

func (e *env) terminate(pids ...int32) {
	e.t.Helper()
	for _, pid := range pids {
		e.exec(`SELECT pg_terminate_backend($1)`, pid)
	}
}

// Dropped connections: first pgcdc's regular connections alone (catalog, heartbeat, publication
// refresh; the replication stream keeps going, so the next catalog lookup finds its connection dead),
// then all of them. pgcdc keeps running and every row arrives.
func TestDroppedConnectionsAreTransient(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE dc (id int PRIMARY KEY, v int); CREATE TABLE mk (id int PRIMARY KEY)`)
	p := e.start(map[string]string{"PGCDC_EVENTS_VALUE_SCHEMAS": "false", "PGCDC_HEARTBEAT_INTERVAL": "500ms"})
	p.waitStreaming()
	w := startFTWorkload(t, e.dsn, "dc", 10)
	w.waitRows(500)

	regular, walsender := e.pgcdcBackends()
	if len(regular) == 0 || walsender == 0 {
		t.Fatalf("pgcdc backends: regular %v, walsender %d", regular, walsender)
	}
	e.terminate(regular...)
	e.exec(`ALTER TABLE mk ADD COLUMN extra text DEFAULT 'y'`) // the next Relation message needs the catalog
	e.exec(`INSERT INTO mk (id) VALUES (1)`)
	if got := e.findRecord("mk", 1, time.Minute); got["extra"] != "y" {
		t.Fatalf("event after the catalog connection was dropped: %v", got)
	}
	p.alive("its catalog connection was terminated")
	w.waitRows(w.rows() + 500)

	regular2, walsender2 := e.pgcdcBackends()
	e.terminate(append(regular2, walsender2)...)
	w.waitRows(w.rows() + 500)
	deadline := time.Now().Add(time.Minute)
	for {
		_, ws := e.pgcdcBackends()
		if ws != 0 && ws != walsender2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new walsender after terminating %d", walsender2)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.alive("all its connections were terminated")
	total := w.finish()
	dups := e.expectAll("dc", total, 3*time.Minute)
	t.Logf("terminated %v (regular) then %v + walsender %d: %d rows delivered, %d duplicates", regular, regular2, walsender2, total, dups)
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// The broker stopped cleanly and started again, killed and started again, and made slow (frozen
// for longer than kafka.write_timeout, again and again): pgcdc retries without end, keeps running,
// never confirms what Kafka has not acknowledged, and delivers every row once the broker answers.
func TestBrokerOutagesAreTransient(t *testing.T) {
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k := startDedicatedKafka(t)
	e := newEnv(t, nil, []string{k.Addr()})
	e.exec(`CREATE TABLE bo (id int PRIMARY KEY, v int)`)
	p := e.start(map[string]string{
		"PGCDC_EVENTS_VALUE_SCHEMAS": "false",
		"PGCDC_KAFKA_WRITE_TIMEOUT":  "2s",
		"PGCDC_KAFKA_PARTITIONS":     "3",
	})
	p.waitStreaming()
	w := startFTWorkload(t, e.dsn, "bo", 5)
	w.waitRows(500)
	e.expectAll("bo", 500, time.Minute)

	outage := func(name string, down func(), downFor time.Duration) {
		oldPID := k.PID()
		down()
		marker := e.commitTxn(`INSERT INTO bo VALUES (-1, 0) ON CONFLICT (id) DO UPDATE SET v = bo.v + 1`)
		w.waitRows(w.rows() + 300) // written while the broker is down
		time.Sleep(downFor)
		p.alive(name)
		// Nothing written during the outage is confirmed.
		if c := e.confirmedFlush(); c >= marker {
			t.Fatalf("%s: slot confirmed %s during the outage, up to a transaction committed while the broker was down (commit end %s)", name, fmtLSN(c), fmtLSN(marker))
		}
		sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		if err := k.Start(sctx); err != nil {
			t.Fatalf("%s: broker did not start again: %v", name, err)
		}
		if k.PID() == oldPID {
			t.Fatalf("%s: broker pid unchanged", name)
		}
		at := w.rows()
		e.expectAll("bo", at, 3*time.Minute)
		p.alive(name)
		t.Logf("%s: broker pid %d -> %d, %d rows delivered", name, oldPID, k.PID(), at)
	}
	outage("broker stop/start", k.Stop, 5*time.Second)
	outage("broker kill/start", k.Kill, 5*time.Second)

	// A slow broker: frozen 3 s (longer than the 2 s write timeout), thawed 1 s, six times.
	pid := k.PID()
	for i := 0; i < 6; i++ {
		if err := k.Pause(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if err := k.Resume(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	p.alive("a slow broker")
	total := w.finish()
	dups := e.expectAll("bo", total, 3*time.Minute)
	out := p.out.String()
	if !strings.Contains(out, "kafka write failed; retrying") {
		t.Error("pgcdc never logged a retried Kafka write")
	}
	// Idle again: the slot catches up with the server's WAL end.
	target := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	deadline := time.Now().Add(time.Minute)
	for e.confirmedFlush() < target {
		if time.Now().After(deadline) {
			t.Fatalf("slot stuck at %s behind %s after the outages", fmtLSN(e.confirmedFlush()), fmtLSN(target))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("stop/start, kill/start, 6 freezes of broker pid %d: %d rows delivered, %d duplicates, %d retried writes logged",
		pid, total, dups, strings.Count(out, "kafka write failed; retrying"))
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// expectFatal waits for pgcdc to exit on its own and checks the exit code 1 and the message.
func expectFatal(t *testing.T, p *proc, want ...string) string {
	t.Helper()
	code, sig := p.wait(2 * time.Minute)
	out := p.out.String()
	if sig != 0 || code != 1 {
		t.Fatalf("pgcdc exit code %d (signal %v), want 1:\n%s", code, sig, tail(out, 4000))
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, tail(out, 4000))
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// commitTxn runs sql in a transaction of its own and returns the end LSN of its commit record: the
// slot may not be confirmed up to it while the transaction's events are not in Kafka.
func (e *env) commitTxn(sql string) uint64 {
	e.t.Helper()
	from := e.queryLSN(`SELECT pg_current_wal_insert_lsn()::text`)
	ctx := context.Background()
	tx, err := e.db.Begin(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var xid int64
	if _, err := tx.Exec(ctx, sql); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	if err := tx.QueryRow(ctx, `SELECT txid_current()`).Scan(&xid); err != nil {
		e.t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		e.t.Fatal(err)
	}
	_, end := e.commitRecord(xid, from)
	return end
}

func (e *env) slotExists() bool {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n == 1
}

// A slot dropped while pgcdc runs ends it with the recovery procedure; pgcdc does not recreate it.
func TestSlotDroppedWhileRunningIsFatal(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE sd (id int PRIMARY KEY)`)
	p := e.start(nil)
	p.waitStreaming()
	e.exec(`INSERT INTO sd VALUES (1)`)
	e.read("sd", 1, time.Minute)
	deadline := time.Now().Add(time.Minute)
	for {
		_, _ = e.db.Exec(context.Background(), `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, e.slot)
		if _, err := e.db.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, e.slot); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("could not drop the slot: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	last := expectFatal(t, p, "does not exist", "does not recreate it", "Recovering from a lost slot")
	if e.slotExists() {
		t.Fatal("the dropped slot exists again: pgcdc recreated it")
	}
	t.Logf("exit 1: %s", last)
}

// A slot PostgreSQL invalidates while pgcdc runs (it held more WAL than max_slot_wal_keep_size: an
// old open transaction pins its restart_lsn while another table fills the WAL) ends pgcdc with the
// recovery procedure; the invalidated slot is left for the operator.
func TestSlotInvalidatedWhileRunningIsFatal(t *testing.T) {
	pg := startDedicatedPostgres(t, testenv.PostgresOptions{Settings: map[string]string{"max_slot_wal_keep_size": "'1MB'"}})
	e := newEnv(t, pg, nil)
	e.exec(`CREATE TABLE inv (id int PRIMARY KEY); CREATE TABLE filler (id int, pad text)`)
	p := e.start(map[string]string{"PGCDC_TABLES_INCLUDE": "public.inv"})
	p.waitStreaming()
	e.exec(`INSERT INTO inv VALUES (1)`)
	e.read("inv", 1, time.Minute)

	// An open transaction that wrote something keeps the slot's restart_lsn where it began.
	holder, err := pgx.Connect(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	tx, err := holder.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck
	if _, err := tx.Exec(context.Background(), `INSERT INTO filler VALUES (0, 'held')`); err != nil {
		t.Fatal(err)
	}
	status := ""
	for i := 0; i < 10 && status != "lost"; i++ {
		e.exec(`INSERT INTO filler SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g`)
		e.exec(`CHECKPOINT`)
		if err := e.db.QueryRow(context.Background(), `SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&status); err != nil {
			t.Fatal(err)
		}
	}
	if status != "lost" {
		t.Fatalf("slot wal_status %q after filling the WAL, want lost", status)
	}
	last := expectFatal(t, p, "invalidated", "drop it", "re-snapshot")
	if !e.slotExists() {
		t.Fatal("the invalidated slot is gone: pgcdc dropped it")
	}
	t.Logf("exit 1: %s", last)
}

// A publication dropped while pgcdc runs ends it with the recovery procedure; pgcdc does not
// recreate it (changes made while it is missing cannot be decoded for the slot), and the slot is not
// confirmed past the change made after the drop.
func TestPublicationDroppedWhileRunningIsFatal(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE pd (id int PRIMARY KEY)`)
	p := e.start(nil)
	p.waitStreaming()
	e.exec(`INSERT INTO pd VALUES (1)`)
	e.read("pd", 1, time.Minute)
	e.exec(`DROP PUBLICATION ` + pgx.Identifier{e.pub}.Sanitize())
	end := e.commitTxn(`INSERT INTO pd VALUES (2)`)
	last := expectFatal(t, p, "publication", e.pub, "Recover: recreate the publication")
	var n int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_publication WHERE pubname = $1`, e.pub).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("pgcdc recreated the dropped publication")
	}
	if c := e.confirmedFlush(); c >= end {
		t.Fatalf("slot confirmed %s, past the change made after the drop (commit end %s)", fmtLSN(c), fmtLSN(end))
	}
	t.Logf("exit 1: %s", last)

	// The recovery docs/faults.md gives. Recreating the publication is not enough: the change made
	// while it was missing still cannot be decoded for this slot.
	e.exec(`CREATE PUBLICATION ` + pgx.Identifier{e.pub}.Sanitize() + ` FOR TABLE pd`)
	p2 := e.start(nil)
	last = expectFatal(t, p2, "does not exist", "drop the slot")
	t.Logf("publication recreated, same slot: exit 1 again: %s", last)
	// Dropping the slot and starting with snapshot.mode when_needed creates a new slot and snapshots
	// the table again; changes from then on flow.
	e.waitSlotReleased(30 * time.Second)
	e.exec(`SELECT pg_drop_replication_slot($1)`, e.slot)
	p3 := e.start(map[string]string{"PGCDC_SNAPSHOT_MODE": "when_needed"})
	p3.waitStreaming()
	e.exec(`INSERT INTO pd VALUES (3)`)
	if got := e.findRecord("pd", 3, time.Minute); got == nil {
		t.Fatal("no event after the recovery")
	}
	if code := p3.stop(); code != 0 {
		t.Fatalf("exit code %d after the recovery", code)
	}
}

// Privileges revoked while pgcdc runs as a least-privilege role: SELECT on the captured table is not
// needed to stream (pgoutput does not check it), so changes keep flowing; REPLICATION is needed for
// every new replication connection, so losing it ends pgcdc at its next reconnect with what to grant.
func TestPrivilegesRevoked(t *testing.T) {
	srv := testenv.SharedPostgres(t)
	role := testenv.UniqueName(t, "role")
	admin, err := pgx.Connect(context.Background(), srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), `CREATE ROLE `+role+` LOGIN REPLICATION`); err != nil {
		t.Fatal(err)
	}
	// Registered before newEnv, so it runs after the database (and the grants in it) is dropped.
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), srv.DSN("postgres"))
		if err == nil {
			_, _ = c.Exec(context.Background(), `DROP ROLE IF EXISTS `+role)
			c.Close(context.Background())
		}
	})
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE pv (id int PRIMARY KEY)`)
	e.exec(`CREATE PUBLICATION ` + pgx.Identifier{e.pub}.Sanitize() + ` FOR TABLE pv`)
	e.exec(`GRANT SELECT ON pv TO ` + role)
	u, err := url.Parse(e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	p := e.start(map[string]string{"PGCDC_POSTGRES_DSN": u.String(), "PGCDC_POSTGRES_CREATE_PUBLICATION": "false",
		"PGCDC_SNAPSHOT_MODE": "no_data"}) // a snapshot would need a progress table the role cannot create
	p.waitStreaming()
	e.exec(`INSERT INTO pv VALUES (1)`)
	e.read("pv", 1, time.Minute)

	e.exec(`REVOKE SELECT ON pv FROM ` + role)
	e.exec(`INSERT INTO pv VALUES (2)`)
	e.read("pv", 2, time.Minute)
	p.alive("SELECT was revoked")

	e.exec(`ALTER ROLE ` + role + ` NOREPLICATION`)
	e.exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1`, e.slot)
	last := expectFatal(t, p, "REPLICATION", "resumes from the slot")
	t.Logf("SELECT revoked: streaming went on; REPLICATION revoked: exit 1: %s", last)
}

// A topic authorization failure, produced for real: a broker with Kafka's StandardAuthorizer and an
// ACL that denies WRITE on the topic to the (anonymous) principal pgcdc connects as. pgcdc ends with
// the topic and what to grant, and does not confirm the refused change; once the ACL is gone, the
// next start delivers it.
func TestTopicAuthorizationFailureIsFatal(t *testing.T) {
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k, err := testenv.StartKafka(ctx, testenv.KafkaOptions{Settings: map[string]string{
		"authorizer.class.name":          "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"allow.everyone.if.no.acl.found": "true",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	e := newEnv(t, nil, []string{k.Addr()})
	e.exec(`CREATE TABLE ta (id int PRIMARY KEY)`)
	p := e.start(map[string]string{"PGCDC_SNAPSHOT_MODE": "no_data"})
	p.waitStreaming()
	e.exec(`INSERT INTO ta VALUES (1)`)
	e.read("ta", 1, time.Minute)

	client := &kafka.Client{Addr: kafka.TCP(k.Addr()), Timeout: 30 * time.Second}
	acl := kafka.ACLEntry{ResourceType: kafka.ResourceTypeTopic, ResourceName: e.topic("ta"), ResourcePatternType: kafka.PatternTypeLiteral,
		Principal: "User:ANONYMOUS", Host: "*", Operation: kafka.ACLOperationTypeWrite, PermissionType: kafka.ACLPermissionTypeDeny}
	res, err := client.CreateACLs(ctx, &kafka.CreateACLsRequest{ACLs: []kafka.ACLEntry{acl}})
	if err == nil && len(res.Errors) > 0 && res.Errors[0] != nil {
		err = res.Errors[0]
	}
	if err != nil {
		t.Fatalf("create ACL: %v", err)
	}
	end := e.commitTxn(`INSERT INTO ta VALUES (2)`)
	last := expectFatal(t, p, e.topic("ta"), "failed permanently", "Topic Authorization Failed", "grant this client WRITE")
	if c := e.confirmedFlush(); c >= end {
		t.Fatalf("slot confirmed %s past the refused change (commit end %s)", fmtLSN(c), fmtLSN(end))
	}
	t.Logf("exit 1: %s", last)

	if _, err := client.DeleteACLs(ctx, &kafka.DeleteACLsRequest{Filters: []kafka.DeleteACLsFilter{{
		ResourceTypeFilter: acl.ResourceType, ResourceNameFilter: acl.ResourceName, ResourcePatternTypeFilter: acl.ResourcePatternType,
		PrincipalFilter: acl.Principal, HostFilter: acl.Host, Operation: acl.Operation, PermissionType: acl.PermissionType,
	}}}); err != nil {
		t.Fatalf("delete ACL: %v", err)
	}
	p2 := e.start(map[string]string{"PGCDC_SNAPSHOT_MODE": "no_data"})
	p2.waitStreaming()
	e.read("ta", 2, 2*time.Minute)
	if code := p2.stop(); code != 0 {
		t.Fatalf("exit code %d after the ACL was removed", code)
	}
}

// A fast shutdown of PostgreSQL while pgcdc is connected and idle completes at once. A walsender of
// a server shutting down exits only once its client confirmed everything it sent, and the shutdown
// waits for it; an idle pgcdc holds its slot one write behind (the write that records its position,
// docs/failover.md), so it must confirm that write when the walsender asks: before, the shutdown hung
// until pgcdc was stopped. pgcdc then reconnects to the restarted server and goes on.
func TestIdleFastShutdownCompletes(t *testing.T) {
	pg := startDedicatedPostgres(t, testenv.PostgresOptions{})
	e := newEnv(t, pg, nil)
	e.exec(`CREATE TABLE ifs (id int PRIMARY KEY, v int)`)
	p := e.start(map[string]string{
		"PGCDC_EVENTS_VALUE_SCHEMAS":     "false",
		"PGCDC_POSTGRES_STATUS_INTERVAL": "500ms",
	})
	p.waitStreaming()
	e.exec(`INSERT INTO ifs VALUES (1, 1)`)
	e.readEventually("ifs", 1, time.Minute)
	// Idle: the position, recorded, confirmed, and nothing written since but the record itself.
	var lag int64
	for deadline := time.Now().Add(30 * time.Second); ; {
		time.Sleep(2 * time.Second)
		if err := e.db.QueryRow(context.Background(), `SELECT pg_current_wal_insert_lsn() - confirmed_flush_lsn
			FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&lag); err != nil {
			t.Fatal(err)
		}
		var again int64
		time.Sleep(time.Second)
		if err := e.db.QueryRow(context.Background(), `SELECT pg_current_wal_insert_lsn() - confirmed_flush_lsn
			FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&again); err != nil {
			t.Fatal(err)
		}
		if again == lag {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot did not settle (lag %d, then %d bytes)", lag, again)
		}
	}
	t.Logf("idle: the slot is %d bytes behind the WAL insert position", lag)
	e.db.Close(context.Background())

	start := time.Now()
	if !pg.StopWithin(testenv.StopFast, 20*time.Second) {
		t.Fatalf("a fast shutdown with pgcdc connected and idle did not finish within 20 s (killed); pgcdc's log:\n%s", p.out.String())
	}
	t.Logf("fast shutdown took %s", time.Since(start).Round(time.Millisecond))
	p.alive("fast shutdown")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.connect()
	e.exec(`INSERT INTO ifs VALUES (2, 2)`)
	e.readEventually("ifs", 2, 2*time.Minute)
	p.alive("restart")
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
