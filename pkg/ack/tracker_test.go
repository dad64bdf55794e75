package ack

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func TestTrackerScenarios(t *testing.T) {
	type step struct {
		op   string // begin, add, commit, ack, discard, idle
		txn  int    // index into the begun transactions
		n    int
		end  pglogrepl.LSN
		safe pglogrepl.LSN // expected Safe() after the step
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

func TestPositionWaitsForEarlierTransactions(t *testing.T) {
	tr := New(10)
	tr.Position(20)
	if tr.Safe() != 20 || !tr.Idle() {
		t.Fatalf("idle tracker: Safe() = %d, want 20", tr.Safe())
	}
	id := tr.Begin()
	tr.Add(id, 1)
	tr.Position(30) // a keepalive while a transaction is open: behind it
	if tr.Safe() != 20 {
		t.Fatalf("open transaction: keepalive confirmed, Safe() = %d", tr.Safe())
	}
	tr.Commit(id, 25)
	if tr.Safe() != 20 {
		t.Fatalf("unacknowledged event: Safe() = %d", tr.Safe())
	}
	tr.Ack(id, 1)
	if tr.Safe() != 30 || !tr.Idle() {
		t.Fatalf("after ack: Safe() = %d, want 30", tr.Safe())
	}
}

// Acknowledgements arrive from one goroutine per partition, each in its partition's order (as the
// sink's partition writers send them), with the transactions' events spread over the partitions;
// no lock serialises the Ack calls. A watcher checks while they run that the confirmable LSN never
// passes a transaction with an unacknowledged event.
func TestTrackerConcurrentAcks(t *testing.T) {
	const txns, partitions = 3000, 4
	tr := New(0)
	ends := make([]pglogrepl.LSN, txns)
	ids := make([]TxnID, txns)
	total := make([]int64, txns)
	queues := make([][]int, partitions) // per partition: transaction indexes, one per event, in order
	for i := 0; i < txns; i++ {
		ids[i] = tr.Begin()
		n := rand.Intn(5)
		tr.Add(ids[i], n)
		total[i] = int64(n)
		for j := 0; j < n; j++ {
			p := rand.Intn(partitions)
			queues[p] = append(queues[p], i)
		}
		ends[i] = pglogrepl.LSN(i+1) * 10
		tr.Commit(ids[i], ends[i])
	}
	acked := make([]atomic.Int64, txns) // counted before each Ack: never behind the tracker
	stop := make(chan struct{})
	violations := make(chan string, 1)
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			safe := tr.Safe()
			for i := 0; i < txns; i++ {
				if acked[i].Load() < total[i] {
					if safe >= ends[i] {
						select {
						case violations <- fmt.Sprintf("Safe() = %d while transaction %d (end %d) has unacknowledged events", safe, i, ends[i]):
						default:
						}
					}
					break
				}
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	for p := range queues {
		wg.Add(1)
		go func(q []int) {
			defer wg.Done()
			for _, i := range q {
				acked[i].Add(1)
				tr.Ack(ids[i], 1)
			}
		}(queues[p])
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	select {
	case v := <-violations:
		t.Fatal(v)
	default:
	}
	var events int64
	for _, n := range total {
		events += n
	}
	if st := tr.Stats(); tr.Safe() != ends[txns-1] || !tr.Idle() || st.Acked != events || st.Events != events {
		t.Fatalf("after all acks: Safe() = %d idle=%v stats=%+v, want %d with %d events", tr.Safe(), tr.Idle(), st, ends[txns-1], events)
	}
}

// Published moves only with transactions that had events; Safe with everything.
func TestPublished(t *testing.T) {
	tr := New(10)
	tr.Position(20)
	empty := tr.Begin()
	tr.Commit(empty, 30)
	if tr.Safe() != 30 || tr.Published() != 0 {
		t.Fatalf("after a keepalive and an empty transaction: safe %d published %d", tr.Safe(), tr.Published())
	}
	id := tr.Begin()
	tr.Add(id, 2)
	tr.Commit(id, 40)
	tr.Position(50)
	if tr.Published() != 0 {
		t.Fatalf("published %d before the acknowledgements", tr.Published())
	}
	tr.Ack(id, 2)
	if tr.Safe() != 50 || tr.Published() != 40 {
		t.Fatalf("safe %d published %d, want 50 and 40", tr.Safe(), tr.Published())
	}
}

func TestChangedAndWaitIdle(t *testing.T) {
	tr := New(0)
	id := tr.Begin()
	tr.Add(id, 2)
	ch := tr.Changed()
	tr.Commit(id, 50)
	select {
	case <-ch:
		t.Fatal("Changed fired before anything completed")
	default:
	}
	done := make(chan error, 1)
	go func() { done <- tr.WaitIdle(context.Background()) }()
	tr.Ack(id, 1)
	select {
	case <-ch:
		t.Fatal("Changed fired with an event still unacknowledged")
	case err := <-done:
		t.Fatalf("WaitIdle returned %v with an event in flight", err)
	default:
	}
	tr.Ack(id, 1)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire when the transaction became confirmable")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitIdle did not return once idle")
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.Begin()
	cancel()
	if err := tr.WaitIdle(ctx); err == nil {
		t.Fatal("WaitIdle with an open transaction and a cancelled context returned nil")
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
