package signal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/retry"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// KafkaChannel reads signals from partition 0 of a Kafka topic, as Debezium's kafka signal channel
// does: a record whose key is Key (the connector's topic prefix) and whose value is
// {"id": "...", "type": "...", "data": {...}} is a signal; records with another key are skipped.
type KafkaChannel struct {
	Client *kafkaclient.Client
	Topic  string
	Key    string // kafka.topic_prefix
	// Create makes the topic (one partition, ReplicationFactor replicas, retention forever) when
	// it does not exist; otherwise Run waits for it.
	Create            bool
	ReplicationFactor int
	Log               zerolog.Logger
}

// Record is one record of the signal topic as Debezium's channel reads it.
type Record struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Run reads the topic from offset from (the offset after the last signal acted on; 0 or less:
// the first offset, as Debezium's channel with a new consumer group) and calls handle for each
// signal in order; a record that is not a valid signal is logged and skipped. handle's error ends
// Run. Run returns nil when ctx ends.
func (k *KafkaChannel) Run(ctx context.Context, from int64, handle func(context.Context, Signal) error) error {
	if err := k.ensureTopic(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: k.Client.Brokers(), Dialer: k.Client.Dialer(), Topic: k.Topic, Partition: 0,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { k.Log.Debug().Str("topic", k.Topic).Msgf("signal channel: "+f, a...) }),
	})
	defer r.Close()
	start := from
	if start <= 0 {
		start = kafka.FirstOffset
	}
	if err := r.SetOffset(start); err != nil {
		return fmt.Errorf("signal.kafka_topic %s: %w", k.Topic, err)
	}
	k.Log.Info().Str("topic", k.Topic).Int64("offset", from).Msg("reading signals from the Kafka signal topic")
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("signal.kafka_topic %s: %w", k.Topic, err)
		}
		if string(m.Key) != k.Key {
			k.Log.Info().Str("topic", k.Topic).Int64("offset", m.Offset).Str("key", string(m.Key)).Str("want", k.Key).
				Msg("signal skipped: its key is not this connector's kafka.topic_prefix")
			continue
		}
		s, err := ParseRecord(m.Value)
		if err != nil {
			k.Log.Error().Err(err).Str("topic", k.Topic).Int64("offset", m.Offset).Msg("signal skipped")
			continue
		}
		s.Channel, s.Offset = ChannelKafka, m.Offset
		if err := handle(ctx, s); err != nil {
			return err
		}
	}
}

// ParseRecord parses the value of a signal topic record.
func ParseRecord(value []byte) (Signal, error) {
	var rec Record
	if err := json.Unmarshal(value, &rec); err != nil {
		return Signal{}, fmt.Errorf("the record is not a JSON object {\"id\", \"type\", \"data\"}: %w", err)
	}
	if rec.Type == "" {
		return Signal{}, errors.New(`the record has no "type"`)
	}
	data := []byte(rec.Data)
	if len(data) == 0 || string(data) == "null" {
		data = []byte("{}")
	}
	return Parse(rec.ID, rec.Type, data)
}

// ensureTopic waits until the topic exists, creating it when asked to.
func (k *KafkaChannel) ensureTopic(ctx context.Context) error {
	admin := &kafka.Client{Addr: k.Client.Addr(), Transport: k.Client.Transport(), Timeout: 30 * time.Second}
	b := retry.New(time.Second, 30*time.Second)
	created, warned := false, false
	for {
		md, err := admin.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{k.Topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil {
			return nil
		}
		missing := err == nil && len(md.Topics) == 1 && errors.Is(md.Topics[0].Error, kafka.UnknownTopicOrPartition)
		if missing && k.Create && !created {
			res, err := admin.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
				Topic: k.Topic, NumPartitions: 1, ReplicationFactor: max(1, k.ReplicationFactor),
				ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "-1"}},
			}}})
			if err == nil {
				err = res.Errors[k.Topic]
			}
			if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
				return fmt.Errorf("signal.kafka_topic: create topic %s: %w", k.Topic, err)
			}
			created = true
			k.Log.Info().Str("topic", k.Topic).Msg("created the Kafka signal topic (1 partition)")
			continue
		}
		if !warned {
			warned = true
			k.Log.Warn().Err(err).Str("topic", k.Topic).Msg("the Kafka signal topic does not exist (kafka.create_topics is false): create it with one partition; waiting for it")
		}
		if err := b.Wait(ctx); err != nil {
			return err
		}
	}
}

// SendKafka writes a signal to partition 0 of topic, keyed by key (the connector's topic prefix),
// and returns once Kafka acknowledged it.
func SendKafka(ctx context.Context, kc *kafkaclient.Client, topic, key, id, typ string, data []byte) error {
	value, err := json.Marshal(Record{ID: id, Type: typ, Data: data})
	if err != nil {
		return err
	}
	w := &kafka.Writer{Addr: kc.Addr(), Transport: kc.Transport(), Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }), BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(key), Value: value}); err != nil {
		return fmt.Errorf("write the signal to topic %s: %w", topic, err)
	}
	return nil
}

// NewID returns a signal id: the time in nanoseconds, in base 36 (unique enough for a person
// sending signals by hand; Debezium's ids are free-form).
func NewID() string { return "pgcdc-" + strconv.FormatInt(time.Now().UnixNano(), 36) }
