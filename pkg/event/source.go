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
	dst = append(dst, e.srcHead...)
	dst = strconv.AppendInt(dst, ct.UnixMilli(), 10)
	dst = append(dst, `,"snapshot":`...)
	if src.Snapshot == "" {
		dst = append(dst, `"false"`...)
	} else {
		dst = appendJSONString(dst, src.Snapshot)
	}
	dst = append(dst, e.dbSeq...)
	dst = append(dst, '"')
	dst = appendSequence(dst, src, `\"`)
	dst = append(dst, '"')
	dst = append(dst, `,"ts_us":`...)
	dst = strconv.AppendInt(dst, ct.UnixMicro(), 10)
	dst = append(dst, `,"ts_ns":`...)
	dst = strconv.AppendInt(dst, ct.UnixNano(), 10)
	dst = append(dst, e.srcTable...)
	if src.TxID == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendUint(dst, uint64(src.TxID), 10)
	}
	dst = append(dst, `,"lsn":`...)
	if src.LSN == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendUint(dst, src.LSN, 10)
	}
	return append(dst, `,"xmin":null,"origin":null,"origin_lsn":null}`...)
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
