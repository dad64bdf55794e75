package event

import (
	"strconv"
	"time"
)

// appendSource appends the envelope's source block (io.debezium.connector.postgresql.Source) in
// the field order Debezium 3.6.1 writes: version, connector, name, ts_ms, snapshot, db, sequence,
// ts_us, ts_ns, schema, table, txId, lsn, xmin, origin, origin_lsn. A zero CommitTime means now.
func (e *Encoder) appendSource(dst []byte, src Source, now time.Time) []byte {
	ct := src.CommitTime
	if ct.IsZero() {
		ct = now
	}
	m := &e.srcMemo
	if !m.valid || !m.ct.Equal(ct) || m.txID != src.TxID || m.last != src.LastCommitLSN || m.snapshot != src.Snapshot {
		e.memoSource(ct, src)
	}
	lsn := []byte("null")
	var digits [20]byte
	if src.LSN != 0 {
		lsn = strconv.AppendUint(digits[:0], src.LSN, 10) // formatted once, written twice
	}
	dst = append(dst, m.head...)
	if src.LSN != 0 {
		dst = append(append(append(dst, `\"`...), lsn...), `\"`...)
	} else {
		dst = append(dst, lsn...)
	}
	dst = append(dst, `]"`...)
	dst = append(dst, m.mid...)
	dst = append(dst, lsn...)
	return append(dst, `,"xmin":null,"origin":null,"origin_lsn":null}`...)
}

// sourceMemo holds the parts of the source block that the changes of one transaction share,
// formatted once for all of them: what precedes the change's LSN in source.sequence, and what
// lies between it and source.lsn.
type sourceMemo struct {
	valid    bool
	ct       time.Time
	snapshot string
	txID     uint32
	last     uint64
	head     []byte // {"version":...,"ts_ms":<ct>,"snapshot":...,"db":...,"sequence":"[<last>,
	mid      []byte // ,"ts_us":<ct>,"ts_ns":<ct>,"schema":...,"table":...,"txId":<txid>,"lsn":
}

func (e *Encoder) memoSource(ct time.Time, src Source) {
	m := &e.srcMemo
	m.valid, m.ct, m.snapshot, m.txID, m.last = true, ct, src.Snapshot, src.TxID, src.LastCommitLSN
	h := append(m.head[:0], e.srcHead...)
	h = strconv.AppendInt(h, ct.UnixMilli(), 10)
	h = append(h, `,"snapshot":`...)
	if src.Snapshot == "" {
		h = append(h, `"false"`...)
	} else {
		h = appendJSONString(h, src.Snapshot)
	}
	h = append(h, e.dbSeq...)
	h = append(h, `"[`...)
	h = appendSeqLSN(h, src.LastCommitLSN, `\"`)
	m.head = append(h, ',')
	d := append(m.mid[:0], `,"ts_us":`...)
	d = strconv.AppendInt(d, ct.UnixMicro(), 10)
	d = append(d, `,"ts_ns":`...)
	d = strconv.AppendInt(d, ct.UnixNano(), 10)
	d = append(d, e.srcTable...)
	if src.TxID == 0 {
		d = append(d, "null"...)
	} else {
		d = strconv.AppendUint(d, uint64(src.TxID), 10)
	}
	m.mid = append(d, `,"lsn":`...)
}

// appendSequence appends source.sequence's text, the JSON array ["<last commit LSN>","<LSN>"]
// (nulls as null) that Jackson writes, with its quotes as quote (`"`, or `\"` inside a JSON
// string).
func appendSequence(dst []byte, src Source, quote string) []byte {
	dst = append(dst, '[')
	dst = appendSeqLSN(dst, src.LastCommitLSN, quote)
	dst = append(dst, ',')
	dst = appendSeqLSN(dst, src.LSN, quote)
	return append(dst, ']')
}

func appendSeqLSN(dst []byte, lsn uint64, quote string) []byte {
	if lsn == 0 {
		return append(dst, "null"...)
	}
	dst = append(dst, quote...)
	dst = strconv.AppendUint(dst, lsn, 10)
	return append(dst, quote...)
}
