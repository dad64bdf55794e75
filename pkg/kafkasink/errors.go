package kafkasink

import (
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// permanentErrors are broker answers that no retry can cure: the user must act.
var permanentErrors = map[kafka.Error]string{
	kafka.TopicAuthorizationFailed:    "grant this client WRITE (and DESCRIBE) on the topic",
	kafka.ClusterAuthorizationFailed:  "grant this client the cluster permission it needs",
	kafka.SASLAuthenticationFailed:    "check the Kafka credentials (kafka.sasl)",
	kafka.MessageSizeTooLarge:         "raise the topic's max.message.bytes (and the broker's message.max.bytes) or shrink the rows",
	kafka.RecordListTooLarge:          "lower kafka.batch_max_bytes",
	kafka.InvalidTopic:                "use a valid topic name",
	kafka.InvalidRecord:               "the broker rejected a record (see its log)",
	kafka.InvalidRequiredAcks:         "set kafka.acks to all, one or none",
	kafka.UnsupportedForMessageFormat: "the topic's message format is too old for this record",
	kafka.UnsupportedCompressionType:  "choose a compression the broker supports (kafka.compression)",
	kafka.PolicyViolation:             "the broker's policy refuses these records",
	// The idempotent producer's session (kafka.transactional_id) lost its sequence state on the
	// broker. pgcdc stops; when it is started again it opens a new session and re-publishes from the
	// slot's confirmed position, which never went past this batch: nothing is lost.
	kafka.OutOfOrderSequenceNumber: sessionLost,
	kafka.UnknownProducerId:        sessionLost,
	kafka.InvalidProducerIDMapping: sessionLost,
}

const sessionLost = "the broker lost this producer session's sequence state; restart pgcdc: it starts a new session and publishes again from the slot's confirmed position, which never went past this batch, so nothing is lost"

// FencedError is a write refused because another process started a producer session with the same
// kafka.transactional_id (a higher producer epoch) and wrote to the partition: this process must stop
// publishing, the other one carries on.
type FencedError struct {
	TransactionalID string
	ProducerEpoch   int16 // this process's epoch, the fenced one
	Topic           string
	Partition       int
	Err             error // the broker's answer: INVALID_PRODUCER_EPOCH or PRODUCER_FENCED
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("kafka: another pgcdc process took over transactional id %q (producer epoch %d fenced on %s partition %d); this process stops publishing: %v",
		e.TransactionalID, e.ProducerEpoch, e.Topic, e.Partition, e.Err)
}

func (e *FencedError) Unwrap() error { return e.Err }

// PermanentError is a Kafka failure that retrying cannot fix.
type PermanentError struct {
	Topic     string
	Partition int
	Err       error
	Fix       string
}

func (e *PermanentError) Error() string {
	msg := fmt.Sprintf("kafka: writing to %s partition %d failed permanently: %v", e.Topic, e.Partition, e.Err)
	if e.Fix != "" {
		msg += " (" + e.Fix + ")"
	}
	return msg
}

func (e *PermanentError) Unwrap() error { return e.Err }

// classify returns a *PermanentError for failures no retry can cure and nil for the rest, which are
// retried: io.EOF and other network errors during a broker restart, timeouts, leader elections.
func classify(topic string, partition int, err error) *PermanentError {
	var werr kafka.WriteErrors
	if errors.As(err, &werr) {
		for _, e := range werr {
			if e != nil {
				if p := classify(topic, partition, e); p != nil {
					return p
				}
			}
		}
		return nil
	}
	if fe := (*FencedError)(nil); errors.As(err, &fe) { // never retried: the other process owns the topic now
		return &PermanentError{Topic: topic, Partition: partition, Err: err}
	}
	if kafkaclient.IsPermanent(err) { // a certificate or credential problem met on a new connection
		return &PermanentError{Topic: topic, Partition: partition, Err: err}
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		if fix, ok := permanentErrors[kerr]; ok {
			return &PermanentError{Topic: topic, Partition: partition, Err: err, Fix: fix}
		}
	}
	return nil
}

// errSinkFailed ends a wait for room when the sink failed; Append returns the failure itself.
var errSinkFailed = errors.New("kafka: the sink failed")

// TooLargeError is a record that exceeds its topic's max.message.bytes.
type TooLargeError struct {
	Topic, Table string
	Key          []byte
	LSN          pglogrepl.LSN
	Size, Max    int64
}

func (e *TooLargeError) Error() string {
	key := string(e.Key)
	if len(key) > 200 {
		key = key[:200] + "..."
	}
	return fmt.Sprintf("kafka: the event of table %s at LSN %s with key %s is %d bytes, more than topic %s accepts (max.message.bytes=%d); raise the topic's max.message.bytes (and the broker's message.max.bytes)",
		e.Table, e.LSN, key, e.Size, e.Topic, e.Max)
}

// staleMetadata reports whether a retriable write error may come from a stale view of the cluster: a
// leader that moved (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, a fenced or unknown leader epoch),
// or a broker that is gone or silent (refused or broken connections, timeouts). The retry should then
// use fresh metadata. NOT_ENOUGH_REPLICAS (before or after the append) comes from the right leader:
// only the in-sync replicas are short, and fresh metadata would not help.
func staleMetadata(err error) bool {
	var werr kafka.WriteErrors
	if errors.As(err, &werr) {
		for _, e := range werr {
			if e != nil && staleMetadata(e) {
				return true
			}
		}
		return false
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		switch kerr {
		case kafka.NotEnoughReplicas, kafka.NotEnoughReplicasAfterAppend:
			return false
		}
	}
	return true
}
