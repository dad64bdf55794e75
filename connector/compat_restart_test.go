package connector_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// source.sequence is ["<last commit LSN>","<this LSN>"]. Within a session the first element is the
// previous transaction's commit end; after a restart Debezium restores it from its offsets, so the
// first event after a restart carries a position too, not null. pgcdc resumes where the slot is
// confirmed: that position (the previous transaction's end, or a later keepalive position when the
// slot was confirmed while idle).
func TestSequenceAfterRestart(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE seq (id int PRIMARY KEY)`)
	p := e.start(nil)
	p.waitStreaming()
	from := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	e.exec(`INSERT INTO seq VALUES (1)`)
	e.exec(`INSERT INTO seq VALUES (2)`)
	got := e.read("seq", 2, 30*time.Second)
	_, end1 := e.commitRecord(got[0].Source.TxID, from)
	_, end2 := e.commitRecord(got[1].Source.TxID, from)
	if first, _ := sequence(t, got[1]); first != end1 {
		t.Fatalf("second event: sequence[0] = %s, want the previous transaction's commit end %s", fmtLSN(first), fmtLSN(end1))
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("clean stop exited %d", code)
	}
	resume := e.confirmedFlush() // where the next session starts
	if resume < end2 {
		t.Fatalf("after a clean stop the slot is at %s, before the last transaction's end %s", fmtLSN(resume), fmtLSN(end2))
	}

	p = e.start(nil)
	p.waitStreaming()
	e.exec(`INSERT INTO seq VALUES (3)`)
	got = e.read("seq", 3, 30*time.Second)
	first, ok := sequence(t, got[2])
	if !ok {
		t.Fatalf("first event after the restart: sequence[0] is null, want the position the session resumed from (%s)", fmtLSN(resume))
	}
	if first != resume {
		t.Fatalf("first event after the restart: sequence[0] = %s, want %s (the slot's confirmed position; the last commit ended at %s)", fmtLSN(first), fmtLSN(resume), fmtLSN(end2))
	}
	p.stop()
}

// sequence parses source.sequence and returns its first element (ok=false when null).
func sequence(t *testing.T, c change) (uint64, bool) {
	t.Helper()
	s := strings.Trim(c.Source.Sequence, "[]")
	first, _, found := strings.Cut(s, ",")
	if !found {
		t.Fatalf("source.sequence %q", c.Source.Sequence)
	}
	if first == "null" {
		return 0, false
	}
	var v uint64
	if _, err := fmt.Sscanf(strings.Trim(first, `"`), "%d", &v); err != nil {
		t.Fatalf("source.sequence %q: %v", c.Source.Sequence, err)
	}
	return v, true
}

// pgcdc's heartbeats are non-transactional logical decoding messages: another logical decoding
// consumer of the database (here test_decoding, which prints transaction boundaries) sees them
// outside any transaction, so a Debezium beside pgcdc gets no BEGIN/END transaction metadata for
// them (and leaves them out of its message topic with message.prefix.exclude.list).
func TestHeartbeatsAreNonTransactional(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE hb (id int PRIMARY KEY)`)
	neighbour := e.slot + "_td"
	e.exec(`SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, neighbour)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, e.dsn); err == nil {
			_, _ = c.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, neighbour)
			c.Close(ctx)
		}
	})
	p := e.start(map[string]string{"PGCDC_HEARTBEAT_INTERVAL": "200ms"})
	p.waitStreaming()

	// Wait for a few heartbeats in the neighbour's stream (bounded in time).
	var lines []string
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats in the neighbour slot after 30s:\n%s", n, strings.Join(lines, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
		lines = peekChanges(t, e, neighbour)
		n = 0
		for _, l := range lines {
			if strings.Contains(l, "prefix: __pgcdc_heartbeat") {
				n++
			}
		}
	}
	inTxn := false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "BEGIN"):
			inTxn = true
		case strings.HasPrefix(l, "COMMIT"):
			inTxn = false
		case strings.Contains(l, "prefix: __pgcdc_heartbeat"):
			if inTxn || !strings.Contains(l, "transactional: 0") {
				t.Fatalf("heartbeat inside a transaction of the neighbour's stream: %q\n%s", l, strings.Join(lines, "\n"))
			}
		}
	}
	p.stop()
}

// peekChanges reads what a test_decoding slot would return, without consuming it; empty
// transactions are shown (skip-empty-xacts off), so any transaction boundary is visible.
func peekChanges(t *testing.T, e *env, slot string) []string {
	t.Helper()
	rows, err := e.db.Query(context.Background(), `SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL, 'skip-empty-xacts', '0')`, slot)
	if err != nil {
		t.Fatalf("peek %s: %v", slot, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
