package ack

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pglogrepl"
)

// TxnID identifies a transaction registered with a Tracker. IDs increase in registration order.
type TxnID uint64

type txn struct {
	id        TxnID
	pending   int64         // events handed to the sink and not yet acknowledged
	published bool          // it had events
	committed bool          // Commit seen: no more events will be added
	end       pglogrepl.LSN // end LSN of the commit record (valid once committed)
}

// Tracker holds the transactions between the first unacknowledged one and the newest one.
type Tracker struct {
	mu      sync.Mutex
	queue   []txn // registration order; queue[0] is the oldest not yet confirmable
	nextID  TxnID
	safe    pglogrepl.LSN // newest confirmable LSN
	pub     pglogrepl.LSN // newest confirmable LSN reached by a transaction with events
	acked   int64         // events acknowledged in total (for progress)
	events  int64         // events added in total
	changed chan struct{} // closed and replaced when a transaction completes or safe moves
}

// New returns a Tracker whose confirmable LSN starts at start (the slot's confirmed position).
func New(start pglogrepl.LSN) *Tracker {
	return &Tracker{safe: start, nextID: 1, changed: make(chan struct{})}
}

// notify wakes every waiter on Changed. Called with mu held.
func (t *Tracker) notify() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// Changed returns a channel that is closed at the next change worth waking for: a transaction
// became fully acknowledged, the confirmable LSN moved, or transactions were discarded. Read the
// state after it fires (Safe, Idle, Acked) and call Changed again for the next one.
func (t *Tracker) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// Begin registers a new transaction after every earlier one.
func (t *Tracker) Begin() TxnID {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := t.nextID
	t.nextID++
	t.queue = append(t.queue, txn{id: id})
	return id
}

// find returns the queue index of id, or -1 when it is no longer tracked.
func (t *Tracker) find(id TxnID) int {
	if len(t.queue) == 0 || id < t.queue[0].id {
		return -1
	}
	// IDs are increasing but not dense after DiscardOpen: binary search.
	lo, hi := 0, len(t.queue)-1
	for lo <= hi {
		mid := (lo + hi) / 2
		switch q := t.queue[mid].id; {
		case q == id:
			return mid
		case q < id:
			lo = mid + 1
		default:
			hi = mid - 1
		}
	}
	return -1
}

// Add counts n more events of transaction id in flight. Call it before the events are handed to
// the sink, so that an acknowledgement can never precede it.
func (t *Tracker) Add(id TxnID, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.find(id)
	if i < 0 {
		panic(fmt.Sprintf("ack: Add to unknown transaction %d", id))
	}
	if t.queue[i].committed {
		panic(fmt.Sprintf("ack: Add to committed transaction %d", id))
	}
	t.queue[i].pending += int64(n)
	t.queue[i].published = t.queue[i].published || n > 0
	t.events += int64(n)
}

// Commit closes transaction id: it will get no more events and ends at end.
func (t *Tracker) Commit(id TxnID, end pglogrepl.LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.find(id)
	if i < 0 {
		panic(fmt.Sprintf("ack: Commit of unknown transaction %d", id))
	}
	t.queue[i].committed, t.queue[i].end = true, end
	if t.queue[i].pending == 0 {
		t.notify()
	}
	t.advance()
}

// Position registers a position with no events of its own (a keepalive's WAL end, the end of a
// transaction nothing was published for): it becomes confirmable once every transaction
// registered before it is.
func (t *Tracker) Position(end pglogrepl.LSN) {
	t.Commit(t.Begin(), end)
}

// Ack counts n events of transaction id as acknowledged by Kafka. Acknowledgements of a transaction
// that was discarded (see DiscardOpen) are ignored.
func (t *Tracker) Ack(id TxnID, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acked += int64(n)
	i := t.find(id)
	if i < 0 {
		return
	}
	q := &t.queue[i]
	q.pending -= int64(n)
	if q.pending < 0 {
		panic(fmt.Sprintf("ack: transaction %d acknowledged more events than it had", id))
	}
	if q.pending == 0 && q.committed {
		t.notify()
	}
	if i == 0 {
		t.advance()
	}
}

// advance pops every leading transaction that is committed and fully acknowledged. Called with mu
// held.
func (t *Tracker) advance() {
	n := 0
	moved := false
	for n < len(t.queue) && t.queue[n].committed && t.queue[n].pending == 0 {
		if t.queue[n].end > t.safe {
			t.safe = t.queue[n].end
			moved = true
		}
		if t.queue[n].published && t.queue[n].end > t.pub {
			t.pub = t.queue[n].end
		}
		n++
	}
	if n > 0 {
		t.queue = append(t.queue[:0], t.queue[n:]...)
	}
	if moved {
		t.notify()
	}
}

// DiscardOpen forgets the transactions whose commit has not been seen (the stream broke in their
// middle; PostgreSQL sends them again, whole, after a reconnect). Their in-flight events may still be
// acknowledged; those acknowledgements are ignored.
func (t *Tracker) DiscardOpen() {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := t.queue[:0]
	for _, q := range t.queue {
		if q.committed {
			kept = append(kept, q)
		}
	}
	if len(kept) != len(t.queue) {
		t.notify()
	}
	t.queue = kept
	t.advance()
}

// Safe returns the LSN that may be confirmed to PostgreSQL as flushed.
func (t *Tracker) Safe() pglogrepl.LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.safe
}

// Published returns the newest confirmable LSN that a transaction with events reached (positions
// that moved only by keepalives, or by transactions nothing was published for, do not count):
// the stream confirms it promptly, the rest at its status interval.
func (t *Tracker) Published() pglogrepl.LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pub
}

// Idle reports whether nothing is in flight: no transaction open or waiting for acknowledgements.
func (t *Tracker) Idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.queue) == 0
}

// WaitIdle waits until nothing is in flight (every registered transaction committed and
// acknowledged) or ctx ends.
func (t *Tracker) WaitIdle(ctx context.Context) error {
	for {
		t.mu.Lock()
		idle, ch := len(t.queue) == 0, t.changed
		t.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Stats are counters for progress reports.
type Stats struct {
	Events, Acked int64 // events handed to the sink / acknowledged, since New
	Open          int   // transactions not yet confirmable
}

// Stats returns the current counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{Events: t.events, Acked: t.acked, Open: len(t.queue)}
}

// Acked reports whether transaction id is committed and every one of its events is acknowledged
// (a transaction no longer tracked counts as acknowledged: it became confirmable, or it was
// discarded). The snapshot uses it, woken by Changed, to record a chunk as done only once Kafka
// holds all its rows.
func (t *Tracker) Acked(id TxnID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.find(id)
	return i < 0 || (t.queue[i].committed && t.queue[i].pending == 0)
}
