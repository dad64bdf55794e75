package route

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

// Record headers pgcdc adds. Debezium's own headers for primary-key changes are kept as Debezium
// names them.
const (
	// HeaderPosition is the event's position in its transaction (0-based, decimal). With
	// source.lsn it identifies an event across re-deliveries: several events can share one LSN.
	HeaderPosition = "pgcdc.position"
	HeaderNewKey   = "__debezium.newkey"
	HeaderOldKey   = "__debezium.oldkey"
)

// HeartbeatPrefix is the logical decoding message prefix of pgcdc's own heartbeats; messages with
// it are never published as messages.
const HeartbeatPrefix = "__pgcdc_heartbeat"

// Step is a transform of the route stage (see the package documentation).
type Step interface {
	// Apply returns the records to publish for ch instead of recs. It may modify recs in place
	// and return it. It must not keep ch or its row images after it returns. It is called for
	// row changes, TRUNCATEs, snapshot rows (Kind Read) and logical decoding messages (Kind
	// Message: recs holds the <prefix>.message record when events.messages publishes it, else
	// nothing); a step that does not handle a kind returns recs as they are.
	Apply(ch *decode.Change, recs []kafkasink.Record) ([]kafkasink.Record, error)
}

// Filter is implemented by steps that drop whole changes before they are encoded.
type Filter interface {
	Keep(ch *decode.Change) bool
}

// Options configure a Router.
type Options struct {
	Event                event.Options
	TombstonesOnDelete   bool     // a tombstone (same key, null value) after each delete
	Truncate             bool     // TRUNCATE as op "t" events
	Messages             bool     // logical decoding messages to <prefix>.message
	MessagePrefixInclude []string // regular expressions (whole prefix); empty: all
	MessagePrefixExclude []string
	TransactionMetadata  bool // BEGIN/END events and the envelope's transaction block
	HeartbeatTopic       bool // Debezium heartbeat records for pgcdc's heartbeats
	Steps                []Step
	Log                  zerolog.Logger
	// OnEvent is called for every change event published (not tombstones, metadata or
	// heartbeats), for metrics. May be nil.
	OnEvent func(table string, op event.Op)
	// Now returns the processing time (the envelope's ts_ms); time.Now when nil.
	Now func() time.Time

	// Event shaping as Debezium's options and transforms do it (shaping.go, unwrap.go); zero
	// values change nothing.
	Shaping           *Shaping          // columns in the values, column mappers, key columns
	SkippedOperations map[event.Op]bool // skipped.operations: c, u (every update), d (truncates: Truncate)
	ChangedHeader     string            // ExtractChangedRecordState's header.changed.name
	UnchangedHeader   string            // ExtractChangedRecordState's header.unchanged.name
	Unwrap            *Unwrap           // ExtractNewRecordState: the row instead of the envelope
}

// Router builds the records of changes. It is used by one goroutine.
type Router struct {
	opts    Options
	meta    *event.MetaEncoder
	msgs    messageFilter
	filters []Filter
	tables  map[uint32]*table
	logged  map[string]bool // tables whose sanitized topic name was logged

	txn      *decode.Txn
	position int64 // records of the current transaction so far: the pgcdc.position header
	txMeta   txMeta
	recs     []kafkasink.Record // scratch for one change
}

// table is the route of one relation version.
type table struct {
	rel              *decode.Relation
	enc              *event.Encoder
	flat             *event.Flat // the flattened values (Options.Unwrap); nil: envelopes
	topic            string
	keyCap, valueCap int // sizes of the last event, to allocate its successor's buffers once
}

// New returns a Router for opts.
func New(opts Options) (*Router, error) {
	meta, err := event.NewMetaEncoder(opts.Event)
	if err != nil {
		return nil, err
	}
	msgs, err := newMessageFilter(opts.Messages, opts.MessagePrefixInclude, opts.MessagePrefixExclude)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Router{opts: opts, meta: meta, msgs: msgs, tables: map[uint32]*table{}, logged: map[string]bool{}}
	for _, s := range opts.Steps {
		if f, ok := s.(Filter); ok {
			r.filters = append(r.filters, f)
		}
	}
	return r, nil
}

// Topic is the data topic of a table: <prefix>.<schema>.<table>, sanitized as Debezium does.
func Topic(prefix, schema, name string) string {
	return event.SanitizeTopic(prefix + "." + schema + "." + name)
}

// Reset forgets the relations and the open transaction (a new replication session).
func (r *Router) Reset() {
	clear(r.tables)
	r.txn = nil
}

// Route builds the records of ch and passes each to emit, in order.
func (r *Router) Route(ch *decode.Change, emit func(kafkasink.Record) error) error {
	switch ch.Kind {
	case decode.KindBegin:
		r.txn, r.position = ch.Txn, 0
		r.txMeta.reset()
		return nil
	case decode.KindCommit:
		err := r.endTransactionMetadata(ch.LSN, emit)
		r.txn = nil
		return err
	case decode.KindMessage:
		return r.message(ch, emit)
	}
	for _, f := range r.filters {
		if !f.Keep(ch) {
			return nil // a table a filter drops is not described either: its types may have no mapping
		}
	}
	if ch.Kind == decode.KindRelation {
		_, err := r.describe(ch.Relation) // early, so that a type without a mapping stops at its RELATION
		return err
	}
	var err error
	r.recs = r.recs[:0]
	switch ch.Kind {
	case decode.KindInsert:
		r.recs, err = r.change(r.recs, ch, event.OpCreate, nil, ch.After, nil)
	case decode.KindUpdate:
		r.recs, err = r.update(r.recs, ch)
	case decode.KindDelete:
		r.recs, err = r.change(r.recs, ch, event.OpDelete, ch.Before, nil, nil)
	case decode.KindTruncate:
		r.recs, err = r.truncate(r.recs, ch)
	default:
		return fmt.Errorf("route: unexpected change kind %s at LSN %s", ch.Kind, ch.LSN)
	}
	if err != nil {
		return err
	}
	recs := r.recs
	for _, s := range r.opts.Steps {
		if recs, err = s.Apply(ch, recs); err != nil {
			return fmt.Errorf("at LSN %s: %w", ch.LSN, err)
		}
	}
	return r.publish(recs, emit)
}

// publish numbers recs in the transaction and emits them, after the transaction's BEGIN record
// when they opened it.
func (r *Router) publish(recs []kafkasink.Record, emit func(kafkasink.Record) error) error {
	if err := r.flushTxBegin(emit); err != nil {
		return err
	}
	for i := range recs {
		if err := emit(r.numbered(recs[i])); err != nil {
			return err
		}
	}
	return nil
}

// numbered adds the pgcdc.position header.
func (r *Router) numbered(rec kafkasink.Record) kafkasink.Record {
	rec.Headers = append(rec.Headers[:len(rec.Headers):len(rec.Headers)], kafkasink.Header{Key: HeaderPosition, Value: strconv.AppendInt(nil, r.position, 10)})
	r.position++
	return rec
}

// describe returns the route of rel, building its encoder when rel is new.
func (r *Router) describe(rel *decode.Relation) (*table, error) {
	if t := r.tables[rel.ID]; t != nil && t.rel == rel {
		return t, nil
	}
	enc, err := event.NewEncoder(r.opts.Event, r.shapeTable(rel)) // shaping.go
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", rel.Name, err)
	}
	t := &table{rel: rel, enc: enc, topic: enc.Topic(), keyCap: 64, valueCap: 512}
	if t.flat, err = r.flatEncoder(enc); err != nil { // unwrap.go
		return nil, fmt.Errorf("table %s: %w", rel.Name, err)
	}
	r.tables[rel.ID] = t
	if raw := r.opts.Event.TopicPrefix + "." + rel.Name; raw != t.topic && !r.logged[rel.Name] {
		r.logged[rel.Name] = true
		r.opts.Log.Info().Str("table", rel.Name).Str("topic", t.topic).
			Msg("table name has characters Kafka does not allow in topic names: replaced by '_' as Debezium does")
	}
	return t, nil
}

// route returns the route of a row change's relation.
func (r *Router) route(ch *decode.Change) (*table, error) {
	if ch.Relation == nil {
		return nil, fmt.Errorf("route: %s at LSN %s without a relation", ch.Kind, ch.LSN)
	}
	return r.describe(ch.Relation)
}

func (r *Router) update(recs []kafkasink.Record, ch *decode.Change) ([]kafkasink.Record, error) {
	if r.opts.SkippedOperations[event.OpUpdate] {
		// Debezium 3.6.1 creates its publication WITH (publish = ...) without updates: the server
		// sends none, not even those that change the key.
		return recs, nil
	}
	before, after := ch.Before, ch.After
	t, err := r.route(ch)
	if err != nil {
		return recs, err
	}
	// The key as published (message.key.columns may choose other columns than the catalog's).
	if key := t.enc.Table().Key; before != nil && len(key) > 0 && KeyChanged(key, before, after) {
		return r.keyChange(recs, ch)
	}
	if ch.BeforeIsKey {
		before = nil // 'K' carries only the key, and only when it changed (handled above)
	}
	return r.change(recs, ch, event.OpUpdate, before, after, nil)
}

// Snapshot builds the op "r" event of one snapshot row of rel, read at src, and passes its
// record(s) to emit; position is the row's pgcdc.position header (unique within the snapshot).
func (r *Router) Snapshot(rel *decode.Relation, row []event.Datum, src event.Source, position int64, emit func(kafkasink.Record) error) error {
	ch := &decode.Change{Kind: decode.KindRead, LSN: pglogrepl.LSN(src.LSN), Relation: rel, After: row}
	for _, f := range r.filters {
		if !f.Keep(ch) {
			return nil
		}
	}
	t, err := r.describe(rel)
	if err != nil {
		return err
	}
	var key []byte
	if t.enc.HasKey() {
		if key, _, err = t.enc.AppendKey(make([]byte, 0, t.keyCap), row); err != nil {
			return fmt.Errorf("snapshot of %s: %w", rel.Name, err)
		}
	}
	recs, err := r.build(r.recs[:0], t, ch, built{op: event.OpRead, after: row, src: src, now: r.opts.Now(), key: key}) // records.go
	if err != nil {
		return fmt.Errorf("snapshot of %s: %w", rel.Name, err)
	}
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(rel.Name, event.OpRead)
	}
	for _, s := range r.opts.Steps {
		if recs, err = s.Apply(ch, recs); err != nil {
			return fmt.Errorf("snapshot of %s: %w", rel.Name, err)
		}
	}
	r.recs = recs[:0]
	for i := range recs {
		r.position = position
		if err := emit(r.numbered(recs[i])); err != nil {
			return err
		}
	}
	return nil
}

// KeyChanged reports whether the key columns differ between two row images.
func KeyChanged(key []int, before, after []event.Datum) bool {
	for _, i := range key {
		if i >= len(before) || i >= len(after) {
			return true
		}
		b, a := before[i], after[i]
		if a.Kind == event.DatumUnchanged {
			continue
		}
		if b.Kind != a.Kind || string(b.Text) != string(a.Text) {
			return true
		}
	}
	return false
}

// keyChange publishes a primary-key change as Debezium does: a delete of the old key (with a
// tombstone) carrying the new key in a header, then a create of the new key carrying the old one.
func (r *Router) keyChange(recs []kafkasink.Record, ch *decode.Change) ([]kafkasink.Record, error) {
	t, err := r.route(ch)
	if err != nil {
		return recs, err
	}
	// Header values are the key payload only, as Kafka Connect writes headers.
	newKey, _, err := t.enc.AppendKeyHeader(nil, ch.After)
	if err != nil {
		return recs, err
	}
	oldKey, _, err := t.enc.AppendKeyHeader(nil, ch.Before)
	if err != nil {
		return recs, err
	}
	// Debezium puts the new key on the delete and on its tombstone.
	if recs, err = r.change(recs, ch, event.OpDelete, ch.Before, nil, []kafkasink.Header{{Key: HeaderNewKey, Value: newKey}}); err != nil {
		return recs, err
	}
	return r.change(recs, ch, event.OpCreate, nil, ch.After, []kafkasink.Header{{Key: HeaderOldKey, Value: oldKey}})
}

// change appends one change event (and, after a delete, its tombstone).
func (r *Router) change(recs []kafkasink.Record, ch *decode.Change, op event.Op, before, after []event.Datum, headers []kafkasink.Header) ([]kafkasink.Record, error) {
	if r.opts.SkippedOperations[op] { // skipped.operations: not published, not counted
		return recs, nil
	}
	t, err := r.route(ch)
	if err != nil {
		return recs, err
	}
	rel := ch.Relation
	keyRow := after
	if keyRow == nil {
		keyRow = before
	}
	var key []byte
	if t.enc.HasKey() {
		if keyRow == nil {
			return recs, fmt.Errorf("%s at LSN %s: no row image to take the key from", rel.Name, ch.LSN)
		}
		if key, _, err = t.enc.AppendKey(make([]byte, 0, t.keyCap), keyRow); err != nil {
			return recs, fmt.Errorf("at LSN %s: %w", ch.LSN, err)
		}
	}
	tx, err := r.transactionBlock(rel.Name, ch.LSN)
	if err != nil {
		return recs, err
	}
	recs, err = r.build(recs, t, ch, built{op: op, before: before, after: after, src: r.source(ch.LSN), tx: tx, now: r.opts.Now(), key: key, headers: headers}) // records.go
	if err != nil {
		return recs, fmt.Errorf("at LSN %s: %w", ch.LSN, err)
	}
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(rel.Name, op)
	}
	return recs, nil
}

// source is the envelope's source block for a change at lsn of the current transaction.
func (r *Router) source(lsn pglogrepl.LSN) event.Source {
	src := event.Source{Snapshot: "false", LSN: uint64(lsn)}
	if r.txn != nil {
		src.CommitTime, src.TxID, src.LastCommitLSN = r.txn.CommitTime, r.txn.Xid, uint64(r.txn.LastCommit)
	}
	return src
}

// truncate appends one op "t" event (null key, source only) per truncated table, when enabled.
func (r *Router) truncate(recs []kafkasink.Record, ch *decode.Change) ([]kafkasink.Record, error) {
	if !r.opts.Truncate {
		r.opts.Log.Debug().Str("lsn", ch.LSN.String()).Msg("truncate not published (events.truncate is off)")
		return recs, nil
	}
	for _, rel := range ch.Relations {
		t, err := r.describe(rel)
		if err != nil {
			return recs, err
		}
		tx, err := r.transactionBlock(rel.Name, ch.LSN)
		if err != nil {
			return recs, err
		}
		if t.flat != nil {
			continue // ExtractNewRecordState drops truncate events (counted in the transaction as in Debezium)
		}
		value, err := t.enc.AppendValue(make([]byte, 0, 256), event.OpTruncate, nil, nil, r.source(ch.LSN), tx, r.opts.Now())
		if err != nil {
			return recs, fmt.Errorf("at LSN %s: %w", ch.LSN, err)
		}
		recs = append(recs, kafkasink.Record{Topic: t.topic, Value: value, Table: rel.Name, LSN: ch.LSN})
		if r.opts.OnEvent != nil {
			r.opts.OnEvent(rel.Name, event.OpTruncate)
		}
	}
	return recs, nil
}

// message publishes a logical decoding message to <prefix>.message, or a Debezium heartbeat record
// for pgcdc's own heartbeat when asked.
func (r *Router) message(ch *decode.Change, emit func(kafkasink.Record) error) error {
	m := ch.Message
	if ch.Txn == nil { // a message outside any transaction is numbered on its own
		r.position = 0
	}
	if m.Prefix == HeartbeatPrefix {
		// pgcdc's heartbeat: non-transactional (a transaction of its own for the tracker), or
		// transactional when an older pgcdc wrote it. A Debezium heartbeat record when asked.
		if !r.opts.HeartbeatTopic {
			return nil
		}
		return emit(r.numbered(kafkasink.Record{
			Topic: r.meta.HeartbeatTopic(), Key: r.meta.AppendHeartbeatKey(nil), Value: r.meta.AppendHeartbeatValue(nil, r.opts.Now()),
			Table: "heartbeat", LSN: ch.LSN,
		}))
	}
	recs := r.recs[:0]
	if r.msgs.publish(m.Prefix) {
		rec, err := r.messageRecord(ch)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	// Steps see every message but pgcdc's heartbeats, published to <prefix>.message or not (the
	// outbox routes messages of its own prefixes whatever events.messages says).
	var err error
	for _, s := range r.opts.Steps {
		if recs, err = s.Apply(ch, recs); err != nil {
			return fmt.Errorf("at LSN %s: %w", ch.LSN, err)
		}
	}
	r.recs = recs[:0]
	return r.publish(recs, emit)
}

// messageRecord builds the <prefix>.message record of a logical decoding message.
func (r *Router) messageRecord(ch *decode.Change) (kafkasink.Record, error) {
	m := ch.Message
	src := event.Source{Snapshot: "false", LSN: uint64(ch.LSN)}
	if ch.Txn != nil {
		src.CommitTime, src.LastCommitLSN = ch.Txn.CommitTime, uint64(ch.Txn.LastCommit)
	} else {
		src.CommitTime = r.opts.Now()
	}
	var tx *event.Transaction
	if m.Transactional && ch.Txn != nil {
		src.TxID = ch.Txn.Xid
		var err error
		if tx, err = r.transactionBlock(m.Prefix, ch.LSN); err != nil {
			return kafkasink.Record{}, err
		}
	}
	key := r.meta.AppendMessageKey(make([]byte, 0, 64), m.Prefix)
	value := r.meta.AppendMessageValueTx(make([]byte, 0, 256+len(m.Content)), m.Prefix, m.Content, src, tx, r.opts.Now())
	return kafkasink.Record{Topic: r.meta.MessageTopic(), Key: key, Value: value, Table: "message " + strconv.Quote(m.Prefix), LSN: ch.LSN}, nil
}

// messageFilter decides which logical decoding message prefixes are published.
type messageFilter struct {
	enabled          bool
	include, exclude []*regexp.Regexp
}

func newMessageFilter(enabled bool, include, exclude []string) (messageFilter, error) {
	f := messageFilter{enabled: enabled}
	for _, p := range include {
		re, err := regexp.Compile("^(?:" + p + ")$")
		if err != nil {
			return f, fmt.Errorf("events.message_prefix_include: %w", err)
		}
		f.include = append(f.include, re)
	}
	for _, p := range exclude {
		re, err := regexp.Compile("^(?:" + p + ")$")
		if err != nil {
			return f, fmt.Errorf("events.message_prefix_exclude: %w", err)
		}
		f.exclude = append(f.exclude, re)
	}
	return f, nil
}

func (f messageFilter) publish(prefix string) bool {
	if !f.enabled || prefix == HeartbeatPrefix {
		return false
	}
	for _, re := range f.exclude {
		if re.MatchString(prefix) {
			return false
		}
	}
	if len(f.include) == 0 {
		return true
	}
	for _, re := range f.include {
		if re.MatchString(prefix) {
			return true
		}
	}
	return false
}
