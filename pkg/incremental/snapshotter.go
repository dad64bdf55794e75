package incremental

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/route"
	"github.com/pgcdc/pgcdc/pkg/signal"
)

// DefaultChunkRows is the default number of rows per chunk (Debezium's
// incremental.snapshot.chunk.size is 1024).
const DefaultChunkRows = 1024

// Metrics receives the incremental snapshot's numbers; nil methods are not called (a nil Metrics is
// allowed in Options).
type Metrics interface {
	// IncrementalTable sets the progress of table's current incremental snapshot: rows Kafka
	// acknowledged, and the rows expected (pg_class.reltuples when it started; 0 unknown).
	IncrementalTable(table string, rows, estimate int64)
	// IncrementalChunk counts one window: rows read, rows published, rows dropped because the
	// stream changed them in the window, and whether the chunk had to be read again.
	IncrementalChunk(read, published, dropped int64, reread bool)
	// IncrementalState sets the number of tables queued (the current one included) and whether the
	// snapshot is paused.
	IncrementalState(queued int, paused bool)
}

// Options configure a Snapshotter.
type Options struct {
	ConnString     string // with the password: never logged
	Slot           string // progress is kept per slot
	ProgressSchema string // schema of the progress table (snapshot.progress_schema)
	Publication    string // limits the columns to its column list (PostgreSQL 15+)
	ServerVersion  int    // server_version_num
	ChunkRows      int    // rows per chunk; DefaultChunkRows when 0
	MaxRowsPerSec  int    // read rate limit (snapshot.max_rows_per_sec); 0: none
	// Tracker is the pipeline's tracker: a chunk is recorded done once Kafka acknowledged its rows.
	Tracker *ack.Tracker
	// Route builds the router that encodes the chunks' rows (the pipeline's options: the same
	// envelope, the same transforms).
	Route route.Options
	// Captured returns the captured tables (schema.table): only they can be snapshotted
	// incrementally (their changes must come through the stream). Signals' data-collections are
	// matched against them.
	Captured func() []string
	// InFlight returns the bytes handed to Kafka and not yet acknowledged, and MaxInFlight their
	// bound (kafka.max_in_flight_bytes): a window is started only while less than half of it is
	// used, so that the stream's records never wait behind a backlog of snapshot rows. nil: no check.
	InFlight    func() int64
	MaxInFlight int64
	// ProgressInterval is the time between progress log lines (0: none).
	ProgressInterval time.Duration
	Metrics          Metrics
	Log              zerolog.Logger
}

// Snapshotter runs incremental snapshots: it keeps the queue of tables to read (durably, per slot),
// acts on signals, reads chunks on its own connection (Run) and, driven by the pipeline goroutine
// (Observe, Watermark), de-duplicates each chunk against the stream and publishes it.
//
// Safe for concurrent use, except Observe and Watermark, which only the pipeline goroutine calls.
type Snapshotter struct {
	opts  Options
	log   zerolog.Logger
	runID string // distinguishes this process's windows from those of an earlier one in the WAL

	dbMu  sync.Mutex // one statement at a time on ctrl
	ctrl  *pgx.Conn  // the store's connection (reconnected on failure)
	store *store

	mu     sync.Mutex // guards the fields below
	paused bool
	queue  []*Entry // queue[0] is the table being read
	known  []string
	offset int64 // next Kafka signal offset; -1 none
	// sourceLSN is the commit LSN of the last signal table transaction acted on; 0 none.
	sourceLSN uint64
	started   time.Time
	wake      chan struct{} // cap 1: the queue or the pause state changed

	pipe     pipeSide
	verdicts chan verdict     // pipeline → reader
	results  chan chunkResult // reader → recorder
	stats    stats
	windows  atomic.Int64  // windows opened by this process (their ids)
	limit    *rate.Limiter // nil: no rate limit
}

// chunkResult is a published chunk the recorder records once Kafka acknowledged it.
type chunkResult struct {
	e     *Entry
	seq   int64
	index int64 // the chunk's place in its table (this run)
	table string
	last  []string
	rows  int64
	txn   ack.TxnID
	final bool // the table's last chunk: the table is done once it is acknowledged
}

// New connects the store's connection, opens the progress table (creating it when it does not
// exist) and loads the slot's state: a snapshot that a stop or a crash interrupted continues when
// Run starts, after the last chunk Kafka acknowledged.
func New(ctx context.Context, opts Options) (*Snapshotter, error) {
	if opts.ChunkRows <= 0 {
		opts.ChunkRows = DefaultChunkRows
	}
	if opts.Captured == nil {
		return nil, errors.New("incremental snapshot: Options.Captured is required")
	}
	router, err := route.New(opts.Route)
	if err != nil {
		return nil, err
	}
	s := &Snapshotter{opts: opts, log: opts.Log.With().Str("component", "incremental snapshot").Logger(),
		runID: strconv.FormatInt(time.Now().UnixNano(), 36), wake: make(chan struct{}, 1),
		verdicts: make(chan verdict, 4*depth), results: make(chan chunkResult, 256)}
	s.pipe.router = router
	if opts.MaxRowsPerSec > 0 {
		s.limit = rate.NewLimiter(rate.Limit(opts.MaxRowsPerSec), max(opts.MaxRowsPerSec/10, opts.ChunkRows))
	}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	st, err := s.store.load(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.paused, s.queue, s.known, s.offset, s.sourceLSN = st.Paused, st.Queue, st.Known, st.SignalOffset, st.SourceLSN
	if len(s.queue) > 0 {
		e := s.queue[0]
		s.log.Info().Strs("tables", s.queuedTables()).Bool("paused", s.paused).Str("table", e.Table).Strs("last_key", e.LastKey).Int64("rows_done", e.Rows).
			Int64("chunks_done", e.Chunks).Msg("incremental snapshot in progress: continuing after the last chunk Kafka acknowledged")
	}
	return s, nil
}

func (s *Snapshotter) connect(ctx context.Context) error {
	conn, err := pgsource.ConnectSQL(ctx, s.opts.ConnString)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, conn, s.opts.ProgressSchema, s.opts.Slot)
	if err != nil {
		conn.Close(context.Background())
		return err
	}
	s.ctrl, s.store = conn, st
	return nil
}

// Close closes the store's connection.
func (s *Snapshotter) Close() {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.ctrl != nil {
		s.ctrl.Close(context.Background())
		s.ctrl = nil
	}
}

// withStore runs f with the store, reconnecting once when the connection was lost.
func (s *Snapshotter) withStore(ctx context.Context, f func(*store) error) error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	for attempt := 0; ; attempt++ {
		if s.ctrl == nil || s.ctrl.IsClosed() {
			if err := s.connect(ctx); err != nil {
				return err
			}
		}
		err := f(s.store)
		if err == nil || attempt > 0 || !lostConnection(s.ctrl, err) {
			return err
		}
		s.ctrl.Close(context.Background())
		s.ctrl = nil
	}
}

// Request queues an incremental snapshot of tables (schema.table, each captured), each read
// where filters[table] holds when set (an SQL condition on its rows; "" or absent: every row).
// It returns once the request is recorded: it survives a restart. This is the API for a table that
// joins the publication while pgcdc runs: its existing rows are published as op "r" events with
// source.snapshot "incremental", and none of its concurrent changes is overridden.
func (s *Snapshotter) Request(ctx context.Context, tables []string, filters map[string]string) error {
	var entries []*Entry
	for _, t := range tables {
		if !s.captured(t) {
			return fmt.Errorf("incremental snapshot: table %s is not captured (tables.include and the publication): only captured tables can be snapshotted incrementally", t)
		}
		entries = append(entries, &Entry{Table: t, Filter: filters[t]})
	}
	return s.enqueue(ctx, entries, signal.ChannelAPI, "", -1)
}

// Signal acts on a signal of any channel, except an execute-snapshot of kind blocking, which the
// caller runs (it pauses the stream) and then reports with SignalDone. A signal with a Kafka offset
// records the offset with its effect, so that it is acted on once.
func (s *Snapshotter) Signal(ctx context.Context, sig signal.Signal) error {
	l := s.log.Info().Str("signal", sig.ID).Str("type", sig.Type).Str("channel", sig.Channel)
	switch sig.Type {
	case signal.TypeExecuteSnapshot:
		if sig.Snapshot.Kind == signal.KindBlocking {
			return fmt.Errorf("incremental snapshot: signal %s: a blocking snapshot is run by the pipeline", sig.ID)
		}
		entries, err := s.expand(sig)
		if err != nil {
			return err
		}
		l.Strs("tables", names(entries)).Msg("signal: execute incremental snapshot")
		return s.enqueue(ctx, entries, sig.Channel, sig.ID, sig.Offset)
	case signal.TypeStopSnapshot:
		if sig.Snapshot.Kind == signal.KindBlocking {
			l.Msg("signal: stop-snapshot of a blocking snapshot: nothing to stop (a blocking snapshot runs to its end, as in Debezium)")
			return s.SignalDone(ctx, sig)
		}
		return s.stop(ctx, sig)
	case signal.TypePauseSnapshot, signal.TypeResumeSnapshot:
		pause := sig.Type == signal.TypePauseSnapshot
		if err := s.withStore(ctx, func(st *store) error { return st.setPaused(ctx, pause, next(sig.Offset)) }); err != nil {
			return err
		}
		s.mu.Lock()
		s.paused = pause
		queued := len(s.queue)
		s.mu.Unlock()
		s.poke()
		s.opts.metricsState(queued, pause)
		l.Bool("paused", pause).Int("tables_queued", queued).Msg("signal: " + sig.Type)
		return nil
	case signal.TypeLog:
		s.log.Info().Str("signal", sig.ID).Str("channel", sig.Channel).Msg(sig.Message)
		return s.SignalDone(ctx, sig)
	}
	l.Msg("signal ignored")
	return s.SignalDone(ctx, sig)
}

// SignalDone records that a Kafka signal was acted on (nothing for other channels).
func (s *Snapshotter) SignalDone(ctx context.Context, sig signal.Signal) error {
	if sig.Offset < 0 {
		return nil
	}
	return s.withStore(ctx, func(st *store) error { return st.setOffset(ctx, next(sig.Offset)) })
}

// SourceActed reports whether the signals of the signal table transaction that committed at commit
// (its commit LSN) were acted on already: the stream sends it again after a restart when the slot
// was not confirmed past it.
func (s *Snapshotter) SourceActed(commit uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return commit <= s.sourceLSN
}

// SourceDone records that the signals of the signal table transaction that committed at commit were
// acted on, so that a restart that reads it again does not act on them twice (SourceActed). A crash
// between their effect and this record acts on them again.
func (s *Snapshotter) SourceDone(ctx context.Context, commit uint64) error {
	if err := s.withStore(ctx, func(st *store) error { return st.setSourceLSN(ctx, commit) }); err != nil {
		return err
	}
	s.mu.Lock()
	s.sourceLSN = max(s.sourceLSN, commit)
	s.mu.Unlock()
	return nil
}

// SignalOffset returns the next offset of the Kafka signal topic to read (-1: none recorded).
func (s *Snapshotter) SignalOffset() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offset
}

func next(offset int64) int64 {
	if offset < 0 {
		return -1
	}
	return offset + 1
}

// Known returns the tables whose rows the slot's topics hold (snapshotted initially, or
// requested incrementally); ok is false when none were ever recorded (a slot older than this
// record).
func (s *Snapshotter) Known() (tables []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.known), s.known != nil
}

// SetKnown records tables as the ones whose rows the slot's topics hold.
func (s *Snapshotter) SetKnown(ctx context.Context, tables []string) error {
	tables = slices.Sorted(slices.Values(tables))
	if err := s.withStore(ctx, func(st *store) error { return st.setKnown(ctx, tables) }); err != nil {
		return err
	}
	s.mu.Lock()
	s.known = append([]string{}, tables...)
	s.mu.Unlock()
	return nil
}

// expand turns an execute-snapshot's data-collections (regular expressions over whole
// schema.table names, as in Debezium) into queue entries for the captured tables they match.
func (s *Snapshotter) expand(sig signal.Signal) ([]*Entry, error) {
	var entries []*Entry
	seen := map[string]bool{}
	for _, pat := range sig.Snapshot.Collections {
		re, err := regexp.Compile(`^(?:` + pat + `)$`)
		if err != nil {
			return nil, fmt.Errorf("incremental snapshot: signal %s: data-collections %q: %w", sig.ID, pat, err)
		}
		matched := false
		for _, t := range s.opts.Captured() {
			if !re.MatchString(t) {
				continue
			}
			matched = true
			if seen[t] {
				continue
			}
			seen[t] = true
			filter, err := conditionFor(sig.Snapshot.Conditions, t)
			if err != nil {
				return nil, fmt.Errorf("incremental snapshot: signal %s: %w", sig.ID, err)
			}
			entries = append(entries, &Entry{Table: t, Filter: filter, SurrogateKey: sig.Snapshot.SurrogateKey, SignalID: sig.ID})
		}
		if !matched {
			s.log.Warn().Str("signal", sig.ID).Str("data_collection", pat).Msg("execute-snapshot: matches no captured table; skipped")
		}
	}
	return entries, nil
}

// captured reports whether table is captured.
func (s *Snapshotter) captured(table string) bool { return slices.Contains(s.opts.Captured(), table) }

// conditionFor returns the filter of the first additional condition whose data-collection (a
// case-insensitive regular expression over the whole name, as in Debezium) matches table.
func conditionFor(conds []signal.Condition, table string) (string, error) {
	for _, c := range conds {
		re, err := regexp.Compile(`(?i)^(?:` + c.Collection + `)$`)
		if err != nil {
			return "", fmt.Errorf("additional-conditions data-collection %q: %w", c.Collection, err)
		}
		if re.MatchString(table) {
			return c.Filter, nil
		}
	}
	return "", nil
}

func names(entries []*Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Table
	}
	return out
}

// enqueue records entries and appends them to the queue.
func (s *Snapshotter) enqueue(ctx context.Context, entries []*Entry, channel, id string, offset int64) error {
	// Every table requested is known, the ones already queued too (ForgetKnown took it off).
	known := names(entries)
	s.mu.Lock()
	kept := entries[:0]
	for _, e := range entries {
		dup := false
		for _, q := range s.queue {
			if q.State == stateQueued && q.Table == e.Table && q.Filter == e.Filter && q.SurrogateKey == e.SurrogateKey {
				dup = true
			}
		}
		if !dup {
			kept = append(kept, e)
		}
	}
	s.mu.Unlock()
	if len(known) == 0 && offset < 0 {
		return nil
	}
	if err := s.withStore(ctx, func(st *store) error { return st.enqueue(ctx, kept, known, offset) }); err != nil {
		return err
	}
	s.mu.Lock()
	s.queue = append(s.queue, kept...)
	for _, t := range known {
		if !slices.Contains(s.known, t) {
			s.known = append(s.known, t)
		}
	}
	if offset >= 0 {
		s.offset = offset
	}
	if s.started.IsZero() && len(kept) > 0 {
		s.started = time.Now()
	}
	queued, paused := len(s.queue), s.paused
	s.mu.Unlock()
	if len(kept) > 0 {
		s.log.Info().Strs("tables", names(kept)).Str("channel", channel).Str("signal", id).Int("tables_queued", queued).Bool("paused", paused).
			Msg("incremental snapshot requested")
	}
	s.opts.metricsState(queued, paused)
	s.poke()
	return nil
}

// stop removes the tables a stop-snapshot names (every table when it names none) from the queue;
// the window of the table being read publishes nothing.
func (s *Snapshotter) stop(ctx context.Context, sig signal.Signal) error {
	var res []*regexp.Regexp
	for _, pat := range sig.Snapshot.Collections {
		re, err := regexp.Compile(`^(?:` + pat + `)$`)
		if err != nil {
			return fmt.Errorf("incremental snapshot: signal %s: data-collections %q: %w", sig.ID, pat, err)
		}
		res = append(res, re)
	}
	match := func(t string) bool {
		if len(res) == 0 {
			return true
		}
		for _, re := range res {
			if re.MatchString(t) {
				return true
			}
		}
		return false
	}
	s.mu.Lock()
	var seqs []int64
	var stopped []string
	for _, e := range s.queue {
		if match(e.Table) {
			seqs, stopped = append(seqs, e.Seq), append(stopped, e.Table)
		}
	}
	s.mu.Unlock()
	if err := s.withStore(ctx, func(st *store) error { return st.remove(ctx, seqs, next(sig.Offset)) }); err != nil {
		return err
	}
	s.mu.Lock()
	s.queue = slices.DeleteFunc(s.queue, func(e *Entry) bool { return slices.Contains(seqs, e.Seq) })
	queued, paused := len(s.queue), s.paused
	s.mu.Unlock()
	s.pipe.cancel(match)
	s.opts.metricsState(queued, paused)
	s.log.Info().Str("signal", sig.ID).Str("channel", sig.Channel).Strs("stopped", stopped).Int("tables_queued", queued).Msg("signal: stop-snapshot")
	s.poke()
	return nil
}

func (s *Snapshotter) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Snapshotter) queuedTables() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return names(s.queue)
}

// Run reads chunks while tables are queued and not paused, records the chunks Kafka acknowledged
// and logs progress, until ctx ends (then it returns nil) or a failure that retrying cannot cure.
// The stream is never stopped for it: a chunk's rows are published by the pipeline at the high
// watermark, between two transactions.
func (s *Snapshotter) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.readLoop(gctx) })
	g.Go(func() error { return s.recordLoop(gctx) })
	if every := s.opts.ProgressInterval; every > 0 {
		g.Go(func() error { s.progressLoop(gctx, every); return nil })
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// lostConnection reports whether err means the connection broke (transient).
func lostConnection(conn *pgx.Conn, err error) bool {
	if conn == nil || conn.IsClosed() || pgsource.IsConnectionError(err) {
		return true
	}
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) {
		c := pgErr.SQLState()
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "57")
	}
	return false
}

func (o Options) metricsState(queued int, paused bool) {
	if o.Metrics != nil {
		o.Metrics.IncrementalState(queued, paused)
	}
}
