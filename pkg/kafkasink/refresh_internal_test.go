package kafkasink

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/ack"
)

type countingTransport struct {
	mu sync.Mutex
	n  int
}

func (c *countingTransport) CloseIdleConnections() { c.mu.Lock(); c.n++; c.mu.Unlock() }

func (c *countingTransport) closes() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

func TestStaleMetadata(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{kafka.NotLeaderForPartition, true},
		{kafka.WriteErrors{kafka.NotLeaderForPartition}, true},
		{kafka.LeaderNotAvailable, true},
		{kafka.FencedLeaderEpoch, true},
		{kafka.RequestTimedOut, true},
		{io.EOF, true},
		{io.ErrUnexpectedEOF, true},
		{refused, true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("kafka.(*Client).Produce: %w", refused), true},
		{kafka.NotEnoughReplicas, false},
		{kafka.WriteErrors{kafka.NotEnoughReplicasAfterAppend}, false},
		{kafka.WriteErrors{nil, kafka.NotEnoughReplicas}, false},
	} {
		if got := staleMetadata(c.err); got != c.want {
			t.Errorf("staleMetadata(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// One refresh per interval however many partitions ask; the first is never refused.
func TestMetadataRefresherRateLimit(t *testing.T) {
	ct := &countingTransport{}
	m := newMetadataRefresher(ct, time.Hour)
	if !m.refresh() {
		t.Fatal("first refresh refused")
	}
	for i := 0; i < 10; i++ {
		if m.refresh() {
			t.Fatal("a second refresh within the interval")
		}
	}
	if ct.closes() != 1 || m.refreshes() != 1 {
		t.Fatalf("%d transport closes, %d refreshes; want 1", ct.closes(), m.refreshes())
	}
	m.every = 0
	m.refresh()
	if ct.closes() != 2 {
		t.Fatalf("%d closes after the interval, want 2", ct.closes())
	}
	var nilRefresher *metadataRefresher
	if nilRefresher.refresh() {
		t.Fatal("a nil refresher refreshed")
	}
}

// The write loop drops the cached metadata before retrying a batch that failed because of a leader
// change or a broken connection, and not for Not Enough Replicas (the leader is right; the ISR is
// short). The batch is retried until acknowledged.
func TestLeaderChangeRefreshesMetadataBeforeTheRetry(t *testing.T) {
	answers := []error{kafka.WriteErrors{kafka.NotLeaderForPartition}, kafka.WriteErrors{kafka.NotEnoughReplicas}, io.ErrUnexpectedEOF}
	w := &scriptedWriter{answers: answers}
	tracker := ack.New(0x10)
	s := scriptedSink(t, w, tracker)
	ct := &countingTransport{}
	s.metadata = newMetadataRefresher(ct, 0)
	txn := tracker.Begin()
	if err := send(t, s, tracker, txn, "only"); err != nil {
		t.Fatal(err)
	}
	tracker.Commit(txn, 0x200)
	deadline := time.Now().Add(30 * time.Second)
	for tracker.Safe() != 0x200 {
		if time.Now().After(deadline) {
			t.Fatalf("not acknowledged after %d attempts", len(w.calls()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(w.calls()); n != len(answers)+1 {
		t.Fatalf("%d attempts, want %d", n, len(answers)+1)
	}
	if ct.closes() != 2 {
		t.Fatalf("%d metadata refreshes, want 2 (NotLeaderForPartition and the broken connection, not NotEnoughReplicas)", ct.closes())
	}
	if err := s.FatalErr(); err != nil {
		t.Fatal(err)
	}
}

// The retry backoff doubles from 100 ms and stops at 1 s (the Java producer's defaults).
func TestRetryBackoff(t *testing.T) {
	var got []time.Duration
	for d, i := retryBackoffMin, 0; i < 8; d, i = nextBackoff(d), i+1 {
		got = append(got, d)
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoffs %v, want %v ms", got, want)
		}
	}
}
