package kafkasink

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/ack"
)

// scriptedWriter answers WriteMessages with the scripted errors in turn, then with success, and
// records every batch it was given.
type scriptedWriter struct {
	mu      sync.Mutex
	answers []error
	batches [][]kafka.Message
}

func (w *scriptedWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.batches = append(w.batches, append([]kafka.Message(nil), msgs...))
	if len(w.answers) == 0 {
		return nil
	}
	err := w.answers[0]
	w.answers = w.answers[1:]
	return err
}

func (w *scriptedWriter) Close() error { return nil }

func (w *scriptedWriter) calls() [][]kafka.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]kafka.Message(nil), w.batches...)
}

// scriptedSink is a Sink over a scripted writer with one known topic of one partition; Enqueue starts
// the real partition goroutine.
func scriptedSink(t *testing.T, w *scriptedWriter, tracker *ack.Tracker) *Sink {
	t.Helper()
	s := &Sink{
		opts:    Options{BatchMaxMessages: 100, BatchMaxBytes: 1 << 20},
		log:     zerolog.Nop(),
		tracker: tracker,
		writer:  w,
		budget:  newBudget(1 << 20),
		bal:     kafka.Murmur2Balancer{Consistent: true},
		topics:  map[string]topicInfo{"t": {partitions: []int{0}, maxMessageBytes: 1 << 20}},
		parts:   map[partitionKey]*partitionQueue{},
		fatal:   make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

func send(t *testing.T, s *Sink, tracker *ack.Tracker, txn ack.TxnID, value string) error {
	t.Helper()
	rec := Record{Topic: "t", Key: []byte(`{"id":1}`), Value: []byte(value), Txn: txn, Table: "public.t", LSN: 0x100}
	ok, err := s.Reserve(context.Background(), &rec, time.Second)
	if err != nil {
		return err
	}
	if !ok {
		t.Fatal("no room in an empty budget")
	}
	tracker.Add(txn, 1)
	return s.Enqueue(rec)
}

// A topic authorization failure (what an ACL denying WRITE produces) is permanent: the sink fails
// with an error that names the topic and the fix, the batch is not retried, nothing behind it is
// sent, and the tracker never gets an acknowledgement, so the slot is not confirmed past it.
func TestAuthorizationFailureStopsTheSink(t *testing.T) {
	w := &scriptedWriter{answers: []error{kafka.WriteErrors{kafka.TopicAuthorizationFailed}}}
	tracker := ack.New(0x10)
	s := scriptedSink(t, w, tracker)
	txn := tracker.Begin()
	if err := send(t, s, tracker, txn, "first"); err != nil {
		t.Fatal(err)
	}
	tracker.Commit(txn, 0x200)
	select {
	case <-s.Err():
	case <-time.After(10 * time.Second):
		t.Fatal("the sink did not fail on TopicAuthorizationFailed")
	}
	err := s.FatalErr()
	var perm *PermanentError
	if !errors.As(err, &perm) || !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Fatalf("FatalErr = %v, want a PermanentError wrapping TopicAuthorizationFailed", err)
	}
	for _, want := range []string{"t partition 0", "failed permanently", "grant this client WRITE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Later records are refused, and nothing is written after the failure.
	txn2 := tracker.Begin()
	if err := send(t, s, tracker, txn2, "second"); !errors.As(err, &perm) {
		t.Fatalf("Reserve after the failure: %v, want the permanent error", err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(w.calls()); n != 1 {
		t.Fatalf("%d write attempts, want 1 (a permanent failure is not retried)", n)
	}
	if got := tracker.Safe(); got != 0x10 {
		t.Fatalf("safe LSN %s, want the start 0/10: the failed transaction must not become confirmable", got)
	}
}

// Errors a broker restart or a slow broker produce are retried with the same batch until it is
// acknowledged; then the transaction becomes confirmable.
func TestTransientWriteErrorsAreRetried(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	answers := []error{io.EOF, refused, context.DeadlineExceeded, kafka.WriteErrors{kafka.NotLeaderForPartition}, kafka.RequestTimedOut}
	w := &scriptedWriter{answers: answers}
	tracker := ack.New(0x10)
	s := scriptedSink(t, w, tracker)
	txn := tracker.Begin()
	if err := send(t, s, tracker, txn, "only"); err != nil {
		t.Fatal(err)
	}
	tracker.Commit(txn, 0x200)
	deadline := time.Now().Add(60 * time.Second)
	for tracker.Safe() != 0x200 {
		if err := s.FatalErr(); err != nil {
			t.Fatalf("transient errors failed the sink: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not acknowledged after %d attempts", len(w.calls()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	calls := w.calls()
	if len(calls) != len(answers)+1 {
		t.Fatalf("%d attempts, want %d", len(calls), len(answers)+1)
	}
	for i, b := range calls {
		if len(b) != 1 || string(b[0].Value) != "only" {
			t.Fatalf("attempt %d sent %d records, want the same single record", i, len(b))
		}
	}
	if s.InFlight() != 0 {
		t.Fatalf("%d bytes still in flight after the acknowledgement", s.InFlight())
	}
}
