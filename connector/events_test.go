package connector_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// Truncate events (when enabled), logical decoding messages with prefix filters, and the
// transaction metadata topic with the envelope's transaction block.
func TestTruncateMessagesAndTransactionMetadata(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE a (id int PRIMARY KEY, v text)`)
	e.exec(`CREATE TABLE b (id int PRIMARY KEY, v text)`)
	p := e.start(map[string]string{
		"PGCDC_EVENTS_TRUNCATE":               "true",
		"PGCDC_EVENTS_TRANSACTION_METADATA":   "true",
		"PGCDC_EVENTS_MESSAGE_PREFIX_EXCLUDE": "secret.*",
	})
	p.waitStreaming()
	e.exec(`BEGIN; INSERT INTO a VALUES (1, 'x'), (2, 'y'); INSERT INTO b VALUES (1, 'z'); COMMIT`)
	e.exec(`SELECT pg_logical_emit_message(true, 'audit', 'in a transaction')`)
	e.exec(`SELECT pg_logical_emit_message(false, 'ping', 'outside')`)
	e.exec(`SELECT pg_logical_emit_message(false, 'secret-stuff', 'excluded')`)
	e.exec(`SELECT pg_logical_emit_message(false, '__pgcdc_heartbeat', 'own heartbeat')`)
	e.exec(`TRUNCATE a`)

	// Data topics: a gets 2 creates and a truncate; b one create.
	as := e.read("a", 3, time.Minute)
	if as[0].Op != "c" || as[1].Op != "c" || as[2].Op != "t" {
		t.Fatalf("table a: ops %s %s %s, want c c t", as[0].Op, as[1].Op, as[2].Op)
	}
	if as[2].Key != "" || as[2].Before != nil || as[2].After != nil || as[2].Source.Table != "a" {
		t.Errorf("truncate event: key %q before %v after %v source %+v", as[2].Key, as[2].Before, as[2].After, as[2].Source)
	}
	bs := e.read("b", 1, time.Minute)

	// Envelope transaction blocks of the three events of the first transaction.
	raw, err := testenv.ReadTopic(context.Background(), e.brokers, e.topic("a"), 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	type block struct {
		ID                  string `json:"id"`
		TotalOrder          int64  `json:"total_order"`
		DataCollectionOrder int64  `json:"data_collection_order"`
	}
	txOf := func(value []byte) block {
		var v struct {
			Payload struct {
				Transaction *block `json:"transaction"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(value, &v); err != nil || v.Payload.Transaction == nil {
			t.Fatalf("no transaction block in %s (%v)", value, err)
		}
		return *v.Payload.Transaction
	}
	a1, a2 := txOf(raw[0].Value), txOf(raw[1].Value)
	rawB, _ := testenv.ReadTopic(context.Background(), e.brokers, e.topic("b"), 1, time.Minute)
	b1 := txOf(rawB[0].Value)
	// Debezium forms each id as "<txId>:<LSN of the event>" (see connector/meta.go).
	txPrefix := itoa(bs[0].Source.TxID) + ":"
	if a1.TotalOrder != 1 || a2.TotalOrder != 2 || b1.TotalOrder != 3 ||
		a1.DataCollectionOrder != 1 || a2.DataCollectionOrder != 2 || b1.DataCollectionOrder != 1 {
		t.Fatalf("transaction blocks: %+v %+v %+v", a1, a2, b1)
	}
	for i, blk := range []block{a1, a2, b1} {
		lsn := []int64{as[0].Source.LSN, as[1].Source.LSN, bs[0].Source.LSN}[i]
		if blk.ID != txPrefix+itoa(lsn) {
			t.Errorf("transaction id %q, want %q", blk.ID, txPrefix+itoa(lsn))
		}
	}

	// Transaction topic: BEGIN and END of the data transaction (and of the truncate and the
	// transactional message's transaction).
	txs, err := testenv.ReadTopic(context.Background(), e.brokers, e.prefix+".transaction", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var begin, end struct {
		Payload struct {
			Status          string `json:"status"`
			ID              string `json:"id"`
			EventCount      *int64 `json:"event_count"`
			DataCollections []struct {
				DataCollection string `json:"data_collection"`
				EventCount     int64  `json:"event_count"`
			} `json:"data_collections"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(txs[0].Value, &begin); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(txs[1].Value, &end); err != nil {
		t.Fatal(err)
	}
	if begin.Payload.Status != "BEGIN" || !strings.HasPrefix(begin.Payload.ID, txPrefix) || begin.Payload.EventCount != nil {
		t.Errorf("BEGIN event: %s", txs[0].Value)
	}
	dc := end.Payload.DataCollections
	if end.Payload.Status != "END" || !strings.HasPrefix(end.Payload.ID, txPrefix) || end.Payload.EventCount == nil || *end.Payload.EventCount != 3 ||
		len(dc) != 2 || dc[0].DataCollection != "public.a" || dc[0].EventCount != 2 || dc[1].DataCollection != "public.b" || dc[1].EventCount != 1 {
		t.Errorf("END event: %s", txs[1].Value)
	}

	// Messages: audit (transactional) and ping, not the excluded or heartbeat prefixes.
	msgs, err := testenv.ReadTopic(context.Background(), e.brokers, e.prefix+".message", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	extra, _ := testenv.ReadTopic(context.Background(), e.brokers, e.prefix+".message", 3, 2*time.Second)
	if len(extra) != 2 {
		t.Fatalf("%d messages published, want 2 (excluded prefixes must not be)", len(extra))
	}
	var m struct {
		Payload struct {
			Op      string `json:"op"`
			Message struct {
				Prefix  string `json:"prefix"`
				Content []byte `json:"content"`
			} `json:"message"`
			Source struct {
				TxID *int64 `json:"txId"`
			} `json:"source"`
		} `json:"payload"`
	}
	want := []struct {
		prefix, content string
		tx              bool
	}{{"audit", "in a transaction", true}, {"ping", "outside", false}}
	for i, w := range want {
		if err := json.Unmarshal(msgs[i].Value, &m); err != nil {
			t.Fatal(err)
		}
		if m.Payload.Op != "m" || m.Payload.Message.Prefix != w.prefix || string(m.Payload.Message.Content) != w.content || (m.Payload.Source.TxID != nil) != w.tx {
			t.Errorf("message %d: %s", i, msgs[i].Value)
		}
		if !strings.Contains(string(msgs[i].Key), `"prefix":"`+w.prefix+`"`) {
			t.Errorf("message %d key: %s", i, msgs[i].Key)
		}
	}
	// The slot still advances past the non-transactional messages once all is acknowledged.
	deadline := time.Now().Add(30 * time.Second)
	past := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	for e.confirmedFlush() < past {
		if time.Now().After(deadline) {
			t.Fatalf("slot did not catch up: %s", fmtLSN(e.confirmedFlush()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// A primary-key change is a delete of the old key (with the new key in __debezium.newkey, also on
// its tombstone) and a create of the new key (with __debezium.oldkey); partitions of a partitioned
// table publish under their own topics by default (as Debezium), under the root's topic with
// tables.publish_via_partition_root, and an existing publication is never flipped to the other
// setting: a start that finds it stops and says what to do.
func TestKeyChangeAndPartitionedTables(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE k (id int PRIMARY KEY, v text)`)
	e.exec(`CREATE TABLE m (id int NOT NULL, region text NOT NULL, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`)
	e.exec(`CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu')`)
	e.exec(`CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us')`)
	p := e.start(nil)
	p.waitStreaming()
	e.exec(`INSERT INTO k VALUES (1, 'a')`)
	e.exec(`UPDATE k SET id = 3 WHERE id = 1`)
	e.exec(`INSERT INTO m VALUES (1, 'eu', 10), (2, 'us', 20)`)
	for _, leaf := range []string{"m_eu", "m_us"} {
		if c := e.read(leaf, 1, time.Minute)[0]; c.Source.Table != leaf || c.Op != "c" {
			t.Errorf("partition %s: table %q op %s", leaf, c.Source.Table, c.Op)
		}
	}
	p.stop()

	// The other setting on the same publication: refused, with both ways out.
	root := map[string]string{"PGCDC_TABLES_PUBLISH_VIA_PARTITION_ROOT": "true"}
	expectStartupFailure(t, e, root, 1, "publish_via_partition_root = false", "tables.publish_via_partition_root: false", "ALTER PUBLICATION")
	e.exec(`ALTER PUBLICATION ` + e.pub + ` SET (publish_via_partition_root = true)`)
	p = e.start(root)
	p.waitStreaming()
	e.exec(`INSERT INTO m VALUES (3, 'eu', 30), (4, 'us', 40)`)
	ks := e.read("k", 4, time.Minute)
	if ks[1].Op != "d" || !ks[2].Tombstone || ks[3].Op != "c" {
		t.Fatalf("key change: %+v", ks)
	}
	newKey, oldKey := ks[1].Headers["__debezium.newkey"], ks[3].Headers["__debezium.oldkey"]
	if !strings.Contains(newKey, `"id":3`) || ks[2].Headers["__debezium.newkey"] != newKey || !strings.Contains(oldKey, `"id":1`) {
		t.Errorf("headers: delete %v, tombstone %v, create %v", ks[1].Headers, ks[2].Headers, ks[3].Headers)
	}
	if keyID(t, ks[1].Key) != 1 || keyID(t, ks[3].Key) != 3 {
		t.Errorf("keys: delete %s create %s", ks[1].Key, ks[3].Key)
	}
	ms := e.read("m", 2, time.Minute)
	for _, c := range ms {
		if c.Source.Table != "m" || c.Op != "c" {
			t.Errorf("partitioned table event: table %q op %s", c.Source.Table, c.Op)
		}
	}
	p.stop()
}
