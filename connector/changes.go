package connector

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/ack"
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
	headerNewKey   = "__debezium.newkey"
	headerOldKey   = "__debezium.oldkey"
)

// changes turns pgoutput messages into Kafka records, in commit order. It lives for one stream
// session and runs on the stream goroutine.
type changes struct {
	c         *Connector
	keepAlive func() error // called while waiting for room in the sink

	// The transaction being decoded (between Begin and Commit).
	inTxn      bool
	txn        ack.TxnID
	xid        uint32
	commitTime time.Time
	position   int64         // events so far (records, tombstones included): the pgcdc.position header
	beginLSN   pglogrepl.LSN // the transaction's first LSN (its BEGIN message's position)
	lastCommit pglogrepl.LSN // end LSN of the previous transaction's COMMIT: source.sequence[0] as Debezium writes it (0 = null, before the first commit of a session)
	meta       txMeta        // transaction metadata (events.transaction_metadata)

	// Streaming (protocol v2): inside a StreamStart..StreamStop block of transaction streamXid.
	inStream  bool
	streamXid uint32

	before, after []event.Datum
}

func newChanges(c *Connector, keepAlive func() error) *changes {
	return &changes{c: c, keepAlive: keepAlive}
}

// sessionLastCommit is source.sequence[0] of a stream session's first event. Debezium restores
// its last commit LSN (lsn_commit) from its offsets after a restart, so the first event after a
// restart carries the previous transaction's end; pgcdc's counterpart is where the session resumes:
// the slot's confirmed position, or the newer end of a transaction Kafka acknowledged (it differs
// only when idle keepalives moved the slot past the last commit). The first session on a slot this
// process created begins at the slot's consistent point and, as Debezium's first events after its
// initial snapshot, has none (null).
func (c *Connector) sessionLastCommit(start pglogrepl.LSN) pglogrepl.LSN {
	if c.slot.Created && start == c.slot.ConfirmedFlush {
		return 0
	}
	return start
}

// busy reports whether something is half done: a transaction being decoded or a stream block
// open. A clean stop waits for it, and a keepalive's WAL end is not confirmable meanwhile.
func (h *changes) busy() bool {
	return h.inTxn || h.inStream || (h.c.spool != nil && h.c.spool.Open() > 0)
}

// handle processes one pgoutput message that started at WAL position lsn. A panic in the
// decoder (malformed input) is reported as an error with the LSN, not a crash.
func (h *changes) handle(ctx context.Context, lsn pglogrepl.LSN, data []byte) (err error) {
	msg, err := parseMessage(data, h.inStream)
	if err != nil {
		return fatal(fmt.Errorf("postgres: cannot decode the pgoutput message at LSN %s: %w", lsn, err))
	}
	if h.inStream {
		return h.spoolMessage(lsn, data, msg)
	}
	return h.apply(ctx, lsn, msg)
}

// parseMessage parses a pgoutput message (protocol 1 or 2), turning decoder panics into errors.
func parseMessage(data []byte, inStream bool) (msg pglogrepl.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed message (type %q, %d bytes): %v", firstByte(data), len(data), r)
		}
	}()
	if len(data) == 0 {
		return nil, fmt.Errorf("empty message")
	}
	return pglogrepl.ParseV2(data, inStream)
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// apply handles a message of a transaction sent whole (or replayed from the spool).
func (h *changes) apply(ctx context.Context, lsn pglogrepl.LSN, msg pglogrepl.Message) error {
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		h.begin(lsn, m.Xid, m.CommitTime)
	case *pglogrepl.CommitMessage:
		return h.commit(ctx, m.CommitLSN, m.TransactionEndLSN)
	case *pglogrepl.RelationMessage:
		return h.relation(ctx, m)
	case *pglogrepl.RelationMessageV2:
		return h.relation(ctx, &m.RelationMessage)
	case *pglogrepl.InsertMessage:
		return h.insert(ctx, lsn, m)
	case *pglogrepl.InsertMessageV2:
		return h.insert(ctx, lsn, &m.InsertMessage)
	case *pglogrepl.UpdateMessage:
		return h.update(ctx, lsn, m)
	case *pglogrepl.UpdateMessageV2:
		return h.update(ctx, lsn, &m.UpdateMessage)
	case *pglogrepl.DeleteMessage:
		return h.delete(ctx, lsn, m)
	case *pglogrepl.DeleteMessageV2:
		return h.delete(ctx, lsn, &m.DeleteMessage)
	case *pglogrepl.TruncateMessage:
		return h.truncate(ctx, lsn, m)
	case *pglogrepl.TruncateMessageV2:
		return h.truncate(ctx, lsn, &m.TruncateMessage)
	case *pglogrepl.LogicalDecodingMessage:
		return h.message(ctx, lsn, m)
	case *pglogrepl.LogicalDecodingMessageV2:
		return h.message(ctx, lsn, &m.LogicalDecodingMessage)
	case *pglogrepl.TypeMessage, *pglogrepl.TypeMessageV2, *pglogrepl.OriginMessage:
		// Types are read from the catalog; the origin does not change the event.
	case *pglogrepl.StreamStartMessageV2:
		h.inStream, h.streamXid = true, m.Xid
	case *pglogrepl.StreamStopMessageV2:
		h.inStream = false
	case *pglogrepl.StreamCommitMessageV2:
		return h.streamCommit(ctx, m)
	case *pglogrepl.StreamAbortMessageV2:
		if err := h.c.spool.Abort(m.Xid, m.SubXid); err != nil {
			return fatal(err)
		}
	default:
		return fatal(fmt.Errorf("postgres: unexpected pgoutput message %T at LSN %s", msg, lsn))
	}
	return nil
}

func (h *changes) begin(lsn pglogrepl.LSN, xid uint32, commitTime time.Time) {
	h.inTxn, h.xid, h.commitTime, h.position, h.beginLSN = true, xid, commitTime, 0, lsn
	h.meta.reset()
	h.txn = h.c.tracker.Begin()
}

func (h *changes) commit(ctx context.Context, commitLSN, endLSN pglogrepl.LSN) error {
	if err := h.endTransactionMetadata(ctx, endLSN); err != nil {
		return err
	}
	h.c.tracker.Commit(h.txn, ack.LSN(endLSN))
	h.c.metrics.Committed(uint64(endLSN), h.commitTime)
	h.inTxn = false
	h.lastCommit = endLSN // Debezium's lastCommitLsn: the COMMIT message's position, the commit record's end
	return nil
}

func (h *changes) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	rel, err := h.c.rels.Update(ctx, m)
	if err != nil {
		err = fmt.Errorf("table %s.%s: %w", m.Namespace, m.RelationName, err)
		if h.c.catalogLost(err) {
			return err // transient: the next session reconnects the catalog connection
		}
		return fatal(err)
	}
	topic := rel.Encoder.Topic()
	if raw := h.c.cfg.Kafka.TopicPrefix + "." + m.Namespace + "." + m.RelationName; raw != topic {
		h.c.log.Info().Str("table", m.Namespace+"."+m.RelationName).Str("topic", topic).
			Msg("table name has characters Kafka does not allow in topic names: replaced by '_' as Debezium does")
	}
	return h.c.sink.EnsureTopic(ctx, topic)
}

func (h *changes) rows(m *pglogrepl.TupleData, dst *[]event.Datum) ([]event.Datum, error) {
	row, err := decode.Row(*dst, m)
	*dst = row
	return row, err
}

func (h *changes) insert(ctx context.Context, lsn pglogrepl.LSN, m *pglogrepl.InsertMessage) error {
	rel, err := h.c.rels.Get(m.RelationID)
	if err != nil {
		return fatal(err)
	}
	after, err := h.rows(m.Tuple, &h.after)
	if err != nil {
		return fatal(fmt.Errorf("%s.%s at LSN %s: %w", rel.Table.Schema, rel.Table.Name, lsn, err))
	}
	return h.emit(ctx, rel, lsn, event.OpCreate, nil, after, nil)
}

func (h *changes) update(ctx context.Context, lsn pglogrepl.LSN, m *pglogrepl.UpdateMessage) error {
	rel, err := h.c.rels.Get(m.RelationID)
	if err != nil {
		return fatal(err)
	}
	before, err := h.rows(m.OldTuple, &h.before)
	if err == nil {
		_, err = h.rows(m.NewTuple, &h.after)
	}
	if err != nil {
		return fatal(fmt.Errorf("%s.%s at LSN %s: %w", rel.Table.Schema, rel.Table.Name, lsn, err))
	}
	after := h.after
	// Unchanged TOAST values are absent from the new tuple; under REPLICA IDENTITY FULL the old
	// tuple has them.
	if before != nil {
		for i := range after {
			if after[i].Kind == event.DatumUnchanged && i < len(before) && before[i].Kind == event.DatumText {
				after[i] = before[i]
			}
		}
	}
	if before != nil && len(rel.Key) > 0 && keyChanged(rel.Key, before, after) {
		return h.keyChange(ctx, rel, lsn, before, after)
	}
	if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey {
		before = nil // 'K' carries only the key, and only when it changed (handled above)
	}
	return h.emit(ctx, rel, lsn, event.OpUpdate, before, after, nil)
}

// keyChanged reports whether the key columns differ between two row images.
func keyChanged(key []int, before, after []event.Datum) bool {
	for _, i := range key {
		if i >= len(before) || i >= len(after) {
			return true
		}
		b, a := before[i], after[i]
		if a.Kind == event.DatumUnchanged {
			continue
		}
		if b.Kind != a.Kind || !bytes.Equal(b.Text, a.Text) {
			return true
		}
	}
	return false
}

// keyChange publishes a primary-key change as Debezium does: a delete of the old key (with a
// tombstone) carrying the new key in a header, then a create of the new key carrying the old one.
func (h *changes) keyChange(ctx context.Context, rel *decode.Relation, lsn pglogrepl.LSN, before, after []event.Datum) error {
	// Header values are the key payload only, as Kafka Connect writes headers.
	newKey, _, err := rel.Encoder.AppendKeyHeader(nil, after)
	if err != nil {
		return fatal(err)
	}
	oldKey, _, err := rel.Encoder.AppendKeyHeader(nil, before)
	if err != nil {
		return fatal(err)
	}
	// Debezium puts the new key on the delete and on its tombstone.
	if err := h.emit(ctx, rel, lsn, event.OpDelete, before, nil, []kafka.Header{{Key: headerNewKey, Value: newKey}}); err != nil {
		return err
	}
	return h.emit(ctx, rel, lsn, event.OpCreate, nil, after, []kafka.Header{{Key: headerOldKey, Value: oldKey}})
}

func (h *changes) delete(ctx context.Context, lsn pglogrepl.LSN, m *pglogrepl.DeleteMessage) error {
	rel, err := h.c.rels.Get(m.RelationID)
	if err != nil {
		return fatal(err)
	}
	before, err := h.rows(m.OldTuple, &h.before)
	if err != nil {
		return fatal(fmt.Errorf("%s.%s at LSN %s: %w", rel.Table.Schema, rel.Table.Name, lsn, err))
	}
	return h.emit(ctx, rel, lsn, event.OpDelete, before, nil, nil)
}

// emit encodes one change event (and, after a delete, its tombstone) and hands it to the sink.
func (h *changes) emit(ctx context.Context, rel *decode.Relation, lsn pglogrepl.LSN, op event.Op, before, after []event.Datum, headers []kafka.Header) error {
	if !h.inTxn {
		return fatal(fmt.Errorf("postgres: change at LSN %s outside a transaction", lsn))
	}
	keyRow := after
	if keyRow == nil {
		keyRow = before
	}
	var key []byte
	keyBuf, valueBuf := rel.Buffers()
	if rel.Encoder.HasKey() {
		if keyRow == nil {
			return fatal(fmt.Errorf("%s.%s at LSN %s: no row image to take the key from", rel.Table.Schema, rel.Table.Name, lsn))
		}
		k, _, err := rel.Encoder.AppendKey(keyBuf, keyRow)
		if err != nil {
			return fatal(fmt.Errorf("at LSN %s: %w", lsn, err))
		}
		key = k
	}
	table := rel.Name
	tx, err := h.transactionBlock(ctx, table, lsn)
	if err != nil {
		return err
	}
	value, err := rel.Encoder.AppendValue(valueBuf, op, before, after, h.source(lsn), tx, time.Now())
	if err != nil {
		return fatal(fmt.Errorf("at LSN %s: %w", lsn, err))
	}
	rel.Observe(len(key), len(value))
	if err := h.send(ctx, kafkasink.Record{Topic: rel.Encoder.Topic(), Key: key, Value: value, Headers: headers, Table: table, LSN: uint64(lsn)}); err != nil {
		return err
	}
	h.c.metrics.Event(table, byte(op))
	if op == event.OpDelete && h.c.cfg.Events.TombstonesOnDelete && key != nil {
		return h.send(ctx, kafkasink.Record{Topic: rel.Encoder.Topic(), Key: key, Value: nil, Headers: headers, Table: table, LSN: uint64(lsn)})
	}
	return nil
}

// source is the envelope's source block for a change at lsn of the current transaction.
func (h *changes) source(lsn pglogrepl.LSN) event.Source {
	return event.Source{CommitTime: h.commitTime, Snapshot: "false", TxID: h.xid, LSN: uint64(lsn), LastCommitLSN: uint64(h.lastCommit)}
}

// send waits for room in the sink (keeping the replication connection alive) and enqueues rec.
func (h *changes) send(ctx context.Context, rec kafkasink.Record) error {
	rec.Txn = h.txn
	rec.Headers = append(rec.Headers[:len(rec.Headers):len(rec.Headers)], kafka.Header{Key: HeaderPosition, Value: strconv.AppendInt(nil, h.position, 10)})
	h.position++
	wait := h.c.statusInterval() / 2
	for {
		ok, err := h.c.sink.Reserve(context.Background(), &rec, wait)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if err := h.keepAlive(); err != nil {
			return err
		}
	}
	h.c.tracker.Add(h.txn, 1)
	if err := h.c.sink.Enqueue(rec); err != nil {
		return err
	}
	return nil
}
