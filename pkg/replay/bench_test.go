package replay

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/event"
)

var benchTable = event.Table{Schema: "public", Name: "orders", Key: []int{0}, Columns: []event.Column{
	{Name: "id", TypeName: "int8", TypeMod: -1},
	{Name: "customer", TypeName: "text", TypeMod: -1, Optional: true},
	{Name: "amount", TypeName: "numeric", TypeMod: (12<<16 | 2) + 4, Optional: true},
	{Name: "created", TypeName: "timestamptz", TypeMod: -1, Optional: true},
	{Name: "doc", TypeName: "jsonb", TypeMod: -1, Optional: true},
}}

// produceBench writes n change events for benchTable on 4 partitions: 60% creates, 30% updates,
// 10% deletes (each followed by its tombstone).
func produceBench(b *testing.B, brokers []string, prefix string, schemas bool, n int) {
	opts := event.DefaultOptions(prefix, "src", "bench")
	opts.KeySchemas, opts.ValueSchemas = schemas, schemas
	enc, err := event.NewEncoder(opts, benchTable)
	if err != nil {
		b.Fatal(err)
	}
	testenv.CreateTopic(b, brokers, enc.Topic(), 4)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: enc.Topic(), Balancer: headerBalancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, BatchSize: 5000, BatchBytes: 1000000}
	defer w.Close()
	creates, updates := n*6/10, n*3/10
	deletes := n - creates - updates
	var batch []kafka.Message
	lsn := uint64(1000)
	emit := func(op event.Op, id int, tag string) {
		lsn += 8
		s := strconv.Itoa(id)
		row := text(s, "customer "+s+tag, strconv.Itoa(id%100000)+".25", "2024-01-01 10:00:00.123456+00", `{"id": `+s+`, "tag": "`+tag+`"}`)
		var before, after []event.Datum
		if op == event.OpDelete {
			before = row
		} else {
			after = row
		}
		key, _, err := enc.AppendKey(nil, row)
		if err == nil {
			var val []byte
			if val, err = enc.AppendValue(nil, op, before, after, event.Source{LSN: lsn, TxID: 7}, nil, time.Now()); err == nil {
				h := []kafka.Header{{Key: partitionHeader, Value: []byte(strconv.Itoa(id % 4))}}
				batch = append(batch, kafka.Message{Key: key, Value: val, Headers: h})
				if op == event.OpDelete {
					batch = append(batch, kafka.Message{Key: key, Headers: h})
				}
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		if len(batch) >= 20000 {
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				b.Fatal(tail(err.Error(), 300))
			}
			batch = batch[:0]
		}
	}
	for i := 0; i < creates; i++ {
		emit(event.OpCreate, i, "")
		if i%2 == 1 && i/2 < updates {
			emit(event.OpUpdate, i/2, "u")
		}
		if i%6 == 5 && i/6 < deletes {
			emit(event.OpDelete, (i-5)/2, "") // created and updated before
		}
	}
	if len(batch) > 0 {
		if err := w.WriteMessages(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// BenchmarkReplayMillion replays 1,000,000 change events (4 partitions) into a fresh database
// and reports rows/s. Needs the servers (like the integration tests):
//
//	go test -run '^$' -bench ReplayMillion -benchtime 1x ./pkg/replay/
func BenchmarkReplayMillion(b *testing.B) {
	const events = 1_000_000
	brokers := testenv.SharedKafka(b)
	for _, schemas := range []bool{false, true} {
		b.Run(map[bool]string{true: "schemas", false: "no-schemas"}[schemas], func(b *testing.B) {
			prefix := testenv.UniqueName(b, "bench")
			t0 := time.Now()
			produceBench(b, brokers, prefix, schemas, events)
			b.Logf("produced %d events in %s", events, time.Since(t0).Round(time.Millisecond))
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dsn := testenv.NewDatabase(b)
				db, err := pgx.Connect(context.Background(), dsn)
				if err != nil {
					b.Fatal(err)
				}
				_, err = db.Exec(context.Background(), `CREATE TABLE orders (id int8 PRIMARY KEY, customer text, amount numeric(12,2), created timestamptz, doc jsonb)`)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				st, err := Run(context.Background(), Options{Brokers: brokers, TopicPrefix: prefix, Target: dsn, UntilEnd: true,
					Log: zerolog.Nop()})
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if st.Rows != events {
					b.Fatalf("applied %d events, want %d", st.Rows, events)
				}
				var rows int64
				if err := db.QueryRow(context.Background(), `SELECT count(*) FROM orders`).Scan(&rows); err != nil {
					b.Fatal(err)
				}
				if want := int64(events*6/10 - events/10); rows != want {
					b.Fatalf("target has %d rows, want %d", rows, want)
				}
				db.Close(context.Background())
				rate := float64(st.Rows) / st.Elapsed.Seconds()
				b.ReportMetric(rate, "events/s")
				b.Logf("%s: %d events (%d records) in %s: %.0f events/s", fmt.Sprint(map[bool]string{true: "schemas", false: "no schemas"}[schemas]), st.Rows, st.Records, st.Elapsed.Round(time.Millisecond), rate)
			}
		})
	}
}

// BenchmarkDecode measures decoding and converting one record (no server).
func BenchmarkDecode(b *testing.B) {
	for _, schemas := range []bool{false, true} {
		b.Run(map[bool]string{true: "schemas", false: "no-schemas"}[schemas], func(b *testing.B) {
			opts := event.DefaultOptions("p", "src", "bench")
			opts.KeySchemas, opts.ValueSchemas = schemas, schemas
			enc, _ := event.NewEncoder(opts, benchTable)
			row := text("12345", "customer 12345", "99.25", "2024-01-01 10:00:00.123456+00", `{"id": 12345}`)
			key, _, _ := enc.AppendKey(nil, row)
			val, _ := enc.AppendValue(nil, event.OpUpdate, nil, row, event.Source{LSN: 9}, nil, time.Now())
			cols := []targetCol{col("int8", 'N', -1, false), col("text", 'S', -1, false), col("numeric", 'N', (12<<16|2)+4, false),
				col("timestamptz", 'D', -1, false), col("jsonb", 'U', -1, false)}
			d := newDecoder(DefaultFlatFieldPrefix)
			b.SetBytes(int64(len(key) + len(val)))
			for i := 0; i < b.N; i++ {
				var c change
				if err := d.decode(key, val, 0, &c); err != nil {
					b.Fatal(err)
				}
				for j, f := range c.after {
					var cd *codec
					if c.vschema != nil {
						cd, _ = codecFromSchema(c.vschema.byName[f.name], &cols[j], Modes{})
					} else {
						cd = codecFromTarget(&cols[j], Modes{})
					}
					if _, err := cd.toText(f.raw); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
