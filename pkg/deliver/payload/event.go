package payload

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// HeaderPosition is the record header where pgcdc writes an event's position in its transaction.
const HeaderPosition = "pgcdc.position"

// Event is one record with what pgcdc deliver needs of it.
type Event struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte // nil: a tombstone
	Headers   []kafka.Header
	Time      time.Time // the record's timestamp

	// Origin is where the event was first read: the record itself, or for a record of the
	// dead-letter topic the record it was copied from (Engine sets it).
	OriginTopic     string
	OriginPartition int
	OriginOffset    int64

	// Change is true when the value is a Debezium change event; the fields below are then set.
	Change      bool
	Op          byte // c, u, d, r, t, m
	Source      Source
	Before      json.RawMessage // nil when null or absent
	After       json.RawMessage
	valueSchema json.RawMessage // the envelope schema, when the topic has schemas

	Position    int64 // pgcdc.position
	HasPosition bool
}

// Source is what deliver uses of the Debezium source block.
type Source struct {
	Name   string // topic.prefix of the connector
	DB     string
	Schema string
	Table  string
	LSN    uint64
	HasLSN bool
	TsMs   int64 // commit time
	TsUs   int64
	TxID   int64
}

// Table is "schema.table", or "" when the event names none.
func (e *Event) Table() string {
	if e.Source.Table == "" {
		return ""
	}
	return e.Source.Schema + "." + e.Source.Table
}

// Header returns the value of the record's last header named key.
func (e *Event) Header(key string) ([]byte, bool) {
	for i := len(e.Headers) - 1; i >= 0; i-- {
		if e.Headers[i].Key == key {
			return e.Headers[i].Value, true
		}
	}
	return nil, false
}

// CommitTime is the source commit time, or the record timestamp when the event has none.
func (e *Event) CommitTime() time.Time {
	switch {
	case e.Source.TsUs > 0:
		return time.UnixMicro(e.Source.TsUs).UTC()
	case e.Source.TsMs > 0:
		return time.UnixMilli(e.Source.TsMs).UTC()
	}
	return e.Time.UTC()
}

// envelope is a Debezium change event payload.
type envelope struct {
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	Source *struct {
		Name   string          `json:"name"`
		DB     string          `json:"db"`
		Schema string          `json:"schema"`
		Table  string          `json:"table"`
		LSN    json.RawMessage `json:"lsn"`
		TsMs   int64           `json:"ts_ms"`
		TsUs   int64           `json:"ts_us"`
		TxID   json.RawMessage `json:"txId"`
	} `json:"source"`
	Op string `json:"op"`
}

// Parse reads a record. It never fails: a value that is not a Debezium change event leaves
// Change false.
func Parse(m kafka.Message) *Event {
	e := &Event{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value,
		Headers: m.Headers, Time: m.Time,
		OriginTopic: m.Topic, OriginPartition: m.Partition, OriginOffset: m.Offset,
	}
	if v, ok := e.Header(HeaderPosition); ok {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			e.Position, e.HasPosition = n, true
		}
	}
	if len(m.Value) == 0 || m.Value[0] != '{' {
		return e
	}
	schema, payload := splitSchema(m.Value)
	var env envelope
	if err := json.Unmarshal(payload, &env); err != nil || env.Source == nil || len(env.Op) != 1 {
		return e
	}
	e.Change = true
	e.Op = env.Op[0]
	e.valueSchema = schema
	e.Before, e.After = nonNull(env.Before), nonNull(env.After)
	s := env.Source
	e.Source = Source{Name: s.Name, DB: s.DB, Schema: s.Schema, Table: s.Table, TsMs: s.TsMs, TsUs: s.TsUs}
	if n, err := strconv.ParseUint(string(s.LSN), 10, 64); err == nil {
		e.Source.LSN, e.Source.HasLSN = n, true
	}
	if n, err := strconv.ParseInt(string(s.TxID), 10, 64); err == nil {
		e.Source.TxID = n
	}
	return e
}

func nonNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	return raw
}

// splitSchema splits a JsonConverter value {"schema":...,"payload":...} into its parts; a value
// without the envelope is all payload.
func splitSchema(v []byte) (schema, payload json.RawMessage) {
	var w struct {
		Schema  json.RawMessage `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	if bytes.Contains(v, []byte(`"payload"`)) && json.Unmarshal(v, &w) == nil &&
		len(w.Schema) > 0 && w.Schema[0] == '{' && len(w.Payload) > 0 && w.Payload[0] == '{' {
		return w.Schema, w.Payload
	}
	return nil, v
}
