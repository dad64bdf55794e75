package incremental

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/retry"
	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/snapshot"
)

// stats counts the run's work (for the progress log).
type stats struct {
	read, published, dropped, acked, chunks, rereads atomic.Int64
}

// entryView is what the reader needs of the queue's first entry, copied under the lock.
type entryView struct {
	e               *Entry
	seq             int64
	table, filter   string
	state           string
	maxKey, lastKey []string
}

// target is a table being read, as the reader describes it.
type target struct {
	t           *snapshot.Table // Key: the chunk key (primary key, or the surrogate key)
	rel         *decode.Relation
	keyNames    []string // the de-duplication key: the event key, or the chunk key without one
	keyIdx      []int    // their indexes in t.Columns
	fingerprint string
}

// errSkip marks a failure of one table that retrying cannot cure (no key, a bad filter, a dropped
// table): the table is skipped, as Debezium does, and the snapshot goes on with the next.
type errSkip struct{ err error }

func (e *errSkip) Error() string { return e.err.Error() }
func (e *errSkip) Unwrap() error { return e.err }

// depth is how many windows may await the pipeline's verdict at once: the next chunk is read while
// the stream catches up with the previous one's high watermark. Windows still follow each other in
// the WAL (a low watermark is written after the previous high one), so the pipeline has at most
// one open.
const depth = 4

// span is a key range to read: a fresh chunk (upper nil: up to the table's last key, at most
// ChunkRows rows) or one read again (both bounds known).
type span struct {
	index        int64    // the chunk's place in the table in this run (the recorder's order)
	lower, upper []string // lower exclusive (nil: the start), upper inclusive
	final        bool     // the table's last chunk
	redo         bool     // read again: a fresh read's bounds, without a row limit
}

// flight is a window whose verdict the reader awaits.
type flight struct {
	id             string
	span           *span
	c              *chunk
	t0, t1, t2, t3 time.Time // low watermark, read, high watermark written, for the debug line
}

// tableRun is the reader's state for the table it reads.
type tableRun struct {
	cur     entryView
	tg      *target
	lower   []string // the next fresh chunk's lower bound
	next    int64    // the next fresh chunk's index
	readAll bool     // a short chunk was read: every key up to the last one was read once
	redo    []*span  // ranges to read again
	flying  []*flight
	redos   int // consecutive windows read again (backoff)
	warnAt  int
	started time.Time
}

// readLoop reads chunks while a table is queued and the snapshot not paused.
func (s *Snapshotter) readLoop(ctx context.Context) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	b := retry.New(200*time.Millisecond, 10*time.Second)
	var tr *tableRun
	pauseLogged := false
	for {
		cur, ok := s.current()
		if ok {
			pauseLogged = false
		}
		switch {
		case tr != nil && len(tr.flying) > 0 && (!ok || cur.seq != tr.cur.seq):
			// Paused, or the table was stopped: the windows in flight still get their verdicts.
			if err := s.await(ctx, tr); err != nil {
				return nil
			}
			continue
		case !ok:
			if paused := s.isPaused(); paused && !pauseLogged {
				s.log.Info().Msg("incremental snapshot paused: no window in flight")
				pauseLogged = true
			}
			select {
			case <-ctx.Done():
				return nil
			case <-s.wake:
			}
			continue
		}
		if tr == nil || tr.cur.seq != cur.seq {
			tr = &tableRun{cur: cur, lower: cur.lastKey, started: time.Now(), warnAt: 10}
		}
		tr.cur = cur
		if conn == nil || conn.IsClosed() {
			c, err := pgsource.ConnectSQL(ctx, s.opts.ConnString)
			if err != nil {
				return nil // ctx ended (ConnectSQL retries transient failures)
			}
			conn = c
		}
		var err error
		switch {
		case cur.state == stateQueued:
			tr.tg, err = s.startTable(ctx, conn, cur.e)
			if err == nil {
				tr.lower = nil
			}
		case len(tr.flying) < depth && (len(tr.redo) > 0 || !tr.readAll):
			err = s.launch(ctx, conn, tr)
		case len(tr.flying) == 0:
			s.finishReading(cur.e, tr.started, false)
			tr = nil
		default:
			if err := s.await(ctx, tr); err != nil {
				return nil
			}
		}
		if err == nil {
			b.Reset()
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		var skip *errSkip
		if errors.As(err, &skip) {
			s.log.Error().Err(err).Str("table", cur.table).Str("filter", cur.filter).Msg("incremental snapshot of the table skipped")
			if len(tr.flying) > 0 {
				s.pipe.cancel(func(t string) bool { return t == cur.table })
				for len(tr.flying) > 0 {
					if err := s.await(ctx, tr); err != nil {
						return nil
					}
				}
			}
			if err := s.skip(ctx, cur.e); err != nil && ctx.Err() == nil {
				return err
			}
			tr = nil
			continue
		}
		if lostConnection(conn, err) {
			s.log.Warn().Err(err).Str("table", cur.table).Msg("incremental snapshot: connection lost; reconnecting")
			conn.Close(context.Background())
			conn = nil
		} else {
			s.log.Warn().Err(err).Str("table", cur.table).Msg("incremental snapshot: reading a chunk failed; retrying")
		}
		if err := b.Wait(ctx); err != nil {
			return nil
		}
	}
}

// launch reads the next span of tr (one read again first, else a fresh chunk) in a window.
func (s *Snapshotter) launch(ctx context.Context, conn *pgx.Conn, tr *tableRun) error {
	sp := &span{index: tr.next, lower: tr.lower}
	if len(tr.redo) > 0 {
		sp = tr.redo[0]
		if err := sleep(ctx, time.Duration(min(tr.redos, 50))*10*time.Millisecond); err != nil {
			return err
		}
	}
	f, err := s.window(ctx, conn, tr, sp)
	if err != nil {
		return err
	}
	if f == nil { // the key changed (read again, described anew), or the table was stopped
		return nil
	}
	tr.flying = append(tr.flying, f)
	if sp.redo {
		tr.redo = tr.redo[1:]
		return nil
	}
	tr.next++
	if f.c.short {
		tr.readAll, sp.final, sp.upper = true, true, tr.cur.maxKey
	} else {
		sp.upper = f.c.last
	}
	if f.c.last != nil {
		tr.lower = f.c.last
	}
	return nil
}

// await waits for the verdict of tr's oldest window and acts on it.
func (s *Snapshotter) await(ctx context.Context, tr *tableRun) error {
	f := tr.flying[0]
	var v verdict
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case v = <-s.verdicts:
		}
		if v.id == f.id {
			break
		}
		// A verdict of a window given up; a verdict of a later window cannot come first (windows
		// follow each other in the WAL).
	}
	tr.flying = tr.flying[1:]
	s.stats.read.Add(int64(len(f.c.rows)))
	s.log.Debug().Str("table", tr.cur.table).Str("window", f.id).Int("rows", len(f.c.rows)).Int64("published", v.published).Int64("dropped", v.dropped).
		Bool("redo", v.redo).Bool("cancelled", v.cancelled).Dur("low_ms", f.t1.Sub(f.t0)).Dur("read_ms", f.t2.Sub(f.t1)).Dur("high_ms", f.t3.Sub(f.t2)).
		Dur("wait_ms", time.Since(f.t3)).Int("in_flight", len(tr.flying)).Msg("incremental snapshot window")
	switch {
	case v.cancelled:
	case v.redo:
		s.stats.rereads.Add(1)
		s.opts.metricsChunk(int64(len(f.c.rows)), 0, 0, true)
		if tr.redos++; tr.redos == tr.warnAt {
			tr.warnAt *= 10
			s.log.Warn().Str("table", tr.cur.table).Int("attempts", tr.redos).Uint32("xid", v.racer).
				Msg("chunks keep being read again: a transaction their snapshot did not see had already been streamed (or a key could not be read)")
		}
		f.span.redo = true
		tr.redo = append(tr.redo, f.span)
	default:
		tr.redos = 0
		s.stats.chunks.Add(1)
		s.stats.published.Add(v.published)
		s.stats.dropped.Add(v.dropped)
		s.opts.metricsChunk(int64(len(f.c.rows)), v.published, v.dropped, false)
		res := chunkResult{e: tr.cur.e, seq: tr.cur.seq, table: tr.cur.table, index: f.span.index, last: f.span.upper, rows: v.published,
			txn: ack.TxnID(v.txn), final: f.span.final}
		select {
		case s.results <- res:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *Snapshotter) isPaused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

// queued reports whether entry seq is still queued.
func (s *Snapshotter) queued(seq int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.queue, func(e *Entry) bool { return e.Seq == seq })
}

// current returns the entry to read, or false when none is queued or the snapshot is paused.
func (s *Snapshotter) current() (entryView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused || len(s.queue) == 0 {
		return entryView{}, false
	}
	e := s.queue[0]
	return entryView{e: e, seq: e.Seq, table: e.Table, filter: e.Filter, state: e.State, maxKey: e.MaxKey, lastKey: e.LastKey}, true
}

// finishReading takes e off the queue once its last chunk was read (the recorder removes it from
// the store once Kafka acknowledged that chunk), or once it was skipped.
func (s *Snapshotter) finishReading(e *Entry, started time.Time, skipped bool) {
	s.mu.Lock()
	if len(s.queue) > 0 && s.queue[0] == e {
		s.queue = s.queue[1:]
	}
	queued, paused := len(s.queue), s.paused
	s.mu.Unlock()
	s.opts.metricsState(queued, paused)
	if !skipped {
		s.log.Info().Str("table", e.Table).Float64("took_s", time.Since(started).Seconds()).Int("tables_queued", queued).
			Msg("incremental snapshot: the table's last chunk is read")
	}
}

// skip removes e from the queue and the store.
func (s *Snapshotter) skip(ctx context.Context, e *Entry) error {
	if err := s.withStore(ctx, func(st *store) error { return st.remove(ctx, []int64{e.Seq}, -1) }); err != nil {
		return err
	}
	s.finishReading(e, time.Now(), true)
	return nil
}

// startTable describes e's table and reads the last key to read (rows inserted later come
// through the stream); an empty table is done at once.
func (s *Snapshotter) startTable(ctx context.Context, conn *pgx.Conn, e *Entry) (*target, error) {
	if !s.captured(e.Table) {
		return nil, &errSkip{fmt.Errorf("table %s is no longer captured", e.Table)}
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background())
	if err := lockBeforeSnapshot(ctx, tx, e.Table); err != nil {
		return nil, err
	}
	tg, err := s.describe(ctx, tx, e)
	if err != nil {
		return nil, err
	}
	var last []string
	desc := make([]string, len(tg.t.Key))
	for i, k := range tg.t.Key {
		desc[i] = pgx.Identifier{k}.Sanitize() + " DESC"
	}
	err = tx.QueryRow(ctx, "SELECT "+snapshot.KeyText(tg.t.Key)+" FROM "+tg.t.From()+tg.t.Where(nil)+" ORDER BY "+strings.Join(desc, ", ")+" LIMIT 1").Scan(&last)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, asSkip(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	if last == nil {
		s.log.Info().Str("table", e.Table).Str("filter", e.Filter).Msg("incremental snapshot: the table has no rows to read")
		return nil, s.skip(ctx, e)
	}
	s.mu.Lock()
	e.MaxKey, e.LastKey, e.Estimate, e.Rows, e.Chunks = last, nil, tg.t.Estimate, 0, 0
	s.mu.Unlock()
	if err := s.withStore(ctx, func(st *store) error { return st.start(ctx, e) }); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e.State = stateRunning
	s.mu.Unlock()
	s.opts.metricsTable(e.Table, 0, e.Estimate)
	s.log.Info().Str("table", e.Table).Str("filter", e.Filter).Strs("key", tg.t.Key).Int64("rows_estimate", e.Estimate).
		Int("chunk_rows", s.opts.ChunkRows).Msg("incremental snapshot: table started")
	return tg, nil
}

// lockBeforeSnapshot takes table's ACCESS SHARE lock as the first statement of a REPEATABLE READ
// transaction, before its snapshot is taken (LOCK TABLE takes none): a table rewrite (ALTER
// COLUMN ... TYPE, VACUUM FULL) is not MVCC-safe, and a snapshot taken before a concurrent rewrite
// commits reads the rewritten table as empty, so the chunk would miss rows (and a table's start
// find none). With the lock first, the snapshot follows any rewrite in progress. A table that no
// longer exists under its name is skipped.
func lockBeforeSnapshot(ctx context.Context, tx pgx.Tx, table string) error {
	schema, name, _ := strings.Cut(table, ".")
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{schema, name}.Sanitize()+" IN ACCESS SHARE MODE"); err != nil {
		return asSkip(fmt.Errorf("incremental snapshot: lock %s: %w", table, err))
	}
	return nil
}

// asSkip marks a query error that no retry cures (a syntax error in a filter, a missing column) as
// one that skips the table.
func asSkip(err error) error {
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) {
		switch c := pgErr.SQLState(); {
		case strings.HasPrefix(c, "42"), strings.HasPrefix(c, "22"): // syntax or access rule, data exception
			return &errSkip{err}
		}
	}
	return err
}

// surrogateSQL reads the SQL type of a surrogate key column.
const surrogateSQL = `SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`

// fingerprintSQL changes when anything the description depends on changes: a column (added,
// dropped, retyped, NOT NULL), an index (the key), the publication's column list, the table.
const fingerprintSQL = `SELECT
  coalesce((SELECT string_agg(a.attnum || ':' || a.xmin::text, ',' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0), '') || '|' ||
  coalesce((SELECT string_agg(i.indexrelid || ':' || i.xmin::text, ',' ORDER BY i.indexrelid) FROM pg_index i WHERE i.indrelid = $1), '') || '|' ||
  coalesce((SELECT string_agg(r.oid || ':' || r.xmin::text, ',' ORDER BY r.oid) FROM pg_publication_rel r WHERE r.prrelid = $1), '') || '|' ||
  coalesce((SELECT c.xmin::text FROM pg_class c WHERE c.oid = $1), '')`

// publishedSQL: does publication $2 carry relation $1 (itself, a partition of it, or a partitioned
// table it is a partition of, as published via the root or not)?
const publishedSQL = `SELECT EXISTS (
  SELECT 1 FROM pg_publication_tables pt
  JOIN pg_namespace n ON n.nspname = pt.schemaname
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
  WHERE pt.pubname = $2 AND (c.oid = $1::oid -- the partition functions return nothing for a plain table
    OR c.oid IN (SELECT relid FROM pg_partition_ancestors($1::oid::regclass) UNION ALL SELECT relid FROM pg_partition_tree($1::oid::regclass))))`

// checkPublished skips e's table (relation oid, in q's snapshot) when the publication does not
// carry it: its changes are not streamed, so a chunk's rows could not be corrected by the stream,
// and a deleted row would come back. This is the table that was dropped and created again under
// the name of the one requested, before the new one joined the publication (which requests its
// own snapshot when it joins).
func (s *Snapshotter) checkPublished(ctx context.Context, q pgx.Tx, e *Entry, oid uint32) error {
	if s.opts.Publication == "" {
		return nil
	}
	var published bool
	if err := q.QueryRow(ctx, publishedSQL, oid, s.opts.Publication).Scan(&published); err != nil {
		return fmt.Errorf("incremental snapshot: is %s in publication %s: %w", e.Table, s.opts.Publication, err)
	}
	if !published {
		return &errSkip{fmt.Errorf("table %s is not in publication %s (dropped and created again since it was requested? It is snapshotted when it joins)", e.Table, s.opts.Publication)}
	}
	return nil
}

// describe reads what the reader needs of e's table, in q's snapshot.
func (s *Snapshotter) describe(ctx context.Context, q pgx.Tx, e *Entry) (*target, error) {
	schema, name, _ := strings.Cut(e.Table, ".")
	t, err := snapshot.Describe(ctx, q, schema, name, s.opts.Publication, s.opts.ServerVersion)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, &errSkip{fmt.Errorf("table %s does not exist", e.Table)}
		}
		return nil, err
	}
	if err := s.checkPublished(ctx, q, e, t.OID); err != nil {
		return nil, err
	}
	tg := &target{t: t, keyNames: append([]string(nil), t.Key...)}
	if e.SurrogateKey != "" {
		var typ string
		if err := q.QueryRow(ctx, surrogateSQL, t.OID, e.SurrogateKey).Scan(&typ); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return nil, &errSkip{fmt.Errorf("surrogate-key: table %s has no column %q", e.Table, e.SurrogateKey)}
			}
			return nil, err
		}
		t.Key, t.KeyTypes = []string{e.SurrogateKey}, []string{typ}
	}
	if len(t.Key) == 0 {
		return nil, &errSkip{fmt.Errorf("table %s has no primary key (nor replica identity index): name a unique, not-null column as surrogate-key in the execute-snapshot signal", e.Table)}
	}
	if len(tg.keyNames) == 0 {
		tg.keyNames = t.Key
	}
	for _, k := range tg.keyNames {
		i := -1
		for j, c := range t.Columns {
			if c.Name == k {
				i = j
			}
		}
		if i < 0 {
			return nil, &errSkip{fmt.Errorf("table %s: key column %q is not published (the publication's column list must hold the key)", e.Table, k)}
		}
		tg.keyIdx = append(tg.keyIdx, i)
	}
	t.Filter = e.Filter
	if tg.rel, err = snapshot.Relation(ctx, q, t); err != nil {
		return nil, &errSkip{err}
	}
	if err := q.QueryRow(ctx, fingerprintSQL, t.OID).Scan(&tg.fingerprint); err != nil {
		return nil, err
	}
	return tg, nil
}

// window reads span sp of tr's table between a low and a high watermark. It returns nil when the
// table's key changed meanwhile (the span is then read again, described anew) or the table was
// stopped.
func (s *Snapshotter) window(ctx context.Context, conn *pgx.Conn, tr *tableRun, sp *span) (*flight, error) {
	if tr.tg == nil {
		// The de-duplication key must be known before the low watermark: describe the table
		// first (the chunk's transaction checks that nothing changed since).
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return nil, err
		}
		tg, err := s.describe(ctx, tx, tr.cur.e)
		_ = tx.Rollback(context.Background())
		if err != nil {
			return nil, err
		}
		tr.tg = tg
	}
	if err := s.roomInKafka(ctx); err != nil {
		return nil, err
	}
	if s.limit != nil { // snapshot.max_rows_per_sec: a chunk's worth of rows, before its transaction starts
		if err := s.limit.WaitN(ctx, min(s.opts.ChunkRows, s.limit.Burst())); err != nil {
			return nil, err
		}
	}
	keyNames := tr.tg.keyNames
	f := &flight{id: s.runID + "-" + strconv.FormatInt(s.windows.Add(1), 10), span: sp, t0: time.Now()}
	s.pipe.register(&window{id: f.id, table: tr.cur.table, keyNames: keyNames})
	if !s.queued(tr.cur.seq) { // stopped meanwhile (stop cancels the windows registered before)
		s.pipe.drop(f.id)
		return nil, nil
	}
	if err := emitWatermark(ctx, conn, markOpen+f.id, false); err != nil {
		s.pipe.drop(f.id)
		return nil, err
	}
	f.t1 = time.Now()
	upper, limit := tr.cur.maxKey, s.opts.ChunkRows
	if sp.redo {
		upper, limit = sp.upper, 0
	}
	c, err := s.readChunk(ctx, conn, tr.cur, &tr.tg, sp.lower, upper, limit)
	if err != nil {
		s.pipe.drop(f.id)
		return nil, err
	}
	if !slices.Equal(tr.tg.keyNames, keyNames) {
		s.pipe.drop(f.id)
		return nil, nil
	}
	f.c = c
	s.pipe.attach(f.id, c)
	f.t2 = time.Now()
	if err := emitWatermark(ctx, conn, markClose+f.id, true); err != nil {
		s.pipe.drop(f.id)
		return nil, err
	}
	f.t3 = time.Now()
	return f, nil
}

// roomInKafka waits until less than half of the in-flight budget is used: the stream keeps the
// other half.
func (s *Snapshotter) roomInKafka(ctx context.Context) error {
	if s.opts.InFlight == nil || s.opts.MaxInFlight <= 0 {
		return nil
	}
	for s.opts.InFlight() > s.opts.MaxInFlight/2 {
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// emitWatermark writes a watermark: a logical decoding message, which the stream delivers at its
// WAL position, between the transactions committed before and after it. The low watermark is
// non-transactional (delivered at its own position); the high one is transactional, in a
// transaction of its own: delivered at that transaction's commit, which also flushes the WAL, so
// the walsender sends it at once (a non-transactional message waits for the next flush, up to
// wal_writer_delay).
func emitWatermark(ctx context.Context, conn *pgx.Conn, content string, transactional bool) error {
	_, err := conn.Exec(ctx, `SELECT pg_logical_emit_message($1, $2, $3)`, transactional, WatermarkPrefix, content)
	if err != nil {
		return fmt.Errorf("incremental snapshot: write a watermark (pg_logical_emit_message): %w", err)
	}
	return nil
}

// readChunk reads the rows after lower up to upper (at most limit; 0: all) in one REPEATABLE READ
// transaction: the transaction's snapshot (pg_current_snapshot: which transactions it does not
// see), the description when the table changed since it was last read, and the rows.
func (s *Snapshotter) readChunk(ctx context.Context, conn *pgx.Conn, cur entryView, tgp **target, lower, upper []string, limit int) (*chunk, error) {
	e := cur.e
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background())
	if err := lockBeforeSnapshot(ctx, tx, e.Table); err != nil {
		return nil, err
	}
	var snap string
	if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&snap); err != nil {
		return nil, fmt.Errorf("incremental snapshot: pg_current_snapshot(): %w", err)
	}
	inv, err := parseSnapshot(snap)
	if err != nil {
		return nil, err
	}
	tg := *tgp
	var fp string
	if err := tx.QueryRow(ctx, fingerprintSQL, tg.t.OID).Scan(&fp); err != nil {
		return nil, err
	}
	if fp != tg.fingerprint {
		if tg, err = s.describe(ctx, tx, e); err != nil {
			return nil, err
		}
		*tgp = tg
	}
	sql, args := chunkQuery(tg.t, lower, upper, limit)
	c := &chunk{rel: tg.rel, invisible: inv}
	ncols := len(tg.t.Columns)
	rr := conn.PgConn().ExecParams(ctx, sql, args, nil, nil, nil)
	var key []byte
	var last [][]byte // the chunk key (text) of the row read last
	for rr.NextRow() {
		vals := rr.Values()
		row := make([][]byte, ncols)
		size := 0
		for _, v := range vals[:ncols] {
			size += len(v)
		}
		buf := make([]byte, 0, size)
		for i, v := range vals[:ncols] {
			if v != nil {
				buf = append(buf, v...)
				row[i] = buf[len(buf)-len(v) : len(buf) : len(buf)]
			}
		}
		key = keyOfValues(key[:0], row, tg.keyIdx)
		c.rows, c.keys = append(c.rows, row), append(c.keys, string(key))
		last = last[:0]
		for _, v := range vals[ncols:] {
			last = append(last, append([]byte(nil), v...))
		}
	}
	if _, err := rr.Close(); err != nil {
		return nil, asSkip(fmt.Errorf("incremental snapshot: read a chunk of %s: %w", cur.table, err))
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	c.short = limit > 0 && len(c.rows) < limit
	if len(c.rows) > 0 {
		for _, v := range last {
			c.last = append(c.last, string(v))
		}
	}
	return c, nil
}

// chunkQuery returns the SELECT of the rows after lower up to upper (the table's last key when
// it started, for a fresh chunk), at most limit rows (0: all) in key order: the published columns,
// then the chunk key's columns as text (the next lower bound). Bounds are compared in SQL
// (snapshot.KeyRange).
func chunkQuery(t *snapshot.Table, lower, upper []string, limit int) (string, [][]byte) {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = c.Name
	}
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = pgx.Identifier{k}.Sanitize() + "::text AS " + pgx.Identifier{"__pgcdc_key_" + strconv.Itoa(i)}.Sanitize()
	}
	var args [][]byte
	where := snapshot.KeyRange(t, lower, upper, &args)
	sql := "SELECT " + snapshot.QuoteCols(cols) + ", " + strings.Join(keys, ", ") + " FROM " + t.From() + t.Where(where) +
		" ORDER BY " + snapshot.QuoteCols(t.Key)
	if limit > 0 {
		sql += " LIMIT " + strconv.Itoa(limit)
	}
	return sql, args
}

// parseSnapshot reads a pg_current_snapshot() value "xmin:xmax:xip,...": the transactions it
// does not see are those listed (xip, still running when it was taken) and every one from xmax on
// (not completed when it was taken, even when already assigned: xmax is one past the newest
// completed transaction, so a running transaction past it is not listed). Xids are kept as the
// stream carries them (32 bits).
func parseSnapshot(s string) (invisible, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return invisible{}, fmt.Errorf("incremental snapshot: pg_current_snapshot() returned %q", s)
	}
	_, err := strconv.ParseUint(parts[0], 10, 64)
	xmax, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err = errors.Join(err, err2); err != nil {
		return invisible{}, fmt.Errorf("incremental snapshot: pg_current_snapshot() returned %q: %w", s, err)
	}
	inv := invisible{xmax: uint32(xmax), running: map[uint32]bool{}}
	if parts[2] == "" {
		return inv, nil
	}
	for _, x := range strings.Split(parts[2], ",") {
		v, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return invisible{}, fmt.Errorf("incremental snapshot: pg_current_snapshot() returned %q: %w", s, err)
		}
		inv.running[uint32(v)] = true
	}
	return inv, nil
}

// recordLoop records each published chunk once Kafka acknowledged its rows, in order; a table's
// last chunk removes it from the store.
func (s *Snapshotter) recordLoop(ctx context.Context) error {
	t := s.opts.Tracker
	// Chunks are recorded in their table's order: one read again comes after later ones, which
	// wait for it (the durable last key only ever covers chunks all acknowledged).
	type tableOrder struct {
		next    int64
		pending map[int64]chunkResult
	}
	order := map[int64]*tableOrder{}
	var ready []chunkResult
	for {
		if len(ready) == 0 {
			var in chunkResult
			select {
			case <-ctx.Done():
				return nil
			case in = <-s.results:
			}
			o := order[in.seq]
			if o == nil {
				o = &tableOrder{pending: map[int64]chunkResult{}}
				order[in.seq] = o
			}
			o.pending[in.index] = in
			for {
				r, ok := o.pending[o.next]
				if !ok {
					break
				}
				delete(o.pending, o.next)
				o.next++
				ready = append(ready, r)
				if r.final {
					delete(order, in.seq)
				}
			}
			continue
		}
		r := ready[0]
		ready = ready[1:]
		for !t.Acked(r.txn) {
			changed := t.Changed()
			if t.Acked(r.txn) {
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			}
		}
		s.stats.acked.Add(r.rows)
		err := s.withStore(ctx, func(st *store) error {
			if r.final {
				return st.remove(ctx, []int64{r.seq}, -1)
			}
			return st.chunkDone(ctx, r.seq, r.last, r.rows)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Not fatal: the chunk is read again after a restart (duplicates, never a loss).
			s.log.Error().Err(err).Str("table", r.table).Msg("incremental snapshot: recording an acknowledged chunk failed")
		}
		s.mu.Lock()
		e := r.e
		e.Rows += r.rows
		e.Chunks++
		e.LastKey = r.last
		rows, est := e.Rows, e.Estimate
		s.mu.Unlock()
		s.opts.metricsTable(r.table, rows, max(est, rows))
		if r.final {
			s.log.Info().Str("table", r.table).Int64("rows", rows).Msg("incremental snapshot: table done (every chunk acknowledged by Kafka)")
		}
	}
}

// progressLoop logs a progress line at every interval while a snapshot runs.
func (s *Snapshotter) progressLoop(ctx context.Context, every time.Duration) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	var lastAcked int64
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			s.mu.Lock()
			var cur Entry
			if len(s.queue) > 0 {
				cur = *s.queue[0]
			}
			queued, paused := len(s.queue), s.paused
			s.mu.Unlock()
			acked := s.stats.acked.Load()
			rate := float64(acked-lastAcked) / now.Sub(lastAt).Seconds()
			lastAcked, lastAt = acked, now
			if queued == 0 && rate == 0 {
				continue
			}
			ev := s.log.Info().Str("table", cur.Table).Int64("table_rows", cur.Rows).Int64("table_rows_estimate", cur.Estimate).
				Float64("rows_per_sec", rate).Int64("rows", acked).Int64("rows_read", s.stats.read.Load()).
				Int64("rows_dropped", s.stats.dropped.Load()).Int64("chunks", s.stats.chunks.Load()).Int64("chunks_reread", s.stats.rereads.Load()).
				Int("tables_queued", queued).Bool("paused", paused)
			if cur.Estimate > 0 && rate > 0 {
				ev = ev.Float64("table_eta_s", (time.Duration(float64(max(cur.Estimate-cur.Rows, 0))/rate) * time.Second).Round(time.Second).Seconds())
			}
			ev.Msg("incremental snapshot progress")
		}
	}
}

func (o Options) metricsChunk(read, published, dropped int64, reread bool) {
	if o.Metrics != nil {
		o.Metrics.IncrementalChunk(read, published, dropped, reread)
	}
}

func (o Options) metricsTable(table string, rows, estimate int64) {
	if o.Metrics != nil {
		o.Metrics.IncrementalTable(table, rows, estimate)
	}
}
