package connector_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// SIGTERM while the broker is frozen: pgcdc cannot finish what it has in flight, so after
// kafka.shutdown_timeout it stops hard — within the timeout plus a few seconds, with a non-zero
// exit code and a log line that says what happened — and the slot stays at what Kafka
// acknowledged. Started again once the broker is back, it delivers every row.
func TestStopWhileKafkaIsStalled(t *testing.T) {
	k := startDedicatedKafka(t)
	e := newEnv(t, nil, []string{k.Addr()})
	e.exec(`CREATE TABLE ks (id int PRIMARY KEY, v int)`)
	const shutdownTimeout = 8 * time.Second
	overrides := map[string]string{
		"PGCDC_KAFKA_SHUTDOWN_TIMEOUT": shutdownTimeout.String(),
		"PGCDC_KAFKA_WRITE_TIMEOUT":    "5s",
		"PGCDC_EVENTS_VALUE_SCHEMAS":   "false",
	}
	p := e.start(overrides)
	p.waitStreaming()

	// A: acknowledged, and confirmed promptly (within about a second, not status_interval).
	e.exec(`INSERT INTO ks SELECT g, g FROM generate_series(1, 100) g`)
	e.readIDs("ks", 100, time.Minute)
	afterA := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)

	thaw := freezeKafka(t, k)
	// B: written while Kafka is frozen; pgcdc reads it and cannot get it acknowledged.
	e.exec(`INSERT INTO ks SELECT g, g FROM generate_series(101, 5000) g`)
	bEnd := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	time.Sleep(4 * time.Second) // as a user would: SIGTERM some seconds into the stall

	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, sig := p.wait(shutdownTimeout + 5*time.Second)
	took := time.Since(began)
	if sig != 0 || code == 0 {
		t.Fatalf("exit code %d (signal %v) after a stop that could not finish; want a non-zero exit", code, sig)
	}
	out := p.out.String()
	if !strings.Contains(out, "shutdown timeout") || !strings.Contains(out, "not yet acknowledged") {
		t.Fatalf("the log does not say why the stop was hard:\n%s", tail(out, 4000))
	}
	confirmed := e.confirmedFlush()
	if confirmed < afterA {
		t.Errorf("slot at %s, behind the acknowledged rows (WAL %s): they were not confirmed promptly", fmtLSN(confirmed), fmtLSN(afterA))
	}
	if confirmed >= bEnd {
		t.Fatalf("slot confirmed %s, past the unacknowledged rows (their commit ends by %s)", fmtLSN(confirmed), fmtLSN(bEnd))
	}

	if err := thaw(); err != nil {
		t.Fatal(err)
	}
	p2 := e.start(overrides)
	p2.waitStreaming()
	seen := map[int]bool{}
	for _, ev := range e.readIDs("ks", 5000, 2*time.Minute) {
		seen[ev.id] = true
	}
	if len(seen) != 5000 {
		t.Fatalf("after the restart: %d distinct rows, want 5000", len(seen))
	}
	if code := p2.stop(); code != 0 {
		t.Fatalf("exit code %d on a clean stop", code)
	}
	t.Logf("hard stop %s after SIGTERM (shutdown_timeout %s); slot held at %s (acknowledged %s, unacknowledged up to %s); 5000 rows after the restart",
		took.Round(100*time.Millisecond), shutdownTimeout, fmtLSN(confirmed), fmtLSN(afterA), fmtLSN(bEnd))
}

// SIGTERM while a large transaction is being published, with small transactions committed around
// it: pgcdc finishes the large one, waits for Kafka, confirms and exits 0 saying so; after a
// restart every row has arrived exactly once.
func TestStopFinishesTheTransactionAtHand(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE big (id int PRIMARY KEY, v int)`)
	e.exec(`CREATE TABLE small (id int PRIMARY KEY, v int)`)
	overrides := map[string]string{
		"PGCDC_EVENTS_VALUE_SCHEMAS":   "false",
		"PGCDC_KAFKA_SHUTDOWN_TIMEOUT": "90s", // the large transaction finishes well within it
	}
	p := e.start(overrides)
	p.waitStreaming()
	w := startWorkload(t, e.dsn, "small", 10, 5*time.Millisecond)
	w.waitRows(200)

	const bigRows = 100000
	e.exec(`INSERT INTO big SELECT g, g FROM generate_series(1, $1::int) g`, bigRows)
	// Stop once the large transaction is partly in Kafka.
	partly := make(chan struct{})
	go func() {
		defer close(partly)
		e.scanTopicUntil("big", bigRows/10, 2*time.Minute)
	}()
	select {
	case <-partly:
	case <-time.After(3 * time.Minute):
		t.Fatal("the large transaction did not start to arrive")
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM in the middle of a transaction:\n%s", code, tail(p.out.String(), 4000))
	}
	p.waitLog(`"message":"stopped cleanly"`, time.Second)
	if out := p.out.String(); strings.Contains(out, `"level":"error"`) {
		t.Fatalf("errors logged on a clean stop:\n%s", tail(out, 4000))
	}

	at := int(w.next.Load())
	w.waitRows(at + 300) // written while pgcdc is down
	p2 := e.start(overrides)
	p2.waitStreaming()
	w.waitRows(at + 600)
	smallRows := w.finish()

	for table, rows := range map[string]int{"big": bigRows, "small": smallRows} {
		events := e.readIDs(table, rows, 3*time.Minute)
		count := make([]int, rows+1)
		for _, ev := range events {
			count[ev.id]++
		}
		for id := 1; id <= rows; id++ {
			if count[id] != 1 {
				t.Fatalf("%s row %d delivered %d times, want exactly once (%d events for %d rows)", table, id, count[id], len(events), rows)
			}
		}
		if len(events) != rows {
			t.Fatalf("%s: %d events for %d rows", table, len(events), rows)
		}
	}
	t.Logf("stop in the middle of a %d-row transaction: exit 0, %d + %d rows each delivered once after the restart", bigRows, bigRows, smallRows)
	p2.stop()
}

// scanTopicUntil returns once at least n records of table's topic are readable.
func (e *env) scanTopicUntil(table string, n int, timeout time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		if testenv.TopicRecords(ctx, e.brokers, e.topic(table)) >= int64(n) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
