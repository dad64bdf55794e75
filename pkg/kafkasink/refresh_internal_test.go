package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/retry"
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
	w := &scriptedProducer{answers: answers}
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

// The retry backoff of a failed batch grows from 100 ms and stays at or under 1 s (the Java
// producer's defaults), whatever the jitter.
func TestRetryBackoff(t *testing.T) {
	b := retry.New(retryBackoffMin, retryBackoffMax)
	var got []time.Duration
	for range 20 {
		got = append(got, b.Next())
	}
	if got[0] > retryBackoffMin*5/4 { // ±25% jitter
		t.Fatalf("first backoff %s, want about %s", got[0], retryBackoffMin)
	}
	for _, d := range got {
		if d <= 0 || d > retryBackoffMax {
			t.Fatalf("backoffs %v: each must be in (0, %s]", got, retryBackoffMax)
		}
	}
	if last := got[len(got)-1]; last < retryBackoffMax/2 {
		t.Fatalf("backoffs %v: the 20th is %s, want it near the cap %s", got, last, retryBackoffMax)
	}
}

type scriptedDescriber struct {
	answers []error // per call: the resource's error (a kafka.Error) or the request's; nil answers max.message.bytes 5000
	calls   int
}

func (d *scriptedDescriber) DescribeConfigs(context.Context, *kafka.DescribeConfigsRequest) (*kafka.DescribeConfigsResponse, error) {
	d.calls++
	var err error
	if len(d.answers) > 0 {
		err, d.answers = d.answers[0], d.answers[1:]
	}
	var kerr kafka.Error
	if err != nil && !errors.As(err, &kerr) {
		return nil, err // the request failed: no answer
	}
	r := kafka.DescribeConfigResponseResource{Error: err}
	if err == nil {
		r.ConfigEntries = []kafka.DescribeConfigResponseConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "5000"}}
	}
	return &kafka.DescribeConfigsResponse{Resources: []kafka.DescribeConfigResponseResource{r}}, nil
}

// A broker that does not know a just-created topic yet (UNKNOWN_TOPIC_OR_PARTITION) and a broker that
// is down (a refused connection) are retried, with a metadata refresh before each retry; a permanent
// error is not retried.
func TestMaxMessageBytesWaitsForTheTopic(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	refreshes := 0
	refresh := func() { refreshes++ }
	d := &scriptedDescriber{answers: []error{kafka.UnknownTopicOrPartition, refused, kafka.UnknownTopicOrPartition}}
	v, err := maxMessageBytes(context.Background(), d, "t", refresh)
	if err != nil || v != 5000 || d.calls != 4 || refreshes != 3 {
		t.Fatalf("got %d, %v after %d calls and %d refreshes; want 5000 after 4 and 3", v, err, d.calls, refreshes)
	}
	d = &scriptedDescriber{answers: []error{kafka.TopicAuthorizationFailed}}
	if _, err := maxMessageBytes(context.Background(), d, "t", refresh); !errors.Is(err, kafka.TopicAuthorizationFailed) || d.calls != 1 {
		t.Fatalf("authorization failure: %v after %d calls, want the error at once", err, d.calls)
	}
}
