package versiontest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// TestFailoverSlot: on PostgreSQL 17 and 18, pgcdc with postgres.failover_slot and a multi-host DSN
// continues after the primary dies and its standby is promoted, from the slot the standby kept
// synchronized, and delivers every row the new primary holds (0 lost, nothing that did not survive
// the failover).
func TestFailoverSlot(t *testing.T) {
	testenv.Require(t)
	brokers := testenv.SharedKafka(t)
	pgcdcBinary(t)
	for _, v := range []int{17, 18} {
		t.Run(fmt.Sprintf("pg%d", v), func(t *testing.T) { runFailover(t, v, brokers) })
	}
}

const failoverDB = "app"

func runFailover(t *testing.T, version int, brokers []string) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	primary, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{Version: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Close)
	admin := connect(t, primary.DSN("postgres"))
	admin.exec(`CREATE DATABASE ` + failoverDB)
	pdb := connect(t, primary.DSN(failoverDB))
	pdb.exec(`CREATE TABLE items (id bigint PRIMARY KEY, pad text NOT NULL)`)

	standby, err := primary.StartStandby(ctx, testenv.StandbyOptions{Slot: "sb1", Name: "sb1", DBName: failoverDB,
		Settings: map[string]string{"hot_standby_feedback": "on", "sync_replication_slots": "on"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(standby.Close)
	slot := "failover_slot"
	prefix := testenv.UniqueName(t, "f")
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write", primary.Port, standby.Port, failoverDB)
	vars := map[string]string{
		"PGCDC_POSTGRES_DSN":                          dsn,
		"PGCDC_POSTGRES_SLOT":                         slot,
		"PGCDC_POSTGRES_PUBLICATION":                  "failover_pub",
		"PGCDC_POSTGRES_FAILOVER_SLOT":                "true",
		"PGCDC_POSTGRES_STATUS_INTERVAL":              "500ms",
		"PGCDC_POSTGRES_CONNECT_TIMEOUT":              "30s",
		"PGCDC_POSTGRES_PUBLICATION_REFRESH_INTERVAL": "0s",
		"PGCDC_POSTGRES_SPOOL_DIR":                    filepath.Join(t.TempDir(), "spool"),
		"PGCDC_TABLES_INCLUDE":                        "public.items",
		"PGCDC_KAFKA_BROKERS":                         strings.Join(brokers, ","),
		"PGCDC_KAFKA_TOPIC_PREFIX":                    prefix,
		"PGCDC_EVENTS_KEY_SCHEMAS":                    "false",
		"PGCDC_EVENTS_VALUE_SCHEMAS":                  "false",
		"PGCDC_HEARTBEAT_INTERVAL":                    "500ms",
		"PGCDC_LOG_PROGRESS_INTERVAL":                 "0s",
		"PGCDC_METRICS_LISTEN":                        "127.0.0.1:0",
	}
	// pgcdc check: failover slots possible but off; on, but no standby known to synchronize.
	off := map[string]string{}
	for k, v := range vars {
		off[k] = v
	}
	off["PGCDC_POSTGRES_FAILOVER_SLOT"] = "false"
	requireCheck(t, off, "WARN", "has failover slots but postgres.failover_slot is false")
	requireCheck(t, vars, "WARN", "synchronized_standby_slots is empty")

	// The logical walsender sends nothing the standby has not flushed, and commits wait for the
	// standby: what pgcdc delivers and what the writer saw committed both survive the failover.
	admin.exec(`ALTER SYSTEM SET synchronized_standby_slots = 'sb1'`)
	admin.exec(`ALTER SYSTEM SET synchronous_standby_names = 'sb1'`)
	admin.exec(`SELECT pg_reload_conf()`)
	requireCheck(t, vars, "OK", "failover slot synchronized to the standbys of synchronized_standby_slots (sb1)")

	if version == 17 {
		// An existing ordinary slot: pgcdc turns failover on (ALTER_REPLICATION_SLOT). On 18 it
		// creates the slot itself (CREATE_REPLICATION_SLOT ... FAILOVER).
		pdb.exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	}
	p := runPgcdc(t, vars)
	p.waitLog(`"message":"streaming"`, 90*time.Second)
	var failover bool
	if err := pdb.conn.QueryRow(ctx, `SELECT failover FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&failover); err != nil || !failover {
		t.Fatalf("slot %s on the primary: failover %v (%v), want a failover slot", slot, failover, err)
	}

	w := startFailoverWriter(t, []string{primary.DSN(failoverDB), standby.DSN(failoverDB)})
	w.waitTxns(20, time.Minute)
	// Promote only once the standby's copy is synchronized and persistent.
	sdb := connect(t, standby.DSN(failoverDB))
	waitSynced(t, sdb, slot, 2*time.Minute)
	w.waitTxns(w.txns()+20, time.Minute)

	// The primary dies (no shutdown checkpoint) under the workload; the standby takes over.
	primary.Stop(testenv.StopImmediate)
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	w.waitTxns(w.txns()+40, 2*time.Minute) // on the new primary
	w.stop()
	ndb := connect(t, standby.DSN(failoverDB))
	ndb.waitConfirmed(p, slot, ndb.lsn(`SELECT pg_current_wal_insert_lsn()::text`), 2*time.Minute)
	caughtUp := time.Since(promoted)
	var synced bool
	if err := ndb.conn.QueryRow(ctx, `SELECT failover AND synced FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&synced); err != nil || !synced {
		t.Fatalf("slot %s on the new primary: failover and synced %v (%v), want the standby's synchronized copy", slot, synced, err)
	}
	if strings.Contains(p.out.String(), `"slot_created":true`) && strings.Count(p.out.String(), `"message":"pgcdc starting"`) > 1 {
		t.Fatal("pgcdc created the slot again on the new primary")
	}
	p.stop()
	var resumed []string
	for _, l := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(l, `"message":"streaming"`) || strings.Contains(l, "reconnecting") {
			resumed = append(resumed, l)
		}
	}
	if len(resumed) < 2 {
		t.Fatalf("pgcdc did not reconnect after the failover:\n%s", lastBytes(p.out.String(), 4000))
	}
	t.Logf("pgcdc across the failover:\n%s", strings.Join(resumed, "\n"))

	// The checker: the new primary's rows against the topic.
	final := map[int64]bool{}
	rows, err := ndb.conn.Query(ctx, `SELECT id FROM items`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		final[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	delivered := map[int64]int{}
	for _, m := range decodeItems(t, readAll(t, brokers, prefix+".public.items")) {
		if !m.tombstone && m.ev.Op == "c" {
			delivered[m.id]++
		}
	}
	lost, unexpected, dups := 0, 0, 0
	for id := range final {
		if delivered[id] == 0 {
			lost++
			if lost <= 5 {
				t.Errorf("row %d is on the new primary but was never delivered", id)
			}
		}
	}
	for id, n := range delivered {
		dups += n - 1
		if !final[id] {
			unexpected++
			if unexpected <= 5 {
				t.Errorf("row %d was delivered but did not survive the failover", id)
			}
		}
	}
	for _, id := range w.acknowledged() {
		if !final[id] {
			t.Errorf("row %d: its commit was acknowledged (synchronous standby) but the new primary lacks it", id)
			break
		}
	}
	t.Logf("PostgreSQL %d failover: %d rows (%d transactions, %d acknowledged before the failover), %d lost, %d unexpected, %d duplicates; caught up %s after the promotion; took %s",
		version, len(final), w.txns(), w.before.Load(), lost, unexpected, dups, caughtUp.Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond))
	if lost > 0 || unexpected > 0 {
		t.Errorf("%d rows lost, %d unexpected", lost, unexpected)
	}
}

// requireCheck runs pgcdc check and requires a finding of severity sev containing msg.
func requireCheck(t *testing.T, vars map[string]string, sev, msg string) {
	t.Helper()
	_, out := runCommand(t, vars, "check")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), sev) && strings.Contains(l, msg) {
			return
		}
	}
	t.Fatalf("pgcdc check: no %s finding %q:\n%s", sev, msg, out)
}

// waitSynced waits until the standby's copy of slot is synchronized and no longer temporary.
func waitSynced(t *testing.T, sdb *db, slot string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var synced, temporary bool
		err := sdb.conn.QueryRow(context.Background(), `SELECT synced, temporary FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&synced, &temporary)
		if err == nil && synced && !temporary {
			return
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby's copy of slot %s: synced %v, temporary %v after %s (%v)", slot, synced, temporary, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// failoverWriter inserts 5 rows per transaction through whichever server accepts writes; a
// transaction cut by the failover is settled on the new primary.
type failoverWriter struct {
	t      *testing.T
	dsns   []string
	quit   chan struct{}
	wg     sync.WaitGroup
	n      atomic.Int64
	before atomic.Int64 // transactions acknowledged before the first failure
	mu     sync.Mutex
	acked  []int64 // ids whose commit was acknowledged
	err    error
	once   sync.Once
}

func startFailoverWriter(t *testing.T, dsns []string) *failoverWriter {
	w := &failoverWriter{t: t, dsns: dsns, quit: make(chan struct{})}
	w.wg.Add(1)
	go w.run()
	t.Cleanup(w.stop)
	return w
}

// connectWritable connects to the first server that accepts writes, retrying for up to 2 minutes.
func (w *failoverWriter) connectWritable() (*pgx.Conn, error) {
	u, _ := url.Parse(w.dsns[0])
	hosts := []string{}
	for _, d := range w.dsns {
		du, _ := url.Parse(d)
		hosts = append(hosts, du.Host)
	}
	u.Host = strings.Join(hosts, ",")
	q := u.Query()
	q.Set("target_session_attrs", "read-write")
	u.RawQuery = q.Encode()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, u.String())
		cancel()
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-w.quit:
			return nil, errors.New("stopped")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (w *failoverWriter) run() {
	defer w.wg.Done()
	conn, err := w.connectWritable()
	if err != nil {
		w.fail(err)
		return
	}
	defer func() { conn.Close(context.Background()) }()
	failed := false
	for next := int64(1); ; {
		select {
		case <-w.quit:
			return
		case <-time.After(10 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := conn.Exec(ctx, `INSERT INTO items SELECT g, md5(g::text) FROM generate_series($1::bigint, $1::bigint + 4) g`, next)
		cancel()
		if err != nil {
			if !failed {
				w.before.Store(w.n.Load())
			}
			failed = true
			conn.Close(context.Background())
			if conn, err = w.connectWritable(); err != nil {
				w.fail(err)
				return
			}
			// Settle the cut transaction on the new primary: committed or not, never half.
			var n int
			if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM items WHERE id BETWEEN $1 AND $1 + 4`, next).Scan(&n); err != nil {
				w.fail(err)
				return
			}
			if n != 0 && n != 5 {
				w.fail(fmt.Errorf("transaction of ids %d..%d is half there (%d rows)", next, next+4, n))
				return
			}
			if n == 0 {
				continue // not committed: written again
			}
		} else {
			w.mu.Lock()
			for id := next; id < next+5; id++ {
				w.acked = append(w.acked, id)
			}
			w.mu.Unlock()
		}
		next += 5
		w.n.Add(1)
	}
}

func (w *failoverWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *failoverWriter) txns() int64 { return w.n.Load() }

func (w *failoverWriter) acknowledged() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...)
}

func (w *failoverWriter) waitTxns(n int64, limit time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for w.txns() < n {
		w.mu.Lock()
		err := w.err
		w.mu.Unlock()
		if err != nil {
			w.t.Fatalf("writer: %v", err)
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("writer committed %d transactions, want %d after %s", w.txns(), n, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *failoverWriter) stop() {
	w.once.Do(func() { close(w.quit) })
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil && w.err.Error() != "stopped" {
		w.t.Errorf("writer: %v", w.err)
	}
}
