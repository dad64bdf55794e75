package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/segmentio/kafka-go"
)

// SnapshotResult is the snapshot mode: the initial snapshot of one table by pgcdc and by Debezium,
// beside PostgreSQL's own read of the same rows (COPY of a SELECT to a client that discards it).
type SnapshotResult struct {
	Rows           int64   `json:"rows"`
	TableBytes     int64   `json:"table_bytes"`
	CopySeconds    float64 `json:"copy_seconds"`
	CopyRowsPerSec float64 `json:"copy_rows_per_sec"` // the read limit
	Pgcdc          *Run    `json:"pgcdc"`
	Debezium       *Run    `json:"debezium,omitempty"`
	// StreamingRowsPerSec is pgcdc's own streaming rate for rows of the same layout (the throughput
	// mode's median with value schemas, default configuration); 0 when that mode did not run.
	StreamingRowsPerSec float64 `json:"pgcdc_streaming_rows_per_sec,omitempty"`
	VsStreaming         float64 `json:"vs_streaming,omitempty"` // pgcdc snapshot rows/s over its streaming rows/s
	VsDebezium          float64 `json:"vs_debezium,omitempty"`  // pgcdc snapshot rows/s over Debezium's
	VsCopy              float64 `json:"vs_copy"`                // pgcdc snapshot rows/s over COPY's
}

// snapshot measures the initial snapshot (snapshot.mode initial, value schemas on, every other
// setting the default) of a table of -snapshot-rows rows, from the process's start until its topic
// holds every row; then Debezium's (snapshot.mode initial) of the same table.
func (b *bench) snapshot(ctx context.Context) error {
	o := b.o
	const table, pub = "bench_snap", "snap_pub"
	const pgcdcSlot, dbzSlot = "b_snap_pgcdc", "b_snap_dbz"
	if err := createTable(ctx, b.db, table, pub); err != nil {
		return err
	}
	logf("snapshot: writing %d rows", o.snapshotRows)
	if _, err := writeWorkload(ctx, b.db, table, o.snapshotRows, 10_000); err != nil {
		return err
	}
	if _, err := b.db.Exec(ctx, "VACUUM ANALYZE "+table); err != nil {
		return fmt.Errorf("vacuum %s: %w", table, err)
	}
	res := &SnapshotResult{Rows: o.snapshotRows}
	b.res.Snapshot = res
	if err := b.db.QueryRow(ctx, `SELECT pg_table_size($1::regclass)`, table).Scan(&res.TableBytes); err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := b.db.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT * FROM "+table+") TO STDOUT"); err != nil {
		return fmt.Errorf("COPY %s: %w", table, err)
	}
	res.CopySeconds = time.Since(t0).Seconds()
	res.CopyRowsPerSec = float64(o.snapshotRows) / res.CopySeconds
	logf("snapshot: COPY (SELECT ...) TO STDOUT read %d rows in %.2fs (%.0f rows/s)", o.snapshotRows, res.CopySeconds, res.CopyRowsPerSec)

	*b.slots = append(*b.slots, pgcdcSlot) // pgcdc creates it (dropped at the end either way)
	spec := pgcdcSpec(o, b.s, b.dsn, "snapshot-pgcdc", pgcdcSlot, pub, "bsnap", table, true, 0, o.snapshotRows,
		map[string]string{"PGCDC_SNAPSHOT_MODE": "initial"})
	r, err := b.measureSnapshot(ctx, spec, "bsnap.public."+table)
	if err != nil {
		return err
	}
	res.Pgcdc = r
	logRun(r)
	b.dropSlots(ctx, pgcdcSlot)
	res.VsCopy = r.RowsPerSec / res.CopyRowsPerSec
	if t := b.res.Throughput; t != nil {
		for _, s := range t.Summary {
			if s.Variant == "default" && s.ValueSchemas {
				res.StreamingRowsPerSec = s.PgcdcRowsPerSec
				res.VsStreaming = r.RowsPerSec / s.PgcdcRowsPerSec
			}
		}
	}
	if o.debezium {
		*b.slots = append(*b.slots, dbzSlot)
		d, err := b.measureDebezium(ctx, "snapshot-debezium", dbzSlot, pub, table, "bsnap_dbz", true, o.snapshotRows,
			map[string]string{"snapshot.mode": "initial"})
		if err != nil {
			return err
		}
		res.Debezium = d
		logRun(d)
		b.dropSlots(ctx, dbzSlot)
		res.VsDebezium = r.RowsPerSec / d.RowsPerSec
	}
	return nil
}

// measureSnapshot runs pgcdc (spec) until its topic holds spec.rows records: the snapshot is then
// acknowledged by Kafka. pgcdc streams afterwards; it is stopped once the figures are read.
func (b *bench) measureSnapshot(ctx context.Context, spec runSpec, topic string) (*Run, error) {
	o, s := b.o, b.s
	r := &Run{Label: spec.label, Slot: spec.slot, Rows: spec.rows, Consumer: filepath.Base(spec.cmd.Path)}
	r.Log = filepath.Join(o.outDir, "logs", spec.label+".log")
	brokerBefore := cpuSeconds(s.brokerPID)
	p, err := startProc(spec.cmd, r.Log, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.label, err)
	}
	defer p.stop()
	ends := &kafka.Client{Addr: kafka.TCP(s.brokers...), Timeout: 5 * time.Second,
		Transport: &kafka.Transport{MetadataTTL: time.Second}}
	deadline := p.started.Add(o.runTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-p.exited:
			p.stopped = true
			return nil, fmt.Errorf("%s exited before it was done (%v); log %s:\n%s", spec.label, err, r.Log, tailOf(r.Log, 3000))
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		n, _ := topicEnd(ctx, ends, topic, o.partitions)
		now := time.Now()
		if n >= spec.rows {
			r.Seconds = now.Sub(p.started).Seconds()
			break
		}
		if now.After(deadline) {
			return nil, fmt.Errorf("%s: topic %s holds %d of %d records after %s; log %s", spec.label, topic, n, spec.rows, o.runTimeout, r.Log)
		}
	}
	r.collect(s, p.pid(), 0, brokerBefore) // the snapshot's walsender is not followed
	p.stop()
	r.rates()
	return r, finishPgcdcRun(ctx, o, s, r, topic, true)
}
