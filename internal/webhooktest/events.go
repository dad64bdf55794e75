package webhooktest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Event is one test change event: a row id (the record key) and its version for that key.
type Event struct {
	ID, Seq int
}

// Workload returns keys × versions events, interleaved the way a busy table changes: version 0
// of every key, then version 1 of every key, ...
func Workload(keys, versions int) []Event {
	var out []Event
	for s := 0; s < versions; s++ {
		for k := 0; k < keys; k++ {
			out = append(out, Event{k, s})
		}
	}
	return out
}

// Record is a Debezium change event as pgcdc writes it (without schemas) for e at lsn, with its
// pgcdc.position header, keyed {"id":n}.
func Record(e Event, lsn int64) kafka.Message {
	op := "u"
	if e.Seq == 0 {
		op = "c"
	}
	now := time.Now().UnixMilli()
	value := fmt.Sprintf(`{"before":null,"after":{"id":%d,"seq":%d},"source":{"version":"test","connector":"postgresql","name":"t","ts_ms":%d,"snapshot":"false","db":"d","schema":"public","table":"items","txId":1,"lsn":%d},"op":"%s","ts_ms":%d}`,
		e.ID, e.Seq, now, lsn, op, now)
	return kafka.Message{Key: []byte(fmt.Sprintf(`{"id":%d}`, e.ID)), Value: []byte(value),
		Headers: []kafka.Header{{Key: "pgcdc.position", Value: []byte("0")}}}
}

// Produce writes events in order, each at the LSN lsnBase + 8*i, keys on partitions as the Java
// client places them.
func Produce(ctx context.Context, brokers []string, topic string, events []Event, lsnBase int64) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: 500}
	defer w.Close()
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		msgs[i] = Record(e, lsnBase+int64(i)*8)
	}
	return w.WriteMessages(ctx, msgs...)
}

// EventOf decodes the event in a body or record value of the debezium (or flat) format.
func EventOf(body []byte) (Event, error) {
	var v struct {
		After *struct{ ID, Seq int } `json:"after"`
		ID    *int                   `json:"id"`
		Seq   int                    `json:"seq"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Event{}, err
	}
	switch {
	case v.After != nil:
		return Event{v.After.ID, v.After.Seq}, nil
	case v.ID != nil:
		return Event{*v.ID, v.Seq}, nil
	}
	return Event{}, fmt.Errorf("no event in %.100s", body)
}

// Events decodes the events of accepted requests, in order.
func Events(reqs []Request) ([]Event, error) {
	out := make([]Event, 0, len(reqs))
	for _, r := range reqs {
		e, err := EventOf(r.Body)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Report is what an endpoint saw of a workload.
type Report struct {
	Distinct   int
	Duplicates int
	Missing    []Event  // produced, neither accepted nor dead-lettered
	OrderErrs  []string // a key's version first seen after a later version
}

// Check compares what the endpoint accepted (in order) with what was produced. Per key, the
// versions seen for the first time must come in order (an older event seen again later is a
// duplicate, not a reordering). dead events may be missing.
func Check(produced, accepted []Event, dead map[Event]bool) Report {
	var r Report
	first := map[Event]bool{}
	lastNew := map[int]int{}
	for _, e := range accepted {
		if first[e] {
			r.Duplicates++
			continue
		}
		first[e] = true
		if prev, ok := lastNew[e.ID]; ok && e.Seq < prev {
			r.OrderErrs = append(r.OrderErrs, fmt.Sprintf("key %d: version %d first seen after version %d", e.ID, e.Seq, prev))
		}
		lastNew[e.ID] = e.Seq
	}
	r.Distinct = len(first)
	for _, e := range produced {
		if !first[e] && !dead[e] {
			r.Missing = append(r.Missing, e)
		}
	}
	return r
}

// OK reports whether nothing is missing and nothing is out of order.
func (r Report) OK() bool { return len(r.Missing) == 0 && len(r.OrderErrs) == 0 }
