package kafkasink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

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
	s := newSink(Options{BatchMaxMessages: 100, BatchMaxBytes: 1 << 20, MaxInFlightBytes: 1 << 20, BatchTimeout: time.Hour, Logger: zerolog.Nop()}, tracker, p, missingTopics{})
	s.topics.set("t", topicInfo{partitions: []int{0}, maxMessageBytes: 1 << 20})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	txn := tracker.Begin()
	const n = 5
	for i := range n {
		if err := send(t, s, tracker, txn, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	tracker.Commit(txn, 0x200)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tracker.WaitIdle(ctx); err != nil {
		t.Fatalf("the lingering batch was not sent: %v", err)
	}
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
