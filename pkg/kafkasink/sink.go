package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/retry"
	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// Options configure a Sink. Every field is plain configuration: the sink maps it onto its producer.
type Options struct {
	Brokers           []string
	ClientID          string
	Security          kafkaclient.Security // TLS and SASL (kafka.tls, kafka.sasl)
	Acks              string               // all (default) | one | none
	Compression       string               // none (default) | gzip | snappy | lz4 | zstd
	BatchMaxMessages  int
	BatchMaxBytes     int64
	BatchTimeout      time.Duration // linger of an idle partition's first record; 0: none
	WriteTimeout      time.Duration
	MaxInFlightBytes  int64
	CreateTopics      bool
	Partitions        int
	ReplicationFactor int
	TopicConfig       map[string]string
	Logger            zerolog.Logger
	// TransactionalID (kafka.transactional_id), when set, selects the fenced idempotent producer
	// (fenced.go): a process started with the same id fences this one off, partition by partition,
	// once it wrote there. It needs acks all.
	TransactionalID string
	// OnWrite, when set, is called after every batch write attempt (from the partition goroutines)
	// with the batch's records and bytes (keys, values, headers), the attempt's duration and its
	// error (nil once Kafka acknowledged it). For metrics; it must be quick.
	OnWrite func(records int, bytes int64, took time.Duration, err error)
	// MayWrite, when set, is asked before each write attempt; an error fails the sink with it and
	// nothing more is written (ha.enabled: the process cannot prove it still holds the slot's lease,
	// e.g. it was frozen for longer than a standby waits).
	MayWrite func() error
}

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one Kafka record of a change event.
type Record struct {
	Topic string
	Key   []byte // nil: null key (partition 0)
	Value []byte // nil: tombstone
	// ValuePrefix, when set, is the start of the record's value, shared by many records and never
	// modified (the value schema of a relation version, event.Encoder.ValuePrefix): the value Kafka
	// gets is ValuePrefix followed by Value, and Value is not nil. The schema is then neither
	// copied nor held once per record.
	ValuePrefix []byte
	Headers     []Header
	Txn         ack.TxnID // transaction the record belongs to, acknowledged to the Acker
	// For error messages only.
	Table string
	LSN   pglogrepl.LSN
}

// Acker is told when Kafka acknowledged records: n records of transaction txn (an *ack.Tracker).
type Acker interface {
	Ack(txn ack.TxnID, n int)
}

// size estimates the record's bytes inside a Kafka record batch (payload plus per-record overhead).
func (r *Record) size() int64 {
	n := int64(len(r.Key) + len(r.ValuePrefix) + len(r.Value) + 24)
	for _, h := range r.Headers {
		n += int64(len(h.Key) + len(h.Value) + 8)
	}
	return n
}

// recordOverhead is the memory of a record in flight beyond its bytes (Record and queue entry): the
// in-flight budget counts it so that max_in_flight_bytes bounds memory.
const recordOverhead = 300

// memSize is what a record in flight costs in memory.
// A shared ValuePrefix is not counted: it is held once per relation version, not per record.
func (r *Record) memSize() int64 { return r.size() - int64(len(r.ValuePrefix)) + recordOverhead }

// FullValue returns the value Kafka gets: Value, or a new slice of ValuePrefix and Value.
func (r *Record) FullValue() []byte {
	if r.ValuePrefix == nil || r.Value == nil {
		return r.Value
	}
	return append(append(make([]byte, 0, len(r.ValuePrefix)+len(r.Value)), r.ValuePrefix...), r.Value...)
}

// batchOverhead is a record batch's header, counted against max.message.bytes.
const batchOverhead = 80

type partitionKey struct {
	topic     string
	partition int
}

// Sink publishes Records to Kafka. Append is called by one goroutine at a time (the pipeline, or a
// snapshot worker); acknowledgements flow to the Acker from the partition goroutines the Sink owns.
type Sink struct {
	opts  Options
	log   zerolog.Logger
	acker Acker
	prod  producer // writes one batch to one partition (one produce request; tests inject answers)
	// metadata drops the transport's cached cluster metadata when a write fails because of it (nil
	// in tests with a scripted producer).
	metadata *metadataRefresher
	topics   *topics
	budget   *budget

	ctx    context.Context // cancelled by Close: stops the partition goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards parts
	parts map[partitionKey]*partitionQueue

	// Hold and Release: while held, Append does not wake a partition's writer for a record unless
	// a whole batch waits there; the queues it left asleep are in asleep.
	holdMu sync.Mutex
	held   bool
	asleep []*partitionQueue

	fatalOnce sync.Once
	fatal     chan struct{}
	fatalErr  error
}

// New connects to the cluster, failing after ctx's deadline when no broker answers.
func New(ctx context.Context, opts Options, acker Acker) (*Sink, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers configured")
	}
	kc, err := kafkaclient.New(ctx, kafkaclient.Settings{Brokers: opts.Brokers, ClientID: opts.ClientID, Security: opts.Security})
	if err != nil {
		return nil, err
	}
	prod, admin, metadata, err := newKafkaGo(ctx, opts, kc)
	if err != nil {
		return nil, err
	}
	s := newSink(opts, acker, prod, admin)
	s.topics.explain = kc.Explain
	s.metadata = metadata
	s.topics.refresh = func() { metadata.refresh() }
	if err := s.topics.ping(ctx); err != nil {
		s.Close(context.Background())
		return nil, err
	}
	return s, nil
}

func newSink(opts Options, acker Acker, prod producer, admin topicAdmin) *Sink {
	s := &Sink{
		opts:   opts,
		log:    opts.Logger,
		acker:  acker,
		prod:   prod,
		topics: newTopics(admin, opts),
		budget: newBudget(opts.MaxInFlightBytes),
		parts:  map[partitionKey]*partitionQueue{},
		fatal:  make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// EnsureTopic makes topic ready for writing: it creates it when missing (if allowed) and reads its
// partition count and max.message.bytes. Append does it on a topic's first record; calling it
// earlier (at start-up) surfaces a configuration problem before anything is read.
func (s *Sink) EnsureTopic(ctx context.Context, topic string) error {
	_, err := s.topics.ensure(ctx, topic)
	return err
}

// UndoCreatedTopics deletes the topics this sink created and returns their names: for a start-up
// that failed after creating them (they hold no record yet).
func (s *Sink) UndoCreatedTopics(ctx context.Context) []string {
	return s.topics.undoCreated(ctx)
}

// Append hands rec to its partition's writer: the partition is the Java client's (murmur2 over the
// key bytes; partition 0 for a null key). It waits while the bytes in flight are at
// kafka.max_in_flight_bytes, until Kafka acknowledges enough, the sink fails, or ctx ends.
func (s *Sink) Append(ctx context.Context, rec Record) error {
	if err := s.FatalErr(); err != nil {
		return err
	}
	info, err := s.topics.ensure(ctx, rec.Topic)
	if err != nil {
		return err
	}
	size := rec.size()
	if size+batchOverhead > info.maxMessageBytes {
		return &TooLargeError{Topic: rec.Topic, Table: rec.Table, Key: rec.Key, LSN: rec.LSN, Size: size, Max: info.maxMessageBytes}
	}
	mem := rec.memSize()
	if !s.budget.tryAcquire(mem) {
		// The records held back must go to free the room this one waits for.
		s.wakeAsleep()
		err = s.budget.acquire(ctx, mem, s.fatal)
	}
	if err != nil {
		if ferr := s.FatalErr(); ferr != nil {
			return ferr
		}
		return err
	}
	q := s.queue(partitionKey{rec.Topic, Partition(rec.Key, info.partitions)}, info.maxMessageBytes)
	// Under holdMu, so that a Release cannot come between the push and the registration.
	s.holdMu.Lock()
	if !q.push(queued{rec: rec, size: size, mem: mem}, time.Now(), !s.held) && !q.asleep {
		q.asleep = true
		s.asleep = append(s.asleep, q)
	}
	s.holdMu.Unlock()
	return nil
}

// Hold makes Append keep records back from the partitions' writers until Release, unless a whole
// batch is waiting or Append must wait for room in kafka.max_in_flight_bytes. The pipeline holds a
// transaction's records from its begin to its commit: PostgreSQL sends a transaction's changes one
// message at a time, and a writer woken by the first record would send it alone, then the rest
// in a second produce request. Held, a small transaction leaves in one request per partition:
// half the requests, and the wake-ups, syscalls and broker work that come with each.
func (s *Sink) Hold() {
	s.holdMu.Lock()
	s.held = true
	s.holdMu.Unlock()
}

// Release ends a Hold: the records held back go to their partitions' writers.
func (s *Sink) Release() {
	s.holdMu.Lock()
	s.held = false
	s.holdMu.Unlock()
	s.wakeAsleep()
}

// wakeAsleep wakes the writers of the partitions whose records Append held back.
func (s *Sink) wakeAsleep() {
	s.holdMu.Lock()
	asleep := s.asleep
	s.asleep = nil
	for _, q := range asleep {
		q.asleep = false
	}
	s.holdMu.Unlock()
	for _, q := range asleep {
		q.signal()
	}
}

// queue returns the partition's queue, starting its goroutine on first use.
func (s *Sink) queue(k partitionKey, maxMessageBytes int64) *partitionQueue {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.parts[k]
	if q == nil {
		maxBytes := s.opts.BatchMaxBytes
		if limit := maxMessageBytes - batchOverhead; limit < maxBytes {
			maxBytes = limit
		}
		q = newPartitionQueue(k, s.opts.BatchMaxMessages, maxBytes)
		s.parts[k] = q
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runPartition(q)
		}()
	}
	return q
}

// Err is closed when the sink failed permanently; FatalErr then says why.
func (s *Sink) Err() <-chan struct{} { return s.fatal }

// FatalErr returns the permanent failure, once Err is closed.
func (s *Sink) FatalErr() error {
	select {
	case <-s.fatal:
		return s.fatalErr
	default:
		return nil
	}
}

func (s *Sink) fail(err error) {
	s.fatalOnce.Do(func() {
		s.fatalErr = err
		close(s.fatal)
	})
}

// InFlight returns the bytes handed to the sink and not yet acknowledged.
func (s *Sink) InFlight() int64 {
	n, _ := s.budget.inUse()
	return n
}

// Drain waits until every appended record is acknowledged, the sink fails, or ctx ends.
func (s *Sink) Drain(ctx context.Context) error {
	s.wakeAsleep()
	for {
		n, changed := s.budget.inUse()
		if n == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-s.fatal:
			return s.fatalErr
		case <-ctx.Done():
			return fmt.Errorf("kafka: %d bytes still unacknowledged: %w", n, context.Cause(ctx))
		}
	}
}

// Close stops the partition goroutines (abandoning unacknowledged records, which PostgreSQL sends
// again since the slot was not confirmed past them) and closes the producer, waiting at most until
// ctx ends: kafka-go's Close can hang while the cluster is down.
func (s *Sink) Close(ctx context.Context) error {
	s.cancel()
	s.wg.Wait()
	done := make(chan error, 1)
	go func() { done <- s.prod.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("kafka: producer close did not finish: %w", ctx.Err())
	}
}

type queued struct {
	rec  Record
	size int64 // bytes in a record batch (against batch and topic limits)
	mem  int64 // bytes held in the in-flight budget
}

// partitionQueue holds the records of one topic partition waiting for its writer goroutine.
type partitionQueue struct {
	key         partitionKey
	maxMessages int
	maxBytes    int64

	mu           sync.Mutex
	pending      []queued
	pendingBytes int64
	since        time.Time     // when the oldest pending record's wait began (linger)
	notify       chan struct{} // capacity 1: "pending changed"
	asleep       bool          // in Sink.asleep (guarded by Sink.holdMu)
}

func newPartitionQueue(k partitionKey, maxMessages int, maxBytes int64) *partitionQueue {
	return &partitionQueue{key: k, maxMessages: maxMessages, maxBytes: maxBytes, notify: make(chan struct{}, 1)}
}

func (q *partitionQueue) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// push queues r and wakes the writer when wake says so or a whole batch is waiting; it returns
// whether it woke the writer.
func (q *partitionQueue) push(r queued, now time.Time, wake bool) bool {
	q.mu.Lock()
	if len(q.pending) == 0 {
		q.since = now
	}
	q.pending = append(q.pending, r)
	q.pendingBytes += r.size
	full := q.full()
	q.mu.Unlock()
	if wake || full {
		q.signal()
		return true
	}
	return false
}

// state returns the number of records waiting, since when the oldest of them waits, and whether
// a whole batch is waiting.
func (q *partitionQueue) state() (n int, since time.Time, full bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending), q.since, q.full()
}

// full says whether a whole batch is waiting (q.mu held).
func (q *partitionQueue) full() bool {
	return len(q.pending) >= q.maxMessages || q.pendingBytes >= q.maxBytes
}

// take removes the next batch: at most maxMessages records and maxBytes bytes (at least one record).
func (q *partitionQueue) take(buf []queued) []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	var bytes int64
	n := 0
	for n < len(q.pending) && n < q.maxMessages {
		if n > 0 && bytes+q.pending[n].size > q.maxBytes {
			break
		}
		bytes += q.pending[n].size
		n++
	}
	buf = append(buf[:0], q.pending[:n]...)
	rest := copy(q.pending, q.pending[n:])
	clear(q.pending[rest:])
	q.pending = q.pending[:rest]
	q.pendingBytes -= bytes
	if rest > 0 {
		q.signal()
	}
	return buf
}

// runPartition is the partition's writer loop: one batch outstanding at a time, each retried until
// it is acknowledged or fails permanently.
func (s *Sink) runPartition(q *partitionQueue) {
	var batch []queued
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-q.notify:
		}
		if s.opts.BatchTimeout > 0 && !s.linger(q, s.opts.BatchTimeout) {
			return
		}
		batch = q.take(batch)
		if len(batch) == 0 {
			continue
		}
		if !s.write(q, batch) {
			return
		}
		s.acknowledge(batch)
	}
}

// lingerQuiet is how long a lingering batch waits for another record: when none arrived meanwhile,
// the burst that started the batch (a transaction's rows) is over and the batch is sent.
const lingerQuiet = 250 * time.Microsecond

// linger holds an incomplete batch so that more records join it: until a whole batch is waiting,
// no record arrived for lingerQuiet, or the oldest record has waited batch_timeout (counted from
// its arrival, so the time a batch spends in flight counts for the next one: under load nothing
// waits). Fewer, larger produce requests cost the broker and pgcdc less per record. It returns
// false when the sink is closing.
func (s *Sink) linger(q *partitionQueue, timeout time.Duration) bool {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		n, since, full := q.state()
		wait := lingerWait(n, full, time.Since(since), timeout)
		if wait == 0 {
			return true
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-s.ctx.Done():
			return false
		case <-timer.C:
		}
		if m, _, _ := q.state(); m == n {
			return true // quiet: nothing more is coming soon
		}
	}
}

// lingerWait is how long a batch of n records (full: a whole batch) whose oldest record waited
// waited for so far may wait before its queue is looked at again; 0: send it now.
func lingerWait(n int, full bool, waited, timeout time.Duration) time.Duration {
	if n == 0 || full || waited >= timeout {
		return 0
	}
	return min(timeout-waited, lingerQuiet)
}

// Retry backoff of a failed batch: growing from retryBackoffMin up to retryBackoffMax (with jitter),
// as the Java producer's retry.backoff.ms (100 ms) and retry.backoff.max.ms (1 s) defaults. A longer
// cap would add its length to every leader change (the retry after the new leader is known waits for
// it).
const (
	retryBackoffMin = 100 * time.Millisecond
	retryBackoffMax = time.Second
)

// write sends one batch until Kafka acknowledges it. It returns false when the sink is closing or
// the failure is permanent (then the sink fails and nothing after this batch is ever sent). A failure
// that may come from stale metadata (a leader change, a broker gone) drops the cached metadata, so the
// retry goes to the partition's current leader.
func (s *Sink) write(q *partitionQueue, batch []queued) bool {
	b := retry.New(retryBackoffMin, retryBackoffMax)
	for attempt := 1; ; attempt++ {
		if s.opts.MayWrite != nil {
			if err := s.opts.MayWrite(); err != nil {
				s.log.Warn().Err(err).Str("topic", q.key.topic).Int("partition", q.key.partition).Int("records", len(batch)).Msg("kafka write withheld")
				s.fail(err)
				return false
			}
		}
		started := time.Now()
		err := s.prod.Produce(s.ctx, q.key.topic, q.key.partition, batch)
		if s.opts.OnWrite != nil && s.ctx.Err() == nil {
			s.opts.OnWrite(len(batch), batchBytes(batch), time.Since(started), err)
		}
		if err == nil {
			if attempt > 1 {
				s.log.Info().Str("topic", q.key.topic).Int("partition", q.key.partition).Int("attempts", attempt).Msg("kafka write succeeded after retries")
			}
			return true
		}
		if s.ctx.Err() != nil {
			return false
		}
		if perm := classify(q.key.topic, q.key.partition, err); perm != nil {
			s.log.Error().Err(perm).Msg("kafka write failed permanently")
			s.fail(perm)
			return false
		}
		wait := b.Next()
		refreshed := staleMetadata(err) && s.metadata.refresh()
		if attempt <= 3 || attempt%10 == 0 { // a long outage retries every second: log the start, then every tenth
			s.log.Warn().Err(firstError(err)).Str("topic", q.key.topic).Int("partition", q.key.partition).
				Int("records", len(batch)).Int("attempt", attempt).Float64("backoff_s", wait.Seconds()).Bool("metadata_refreshed", refreshed).
				Msg("kafka write failed; retrying")
		}
		if retry.Sleep(s.ctx, wait) != nil {
			return false
		}
	}
}

// batchBytes is the size of a batch's keys, values and headers.
func batchBytes(batch []queued) int64 {
	var n int64
	for i := range batch {
		r := &batch[i].rec
		n += int64(len(r.Key) + len(r.ValuePrefix) + len(r.Value))
		for _, h := range r.Headers {
			n += int64(len(h.Key) + len(h.Value))
		}
	}
	return n
}

// firstError unpacks kafka-go's per-message WriteErrors for a readable log line.
func firstError(err error) error {
	var werr kafka.WriteErrors
	if errors.As(err, &werr) {
		for _, e := range werr {
			if e != nil {
				return e
			}
		}
	}
	return err
}

// acknowledge reports an acknowledged batch to the Acker (grouped by transaction) and frees its
// bytes in the budget.
func (s *Sink) acknowledge(batch []queued) {
	var bytes int64
	var txn ack.TxnID
	n := 0
	for i := range batch {
		bytes += batch[i].mem
		if batch[i].rec.Txn != txn && n > 0 {
			s.acker.Ack(txn, n)
			n = 0
		}
		txn = batch[i].rec.Txn
		n++
		batch[i] = queued{} // drop references to the record bytes
	}
	if n > 0 {
		s.acker.Ack(txn, n)
	}
	s.budget.release(bytes)
}
