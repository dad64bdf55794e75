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

// While the captured tables are idle and another database writes, heartbeats keep the slot moving
// past the other writes, and Debezium heartbeat records appear when asked for.
func TestHeartbeatsAdvanceTheSlot(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE idle (id int PRIMARY KEY)`)
	p := e.start(map[string]string{"PGCDC_HEARTBEAT_INTERVAL": "500ms", "PGCDC_HEARTBEAT_TOPIC": "true"})
	p.waitStreaming()

	other, err := pgx.Connect(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	if _, err := other.Exec(context.Background(), `CREATE TABLE busy (id serial PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	var target uint64
	for i := 0; i < 20; i++ {
		if _, err := other.Exec(context.Background(), `INSERT INTO busy (v) SELECT md5(g::text) FROM generate_series(1, 100) g`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	target = e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	deadline := time.Now().Add(30 * time.Second)
	for e.confirmedFlush() < target {
		if time.Now().After(deadline) {
			t.Fatalf("slot stuck at %s, behind the other database's writes at %s", fmtLSN(e.confirmedFlush()), fmtLSN(target))
		}
		time.Sleep(100 * time.Millisecond)
	}
	msgs, err := testenv.ReadTopic(context.Background(), e.brokers, "__debezium-heartbeat."+e.prefix, 2, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Payload struct {
			ServerName string `json:"serverName"`
		} `json:"payload"`
	}
	var v struct {
		Payload struct {
			TsMs int64 `json:"ts_ms"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(msgs[0].Key, &k); err != nil || k.Payload.ServerName != e.prefix {
		t.Fatalf("heartbeat key %s (%v)", msgs[0].Key, err)
	}
	if err := json.Unmarshal(msgs[1].Value, &v); err != nil || v.Payload.TsMs == 0 {
		t.Fatalf("heartbeat value %s (%v)", msgs[1].Value, err)
	}
	// Heartbeats never show up as messages or data.
	if n := e.scanTopic("idle", 1, time.Second, func(_ kafka.Message) {}); n != 0 {
		t.Fatalf("%d records on the idle table's topic", n)
	}
	p.stop()
}
