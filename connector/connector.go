package connector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/internal/metrics"
	"github.com/pgcdc/pgcdc/internal/spool"
	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/incremental"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/outbox"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/route"
	"github.com/pgcdc/pgcdc/pkg/slotrecord"
	"github.com/pgcdc/pgcdc/pkg/version"
)

// Connector streams one replication slot to Kafka.
type Connector struct {
	cfg     config.Config
	log     zerolog.Logger
	connStr string // with the password: never log it

	sql     *pgx.Conn // start-up: checks, publication, slot, snapshot decision; then the decoder's catalog
	info    pgsource.ServerInfo
	sink    *kafkasink.Sink
	tracker *ack.Tracker
	slot    pgsource.SlotInfo
	metrics *metrics.Metrics // nil: no metrics

	snap *snapshotRun // the snapshot start-up prepared (snapshot.go); nil: none

	tablesMu sync.Mutex
	tables   []pgsource.Table // captured tables (for the snapshot and the refresher)

	slotGuard *slotrecord.Guard // records each position before it is confirmed (slotsafety.go); nil: no record table
	noticed   map[string]bool   // warnings given once per process (guarded by tablesMu)
	// createdPublication: this start-up created the publication (undone if the start fails).
	createdPublication bool

	outbox *outbox.Router // outbox routing (outbox.go); nil: none

	shape *shaping // event shaping (shaping.go), shared by every router

	snapshotted bool // this run snapshotted every captured table (snapshot.go)
	incrMu      sync.Mutex
	incr        *incremental.Snapshotter // incremental snapshots (incremental.go); nil until streaming, or unavailable

	lease Lease // the slot's lease (ha.enabled; HoldWhile); nil: none
	lost  <-chan struct{}
}

// Lease is the right to stream the slot (a *lease.Lease).
type Lease interface {
	Lost() <-chan struct{} // closed once the lease is lost
	Err() error            // why it was lost
	Valid() error          // nil while the process can prove it still holds the lease
}

// HoldWhile makes Run depend on l (ha.enabled): once l is lost, Run stops hard and returns why
// (another process took over, so this one must not finish its transaction, wait for Kafka or
// confirm anything), and no batch is written to Kafka unless l.Valid() allows it at that moment.
// Call it before Run.
func (c *Connector) HoldWhile(l Lease) {
	c.lease, c.lost = l, l.Lost()
}

// New prepares a connector for cfg (which Load has validated). m receives its metrics; nil means none.
func New(cfg config.Config, log zerolog.Logger, m *metrics.Metrics) (*Connector, error) {
	connStr, err := cfg.Postgres.ConnString()
	if err != nil {
		return nil, err
	}
	c := &Connector{cfg: cfg, log: log, connStr: connStr, metrics: m}
	if c.shape, err = newShaping(cfg); err != nil { // shaping.go
		return nil, err
	}
	if c.outbox, err = newOutbox(cfg, c.eventOptions(), log); err != nil { // outbox.go
		return nil, err
	}
	return c, nil
}

// ErrShutdownTimeout ends a stop that could not finish within kafka.shutdown_timeout: events were
// still unacknowledged (a stalled broker, a transaction too large to finish in time). Nothing
// unacknowledged was confirmed; the next start sends it again.
var ErrShutdownTimeout = errors.New("shutdown timeout")

// Run streams until ctx ends or a failure no reconnect cures.
//
// When ctx ends, Run stops softly: it finishes the transaction being published, waits for Kafka
// to acknowledge everything in flight, confirms it and returns nil. The whole stop is bounded by
// kafka.shutdown_timeout; past it Run stops hard and returns an error wrapping ErrShutdownTimeout,
// having confirmed only what Kafka acknowledged. Any other error ends every stage at once and is
// returned.
func (c *Connector) Run(ctx context.Context) error {
	err := c.start(ctx)
	defer c.closeAll()
	if err != nil {
		if ctx.Err() != nil {
			c.log.Info().Err(err).Msg("stopped during start-up")
			return nil
		}
		return err
	}
	if stop, err := c.runSnapshot(ctx); stop || err != nil { // snapshot.go
		return err
	}
	return c.stream(ctx)
}

// stream runs the stages until a stop or an error: the stream (replication connection), the
// pipeline (decode → route → sink → tracker), and the periodic jobs, each on its goroutine, all
// ended by one context.
func (c *Connector) stream(soft context.Context) error {
	hard, stopAll := context.WithCancelCause(context.Background())
	defer stopAll(nil)
	g, gctx := errgroup.WithContext(hard)

	cat := &catalog{connStr: c.connStr, conn: c.sql, log: c.log}
	c.sql = nil // the catalog owns it now
	defer cat.close()
	var sp *spool.Spool
	if c.cfg.Postgres.Streaming {
		var err error
		if sp, err = spool.Open(c.cfg.Postgres.SpoolDir, int64(c.cfg.Postgres.SpoolMaxBytes)); err != nil {
			return fmt.Errorf("postgres.spool_dir: %w", err)
		}
		defer sp.Close()
	}
	router, err := route.New(c.routeOptions())
	if err != nil {
		return err
	}
	side, err := c.startIncremental(soft, c.snapshotted) // incremental.go
	if err != nil {
		return err
	}
	defer func() {
		c.incrMu.Lock()
		c.incr = nil
		c.incrMu.Unlock()
		if side.incr != nil {
			side.incr.Close()
		}
	}()
	src := pgsource.NewStream(c.streamOptions(), c.tracker)
	p := &pipeline{dec: decode.NewDecoder(decode.NewRelations(cat), sp), router: router, sink: c.sink, tracker: c.tracker,
		lastCommit: c.sessionLastCommit, side: side}
	if c.metrics != nil {
		p.onCommit = func(end pglogrepl.LSN, txn *decode.Txn) { c.metrics.Committed(uint64(end), txn.CommitTime) }
	}

	msgs := make(chan pgsource.Message, 256)
	g.Go(func() error { return src.Run(gctx, msgs) })
	g.Go(func() error {
		err := p.run(soft, gctx, msgs)
		if !errors.Is(err, errStopped) {
			return err
		}
		// A clean stop: nothing more is read; what is in flight is acknowledged, confirmed (the
		// stream sends the position as it moves), and then every stage ends.
		src.StopReading()
		if err := c.tracker.WaitIdle(gctx); err != nil {
			return err
		}
		stopAll(nil)
		return nil
	})
	g.Go(func() error { return c.stopDeadline(soft, gctx) })
	g.Go(func() error { return c.sinkFailure(gctx) })
	if c.lost != nil {
		g.Go(func() error {
			select {
			case <-gctx.Done():
				return nil
			case <-c.lost:
				return c.lease.Err()
			}
		})
	}
	c.runIncremental(g, gctx, side)
	c.periodicJobs(g, gctx, src)

	err = g.Wait()
	flush, _ := src.Confirmed()
	switch {
	case err == nil && soft.Err() != nil:
		c.log.Info().Str("confirmed_lsn", flush.String()).Msg("stopped cleanly")
	case errors.Is(err, ErrShutdownTimeout):
		st := c.tracker.Stats()
		err = fmt.Errorf("%w: kafka.shutdown_timeout (%s) passed with %d events (%d bytes) not yet acknowledged by Kafka: stopped without them; "+
			"the slot is confirmed at %s (what Kafka acknowledged), so the next start sends them again", err, c.cfg.Kafka.ShutdownTimeout, st.Events-st.Acked, c.sink.InFlight(), flush)
		c.metrics.Error(metrics.ErrFatal)
	case err != nil:
		c.metrics.Error(metrics.ErrFatal)
	}
	return err
}

// sessionLastCommit is source.sequence[0] of a stream session's first event. Debezium restores its
// last commit LSN (lsn_commit) from its offsets after a restart, so the first event after a restart
// carries the previous transaction's end; pgcdc's counterpart is where the session resumes: the
// slot's confirmed position, or the newer end of a transaction Kafka acknowledged (it differs only
// when idle keepalives moved the slot past the last commit). The first session on a slot this
// process created begins at the slot's consistent point and, as Debezium's first events after its
// initial snapshot, has none (null).
func (c *Connector) sessionLastCommit(start pglogrepl.LSN) pglogrepl.LSN {
	if c.slot.Created && start == c.slot.ConfirmedFlush {
		return 0
	}
	return start
}

// stopDeadline bounds a soft stop: kafka.shutdown_timeout after it began, it ends every stage.
func (c *Connector) stopDeadline(soft, run context.Context) error {
	select {
	case <-run.Done():
		return nil
	case <-soft.Done():
	}
	c.log.Info().Str("shutdown_timeout", c.cfg.Kafka.ShutdownTimeout.String()).
		Msg("stopping: finishing the current transaction and waiting for Kafka to acknowledge what is in flight")
	t := time.NewTimer(c.cfg.Kafka.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-run.Done():
		return nil
	case <-t.C:
		return ErrShutdownTimeout
	}
}

// sinkFailure ends the run when the sink fails permanently (a record Kafka never takes).
func (c *Connector) sinkFailure(run context.Context) error {
	select {
	case <-run.Done():
		return nil
	case <-c.sink.Err():
		return c.sink.FatalErr()
	}
}

// periodicJobs starts the jobs that run beside the stream, each on a connection of its own: the
// publication refresh (tables created later), the heartbeat (keeps the slot moving), the slot
// metrics and the progress log.
func (c *Connector) periodicJobs(g *errgroup.Group, ctx context.Context, src *pgsource.Stream) {
	job := func(name string, every time.Duration) pgsource.Periodic {
		return pgsource.Periodic{Name: name, ConnString: c.connStr, Interval: every, Log: c.log}
	}
	if every := c.cfg.Postgres.PublicationRefreshInterval; every > 0 {
		g.Go(func() error { return job("publication refresh", every).Run(ctx, c.refreshPublication) })
	}
	if every := c.cfg.Heartbeat.Interval; every > 0 {
		hb := job("heartbeat", every)
		hb.Timeout = 10 * time.Second
		g.Go(func() error { return hb.Run(ctx, c.heartbeat) })
	}
	if c.metrics != nil && c.cfg.Metrics.Enabled() {
		poll := job("slot metrics", c.cfg.Postgres.StatusInterval)
		poll.Immediate = true
		poll.OnError = func(error) {
			c.metrics.Error(metrics.ErrSlotPoll)
			c.metrics.SlotUnknown() // the slot series vanish rather than repeat stale values
		}
		g.Go(func() error { return poll.Run(ctx, c.pollSlot) })
	}
	if every := c.cfg.Log.ProgressInterval; every > 0 {
		g.Go(func() error { c.logProgress(ctx, every, src); return nil })
	}
}

// pollSlot reads the slot's server-side state (WAL end, confirmed flush, wal_status) for the metrics.
func (c *Connector) pollSlot(ctx context.Context, conn *pgx.Conn) error {
	st, err := pgsource.ReadSlotState(ctx, conn, c.cfg.Postgres.Slot)
	switch {
	case err == nil && st.Exists:
		c.metrics.SetSlot(metrics.Slot{ServerWALEnd: uint64(st.ServerWALEnd), ConfirmedFlush: uint64(st.ConfirmedFlush), RestartLSN: uint64(st.RestartLSN),
			WALStatus: st.WALStatus, SafeWALSize: st.SafeWALSize, Active: st.Active})
	case err == nil:
		c.metrics.SlotMissing()
	}
	return err
}

// logProgress logs a progress line every interval until ctx ends.
func (c *Connector) logProgress(ctx context.Context, every time.Duration, src *pgsource.Stream) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := c.tracker.Stats().Acked, time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st := c.tracker.Stats()
			flush, end := src.Confirmed()
			lag := int64(0)
			if end > flush {
				lag = int64(end - flush)
			}
			c.log.Info().Float64("events_per_sec", float64(st.Acked-last)/now.Sub(lastAt).Seconds()).Int64("events_acked", st.Acked).
				Str("confirmed_lsn", flush.String()).Int64("lag_bytes", lag).Int64("bytes_in_flight", c.sink.InFlight()).Msg("progress")
			last, lastAt = st.Acked, now
		}
	}
}

// capturable is the tables of selected that pgcdc can capture: when it manages the publication's
// tables, those it can add to it (syncPublication says why it leaves the others out).
func (c *Connector) capturable(selected []pgsource.Table) []pgsource.Table {
	if !c.cfg.Postgres.ManagesPublicationTables() {
		return selected
	}
	var out []pgsource.Table
	for _, t := range selected {
		if t.IdentityProblem() == "" {
			out = append(out, t)
		}
	}
	return out
}

// start checks the setup and prepares publication, topics and slot, bounded by the connect timeouts.
func (c *Connector) start(ctx context.Context) (err error) {
	pgCtx, cancel := context.WithTimeout(ctx, c.cfg.Postgres.ConnectTimeout)
	defer cancel()
	sql, err := pgsource.ConnectSQL(pgCtx, c.connStr)
	if err != nil {
		return fmt.Errorf("%w (dsn %s)", err, c.cfg.Postgres.RedactedDSN())
	}
	c.sql = sql
	if c.info, err = pgsource.CheckServer(pgCtx, sql); err != nil {
		return err
	}
	// What can be checked is checked before anything is created: the REPLICATION attribute, Kafka
	// answering. Then the topics are created first (the first thing a missing Kafka privilege
	// stops), then the publication, then the slot; a failure undoes what this start created, so a
	// failed start leaves nothing behind. (Kafka's CreateTopics with validateOnly would check the
	// topics without creating them, but kafka-go waits for the topics to appear after any
	// CreateTopics, which they never do then.)
	if err := pgsource.CheckReplicationRole(pgCtx, sql); err != nil {
		return err
	}
	if err := c.ensureSignalTable(pgCtx, sql); err != nil { // incremental.go
		return err
	}
	selected, err := pgsource.ListTables(pgCtx, sql, c.cfg.Tables.Matches)
	if err != nil {
		return err
	}
	if err := c.checkOutboxTables(c.capturable(selected)); err != nil { // outbox.go
		return err
	}
	c.tracker = ack.New(0)
	kctx, kcancel := context.WithTimeout(ctx, c.cfg.Kafka.ConnectTimeout)
	defer kcancel()
	c.sink, err = kafkasink.New(kctx, c.sinkOptions(), c.tracker)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.undoStart()
		}
	}()
	// The captured tables' topics, set up (described, created when missing) a few at a time:
	// one at a time, a database with a thousand new tables took minutes. kafka.connect_timeout
	// bounds each topic's set-up, not all of them.
	setup, sctx := errgroup.WithContext(ctx)
	setup.SetLimit(topicSetupConcurrency)
	for _, t := range c.capturable(selected) {
		if !c.publishesTableTopic(t) { // outbox.go: an outbox table's own topic only with raw_events
			continue
		}
		for _, topic := range c.topicsOf(t) {
			setup.Go(func() error {
				tctx, tcancel := context.WithTimeout(sctx, c.cfg.Kafka.ConnectTimeout)
				defer tcancel()
				return c.sink.EnsureTopic(tctx, topic)
			})
		}
	}
	if err := setup.Wait(); err != nil {
		return err
	}
	// postgres.connect_timeout bounds the PostgreSQL steps, not the topics' set-up before them:
	// the steps after it get a fresh bound (a thousand new topics took over a minute, and with
	// the first bound spent the start failed and undid itself, to fail the same way again).
	pgCtx, cancel = context.WithTimeout(ctx, c.cfg.Postgres.ConnectTimeout)
	defer cancel()
	tables, _, err := c.syncPublication(pgCtx, sql, true)
	if err != nil {
		return err
	}
	c.tables = tables
	tracker, sink := c.tracker, c.sink
	c.metrics.SetProbe(func() metrics.Probe {
		st := tracker.Stats()
		return metrics.Probe{InFlightEvents: st.Events - st.Acked, InFlightBytes: sink.InFlight(), Acked: st.Acked}
	})

	afterSlot, err := c.slotSafety(pgCtx) // slotsafety.go: the slot against pgcdc's record of it
	if err != nil {
		return err
	}
	repl, err := pgsource.ConnectReplication(pgCtx, c.connStr)
	if err != nil {
		return err
	}
	if err := c.ensureSlot(pgCtx, repl); err != nil { // snapshot.go: also prepares the snapshot
		return err
	}
	if err := afterSlot(pgCtx); err != nil {
		return err
	}
	c.tracker.Position(c.slot.ConfirmedFlush) // nothing is in flight yet

	names := make([]string, len(tables))
	topics := make([]string, len(tables))
	for i, t := range tables {
		names[i], topics[i] = t.String(), c.topicOf(t)
	}
	c.metrics.Tables(names)
	c.log.Info().
		Str("version", version.String()).
		Str("dsn", c.cfg.Postgres.RedactedDSN()).
		Str("database", c.info.Database).
		Str("slot", c.slot.Name).Bool("slot_created", c.slot.Created).
		Str("start_lsn", c.slot.ConfirmedFlush.String()).
		Str("publication", c.cfg.Postgres.Publication).
		Strs("tables", names).Strs("topics", topics).
		Strs("brokers", c.cfg.Kafka.Brokers).
		Bool("streaming", c.cfg.Postgres.Streaming).
		Msg("pgcdc starting")
	return nil
}

// topicSetupConcurrency is how many topics start-up sets up at once.
const topicSetupConcurrency = 8

// undoStart removes what a failed start-up created: the topics (they hold no record yet), the
// publication, the slot (nothing was confirmed on it).
func (c *Connector) undoStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var undone []string
	if c.sink != nil {
		for _, t := range c.sink.UndoCreatedTopics(ctx) {
			undone = append(undone, "topic "+t)
		}
	}
	if c.sql == nil || c.sql.IsClosed() {
		if len(undone) > 0 {
			c.log.Info().Strs("removed", undone).Msg("start-up failed: removed what it had created")
		}
		return
	}
	if c.slot.Created {
		c.closeSnapshot() // the exported snapshot's connection holds the slot's creation open
		if _, err := c.sql.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, c.slot.Name); err != nil {
			c.log.Warn().Err(err).Str("slot", c.slot.Name).Msg("start-up failed and the slot it created could not be dropped: drop it (pgcdc slot drop --confirm) or start again")
		} else {
			undone = append(undone, "slot "+c.slot.Name)
		}
	}
	if c.createdPublication {
		if _, err := c.sql.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{c.cfg.Postgres.Publication}.Sanitize()); err != nil {
			c.log.Warn().Err(err).Str("publication", c.cfg.Postgres.Publication).Msg("start-up failed and the publication it created could not be dropped")
		} else {
			undone = append(undone, "publication "+c.cfg.Postgres.Publication)
		}
	}
	if len(undone) > 0 {
		c.log.Info().Strs("removed", undone).Msg("start-up failed: removed what it had created")
	}
}

func (c *Connector) closeAll() {
	c.closeSnapshot()
	if c.sink != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.sink.Close(ctx); err != nil {
			c.log.Warn().Err(err).Msg("closing the Kafka producer")
		}
		cancel()
	}
	if c.sql != nil {
		c.sql.Close(context.Background())
	}
}

// topicOf is the data topic of a table, after the topic routers (shaping.go).
func (c *Connector) topicOf(t pgsource.Table) string {
	return route.RenameTopic(c.shape.steps, route.Topic(c.cfg.Kafka.TopicPrefix, t.Schema, t.Name))
}

// topicsOf are the topics t's changes go to: a partitioned table's are its leaf partitions'
// unless tables.publish_via_partition_root (a table without partitions yet has none).
func (c *Connector) topicsOf(t pgsource.Table) []string {
	if t.Leaves == nil || c.cfg.Tables.PublishViaPartitionRoot {
		return []string{c.topicOf(t)}
	}
	topics := make([]string, 0, len(t.Leaves))
	for _, leaf := range t.Leaves {
		if schema, name, ok := cut(leaf); ok {
			topics = append(topics, c.topicOf(pgsource.Table{Schema: schema, Name: name}))
		}
	}
	return topics
}

func (c *Connector) eventOptions() event.Options {
	e := c.cfg.Events
	return event.Options{
		TopicPrefix:        c.cfg.Kafka.TopicPrefix,
		Database:           c.info.Database,
		Version:            version.String(),
		KeySchemas:         e.KeySchemas,
		ValueSchemas:       e.ValueSchemas,
		UnavailableValue:   e.UnavailableValue,
		UnknownTypesAsText: e.UnknownTypes == "text",
		DecimalHandling:    e.DecimalHandling,
		TimePrecision:      e.TimePrecision,
		BinaryHandling:     e.BinaryHandling,
		IntervalHandling:   e.IntervalHandling,
		HstoreHandling:     e.HstoreHandling,

		SchemaNameAdjustment: e.SchemaNameAdjust,
		FieldNameAdjustment:  e.FieldNameAdjust,
	}
}

func (c *Connector) routeOptions() route.Options {
	e := c.cfg.Events
	o := route.Options{
		Event:                c.eventOptions(),
		TombstonesOnDelete:   e.TombstonesOnDelete,
		Truncate:             e.Truncate,
		Messages:             e.Messages,
		MessagePrefixInclude: e.MessagePrefixInclude,
		MessagePrefixExclude: e.MessagePrefixExclude,
		TransactionMetadata:  e.TransactionMetadata,
		HeartbeatTopic:       c.cfg.Heartbeat.Topic,
		Log:                  c.log,
	}
	c.shape.apply(&o) // shaping.go
	if c.metrics != nil {
		o.OnEvent = func(table string, op event.Op) { c.metrics.Event(table, byte(op)) }
	}
	if !c.cfg.Postgres.ManagesPublicationTables() {
		// The publication may carry tables "tables" does not select.
		o.Steps = append(o.Steps, &capturedOnly{tables: c.cfg.Tables})
	}
	if c.outbox != nil {
		o.Steps = append(o.Steps, c.outbox.Step())
	}
	return o
}

func (c *Connector) sinkOptions() kafkasink.Options {
	k := c.cfg.Kafka
	return kafkasink.Options{
		Brokers:           k.Brokers,
		ClientID:          k.ClientID,
		Security:          kafkaclient.SecurityFromConfig(k),
		Acks:              k.Acks,
		Compression:       k.Compression,
		BatchMaxMessages:  k.BatchMaxMessages,
		BatchMaxBytes:     int64(k.BatchMaxBytes),
		BatchTimeout:      k.BatchTimeout,
		WriteTimeout:      k.WriteTimeout,
		MaxInFlightBytes:  int64(k.MaxInFlightBytes),
		CreateTopics:      k.CreateTopics,
		Partitions:        k.Partitions,
		ReplicationFactor: k.ReplicationFactor,
		TopicConfig:       k.TopicConfig,
		Logger:            c.log,
		OnWrite:           c.metrics.KafkaWrite,
		TransactionalID:   c.transactionalID(),
		MayWrite:          c.mayWrite(),
	}
}

// mayWrite is the sink's check before each write: the lease still held (ha.enabled); nil without.
func (c *Connector) mayWrite() func() error {
	if c.lease == nil {
		return nil
	}
	return c.lease.Valid
}

// transactionalID is the Kafka transactional id whose producer epoch fences a previous active
// process (ha.enabled); "" without high availability.
func (c *Connector) transactionalID() string {
	if !c.cfg.HA.Enabled {
		return ""
	}
	return c.cfg.KafkaTransactionalID()
}

func (c *Connector) streamOptions() pgsource.StreamOptions {
	pg := c.cfg.Postgres
	o := pgsource.StreamOptions{
		ConnString:       c.connStr,
		Slot:             pg.Slot,
		Publication:      pg.Publication,
		Database:         c.info.Database,
		Protocol2:        pg.Streaming,
		StatusInterval:   pg.StatusInterval,
		WALSenderTimeout: c.info.WALSenderTimeout,
		ConnectTimeout:   pg.ConnectTimeout,
		Log:              c.log,
	}
	if g := c.slotGuard; g != nil { // the position is recorded before it is confirmed
		o.BeforeConfirm = func(ctx context.Context, conn *pgx.Conn, flush pglogrepl.LSN) (pglogrepl.LSN, error) {
			return g.Before(ctx, conn, flush)
		}
	}
	if m := c.metrics; m != nil {
		o.OnStreaming = m.Streaming
		o.OnStatus = func(flush, serverEnd pglogrepl.LSN) { m.Confirmed(uint64(flush), uint64(serverEnd)) }
		o.OnReconnect = func(error) {
			m.Error(metrics.ErrReplicationStream)
			m.Reconnect()
		}
	}
	return o
}
