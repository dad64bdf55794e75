package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// LatencyResult is the latency mode: commit (source.ts_us) to a consumer's receipt of the record.
type LatencyResult struct {
	RateTarget      int     `json:"rate_rows_per_sec"`
	RowsPerTxn      int     `json:"rows_per_txn"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
	RowsWritten     int64   `json:"rows_written"`
	WriterRate      float64 `json:"writer_rows_per_sec"` // achieved over the measured period
	WriterMaxLagMs  float64 `json:"writer_max_lag_ms"`   // worst start of a batch after its slot
	Measured        int     `json:"measured_rows"`       // rows written after the warm-up and received
	P50Ms           float64 `json:"p50_ms"`
	P95Ms           float64 `json:"p95_ms"`
	P99Ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`
	MeanMs          float64 `json:"mean_ms"`
	PgcdcCPUPercent float64 `json:"pgcdc_cpu_percent_of_a_core"`
	BrokerCPUPct    float64 `json:"broker_cpu_percent_of_a_core"`
	PeakRSS         int64   `json:"pgcdc_peak_rss_bytes"`
	ValueSchemas    bool    `json:"value_schemas"`
	Log             string  `json:"log"`
}

func (b *bench) latency(ctx context.Context) error {
	o := b.o
	const table, slot, pub, prefix = "bench_lat", "b_latency", "lat_pub", "blat"
	topic := prefix + ".public." + table
	if err := createTable(ctx, b.db, table, ""); err != nil {
		return err
	}
	res := &LatencyResult{RateTarget: o.latencyRate, RowsPerTxn: o.latencyBatch, ValueSchemas: true,
		WarmupSeconds: o.latencyWarmup.Seconds(), DurationSeconds: o.latencyDuration.Seconds()}
	b.res.Latency = res

	// pgcdc creates the slot (from the current WAL end) and the publication.
	*b.slots = append(*b.slots, slot)
	spec := pgcdcSpec(o, b.s, b.dsn, "latency-pgcdc", slot, pub, prefix, table, true, 0, 0, nil)
	res.Log = filepath.Join(o.outDir, "logs", "latency-pgcdc.log")
	p, err := startProc(spec.cmd, res.Log, spec.readyLine)
	if err != nil {
		return err
	}
	defer p.stop()
	if _, err := p.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	if err := waitTopic(ctx, b.s.brokers, topic, time.Minute); err != nil {
		return err
	}

	interval := time.Duration(float64(time.Second) * float64(o.latencyBatch) / float64(o.latencyRate))
	warmBatches := int64(o.latencyWarmup / interval)
	batches := warmBatches + int64(o.latencyDuration/interval)
	total := batches * int64(o.latencyBatch)
	warmRows := warmBatches * int64(o.latencyBatch)
	lat := make([]int64, total+1) // by row id: µs from commit to receipt; 0 = not received
	var received atomic.Int64
	var dups atomic.Int64

	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	var consumers sync.WaitGroup
	consumeErr := make(chan error, o.partitions)
	for part := 0; part < o.partitions; part++ {
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			if err := consume(cctx, b.s.brokers[0], topic, part, func(recv time.Time, value []byte) {
				id, ts, ok := idAndCommit(value)
				if !ok || id < 1 || id > total {
					return
				}
				if lat[id] != 0 {
					dups.Add(1)
					return
				}
				d := recv.UnixMicro() - ts
				if d < 1 {
					d = 1 // clocks agree to the microsecond at best; keep 0 meaning "missing"
				}
				lat[id] = d
				received.Add(1)
			}); err != nil && cctx.Err() == nil {
				consumeErr <- err
			}
		}()
	}
	// lat is written by the consumers only; with more than one partition, ids are disjoint per
	// partition, so no two goroutines write the same element.

	cpu0, brokerCPU0 := cpuSeconds(p.pid()), cpuSeconds(b.s.brokerPID)
	writer, err := connect(ctx, b.dsn)
	if err != nil {
		return err
	}
	defer writer.Close(context.Background())
	stmt := insertSQL(table)
	logf("latency: %d rows/s in transactions of %d rows (one every %s) for %s + %s warm-up", o.latencyRate, o.latencyBatch, interval, o.latencyDuration, o.latencyWarmup)
	start := time.Now().Add(100 * time.Millisecond)
	var measuredStart, measuredEnd time.Time
	var maxLag time.Duration
	for k := int64(0); k < batches; k++ {
		due := start.Add(time.Duration(k) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if k == warmBatches {
			measuredStart = time.Now()
		}
		if lag := time.Since(due); k >= warmBatches && lag > maxLag {
			maxLag = lag
		}
		first := k*int64(o.latencyBatch) + 1
		if _, err := writer.Exec(ctx, stmt, first, first+int64(o.latencyBatch)-1); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		res.RowsWritten += int64(o.latencyBatch)
	}
	measuredEnd = time.Now()
	res.WriterRate = float64(total-warmRows) / measuredEnd.Sub(measuredStart).Seconds()
	res.WriterMaxLagMs = float64(maxLag.Microseconds()) / 1000

	deadline := time.Now().Add(60 * time.Second)
	for received.Load() < total && time.Now().Before(deadline) {
		select {
		case err := <-consumeErr:
			return err
		case err := <-p.exited:
			p.stopped = true
			return fmt.Errorf("pgcdc exited (%v):\n%s", err, tailOf(res.Log, 3000))
		case <-time.After(20 * time.Millisecond):
		}
	}
	wall := time.Since(start).Seconds()
	res.PgcdcCPUPercent = 100 * (cpuSeconds(p.pid()) - cpu0) / wall
	if bc := cpuSeconds(b.s.brokerPID); bc >= 0 && brokerCPU0 >= 0 {
		res.BrokerCPUPct = 100 * (bc - brokerCPU0) / wall
	}
	res.PeakRSS = peakRSS(p.pid())
	stopConsumers()
	consumers.Wait()
	p.stop()
	if !o.keepTopics {
		deleteTopic(ctx, b.s.brokers, topic)
	}
	b.dropSlots(ctx, slot)

	var ms []float64
	for id := warmRows + 1; id <= total; id++ {
		if lat[id] != 0 {
			ms = append(ms, float64(lat[id])/1000)
		}
	}
	res.Measured = len(ms)
	if got := received.Load(); got < total {
		return fmt.Errorf("received %d of %d rows within 60s after the writer finished", got, total)
	}
	sort.Float64s(ms)
	pct := func(q float64) float64 { return ms[int(q*float64(len(ms)-1)+0.5)] }
	sum := 0.0
	for _, v := range ms {
		sum += v
	}
	res.P50Ms, res.P95Ms, res.P99Ms, res.MaxMs, res.MeanMs = pct(0.50), pct(0.95), pct(0.99), ms[len(ms)-1], sum/float64(len(ms))
	logf("latency: p50 %.1fms p95 %.1fms p99 %.1fms max %.1fms over %d rows (writer %.0f rows/s, max lag %.1fms); pgcdc %.0f%% of a core, broker %.0f%%, peak RSS %.1f MiB",
		res.P50Ms, res.P95Ms, res.P99Ms, res.MaxMs, res.Measured, res.WriterRate, res.WriterMaxLagMs, res.PgcdcCPUPercent, res.BrokerCPUPct, float64(res.PeakRSS)/(1<<20))
	if n := dups.Load(); n > 0 {
		logf("latency: %d duplicate records ignored", n)
	}
	return nil
}

// consume reads one partition from its start, calling fn with the receive time of each record,
// until ctx ends. Fetches return as soon as a record is there (MinBytes 1). A broken connection is
// dialled again (at most 20 times) and reading resumes after the last record seen.
func consume(ctx context.Context, broker, topic string, partition int, fn func(time.Time, []byte)) error {
	next := int64(0)
	var lastErr error
	for attempt := 0; attempt < 20 && ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		conn, err := kafka.DialLeader(ctx, "tcp", broker, topic, partition)
		if err != nil {
			lastErr = err
			continue
		}
		if _, err := conn.Seek(next, kafka.SeekAbsolute); err != nil {
			conn.Close()
			lastErr = err
			continue
		}
		for ctx.Err() == nil {
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				fn(time.Now(), m.Value)
				next = m.Offset + 1
			}
			if err := batch.Close(); err != nil && !isTimeout(err) {
				lastErr = err
				break
			}
		}
		conn.Close()
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("consume %s/%d: %w", topic, partition, lastErr)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// idAndCommit extracts after.id and source.ts_us from a change event value (with or without the
// schema part: the payload's field order is fixed, and "after" precedes "source").
func idAndCommit(v []byte) (id, tsUs int64, ok bool) {
	i := bytes.Index(v, []byte(`"after":{"id":`))
	if i < 0 {
		return 0, 0, false
	}
	id, n := leadingInt(v[i+len(`"after":{"id":`):])
	if n == 0 {
		return 0, 0, false
	}
	j := bytes.Index(v[i:], []byte(`"source":{`))
	if j < 0 {
		return 0, 0, false
	}
	src := v[i+j:]
	k := bytes.Index(src, []byte(`"ts_us":`))
	if k < 0 {
		return 0, 0, false
	}
	tsUs, n = leadingInt(src[k+len(`"ts_us":`):])
	return id, tsUs, n > 0
}

func leadingInt(b []byte) (int64, int) {
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(b[:n]), 10, 64)
	if err != nil {
		return 0, 0
	}
	return v, n
}
