package deliver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// Kafka is how pgcdc deliver reaches Kafka: every connection it opens (the consumer group, the
// partition readers, the dead-letter producer, metadata and offset requests) is made from these.
type Kafka struct {
	Brokers   []string
	Dialer    *kafka.Dialer    // consumer group and partition readers
	Transport *kafka.Transport // dead-letter writer and admin requests
}

// NewKafka returns the connections to kc's brokers: TLS and SASL (kafka.tls, kafka.sasl) as kc
// was built with, on every connection deliver opens.
func NewKafka(kc *kafkaclient.Client) Kafka {
	d := kc.Dialer()
	d.DualStack, d.KeepAlive = true, 30*time.Second
	t := kc.Transport()
	t.IdleTimeout, t.MetadataTTL = 30*time.Second, 10*time.Second
	return Kafka{Brokers: kc.Brokers(), Dialer: d, Transport: t}
}

// PlainKafka returns plain-TCP connections to brokers identified by clientID (tests).
func PlainKafka(brokers []string, clientID string) Kafka {
	return Kafka{
		Brokers:   brokers,
		Dialer:    &kafka.Dialer{ClientID: clientID, Timeout: 10 * time.Second, DualStack: true, KeepAlive: 30 * time.Second},
		Transport: &kafka.Transport{ClientID: clientID, DialTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, MetadataTTL: 10 * time.Second},
	}
}

func (k Kafka) client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(k.Brokers...), Transport: k.Transport, Timeout: 15 * time.Second}
}

// listTopics returns the topics of the cluster whose names match, sorted.
func listTopics(ctx context.Context, c *kafka.Client, match func(string) bool) ([]string, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var out []string
	for _, t := range md.Topics {
		if t.Error != nil || t.Internal || strings.HasPrefix(t.Name, "__") || !match(t.Name) {
			continue
		}
		out = append(out, t.Name)
	}
	sort.Strings(out)
	return out, nil
}

// TopicSpec is how the dead-letter topic is created when it does not exist.
type TopicSpec struct {
	Create            bool // false: it must exist
	Partitions        int
	ReplicationFactor int
	Config            map[string]string
}

// ensureTopic creates topic when it is missing (spec.Create) or fails naming what to do.
func ensureTopic(ctx context.Context, c *kafka.Client, topic string, spec TopicSpec) error {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", topic, err)
	}
	if len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
		return nil
	}
	if !spec.Create {
		return fmt.Errorf("dead-letter topic %s does not exist: create it, or set kafka.create_topics: true", topic)
	}
	var entries []kafka.ConfigEntry
	for k, v := range spec.Config {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].ConfigName < entries[j].ConfigName })
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: spec.Partitions, ReplicationFactor: spec.ReplicationFactor, ConfigEntries: entries,
	}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create dead-letter topic %s: %w", topic, err)
	}
	return nil
}

// partitionOffsets lists the first and the end (next) offsets of partitions.
func partitionOffsets(ctx context.Context, c *kafka.Client, parts map[string][]int) (first, end map[string]map[int]int64, err error) {
	req := map[string][]kafka.OffsetRequest{}
	for topic, ps := range parts {
		for _, p := range ps {
			req[topic] = append(req[topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
		}
	}
	if len(req) == 0 {
		return nil, nil, nil
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, nil, err
	}
	first, end = map[string]map[int]int64{}, map[string]map[int]int64{}
	for topic, ps := range res.Topics {
		first[topic], end[topic] = map[int]int64{}, map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return nil, nil, fmt.Errorf("offsets of %s/%d: %w", topic, p.Partition, p.Error)
			}
			first[topic][p.Partition] = p.FirstOffset
			end[topic][p.Partition] = p.LastOffset
		}
	}
	return first, end, nil
}

// topicPartitions lists every partition of topics.
func topicPartitions(ctx context.Context, c *kafka.Client, topics []string) (map[string][]int, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	out := map[string][]int{}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			out[t.Name] = append(out[t.Name], p.ID)
		}
	}
	return out, nil
}
