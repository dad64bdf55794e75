package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// LargeResult is the large-transaction mode: one transaction committed before pgcdc starts.
type LargeResult struct {
	Rows         int64   `json:"rows"`
	WriteSeconds float64 `json:"write_seconds"`
	WALBytes     int64   `json:"wal_bytes"`
	Limit        *Run    `json:"pg_recvlogical,omitempty"`
	Pgcdc        *Run    `json:"pgcdc"`
	Ratio        float64 `json:"ratio,omitempty"`
}

func (b *bench) large(ctx context.Context) error {
	o := b.o
	const table, pub, prefix = "bench_large", "large_pub", "blarge"
	const recvSlot, pgcdcSlot = "b_large_recv", "b_large_pgcdc"
	if err := createTable(ctx, b.db, table, pub); err != nil {
		return err
	}
	slots := []string{pgcdcSlot}
	if o.largeRef {
		slots = append(slots, recvSlot)
	}
	if err := b.createSlots(ctx, slots...); err != nil {
		return err
	}
	res := &LargeResult{Rows: o.largeRows}
	b.res.Large = res
	var startS string
	if err := b.db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&startS); err != nil {
		return err
	}
	startLSN, _ := parseLSN(startS)
	logf("large: one transaction of %d rows", o.largeRows)
	t0 := time.Now()
	end, _, err := commitTxn(ctx, b.db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, insertSQL(table), 1, o.largeRows)
		return err
	})
	if err != nil {
		return err
	}
	res.WriteSeconds = time.Since(t0).Seconds()
	res.WALBytes = int64(end - startLSN)
	if o.largeRef {
		r, err := measure(ctx, o, b.s, b.db, recvlogicalSpec(b.s, b.dsn, "large-pg_recvlogical", recvSlot, pub, end, o.largeRows))
		if err != nil {
			return err
		}
		res.Limit = r
		logRun(r)
		b.dropSlots(ctx, recvSlot)
	}
	spec := pgcdcSpec(o, b.s, b.dsn, "large-pgcdc", pgcdcSlot, pub, prefix, table, true, end, o.largeRows, nil)
	r, err := measure(ctx, o, b.s, b.db, spec)
	if err != nil {
		return err
	}
	if err := finishPgcdcRun(ctx, o, b.s, r, prefix+".public."+table, true); err != nil {
		return err
	}
	res.Pgcdc = r
	logRun(r)
	if res.Limit != nil {
		res.Ratio = r.RowsPerSec / res.Limit.RowsPerSec
	}
	b.dropSlots(ctx, pgcdcSlot)
	return nil
}
