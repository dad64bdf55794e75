package connector

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// spoolMessage keeps a message of an in-progress streamed transaction in its spool file. Nothing
// of it reaches Kafka before its Stream Commit.
func (h *changes) spoolMessage(lsn pglogrepl.LSN, data []byte, msg pglogrepl.Message) error {
	var subxid uint32
	switch m := msg.(type) {
	case *pglogrepl.StreamStopMessageV2:
		h.inStream = false
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
		return fatal(fmt.Errorf("postgres: unexpected %T inside a stream block at LSN %s", msg, lsn))
	}
	if subxid == 0 {
		subxid = h.streamXid
	}
	if err := h.c.spool.Append(h.streamXid, subxid, uint64(lsn), data); err != nil {
		return fatal(err)
	}
	return nil
}

// streamCommit publishes a streamed transaction from its spool, as one transaction in commit order.
func (h *changes) streamCommit(ctx context.Context, m *pglogrepl.StreamCommitMessageV2) error {
	it, err := h.c.spool.Commit(m.Xid)
	if err != nil {
		return fatal(err)
	}
	defer it.Close()
	h.begin(0, m.Xid, m.CommitTime)
	for it.Next() {
		_, lsn, data := it.Record()
		if h.beginLSN == 0 {
			h.beginLSN = pglogrepl.LSN(lsn) // the transaction's first change
		}
		msg, err := parseMessage(data, true)
		if err != nil {
			return fatal(fmt.Errorf("spooled message of transaction %d at LSN %s: %w", m.Xid, pglogrepl.LSN(lsn), err))
		}
		if err := h.apply(ctx, pglogrepl.LSN(lsn), msg); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return fatal(fmt.Errorf("spool of transaction %d: %w", m.Xid, err))
	}
	return h.commit(ctx, m.CommitLSN, m.TransactionEndLSN)
}
