package connector

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

// HeartbeatPrefix is the logical decoding message prefix of pgcdc's own heartbeats; messages with
// it are never published.
const HeartbeatPrefix = "__pgcdc_heartbeat"

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

// truncate publishes a TRUNCATE as one op "t" event (null key, source only) per truncated table,
// when events.truncate is on.
func (h *changes) truncate(ctx context.Context, lsn pglogrepl.LSN, m *pglogrepl.TruncateMessage) error {
	if !h.c.cfg.Events.Truncate {
		h.c.log.Debug().Str("lsn", lsn.String()).Msg("truncate not published (events.truncate is off)")
		return nil
	}
	if !h.inTxn {
		return fatal(fmt.Errorf("postgres: truncate at LSN %s outside a transaction", lsn))
	}
	for _, id := range m.RelationIDs {
		rel, err := h.c.rels.Get(id)
		if err != nil {
			return fatal(err)
		}
		table := rel.Table.Schema + "." + rel.Table.Name
		tx, err := h.transactionBlock(ctx, table, lsn)
		if err != nil {
			return err
		}
		value, err := rel.Encoder.AppendValue(make([]byte, 0, 256), event.OpTruncate, nil, nil, h.source(lsn), tx, time.Now())
		if err != nil {
			return fatal(fmt.Errorf("at LSN %s: %w", lsn, err))
		}
		if err := h.send(ctx, kafkasink.Record{Topic: rel.Encoder.Topic(), Value: value, Table: table, LSN: uint64(lsn)}); err != nil {
			return err
		}
	}
	return nil
}

// message publishes a logical decoding message to <prefix>.message. A transactional message is
// part of its transaction; a non-transactional one is a transaction of its own for the tracker,
// confirmable just past its LSN.
func (h *changes) message(ctx context.Context, lsn pglogrepl.LSN, m *pglogrepl.LogicalDecodingMessage) error {
	if m.Prefix == HeartbeatPrefix {
		return h.heartbeat(ctx, lsn)
	}
	if !h.c.msgFilter.publish(m.Prefix) {
		return nil
	}
	topic := h.c.meta.MessageTopic()
	if err := h.c.sink.EnsureTopic(ctx, topic); err != nil {
		return err
	}
	own := !h.inTxn
	if own {
		h.begin(lsn, 0, time.Now())
	}
	src := event.Source{CommitTime: h.commitTime, Snapshot: "false", LSN: uint64(lsn), LastCommitLSN: uint64(h.lastCommit)}
	var tx *event.Transaction
	if m.Transactional {
		src.TxID = h.xid
		var err error
		if tx, err = h.transactionBlock(ctx, m.Prefix, lsn); err != nil {
			return err
		}
	}
	key := h.c.meta.AppendMessageKey(make([]byte, 0, 64), m.Prefix)
	value := h.c.meta.AppendMessageValueTx(make([]byte, 0, 256+len(m.Content)), m.Prefix, m.Content, src, tx, time.Now())
	if err := h.send(ctx, kafkasink.Record{Topic: topic, Key: key, Value: value, Table: "message " + strconv.Quote(m.Prefix), LSN: uint64(lsn)}); err != nil {
		return err
	}
	if own {
		h.c.tracker.Commit(h.txn, ackLSN(lsn+1))
		h.inTxn = false
	}
	return nil
}

// txMeta is the transaction metadata of the transaction being decoded. Debezium's PostgreSQL
// connector forms every transaction id as "<txId>:<LSN of the message at hand>": the BEGIN event
// carries the BEGIN's LSN, each data event its own LSN, the END event the COMMIT's position. pgcdc
// writes the same, so that consumers written for Debezium pair them the same way.
type txMeta struct {
	started bool             // BEGIN published
	id      string           // id of the BEGIN event
	total   int64            // data events so far
	counts  map[string]int64 // per "<schema>.<table>"
	order   []string         // tables in first-event order
}

func (m *txMeta) reset() {
	m.started, m.id, m.total, m.order = false, "", 0, m.order[:0]
	clear(m.counts)
}

// transactionBlock returns the envelope's transaction block for the next data event of table,
// publishing the transaction's BEGIN event first when this is its first event; nil when
// transaction metadata is off.
func (h *changes) transactionBlock(ctx context.Context, table string, lsn pglogrepl.LSN) (*event.Transaction, error) {
	if !h.c.cfg.Events.TransactionMetadata {
		return nil, nil
	}
	m := &h.meta
	if !m.started {
		m.started = true
		m.id = txID(h.xid, h.beginLSN)
		if m.counts == nil {
			m.counts = map[string]int64{}
		}
		if err := h.sendTxEvent(ctx, m.id, h.c.meta.AppendTxBegin(nil, m.id, h.commitTime)); err != nil {
			return nil, err
		}
	}
	m.total++
	if _, ok := m.counts[table]; !ok {
		m.order = append(m.order, table)
	}
	m.counts[table]++
	return &event.Transaction{ID: txID(h.xid, lsn), TotalOrder: m.total, DataCollectionOrder: m.counts[table]}, nil
}

func txID(xid uint32, lsn pglogrepl.LSN) string {
	return strconv.FormatUint(uint64(xid), 10) + ":" + strconv.FormatUint(uint64(lsn), 10)
}

// endTransactionMetadata publishes the END event of a transaction that had events; commitEnd is
// the COMMIT message's position.
func (h *changes) endTransactionMetadata(ctx context.Context, commitEnd pglogrepl.LSN) error {
	m := &h.meta
	if !h.c.cfg.Events.TransactionMetadata || !m.started {
		return nil
	}
	counts := make([]event.CollectionCount, len(m.order))
	for i, t := range m.order {
		counts[i] = event.CollectionCount{Collection: t, Events: m.counts[t]}
	}
	id := txID(h.xid, commitEnd)
	return h.sendTxEvent(ctx, id, h.c.meta.AppendTxEnd(nil, id, h.commitTime, m.total, counts))
}

func (h *changes) sendTxEvent(ctx context.Context, id string, value []byte) error {
	topic := h.c.meta.TransactionTopic()
	if err := h.c.sink.EnsureTopic(ctx, topic); err != nil {
		return err
	}
	key := h.c.meta.AppendTxKey(nil, id)
	return h.send(ctx, kafkasink.Record{Topic: topic, Key: key, Value: value, Table: "transaction " + id, LSN: uint64(h.beginLSN)})
}
