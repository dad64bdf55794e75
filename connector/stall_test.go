package connector_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// While the broker is frozen (SIGSTOP of its JVM) pgcdc stops confirming: the slot stays below the
// unacknowledged transaction's commit and below the server's WAL end, the replication stream
// survives a stall longer than wal_sender_timeout (10 s here), and after SIGCONT everything arrives
// and the slot catches up with the server's WAL end once idle.
func TestBrokerStall(t *testing.T) {
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg := startDedicatedPostgres(t, testenv.PostgresOptions{Settings: map[string]string{"wal_sender_timeout": "'10s'"}})
	k := startDedicatedKafka(t)
	e := newEnv(t, pg, []string{k.Addr()})
	e.exec(`CREATE TABLE st (id int PRIMARY KEY, v int)`)
	p := e.start(map[string]string{
		"PGCDC_POSTGRES_STATUS_INTERVAL":  "10s", // capped by pgcdc to wal_sender_timeout/3
		"PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES": "1MiB",
		"PGCDC_KAFKA_BATCH_MAX_BYTES":     "256KiB",
		"PGCDC_KAFKA_WRITE_TIMEOUT":       "5s",
		"PGCDC_EVENTS_VALUE_SCHEMAS":      "false",
	})
	p.waitStreaming()

	// A: acknowledged before the stall.
	e.exec(`INSERT INTO st SELECT g, g FROM generate_series(1, 100) g`)
	e.readIDs("st", 100, time.Minute)
	var walsender int32
	if err := e.db.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&walsender); err != nil {
		t.Fatal(err)
	}

	thaw := freezeKafka(t, k)
	// B: 20,000 rows (several MiB of events, more than the 1 MiB in-flight bound) while Kafka is frozen.
	before := e.queryLSN(`SELECT pg_current_wal_insert_lsn()::text`)
	var xidB int64
	tx, err := e.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO st SELECT g, g FROM generate_series(101, 20100) g`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT txid_current()`).Scan(&xidB); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	bStart, _ := e.commitRecord(xidB, before)

	stallEnd := time.Now().Add(16 * time.Second) // longer than wal_sender_timeout
	checks := 0
	for time.Now().Before(stallEnd) {
		confirmed := e.confirmedFlush()
		current := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
		if confirmed > bStart {
			t.Fatalf("slot confirmed %s, past the commit of the unacknowledged transaction (%s)", fmtLSN(confirmed), fmtLSN(bStart))
		}
		if confirmed >= current {
			t.Fatalf("slot confirmed %s, not below the server's WAL end %s during the stall", fmtLSN(confirmed), fmtLSN(current))
		}
		select {
		case <-p.done:
			t.Fatalf("pgcdc exited during the stall: %v", p.err)
		default:
		}
		checks++
		time.Sleep(500 * time.Millisecond)
	}
	var pid int32
	if err := e.db.QueryRow(ctx, `SELECT coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if pid != walsender {
		t.Fatalf("walsender changed during the stall (%d → %d): the stream did not survive", walsender, pid)
	}
	if err := thaw(); err != nil {
		t.Fatal(err)
	}

	events := e.readIDs("st", 20100, 2*time.Minute)
	seen := map[int]bool{}
	for _, ev := range events {
		seen[ev.id] = true
	}
	if len(seen) != 20100 {
		t.Fatalf("after the stall: %d distinct rows, want 20100", len(seen))
	}
	// Idle: the slot catches up with the server's WAL end (as it was once everything was read:
	// pgcdc's own record of its position writes a little WAL at each confirmation).
	current := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	deadline := time.Now().Add(60 * time.Second)
	for e.confirmedFlush() < current {
		if time.Now().After(deadline) {
			t.Fatalf("idle slot did not catch up: confirmed %s, WAL end %s", fmtLSN(e.confirmedFlush()), fmtLSN(current))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("stall of 16s (wal_sender_timeout 10s): %d checks, slot held below %s; walsender %d survived; 20100 rows after SIGCONT", checks, fmtLSN(bStart), walsender)
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// A fast shutdown of PostgreSQL while Kafka is frozen and pgcdc holds changes it cannot confirm:
// the walsender of a server shutting down waits for its client to confirm everything it sent, so
// the shutdown would wait for Kafka. pgcdc sees the server keep asking for a position it cannot
// confirm, ends its session, and the shutdown goes on; after Kafka and PostgreSQL are back every
// row arrives (the unconfirmed ones are read again from the slot).
func TestFastShutdownDuringBrokerStall(t *testing.T) {
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg := startDedicatedPostgres(t, testenv.PostgresOptions{})
	k := startDedicatedKafka(t)
	e := newEnv(t, pg, []string{k.Addr()})
	e.exec(`CREATE TABLE fs (id int PRIMARY KEY, v int)`)
	p := e.start(map[string]string{"PGCDC_KAFKA_WRITE_TIMEOUT": "5s", "PGCDC_EVENTS_VALUE_SCHEMAS": "false"})
	p.waitStreaming()
	e.exec(`INSERT INTO fs SELECT g, g FROM generate_series(1, 100) g`)
	e.readIDs("fs", 100, time.Minute)

	thaw := freezeKafka(t, k)
	e.exec(`INSERT INTO fs SELECT g, g FROM generate_series(101, 1100) g`)
	time.Sleep(2 * time.Second) // decoded and sent to pgcdc, which cannot have Kafka acknowledge it
	if c, w := e.confirmedFlush(), e.queryLSN(`SELECT pg_current_wal_lsn()::text`); c >= w {
		t.Fatalf("the slot is confirmed to %X, the server's WAL end %X, while Kafka is frozen", c, w)
	}
	e.db.Close(context.Background())
	start := time.Now()
	if !pg.StopWithin(testenv.StopFast, 20*time.Second) {
		t.Fatalf("a fast shutdown with Kafka frozen did not finish within 20 s (killed); pgcdc's log:\n%s", tail(p.out.String(), 4000))
	}
	t.Logf("fast shutdown with Kafka frozen took %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(p.out.String(), "keeps asking for a position pgcdc cannot confirm") {
		t.Errorf("pgcdc did not log why it ended its session:\n%s", tail(p.out.String(), 4000))
	}
	if err := thaw(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.connect()
	e.exec(`INSERT INTO fs SELECT g, g FROM generate_series(1101, 1110) g`)
	e.readIDs("fs", 1110, 2*time.Minute)
	p.alive("fast shutdown during a broker stall")
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
