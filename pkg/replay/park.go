package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// Parking: with Options.ParkFile or Options.ParkTopic, a record replay cannot apply (malformed, a
// value or constraint the target refuses, an unchanged TOAST value it cannot know) is written
// there with the reason, and replay goes on with the next one. The parked record is durable (the
// file synced, or Kafka acknowledged it) before the transaction that moves the partition's offset
// past it commits, so a crash can park a record twice but never lose it.

// parker keeps records replay cannot apply.
type parker interface {
	park(ctx context.Context, recs []*prepared) error
	close() error
	String() string
}

// parkedRecord is one line of a park file.
type parkedRecord struct {
	Time      time.Time     `json:"time"`
	Topic     string        `json:"topic"`
	Partition int           `json:"partition"`
	Offset    int64         `json:"offset"`
	Reason    string        `json:"reason"`
	Key       *string       `json:"key"`   // the record's key bytes as a string (null: no key)
	Value     *string       `json:"value"` // null for a tombstone
	Headers   []parkedHeadr `json:"headers,omitempty"`
}

type parkedHeadr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func strPtr(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// fileParker appends JSON lines to a file and syncs it.
type fileParker struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func newFileParker(path string) (*fileParker, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("replay: --park-file: %w", err)
	}
	return &fileParker{path: path, f: f}, nil
}

func (p *fileParker) String() string { return "file " + p.path }

func (p *fileParker) park(_ context.Context, recs []*prepared) error {
	var buf []byte
	for _, r := range recs {
		pr := parkedRecord{Time: time.Now().UTC(), Topic: r.msg.Topic, Partition: r.partition, Offset: r.offset, Reason: r.park,
			Key: strPtr(r.msg.Key), Value: strPtr(r.msg.Value)}
		for _, h := range r.msg.Headers {
			pr.Headers = append(pr.Headers, parkedHeadr{Key: h.Key, Value: string(h.Value)})
		}
		line, err := json.Marshal(pr)
		if err != nil {
			return err
		}
		buf = append(append(buf, line...), '\n')
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.f.Write(buf); err != nil {
		return fmt.Errorf("replay: write to the park file %s: %w", p.path, err)
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("replay: sync the park file %s: %w", p.path, err)
	}
	return nil
}

func (p *fileParker) close() error { return p.f.Close() }

// Headers a parked record carries in the park topic, besides its own.
const (
	HeaderParkReason    = "pgcdc.replay.reason"
	HeaderParkTopic     = "pgcdc.replay.topic"
	HeaderParkPartition = "pgcdc.replay.partition"
	HeaderParkOffset    = "pgcdc.replay.offset"
)

// topicParker produces parked records, with their key, value and headers, to a topic.
type topicParker struct {
	topic string
	w     *kafka.Writer
}

func newTopicParker(ctx context.Context, client *kafka.Client, kc *kafkaclient.Client, topic string) (*topicParker, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("replay: --park-topic %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, fmt.Errorf("replay: --park-topic %s does not exist: create it first (kafka-topics.sh --create --topic %s, with the retention you want for records to look at later)", topic, topic)
	}
	return &topicParker{topic: topic, w: &kafka.Writer{Addr: kc.Addr(), Transport: kc.Transport(), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Balancer: &kafka.Hash{}}}, nil
}

func (p *topicParker) String() string { return "topic " + p.topic }

func (p *topicParker) park(ctx context.Context, recs []*prepared) error {
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		h := append([]kafka.Header(nil), r.msg.Headers...)
		h = append(h, kafka.Header{Key: HeaderParkReason, Value: []byte(r.park)},
			kafka.Header{Key: HeaderParkTopic, Value: []byte(r.msg.Topic)},
			kafka.Header{Key: HeaderParkPartition, Value: []byte(strconv.Itoa(r.partition))},
			kafka.Header{Key: HeaderParkOffset, Value: []byte(strconv.FormatInt(r.offset, 10))})
		msgs[i] = kafka.Message{Key: r.msg.Key, Value: r.msg.Value, Headers: h}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("replay: produce to the park topic %s: %w", p.topic, err)
	}
	return nil
}

func (p *topicParker) close() error { return p.w.Close() }

// parkSegment parks seg's records marked to be parked, logging each.
func (e *engine) parkSegment(ctx context.Context, seg []*prepared) error {
	var recs []*prepared
	for _, p := range seg {
		if p.park != "" {
			recs = append(recs, p)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if e.parker == nil {
		return fmt.Errorf("replay: %s", recs[0].park) // not reached: records are marked only with a parker
	}
	if err := e.parker.park(ctx, recs); err != nil {
		return err
	}
	for _, r := range recs {
		e.log.Warn().Str("topic", r.msg.Topic).Int("partition", r.partition).Int64("offset", r.offset).Str("parked_in", e.parker.String()).
			Str("reason", r.park).Msg("record cannot be applied: parked, replay goes on")
	}
	return nil
}
