package route

import (
	"strconv"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

// txMeta is the transaction metadata of the transaction being routed. Debezium's PostgreSQL
// connector forms every transaction id as "<txId>:<LSN of the message at hand>": the BEGIN event
// carries the BEGIN's LSN, each data event its own LSN, the END event the COMMIT's position. pgcdc
// writes the same, so that consumers written for Debezium pair them the same way.
type txMeta struct {
	started bool              // BEGIN built
	begin   *kafkasink.Record // the BEGIN record, until it is published before the first event
	total   int64             // data events so far
	counts  map[string]int64  // per "<schema>.<table>"
	order   []string          // tables in first-event order
}

func (m *txMeta) reset() {
	m.started, m.begin, m.total, m.order = false, nil, 0, m.order[:0]
	clear(m.counts)
}

func txID(xid uint32, lsn pglogrepl.LSN) string {
	return strconv.FormatUint(uint64(xid), 10) + ":" + strconv.FormatUint(uint64(lsn), 10)
}

// transactionBlock returns the envelope's transaction block for the next data event of table
// (nil when transaction metadata is off). The first event of a transaction builds its BEGIN
// record, which publish sends before that event.
func (r *Router) transactionBlock(table string, lsn pglogrepl.LSN) (*event.Transaction, error) {
	if !r.opts.TransactionMetadata || r.txn == nil {
		return nil, nil
	}
	m := &r.txMeta
	if !m.started {
		m.started = true
		id := txID(r.txn.Xid, r.txn.BeginLSN)
		if m.counts == nil {
			m.counts = map[string]int64{}
		}
		m.begin = r.txRecord(id, r.meta.AppendTxBegin(nil, id, r.txn.CommitTime))
	}
	m.total++
	if _, ok := m.counts[table]; !ok {
		m.order = append(m.order, table)
	}
	m.counts[table]++
	return &event.Transaction{ID: txID(r.txn.Xid, lsn), TotalOrder: m.total, DataCollectionOrder: m.counts[table]}, nil
}

// flushTxBegin publishes the transaction's BEGIN record if it is waiting.
func (r *Router) flushTxBegin(emit func(kafkasink.Record) error) error {
	b := r.txMeta.begin
	if b == nil {
		return nil
	}
	r.txMeta.begin = nil
	return emit(r.numbered(*b))
}

// endTransactionMetadata publishes the END event of a transaction that had events; commitEnd is
// the COMMIT message's position.
func (r *Router) endTransactionMetadata(commitEnd pglogrepl.LSN, emit func(kafkasink.Record) error) error {
	m := &r.txMeta
	if !r.opts.TransactionMetadata || !m.started || r.txn == nil {
		return nil
	}
	if err := r.flushTxBegin(emit); err != nil { // every event of the transaction was dropped by a step
		return err
	}
	counts := make([]event.CollectionCount, len(m.order))
	for i, t := range m.order {
		counts[i] = event.CollectionCount{Collection: t, Events: m.counts[t]}
	}
	id := txID(r.txn.Xid, commitEnd)
	return emit(r.numbered(*r.txRecord(id, r.meta.AppendTxEnd(nil, id, r.txn.CommitTime, m.total, counts))))
}

func (r *Router) txRecord(id string, value []byte) *kafkasink.Record {
	return &kafkasink.Record{Topic: r.meta.TransactionTopic(), Key: r.meta.AppendTxKey(nil, id), Value: value,
		Table: "transaction " + id, LSN: r.txn.BeginLSN}
}
