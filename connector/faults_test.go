package connector_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A record larger than its topic's max.message.bytes stops pgcdc with an error naming the table,
// key, LSN and size; the slot is not confirmed past it, so nothing is skipped.
func TestOversizeRecordIsAnError(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE wide (id int PRIMARY KEY, body text)`)
	p := e.start(map[string]string{"PGCDC_KAFKA_TOPIC_CONFIG": "max.message.bytes=4000"})
	p.waitStreaming()
	e.exec(`INSERT INTO wide VALUES (1, 'small')`)
	e.read("wide", 1, time.Minute)
	before := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	e.exec(`INSERT INTO wide VALUES (2, repeat('x', 10000))`)
	code, sig := p.wait(60 * time.Second)
	if code == 0 || sig != 0 {
		t.Fatalf("pgcdc exited with code %d (signal %v), want a non-zero exit", code, sig)
	}
	out := p.out.String()
	for _, want := range []string{"public.wide", `{\"id\":2}`, "max.message.bytes=4000", "bytes, more than topic"} {
		if !strings.Contains(out, want) {
			t.Errorf("error output lacks %q:\n%s", want, tail(out, 3000))
		}
	}
	if c := e.confirmedFlush(); c > before {
		t.Fatalf("slot confirmed %s past the oversize record's transaction (WAL was at %s before it)", fmtLSN(c), fmtLSN(before))
	}
}

// Terminating the walsender mid-stream is a transient fault: pgcdc reconnects and nothing is lost.
func TestReconnectsAfterWalsenderTermination(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE rc (id int PRIMARY KEY, v int)`)
	overrides := map[string]string{"PGCDC_EVENTS_VALUE_SCHEMAS": "false"}
	p := e.start(overrides)
	p.waitStreaming()
	w := startWorkload(t, e.dsn, "rc", 20, 2*time.Millisecond)
	w.waitRows(1000)
	var pid int32
	if err := e.db.QueryRow(context.Background(), `SELECT pg_terminate_backend(active_pid)::int, active_pid FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(new(int), &pid); err != nil {
		t.Fatal(err)
	}
	p.waitLog("reconnecting", 30*time.Second)
	w.waitRows(int(w.next.Load()) + 1000)
	total := w.finish()
	events := e.readIDs("rc", total, 2*time.Minute)
	seen := map[int]bool{}
	for _, ev := range events {
		seen[ev.id] = true
	}
	if len(seen) != total {
		t.Fatalf("%d distinct rows of %d after the walsender (pid %d) was terminated", len(seen), total, pid)
	}
	var newPID int32
	if err := e.db.QueryRow(context.Background(), `SELECT coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&newPID); err != nil {
		t.Fatal(err)
	}
	if newPID == 0 || newPID == pid {
		t.Fatalf("walsender after reconnect: %d (terminated: %d)", newPID, pid)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
