package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
)

// The sweep mode: how pgcdc's cost grows with one factor at a time away from the default point
// (the throughput table's ~120-byte rows, 1 partition, 1 table, 100 rows per transaction), each
// point on its own tables, publication, slots and topics, measured for pg_recvlogical (the limit)
// and for pgcdc at its defaults (value schemas on), optionally for Debezium.

// sweepFactors are the factors in the order they run, as -sweep-factors names them.
var sweepFactors = []string{"rowsize", "partitions", "tables", "txn"}

// SweepResult is the sweep mode.
type SweepResult struct {
	Rows int64 `json:"rows"` // -sweep-rows: rows of a point, before scaling for wide rows
	// Warmup is the default point with at most 20,000 rows, run first and not plotted: the broker's
	// JVM and the page cache are then as warm for the first point as for the others.
	Warmup  *SweepPoint   `json:"warmup,omitempty"`
	Factors []SweepFactor `json:"factors"`
	Plots   []string      `json:"plots,omitempty"` // the SVG files written
}

// SweepFactor is one factor's points, the default point among them.
type SweepFactor struct {
	Name   string       `json:"name"`  // as -sweep-factors names it
	Title  string       `json:"title"` // the axis label
	Points []SweepPoint `json:"points"`
}

// SweepPoint is one measured configuration.
type SweepPoint struct {
	Value string `json:"value"` // the factor's value as labelled
	slug  string // for file, slot and table names
	Rows  int64  `json:"rows"`
	// PayloadBytes is the length of an extra text column of random characters (0: none); its
	// STORAGE is PLAIN (kept in the row, uncompressed) or EXTERNAL (moved out of line into the
	// TOAST table, uncompressed).
	PayloadBytes   int       `json:"payload_bytes"`
	PayloadStorage string    `json:"payload_storage,omitempty"`
	Partitions     int       `json:"partitions"`
	Tables         int       `json:"tables"`
	RowsPerTxn     int       `json:"rows_per_txn"`
	Workload       *Workload `json:"workload,omitempty"`
	ToastBytes     int64     `json:"toast_bytes"` // size of the tables' TOAST relations after the workload
	Limit          *Run      `json:"pg_recvlogical,omitempty"`
	Pgcdc          *Run      `json:"pgcdc,omitempty"`
	Debezium       *Run      `json:"debezium,omitempty"`
	Ratio          float64   `json:"ratio,omitempty"` // pgcdc rows/s over pg_recvlogical's
	Error          string    `json:"error,omitempty"`
}

// The default point and the factors' values.
const (
	sweepBaseTxn      = 100
	sweepWidePayload  = 2_000   // the "2 KB" row: a text column of 2,000 characters, kept in the row
	sweepToastPayload = 100_000 // the TOAST row: a text column of 100,000 characters, out of line
)

var (
	sweepPartitions = []int{1, 6, 24}
	sweepTables     = []int{1, 100, 1000}
	sweepTxns       = []int{1, sweepBaseTxn, 10_000}
)

// sweepPlan lists the factors with their points (configuration only), for rows rows a point.
func sweepPlan(factors []string, rows int64) []SweepFactor {
	base := func(value, slug string) SweepPoint {
		return SweepPoint{Value: value, slug: slug, Rows: rows, Partitions: 1, Tables: 1, RowsPerTxn: sweepBaseTxn}
	}
	var out []SweepFactor
	for _, f := range factors {
		sf := SweepFactor{Name: f}
		switch f {
		case "rowsize":
			sf.Title = "row size"
			wide := base("2 KB", "2kb")
			wide.PayloadBytes, wide.PayloadStorage = sweepWidePayload, "plain"
			toast := base("100 KB TOAST", "100kb")
			toast.PayloadBytes, toast.PayloadStorage = sweepToastPayload, "external"
			toast.Rows = sweepRows(rows, sweepToastPayload)
			sf.Points = []SweepPoint{base("120 B", "120b"), wide, toast}
		case "partitions":
			sf.Title = "kafka.partitions"
			for _, n := range sweepPartitions {
				p := base(fmt.Sprint(n), fmt.Sprintf("p%d", n))
				p.Partitions = n
				sf.Points = append(sf.Points, p)
			}
		case "tables":
			sf.Title = "captured tables"
			for _, n := range sweepTables {
				p := base(groupThousands(int64(n)), fmt.Sprintf("t%d", n))
				p.Tables = n
				sf.Points = append(sf.Points, p)
			}
		case "txn":
			sf.Title = "rows per transaction"
			for _, n := range sweepTxns {
				p := base(groupThousands(int64(n)), fmt.Sprintf("x%d", n))
				p.RowsPerTxn = n
				sf.Points = append(sf.Points, p)
			}
		}
		out = append(out, sf)
	}
	return out
}

// parseSweepFactors reads -sweep-factors: a comma list of sweepFactors, run in sweepFactors' order.
func parseSweepFactors(s string) ([]string, error) {
	want := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		known := false
		for _, k := range sweepFactors {
			known = known || k == f
		}
		if !known {
			return nil, fmt.Errorf("-sweep-factors: unknown factor %q (want %s)", f, strings.Join(sweepFactors, ","))
		}
		want[f] = true
	}
	var out []string
	for _, k := range sweepFactors {
		if want[k] {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-sweep-factors: no factor")
	}
	return out, nil
}

// Wide rows are scaled so that the WAL stays a few hundred MB: a point whose payload exceeds a
// heap page writes about 1 KB of payload per row of -sweep-rows (2,000 rows of 100 KB for 200,000),
// at most sweepMaxPayload bytes of it and at least 100 rows (or all, when fewer).
const (
	sweepScaleAbove = 8 << 10
	sweepMaxPayload = 256 << 20
)

func sweepRows(rows int64, payload int) int64 {
	if payload <= sweepScaleAbove {
		return rows
	}
	n := min(rows*1000/int64(payload), sweepMaxPayload/int64(payload))
	return max(n, min(rows, 100))
}

// splitRows is how many of rows 1..rows each of n tables gets: row g goes to table (g-1) mod n,
// as bench_sweep_chunk writes them.
func splitRows(rows int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = rows / int64(n)
		if int64(i) < rows%int64(n) {
			out[i]++
		}
	}
	return out
}

// sweepTableNames are a point's tables: the prefix itself for one, else prefix_0000 and on.
func sweepTableNames(prefix string, n int) []string {
	if n == 1 {
		return []string{prefix}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s_%04d", prefix, i)
	}
	return out
}

// sweepInclude is a point's tables as pgcdc's tables.include glob (without the schema) and as
// Debezium's table.include.list regular expression.
func sweepInclude(prefix string, n int) (glob, regex string) {
	if n == 1 {
		return prefix, `public\.` + prefix
	}
	return prefix + "_[0-9][0-9][0-9][0-9]", `public\.` + prefix + `_[0-9]{4}`
}

// sweepChunkFunction inserts rows s..e (one transaction's) round-robin into the tables of a
// point: row g into table (g-1) mod ntables (sweepTableNames), with a payload column of random
// characters (md5 digests of the row and a counter) when payload > 0.
const sweepChunkFunction = `CREATE OR REPLACE FUNCTION bench_sweep_chunk(prefix text, ntables int, s bigint, e bigint, payload int)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	k int;
	tbl text;
	extra text := '';
BEGIN
	IF payload > 0 THEN
		extra := ', (SELECT left(string_agg(md5(g::text || ''.'' || i::text), ''''), $3) FROM generate_series(1, ($3 + 31) / 32) i)';
	END IF;
	FOR k IN 0 .. least(ntables::bigint, e - s + 1) - 1 LOOP
		tbl := CASE WHEN ntables = 1 THEN prefix ELSE format('%s_%s', prefix, lpad(((s - 1 + k) % ntables)::text, 4, '0')) END;
		EXECUTE format('INSERT INTO %I SELECT g, ''customer-'' || md5(g::text), mod(g, 10000000) / 100.0,
			timestamptz ''2024-01-01 00:00:00+00'' + g * interval ''1 second'',
			jsonb_build_object(''k'', mod(g, 1000), ''tag'', ''tag-'' || mod(g, 17), ''ok'', mod(g, 2) = 0)' || extra || '
			FROM generate_series($1, $2, $4) g', tbl) USING s + k, e, payload, ntables::bigint;
	END LOOP;
END $$`

// sweepLoadProcedure writes rows first..last in transactions of perTxn rows, server-side.
const sweepLoadProcedure = `CREATE OR REPLACE PROCEDURE bench_sweep_load(prefix text, ntables int, first bigint, last bigint, per_txn int, payload int)
LANGUAGE plpgsql AS $$
DECLARE s bigint := first;
BEGIN
	WHILE s <= last LOOP
		PERFORM bench_sweep_chunk(prefix, ntables, s, least(s + per_txn - 1, last), payload);
		COMMIT;
		s := s + per_txn;
	END LOOP;
END $$`

// sweep runs every point of every factor; a point that fails is recorded and the next one runs.
func (b *bench) sweep(ctx context.Context) error {
	o := b.o
	res := &SweepResult{Rows: o.sweepRows, Factors: sweepPlan(o.sweepFactors, o.sweepRows)}
	b.res.Sweep = res
	for _, q := range []string{sweepChunkFunction, sweepLoadProcedure} {
		if _, err := b.db.Exec(ctx, q); err != nil {
			return fmt.Errorf("create the sweep's load functions: %w", err)
		}
	}
	warm := sweepPlan([]string{"partitions"}, min(o.sweepRows, 20_000))[0].Points[0] // the default point
	warm.Value, warm.slug = "warm-up", "120b"
	res.Warmup = &warm
	if err := b.sweepPoint(ctx, 0, "warmup", &warm, false); err != nil {
		warm.Error = err.Error()
		logf("sweep warm-up: %v", err)
	}
	var errs []error
	n := 0
	for fi := range res.Factors {
		f := &res.Factors[fi]
		for pi := range f.Points {
			n++
			p := &f.Points[pi]
			if ctx.Err() != nil {
				p.Error = ctx.Err().Error()
				continue
			}
			if err := b.sweepPoint(ctx, n, f.Name, p, o.sweepDebezium); err != nil {
				p.Error = err.Error()
				errs = append(errs, fmt.Errorf("%s %s: %w", f.Name, p.Value, err))
				logf("sweep %s %s: %v", f.Name, p.Value, err)
			}
		}
	}
	if o.plotDir != "" {
		files, err := writeSweepPlots(o.plotDir, res, o.sweepDebezium)
		if err != nil {
			errs = append(errs, fmt.Errorf("plots: %w", err))
		} else if len(files) > 0 {
			res.Plots = files
			logf("sweep: plots in %s", o.plotDir)
		}
	}
	return errors.Join(errs...)
}

// sweepPoint measures one point: its tables and publication, slots for every consumer created
// before the workload, the workload, then pg_recvlogical, pgcdc and (with debezium) Debezium over
// the same WAL. Everything it created is dropped again, whatever happened.
func (b *bench) sweepPoint(ctx context.Context, n int, factor string, p *SweepPoint, debezium bool) error {
	o := b.o
	prefix := fmt.Sprintf("sw%02d", n)
	pub := prefix + "_pub"
	tables := sweepTableNames(prefix, p.Tables)
	glob, regex := sweepInclude(prefix, p.Tables)
	recvSlot, pgcdcSlot, dbzSlot := prefix+"_recv", prefix+"_pgcdc", prefix+"_dbz"
	topicPrefix, dbzPrefix := "b"+prefix, "b"+prefix+"_dbz"
	label := fmt.Sprintf("sweep%02d-%s-%s", n, factor, p.slug)
	var pgcdcTopics, dbzTopics []string
	for _, t := range tables {
		pgcdcTopics = append(pgcdcTopics, topicPrefix+".public."+t)
		dbzTopics = append(dbzTopics, dbzPrefix+".public."+t)
	}
	slots := []string{recvSlot, pgcdcSlot}
	if debezium {
		slots = append(slots, dbzSlot)
	}
	defer func() {
		bg, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if !o.keepTopics {
			deleteTopics(bg, b.s.brokers, pgcdcTopics)
			if debezium { // its run deletes them, unless it failed
				deleteTopics(bg, b.s.brokers, dbzTopics)
			}
		}
		for _, sl := range slots {
			_ = os.RemoveAll(filepath.Join(o.outDir, "spool", sl))
		}
		if b.db.IsClosed() { // a cancelled query closed it: the end of the run drops the slots and the database
			return
		}
		b.dropSlots(bg, slots...)
		if err := dropSweepTables(bg, b.db, pub, tables); err != nil {
			logf("warning: sweep %s: %v", label, err)
		}
		// The slots are gone: let a checkpoint recycle the point's WAL.
		if _, err := b.db.Exec(bg, "CHECKPOINT"); err != nil {
			logf("warning: sweep %s: checkpoint: %v", label, err)
		}
	}()

	logf("sweep %s = %s: %d tables, %d partitions, %d rows in transactions of %d, payload %d bytes",
		factor, p.Value, p.Tables, p.Partitions, p.Rows, p.RowsPerTxn, p.PayloadBytes)
	if err := createSweepTables(ctx, b.db, pub, tables, p.PayloadBytes, p.PayloadStorage); err != nil {
		return err
	}
	if err := b.createSlots(ctx, slots...); err != nil {
		return err
	}
	w, err := writeSweepWorkload(ctx, b.db, prefix, tables, p)
	if err != nil {
		return err
	}
	p.Workload = w
	if err := b.db.QueryRow(ctx, `SELECT coalesce(sum(pg_relation_size(reltoastrelid)), 0)::bigint FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND relname::text = ANY($1::text[]) AND reltoastrelid <> 0`, tables).Scan(&p.ToastBytes); err != nil {
		return fmt.Errorf("TOAST size: %w", err)
	}
	logf("  workload written in %.1fs, %.1f MiB of WAL, %.0f bytes/row as text (%.0f in the heap), TOAST %s",
		w.WriteSeconds, float64(w.WALBytes)/(1<<20), w.RowBytes, w.HeapRowBytes, mib(p.ToastBytes))

	r, err := measure(ctx, o, b.s, b.db, recvlogicalSpec(b.s, b.dsn, label+"-pg_recvlogical", recvSlot, pub, w.end, w.Rows))
	if err != nil {
		return err
	}
	p.Limit = r
	logRun(r)
	b.dropSlots(ctx, recvSlot)

	// postgres.connect_timeout bounds pgcdc's whole start-up, the set-up of every table's topic
	// included (connector.start): with 1,000 new topics on a busy broker that took 76 s and pgcdc
	// gave up after its default 30 s. A start-up bound, not a setting that changes the rates: the
	// sweep gives it the run's bound, and the start-up time is in the figures.
	spec := pgcdcSpec(o, b.s, b.dsn, label+"-pgcdc", pgcdcSlot, pub, topicPrefix, glob, true, w.end, w.Rows,
		map[string]string{"PGCDC_KAFKA_PARTITIONS": fmt.Sprint(p.Partitions), "PGCDC_POSTGRES_CONNECT_TIMEOUT": o.runTimeout.String()})
	spec.startLimit = o.runTimeout
	r, err = measure(ctx, o, b.s, b.db, spec)
	if err != nil {
		return err
	}
	if err := checkSweepTopics(ctx, b.s, r, pgcdcTopics, p.Partitions, splitRows(p.Rows, p.Tables)); err != nil {
		return err
	}
	vs := true
	r.ValueSchemas = &vs
	p.Pgcdc = r
	p.Ratio = r.RowsPerSec / p.Limit.RowsPerSec
	logRun(r)
	b.dropSlots(ctx, pgcdcSlot)

	if debezium {
		d, err := b.runDebezium(ctx, label+"-debezium", dbzSlot, pub, dbzPrefix,
			dbzTarget{include: regex, topics: dbzTopics, partitions: p.Partitions}, true, w.Rows, nil)
		if err != nil {
			return err
		}
		p.Debezium = d
		logRun(d)
		b.dropSlots(ctx, dbzSlot)
	}
	return nil
}

// createSweepTables creates a point's tables (the throughput table's layout, plus the payload
// column when payload > 0) and a publication of them, a hundred at a time to hold few locks.
func createSweepTables(ctx context.Context, db *pgx.Conn, pub string, tables []string, payload int, storage string) error {
	for _, t := range tables {
		id := pgx.Identifier{t}.Sanitize()
		ddl := fmt.Sprintf(tableDDL, id)
		if payload > 0 {
			ddl = strings.TrimSuffix(ddl, ")") + ",\n\tpayload    text NOT NULL)"
		}
		if _, err := db.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("create table %s: %w", t, err)
		}
		if payload > 0 {
			if _, err := db.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN payload SET STORAGE %s", id, strings.ToUpper(storage))); err != nil {
				return fmt.Errorf("payload storage of %s: %w", t, err)
			}
		}
	}
	for i := 0; i < len(tables); i += 100 {
		var ids []string
		for _, t := range tables[i:min(i+100, len(tables))] {
			ids = append(ids, pgx.Identifier{t}.Sanitize())
		}
		q := fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", pgx.Identifier{pub}.Sanitize(), strings.Join(ids, ", "))
		if i == 0 {
			q = fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s", pgx.Identifier{pub}.Sanitize(), strings.Join(ids, ", "))
		}
		if _, err := db.Exec(ctx, q); err != nil {
			return fmt.Errorf("publication %s: %w", pub, err)
		}
	}
	return nil
}

// dropSweepTables drops a point's publication and tables (those that exist), a hundred at a time.
func dropSweepTables(ctx context.Context, db *pgx.Conn, pub string, tables []string) error {
	if _, err := db.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{pub}.Sanitize()); err != nil {
		return fmt.Errorf("drop publication %s: %w", pub, err)
	}
	for i := 0; i < len(tables); i += 100 {
		var ids []string
		for _, t := range tables[i:min(i+100, len(tables))] {
			ids = append(ids, pgx.Identifier{t}.Sanitize())
		}
		if _, err := db.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join(ids, ", ")); err != nil {
			return fmt.Errorf("drop tables: %w", err)
		}
	}
	return nil
}

// writeSweepWorkload writes a point's rows and returns the end LSN of the last commit (exact as in
// writeWorkload: the last transaction runs from the client).
func writeSweepWorkload(ctx context.Context, db *pgx.Conn, prefix string, tables []string, p *SweepPoint) (*Workload, error) {
	rows, perTxn := p.Rows, p.RowsPerTxn
	w := &Workload{Rows: rows, RowsPerTxn: perTxn, Transactions: (rows + int64(perTxn) - 1) / int64(perTxn)}
	var startS string
	if err := db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&startS); err != nil {
		return nil, err
	}
	start, _ := parseLSN(startS)
	t0 := time.Now()
	lastFirst := max(rows-int64(perTxn)+1, 1)
	if lastFirst > 1 {
		if _, err := db.Exec(ctx, `CALL bench_sweep_load($1, $2, 1, $3, $4, $5)`, pgx.QueryExecModeSimpleProtocol,
			prefix, len(tables), lastFirst-1, perTxn, p.PayloadBytes); err != nil {
			return nil, fmt.Errorf("write workload: %w", err)
		}
	}
	end, inspected, err := commitTxn(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT bench_sweep_chunk($1, $2, $3, $4, $5)`, prefix, len(tables), lastFirst, rows, p.PayloadBytes)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("write workload: %w", err)
	}
	w.WriteSeconds = time.Since(t0).Seconds()
	w.end, w.walInspection = end, inspected
	w.StartLSN, w.EndLSN = fmtLSN(start), fmtLSN(end)
	w.WALBytes = int64(end - start)
	payload := ""
	if p.PayloadBytes > 0 {
		payload = " + length(payload)"
	}
	err = db.QueryRow(ctx, fmt.Sprintf(`SELECT avg(length(id::text) + length(name) + length(amount::text) +
		length(created_at::text) + length(attrs::text)%s), avg(pg_column_size(t.*)) FROM %s t`,
		payload, pgx.Identifier{tables[0]}.Sanitize())).Scan(&w.RowBytes, &w.HeapRowBytes)
	if err != nil {
		return nil, fmt.Errorf("row size: %w", err)
	}
	return w, nil
}

// checkSweepTopics checks that each topic holds the rows of its table (want, in the order of
// topics) and records the count and the first topic's record size.
func checkSweepTopics(ctx context.Context, s *servers, r *Run, topics []string, partitions int, want []int64) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r.Topic = topics[0]
	if len(topics) > 1 {
		r.Topic = fmt.Sprintf("%s ... %s (%d topics)", topics[0], topics[len(topics)-1], len(topics))
	}
	cl := &kafka.Client{Addr: kafka.TCP(s.brokers...), Timeout: 30 * time.Second}
	counts, err := topicEnds(cctx, cl, topics, partitions)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Label, err)
	}
	var bad []string
	for i, t := range topics {
		r.TopicRecords += counts[i]
		if counts[i] != want[i] && len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("%s holds %d records, want %d", t, counts[i], want[i]))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %s", r.Label, strings.Join(bad, "; "))
	}
	if _, avg, err := topicStats(cctx, s.brokers, topics[0]); err == nil {
		r.AvgRecordBytes = avg
	}
	return nil
}

// writeSweepPlots writes one SVG per factor into dir: rows/s, CPU µs per event and peak RSS over the
// factor's values.
func writeSweepPlots(dir string, res *SweepResult, debezium bool) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, f := range res.Factors {
		path := filepath.Join(dir, "sweep-"+f.Name+".svg")
		if err := os.WriteFile(path, sweepFigure(f, res.Rows, debezium).svg(), 0o644); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

// sweepFigure is the plot of one factor; a point without a run has no value (a gap in its line).
func sweepFigure(f SweepFactor, rows int64, debezium bool) plotFigure {
	get := func(pick func(p SweepPoint) *Run, val func(r *Run) float64) []float64 {
		out := make([]float64, len(f.Points))
		for i, p := range f.Points {
			out[i] = -1
			if r := pick(p); r != nil {
				out[i] = val(r)
			}
		}
		return out
	}
	pgcdc := func(p SweepPoint) *Run { return p.Pgcdc }
	limit := func(p SweepPoint) *Run { return p.Limit }
	dbz := func(p SweepPoint) *Run { return p.Debezium }
	rate := func(r *Run) float64 { return r.RowsPerSec }
	cpu := func(r *Run) float64 { return r.ClientCPUPerEvent }
	rss := func(r *Run) float64 { return float64(r.PeakRSS) / (1 << 20) }
	const cPgcdc, cLimit, cDbz, cWal, cBroker = "#1f77b4", "#555555", "#ff7f0e", "#9467bd", "#2ca02c"
	rates := plotPanel{YLabel: "rows/s", Series: []plotSeries{
		{Name: "pgcdc", Color: cPgcdc, Values: get(pgcdc, rate)},
		{Name: "pg_recvlogical (limit)", Color: cLimit, Values: get(limit, rate)},
	}}
	cpus := plotPanel{YLabel: "CPU µs/event", Series: []plotSeries{
		{Name: "pgcdc", Color: cPgcdc, Values: get(pgcdc, cpu)},
		{Name: "its walsender", Color: cWal, Values: get(pgcdc, func(r *Run) float64 { return r.WalsenderPerEvent })},
		{Name: "broker", Color: cBroker, Values: get(pgcdc, func(r *Run) float64 { return r.BrokerPerEvent })},
	}}
	mem := plotPanel{YLabel: "peak RSS MiB", Series: []plotSeries{{Name: "pgcdc", Color: cPgcdc, Values: get(pgcdc, rss)}}}
	if debezium {
		rates.Series = append(rates.Series, plotSeries{Name: "Debezium", Color: cDbz, Values: get(dbz, rate)})
		cpus.Series = append(cpus.Series, plotSeries{Name: "Debezium", Color: cDbz, Values: get(dbz, cpu)})
		mem.Series = append(mem.Series, plotSeries{Name: "Debezium", Color: cDbz, Values: get(dbz, rss)})
	}
	fig := plotFigure{XLabel: f.Title, Panels: []plotPanel{rates, cpus, mem}}
	var fewer []string
	for _, p := range f.Points {
		fig.X = append(fig.X, p.Value)
		if p.Rows != rows {
			fewer = append(fewer, fmt.Sprintf("%s for %s", groupThousands(p.Rows), p.Value))
		}
	}
	fig.Title = fmt.Sprintf("pgcdc sweep: %s (value schemas on; %s rows a point", f.Title, groupThousands(rows))
	if len(fewer) > 0 {
		fig.Title += ", " + strings.Join(fewer, ", ")
	}
	fig.Title += ")"
	return fig
}

// groupThousands writes n with commas: 200,000.
func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + groupThousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
