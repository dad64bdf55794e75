package connector_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// With protocol v2 streaming, an aborted streamed transaction publishes nothing, ROLLBACK TO
// SAVEPOINT discards exactly that subtransaction's rows, and a streamed transaction interleaved
// with small ones keeps every transaction in commit order.
func TestStreamedTransactions(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE s (id int PRIMARY KEY, payload text NOT NULL)`)
	p := e.start(map[string]string{
		"PGCDC_POSTGRES_DSN":         withOptions(e.dsn, "-c logical_decoding_work_mem=64kB"),
		"PGCDC_POSTGRES_STREAMING":   "true",
		"PGCDC_EVENTS_VALUE_SCHEMAS": "false",
	})
	p.waitStreaming()
	ctx := context.Background()
	conn := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, e.dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}
	a, b := conn(), conn()
	run := func(c *pgx.Conn, sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	waitStreamed := func(atLeast int64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, n := e.slotStats(); n >= atLeast {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream_txns did not reach %d", atLeast)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// 1. Aborted: 30,000 rows streamed, then ROLLBACK.
	run(a, `BEGIN`)
	run(a, `INSERT INTO s SELECT g, md5(g::text) FROM generate_series(1000001, 1030000) g`)
	waitStreamed(1)
	run(a, `ROLLBACK`)

	// 2. Savepoints: 1..20000 kept, 20001..40000 rolled back, 40001..60000 kept.
	run(a, `BEGIN`)
	run(a, `INSERT INTO s SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	run(a, `SAVEPOINT sp`)
	run(a, `INSERT INTO s SELECT g, md5(g::text) FROM generate_series(20001, 40000) g`)
	run(a, `ROLLBACK TO SAVEPOINT sp`)
	run(a, `INSERT INTO s SELECT g, md5(g::text) FROM generate_series(40001, 60000) g`)
	run(a, `COMMIT`)

	// 3. Interleaving: big transaction open on a while b commits small ones before and after a's commit.
	run(a, `BEGIN`)
	run(a, `INSERT INTO s SELECT g, md5(g::text) FROM generate_series(100001, 150000) g`)
	waitStreamed(3)
	run(b, `INSERT INTO s VALUES (900001, 'before-1')`)
	run(b, `INSERT INTO s VALUES (900002, 'before-2')`)
	run(a, `INSERT INTO s SELECT g, md5(g::text) FROM generate_series(150001, 160000) g`)
	run(a, `COMMIT`)
	run(b, `INSERT INTO s VALUES (900003, 'after-1')`)

	const want = 20000 + 20000 + 60000 + 3
	var ids []int
	n := e.scanTopic("s", want, 3*time.Minute, func(m kafka.Message) {
		var v struct {
			After struct {
				ID int `json:"id"`
			} `json:"after"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("value: %v", err)
		}
		ids = append(ids, v.After.ID)
	})
	if n != want {
		t.Fatalf("read %d records, want %d", n, want)
	}
	// Expected order: savepoint transaction, the two small ones, the big one, the last small one.
	var expect []int
	for i := 1; i <= 20000; i++ {
		expect = append(expect, i)
	}
	for i := 40001; i <= 60000; i++ {
		expect = append(expect, i)
	}
	expect = append(expect, 900001, 900002)
	for i := 100001; i <= 160000; i++ {
		expect = append(expect, i)
	}
	expect = append(expect, 900003)
	for i := range expect {
		if ids[i] != expect[i] {
			t.Fatalf("record %d: id %d, want %d (aborted rows published, or commit order broken)", i, ids[i], expect[i])
		}
	}
	if _, streamed := e.slotStats(); streamed < 3 {
		t.Fatalf("stream_txns = %d, want >= 3", streamed)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// Stopped cleanly, pgcdc has nothing more to write: the topic holds exactly the records read.
	if n := testenv.TopicRecords(ctx, e.brokers, e.topic("s")); n != want {
		t.Fatalf("%d records in the topic, want exactly %d", n, want)
	}
}
