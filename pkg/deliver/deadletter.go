package deliver

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/deliver/payload"
)

// A dead-letter record is the original record (same key, same value, same headers) with these
// headers added, as Kafka Connect's dead-letter queue does: `pgcdc deliver redrive` sends it again
// unchanged, and kcat -f '%h' shows why it failed.
const (
	DLQRoute        = "pgcdc.dlq.route"         // the route that gave up
	DLQReason       = "pgcdc.dlq.reason"        // permanent, max_attempts, max_age, payload, route
	DLQAttempts     = "pgcdc.dlq.attempts"      // attempts made
	DLQStatus       = "pgcdc.dlq.status"        // the last HTTP status; 0 when no answer came
	DLQError        = "pgcdc.dlq.error"         // the last failure
	DLQResponse     = "pgcdc.dlq.response"      // the first KiB of the last answer's body
	DLQFirstAttempt = "pgcdc.dlq.first_attempt" // RFC 3339 times
	DLQLastAttempt  = "pgcdc.dlq.last_attempt"
	DLQTopic        = "pgcdc.dlq.topic" // where the event was first read
	DLQPartition    = "pgcdc.dlq.partition"
	DLQOffset       = "pgcdc.dlq.offset"
	DLQEventID      = "pgcdc.dlq.event_id" // the webhook-id it was sent with
	DLQGroup        = "pgcdc.dlq.group"
	DLQURL          = "pgcdc.dlq.url" // the endpoint, without credentials or query
)

type deadLetters struct {
	w     *kafka.Writer
	group string
}

func newDeadLetters(k Kafka, topic, group string) *deadLetters {
	return &deadLetters{group: group, w: &kafka.Writer{
		Addr: kafka.TCP(k.Brokers...), Transport: k.Transport, Topic: topic,
		Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, WriteTimeout: 10 * time.Second, MaxAttempts: 1,
	}}
}

// close closes the writer, without waiting forever for an unreachable cluster.
func (dl *deadLetters) close() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = dl.w.Close()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// writeDeadLetter writes d's event to the dead-letter topic, retrying until it is written or hard
// ends (then d is not finished: its record is not committed).
func (e *Engine) writeDeadLetter(hard context.Context, d *delivery) {
	msg := kafka.Message{Key: d.ev.Key, Value: d.ev.Value, Headers: e.deadLetterHeaders(d)}
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(hard, 15*time.Second)
		err := e.dlq.w.WriteMessages(ctx, msg)
		cancel()
		if err == nil {
			d.outcome = outcomeDeadLettered
			return
		}
		if hard.Err() != nil {
			d.outcome = outcomeAborted
			return
		}
		if i == 0 || i%10 == 0 {
			e.log.Warn().Err(err).Str("topic", e.o.DeadLetterTopic).Int("failures", i+1).Msg("cannot write to the dead-letter topic; retrying (the partition waits)")
		}
		select {
		case <-hard.Done():
			d.outcome = outcomeAborted
			return
		case <-time.After(min(time.Duration(1<<min(i, 7))*100*time.Millisecond, 10*time.Second)):
		}
	}
}

func (e *Engine) deadLetterHeaders(d *delivery) []kafka.Header {
	hs := make([]kafka.Header, 0, len(d.ev.Headers)+14)
	for _, h := range d.ev.Headers {
		if !strings.HasPrefix(h.Key, "pgcdc.dlq.") {
			hs = append(hs, h)
		}
	}
	add := func(k, v string) { hs = append(hs, kafka.Header{Key: k, Value: []byte(v)}) }
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	errText := d.errText
	if len(errText) > 512 {
		errText = errText[:512]
	}
	add(DLQRoute, d.rt.Name)
	add(DLQReason, d.reason)
	add(DLQAttempts, strconv.Itoa(d.attempts))
	add(DLQStatus, strconv.Itoa(d.status))
	add(DLQError, errText)
	hs = append(hs, kafka.Header{Key: DLQResponse, Value: d.excerpt})
	add(DLQFirstAttempt, ts(d.first))
	add(DLQLastAttempt, ts(d.last))
	add(DLQTopic, d.ev.OriginTopic)
	add(DLQPartition, strconv.Itoa(d.ev.OriginPartition))
	add(DLQOffset, strconv.FormatInt(d.ev.OriginOffset, 10))
	add(DLQEventID, d.id)
	add(DLQGroup, e.dlq.group)
	if d.rt.URL != "" {
		add(DLQURL, d.rt.RedactedURL())
	}
	return hs
}

// originFromHeaders sets ev's origin from a dead-letter record's headers and returns the route it
// names.
func originFromHeaders(ev *payload.Event) string {
	if v, ok := ev.Header(DLQTopic); ok {
		ev.OriginTopic = string(v)
	}
	if v, ok := ev.Header(DLQPartition); ok {
		if n, err := strconv.Atoi(string(v)); err == nil {
			ev.OriginPartition = n
		}
	}
	if v, ok := ev.Header(DLQOffset); ok {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			ev.OriginOffset = n
		}
	}
	v, _ := ev.Header(DLQRoute)
	return string(v)
}
