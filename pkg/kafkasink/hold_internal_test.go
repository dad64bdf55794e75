package kafkasink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/pkg/ack"
)

func waitIdle(t *testing.T, tracker *ack.Tracker, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tracker.WaitIdle(ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// producedInOrder checks that the producer got the values 0..n-1, in order, over all its batches.
func producedInOrder(t *testing.T, p *scriptedProducer, n int) {
	t.Helper()
	i := 0
	for _, b := range p.calls() {
		for _, r := range b {
			if string(r.Value) != fmt.Sprint(i) {
				t.Fatalf("record %d has value %q", i, r.Value)
			}
			i++
		}
	}
	if i != n {
		t.Fatalf("%d records produced, want %d", i, n)
	}
}

// Held records stay with the sink until Release, then leave in one produce request, in order.
func TestHoldSendsATransactionInOneRequest(t *testing.T) {
	p := &scriptedProducer{}
	tracker := ack.New(0x10)
	s := scriptedSinkWith(t, p, tracker, Options{BatchMaxMessages: 100, BatchMaxBytes: 1 << 20, MaxInFlightBytes: 1 << 20})
	txn := tracker.Begin()
	s.Hold()
	const n = 5
	for i := range n {
		if err := send(t, s, tracker, txn, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	tracker.Commit(txn, 0x200)
	// Without the hold, the partition's writer wakes at the first record and sends at once.
	time.Sleep(100 * time.Millisecond)
	if c := p.calls(); len(c) != 0 {
		t.Fatalf("%d produce requests while held, want 0", len(c))
	}
	s.Release()
	waitIdle(t, tracker, "the released records were not acknowledged")
	c := p.calls()
	if len(c) != 1 || len(c[0]) != n {
		t.Fatalf("produce requests %v, want one of %d records", c, n)
	}
	for i, r := range c[0] {
		if string(r.Value) != fmt.Sprint(i) {
			t.Fatalf("record %d has value %q", i, r.Value)
		}
	}
	// Released, a record goes at once.
	txn2 := tracker.Begin()
	if err := send(t, s, tracker, txn2, "after"); err != nil {
		t.Fatal(err)
	}
	tracker.Commit(txn2, 0x300)
	waitIdle(t, tracker, "a record appended after Release was not sent")
}

// A hold never keeps back a whole batch, nor the records that must leave for Append to find room
// in max_in_flight_bytes: a transaction larger than the budget still flows.
func TestHoldYieldsToFullBatchesAndTheBudget(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"whole batches", Options{BatchMaxMessages: 4, BatchMaxBytes: 1 << 20, MaxInFlightBytes: 1 << 20}},
		{"in-flight budget", Options{BatchMaxMessages: 100, BatchMaxBytes: 1 << 20, MaxInFlightBytes: 3 * (recordOverhead + 64)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &scriptedProducer{}
			tracker := ack.New(0x10)
			s := scriptedSinkWith(t, p, tracker, c.opts)
			txn := tracker.Begin()
			s.Hold()
			const n = 40
			done := make(chan error, 1)
			go func() {
				for i := range n {
					if err := send(t, s, tracker, txn, fmt.Sprint(i)); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Append waited for held records that were never sent")
			}
			for deadline := time.Now().Add(10 * time.Second); len(p.calls()) == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("nothing was sent while held")
				}
			}
			s.Release()
			tracker.Commit(txn, 0x200)
			waitIdle(t, tracker, "the transaction was not acknowledged")
			producedInOrder(t, p, n)
		})
	}
}
