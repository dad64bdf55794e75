package snapshot_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/snapshot"
)

// A table never analyzed (reltuples -1) gets its exact row count as the estimate, whatever the
// chunk size: the planner counts the last chunk (an earlier version said 50,000 per such table,
// half of chunk_rows).
func TestPlanEstimateNeverAnalyzed(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec(t, conn, `CREATE TABLE t (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)`,
		`INSERT INTO t SELECT g, 'v' FROM generate_series(1, 460) g`)
	var reltuples float64
	if err := conn.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = 't'::regclass`).Scan(&reltuples); err != nil || reltuples >= 0 {
		t.Fatalf("reltuples %v (%v): the table must look never analyzed", reltuples, err)
	}
	tbl, err := snapshot.Describe(ctx, conn, "public", "t", "", 150000)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunkRows := range []int64{100000, 100, 46, 7} {
		chunks, empty, err := snapshot.PlanTable(ctx, conn, tbl, chunkRows)
		if err != nil || empty {
			t.Fatalf("chunk_rows %d: %v empty=%v", chunkRows, err, empty)
		}
		p := snapshot.NewProgress(chunks)
		if r := p.Report(time.Now()); r.Estimate != 460 {
			t.Errorf("chunk_rows %d: %d chunks, estimate %d, want 460", chunkRows, len(chunks), r.Estimate)
		}
	}
}
