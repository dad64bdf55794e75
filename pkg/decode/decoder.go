package decode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/internal/spool"
	"github.com/pgcdc/pgcdc/pkg/event"
)

// Decoder turns pgoutput messages (protocol 1 or 2) into Changes in commit order. With protocol 2,
// the changes of a transaction streamed while in progress are kept in a spool until its Stream
// Commit and dropped on Stream Abort (a subtransaction's alone on ROLLBACK TO SAVEPOINT), so that
// nothing uncommitted ever leaves the decoder. A Decoder is used by one goroutine.
type Decoder struct {
	rels  *Relations
	spool *spool.Spool // nil: protocol 1

	txn        Txn
	inTxn      bool
	inStream   bool // inside a StreamStart..StreamStop block
	streamXid  uint32
	lastCommit pglogrepl.LSN

	ch            Change
	before, after []event.Datum
}

// NewDecoder returns a decoder over the relation cache rels; sp keeps streamed transactions
// (protocol 2) and is nil otherwise.
func NewDecoder(rels *Relations, sp *spool.Spool) *Decoder {
	return &Decoder{rels: rels, spool: sp}
}

// Idle reports whether the decoder is between transactions: none being decoded, no stream block
// open and none spooled. A keepalive's WAL end is confirmable only then, and a clean stop waits
// for it (except for spooled transactions, which are simply streamed again).
func (d *Decoder) Idle() bool { return d.AtBoundary() && (d.spool == nil || d.spool.Open() == 0) }

// AtBoundary reports whether no transaction is being decoded and no stream block is open.
func (d *Decoder) AtBoundary() bool { return !d.inTxn && !d.inStream }

// Reset starts a new replication session: what a broken session left half done is forgotten
// (PostgreSQL sends it again, whole), and so are the relations (they are described again).
func (d *Decoder) Reset() error {
	d.inTxn, d.inStream, d.lastCommit = false, false, 0
	d.rels.Reset()
	if d.spool != nil {
		if err := d.spool.Reset(); err != nil {
			return fmt.Errorf("postgres.spool_dir: %w", err)
		}
	}
	return nil
}

// SetLastCommit sets the end of the commit before the next transaction (source.sequence[0] of its
// events), for a session's first transaction (Reset forgets it).
func (d *Decoder) SetLastCommit(end pglogrepl.LSN) { d.lastCommit = end }

// Decode decodes the pgoutput message data that starts at WAL position lsn and calls emit for each
// change it completes. Errors name the LSN; a malformed message is an error, never a crash.
//
// data is the decoder's from then on: the changes' values may alias it.
func (d *Decoder) Decode(ctx context.Context, lsn pglogrepl.LSN, data []byte, emit func(*Change) error) error {
	if !d.inStream && len(data) > 0 {
		switch data[0] {
		case 'I', 'U', 'D':
			return d.rowRaw(ctx, lsn, data, emit)
		}
	}
	msg, err := Parse(data, d.inStream)
	if err != nil {
		return fmt.Errorf("postgres: cannot decode the pgoutput message at LSN %s: %w", lsn, err)
	}
	if d.inStream {
		return d.spoolMessage(lsn, data, msg)
	}
	return d.apply(ctx, lsn, msg, emit)
}

// Parse parses a pgoutput message (protocol 1 or 2), turning the parser's panics on malformed input
// into errors.
func Parse(data []byte, inStream bool) (msg pglogrepl.Message, err error) {
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
func (d *Decoder) apply(ctx context.Context, lsn pglogrepl.LSN, msg pglogrepl.Message, emit func(*Change) error) error {
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		return d.begin(lsn, m.Xid, m.CommitTime, emit)
	case *pglogrepl.CommitMessage:
		return d.commit(m.TransactionEndLSN, emit)
	case *pglogrepl.RelationMessage:
		return d.relation(ctx, lsn, m, emit)
	case *pglogrepl.RelationMessageV2:
		return d.relation(ctx, lsn, &m.RelationMessage, emit)
	case *pglogrepl.InsertMessage:
		return d.insert(ctx, lsn, m, emit)
	case *pglogrepl.InsertMessageV2:
		return d.insert(ctx, lsn, &m.InsertMessage, emit)
	case *pglogrepl.UpdateMessage:
		return d.update(ctx, lsn, m, emit)
	case *pglogrepl.UpdateMessageV2:
		return d.update(ctx, lsn, &m.UpdateMessage, emit)
	case *pglogrepl.DeleteMessage:
		return d.delete(ctx, lsn, m, emit)
	case *pglogrepl.DeleteMessageV2:
		return d.delete(ctx, lsn, &m.DeleteMessage, emit)
	case *pglogrepl.TruncateMessage:
		return d.truncate(lsn, m, emit)
	case *pglogrepl.TruncateMessageV2:
		return d.truncate(lsn, &m.TruncateMessage, emit)
	case *pglogrepl.LogicalDecodingMessage:
		return d.message(lsn, m, emit)
	case *pglogrepl.LogicalDecodingMessageV2:
		return d.message(lsn, &m.LogicalDecodingMessage, emit)
	case *pglogrepl.TypeMessage:
		d.rels.Type(m)
	case *pglogrepl.TypeMessageV2:
		d.rels.Type(&m.TypeMessage)
	case *pglogrepl.OriginMessage:
		// The origin does not change the event.
	case *pglogrepl.StreamStartMessageV2:
		d.inStream, d.streamXid = true, m.Xid
	case *pglogrepl.StreamStopMessageV2:
		d.inStream = false
	case *pglogrepl.StreamCommitMessageV2:
		return d.streamCommit(ctx, m, emit)
	case *pglogrepl.StreamAbortMessageV2:
		if d.spool == nil {
			return fmt.Errorf("postgres: stream abort at LSN %s without protocol 2", lsn)
		}
		return d.spool.Abort(m.Xid, m.SubXid)
	default:
		return fmt.Errorf("postgres: unexpected pgoutput message %T at LSN %s", msg, lsn)
	}
	return nil
}

func (d *Decoder) emit(emit func(*Change) error, kind Kind, lsn pglogrepl.LSN) error {
	d.ch = Change{Kind: kind, LSN: lsn, Txn: &d.txn}
	return emit(&d.ch)
}

func (d *Decoder) begin(lsn pglogrepl.LSN, xid uint32, commitTime time.Time, emit func(*Change) error) error {
	d.inTxn = true
	d.txn = Txn{Xid: xid, CommitTime: commitTime, BeginLSN: lsn, LastCommit: d.lastCommit}
	return d.emit(emit, KindBegin, lsn)
}

func (d *Decoder) commit(end pglogrepl.LSN, emit func(*Change) error) error {
	if !d.inTxn {
		return fmt.Errorf("postgres: commit at LSN %s outside a transaction", end)
	}
	err := d.emit(emit, KindCommit, end)
	d.inTxn = false
	d.lastCommit = end // Debezium's lastCommitLsn: the COMMIT message's position, the commit record's end
	return err
}

func (d *Decoder) relation(ctx context.Context, lsn pglogrepl.LSN, m *pglogrepl.RelationMessage, emit func(*Change) error) error {
	rel, err := d.rels.Update(ctx, m)
	if err != nil {
		return fmt.Errorf("table %s.%s: %w", m.Namespace, m.RelationName, err)
	}
	d.ch = Change{Kind: KindRelation, LSN: lsn, Relation: rel}
	if d.inTxn {
		d.ch.Txn = &d.txn
	}
	return emit(&d.ch)
}

// change prepares a row change of the current transaction.
func (d *Decoder) change(kind Kind, lsn pglogrepl.LSN, relID uint32) (*Change, error) {
	if !d.inTxn {
		return nil, fmt.Errorf("postgres: %s at LSN %s outside a transaction", kind, lsn)
	}
	rel, err := d.rels.Get(relID)
	if err != nil {
		return nil, err
	}
	d.ch = Change{Kind: kind, LSN: lsn, Txn: &d.txn, Relation: rel}
	return &d.ch, nil
}

func (d *Decoder) rowErr(ch *Change, err error) error {
	return fmt.Errorf("%s at LSN %s: %w", ch.Relation.Name, ch.LSN, err)
}

func (d *Decoder) insert(ctx context.Context, lsn pglogrepl.LSN, m *pglogrepl.InsertMessage, emit func(*Change) error) error {
	ch, err := d.change(KindInsert, lsn, m.RelationID)
	if err != nil {
		return err
	}
	if d.after, err = Row(d.after, m.Tuple); err != nil {
		return d.rowErr(ch, err)
	}
	return d.row(ctx, ch, nil, d.after, 0, emit)
}

// rowRaw decodes a row message (insert, update or delete) outside a stream block from its bytes
// (rowmsg.go), with the errors of the pglogrepl path: a malformed message, then the transaction
// or relation, then a binary column.
func (d *Decoder) rowRaw(ctx context.Context, lsn pglogrepl.LSN, data []byte, emit func(*Change) error) error {
	kind := KindInsert
	switch data[0] {
	case 'U':
		kind = KindUpdate
	case 'D':
		kind = KindDelete
	}
	m, perr := parseRowMessage(data, d.before, d.after)
	if errors.Is(perr, errMalformed) {
		return fmt.Errorf("postgres: cannot decode the pgoutput message at LSN %s: %w (type %q, %d bytes)", lsn, perr, data[0], len(data))
	}
	if m.before != nil {
		d.before = m.before
	}
	if m.after != nil {
		d.after = m.after
	}
	ch, err := d.change(kind, lsn, m.relID)
	if err != nil {
		return err
	}
	if perr != nil {
		return d.rowErr(ch, perr)
	}
	return d.row(ctx, ch, m.before, m.after, m.beforeTag, emit)
}

// row completes a row change with its tuples (nil when absent; beforeTag 'K': before holds the
// key columns only) and emits it.
func (d *Decoder) row(ctx context.Context, ch *Change, before, after []event.Datum, beforeTag byte, emit func(*Change) error) error {
	ch.Before, ch.After = before, after
	ch.BeforeIsKey = beforeTag == pglogrepl.UpdateMessageTupleTypeKey
	// Unchanged TOAST values are absent from the new tuple of an update; under REPLICA IDENTITY
	// FULL the old tuple has them.
	if ch.Kind == KindUpdate && ch.Before != nil && !ch.BeforeIsKey {
		for i := range ch.After {
			if ch.After[i].Kind == event.DatumUnchanged && i < len(ch.Before) && ch.Before[i].Kind == event.DatumText {
				ch.After[i] = ch.Before[i]
			}
		}
	}
	return d.emitRow(ctx, ch, emit)
}

// emitRow emits a row change, after re-describing its relation when the row holds an enum value
// the relation's labels lack (a label added since they were read).
func (d *Decoder) emitRow(ctx context.Context, ch *Change, emit func(*Change) error) error {
	if ch.Relation.Stale(ch.After) || ch.Relation.Stale(ch.Before) {
		row := *ch
		rel, err := d.rels.Refresh(ctx, ch.Relation)
		if err != nil {
			return fmt.Errorf("table %s: %w", ch.Relation.Name, err)
		}
		if err := emit(&Change{Kind: KindRelation, LSN: ch.LSN, Txn: ch.Txn, Relation: rel}); err != nil {
			return err
		}
		row.Relation = rel
		d.ch = row
		ch = &d.ch
	}
	return emit(ch)
}

func (d *Decoder) update(ctx context.Context, lsn pglogrepl.LSN, m *pglogrepl.UpdateMessage, emit func(*Change) error) error {
	ch, err := d.change(KindUpdate, lsn, m.RelationID)
	if err != nil {
		return err
	}
	if d.before, err = Row(d.before, m.OldTuple); err == nil {
		d.after, err = Row(d.after, m.NewTuple)
	}
	if err != nil {
		return d.rowErr(ch, err)
	}
	return d.row(ctx, ch, d.before, d.after, m.OldTupleType, emit)
}

func (d *Decoder) delete(ctx context.Context, lsn pglogrepl.LSN, m *pglogrepl.DeleteMessage, emit func(*Change) error) error {
	ch, err := d.change(KindDelete, lsn, m.RelationID)
	if err != nil {
		return err
	}
	if d.before, err = Row(d.before, m.OldTuple); err != nil {
		return d.rowErr(ch, err)
	}
	return d.row(ctx, ch, d.before, nil, m.OldTupleType, emit)
}

func (d *Decoder) truncate(lsn pglogrepl.LSN, m *pglogrepl.TruncateMessage, emit func(*Change) error) error {
	if !d.inTxn {
		return fmt.Errorf("postgres: truncate at LSN %s outside a transaction", lsn)
	}
	rels := make([]*Relation, 0, len(m.RelationIDs))
	for _, id := range m.RelationIDs {
		rel, err := d.rels.Get(id)
		if err != nil {
			return err
		}
		rels = append(rels, rel)
	}
	d.ch = Change{Kind: KindTruncate, LSN: lsn, Txn: &d.txn, Relations: rels}
	return emit(&d.ch)
}

func (d *Decoder) message(lsn pglogrepl.LSN, m *pglogrepl.LogicalDecodingMessage, emit func(*Change) error) error {
	d.ch = Change{Kind: KindMessage, LSN: lsn, Message: Message{Prefix: m.Prefix, Content: m.Content, Transactional: m.Transactional}}
	if d.inTxn {
		d.ch.Txn = &d.txn
	}
	return emit(&d.ch)
}

// spoolMessage keeps a message of an in-progress streamed transaction in its spool file. Nothing
// of it leaves the decoder before its Stream Commit.
func (d *Decoder) spoolMessage(lsn pglogrepl.LSN, data []byte, msg pglogrepl.Message) error {
	var subxid uint32
	switch m := msg.(type) {
	case *pglogrepl.StreamStopMessageV2:
		d.inStream = false
		return nil
	case *pglogrepl.InsertMessageV2:
		subxid = m.Xid
	case *pglogrepl.UpdateMessageV2:
		subxid = m.Xid
	case *pglogrepl.DeleteMessageV2:
		subxid = m.Xid
	case *pglogrepl.TruncateMessageV2:
		subxid = m.Xid
	case *pglogrepl.RelationMessageV2:
		subxid = m.Xid
	case *pglogrepl.TypeMessageV2:
		subxid = m.Xid
	case *pglogrepl.LogicalDecodingMessageV2:
		subxid = m.Xid
	default:
		return fmt.Errorf("postgres: unexpected %T inside a stream block at LSN %s", msg, lsn)
	}
	if subxid == 0 {
		subxid = d.streamXid
	}
	if d.spool == nil {
		return fmt.Errorf("postgres: stream block at LSN %s without protocol 2", lsn)
	}
	return d.spool.Append(d.streamXid, subxid, uint64(lsn), data)
}

// streamCommit decodes a streamed transaction from its spool, as one transaction in commit order.
func (d *Decoder) streamCommit(ctx context.Context, m *pglogrepl.StreamCommitMessageV2, emit func(*Change) error) error {
	if d.spool == nil {
		return fmt.Errorf("postgres: stream commit of transaction %d without protocol 2", m.Xid)
	}
	it, err := d.spool.Commit(m.Xid)
	if err != nil {
		return err
	}
	defer it.Close()
	first := true
	for it.Next() {
		_, lsn, data := it.Record()
		if first {
			// The transaction's first change stands for its BEGIN.
			if err := d.begin(pglogrepl.LSN(lsn), m.Xid, m.CommitTime, emit); err != nil {
				return err
			}
			first = false
		}
		msg, err := Parse(data, true)
		if err != nil {
			return fmt.Errorf("spooled message of transaction %d at LSN %s: %w", m.Xid, pglogrepl.LSN(lsn), err)
		}
		if err := d.apply(ctx, pglogrepl.LSN(lsn), msg, emit); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("spool of transaction %d: %w", m.Xid, err)
	}
	if first {
		if err := d.begin(0, m.Xid, m.CommitTime, emit); err != nil {
			return err
		}
	}
	return d.commit(m.TransactionEndLSN, emit)
}
