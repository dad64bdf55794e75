package replay

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// Options configure a replay.
type Options struct {
	Brokers     []string             // Kafka bootstrap brokers (required)
	ClientID    string               // client id reported to the brokers; default "pgcdc-replay"
	Security    kafkaclient.Security // TLS and SASL to the brokers (kafka.tls, kafka.sasl)
	TopicPrefix string               // pgcdc's kafka.topic_prefix: topics <prefix>.<schema>.<table> are replayed
	Topics      []string             // explicit topics instead of discovery by prefix
	Include     []string             // schema.table globs (path.Match) over the discovered topics; default all
	Exclude     []string

	Target         string // target PostgreSQL connection string (required)
	TargetPassword string // the target's password when Target has none (from a file or the environment, never argv)
	OffsetsTable   string // schema.table keeping the applied offsets; default public.pgcdc_replay_offsets
	CreateTables   bool   // create missing tables (and columns) from the events' value schemas

	UntilEnd        bool          // stop at the topics' end offsets taken at start; otherwise follow
	FromTime        time.Time     // where partitions without a stored offset start; zero: the beginning
	BatchSize       int           // records per transaction per partition; default 5000
	Workers         int           // target connections applying in parallel; default 4
	RefreshInterval time.Duration // follow mode: how often new topics are looked for; default 30s

	Modes               Modes  // how topics without schemas were encoded (pgcdc's events.* settings)
	Placeholder         string // unchanged-TOAST placeholder; default __debezium_unavailable_value
	AllowCompactedTOAST bool   // accept compacted topics of tables with TOASTable columns
	FlatFieldPrefix     string // flattened topics (ExtractNewRecordState): the prefix of its added fields (add.fields.prefix); default "__"

	// Records replay cannot apply (malformed, a value the target column refuses, a constraint
	// violation, an unchanged TOAST value it cannot fill) stop it, naming topic, partition and
	// offset. With ParkFile or ParkTopic they are written there with the reason instead, and
	// replay goes on (see park.go).
	ParkFile  string // append parked records as JSON lines to this file
	ParkTopic string // produce parked records to this Kafka topic

	Log              zerolog.Logger
	Progress         io.Writer     // a terminal to draw a progress bar on; nil: progress log lines
	ProgressInterval time.Duration // default 10s (logs) / 200ms (bar)
}

// Stats summarizes a replay.
type Stats struct {
	Records   int64 // records consumed and applied (tombstones included)
	Rows      int64 // change events applied (creates, reads, updates, deletes, truncates)
	Topics    int
	Elapsed   time.Duration
	Unmatched int64 // updates/deletes of keyless tables that found no equal row
	Parked    int64 // records that could not be applied, set aside (ParkFile, ParkTopic)
}

type engine struct {
	opts    Options
	log     zerolog.Logger
	db      *connPool
	client  *kafka.Client
	kc      *kafkaclient.Client // readers' dialer; explains connection failures
	offsets *offsetStore
	ph      placeholder
	parker  parker     // nil: a record that cannot be applied stops replay
	ddl     sync.Mutex // serializes CREATE SCHEMA/TABLE and ALTER TABLE across topics

	records, rows, parked atomic.Int64
	total                 atomic.Int64 // until-end: records to apply in all
	started               map[string]bool
	tables                []*tableState
	mu                    sync.Mutex
}

// UsageError is a mistake in the Options themselves (a missing or invalid setting): nothing was
// contacted. `pgcdc replay` exits 2 on it.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return "replay: " + e.msg }

func usagef(format string, args ...any) error { return &UsageError{fmt.Sprintf(format, args...)} }

// Validate checks the options without contacting anything; every error is a *UsageError.
func (o *Options) Validate() error {
	if len(o.Brokers) == 0 {
		return usagef("no Kafka brokers: set --brokers")
	}
	if o.Target == "" {
		return usagef("no target database: set --target")
	}
	if o.TopicPrefix == "" && len(o.Topics) == 0 {
		return usagef("set --topic-prefix (pgcdc's kafka.topic_prefix) or --topics")
	}
	if o.BatchSize < 0 {
		return usagef("--batch-size %d: want at least 1 record per transaction", o.BatchSize)
	}
	if o.Workers < 0 {
		return usagef("--workers %d: want at least 1 target connection", o.Workers)
	}
	if o.RefreshInterval < 0 || o.ProgressInterval < 0 {
		return usagef("intervals must not be negative")
	}
	for _, p := range append(slices.Clone(o.Include), o.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			return usagef("table pattern %q: %v", p, err)
		}
	}
	switch o.Modes.DecimalHandling {
	case "", "precise", "double", "string":
	default:
		return usagef("decimal handling %q: want precise, double or string", o.Modes.DecimalHandling)
	}
	switch o.Modes.TimePrecision {
	case "", "adaptive", "adaptive_time_microseconds", "connect":
	default:
		return usagef("time precision %q: want adaptive, adaptive_time_microseconds or connect", o.Modes.TimePrecision)
	}
	switch o.Modes.BinaryHandling {
	case "", "bytes", "base64", "base64-url-safe", "hex":
	default:
		return usagef("binary handling %q: want bytes, base64, base64-url-safe or hex", o.Modes.BinaryHandling)
	}
	switch o.Modes.HstoreHandling {
	case "", "json", "map":
	default:
		return usagef("hstore handling %q: want json or map", o.Modes.HstoreHandling)
	}
	if o.ParkFile != "" && o.ParkTopic != "" {
		return usagef("--park-file and --park-topic: choose one place to park records")
	}
	if _, err := newOffsetStore(o.OffsetsTableOrDefault()); err != nil {
		return usagef("--offsets-table: %v", err)
	}
	return nil
}

// OffsetsTableOrDefault is OffsetsTable, or its default.
func (o *Options) OffsetsTableOrDefault() string {
	if o.OffsetsTable == "" {
		return "public.pgcdc_replay_offsets"
	}
	return o.OffsetsTable
}

func (o *Options) defaults() error {
	if err := o.Validate(); err != nil {
		return err
	}
	o.OffsetsTable = o.OffsetsTableOrDefault()
	if o.ClientID == "" {
		o.ClientID = "pgcdc-replay"
	}
	if o.BatchSize == 0 {
		o.BatchSize = 5000
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 30 * time.Second
	}
	if o.Placeholder == "" {
		o.Placeholder = "__debezium_unavailable_value"
	}
	if o.FlatFieldPrefix == "" {
		o.FlatFieldPrefix = DefaultFlatFieldPrefix
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = 10 * time.Second
		if o.Progress != nil {
			o.ProgressInterval = 200 * time.Millisecond
		}
	}
	return nil
}

// Run replays the change topics into the target until the end offsets (UntilEnd) or until ctx is
// cancelled (follow mode; a cancellation finishes the transactions in progress and returns nil).
func Run(ctx context.Context, o Options) (Stats, error) {
	start := time.Now()
	if err := o.defaults(); err != nil {
		return Stats{}, err
	}
	e := &engine{opts: o, log: o.Log, ph: newPlaceholder(o.Placeholder), started: map[string]bool{}}
	var err error
	if e.offsets, err = newOffsetStore(o.OffsetsTable); err != nil {
		return Stats{}, err
	}
	cfg, err := pgx.ParseConfig(o.Target)
	if err != nil {
		return Stats{}, fmt.Errorf("replay: target connection string: %w", err)
	}
	if o.TargetPassword != "" && cfg.Password == "" {
		cfg.Password = o.TargetPassword
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.RuntimeParams["datestyle"] = "ISO, YMD"
	cfg.RuntimeParams["intervalstyle"] = "postgres"
	cfg.RuntimeParams["application_name"] = "pgcdc replay"
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lockConn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return Stats{}, fmt.Errorf("replay: connect to the target (%s:%d/%s): %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	defer lockConn.Close(context.WithoutCancel(ctx))
	if e.db, err = newConnPool(cctx, cfg, o.Workers); err != nil {
		return Stats{}, err
	}
	defer e.db.close()
	var locked bool
	if err := lockConn.QueryRow(cctx, `SELECT pg_try_advisory_lock($1)`, e.offsets.lock).Scan(&locked); err != nil {
		return Stats{}, fmt.Errorf("replay: target: %w", err)
	}
	if !locked {
		return Stats{}, fmt.Errorf("replay: another replay is applying into this target (advisory lock of %s is held): stop it first", o.OffsetsTable)
	}
	if err := e.offsets.ensure(cctx, lockConn); err != nil {
		return Stats{}, err
	}
	if e.kc, err = kafkaclient.New(cctx, kafkaclient.Settings{Brokers: o.Brokers, ClientID: o.ClientID, Security: o.Security}); err != nil {
		return Stats{}, fmt.Errorf("replay: %w", err)
	}
	transport := e.kc.Transport()
	defer transport.CloseIdleConnections()
	e.client = &kafka.Client{Addr: e.kc.Addr(), Timeout: 30 * time.Second, Transport: transport}
	switch {
	case o.ParkFile != "":
		e.parker, err = newFileParker(o.ParkFile)
	case o.ParkTopic != "":
		e.parker, err = newTopicParker(cctx, e.client, e.kc, o.ParkTopic)
	}
	if err != nil {
		return Stats{}, err
	}
	if e.parker != nil {
		defer e.parker.close()
	}

	topics, err := e.discover(cctx)
	if err != nil {
		return Stats{}, err
	}
	if len(topics) == 0 && o.UntilEnd {
		return Stats{}, fmt.Errorf("replay: no topic matches (prefix %q, include %v): check --topic-prefix and --tables", o.TopicPrefix, o.Include)
	}
	e.log.Info().Strs("topics", topicNames(topics)).Bool("until_end", o.UntilEnd).Str("offsets_table", o.OffsetsTable).Msg("replay starting")

	// The first error of any topic cancels the others with that error as the cause: what they
	// return afterwards (context canceled, or worse, an error of a cancelled query) is a
	// consequence, and the cause is what Run reports.
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	launch := func(ts []topicInfo) error {
		for _, t := range ts {
			c, err := e.newCoordinator(runCtx, t)
			if err != nil {
				return err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.run(runCtx); err != nil {
					stop(err) // a no-op when runCtx is already cancelled
				}
			}()
		}
		return nil
	}
	if err := launch(topics); err != nil {
		return Stats{}, err
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		e.progress(runCtx, start)
	}()
	if !o.UntilEnd {
		t := time.NewTicker(o.RefreshInterval)
	follow:
		for {
			select {
			case <-runCtx.Done():
				break follow
			case <-t.C:
				more, err := e.discover(runCtx)
				if err == nil {
					err = launch(more)
				}
				if err != nil && runCtx.Err() == nil {
					e.log.Warn().Err(err).Msg("looking for new topics failed; retrying at the next refresh")
				}
			}
		}
		t.Stop()
	}
	wg.Wait()
	cause := context.Cause(runCtx)
	stop(nil)
	<-progressDone
	var firstErr error
	if cause != nil && cause != context.Cause(ctx) { // not the caller's cancellation (SIGINT/SIGTERM)
		firstErr = cause
	}
	st := Stats{Records: e.records.Load(), Rows: e.rows.Load(), Parked: e.parked.Load(), Topics: len(e.started), Elapsed: time.Since(start)}
	for _, ts := range e.tables {
		st.Unmatched += ts.unmatched.Load()
	}
	if st.Parked > 0 {
		e.log.Warn().Int64("parked", st.Parked).Str("parked_in", e.parker.String()).Msg("records that could not be applied were parked: the target lacks their changes until they are dealt with")
	}
	if st.Unmatched > 0 {
		e.log.Warn().Int64("unmatched", st.Unmatched).Msg("updates/deletes of keyless tables found no equal row in the target (see README, Replay: keyless tables)")
	}
	return st, firstErr
}

type topicInfo struct {
	name       string
	partitions []int
	compacted  bool
}

func topicNames(ts []topicInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.name
	}
	return out
}

// discover lists the table topics not started yet, with their partitions and cleanup policy.
func (e *engine) discover(ctx context.Context) ([]topicInfo, error) {
	req := &kafka.MetadataRequest{}
	if len(e.opts.Topics) > 0 {
		req.Topics = e.opts.Topics
	}
	md, err := e.client.Metadata(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("replay: Kafka metadata from %v: %w", e.opts.Brokers, e.kc.Explain(err))
	}
	var out []topicInfo
	for _, t := range md.Topics {
		if t.Error != nil {
			if len(e.opts.Topics) > 0 {
				return nil, fmt.Errorf("replay: topic %s: %w", t.Name, t.Error)
			}
			continue
		}
		if e.started[t.Name] || !e.wanted(t.Name) {
			continue
		}
		ti := topicInfo{name: t.Name}
		for _, p := range t.Partitions {
			ti.partitions = append(ti.partitions, p.ID)
		}
		sort.Ints(ti.partitions)
		out = append(out, ti)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	if len(out) == 0 {
		return nil, nil
	}
	res := make([]kafka.DescribeConfigRequestResource, len(out))
	for i, t := range out {
		res[i] = kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: t.name, ConfigNames: []string{"cleanup.policy"}}
	}
	dc, err := e.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: res})
	if err != nil {
		return nil, fmt.Errorf("replay: read the cleanup.policy of the topics: %w", err)
	}
	policy := map[string]string{}
	for _, r := range dc.Resources {
		for _, c := range r.ConfigEntries {
			if c.ConfigName == "cleanup.policy" {
				policy[r.ResourceName] = c.ConfigValue
			}
		}
	}
	for i := range out {
		out[i].compacted = strings.Contains(policy[out[i].name], "compact")
		if out[i].compacted {
			e.log.Warn().Str("topic", out[i].name).Str("cleanup.policy", policy[out[i].name]).
				Msg("compacted topic: only the latest event per key is left, and truncate events (null key) are not in it")
		}
	}
	return out, nil
}

// wanted: explicit topics, or <prefix>.<schema>.<table> matching the table patterns.
func (e *engine) wanted(topic string) bool {
	if len(e.opts.Topics) > 0 {
		return slices.Contains(e.opts.Topics, topic)
	}
	rest, ok := strings.CutPrefix(topic, e.opts.TopicPrefix+".")
	if !ok || strings.Count(rest, ".") != 1 {
		return false // heartbeat, transaction and message topics, other prefixes
	}
	match := len(e.opts.Include) == 0
	for _, p := range e.opts.Include {
		if ok, _ := path.Match(p, rest); ok {
			match = true
		}
	}
	for _, p := range e.opts.Exclude {
		if ok, _ := path.Match(p, rest); ok {
			return false
		}
	}
	return match
}
