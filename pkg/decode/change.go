package decode

import (
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/pkg/event"
)

// Kind says what a Change is.
type Kind uint8

const (
	KindBegin    Kind = iota + 1 // a transaction starts (Txn)
	KindCommit                   // the transaction ends; LSN is its commit record's end
	KindRelation                 // Relation was (re)described: its changes follow with this shape
	KindInsert                   // After
	KindUpdate                   // After; Before under REPLICA IDENTITY FULL, or the old key when it changed
	KindDelete                   // Before: the old row (FULL) or its key columns
	KindTruncate                 // Relations were truncated
	KindMessage                  // a logical decoding message (Message)
	KindRead                     // a row read by a snapshot (After), not decoded from the WAL
)

var kindNames = [...]string{KindBegin: "begin", KindCommit: "commit", KindRelation: "relation", KindInsert: "insert",
	KindUpdate: "update", KindDelete: "delete", KindTruncate: "truncate", KindMessage: "message", KindRead: "read"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// Txn is the transaction a change belongs to.
type Txn struct {
	Xid        uint32        // top-level transaction id (source.txId)
	CommitTime time.Time     // commit timestamp (source.ts_ms)
	BeginLSN   pglogrepl.LSN // the transaction's first position: its BEGIN, or its first change when streamed
	// LastCommit is the end of the previous transaction's COMMIT in this session (0 before the
	// first): source.sequence[0] as Debezium writes it.
	LastCommit pglogrepl.LSN
}

// Message is a logical decoding message (pg_logical_emit_message).
type Message struct {
	Prefix        string
	Content       []byte
	Transactional bool
}

// Change is one decoded change, in commit order. A Change and its row images are valid only during
// the call that receives it: the decoder reuses them.
type Change struct {
	Kind     Kind
	LSN      pglogrepl.LSN // WAL position of the change (KindCommit: the end of the commit record)
	Txn      *Txn          // nil for a non-transactional message outside a transaction
	Relation *Relation     // KindRelation, KindInsert, KindUpdate, KindDelete
	Before   []event.Datum
	After    []event.Datum
	// BeforeIsKey says Before holds only the replica identity key (pgoutput's 'K' tuple: the key
	// changed under REPLICA IDENTITY DEFAULT or USING INDEX); other columns are null in it.
	BeforeIsKey bool
	Relations   []*Relation // KindTruncate
	Message     Message     // KindMessage
}
