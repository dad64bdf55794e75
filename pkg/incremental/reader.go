package incremental

import (
	"context"
	"errors"
	"fmt"
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

// readLoop reads chunks while a table is queued and the snapshot not paused.
func (s *Snapshotter) readLoop(ctx context.Context) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	b := retry.New(200*time.Millisecond, 10*time.Second)
	var (
		tg      *target
		tgSeq   int64 = -1
		lower   []string
		redos   int
		warnAt  = 10
		started time.Time
	)
	for {
		cur, ok := s.current()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-s.wake:
			}
			continue
		}
		e := cur.e
		if cur.seq != tgSeq {
			tg, tgSeq, lower, redos, started = nil, cur.seq, cur.lastKey, 0, time.Now()
		}
		if conn == nil || conn.IsClosed() {
			c, err := pgsource.ConnectSQL(ctx, s.opts.ConnString)
			if err != nil {
				return nil // ctx ended (ConnectSQL retries transient failures)
			}
			conn = c
		}
		var err error
		if cur.state == stateQueued {
			tg, err = s.startTable(ctx, conn, e)
		} else {
			var v verdict
			var c *chunk
			v, c, err = s.window(ctx, conn, cur, &tg, lower)
			switch {
			case err != nil:
			case v.cancelled:
			case v.redo:
				s.stats.rereads.Add(1)
				if redos++; redos == warnAt {
					warnAt *= 10
					s.log.Warn().Str("table", cur.table).Int("attempts", redos).Uint32("xid", v.racer).
						Msg("a chunk keeps being read again: a transaction it did not see had already been streamed (or its key could not be read)")
				}
				if err := sleep(ctx, time.Duration(min(redos, 50))*10*time.Millisecond); err != nil {
					return nil
				}
			default:
				redos = 0
				s.stats.chunks.Add(1)
				s.opts.metricsChunk(int64(len(c.rows)), v.published, v.dropped, false)
				if c.last != nil {
					lower = c.last
				}
				res := chunkResult{e: e, seq: cur.seq, table: cur.table, last: lower, rows: v.published, txn: ack.TxnID(v.txn), final: c.short}
				select {
				case s.results <- res:
				case <-ctx.Done():
					return nil
				}
				if c.short {
					s.finishReading(e, started)
					tg = nil
				}
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
			if err := s.skip(ctx, e); err != nil && ctx.Err() == nil {
				return err
			}
			tg = nil
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
// the store once Kafka acknowledged that chunk).
func (s *Snapshotter) finishReading(e *Entry, started time.Time) {
	s.mu.Lock()
	if len(s.queue) > 0 && s.queue[0] == e {
		s.queue = s.queue[1:]
	}
	queued, paused := len(s.queue), s.paused
	s.mu.Unlock()
	s.opts.metricsState(queued, paused)
	s.log.Info().Str("table", e.Table).Float64("took_s", time.Since(started).Seconds()).Int("tables_queued", queued).
		Msg("incremental snapshot: the table's last chunk is read")
}

// skip removes e from the queue and the store.
func (s *Snapshotter) skip(ctx context.Context, e *Entry) error {
	if err := s.withStore(ctx, func(st *store) error { return st.remove(ctx, []int64{e.Seq}, -1) }); err != nil {
		return err
	}
	s.finishReading(e, time.Now())
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

// window reads one chunk of e's table from lower (exclusive; nil: the start) between a low and a
// high watermark and waits for the pipeline's verdict.
func (s *Snapshotter) window(ctx context.Context, conn *pgx.Conn, cur entryView, tgp **target, lower []string) (verdict, *chunk, error) {
	e := cur.e
	keyNames := []string(nil)
	if *tgp != nil {
		keyNames = (*tgp).keyNames
	} else {
		// The table's description (and its de-duplication key) is read in the chunk's snapshot;
		// the key names must be known before the low watermark: read them first.
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return verdict{}, nil, err
		}
		tg, err := s.describe(ctx, tx, e)
		_ = tx.Rollback(context.Background())
		if err != nil {
			return verdict{}, nil, err
		}
		*tgp, keyNames = tg, tg.keyNames
	}
	id := s.runID + "-" + strconv.FormatInt(s.windows.Add(1), 10)
	w := &window{id: id, table: cur.table, keyNames: keyNames}
	s.pipe.register(w)
	if err := emitWatermark(ctx, conn, markOpen+id); err != nil {
		s.pipe.drop(id)
		return verdict{}, nil, err
	}
	c, err := s.readChunk(ctx, conn, cur, tgp, lower)
	if err != nil {
		s.pipe.drop(id)
		return verdict{}, nil, err
	}
	if !equalNames((*tgp).keyNames, keyNames) { // the key changed meanwhile: read again with the new one
		s.pipe.drop(id)
		return verdict{redo: true}, nil, nil
	}
	s.pipe.attach(id, c)
	if err := emitWatermark(ctx, conn, markClose+id); err != nil {
		s.pipe.drop(id)
		return verdict{}, nil, err
	}
	s.stats.read.Add(int64(len(c.rows)))
	for {
		select {
		case <-ctx.Done():
			return verdict{}, nil, ctx.Err()
		case v := <-s.verdicts:
			if v.id != id {
				continue // an earlier window's, given up
			}
			s.stats.published.Add(v.published)
			s.stats.dropped.Add(v.dropped)
			return v, c, nil
		}
	}
}

func equalNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// emitWatermark writes a watermark: a non-transactional logical decoding message, which the stream
// delivers at its WAL position, between the transactions committed before and after it.
func emitWatermark(ctx context.Context, conn *pgx.Conn, content string) error {
	_, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(false, $1, $2)`, WatermarkPrefix, content)
	if err != nil {
		return fmt.Errorf("incremental snapshot: write a watermark (pg_logical_emit_message): %w", err)
	}
	return nil
}

// readChunk reads the chunk after lower in one REPEATABLE READ transaction: the transaction's
// snapshot (pg_current_snapshot: which transactions it does not see), the description when the
// table changed since it was last read, and the rows.
func (s *Snapshotter) readChunk(ctx context.Context, conn *pgx.Conn, cur entryView, tgp **target, lower []string) (*chunk, error) {
	e := cur.e
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background())
	var snap string
	if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&snap); err != nil {
		return nil, fmt.Errorf("incremental snapshot: pg_current_snapshot(): %w", err)
	}
	running, err := parseSnapshot(snap)
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
	sql, args := chunkQuery(tg.t, lower, cur.maxKey, s.opts.ChunkRows)
	c := &chunk{rel: tg.rel, running: running}
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
	c.short = len(c.rows) < s.opts.ChunkRows
	if len(c.rows) > 0 {
		for _, v := range last {
			c.last = append(c.last, string(v))
		}
	}
	return c, nil
}

// chunkQuery returns the SELECT of the chunk after lower up to upper (the table's last key when
// it started), at most limit rows in key order: the published columns, then the chunk key's
// columns as text (the next lower bound). Bounds are compared in SQL (snapshot.KeyRange).
func chunkQuery(t *snapshot.Table, lower, upper []string, limit int) (string, [][]byte) {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = c.Name
	}
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = pgx.Identifier{k}.Sanitize() + "::text"
	}
	var args [][]byte
	where := snapshot.KeyRange(t, lower, upper, &args)
	return "SELECT " + snapshot.QuoteCols(cols) + ", " + strings.Join(keys, ", ") + " FROM " + t.From() + t.Where(where) +
		" ORDER BY " + snapshot.QuoteCols(t.Key) + " LIMIT " + strconv.Itoa(limit), args
}

// parseSnapshot returns the transactions a pg_current_snapshot() value "xmin:xmax:xip,..." lists
// as running (their 32-bit xids, as the stream carries them).
func parseSnapshot(s string) (map[uint32]bool, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("incremental snapshot: pg_current_snapshot() returned %q", s)
	}
	running := map[uint32]bool{}
	if parts[2] == "" {
		return running, nil
	}
	for _, x := range strings.Split(parts[2], ",") {
		v, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("incremental snapshot: pg_current_snapshot() returned %q: %w", s, err)
		}
		running[uint32(v)] = true
	}
	return running, nil
}

// recordLoop records each published chunk once Kafka acknowledged its rows, in order; a table's
// last chunk removes it from the store.
func (s *Snapshotter) recordLoop(ctx context.Context) error {
	t := s.opts.Tracker
	for {
		var r chunkResult
		select {
		case <-ctx.Done():
			return nil
		case r = <-s.results:
		}
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
