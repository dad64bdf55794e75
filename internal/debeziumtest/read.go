package debeziumtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// ReadTopic is testenv.ReadTopic for topics that Kafka Connect creates on the connector's first
// record: it waits (within timeout) for topic to exist, then reads until it has want records.
func ReadTopic(ctx context.Context, brokers []string, topic string, want int, timeout time.Duration) ([]kafka.Message, error) {
	deadline := time.Now().Add(timeout)
	if err := WaitTopic(ctx, brokers, topic, timeout); err != nil {
		return nil, err
	}
	return testenv.ReadTopic(ctx, brokers, topic, want, time.Until(deadline))
}

// WaitTopic waits until topic exists and each of its partitions has a leader.
func WaitTopic(ctx context.Context, brokers []string, topic string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		last = topicReady(ctx, brokers[0], topic)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s does not exist after %s: %v", topic, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func topicReady(ctx context.Context, broker, topic string) error {
	conn, err := kafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		return err
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return errors.New("no partitions yet")
	}
	for _, p := range parts {
		if p.Leader.Host == "" {
			return fmt.Errorf("partition %d has no leader yet", p.ID)
		}
	}
	return nil
}
