package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
)

const largeRows = 300_000

// A 300,000-row transaction arrives complete and only after its commit, in both modes, while the
// connector's peak RSS stays within its bound. logical_decoding_work_mem=64kB makes PostgreSQL
// spill (protocol 1) or stream (protocol 2) the transaction; the slot statistics prove which.
func TestLargeTransaction(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		t.Run(fmt.Sprintf("streaming=%v", streaming), func(t *testing.T) {
			e := newEnv(t, nil, nil)
			e.exec(`CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL)`)
			const inFlight = 8 << 20
			p := e.start(map[string]string{
				"PGCDC_POSTGRES_DSN":              withOptions(e.dsn, "-c logical_decoding_work_mem=64kB"),
				"PGCDC_POSTGRES_STREAMING":        fmt.Sprint(streaming),
				"PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES": fmt.Sprint(inFlight),
				"PGCDC_EVENTS_VALUE_SCHEMAS":      "false",
			})
			p.waitStreaming()

			ctx := context.Background()
			writer, err := pgx.Connect(ctx, e.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer writer.Close(ctx)
			tx, err := writer.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, $1) g`, largeRows); err != nil {
				t.Fatal(err)
			}
			if streaming {
				// Wait until PostgreSQL has streamed part of the open transaction to pgcdc.
				deadline := time.Now().Add(60 * time.Second)
				for {
					if _, streamed := e.slotStats(); streamed > 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the open transaction was not streamed within 60s (stream_txns = 0)")
					}
					time.Sleep(200 * time.Millisecond)
				}
			} else {
				time.Sleep(2 * time.Second)
			}
			if n := e.scanTopic("big", 1, 3*time.Second, func(kafka.Message) {}); n != 0 {
				t.Fatalf("%d records of an uncommitted transaction reached Kafka", n)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			seen := make([]bool, largeRows+1)
			dups := 0
			n := e.scanTopic("big", largeRows, 5*time.Minute, func(m kafka.Message) {
				var v struct {
					After struct {
						ID int `json:"id"`
					} `json:"after"`
				}
				if err := json.Unmarshal(m.Value, &v); err != nil {
					t.Fatalf("value: %v", err)
				}
				if seen[v.After.ID] {
					dups++
				}
				seen[v.After.ID] = true
			})
			elapsed := time.Since(start)
			if n != largeRows || dups != 0 {
				t.Fatalf("read %d records (%d duplicates), want %d", n, dups, largeRows)
			}
			for id := 1; id <= largeRows; id++ {
				if !seen[id] {
					t.Fatalf("row %d missing", id)
				}
			}
			spilled, streamed := e.slotStats()
			if spilled == 0 && streamed == 0 {
				t.Fatal("neither spill_txns nor stream_txns > 0: the large-transaction path did not run")
			}
			if streaming && streamed == 0 {
				t.Fatal("streaming mode but stream_txns = 0")
			}
			hwm := p.vmHWM()
			const bound = 100 << 20
			t.Logf("streaming=%v: %d rows after commit in %s (%.0f rows/s); spill_txns=%d stream_txns=%d; peak RSS %.1f MiB (in-flight bound %d MiB)",
				streaming, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), spilled, streamed, float64(hwm)/(1<<20), inFlight>>20)
			if hwm > bound {
				t.Fatalf("peak RSS %d MiB exceeds %d MiB", hwm>>20, bound>>20)
			}
			if code := p.stop(); code != 0 {
				t.Fatalf("exit code %d", code)
			}
		})
	}
}
