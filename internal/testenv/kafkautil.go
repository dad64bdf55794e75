package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// CreateTopic creates topic with the given partitions (replication factor 1) and fails t on error.
func CreateTopic(t testing.TB, brokers []string, topic string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1,
	}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// ReadTopic reads every partition of topic from the beginning until it has collected want records
// or timeout passes, and returns what it read (records of one partition in offset order; the
// partitions one after the other).
func ReadTopic(ctx context.Context, brokers []string, topic string, want int, timeout time.Duration) ([]kafka.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", brokers[0], err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	var out []kafka.Message
	next := make([]int64, len(parts))
	for len(out) < want {
		progressed := false
		for i, p := range parts {
			msgs, err := readPartition(ctx, brokers, topic, p.ID, next[i])
			if err != nil && ctx.Err() == nil {
				return out, err
			}
			if len(msgs) > 0 {
				progressed = true
				next[i] = msgs[len(msgs)-1].Offset + 1
				out = append(out, msgs...)
			}
		}
		if ctx.Err() != nil {
			return out, fmt.Errorf("topic %s: read %d of %d records before the timeout", topic, len(out), want)
		}
		if !progressed {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return out, nil
}

// readPartition returns the records of one partition from offset up to its current end.
func readPartition(ctx context.Context, brokers []string, topic string, partition int, offset int64) ([]kafka.Message, error) {
	conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, partition)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	last, err := conn.ReadLastOffset()
	if err != nil || last <= offset {
		return nil, err
	}
	if _, err := conn.Seek(offset, kafka.SeekAbsolute); err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(deadline)
	batch := conn.ReadBatch(1, 64<<20)
	defer batch.Close()
	var out []kafka.Message
	for offset < last {
		m, err := batch.ReadMessage()
		if err != nil {
			break
		}
		m.Topic, m.Partition = topic, partition
		out = append(out, m)
		offset = m.Offset + 1
	}
	return out, nil
}

// TopicRecords returns the number of records topic holds (the sum of its partitions' end
// offsets), or -1 when it cannot be read (e.g. the topic does not exist yet).
func TopicRecords(ctx context.Context, brokers []string, topic string) int64 {
	// A transport of its own: the shared one answers from cluster metadata cached for seconds,
	// which does not know a topic created since (it would read as missing).
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return -1
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range md.Topics[0].Partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p.ID))
	}
	res, err := client.ListOffsets(ctx, req)
	if err != nil {
		return -1
	}
	var n int64
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return -1
		}
		n += p.LastOffset
	}
	return n
}
