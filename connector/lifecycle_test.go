package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
)

// workload commits transactions of rowsPerTxn inserts with increasing ids until stopped.
type workload struct {
	t      *testing.T
	next   atomic.Int64 // next id
	stop   chan struct{}
	wg     sync.WaitGroup
	err    error
	pause  time.Duration
	perTxn int
}

func startWorkload(t *testing.T, dsn, table string, perTxn int, pause time.Duration) *workload {
	w := &workload{t: t, stop: make(chan struct{}), perTxn: perTxn, pause: pause}
	w.next.Store(1)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer conn.Close(context.Background())
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			from := w.next.Load()
			_, err := conn.Exec(context.Background(), fmt.Sprintf(`INSERT INTO %s SELECT g, g FROM generate_series($1::int, $2::int) g`, table), from, from+int64(w.perTxn)-1)
			if err != nil {
				w.err = err
				return
			}
			w.next.Store(from + int64(w.perTxn))
			time.Sleep(w.pause)
		}
	}()
	return w
}

// finish stops the workload and returns the number of rows it committed.
func (w *workload) finish() int {
	close(w.stop)
	w.wg.Wait()
	if w.err != nil {
		w.t.Fatalf("workload: %v", w.err)
	}
	return int(w.next.Load() - 1)
}

func (w *workload) waitRows(n int) {
	deadline := time.Now().Add(60 * time.Second)
	for w.next.Load() <= int64(n) {
		if time.Now().After(deadline) || w.err != nil {
			w.t.Fatalf("workload did not reach %d rows: %v", n, w.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type idEvent struct {
	id   int
	txID int64
	lsn  int64
	pos  string
}

func (e *env) readIDs(table string, want int, timeout time.Duration) []idEvent {
	var out []idEvent
	e.scanTopic(table, want, timeout, func(m kafka.Message) {
		var v struct {
			After struct {
				ID int `json:"id"`
			} `json:"after"`
			Source struct {
				TxID int64 `json:"txId"`
				LSN  int64 `json:"lsn"`
			} `json:"source"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil {
			e.t.Fatalf("value: %v", err)
		}
		ev := idEvent{id: v.After.ID, txID: v.Source.TxID, lsn: v.Source.LSN}
		for _, h := range m.Headers {
			if h.Key == "pgcdc.position" {
				ev.pos = string(h.Value)
			}
		}
		out = append(out, ev)
	})
	return out
}

// SIGTERM while transactions flow, more writes while pgcdc is down, start again: every committed
// row is in Kafka exactly once.
func TestCleanStopIsExactlyOnce(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE lc (id int PRIMARY KEY, v int)`)
	overrides := map[string]string{"PGCDC_EVENTS_VALUE_SCHEMAS": "false"}
	p := e.start(overrides)
	p.waitStreaming()
	w := startWorkload(t, e.dsn, "lc", 50, 2*time.Millisecond)
	w.waitRows(3000)
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	p.waitLog("stopped cleanly", time.Second)
	at := int(w.next.Load())
	w.waitRows(at + 2000) // written while pgcdc is down
	p2 := e.start(overrides)
	p2.waitStreaming()
	w.waitRows(at + 5000)
	total := w.finish()

	events := e.readIDs("lc", total, 3*time.Minute)
	count := make([]int, total+1)
	for _, ev := range events {
		count[ev.id]++
	}
	for id := 1; id <= total; id++ {
		if count[id] != 1 {
			t.Fatalf("row %d delivered %d times, want exactly once (%d rows, %d events)", id, count[id], total, len(events))
		}
	}
	if len(events) != total {
		t.Fatalf("%d events for %d rows", len(events), total)
	}
	t.Logf("%d rows across a clean stop, each delivered once", total)
	p2.stop()
}

// kill -9 while transactions flow: after a restart every row is there at least once, and the
// only duplicates belong to transactions the slot had not confirmed when the process died.
func TestKillIsAtLeastOnceWithBoundedDuplicates(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE lk (id int PRIMARY KEY, v int)`)
	startLSN := e.queryLSN(`SELECT pg_current_wal_lsn()::text`)
	overrides := map[string]string{"PGCDC_EVENTS_VALUE_SCHEMAS": "false", "PGCDC_POSTGRES_STATUS_INTERVAL": "200ms"}
	p := e.start(overrides)
	p.waitStreaming()
	w := startWorkload(t, e.dsn, "lk", 50, time.Millisecond)
	w.waitRows(5000)
	p.kill()
	confirmedAtKill := e.confirmedFlush()
	writtenAtKill := int(w.next.Load() - 1)
	p2 := e.start(overrides)
	p2.waitStreaming()
	w.waitRows(writtenAtKill + 3000)
	total := w.finish()

	events := e.readIDs("lk", total, 3*time.Minute)
	// Reading stops at total events; read the rest of the topic (the duplicates).
	all := e.readIDs("lk", total+writtenAtKill+1, 5*time.Second)
	if len(all) > len(events) {
		events = all
	}
	ends := e.commitEnds(startLSN)
	count := make([]int, total+1)
	dups := 0
	for _, ev := range events {
		count[ev.id]++
		if count[ev.id] > 1 {
			dups++
			end, ok := ends[ev.txID]
			if !ok {
				t.Fatalf("no commit record for txId %d", ev.txID)
			}
			if end <= confirmedAtKill {
				t.Fatalf("row %d duplicated although its transaction %d (commit end %s) was confirmed (%s) before the kill",
					ev.id, ev.txID, fmtLSN(end), fmtLSN(confirmedAtKill))
			}
		}
	}
	for id := 1; id <= total; id++ {
		if count[id] == 0 {
			t.Fatalf("row %d lost", id)
		}
	}
	t.Logf("%d rows, %d written before the kill, %d duplicates (all from transactions past the confirmed LSN %s at the kill)",
		total, writtenAtKill, dups, fmtLSN(confirmedAtKill))
	p2.stop()
}
