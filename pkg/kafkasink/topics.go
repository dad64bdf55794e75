package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/retry"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// topicInfo is what the sink needs of a topic: its partition count and the largest batch it takes.
type topicInfo struct {
	partitions      []int // 0..n-1, as the partitioner takes them
	maxMessageBytes int64
}

// topicAdmin is the part of *kafka.Client the topic set-up uses.
type topicAdmin interface {
	Metadata(ctx context.Context, req *kafka.MetadataRequest) (*kafka.MetadataResponse, error)
	CreateTopics(ctx context.Context, req *kafka.CreateTopicsRequest) (*kafka.CreateTopicsResponse, error)
	DeleteTopics(ctx context.Context, req *kafka.DeleteTopicsRequest) (*kafka.DeleteTopicsResponse, error)
	DescribeConfigs(ctx context.Context, req *kafka.DescribeConfigsRequest) (*kafka.DescribeConfigsResponse, error)
}

// topics creates and describes topics, once each, and caches what it learnt.
type topics struct {
	admin   topicAdmin
	opts    Options
	log     zerolog.Logger
	explain func(error) error // names the TLS/SASL setting behind a connection failure; may be nil
	refresh func()            // drops the cached cluster metadata (refresh.go); may be nil
	mu      sync.Mutex
	byName  map[string]topicInfo
	created []string               // topics this process created
	setupMu map[string]*sync.Mutex // one set-up at a time per topic (the pipeline, the snapshot workers and start-up may ask together)
}

func newTopics(admin topicAdmin, opts Options) *topics {
	return &topics{admin: admin, opts: opts, log: opts.Logger, byName: map[string]topicInfo{}}
}

// setupLock is topic's set-up lock: different topics are set up concurrently.
func (t *topics) setupLock(topic string) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.setupMu == nil {
		t.setupMu = map[string]*sync.Mutex{}
	}
	l := t.setupMu[topic]
	if l == nil {
		l = &sync.Mutex{}
		t.setupMu[topic] = l
	}
	return l
}

func (t *topics) cached(topic string) (topicInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	info, ok := t.byName[topic]
	return info, ok
}

func (t *topics) set(topic string, info topicInfo) {
	t.mu.Lock()
	t.byName[topic] = info
	t.mu.Unlock()
}

// ping proves a broker answers, retrying until ctx ends.
func (t *topics) ping(ctx context.Context) error {
	b := retry.New(250*time.Millisecond, 2*time.Second)
	for {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := t.admin.Metadata(mctx, &kafka.MetadataRequest{Topics: []string{}})
		cancel()
		if err == nil {
			return nil
		}
		if t.explain != nil {
			err = t.explain(err)
		}
		if kafkaclient.IsPermanent(err) { // a certificate or credential problem: the setting is named
			return err
		}
		if perm := permanentAdminError(err); perm != "" {
			return fmt.Errorf("kafka: brokers %v refused the connection: %w (%s)", t.opts.Brokers, err, perm)
		}
		if b.Wait(ctx) != nil {
			return fmt.Errorf("kafka: no broker of %v answered before the start-up timeout (kafka.connect_timeout): %w", t.opts.Brokers, err)
		}
	}
}

// ensure returns the topic's description, creating the topic when it is missing (if allowed).
// Transient failures (no broker, no leader yet, timeouts) are retried until ctx ends; a failure no
// retry cures (authorization, creation disabled, an invalid name) is returned at once.
func (t *topics) ensure(ctx context.Context, topic string) (topicInfo, error) {
	if info, ok := t.cached(topic); ok {
		return info, nil
	}
	l := t.setupLock(topic)
	l.Lock()
	defer l.Unlock()
	if info, ok := t.cached(topic); ok {
		return info, nil
	}
	b := retry.New(100*time.Millisecond, 5*time.Second)
	for attempt := 1; ; attempt++ {
		info, err := t.setup(ctx, topic)
		if err == nil {
			t.set(topic, info)
			return info, nil
		}
		var perm *topicError
		if errors.As(err, &perm) || ctx.Err() != nil {
			return info, err
		}
		if attempt == 1 || attempt%20 == 0 {
			t.log.Warn().Err(err).Str("topic", topic).Int("attempt", attempt).Msg("kafka: topic set-up failed; retrying")
		}
		if werr := b.Wait(ctx); werr != nil {
			return info, fmt.Errorf("%w (stopped while retrying: %v)", err, werr)
		}
	}
}

// topicError is a topic set-up failure no retry cures.
type topicError struct{ err error }

func (e *topicError) Error() string { return e.err.Error() }
func (e *topicError) Unwrap() error { return e.err }

// permanentAdminError returns the fix for an admin failure no retry cures, "" for the rest.
func permanentAdminError(err error) string {
	var kerr kafka.Error
	if !errors.As(err, &kerr) {
		return ""
	}
	switch kerr {
	case kafka.InvalidTopic, kafka.InvalidPartitionNumber, kafka.InvalidReplicationFactor, kafka.InvalidReplicaAssignment, kafka.InvalidConfiguration:
		return "check the topic name and kafka.partitions, kafka.replication_factor, kafka.topic_config"
	}
	if kerr == kafka.TopicAuthorizationFailed || kerr == kafka.ClusterAuthorizationFailed {
		return "grant this client's principal Describe, DescribeConfigs, Write and, with kafka.create_topics, Create on the topics of kafka.topic_prefix; docs/security.md lists the ACLs"
	}
	if fix, ok := permanentErrors[kerr]; ok {
		return fix
	}
	return ""
}

func (t *topics) setup(ctx context.Context, topic string) (topicInfo, error) {
	info, err := t.describe(ctx, topic)
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		if !t.opts.CreateTopics {
			return info, &topicError{fmt.Errorf("kafka: topic %s does not exist and kafka.create_topics is false: create it, or set create_topics: true", topic)}
		}
		if err := t.create(ctx, topic); err != nil {
			return info, err
		}
		info, err = t.describe(ctx, topic)
	}
	return info, err
}

func (t *topics) create(ctx context.Context, topic string) error {
	var entries []kafka.ConfigEntry
	for k, v := range t.opts.TopicConfig {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	res, err := t.admin.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: t.opts.Partitions, ReplicationFactor: t.opts.ReplicationFactor, ConfigEntries: entries,
	}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		err = fmt.Errorf("kafka: create topic %s (partitions %d, replication factor %d): %w", topic, t.opts.Partitions, t.opts.ReplicationFactor, err)
		if fix := permanentAdminError(err); fix != "" {
			return &topicError{fmt.Errorf("%w (%s)", err, fix)}
		}
		return err
	}
	if err == nil {
		t.mu.Lock()
		t.created = append(t.created, topic)
		t.mu.Unlock()
	}
	t.log.Info().Str("topic", topic).Int("partitions", t.opts.Partitions).Int("replication_factor", t.opts.ReplicationFactor).Msg("created topic")
	return nil
}

// undoCreated deletes the topics this process created (a start that failed after creating them).
func (t *topics) undoCreated(ctx context.Context) []string {
	t.mu.Lock()
	names := append([]string(nil), t.created...)
	t.created = nil
	for _, n := range names {
		delete(t.byName, n)
	}
	t.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	if _, err := t.admin.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
		t.log.Warn().Err(err).Strs("topics", names).Msg("could not delete the topics this failed start created")
		return nil
	}
	return names
}

// describe reads a topic's partitions (all with a leader) and max.message.bytes.
func (t *topics) describe(ctx context.Context, topic string) (topicInfo, error) {
	var info topicInfo
	md, err := t.admin.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return info, fmt.Errorf("kafka: metadata of topic %s: %w", topic, err)
	}
	if len(md.Topics) != 1 {
		return info, fmt.Errorf("kafka: metadata of topic %s: %d topics in the answer", topic, len(md.Topics))
	}
	tm := md.Topics[0]
	if tm.Error != nil {
		if fix := permanentAdminError(tm.Error); fix != "" {
			return info, &topicError{fmt.Errorf("kafka: topic %s: %w (%s)", topic, tm.Error, fix)}
		}
		return info, tm.Error
	}
	if len(tm.Partitions) == 0 {
		return info, fmt.Errorf("kafka: topic %s has no partitions yet", topic)
	}
	for _, p := range tm.Partitions {
		if p.Error != nil || p.Leader.Host == "" {
			return info, fmt.Errorf("kafka: partition %d of topic %s has no leader yet", p.ID, topic)
		}
	}
	info.partitions = make([]int, len(tm.Partitions))
	for i := range info.partitions {
		info.partitions[i] = i
	}
	refresh := t.refresh
	if refresh == nil {
		refresh = func() {}
	}
	info.maxMessageBytes, err = maxMessageBytes(ctx, t.admin, topic, refresh) // topicconfig.go
	return info, err
}
