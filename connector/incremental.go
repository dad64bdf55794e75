package connector

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/incremental"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/route"
	"github.com/pgcdc/pgcdc/pkg/signal"
	"github.com/pgcdc/pgcdc/pkg/snapshot"
)

// RequestSnapshot queues an incremental snapshot of tables (schema.table, captured), each read
// where filters[table] holds when set: their existing rows are published as op "r" events with
// source.snapshot "incremental" while the stream goes on. It returns once the request is recorded
// (it survives a restart), or an error when incremental snapshots are unavailable (the progress
// table cannot be used) or a table is not captured. Safe to call from any goroutine while Run
// streams; the publication refresher calls it for the tables that join the capture.
func (c *Connector) RequestSnapshot(ctx context.Context, tables []string, filters map[string]string) error {
	c.incrMu.Lock()
	incr := c.incr
	c.incrMu.Unlock()
	if incr == nil {
		return errors.New("incremental snapshots are not available: pgcdc is not streaming, or its progress table cannot be used (see the start-up log)")
	}
	return incr.Request(ctx, tables, filters)
}

// capturedNames returns the captured tables' names.
func (c *Connector) capturedNames() []string {
	c.tablesMu.Lock()
	defer c.tablesMu.Unlock()
	out := make([]string, 0, len(c.tables))
	for _, t := range c.tables {
		out = append(out, t.String())
		out = append(out, t.Leaves...) // a partition of a captured table is captured (its snapshot: an attached partition's rows)
	}
	return out
}

// startIncremental prepares the incremental snapshots and the signals before the stream starts:
// the snapshotter (its progress table, a snapshot a stop interrupted), the backfill of tables
// captured since the last run, and the pipeline's side channel. Without signals configured, a
// progress table pgcdc cannot use only disables incremental snapshots (logged).
func (c *Connector) startIncremental(ctx context.Context, snapshotted bool) (*sidecar, error) {
	sc := &sidecar{c: c, tasks: make(chan func(context.Context) error)}
	if c.cfg.Signal.Table != "" {
		sc.signalTable = c.cfg.Signal.Table
	}
	o := c.routeOptions()
	opts := incremental.Options{
		ConnString: c.connStr, Slot: c.cfg.Postgres.Slot, ProgressSchema: c.cfg.Snapshot.ProgressSchema,
		Publication: c.cfg.Postgres.Publication, ServerVersion: c.info.Version, ChunkRows: c.cfg.Snapshot.IncrementalChunkRows, MaxRowsPerSec: c.cfg.Snapshot.MaxRowsPerSec,
		Tracker: c.tracker, Route: o, Captured: c.capturedNames, ProgressInterval: c.cfg.Log.ProgressInterval, Log: c.log,
		InFlight: c.sink.InFlight, MaxInFlight: int64(c.cfg.Kafka.MaxInFlightBytes),
	}
	if c.metrics != nil {
		opts.Metrics = c.metrics
	}
	incr, err := incremental.New(ctx, opts)
	if err != nil {
		if c.cfg.Signal.Table != "" || c.cfg.Signal.KafkaTopic != "" {
			return nil, fmt.Errorf("signals are configured (signal.table, signal.kafka_topic) but incremental snapshots cannot keep their progress: %w", err)
		}
		c.log.Warn().Err(err).Msg("incremental snapshots are not available (nor the backfill of tables captured later)")
		return sc, nil
	}
	sc.incr = incr
	c.incrMu.Lock()
	c.incr = incr
	c.incrMu.Unlock()

	captured := c.capturedNames()
	known, recorded := incr.Known()
	switch {
	case snapshotted || !recorded:
		// Every captured table's rows are in the topics (this run's snapshot), or this slot's are
		// recorded for the first time: from now on, a table captured later is new.
		err = incr.SetKnown(ctx, captured)
	case c.cfg.Snapshot.BackfillNewTables:
		// Which tables' changes were not all published while pgcdc was stopped: none with a FOR ALL
		// TABLES publication (a table is in it from its CREATE); otherwise the captured tables whose
		// names are not among those whose rows the topics hold (a table about to be added to the
		// publication is taken off that list first: forgetJoining). A table renamed while pgcdc
		// was stopped is snapshotted under its new name (its new topic gets every row).
		allTables := c.cfg.Postgres.PublicationModeEffective() == config.PublicationAllTables
		c.tablesMu.Lock()
		var unknown []pgsource.Table
		for _, t := range c.tables {
			if !allTables && !slices.Contains(known, t.String()) {
				unknown = append(unknown, t)
			}
		}
		c.tablesMu.Unlock()
		if len(unknown) == 0 {
			err = incr.SetKnown(ctx, captured) // the names of this run, for the next
		}
		fresh := c.keyed(unknown)
		if len(fresh) > 0 {
			c.log.Info().Strs("tables", fresh).Msg("tables captured since the last run: snapshotting them incrementally (snapshot.backfill_new_tables)")
			err = incr.Request(ctx, fresh, nil)
		}
	}
	if err != nil {
		incr.Close()
		return nil, err
	}
	return sc, nil
}

// backfill queues an incremental snapshot of tables that joined the capture while pgcdc ran
// (joinTables; snapshot.backfill_new_tables): the rows they held before their changes were
// streamed; filters[table], when set, restricts a table's snapshot to some rows (an attached
// partition's, read through its root). Without incremental snapshots (their progress table cannot
// be used) it says so.
func (c *Connector) backfill(ctx context.Context, tables []pgsource.Table, filters map[string]string) error {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
	}
	if !c.cfg.Snapshot.BackfillNewTables {
		c.log.Info().Strs("tables", names).Msg("tables joined the capture; their rows from before the join are not snapshotted (snapshot.backfill_new_tables: false)")
		return nil
	}
	c.incrMu.Lock()
	incr := c.incr
	c.incrMu.Unlock()
	if incr == nil {
		c.log.Warn().Strs("tables", names).Msg("tables joined the capture; their rows from before the join are not snapshotted: incremental snapshots are not available (see the start-up log)")
		return nil
	}
	if names = c.keyed(tables); len(names) == 0 {
		return nil
	}
	c.log.Info().Strs("tables", names).Msg("tables joined the capture: snapshotting them incrementally (snapshot.backfill_new_tables)")
	return incr.Request(ctx, names, filters)
}

// forgetJoining takes tables that are about to be added to the publication off the tables whose
// rows the topics hold (snapshot.backfill_new_tables): a table dropped and created again under a
// known name is a new table. Should pgcdc stop between the addition and the request of their
// snapshot (joinTables at a refresh, startIncremental at start-up), the next start finds them
// unknown and snapshots them.
func (c *Connector) forgetJoining(ctx context.Context, conn *pgx.Conn, tables []pgsource.Table) error {
	if !c.cfg.Snapshot.BackfillNewTables {
		return nil
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
	}
	return incremental.ForgetKnown(ctx, conn, c.cfg.Snapshot.ProgressSchema, c.cfg.Postgres.Slot, names)
}

// keyed returns the names of tables that have a chunk key for an incremental snapshot (a primary
// key or replica identity index) and logs the others (REPLICA IDENTITY FULL without a key), whose
// rows only a signal naming a surrogate key can snapshot.
func (c *Connector) keyed(tables []pgsource.Table) []string {
	var names, keyless []string
	for _, t := range tables {
		if t.HasKey || t.HasIdentIdx {
			names = append(names, t.String())
		} else {
			keyless = append(keyless, t.String())
		}
	}
	if len(keyless) > 0 {
		c.log.Warn().Strs("tables", keyless).Msg("newly captured tables without a primary key (REPLICA IDENTITY FULL): their existing rows are not snapshotted incrementally; " +
			`send an execute-snapshot signal naming a unique, not-null column as "surrogate-key" to publish them (pgcdc snapshot --surrogate-key COL TABLE; docs/incremental.md)`)
	}
	return names
}

// markKnown records tables, which joined the capture with every row version streamed, among those
// whose rows the slot's topics hold, so that the next start does not backfill them.
func (c *Connector) markKnown(ctx context.Context, tables []string) error {
	c.incrMu.Lock()
	incr := c.incr
	c.incrMu.Unlock()
	if incr == nil {
		return nil
	}
	known, _ := incr.Known()
	for _, t := range tables {
		if !slices.Contains(known, t) {
			known = append(known, t)
		}
	}
	return incr.SetKnown(ctx, known)
}

// sidecar is the pipeline's side: the incremental snapshot's window (it sees the changes and the
// watermarks), the signal table's rows and the blocking snapshots signals ask for.
type sidecar struct {
	c           *Connector
	incr        *incremental.Snapshotter // nil: incremental snapshots unavailable
	signalTable string                   // schema.table; "" none
	pending     []signal.Signal          // signals of the transaction being decoded
	tasks       chan func(context.Context) error
}

// Change implements side.
func (s *sidecar) Change(hard, soft context.Context, ch *decode.Change, txn ack.TxnID, emit func(kafkasink.Record) error) (bool, error) {
	if s.incr != nil {
		s.incr.Observe(ch)
	}
	switch ch.Kind {
	case decode.KindMessage:
		if s.incr == nil {
			return ch.Message.Prefix != incremental.WatermarkPrefix, nil // an earlier run's watermark
		}
		handled, err := s.incr.Watermark(ch, txn, emit)
		return !handled, err
	case decode.KindBegin:
		s.pending = s.pending[:0]
	case decode.KindInsert, decode.KindUpdate, decode.KindDelete:
		if s.signalTable == "" || ch.Relation.Name != s.signalTable {
			return true, nil
		}
		if ch.Kind == decode.KindInsert {
			s.signalRow(ch)
		}
		return false, nil // the signal table's rows are never published
	case decode.KindCommit:
		pending := s.pending
		s.pending = nil
		if len(pending) == 0 {
			break
		}
		if s.incr != nil && s.incr.SourceActed(uint64(ch.LSN)) {
			s.c.log.Info().Str("commit_lsn", ch.LSN.String()).Int("signals", len(pending)).
				Msg("signals read again after a restart (the slot was not confirmed past them): acted on already, skipped")
			break
		}
		for _, sig := range pending {
			if err := s.act(hard, soft, sig); err != nil {
				return false, err
			}
		}
		if s.incr != nil {
			if err := s.incr.SourceDone(hard, uint64(ch.LSN)); err != nil {
				return false, err
			}
		}
	}
	return true, nil
}

// signalRow reads a signal from a row inserted into the signal table.
func (s *sidecar) signalRow(ch *decode.Change) {
	var id, typ string
	var data []byte
	for i, col := range ch.Relation.Table.Columns {
		if i >= len(ch.After) || ch.After[i].Kind != event.DatumText {
			continue
		}
		switch col.Name {
		case signal.ColumnID:
			id = string(ch.After[i].Text)
		case signal.ColumnType:
			typ = string(ch.After[i].Text)
		case signal.ColumnData:
			data = append([]byte(nil), ch.After[i].Text...)
		}
	}
	if signal.Ignored(typ) {
		return
	}
	sig, err := signal.FromRow(id, typ, data)
	if err != nil {
		s.c.log.Error().Err(err).Str("table", s.signalTable).Str("lsn", ch.LSN.String()).Msg("signal skipped")
		return
	}
	s.pending = append(s.pending, sig)
}

// act acts on one signal (on the pipeline goroutine).
func (s *sidecar) act(hard, soft context.Context, sig signal.Signal) error {
	if sig.Type == signal.TypeExecuteSnapshot && sig.Snapshot.Kind == signal.KindBlocking {
		return s.c.blockingSnapshot(soft, sig)
	}
	if s.incr == nil {
		s.c.log.Error().Str("signal", sig.ID).Str("type", sig.Type).Msg("signal skipped: incremental snapshots are not available (see the start-up log)")
		return nil
	}
	return s.incr.Signal(hard, sig)
}

// Tasks implements side.
func (s *sidecar) Tasks() <-chan func(context.Context) error { return s.tasks }

// runSignals reads the Kafka signal topic (signal.kafka_topic) until ctx ends. A blocking snapshot
// runs on the pipeline goroutine (the stream paused); the others act at once. A signal's offset is
// recorded with its effect: each is acted on once (twice at most, across a crash in between).
func (c *Connector) runSignals(ctx context.Context, sc *sidecar) error {
	kc, err := kafkaclient.New(ctx, kafkaclient.Settings{Brokers: c.cfg.Kafka.Brokers, ClientID: c.cfg.Kafka.ClientID, Security: kafkaclient.SecurityFromConfig(c.cfg.Kafka)})
	if err != nil {
		return err
	}
	ch := &signal.KafkaChannel{Client: kc, Topic: c.cfg.Signal.KafkaTopic, Key: c.cfg.Kafka.TopicPrefix,
		Create: c.cfg.Kafka.CreateTopics, ReplicationFactor: c.cfg.Kafka.ReplicationFactor, Log: c.log}
	return ch.Run(ctx, sc.incr.SignalOffset(), func(ctx context.Context, sig signal.Signal) error {
		if sig.Type != signal.TypeExecuteSnapshot || sig.Snapshot.Kind != signal.KindBlocking {
			return sc.incr.Signal(ctx, sig)
		}
		done := make(chan error, 1)
		task := func(soft context.Context) error {
			err := c.blockingSnapshot(soft, sig)
			done <- err
			return err
		}
		select {
		case sc.tasks <- task:
		case <-ctx.Done():
			return nil
		}
		select {
		case err := <-done:
			if err != nil {
				return nil // the pipeline returns it
			}
		case <-ctx.Done():
			return nil
		}
		return sc.incr.SignalDone(ctx, sig)
	})
}

// blockingSnapshot runs a blocking snapshot (execute-snapshot of type blocking) on the pipeline
// goroutine: the stream is paused (nothing more is read; status updates go on) while the tables
// are read in one fresh snapshot, as the initial snapshot reads them, their rows published as op
// "r" events with Debezium's snapshot markers. A soft stop ends it early with errStopped: the
// signal's transaction is then not confirmed, and the next start snapshots again.
func (c *Connector) blockingSnapshot(soft context.Context, sig signal.Signal) error {
	start := time.Now()
	var tables []pgsource.Table
	filters := map[string]string{}
	c.tablesMu.Lock()
	captured := append([]pgsource.Table(nil), c.tables...)
	c.tablesMu.Unlock()
	for _, t := range captured {
		if !matchesAny(sig.Snapshot.Collections, t.String()) {
			continue
		}
		tables = append(tables, t)
		for _, cond := range sig.Snapshot.Conditions {
			if re, err := regexp.Compile(`(?i)^(?:` + cond.Collection + `)$`); err == nil && re.MatchString(t.String()) {
				filters[t.String()] = cond.Filter
				break
			}
		}
	}
	if len(tables) == 0 {
		c.log.Warn().Str("signal", sig.ID).Strs("data_collections", sig.Snapshot.Collections).Msg("blocking snapshot: no captured table matches; nothing to do")
		return nil
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
	}
	c.log.Info().Str("signal", sig.ID).Str("channel", sig.Channel).Strs("tables", names).Msg("blocking snapshot: the stream is paused until it is done")
	err := c.readBlocking(soft, tables, filters)
	switch {
	case err != nil && soft.Err() != nil:
		c.log.Info().Err(err).Str("signal", sig.ID).Msg("stopped during a blocking snapshot: its signal is not confirmed, so the next start takes it again")
		return fmt.Errorf("blocking snapshot: %w", errStopped)
	case err != nil:
		return fmt.Errorf("blocking snapshot (signal %s): %w", sig.ID, err)
	}
	c.log.Info().Str("signal", sig.ID).Strs("tables", names).Float64("took_s", time.Since(start).Seconds()).Msg("blocking snapshot done: the stream goes on")
	return nil
}

// readBlocking reads tables (each where filters[name] holds) in a fresh snapshot through the
// initial snapshot's machinery, its rows handed to the sink as tracker transactions registered
// after the one being decoded (so nothing after it is confirmed before they are acknowledged).
func (c *Connector) readBlocking(ctx context.Context, tables []pgsource.Table, filters map[string]string) error {
	sc := c.cfg.Snapshot
	connect := func(ctx context.Context) (*pgx.Conn, error) { return pgsource.ConnectSQL(ctx, c.connStr) }
	sess, err := snapshot.Open(ctx, connect, "", sc.Workers, 0)
	if err != nil {
		return err
	}
	defer sess.Close()
	coord := sess.Coordinator()
	described, relations, err := c.describeSnapshot(ctx, coord, tables, filters)
	if err != nil {
		return err
	}
	var perTable [][]*snapshot.Chunk
	var empty []bool
	for _, t := range tables {
		ch, e, err := snapshot.PlanTable(ctx, coord, described[t.String()], int64(sc.ChunkRows))
		if err != nil {
			return err
		}
		perTable, empty = append(perTable, ch), append(empty, e)
	}
	chunks := snapshot.MarkPlan(perTable, empty)
	progress := snapshot.NewProgress(chunks)
	h := &snapshotHandler{c: c, sess: sess, relations: relations, workers: make([]snapshotWorker, sc.Workers)}
	for i := range h.workers {
		if h.workers[i].router, err = route.New(c.routeOptions()); err != nil {
			return err
		}
	}
	if err := sess.Run(ctx, described, chunks, h, snapshot.RunOptions{MaxRowsPerSec: sc.MaxRowsPerSec, Progress: progress}); err != nil {
		return err
	}
	rep := progress.Report(time.Now())
	c.log.Info().Int64("rows", rep.Rows).Int("chunks", rep.ChunksTotal).Float64("rows_per_sec", rep.RowsPerSec).Msg("blocking snapshot: every row read")
	return nil
}

// matchesAny reports whether name matches one of the regular expressions pats (whole name).
func matchesAny(pats []string, name string) bool {
	for _, p := range pats {
		if re, err := regexp.Compile(`^(?:` + p + `)$`); err == nil && re.MatchString(name) {
			return true
		}
	}
	return false
}

// ensureSignalTable creates the signal table (signal.table) when it does not exist; a role that
// may not gets the DDL for an administrator.
func (c *Connector) ensureSignalTable(ctx context.Context, conn *pgx.Conn) error {
	if c.cfg.Signal.Table == "" {
		return nil
	}
	schema, name := c.cfg.Signal.TableName()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{schema, name}.Sanitize()).Scan(&exists); err != nil {
		return fmt.Errorf("signal.table %s: %w", c.cfg.Signal.Table, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, signal.TableDDL(schema, name)); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P07" { // created meanwhile
			return nil
		}
		return fmt.Errorf("signal.table: cannot create %s: %w. Have an administrator create it (and let pgcdc's role read it):\n%s", c.cfg.Signal.Table, err, signal.TableDDL(schema, name))
	}
	c.log.Info().Str("table", c.cfg.Signal.Table).Msg("created the signal table")
	return nil
}

// runIncremental starts the snapshotter's reader and, when configured, the Kafka signal channel.
func (c *Connector) runIncremental(g *errgroup.Group, ctx context.Context, sc *sidecar) {
	if sc.incr == nil {
		return
	}
	g.Go(func() error { return sc.incr.Run(ctx) })
	if c.cfg.Signal.KafkaTopic != "" {
		g.Go(func() error { return c.runSignals(ctx, sc) })
	}
}
