package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The benchmark table: a bigint key, text, numeric, timestamptz and jsonb. A row is about 120
// bytes in pgoutput's text form (id, 41-character name, amount, timestamp, a small JSON object).
const tableDDL = `CREATE TABLE %s (
	id         bigint PRIMARY KEY,
	name       text NOT NULL,
	amount     numeric(12,2) NOT NULL,
	created_at timestamptz NOT NULL,
	attrs      jsonb NOT NULL)`

// rowsSelect generates the rows $1..$2 (inclusive).
const rowsSelect = `SELECT g, 'customer-' || md5(g::text), mod(g, 10000000) / 100.0,
	timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
	jsonb_build_object('k', mod(g, 1000), 'tag', 'tag-' || mod(g, 17), 'ok', mod(g, 2) = 0)
	FROM generate_series($1::bigint, $2::bigint) g`

func insertSQL(table string) string {
	return fmt.Sprintf("INSERT INTO %s "+rowsSelect, pgx.Identifier{table}.Sanitize())
}

// loadProcedure writes rows first..last of a table in transactions of perTxn rows, server-side,
// so the client's round trips do not pace the workload.
const loadProcedure = `CREATE OR REPLACE PROCEDURE bench_load(tbl text, first bigint, last bigint, per_txn int)
LANGUAGE plpgsql AS $$
DECLARE s bigint := first;
BEGIN
	WHILE s <= last LOOP
		EXECUTE format('INSERT INTO %I SELECT g, ''customer-'' || md5(g::text), mod(g, 10000000) / 100.0,
			timestamptz ''2024-01-01 00:00:00+00'' + g * interval ''1 second'',
			jsonb_build_object(''k'', mod(g, 1000), ''tag'', ''tag-'' || mod(g, 17), ''ok'', mod(g, 2) = 0)
			FROM generate_series($1, $2) g', tbl) USING s, least(s + per_txn - 1, last);
		COMMIT;
		s := s + per_txn;
	END LOOP;
END $$`

func createTable(ctx context.Context, db *pgx.Conn, table, publication string) error {
	if _, err := db.Exec(ctx, fmt.Sprintf(tableDDL, pgx.Identifier{table}.Sanitize())); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	if publication != "" {
		if _, err := db.Exec(ctx, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s",
			pgx.Identifier{publication}.Sanitize(), pgx.Identifier{table}.Sanitize())); err != nil {
			return fmt.Errorf("create publication %s: %w", publication, err)
		}
	}
	return nil
}

// Workload describes the WAL every throughput consumer reads.
type Workload struct {
	Rows          int64   `json:"rows"`
	RowsPerTxn    int     `json:"rows_per_txn"`
	Transactions  int64   `json:"transactions"`
	RowBytes      float64 `json:"avg_row_bytes_pgoutput_text"` // pgoutput text size of a row's values
	HeapRowBytes  float64 `json:"avg_row_bytes_heap"`
	WALBytes      int64   `json:"wal_bytes"`
	WriteSeconds  float64 `json:"write_seconds"`
	StartLSN      string  `json:"start_lsn"`
	EndLSN        string  `json:"end_lsn"` // end of the last workload commit record
	end           uint64
	walInspection bool
}

// writeWorkload writes rows 1..rows of table in transactions of perTxn rows and returns the end LSN
// of the last commit.
func writeWorkload(ctx context.Context, db *pgx.Conn, table string, rows int64, perTxn int) (*Workload, error) {
	w := &Workload{Rows: rows, RowsPerTxn: perTxn, Transactions: (rows + int64(perTxn) - 1) / int64(perTxn)}
	var startS string
	if err := db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&startS); err != nil {
		return nil, err
	}
	start, _ := parseLSN(startS)
	if _, err := db.Exec(ctx, loadProcedure); err != nil {
		return nil, fmt.Errorf("create bench_load: %w", err)
	}
	t0 := time.Now()
	lastFirst := rows - int64(perTxn) + 1 // the last transaction runs from the client
	if lastFirst < 1 {
		lastFirst = 1
	}
	if lastFirst > 1 {
		if _, err := db.Exec(ctx, `CALL bench_load($1, 1, $2, $3)`, pgx.QueryExecModeSimpleProtocol, table, lastFirst-1, perTxn); err != nil {
			return nil, fmt.Errorf("write workload: %w", err)
		}
	}
	end, inspected, err := commitTxn(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, insertSQL(table), lastFirst, rows)
		return err
	})
	if err != nil {
		return nil, err
	}
	w.WriteSeconds = time.Since(t0).Seconds()
	w.end, w.walInspection = end, inspected
	w.StartLSN, w.EndLSN = fmtLSN(start), fmtLSN(end)
	w.WALBytes = int64(end - start)
	err = db.QueryRow(ctx, fmt.Sprintf(`SELECT avg(length(id::text) + length(name) + length(amount::text) +
		length(created_at::text) + length(attrs::text)), avg(pg_column_size(t.*)) FROM %s t`,
		pgx.Identifier{table}.Sanitize())).Scan(&w.RowBytes, &w.HeapRowBytes)
	if err != nil {
		return nil, fmt.Errorf("row size: %w", err)
	}
	return w, nil
}

// commitTxn runs fn in a transaction, commits it, and returns the end LSN of its commit record:
// exact from pg_walinspect when the extension is available (it reads only the WAL between the
// transaction's last change and now), else the insert position right after the commit (an upper
// bound that background WAL may push a little further).
func commitTxn(ctx context.Context, db *pgx.Conn, fn func(pgx.Tx) error) (end uint64, exact bool, err error) {
	_, inspectErr := db.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_walinspect`)
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback(ctx) // no-op after Commit
	if err := fn(tx); err != nil {
		return 0, false, err
	}
	var xid, before string
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text, pg_current_wal_insert_lsn()::text`).Scan(&xid, &before); err != nil {
		return 0, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, err
	}
	var after string
	if err := db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&after); err != nil {
		return 0, false, err
	}
	if inspectErr == nil {
		var e *string
		err := db.QueryRow(ctx, `SELECT max(end_lsn)::text FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
			WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%' AND xid::text = $3`, before, after, xid).Scan(&e)
		if err == nil && e != nil {
			l, err := parseLSN(*e)
			return l, err == nil, err
		}
	}
	l, err := parseLSN(after)
	return l, false, err
}
