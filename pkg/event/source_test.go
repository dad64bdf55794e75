package event

import (
	"strconv"
	"testing"
	"time"
)

// appendSourceRef is the source block written field by field, every number formatted each time:
// the reference for the memoized appendSource.
func (e *Encoder) appendSourceRef(dst []byte, src Source, now time.Time) []byte {
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

// One encoder writes the source blocks of a sequence of changes (several per transaction, then
// other transactions, snapshot reads at the processing time, absent ids and LSNs) exactly as the
// reference does, whatever it memoized from the change before.
func TestSourceMemoMatchesReference(t *testing.T) {
	e, err := NewEncoder(DefaultOptions("pgcdc", "shop", "0.1.0"), ordersTable())
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2026, 12, 7, 10, 0, 0, 123456789, time.UTC)
	t2 := t1.Add(time.Microsecond)
	now := time.Date(2026, 12, 7, 11, 0, 0, 5, time.UTC)
	steps := []Source{
		{CommitTime: t1, TxID: 746, LastCommitLSN: 27113000, LSN: 27113520},
		{CommitTime: t1, TxID: 746, LastCommitLSN: 27113000, LSN: 27113600},
		{CommitTime: t1, TxID: 746, LastCommitLSN: 27113000, LSN: 9},
		{CommitTime: t2, TxID: 746, LastCommitLSN: 27113000, LSN: 27113700}, // commit time alone differs
		{CommitTime: t2, TxID: 747, LastCommitLSN: 27113000, LSN: 27113800}, // xid alone differs
		{CommitTime: t2, TxID: 747, LastCommitLSN: 27113800, LSN: 27113900}, // last commit alone differs
		{CommitTime: t2, TxID: 747, LastCommitLSN: 27113800, LSN: 27113900, Snapshot: "incremental"},
		{Snapshot: "first", LSN: 0},
		{Snapshot: "true", TxID: 0, LastCommitLSN: 0, LSN: 18446744073709551615},
		{CommitTime: t1, TxID: 4294967295, LastCommitLSN: 1, LSN: 0},
	}
	for i, src := range steps {
		got := string(e.appendSource([]byte("x"), src, now))
		want := string(e.appendSourceRef([]byte("x"), src, now))
		if got != want {
			t.Errorf("step %d %+v:\n got %s\nwant %s", i, src, got, want)
		}
	}
}
