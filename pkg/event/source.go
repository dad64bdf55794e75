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
	// sequence: Jackson writes ["<lastCommitLsn>","<lsn>"] (nulls as null),
	// then it is itself a JSON string
	dst = append(dst, `"[`...)
	if src.LastCommitLSN == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `\"`...)
		dst = strconv.AppendUint(dst, src.LastCommitLSN, 10)
		dst = append(dst, `\"`...)
	}
	dst = append(dst, ',')
	if src.LSN == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `\"`...)
		dst = strconv.AppendUint(dst, src.LSN, 10)
		dst = append(dst, `\"`...)
	}
	dst = append(dst, `]","ts_us":`...)
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
