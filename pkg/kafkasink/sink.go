package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/pgcdc/pgcdc/pkg/ack"
)

// Options configure a Sink.
type Options struct {
	Brokers           []string
	ClientID          string
	RequiredAcks      kafka.RequiredAcks
	Compression       compress.Compression // 0 = none
	BatchMaxMessages  int
	BatchMaxBytes     int64
	BatchTimeout      time.Duration
	WriteTimeout      time.Duration
	MaxInFlightBytes  int64
	CreateTopics      bool
	Partitions        int
	ReplicationFactor int
	TopicConfig       map[string]string
	Logger            zerolog.Logger
	// OnWrite, when set, is called after every batch write attempt (from the partition goroutines)
	// with the batch's records and bytes (keys, values, headers), the attempt's duration and its
	// error (nil once Kafka acknowledged it). For metrics; it must be quick.
	OnWrite func(records int, bytes int64, took time.Duration, err error)
}

// Record is one Kafka record of a change event.
type Record struct {
	Topic   string
	Key     []byte // nil: null key (partition 0)
	Value   []byte // nil: tombstone
	Headers []kafka.Header
	Txn     ack.TxnID // transaction the record belongs to, acknowledged to the tracker
	// For error messages only.
	Table string
	LSN   uint64
}

// size estimates the record's bytes inside a Kafka record batch (payload plus per-record overhead).
func (r *Record) size() int64 {
	n := int64(len(r.Key) + len(r.Value) + 24)
	for _, h := range r.Headers {
		n += int64(len(h.Key) + len(h.Value) + 8)
	}
	return n
}

// recordOverhead is the memory of a record in flight beyond its bytes (Record, kafka.Message and
// queue entry): the in-flight budget counts it so that max_in_flight_bytes bounds memory.
const recordOverhead = 300

// memSize is what a record in flight costs in memory.
func (r *Record) memSize() int64 { return r.size() + recordOverhead }

// batchOverhead is a record batch's header, counted against max.message.bytes.
const batchOverhead = 80

type topicInfo struct {
	partitions      []int // 0..n-1, for the balancer
	maxMessageBytes int64
}

type partitionKey struct {
	topic     string
	partition int
}

// Sink publishes Records to Kafka. Reserve and Enqueue are called by one goroutine (the stream);
// acknowledgements flow to the tracker from the partition goroutines the Sink owns.
type Sink struct {
	opts    Options
	log     zerolog.Logger
	tracker *ack.Tracker
	writer  messageWriter // a *kafka.Writer; an interface so tests can inject broker answers
	admin   *kafka.Client
	// metadata drops the transport's cached cluster metadata when a write fails because of it (nil
	// in tests with a scripted writer).
	metadata *metadataRefresher
	budget   *budget
	bal      kafka.Murmur2Balancer

	ctx    context.Context // cancelled by Close: stops the partition goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards topics and parts
	topics map[string]topicInfo
	parts  map[partitionKey]*partitionQueue

	fatalOnce sync.Once
	fatal     chan struct{}
	fatalErr  error
}

// New connects to the cluster, failing after ctx's deadline when no broker answers.
func New(ctx context.Context, opts Options, tracker *ack.Tracker) (*Sink, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers configured")
	}
	transport := &kafka.Transport{ClientID: opts.ClientID, DialTimeout: 10 * time.Second, MetadataTTL: 30 * time.Second}
	s := &Sink{
		opts:    opts,
		log:     opts.Logger,
		tracker: tracker,
		admin:   &kafka.Client{Addr: kafka.TCP(opts.Brokers...), Transport: transport, Timeout: 30 * time.Second},
		budget:  newBudget(opts.MaxInFlightBytes),
		bal:     kafka.Murmur2Balancer{Consistent: true},
		topics:  map[string]topicInfo{},
		parts:   map[partitionKey]*partitionQueue{},
		fatal:   make(chan struct{}),
	}
	s.metadata = newMetadataRefresher(transport, time.Second)
	s.writer = &kafka.Writer{
		Addr:        kafka.TCP(opts.Brokers...),
		Balancer:    presetPartition{},
		MaxAttempts: 1, // retries are ours: without end for retriable errors, none for permanent ones
		BatchSize:   opts.BatchMaxMessages + 1,
		BatchBytes:  1 << 30, // batches are cut by us, below the topic's max.message.bytes
		// The Writer must not hold our batches back: a batch handed to WriteMessages is complete
		// (kafka-go would otherwise wait BatchTimeout, default 1 s, for a batch that never fills).
		// kafka.batch_timeout is applied by the partition loop (linger).
		BatchTimeout: time.Microsecond,
		WriteTimeout: opts.WriteTimeout,
		ReadTimeout:  opts.WriteTimeout,
		RequiredAcks: opts.RequiredAcks,
		Compression:  opts.Compression,
		Transport:    transport,
	}
	if err := s.ping(ctx); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// ping proves a broker answers, retrying until ctx ends.
func (s *Sink) ping(ctx context.Context) error {
	var last error
	for {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.admin.Metadata(mctx, &kafka.MetadataRequest{Topics: []string{}})
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: no broker of %v answered before the start-up timeout: %w", s.opts.Brokers, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// messageWriter is the part of *kafka.Writer the sink uses.
type messageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// presetPartition routes a message to the partition the Sink chose (Message.Partition).
type presetPartition struct{}

func (presetPartition) Balance(msg kafka.Message, _ ...int) int { return msg.Partition }

// EnsureTopic makes topic ready for writing: it creates it when missing (if allowed) and reads its
// partition count and max.message.bytes. It is called before the first record of each topic.
func (s *Sink) EnsureTopic(ctx context.Context, topic string) error {
	s.mu.Lock()
	_, ok := s.topics[topic]
	s.mu.Unlock()
	if ok {
		return nil
	}
	info, err := s.describe(ctx, topic)
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		if !s.opts.CreateTopics {
			return fmt.Errorf("kafka: topic %s does not exist and kafka.create_topics is false: create it, or set create_topics: true", topic)
		}
		if err := s.create(ctx, topic); err != nil {
			return err
		}
		info, err = s.describe(ctx, topic)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.topics[topic] = info
	s.mu.Unlock()
	return nil
}

func (s *Sink) create(ctx context.Context, topic string) error {
	var entries []kafka.ConfigEntry
	for k, v := range s.opts.TopicConfig {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	res, err := s.admin.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: s.opts.Partitions, ReplicationFactor: s.opts.ReplicationFactor, ConfigEntries: entries,
	}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create topic %s (partitions %d, replication factor %d): %w", topic, s.opts.Partitions, s.opts.ReplicationFactor, err)
	}
	s.log.Info().Str("topic", topic).Int("partitions", s.opts.Partitions).Int("replication_factor", s.opts.ReplicationFactor).Msg("created topic")
	return nil
}

// describe reads a topic's partitions (waiting for leaders after a creation) and max.message.bytes.
func (s *Sink) describe(ctx context.Context, topic string) (topicInfo, error) {
	var info topicInfo
	for attempt := 0; ; attempt++ {
		md, err := s.admin.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return info, fmt.Errorf("kafka: metadata of topic %s: %w", topic, err)
		}
		if len(md.Topics) != 1 {
			return info, fmt.Errorf("kafka: metadata of topic %s: %d topics in the answer", topic, len(md.Topics))
		}
		t := md.Topics[0]
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) && attempt > 0 && attempt < 50 {
				time.Sleep(100 * time.Millisecond) // just created: metadata catches up
				continue
			}
			return info, t.Error
		}
		ready := len(t.Partitions) > 0
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				ready = false
			}
		}
		if !ready && attempt < 50 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		info.partitions = make([]int, len(t.Partitions))
		for i := range info.partitions {
			info.partitions[i] = i
		}
		break
	}
	var err error
	info.maxMessageBytes, err = maxMessageBytes(ctx, s.admin, topic, func() { s.metadata.refresh() })
	return info, err
}

// Reserve waits up to wait for room for a record of n bytes in the in-flight budget. It returns
// false when the wait ended without room; the caller should keep its source alive and call again.
func (s *Sink) Reserve(ctx context.Context, rec *Record, wait time.Duration) (bool, error) {
	select {
	case <-s.fatal:
		return false, s.fatalErr
	default:
	}
	return s.budget.acquire(ctx, rec.memSize(), wait)
}

// TooLargeError is a record that exceeds its topic's max.message.bytes.
type TooLargeError struct {
	Topic, Table string
	Key          []byte
	LSN          uint64
	Size, Max    int64
}

func (e *TooLargeError) Error() string {
	key := string(e.Key)
	if len(key) > 200 {
		key = key[:200] + "..."
	}
	return fmt.Sprintf("kafka: the event of table %s at LSN %s with key %s is %d bytes, more than topic %s accepts (max.message.bytes=%d); raise the topic's max.message.bytes (and the broker's message.max.bytes)",
		e.Table, ack.LSN(e.LSN), key, e.Size, e.Topic, e.Max)
}

// Enqueue hands a reserved record to its partition's writer. EnsureTopic must have been called
// for rec.Topic and Reserve must have admitted rec.
func (s *Sink) Enqueue(rec Record) error {
	size := rec.size()
	s.mu.Lock()
	info, ok := s.topics[rec.Topic]
	s.mu.Unlock()
	if !ok {
		s.budget.release(rec.memSize())
		return fmt.Errorf("kafkasink: topic %s used before EnsureTopic", rec.Topic)
	}
	if size+batchOverhead > info.maxMessageBytes {
		s.budget.release(rec.memSize())
		return &TooLargeError{Topic: rec.Topic, Table: rec.Table, Key: rec.Key, LSN: rec.LSN, Size: size, Max: info.maxMessageBytes}
	}
	partition := 0
	if rec.Key != nil {
		partition = s.bal.Balance(kafka.Message{Key: rec.Key}, info.partitions...)
	}
	q := s.queue(partitionKey{rec.Topic, partition}, info.maxMessageBytes)
	q.push(queued{rec: rec, size: size, mem: rec.memSize()})
	return nil
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
		q = &partitionQueue{key: k, notify: make(chan struct{}, 1), maxMessages: s.opts.BatchMaxMessages, maxBytes: maxBytes}
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

// Drain waits until every enqueued record is acknowledged, the sink fails, or ctx ends.
func (s *Sink) Drain(ctx context.Context) error {
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
			return fmt.Errorf("kafka: %d bytes still unacknowledged: %w", n, ctx.Err())
		}
	}
}

// Close stops the partition goroutines (abandoning unacknowledged records, which PostgreSQL sends
// again since the slot was not confirmed past them) and closes the writer, waiting at most until
// ctx ends: kafka-go's Close can hang while the cluster is down.
func (s *Sink) Close(ctx context.Context) error {
	s.cancel()
	s.wg.Wait()
	done := make(chan error, 1)
	go func() { done <- s.writer.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("kafka: writer close did not finish: %w", ctx.Err())
	}
}
