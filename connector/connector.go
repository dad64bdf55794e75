package connector

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/internal/metrics"
	"github.com/pgcdc/pgcdc/internal/spool"
	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/version"
)

// Connector streams one replication slot to Kafka.
type Connector struct {
	cfg     config.Config
	log     zerolog.Logger
	connStr string // with the password: never log it

	sql     *pgx.Conn // catalog queries, slot and publication management (stream goroutine only)
	info    pgsource.ServerInfo
	sink    *kafkasink.Sink
	tracker *ack.Tracker
	spool   *spool.Spool
	rels    *decode.Relations
	slot    pgsource.SlotInfo

	meta      *event.MetaEncoder // logical decoding messages and transaction metadata
	msgFilter messageFilter

	metrics *metrics.Metrics // nil: no metrics

	cancel context.CancelCauseFunc // ends Run's context; see abort

	snap *snapshotRun // the snapshot start-up prepared (snapshot.go); nil: none

	tablesMu sync.Mutex
	tables   []pgsource.Table // captured tables (for the start-up summary and the refresher)
}

// New prepares a connector for cfg (which Load has validated). m receives its metrics; nil means none.
func New(cfg config.Config, log zerolog.Logger, m *metrics.Metrics) (*Connector, error) {
	connStr, err := cfg.Postgres.ConnString()
	if err != nil {
		return nil, err
	}
	return &Connector{cfg: cfg, log: log, connStr: connStr, metrics: m}, nil
}

// Run streams until ctx is cancelled (clean stop: returns nil) or a permanent error occurs.
func (c *Connector) Run(ctx context.Context) (err error) {
	ctx, c.cancel = context.WithCancelCause(ctx)
	defer c.cancel(nil)
	if err := c.start(ctx); err != nil {
		c.closeAll()
		return err
	}
	defer c.closeAll()

	// The publication refresher adds tables created later and the heartbeat writer keeps the slot
	// moving; each has its own connection and is waited for before Run returns.
	var wg sync.WaitGroup
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	defer func() { stopRefresh(); wg.Wait() }()
	if c.cfg.Postgres.PublicationRefreshInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.refreshPublication(refreshCtx)
		}()
	}
	if c.cfg.Heartbeat.Interval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.heartbeats(refreshCtx)
		}()
	}
	if stop, err := c.runSnapshot(ctx); stop || err != nil { // snapshot.go
		return err
	}
	return c.streamWithReconnect(ctx)
}

// start checks the setup and prepares publication, topics and slot, bounded by the connect timeouts.
func (c *Connector) start(ctx context.Context) error {
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
	tables, err := c.syncPublication(pgCtx, sql, true)
	if err != nil {
		return err
	}
	c.tables = tables

	c.tracker = ack.New(0)
	kctx, kcancel := context.WithTimeout(ctx, c.cfg.Kafka.ConnectTimeout)
	defer kcancel()
	c.sink, err = kafkasink.New(kctx, c.sinkOptions(), c.tracker)
	if err != nil {
		return err
	}
	tracker, sink := c.tracker, c.sink
	c.metrics.SetProbe(func() metrics.Probe {
		st := tracker.Stats()
		return metrics.Probe{InFlightEvents: st.Events - st.Acked, InFlightBytes: sink.InFlight(), Acked: st.Acked}
	})
	for _, t := range tables {
		if err := c.sink.EnsureTopic(kctx, c.topicOf(t.Schema, t.Name)); err != nil {
			return err
		}
	}

	repl, err := pgsource.ConnectReplication(pgCtx, c.connStr)
	if err != nil {
		return err
	}
	if err := c.ensureSlot(pgCtx, repl); err != nil { // snapshot.go: also prepares the snapshot
		return err
	}
	c.tracker.ConfirmIdle(ack.LSN(c.slot.ConfirmedFlush)) // nothing is in flight yet

	if c.cfg.Postgres.Streaming {
		if c.spool, err = spool.Open(c.cfg.Postgres.SpoolDir, int64(c.cfg.Postgres.SpoolMaxBytes)); err != nil {
			return fmt.Errorf("postgres.spool_dir: %w", err)
		}
	}
	c.rels = decode.NewRelations(decode.PGCatalog{Conn: sql}, c.eventOptions())
	if c.meta, err = event.NewMetaEncoder(c.eventOptions()); err != nil {
		return err
	}
	ev := c.cfg.Events
	if c.msgFilter, err = newMessageFilter(ev.Messages, ev.MessagePrefixInclude, ev.MessagePrefixExclude); err != nil {
		return err
	}

	names := make([]string, len(tables))
	topics := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
		topics[i] = c.topicOf(t.Schema, t.Name)
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

func (c *Connector) closeAll() {
	c.closeSnapshot()
	if c.sink != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.sink.Close(ctx); err != nil {
			c.log.Warn().Err(err).Msg("closing the Kafka writer")
		}
		cancel()
	}
	if c.spool != nil {
		_ = c.spool.Close()
	}
	if c.sql != nil {
		c.sql.Close(context.Background())
	}
}

// topicOf is the data topic of a table: <prefix>.<schema>.<table>, sanitized as Debezium does.
func (c *Connector) topicOf(schema, table string) string {
	return event.SanitizeTopic(c.cfg.Kafka.TopicPrefix + "." + schema + "." + table)
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

func (c *Connector) sinkOptions() kafkasink.Options {
	k := c.cfg.Kafka
	acks := map[string]kafka.RequiredAcks{"all": kafka.RequireAll, "one": kafka.RequireOne, "none": kafka.RequireNone}[k.Acks]
	codec := map[string]compress.Compression{"gzip": compress.Gzip, "snappy": compress.Snappy, "lz4": compress.Lz4, "zstd": compress.Zstd}[k.Compression]
	return kafkasink.Options{
		Brokers:           k.Brokers,
		ClientID:          k.ClientID,
		RequiredAcks:      acks,
		Compression:       codec,
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
	}
}

// hasGlob reports whether an include pattern is a pattern rather than one table's name.
func hasGlob(p string) bool { return strings.ContainsAny(p, "*?[\\") }

// syncPublication makes the publication hold the captured tables (when pgcdc manages it) and
// returns them. At start-up, a table that cannot be published, or an include entry naming a table
// that does not exist, is an error; later (refresh) it is logged and retried at the next refresh.
func (c *Connector) syncPublication(ctx context.Context, conn *pgx.Conn, startup bool) ([]pgsource.Table, error) {
	tables, err := pgsource.ListTables(ctx, conn, c.cfg.Tables.Matches)
	if err != nil {
		return nil, err
	}
	if startup {
		for _, p := range c.cfg.Tables.Include {
			if hasGlob(p) {
				continue
			}
			found := false
			for _, t := range tables {
				if ok, _ := path.Match(p, t.String()); ok {
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("tables.include: table %s does not exist (or is excluded, or is a partition: name its partitioned root)", p)
			}
		}
	}
	pub, err := pgsource.ReadPublication(ctx, conn, c.cfg.Postgres.Publication)
	if err != nil {
		return nil, err
	}
	if !startup && !pub.Exists {
		return nil, &errPublicationDropped{c.cfg.Postgres.Publication}
	}
	var publishable, missing []pgsource.Table
	for _, t := range tables {
		if pub.Tables[t.String()] || pub.AllTables {
			publishable = append(publishable, t)
			continue
		}
		if problem := t.IdentityProblem(); problem != "" {
			if startup && c.cfg.Postgres.CreatePublication {
				return nil, fmt.Errorf("postgres: refusing to capture %s: %s", t, problem)
			}
			c.log.Error().Str("table", t.String()).Msg("not captured: " + problem)
			continue
		}
		missing = append(missing, t)
	}
	if !c.cfg.Postgres.CreatePublication {
		if !pub.Exists {
			return nil, fmt.Errorf("postgres: publication %q does not exist and postgres.create_publication is false: create it (CREATE PUBLICATION %s FOR TABLE ... WITH (publish_via_partition_root = true)) or set create_publication: true",
				c.cfg.Postgres.Publication, pgx.Identifier{c.cfg.Postgres.Publication}.Sanitize())
		}
		for _, t := range missing {
			c.log.Warn().Str("table", t.String()).Str("publication", c.cfg.Postgres.Publication).
				Msg("table matches tables.include but is not in the publication, which pgcdc does not manage (postgres.create_publication: false): its changes are not captured; add it with ALTER PUBLICATION ... ADD TABLE")
		}
		return publishable, nil
	}
	if !pub.Exists {
		if err := pgsource.CreatePublication(ctx, conn, c.cfg.Postgres.Publication, missing, c.cfg.Tables.PublishViaPartitionRoot); err != nil {
			return nil, err
		}
		c.log.Info().Str("publication", c.cfg.Postgres.Publication).Int("tables", len(missing)).Msg("created publication")
	} else if pub.ViaRoot != c.cfg.Tables.PublishViaPartitionRoot {
		if err := pgsource.SetViaRoot(ctx, conn, c.cfg.Postgres.Publication, c.cfg.Tables.PublishViaPartitionRoot); err != nil {
			return nil, err
		}
		c.log.Info().Str("publication", c.cfg.Postgres.Publication).Bool("publish_via_partition_root", c.cfg.Tables.PublishViaPartitionRoot).Msg("changed publication setting")
	}
	if pub.Exists && len(missing) > 0 {
		if err := pgsource.AddTables(ctx, conn, c.cfg.Postgres.Publication, missing); err != nil {
			return nil, err
		}
		for _, t := range missing {
			c.log.Info().Str("table", t.String()).Str("publication", c.cfg.Postgres.Publication).Msg("added table to publication")
		}
	}
	return append(publishable, missing...), nil
}

// refreshPublication re-syncs the publication at the configured interval so that tables created
// later that match tables.include are captured.
func (c *Connector) refreshPublication(ctx context.Context) {
	ticker := time.NewTicker(c.cfg.Postgres.PublicationRefreshInterval)
	defer ticker.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if conn == nil || conn.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var err error
			conn, err = pgsource.ConnectSQL(cctx, c.connStr)
			cancel()
			if err != nil {
				c.log.Warn().Err(err).Msg("publication refresh: cannot connect; will retry")
				conn = nil
				continue
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		tables, err := c.syncPublication(qctx, conn, false)
		cancel()
		var dropped *errPublicationDropped
		if errors.As(err, &dropped) {
			c.log.Error().Err(err).Msg("publication dropped: stopping")
			c.abort(err)
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn().Err(err).Msg("publication refresh failed; will retry")
			}
			continue
		}
		c.tablesMu.Lock()
		c.tables = tables
		c.tablesMu.Unlock()
	}
}

// errStopped ends a stream session on a clean shutdown.
var errStopped = errors.New("stopped")

// streamWithReconnect runs stream sessions, reconnecting after transient failures.
func (c *Connector) streamWithReconnect(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		started := time.Now()
		err := c.stream(ctx)
		if errors.Is(err, errStopped) {
			return abortCause(ctx)
		}
		if err == nil || c.permanent(err) {
			if err != nil {
				c.metrics.Error(metrics.ErrFatal)
			}
			return c.explain(err)
		}
		if ctx.Err() != nil {
			return abortCause(ctx)
		}
		if time.Since(started) > time.Minute {
			backoff = 500 * time.Millisecond
		}
		c.log.Warn().Err(err).Dur("retry_in", backoff).Msg("replication stream broke; reconnecting")
		c.metrics.Error(metrics.ErrReplicationStream)
		c.metrics.Reconnect()
		select {
		case <-ctx.Done():
			return abortCause(ctx)
		case <-time.After(backoff):
		}
		if backoff < 30*time.Second {
			backoff *= 2
		}
	}
}

// permanent reports whether err must end the process rather than cause a reconnect.
func (c *Connector) permanent(err error) bool {
	var perm *kafkasink.PermanentError
	var tooLarge *kafkasink.TooLargeError
	var fatal *fatalError
	return pgsource.IsPermanent(err) || errors.As(err, &perm) || errors.As(err, &tooLarge) || errors.As(err, &fatal)
}

// fatalError wraps failures no reconnect can cure (bad data, a protocol violation).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func fatal(err error) error { return &fatalError{err} }

// resumeLSN is where a (re)connect starts: the slot's confirmed position, or the newer position this
// process knows Kafka acknowledged.
func ackLSN(l pglogrepl.LSN) ack.LSN { return ack.LSN(l) }

func (c *Connector) resumeLSN(slot pgsource.SlotInfo) pglogrepl.LSN {
	lsn := slot.ConfirmedFlush
	if safe := pglogrepl.LSN(c.tracker.Safe()); safe > lsn {
		lsn = safe
	}
	return lsn
}
