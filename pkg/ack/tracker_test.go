package ack

import (
	"math/rand"
	"sync"
	"testing"
)

func TestTrackerScenarios(t *testing.T) {
	type step struct {
		op   string // begin, add, commit, ack, discard, idle
		txn  int    // index into the begun transactions
		n    int
		end  LSN
		safe LSN // expected Safe() after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"empty transaction is confirmable at once", []step{
			{op: "begin", safe: 100}, {op: "commit", txn: 0, end: 200, safe: 200},
		}},
		{"not confirmable before every event is acknowledged", []step{
			{op: "begin", safe: 100}, {op: "add", txn: 0, n: 3, safe: 100},
			{op: "commit", txn: 0, end: 200, safe: 100},
			{op: "ack", txn: 0, n: 2, safe: 100}, {op: "ack", txn: 0, n: 1, safe: 200},
		}},
		{"acknowledged events of an open transaction are not confirmable", []step{
			{op: "begin", safe: 100}, {op: "add", txn: 0, n: 1}, {op: "ack", txn: 0, n: 1, safe: 100},
			{op: "commit", txn: 0, end: 150, safe: 150},
		}},
		{"a later transaction acknowledged first waits for the earlier", []step{
			{op: "begin"}, {op: "add", txn: 0, n: 1}, {op: "commit", txn: 0, end: 200},
			{op: "begin"}, {op: "add", txn: 1, n: 1}, {op: "commit", txn: 1, end: 300},
			{op: "ack", txn: 1, n: 1, safe: 100}, {op: "ack", txn: 0, n: 1, safe: 300},
		}},
		{"discarding an open transaction unblocks the committed ones before it", []step{
			{op: "begin"}, {op: "add", txn: 0, n: 1}, {op: "commit", txn: 0, end: 200},
			{op: "begin"}, {op: "add", txn: 1, n: 5},
			{op: "ack", txn: 0, n: 1, safe: 200},
			{op: "discard", safe: 200}, {op: "ack", txn: 1, n: 5, safe: 200},
		}},
		{"safe never moves backwards", []step{
			{op: "begin"}, {op: "commit", txn: 0, end: 50, safe: 100},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(100)
			var ids []TxnID
			for i, s := range tc.steps {
				switch s.op {
				case "begin":
					ids = append(ids, tr.Begin())
				case "add":
					tr.Add(ids[s.txn], s.n)
				case "commit":
					tr.Commit(ids[s.txn], s.end)
				case "ack":
					tr.Ack(ids[s.txn], s.n)
				case "discard":
					tr.DiscardOpen()
				}
				if s.safe != 0 && tr.Safe() != s.safe {
					t.Fatalf("step %d (%s): Safe() = %d, want %d", i, s.op, tr.Safe(), s.safe)
				}
			}
		})
	}
}

func TestConfirmIdleOnlyWhenNothingInFlight(t *testing.T) {
	tr := New(10)
	if !tr.ConfirmIdle(20) || tr.Safe() != 20 {
		t.Fatalf("idle tracker: Safe() = %d, want 20", tr.Safe())
	}
	id := tr.Begin()
	if tr.ConfirmIdle(30) || tr.Safe() != 20 {
		t.Fatalf("open transaction: keepalive confirmed, Safe() = %d", tr.Safe())
	}
	tr.Add(id, 1)
	tr.Commit(id, 25)
	if tr.ConfirmIdle(30) || tr.Safe() != 20 {
		t.Fatalf("unacknowledged event: keepalive confirmed, Safe() = %d", tr.Safe())
	}
	tr.Ack(id, 1)
	if tr.Safe() != 25 || !tr.ConfirmIdle(30) || tr.Safe() != 30 {
		t.Fatalf("after ack: Safe() = %d, want 30", tr.Safe())
	}
}

// Random out-of-order acknowledgements from concurrent writers never confirm a transaction before
// it and all earlier ones are acknowledged.
func TestTrackerConcurrentAcks(t *testing.T) {
	const txns = 2000
	tr := New(0)
	type ev struct{ id TxnID }
	var all []ev
	ends := map[TxnID]LSN{}
	for i := 0; i < txns; i++ {
		id := tr.Begin()
		n := rand.Intn(4)
		tr.Add(id, n)
		for j := 0; j < n; j++ {
			all = append(all, ev{id})
		}
		ends[id] = LSN(i+1) * 10
		tr.Commit(id, ends[id])
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	ackedPer := map[TxnID]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(all); i += 4 {
				mu.Lock()
				ackedPer[all[i].id]++
				tr.Ack(all[i].id, 1)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if tr.Safe() != LSN(txns)*10 || !tr.Idle() {
		t.Fatalf("after all acks: Safe() = %d idle=%v, want %d", tr.Safe(), tr.Idle(), txns*10)
	}
}

func TestAckedPerTransaction(t *testing.T) {
	tr := New(100)
	a, b := tr.Begin(), tr.Begin()
	tr.Add(a, 2)
	tr.Add(b, 1)
	tr.Commit(b, 100)
	if tr.Acked(a) || tr.Acked(b) {
		t.Fatal("nothing acknowledged yet")
	}
	tr.Ack(b, 1)
	if !tr.Acked(b) || tr.Acked(a) {
		t.Fatalf("b fully acked behind an open a: Acked(a)=%v Acked(b)=%v", tr.Acked(a), tr.Acked(b))
	}
	tr.Ack(a, 2)
	if tr.Acked(a) {
		t.Fatal("a is acknowledged but not committed: more events may come")
	}
	tr.Commit(a, 100)
	if !tr.Acked(a) || !tr.Idle() || tr.Safe() != 100 {
		t.Fatalf("after commit: Acked(a)=%v idle=%v safe=%d", tr.Acked(a), tr.Idle(), tr.Safe())
	}
}
