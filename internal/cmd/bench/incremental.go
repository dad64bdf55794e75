package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// IncrementalResult is the incremental mode: an incremental snapshot's rows/s, and the stream's
// latency (commit to a consumer's receipt) before and during it.
type IncrementalResult struct {
	Rows            int64        `json:"rows"`
	ChunkRows       int          `json:"chunk_rows"`
	Seconds         float64      `json:"seconds"`      // from the signal to the last chunk acknowledged
	RowsPerSec      float64      `json:"rows_per_sec"` // rows of the table / Seconds
	LatencyRate     int          `json:"latency_rate_rows_per_sec"`
	Baseline        LatencyStats `json:"stream_latency_before"`
	During          LatencyStats `json:"stream_latency_during"`
	PgcdcCPUPercent float64      `json:"pgcdc_cpu_percent_of_a_core"`
	PeakRSS         int64        `json:"pgcdc_peak_rss_bytes"`
	Log             string       `json:"log"`
}

// LatencyStats are the latencies of the rows written in one period.
type LatencyStats struct {
	Rows  int     `json:"rows"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// incremental loads -incremental-rows rows into a table pgcdc captures without snapshotting it,
// writes -latency-rate rows/s to a second captured table throughout, and after a baseline period
// sends an execute-snapshot signal for the first table: the snapshot's rows/s (signal to the log's
// "table done", which follows the last chunk's acknowledgement) and the second table's latency
// before and during the snapshot.
func (b *bench) incremental(ctx context.Context) error {
	o := b.o
	const table, latTable, slot, pub, prefix = "bench_inc", "bench_inc_lat", "b_incremental", "inc_pub", "binc"
	for _, t := range []string{table, latTable} {
		if err := createTable(ctx, b.db, t, ""); err != nil {
			return err
		}
	}
	logf("incremental: loading %d rows", o.incrementalRows)
	if _, err := b.db.Exec(ctx, insertSQL(table), 1, o.incrementalRows); err != nil {
		return fmt.Errorf("load %s: %w", table, err)
	}
	if _, err := b.db.Exec(ctx, "ANALYZE "+table); err != nil {
		return err
	}
	res := &IncrementalResult{Rows: o.incrementalRows, ChunkRows: o.incrementalChunk, LatencyRate: o.latencyRate}
	if res.ChunkRows == 0 {
		res.ChunkRows = 1024 // pgcdc's default (snapshot.incremental_chunk_rows)
	}
	b.res.Incremental = res

	*b.slots = append(*b.slots, slot)
	spec := pgcdcSpec(o, b.s, b.dsn, "incremental-pgcdc", slot, pub, prefix, table, true, 0, 0, map[string]string{
		"PGCDC_TABLES_INCLUDE":                  "public." + table + ",public." + latTable,
		"PGCDC_SNAPSHOT_MODE":                   "no_data",
		"PGCDC_SIGNAL_TABLE":                    "public.bench_signal",
		"PGCDC_SNAPSHOT_INCREMENTAL_CHUNK_ROWS": fmt.Sprint(res.ChunkRows),
	})
	res.Log = filepath.Join(o.outDir, "logs", "incremental-pgcdc.log")
	p, err := startProc(spec.cmd, res.Log, spec.readyLine)
	if err != nil {
		return err
	}
	defer p.stop()
	if _, err := p.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	latTopic := prefix + ".public." + latTable

	// The latency table's consumer: µs from commit to receipt, by row id.
	maxIDs := int64(o.latencyRate) * int64(o.runTimeout/time.Second+60)
	lat := make([]int64, maxIDs+1)
	var received atomic.Int64
	cctx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	var consumer sync.WaitGroup
	consumer.Add(1)
	go func() {
		defer consumer.Done()
		_ = consume(cctx, b.s.brokers[0], latTopic, 0, func(recv time.Time, value []byte) {
			if id, ts, ok := idAndCommit(value); ok && id >= 1 && id <= maxIDs && lat[id] == 0 {
				lat[id] = max(recv.UnixMicro()-ts, 1)
				received.Add(1)
			}
		})
	}()
	writer, err := connect(ctx, b.dsn)
	if err != nil {
		return err
	}
	defer writer.Close(context.Background())
	if err := waitTopic(ctx, b.s.brokers, latTopic, time.Minute); err != nil {
		return err
	}

	batch := max(o.latencyBatch, 1)
	interval := time.Duration(float64(time.Second) * float64(batch) / float64(o.latencyRate))
	next := int64(1)
	write := func(until func() bool) (first, last int64, err error) {
		first = next
		start := time.Now()
		for k := 0; !until(); k++ {
			if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
				time.Sleep(d)
			}
			if next+int64(batch) > maxIDs {
				return first, next - 1, fmt.Errorf("the latency writer ran out of ids (the snapshot took longer than -run-timeout)")
			}
			if _, err := writer.Exec(ctx, insertSQL(latTable), next, next+int64(batch)-1); err != nil {
				return first, next - 1, err
			}
			next += int64(batch)
		}
		return first, next - 1, nil
	}
	logf("incremental: stream latency without a snapshot, %d rows/s for %s", o.latencyRate, o.latencyDuration)
	baseEnd := time.Now().Add(o.latencyDuration)
	bFirst, bLast, err := write(func() bool { return time.Now().After(baseEnd) })
	if err != nil {
		return err
	}
	cpu0 := cpuSeconds(p.pid())
	logf("incremental: snapshot of %d rows (chunks of %d) while writing", o.incrementalRows, res.ChunkRows)
	start := time.Now()
	if _, err := b.db.Exec(ctx, `INSERT INTO bench_signal (id, type, data) VALUES ('bench', 'execute-snapshot', '{"data-collections": ["public.`+table+`"]}')`); err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	deadline := start.Add(o.runTimeout)
	done, checked := false, time.Now()
	dFirst, dLast, err := write(func() bool {
		if now := time.Now(); !done && now.Sub(checked) > 100*time.Millisecond {
			checked = now
			done = logHas(res.Log, "incremental snapshot: table done")
		}
		return done || time.Now().After(deadline)
	})
	if err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("the incremental snapshot did not finish within %s:\n%s", o.runTimeout, tailOf(res.Log, 3000))
	}
	res.Seconds = time.Since(start).Seconds()
	res.RowsPerSec = float64(o.incrementalRows) / res.Seconds
	res.PgcdcCPUPercent = 100 * (cpuSeconds(p.pid()) - cpu0) / res.Seconds
	res.PeakRSS = peakRSS(p.pid())
	for until := time.Now().Add(60 * time.Second); received.Load() < dLast-1 && time.Now().Before(until); {
		time.Sleep(20 * time.Millisecond)
	}
	stopConsumer()
	consumer.Wait()
	p.stop()
	if !o.keepTopics {
		deleteTopic(ctx, b.s.brokers, latTopic)
		deleteTopic(ctx, b.s.brokers, prefix+".public."+table)
	}
	b.dropSlots(ctx, slot)
	res.Baseline, res.During = latencyStats(lat, bFirst, bLast), latencyStats(lat, dFirst, dLast)
	logf("incremental: %d rows in %.1fs (%.0f rows/s, pgcdc %.0f%% of a core); stream latency p50/p99 %.1f/%.1f ms before, %.1f/%.1f ms during (max %.1f ms)",
		res.Rows, res.Seconds, res.RowsPerSec, res.PgcdcCPUPercent, res.Baseline.P50Ms, res.Baseline.P99Ms, res.During.P50Ms, res.During.P99Ms, res.During.MaxMs)
	if res.Baseline.Rows == 0 || res.During.Rows == 0 {
		return fmt.Errorf("no latency measured (rows received: %d before, %d during)", res.Baseline.Rows, res.During.Rows)
	}
	return nil
}

// latencyStats summarizes lat[first..last] (µs; 0: not received).
func latencyStats(lat []int64, first, last int64) LatencyStats {
	var ms []float64
	for id := first; id <= last && id < int64(len(lat)); id++ {
		if lat[id] != 0 {
			ms = append(ms, float64(lat[id])/1000)
		}
	}
	if len(ms) == 0 {
		return LatencyStats{}
	}
	sort.Float64s(ms)
	pct := func(q float64) float64 { return ms[int(q*float64(len(ms)-1)+0.5)] }
	return LatencyStats{Rows: len(ms), P50Ms: pct(0.50), P99Ms: pct(0.99), MaxMs: ms[len(ms)-1]}
}

// logHas reports whether the log file contains substr.
func logHas(path, substr string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), substr)
}
