package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
)

// keyState is what the topic says about one key: its last record and last change event.
type keyState struct {
	seen      bool
	lastTomb  bool  // the last record is a tombstone
	lastOp    int8  // op of the last change event
	txn       int64 // after image of the last change event (create/update)
	n         int32
	padHash   uint64
	pendingTS int64 // position of a delete still waiting for its tombstone, -1 when none
}

type rowJSON struct {
	ID     *int64  `json:"id"`
	Code   *string `json:"code"`
	Txn    int64   `json:"txn"`
	N      int32   `json:"n"`
	Pad    string  `json:"pad"`
	Xid    int64   `json:"xid"`
	Writer int     `json:"writer"`
	Rows   int     `json:"rows"`
}

type valueJSON struct {
	Before *rowJSON `json:"before"`
	After  *rowJSON `json:"after"`
	Op     string   `json:"op"`
	Source struct {
		TxID int64 `json:"txId"`
		LSN  int64 `json:"lsn"`
	} `json:"source"`
}

func hashPad(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// keyOf returns a record key's numeric key ("k123" -> 123 for text keys).
func keyOf(raw []byte) (int, error) {
	var k rowJSON
	if err := json.Unmarshal(raw, &k); err != nil {
		return 0, fmt.Errorf("key %q: %w", raw, err)
	}
	switch {
	case k.ID != nil:
		return int(*k.ID), nil
	case k.Code != nil && strings.HasPrefix(*k.Code, "k"):
		return strconv.Atoi((*k.Code)[1:])
	}
	return 0, fmt.Errorf("key %q has neither id nor code", raw)
}

type ledgerRow struct {
	xid    uint32
	writer int
	rows   int
}

// verify reads the ledger and the final rows from PostgreSQL and every topic from Kafka, and fills in
// the Result.
func (r *run) verify(ctx context.Context) error {
	res := r.res
	started := time.Now()
	// The ledger, and the writers' view of it.
	ledger := map[uint64]ledgerRow{}
	xidLedger := map[uint32]uint64{}
	err := r.srv.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
		clear(ledger)
		rows, err := db.Query(ctx, `SELECT id, xid, writer, rows FROM chaos_ledger`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, xid int64
			var l ledgerRow
			if err := rows.Scan(&id, &xid, &l.writer, &l.rows); err != nil {
				return err
			}
			l.xid = uint32(xid)
			ledger[uint64(id)] = l
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("read the ledger: %w", err)
	}
	for id, l := range ledger {
		xidLedger[l.xid] = id
	}
	var expected []uint64
	committed := map[uint64]bool{}
	for _, w := range r.ws {
		expected = append(expected, w.expected...)
		for _, id := range w.ledgers {
			committed[id] = true
		}
		res.TxnsRolledBack += w.rolledBack
		res.TxnsFailed += w.failed
		res.FailedCommitted += w.failedCommitted
		res.LargestTxn = max(res.LargestTxn, w.largest)
		res.TombstonesWant += w.deletes
	}
	res.TxnsCommitted = len(ledger)
	res.EventsWritten = len(expected)
	for id := range ledger {
		if !committed[id] {
			res.LedgerMismatches++
			r.problem("ledger row %d exists but its writer thinks the transaction did not commit", id)
		}
	}
	for id := range committed {
		if _, ok := ledger[id]; !ok {
			res.LedgerMismatches++
			r.problem("transaction %d committed per its writer but has no ledger row", id)
		}
	}

	// The topics.
	states := make([][]keyState, len(tables))
	for t, tb := range tables {
		states[t] = make([]keyState, tb.keys)
		for k := range states[t] {
			states[t][k].pendingTS = -1
		}
	}
	var consumed []uint64
	// seq holds, per table and key, the ledger ids of its change events in partition order.
	seq := make([][][]uint32, len(tables))
	for t, tb := range tables {
		seq[t] = make([][]uint32, tb.keys)
	}
	for t := 0; t <= ledgerTable; t++ {
		name := "chaos_ledger"
		if t < ledgerTable {
			name = tables[t].name
		}
		topic := r.prefix + ".public." + name
		err := readTopic(ctx, r.srv.kafka.Addrs()[0], topic, func(m kafka.Message) error {
			res.RecordsConsumed++
			key, err := keyOf(m.Key)
			if err != nil {
				return err
			}
			var pos int64 = -1
			for _, h := range m.Headers {
				if h.Key == "pgcdc.position" {
					pos, _ = strconv.ParseInt(string(h.Value), 10, 64)
				}
			}
			var st *keyState
			if t < ledgerTable {
				if key < 0 || key >= len(states[t]) {
					return fmt.Errorf("%s: key %d out of range", topic, key)
				}
				st = &states[t][key]
			}
			if m.Value == nil {
				if st != nil {
					st.seen, st.lastTomb = true, true
					if st.pendingTS >= 0 && pos == st.pendingTS+1 {
						st.pendingTS = -1
					}
				}
				return nil
			}
			res.EventsConsumed++
			var v valueJSON
			if err := json.Unmarshal(m.Value, &v); err != nil {
				return fmt.Errorf("%s offset %d: %w", topic, m.Offset, err)
			}
			op := map[string]int{"c": opCreate, "u": opUpdate, "d": opDelete}
			o, ok := op[v.Op]
			if !ok {
				res.Unexpected++
				r.problem("%s offset %d: op %q", topic, m.Offset, v.Op)
				return nil
			}
			if t == ledgerTable {
				if v.After == nil || uint32(v.After.Xid) != uint32(v.Source.TxID) {
					r.problem("ledger event %d: xid in the row and source.txId %d differ", key, v.Source.TxID)
				}
				consumed = append(consumed, pack(ledgerTable, uint64(key), 0, o))
				return nil
			}
			id, ok := xidLedger[uint32(v.Source.TxID)]
			if !ok {
				res.Unexpected++
				r.problem("%s offset %d: event of transaction %d, which has no ledger row (rolled back?)", topic, m.Offset, v.Source.TxID)
				return nil
			}
			consumed = append(consumed, pack(t, id, key, o))
			seq[t][key] = append(seq[t][key], uint32(id))
			st.seen, st.lastTomb, st.lastOp = true, false, int8(o)
			if o == opDelete {
				st.pendingTS = pos
			} else if v.After != nil {
				st.txn, st.n, st.padHash = v.After.Txn, v.After.N, hashPad(v.After.Pad)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
	}
	r.logf("chaos: read %d records in %s", res.RecordsConsumed, time.Since(started).Round(time.Millisecond))
	for t := range seq {
		for k, ids := range seq[t] {
			if at := outOfOrder(ids); at >= 0 {
				res.OrderViolations++
				r.problem("%s key %d: transaction %d appears for the first time after transaction %d (events in partition order: %v)",
					tables[t].name, k, ids[at], slices.Max(ids[:at]), ids)
			}
		}
	}

	// Every committed change present; duplicates; nothing else.
	slices.Sort(expected)
	slices.Sort(consumed)
	type dup struct {
		id    uint64
		extra int
	}
	var dups []dup
	var lost []uint64
	i, j := 0, 0
	for i < len(expected) || j < len(consumed) {
		switch {
		case j >= len(consumed) || (i < len(expected) && expected[i] < consumed[j]):
			res.Lost++
			lost = append(lost, expected[i])
			tb, l, k, o := unpack(expected[i])
			r.problem("lost: table %d key %d op %d of transaction %d", tb, k, o, l)
			i++
		case i >= len(expected) || consumed[j] < expected[i]:
			res.Unexpected++
			tb, l, k, o := unpack(consumed[j])
			r.problem("unexpected: table %d key %d op %d of transaction %d", tb, k, o, l)
			j++
		default:
			n := 0
			for j < len(consumed) && consumed[j] == expected[i] {
				n++
				j++
			}
			if n > 1 {
				dups = append(dups, dup{expected[i], n - 1})
				res.Duplicates += n - 1
			}
			i++
		}
	}

	// The last event of every key equals the row.
	for t, tb := range tables {
		type row struct {
			txn     int64
			n       int32
			padHash uint64
		}
		final := map[int]row{}
		err := r.srv.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
			clear(final)
			rows, err := db.Query(ctx, fmt.Sprintf(`SELECT %s::text, txn, n, pad FROM %s`, tb.keyCol, tb.name))
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var key, pad string
				var rw row
				if err := rows.Scan(&key, &rw.txn, &rw.n, &pad); err != nil {
					return err
				}
				k, err := strconv.Atoi(strings.TrimPrefix(key, "k"))
				if err != nil {
					return err
				}
				rw.padHash = hashPad(pad)
				final[k] = rw
			}
			return rows.Err()
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", tb.name, err)
		}
		for k := range states[t] {
			st := &states[t][k]
			rw, exists := final[k]
			if !exists && !st.seen {
				continue
			}
			res.KeysChecked++
			if st.pendingTS >= 0 {
				res.MissingTombstones++
				r.problem("%s key %d: delete at position %d without its tombstone", tb.name, k, st.pendingTS)
			}
			switch {
			case exists && (!st.seen || st.lastTomb || st.lastOp == opDelete):
				res.StateMismatches++
				r.problem("%s key %d: row exists (txn %d, n %d) but the last event is not a create or update", tb.name, k, rw.txn, rw.n)
			case exists && (st.txn != rw.txn || st.n != rw.n || st.padHash != rw.padHash):
				res.StateMismatches++
				r.problem("%s key %d: row has txn %d n %d, last event txn %d n %d (pad equal: %v)", tb.name, k, rw.txn, rw.n, st.txn, st.n, st.padHash == rw.padHash)
			case !exists && (st.lastOp != opDelete || !st.lastTomb):
				res.StateMismatches++
				r.problem("%s key %d: row deleted but the last records are op %d, tombstone %v", tb.name, k, st.lastOp, st.lastTomb)
			}
		}
	}

	// Duplicate windows.
	type txnEnd struct {
		end    uint64
		events int
	}
	perLedger := map[uint64]int{}
	for _, id := range expected {
		_, l, _, _ := unpack(id)
		perLedger[l]++
	}
	var ends []txnEnd
	unknownEnd := 0
	for id, n := range perLedger {
		l, ok := ledger[id]
		if !ok {
			continue
		}
		end, ok := r.scan.end(l.xid)
		if !ok {
			unknownEnd++
			continue
		}
		ends = append(ends, txnEnd{end, n})
	}
	if unknownEnd > 0 {
		r.problem("%d committed transactions have no commit record in the WAL scan", unknownEnd)
	}
	sort.Slice(ends, func(a, b int) bool { return ends[a].end < ends[b].end })
	prefix := make([]int, len(ends)+1)
	for i, e := range ends {
		prefix[i+1] = prefix[i] + e.events
	}
	upTo := func(lsn uint64) int { // events of transactions with end <= lsn
		return prefix[sort.Search(len(ends), func(i int) bool { return ends[i].end > lsn })]
	}
	for _, f := range res.Faults {
		if f.Ceil > f.Floor {
			res.kind(f.Kind).Window += upTo(f.Ceil) - upTo(f.Floor)
		}
	}
	for _, id := range lost { // charged to every kind whose window holds the transaction
		_, l, _, _ := unpack(id)
		if end, known := r.scan.end(ledger[l].xid); known {
			for _, f := range res.Faults {
				if f.Floor < end && end <= f.Ceil {
					res.kind(f.Kind).Lost++
				}
			}
		}
	}
	for _, d := range dups {
		_, l, _, _ := unpack(d.id)
		row, ok := ledger[l]
		end, known := r.scan.end(row.xid)
		if !ok || !known {
			res.Unexplained += d.extra
			r.problem("duplicate of transaction %d: commit LSN unknown", l)
			continue
		}
		var covering []Fault // a fault that may cause n copies covers n of them
		for _, f := range res.Faults {
			if f.Floor < end && end <= f.Ceil {
				for c := 0; c < max(f.Copies, 1); c++ {
					covering = append(covering, f)
				}
			}
		}
		sort.Slice(covering, func(a, b int) bool { return covering[a].At.After(covering[b].At) })
		for x := 0; x < d.extra; x++ {
			if x < len(covering) {
				res.kind(covering[x].Kind).Duplicates++
				continue
			}
			res.Unexplained++
			if x == len(covering) {
				tb, _, k, o := unpack(d.id)
				r.problem("duplicate outside every fault window: table %d key %d op %d of transaction %d (xid %d, commit end %s), %d extra copies, %d covering faults",
					tb, k, o, l, row.xid, fmtLSN(end), d.extra, len(covering))
			}
		}
	}
	r.logf("chaos: verified in %s", time.Since(started).Round(time.Millisecond))
	return nil
}

// readTopic reads every record of every partition of topic, from the first offset to the end as it
// is now, in offset order per partition.
func readTopic(ctx context.Context, addr, topic string, fn func(kafka.Message) error) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return err
	}
	sort.Slice(parts, func(a, b int) bool { return parts[a].ID < parts[b].ID })
	for _, p := range parts {
		if err := readPartition(ctx, addr, topic, p.ID, fn); err != nil {
			return err
		}
	}
	return nil
}

// outOfOrder returns the index of the first event of ids (one key's ledger ids in partition order)
// that appears for the first time after an event of a later transaction, or -1. A key belongs to one
// writer, whose transactions commit in ledger id order, so the first appearances must increase; a
// re-sent event (a duplicate) may repeat an earlier id.
func outOfOrder(ids []uint32) int {
	var firsts []uint32 // ids seen, increasing
	for i, id := range ids {
		if len(firsts) == 0 || id > firsts[len(firsts)-1] {
			firsts = append(firsts, id)
			continue
		}
		if _, found := slices.BinarySearch(firsts, id); !found {
			return i
		}
	}
	return -1
}

// readPartition reads one partition of topic from its first offset to its end as it is at the
// first read. A read that makes no progress (the leader moved since the connection was made: a
// broker the run restarted got its leaderships back; a read timed out on a loaded machine) is tried
// again on a new connection to the current leader, up to five times in a row.
func readPartition(ctx context.Context, addr, topic string, partition int, fn func(kafka.Message) error) error {
	const attempts = 5
	next, last := int64(-1), int64(-1)
	for failed := 0; ; {
		lc, err := kafka.DialLeader(ctx, "tcp", addr, topic, partition)
		if err != nil {
			return err
		}
		if last < 0 {
			first, end, err := lc.ReadOffsets()
			if err != nil {
				lc.Close()
				return err
			}
			next, last = first, end
		}
		progressed, done, err := readFrom(lc, topic, partition, &next, last, fn)
		lc.Close()
		switch {
		case done:
			return nil
		case err != nil:
			return err
		case progressed:
			failed = 0
		default:
			if failed++; failed >= attempts {
				return fmt.Errorf("partition %d: no progress at offset %d of %d in %d reads", partition, next, last, attempts)
			}
			time.Sleep(time.Second)
		}
	}
}

// readFrom reads batches on lc from *next until last, advancing *next; it returns when a batch
// brings nothing new (progressed reports whether an earlier one did), at the end (done), or when fn
// fails (err).
func readFrom(lc *kafka.Conn, topic string, partition int, next *int64, last int64, fn func(kafka.Message) error) (progressed, done bool, err error) {
	for *next < last {
		if _, err := lc.Seek(*next, kafka.SeekAbsolute); err != nil {
			return progressed, false, nil
		}
		_ = lc.SetReadDeadline(time.Now().Add(60 * time.Second))
		batch := lc.ReadBatch(1, 32<<20)
		moved := false
		for *next < last {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if m.Offset < *next {
				continue
			}
			m.Topic, m.Partition = topic, partition
			if err := fn(m); err != nil {
				batch.Close()
				return progressed, false, err
			}
			*next = m.Offset + 1
			moved = true
		}
		batch.Close()
		if !moved {
			return progressed, false, nil
		}
		progressed = true
	}
	return progressed, true, nil
}
