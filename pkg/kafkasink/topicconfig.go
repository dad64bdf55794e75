package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// configDescriber is the part of *kafka.Client maxMessageBytes uses.
type configDescriber interface {
	DescribeConfigs(ctx context.Context, req *kafka.DescribeConfigsRequest) (*kafka.DescribeConfigsResponse, error)
}

// maxMessageBytes reads a topic's max.message.bytes (Kafka's default when the answer lacks it).
//
// kafka-go sends DescribeConfigs to the broker its metadata names as controller, which in a KRaft
// cluster is any broker. Right after the topic was created that broker may not know the topic yet
// (metadata reaches the brokers one by one) and answers UNKNOWN_TOPIC_OR_PARTITION; and the broker
// may be down (its connection refused) while the others serve. Both are retried for up to 30 s,
// calling refresh (new metadata: another broker may be named) before each retry; the three-broker
// tests saw each stop pgcdc at start-up. Any other error is returned at once.
func maxMessageBytes(ctx context.Context, d configDescriber, topic string, refresh func()) (int64, error) {
	const retryFor, every = 30 * time.Second, 200 * time.Millisecond
	deadline := time.Now().Add(retryFor)
	for {
		var v int64
		res, err := d.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"max.message.bytes"},
		}}})
		if err != nil {
			err = fmt.Errorf("kafka: read max.message.bytes of topic %s: %w", topic, err)
		} else {
			v, err = configValue(res, topic)
		}
		var perm *topicError
		retry := !errors.As(err, &perm) &&
			(errors.Is(err, kafka.UnknownTopicOrPartition) || (err != nil && classify(topic, -1, err) == nil && staleMetadata(err)))
		if err == nil || !retry || time.Now().After(deadline) || ctx.Err() != nil {
			return v, err
		}
		refresh()
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w (%v)", err, ctx.Err())
		case <-time.After(every):
		}
	}
}

func configValue(res *kafka.DescribeConfigsResponse, topic string) (int64, error) {
	v := int64(1048588) // Kafka's default
	for _, r := range res.Resources {
		if r.Error != nil {
			if fix := permanentAdminError(r.Error); fix != "" {
				return 0, &topicError{fmt.Errorf("kafka: read config of topic %s: %w (%s)", topic, r.Error, fix)}
			}
			return 0, fmt.Errorf("kafka: read config of topic %s: %w", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "max.message.bytes" {
				if n, err := strconv.ParseInt(e.ConfigValue, 10, 64); err == nil {
					v = n
				}
			}
		}
	}
	return v, nil
}
