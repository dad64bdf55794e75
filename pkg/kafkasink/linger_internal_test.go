package kafkasink

import (
	"fmt"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/pkg/ack"
)

func TestLingerWait(t *testing.T) {
	const ms = time.Millisecond
	for _, c := range []struct {
		name          string
		n             int
		full          bool
		waited, limit time.Duration
		want          time.Duration
	}{
		{"nothing waiting", 0, false, 0, 5 * ms, 0},
		{"whole batch", 10, true, 0, 5 * ms, 0},
		{"oldest waited the timeout", 3, false, 5 * ms, 5 * ms, 0},
		{"in flight longer than the timeout", 3, false, time.Hour, 5 * ms, 0},
		{"young batch: look again after the quiet gap", 3, false, 0, 5 * ms, lingerQuiet},
		{"close to the timeout: only the rest", 3, false, 5*ms - 100*time.Microsecond, 5 * ms, 100 * time.Microsecond},
	} {
		if got := lingerWait(c.n, c.full, c.waited, c.limit); got != c.want {
			t.Errorf("%s: lingerWait = %s, want %s", c.name, got, c.want)
		}
	}
}

// With a batch_timeout far longer than the test, an incomplete batch is still sent once no more
// records come (the quiet gap), every record in order.
func TestLingerSendsAnIncompleteBatchWhenQuiet(t *testing.T) {
	p := &scriptedProducer{}
	tracker := ack.New(0x10)
	s := scriptedSinkWith(t, p, tracker, Options{BatchMaxMessages: 100, BatchMaxBytes: 1 << 20, MaxInFlightBytes: 1 << 20, BatchTimeout: time.Hour})
	txn := tracker.Begin()
	const n = 5
	for i := range n {
		if err := send(t, s, tracker, txn, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	tracker.Commit(txn, 0x200)
	waitIdle(t, tracker, "the lingering batch was not sent")
	producedInOrder(t, p, n)
}
