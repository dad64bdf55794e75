package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// outboxWorkload writes orders and their outbox events, by table row and by transactional logical
// decoding message, in the same transactions: several writers, each owning some aggregates, each
// aggregate's events numbered 1, 2, 3... in commit order. Some transactions roll back, some roll a
// savepoint back, some delete the outbox row again before committing. It records which events
// committed and which were rolled back.
type outboxWorkload struct {
	t    *testing.T
	stop chan struct{}
	wg   sync.WaitGroup

	mu         sync.Mutex
	committed  map[string]string // event id → aggregate
	rolledBack map[string]bool
	txns       int
	err        error
}

const (
	outboxAggregates = 12
	outboxWriters    = 2
	outboxPrefix     = "orderevents" // the message outbox's prefix
)

func startOutboxWorkload(t *testing.T, dsn string) *outboxWorkload {
	w := &outboxWorkload{t: t, stop: make(chan struct{}), committed: map[string]string{}, rolledBack: map[string]bool{}}
	for i := 0; i < outboxWriters; i++ {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer conn.Close(context.Background())
			if err := w.write(conn, i); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *outboxWorkload) write(conn *pgx.Conn, writer int) error {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(writer), 7))
	next := map[string]int{} // aggregate → next sequence number
	var own []string
	for a := writer; a < outboxAggregates; a += outboxWriters {
		own = append(own, fmt.Sprintf("agg-%d", a))
	}
	serial := 0
	for n := 0; ; n++ {
		select {
		case <-w.stop:
			return nil
		default:
		}
		agg := own[rng.IntN(len(own))]
		seq := next[agg] + 1
		events := 1 + rng.IntN(2) // one or two events of the aggregate
		var ids, bogus []string
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		exec := func(sql string, args ...any) {
			if err == nil {
				_, err = tx.Exec(ctx, sql, args...)
			}
		}
		for k := 0; k < events; k++ {
			serial++
			id := fmt.Sprintf("w%d-%d", writer, serial)
			ids = append(ids, id, "m-"+id)
			exec(`INSERT INTO public.orders (aggregate, seq) VALUES ($1, $2)`, agg, seq+k)
			exec(`INSERT INTO public.outbox VALUES ($1, 'order', $2, 'OrderEvent', $3)`, id, agg, fmt.Sprintf(`{"agg": %q, "seq": %d}`, agg, seq+k))
			exec(`SELECT pg_logical_emit_message(true, $1, $2)`, outboxPrefix, fmt.Sprintf(`{"id": "m-%s", "aggregateid": %q, "payload": {"seq": %d}}`, id, agg, seq+k))
			if rng.IntN(3) == 0 { // the application deletes the row at once: the WAL keeps the insert
				exec(`DELETE FROM public.outbox WHERE id = $1`, id)
			}
		}
		if rng.IntN(5) == 0 { // a rolled-back savepoint: its event and message never appear
			serial++
			id := fmt.Sprintf("w%d-%d", writer, serial)
			bogus = append(bogus, id, "m-"+id)
			exec(`SAVEPOINT s`)
			exec(`INSERT INTO public.outbox VALUES ($1, 'order', $2, 'OrderEvent', '{"seq": -1}')`, id, agg)
			exec(`SELECT pg_logical_emit_message(true, $1, $2)`, outboxPrefix, fmt.Sprintf(`{"id": "m-%s", "aggregateid": %q, "payload": {"seq": -1}}`, id, agg))
			exec(`ROLLBACK TO SAVEPOINT s`)
		}
		if err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if rng.IntN(7) == 0 { // the whole transaction rolls back
			if err := tx.Rollback(ctx); err != nil {
				return err
			}
			w.mu.Lock()
			for _, id := range append(ids, bogus...) {
				w.rolledBack[id] = true
			}
			w.mu.Unlock()
			continue
		}
		if err := tx.Commit(ctx); err != nil {
			return err // PostgreSQL is not restarted here: a failed commit is a failure
		}
		next[agg] = seq + events - 1
		w.mu.Lock()
		for _, id := range ids {
			w.committed[id] = agg
		}
		for _, id := range bogus {
			w.rolledBack[id] = true
		}
		w.txns++
		w.mu.Unlock()
		if n%40 == 39 { // housekeeping of the outbox table: routes nothing
			if _, err := conn.Exec(ctx, `DELETE FROM public.outbox WHERE aggregateid = $1`, agg); err != nil {
				return err
			}
		}
		time.Sleep(time.Millisecond)
	}
}

func (w *outboxWorkload) committedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.committed)
}

func (w *outboxWorkload) finish() {
	close(w.stop)
	w.wg.Wait()
	if w.err != nil {
		w.t.Fatalf("workload: %v", w.err)
	}
}

// outboxRecord is one routed event as a consumer sees it.
type outboxRecord struct {
	id, agg   string
	seq       int
	partition int
}

// readOutboxTopic reads the records topic holds now (at least atLeast), decoding the aggregate
// (key), the event id (id header) and the sequence number (payload.seq).
func readOutboxTopic(t *testing.T, brokers []string, topic string, atLeast int) []outboxRecord {
	t.Helper()
	if err := waitRecords(brokers, topic, atLeast, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	n := int(testenv.TopicRecords(context.Background(), brokers, topic))
	msgs, err := testenv.ReadTopic(context.Background(), brokers, topic, n, time.Minute)
	if err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
	out := make([]outboxRecord, 0, len(msgs))
	for _, m := range msgs {
		r := outboxRecord{partition: m.Partition}
		if err := json.Unmarshal(m.Key, &r.agg); err != nil {
			t.Fatalf("%s: key %q: %v", topic, m.Key, err)
		}
		for _, h := range m.Headers {
			if h.Key == "id" {
				r.id = string(h.Value)
			}
		}
		var v struct {
			Seq *int `json:"seq"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil || v.Seq == nil {
			t.Fatalf("%s: value %q is not the expanded payload with seq: %v", topic, m.Value, err)
		}
		r.seq = *v.Seq
		out = append(out, r)
	}
	return out
}

// waitRecords waits until topic holds n records (it may not exist yet).
func waitRecords(brokers []string, topic string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got := testenv.TopicRecords(context.Background(), brokers, topic)
		if got >= int64(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s: %d records after %s, want %d", topic, got, limit, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill -9 of the real pgcdc process, twice, while orders and their events are written: every
// committed event (table row or message) reaches its routed topic, none of a rolled-back
// transaction or savepoint does, and each aggregate's events are in order in their partition:
// each record is either a re-delivery (a sequence number already seen) or the next one.
func TestOutboxKillKeepsEveryCommittedEventInOrder(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE public.orders (id bigserial PRIMARY KEY, aggregate text NOT NULL, seq int NOT NULL)`)
	e.exec(`CREATE TABLE public.outbox (id text PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL, payload jsonb)`)
	tableTopic, msgTopic := e.prefix+".ev.order", e.prefix+".ev."+outboxPrefix
	vars := map[string]string{
		"PGCDC_TABLES_INCLUDE":             "public.orders,public.outbox",
		"PGCDC_OUTBOX_TABLES":              "public.outbox",
		"PGCDC_OUTBOX_MESSAGES_PREFIXES":   outboxPrefix,
		"PGCDC_OUTBOX_TOPIC_REPLACEMENT":   e.prefix + ".ev.${routedByValue}",
		"PGCDC_OUTBOX_EXPAND_JSON_PAYLOAD": "true",
		"PGCDC_EVENTS_KEY_SCHEMAS":         "false",
		"PGCDC_EVENTS_VALUE_SCHEMAS":       "false",
		"PGCDC_KAFKA_PARTITIONS":           "3",
		"PGCDC_POSTGRES_STATUS_INTERVAL":   "200ms",
		"PGCDC_HEARTBEAT_INTERVAL":         "0",
		"PGCDC_OUTBOX_OP_INVALID_BEHAVIOR": "fatal", // the workload never updates an outbox row
		"PGCDC_SNAPSHOT_MODE":              "no_data",
		"PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES":  "1MiB",
		"PGCDC_KAFKA_BATCH_MAX_BYTES":      "64KiB",
		"PGCDC_KAFKA_BATCH_MAX_MESSAGES":   "200",
		"PGCDC_KAFKA_SHUTDOWN_TIMEOUT":     "60s",
	}
	p := e.start(vars)
	p.waitStreaming()
	w := startOutboxWorkload(t, e.dsn)

	// Two kills, each once events flow through the routed topic.
	kills := 0
	for round := 1; round <= 2; round++ {
		seen := max(0, int(testenv.TopicRecords(context.Background(), e.brokers, tableTopic)))
		if err := waitRecords(e.brokers, tableTopic, seen+100, 2*time.Minute); err != nil {
			t.Fatalf("before kill %d: %v", round, err)
		}
		p.kill() // proves the process died of SIGKILL
		kills++
		t.Logf("kill %d: %d events committed so far, slot confirmed at %s", round, w.committedCount(), fmtLSN(e.confirmedFlush()))
		p = e.start(vars)
		p.waitStreaming()
	}
	for deadline := time.Now().Add(2 * time.Minute); w.committedCount() < 2000 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	w.finish()

	committed := map[string]string{}
	for id, agg := range w.committed {
		committed[id] = agg
	}
	nTable, nMsg := 0, 0
	for id := range committed {
		if strings.HasPrefix(id, "m-") {
			nMsg++
		} else {
			nTable++
		}
	}
	// Re-deliveries count too: read until every committed event is there (or the deadline).
	var got map[string][]outboxRecord
	for deadline := time.Now().Add(3 * time.Minute); ; {
		got = map[string][]outboxRecord{
			tableTopic: readOutboxTopic(t, e.brokers, tableTopic, nTable),
			msgTopic:   readOutboxTopic(t, e.brokers, msgTopic, nMsg),
		}
		seen := map[string]bool{}
		for _, recs := range got {
			for _, r := range recs {
				seen[r.id] = true
			}
		}
		missing := 0
		for id := range committed {
			if !seen[id] {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}

	count := map[string]int{}
	dups := 0
	for topic, recs := range got {
		// per aggregate, in partition order
		last := map[string]int{}
		part := map[string]int{}
		for _, r := range recs {
			count[r.id]++
			if count[r.id] > 1 {
				dups++
			}
			if w.rolledBack[r.id] {
				t.Errorf("%s: event %s of a rolled-back transaction or savepoint was routed", topic, r.id)
			}
			if agg, ok := committed[r.id]; !ok || agg != r.agg {
				t.Errorf("%s: event %s (aggregate %s) was never committed (as %q)", topic, r.id, r.agg, agg)
			}
			if p, ok := part[r.agg]; ok && p != r.partition {
				t.Errorf("%s: aggregate %s in partitions %d and %d", topic, r.agg, p, r.partition)
			}
			part[r.agg] = r.partition
			switch max := last[r.agg]; {
			case r.seq == max+1:
				last[r.agg] = r.seq
			case r.seq <= max: // a re-delivery after a kill
			default:
				t.Errorf("%s: aggregate %s: event %d follows %d: order broken or an event lost", topic, r.agg, r.seq, max)
			}
		}
	}
	var lost []string
	for id := range committed {
		if count[id] == 0 {
			lost = append(lost, id)
		}
	}
	sort.Strings(lost)
	if len(lost) > 0 {
		t.Fatalf("%d committed events lost, e.g. %v", len(lost), lost[:min(10, len(lost))])
	}
	t.Logf("%d kills; %d transactions, %d events committed (%d table rows, %d messages), %d rolled back; all routed, in order per aggregate; %d re-deliveries",
		kills, w.txns, len(committed), nTable, nMsg, len(w.rolledBack), dups)
}
