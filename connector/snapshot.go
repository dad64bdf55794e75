package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/internal/metrics"
	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/route"
	"github.com/pgcdc/pgcdc/pkg/snapshot"
)

// snapshotRun is a snapshot decided at start-up; Run performs it before streaming.
type snapshotRun struct {
	session *snapshot.Session
	resume  []*snapshot.Chunk // the recorded plan of an interrupted snapshot; nil: plan now
}

// ensureSlot decides whether a snapshot is due (snapshot.mode, the progress table, the slot),
// records the decision before the slot is created, ensures the slot (with an exported snapshot
// when it is created for a snapshot) and puts the snapshot's readers into that snapshot before
// the replication connection that exported it is closed.
func (c *Connector) ensureSlot(ctx context.Context, repl *pgconn.PgConn) error {
	defer repl.Close(context.Background())
	sc, pg := c.cfg.Snapshot, c.cfg.Postgres
	var err error
	if sc.Mode == config.SnapshotNoData {
		c.slot, err = pgsource.EnsureSlotWith(ctx, c.sql, repl, pg.Slot, c.info.Database, pgsource.SlotOptions{Create: pg.CreateSlot, Failover: pg.FailoverSlot})
		return err
	}
	store, err := snapshot.OpenStore(ctx, c.sql, sc.ProgressSchema)
	if err != nil {
		return err
	}
	st, err := store.Load(ctx, pg.Slot)
	if err != nil {
		return err
	}
	slot, err := pgsource.ReadSlot(ctx, c.sql, pg.Slot)
	missing := errors.Is(err, pgsource.ErrSlotMissing)
	if err != nil && !missing {
		return err
	}
	need := st.Status != snapshot.StateDone
	switch sc.Mode {
	case config.SnapshotAlways:
		need = true
	case config.SnapshotWhenNeeded:
		if !missing && slot.WALStatus == "lost" {
			c.log.Warn().Str("slot", pg.Slot).Msg("snapshot.mode when_needed: the slot is invalidated (wal_status = lost); dropping it, creating it again and snapshotting the tables again")
			if _, err := c.sql.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, pg.Slot); err != nil {
				return fmt.Errorf("postgres: drop the invalidated slot %q: %w", pg.Slot, err)
			}
			missing = true
		}
		need = need || missing
	default: // initial, initial_only
		if missing && !need && pg.CreateSlot {
			return fmt.Errorf("postgres: replication slot %q does not exist, but its snapshot is recorded as done in %s.%s: a new slot would silently miss the changes made since the old one went away. "+
				"Set snapshot.mode: when_needed to create the slot and snapshot the tables again, or delete the slot's rows from that table to start without a snapshot",
				pg.Slot, sc.ProgressSchema, snapshot.TableName)
		}
	}
	var resume []*snapshot.Chunk
	if need && !missing && st.Status == snapshot.StateRunning && st.StartLSN == slot.ConfirmedFlush && len(st.Chunks) > 0 {
		resume = st.Chunks
	} else if need {
		if st.Status == snapshot.StateRunning {
			c.log.Warn().Str("slot", pg.Slot).Msg("the interrupted snapshot cannot be resumed (the slot was recreated or moved): starting it over")
		}
		if err := store.Begin(ctx, pg.Slot); err != nil {
			return fmt.Errorf("snapshot: record the start in %s.%s: %w", sc.ProgressSchema, snapshot.TableName, err)
		}
	}
	c.slot, err = pgsource.EnsureSlotWith(ctx, c.sql, repl, pg.Slot, c.info.Database, pgsource.SlotOptions{Create: pg.CreateSlot, Export: need && missing, Failover: pg.FailoverSlot})
	if err != nil || !need {
		return err
	}
	connect := func(ctx context.Context) (*pgx.Conn, error) { return pgsource.ConnectSQL(ctx, c.connStr) }
	sess, err := snapshot.Open(ctx, connect, c.slot.SnapshotName, sc.Workers, c.slot.ConfirmedFlush)
	if err != nil {
		return err
	}
	c.snap = &snapshotRun{session: sess, resume: resume}
	return nil
}

// closeSnapshot releases a snapshot that start-up prepared but Run did not perform.
func (c *Connector) closeSnapshot() {
	if c.snap != nil {
		c.snap.session.Close()
		c.snap = nil
	}
}

// chunkRead is a chunk whose rows were all handed to the sink as tracker transaction txn.
type chunkRead struct {
	chunk *snapshot.Chunk
	txn   ack.TxnID
	rows  int64
}

// runSnapshot performs the snapshot start-up decided on, before streaming starts: the slot is
// therefore never confirmed past its start until every snapshot record is acknowledged. stop
// says Run must return now (initial_only, a stop during the snapshot, or an error).
func (c *Connector) runSnapshot(ctx context.Context) (stop bool, err error) {
	initialOnly := c.cfg.Snapshot.Mode == config.SnapshotInitialOnly
	if c.snap == nil {
		if initialOnly {
			c.log.Info().Msg("snapshot.mode initial_only: the snapshot is done; exiting without streaming")
		}
		return initialOnly, nil
	}
	run := c.snap
	defer c.closeSnapshot()
	defer func() {
		if err != nil && ctx.Err() != nil {
			c.log.Info().Err(err).Msg("stopped while preparing the snapshot: the next start does it")
			err = nil
		}
	}()
	sc, slotName := c.cfg.Snapshot, c.cfg.Postgres.Slot
	sess := run.session
	coord := sess.Coordinator()

	c.tablesMu.Lock()
	captured := append([]pgsource.Table(nil), c.tables...)
	c.tablesMu.Unlock()
	// Debezium's snapshot order (and so its first/last markers): tables.include order, then name
	slices.SortStableFunc(captured, func(a, b pgsource.Table) int {
		return c.cfg.Tables.IncludeIndex(a.Schema, a.Name) - c.cfg.Tables.IncludeIndex(b.Schema, b.Name)
	})
	tables, relations, err := c.describeSnapshot(ctx, coord, captured, nil)
	if err != nil {
		return true, err
	}

	store, err := snapshot.OpenStore(ctx, c.sql, sc.ProgressSchema)
	if err != nil {
		return true, err
	}
	chunks := run.resume
	if chunks == nil {
		var perTable [][]*snapshot.Chunk
		var empty []bool
		for _, t := range captured {
			ch, e, err := snapshot.PlanTable(ctx, coord, tables[t.String()], int64(sc.ChunkRows))
			if err != nil {
				return true, err
			}
			perTable, empty = append(perTable, ch), append(empty, e)
		}
		chunks = snapshot.MarkPlan(perTable, empty)
		if err := store.SavePlan(ctx, slotName, chunks, c.slot.ConfirmedFlush); err != nil {
			return true, err
		}
	} else {
		kept := chunks[:0]
		for _, ch := range chunks {
			if tables[ch.Table] == nil {
				c.log.Warn().Str("table", ch.Table).Msg("snapshot: table of the interrupted snapshot is no longer captured; skipping its chunks")
				continue
			}
			kept = append(kept, ch)
		}
		chunks = kept
	}
	progress := snapshot.NewProgress(chunks)
	first := progress.Report(time.Now())
	c.log.Info().Str("mode", sc.Mode).Bool("exported_snapshot", sess.Exported).Bool("resumed", run.resume != nil).
		Int("tables", len(captured)).Int("chunks", first.ChunksTotal).Int("chunks_done", first.ChunksDone).
		Int64("rows_estimate", first.Estimate).Int("workers", sc.Workers).
		Str("snapshot_lsn", pglogrepl.LSN(sess.LSN).String()).Uint32("snapshot_txid", sess.TxID).
		Str("slot_lsn", c.slot.ConfirmedFlush.String()).Msg("snapshot starting")

	recConn, err := pgsource.ConnectSQL(ctx, c.connStr)
	if err != nil {
		return true, err
	}
	defer recConn.Close(context.Background())
	recStore, err := snapshot.OpenStore(ctx, recConn, sc.ProgressSchema)
	if err != nil {
		return true, err
	}
	reads := make(chan chunkRead, len(chunks)+1)
	quit := make(chan struct{})
	recorded := make(chan error, 1)
	perTable := newTableProgress(chunks, c.metrics)
	go func() { recorded <- c.recordChunks(recStore, slotName, reads, quit, progress, perTable) }()

	h := &snapshotHandler{c: c, sess: sess, relations: relations, reads: reads, workers: make([]snapshotWorker, sc.Workers)}
	ro := c.routeOptions()
	ro.Event.Snapshot = true // Debezium reads snapshot rows through JDBC (event.Options.Snapshot)
	for i := range h.workers {
		if h.workers[i].router, err = route.New(ro); err != nil {
			return true, err
		}
	}
	runErr := sess.Run(ctx, tables, chunks, h, snapshot.RunOptions{MaxRowsPerSec: sc.MaxRowsPerSec, Progress: progress})
	close(reads)
	drainErr := c.drainSnapshot(ctx, runErr)
	close(quit)
	recErr := <-recorded
	rep := progress.Report(time.Now())
	switch {
	case ctx.Err() != nil:
		c.log.Info().Int("chunks_done", rep.ChunksDone).Int("chunks", rep.ChunksTotal).Err(drainErr).
			Msg("stopped during the snapshot: the next start resumes it after the chunks Kafka acknowledged")
		return true, nil
	case runErr != nil:
		return true, runErr
	case drainErr != nil:
		return true, drainErr
	case recErr != nil:
		return true, recErr
	}
	var total int64
	for _, ch := range chunks {
		total += ch.Rows
	}
	if err := store.Finish(ctx, slotName, total); err != nil {
		return true, err
	}
	c.snapshotted = true
	c.log.Info().Int64("rows", rep.Rows).Int("chunks", rep.ChunksTotal).Float64("took_s", rep.Elapsed.Seconds()).
		Float64("rows_per_sec", rep.RowsPerSec).Msg("snapshot completed")
	if initialOnly {
		c.log.Info().Msg("snapshot.mode initial_only: exiting without streaming (the slot stays at the snapshot's start)")
		return true, nil
	}
	return false, nil
}

// describeSnapshot describes tables for a snapshot in q's snapshot, each read where filters[name]
// holds (nil: every row).
func (c *Connector) describeSnapshot(ctx context.Context, q snapshot.Querier, tables []pgsource.Table, filters map[string]string) (map[string]*snapshot.Table, map[string]*decode.Relation, error) {
	described := map[string]*snapshot.Table{}
	relations := map[string]*decode.Relation{}
	for _, t := range tables {
		st, err := snapshot.Describe(ctx, q, t.Schema, t.Name, c.cfg.Postgres.Publication, c.info.Version)
		if err != nil {
			return nil, nil, err
		}
		st.Filter = filters[st.String()]
		rel, err := snapshot.Relation(ctx, q, st)
		if err != nil {
			return nil, nil, err
		}
		described[st.String()], relations[st.String()] = st, rel
	}
	return described, relations, nil
}

// drainSnapshot waits for Kafka to acknowledge every snapshot record: without bound while running
// (a stalled broker holds the snapshot as it would hold the stream), up to kafka.shutdown_timeout
// on a stop.
func (c *Connector) drainSnapshot(ctx context.Context, runErr error) error {
	if runErr != nil && ctx.Err() == nil {
		return nil // an error ends the process; what is acknowledged meanwhile is recorded anyway
	}
	if ctx.Err() == nil {
		if err := c.sink.Drain(ctx); err == nil || ctx.Err() == nil {
			return err
		}
	}
	dctx, cancel := context.WithTimeout(context.Background(), c.cfg.Kafka.ShutdownTimeout)
	defer cancel()
	return c.sink.Drain(dctx)
}

// recordChunks writes each chunk as done to the progress table once Kafka acknowledged all its
// records (woken by the tracker), and logs progress. It returns when reads is closed and every
// chunk is recorded, or after a last pass once quit is closed.
func (c *Connector) recordChunks(store *snapshot.Store, slot string, reads <-chan chunkRead, quit <-chan struct{}, p *snapshot.Progress, perTable *tableProgress) error {
	every := c.cfg.Log.ProgressInterval
	var logTick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		logTick = t.C
	}
	var pending []chunkRead
	var firstErr error
	quitting := false
	for {
		acked := c.tracker.Changed()
		kept := pending[:0]
		for _, r := range pending {
			if !c.tracker.Acked(r.txn) {
				kept = append(kept, r)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := store.MarkDone(ctx, slot, r.chunk, r.rows)
			cancel()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			r.chunk.Done, r.chunk.Rows = true, r.rows
			p.ChunkDone()
			perTable.done(r.chunk)
		}
		pending = kept
		if (reads == nil && len(pending) == 0) || quitting {
			return firstErr
		}
		select {
		case r, ok := <-reads:
			if !ok {
				reads = nil
			} else {
				pending = append(pending, r)
			}
		case <-acked:
		case <-quit:
			quit, quitting = nil, true
			// reads is closed before quit: chunks still buffered in it get their last pass too
			// (otherwise the snapshot is recorded done with chunks not marked).
			if reads != nil {
				for r := range reads {
					pending = append(pending, r)
				}
				reads = nil
			}
		case now := <-logTick:
			r := p.Report(now)
			ev := c.log.Info().Int64("rows", r.Rows).Int64("rows_estimate", r.Estimate).Float64("rows_per_sec", r.RowsPerSec).
				Int("chunks_done", r.ChunksDone).Int("chunks", r.ChunksTotal).Int64("bytes_in_flight", c.sink.InFlight())
			if r.ETA >= 0 {
				ev = ev.Float64("eta_s", r.ETA.Round(time.Second).Seconds())
			}
			ev.Msg("snapshot progress")
		}
	}
}

// tableProgress feeds the per-table snapshot metrics: rows acknowledged against the rows expected
// (the estimate of each chunk until it is done, then its real count).
type tableProgress struct {
	m           *metrics.Metrics
	rows, total map[string]int64
}

func newTableProgress(chunks []*snapshot.Chunk, m *metrics.Metrics) *tableProgress {
	tp := &tableProgress{m: m, rows: map[string]int64{}, total: map[string]int64{}}
	for _, ch := range chunks {
		if ch.Done {
			tp.rows[ch.Table] += ch.Rows
			tp.total[ch.Table] += ch.Rows
		} else {
			tp.total[ch.Table] += ch.Estimate
		}
	}
	for t := range tp.total {
		m.SnapshotProgress(t, tp.rows[t], tp.total[t])
	}
	return tp
}

func (tp *tableProgress) done(ch *snapshot.Chunk) {
	tp.rows[ch.Table] += ch.Rows
	tp.total[ch.Table] += ch.Rows - ch.Estimate
	tp.m.SnapshotProgress(ch.Table, tp.rows[ch.Table], max(tp.total[ch.Table], tp.rows[ch.Table]))
}

// snapshotHandler turns snapshot rows into op "r" records through the route stage, the sink and
// the tracker, as streamed changes go.
type snapshotHandler struct {
	c         *Connector
	sess      *snapshot.Session
	relations map[string]*decode.Relation
	reads     chan<- chunkRead
	workers   []snapshotWorker
}

// snapshotWorker is one worker's state (used by that worker's goroutine only).
type snapshotWorker struct {
	router *route.Router
	row    []event.Datum
	txn    ack.TxnID
}

// ChunkStart registers the chunk as a transaction with the tracker: it commits at the slot's
// start position, so it never moves the confirmable LSN, and Acked tells when Kafka holds it.
func (h *snapshotHandler) ChunkStart(w int, _ *snapshot.Chunk) error {
	h.workers[w].txn = h.c.tracker.Begin()
	return nil
}

func (h *snapshotHandler) ChunkEnd(w int, ch *snapshot.Chunk, rows int64) error {
	h.c.tracker.Commit(h.workers[w].txn, h.c.slot.ConfirmedFlush)
	if h.reads != nil {
		h.reads <- chunkRead{chunk: ch, txn: h.workers[w].txn, rows: rows}
	}
	return nil
}

func (h *snapshotHandler) Row(ctx context.Context, wi int, t *snapshot.Table, ch *snapshot.Chunk, n int64, values [][]byte, marker string) error {
	w := &h.workers[wi]
	w.row = event.TextDatums(w.row[:0], values)
	src := event.Source{CommitTime: h.sess.Time, Snapshot: marker, TxID: h.sess.TxID, LSN: uint64(h.sess.LSN)}
	// The position header makes (source.lsn, pgcdc.position) unique within the snapshot.
	pos := int64(ch.Ordinal)<<32 | n
	return w.router.Snapshot(h.relations[t.String()], w.row, src, pos, func(rec kafkasink.Record) error {
		rec.Txn = w.txn
		h.c.tracker.Add(w.txn, 1)
		return h.c.sink.Append(ctx, rec)
	})
}
