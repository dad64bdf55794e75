package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Format is a body format.
type Format string

// The body formats (see the package documentation).
const (
	Debezium Format = "debezium"
	Flat     Format = "flat"
	Hasura   Format = "hasura"
	Raw      Format = "raw"
)

// Formats lists the formats, for messages.
var Formats = []Format{Debezium, Flat, Hasura, Raw}

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown payload format %q (allowed: debezium, flat, hasura, raw)", s)
}

// Skip is the error of Prepare for an event that is not delivered in the format, with the reason
// (counted in pgcdc_deliver_skipped_total{reason}).
type Skip struct{ Reason string }

func (s *Skip) Error() string { return "skipped: " + s.Reason }

// Skip reasons.
const (
	SkipTombstone = "tombstone" // a null value (Debezium's tombstone after a delete)
	SkipNotChange = "not_change_event"
	SkipOp        = "op" // an op the format cannot express
)

// Builder prepares bodies. It caches per-schema column converters; safe for concurrent use.
type Builder struct {
	conv converters
}

// NewBuilder returns a Builder.
func NewBuilder() *Builder { return &Builder{} }

// Options says how to build one route's bodies.
type Options struct {
	TriggerName string // hasura: trigger.name
	IDHeader    string // the header holding an outbox event's id (see Event.ID)
}

// Prepared is an event's body in one format, ready for each attempt.
type Prepared struct {
	contentType string
	body        []byte
	// hasura: the body is split around delivery_info, which changes with every attempt.
	hasuraHead, hasuraTail []byte
}

// ContentType is the body's media type.
func (p *Prepared) ContentType() string { return p.contentType }

// Body is the body of attempt number attempt (1-based) of at most maxAttempts.
func (p *Prepared) Body(attempt, maxAttempts int) []byte {
	if p.hasuraHead == nil {
		return p.body
	}
	b := make([]byte, 0, len(p.hasuraHead)+len(p.hasuraTail)+64)
	b = append(b, p.hasuraHead...)
	b = append(b, `"delivery_info":{"max_retries":`...)
	b = strconv.AppendInt(b, int64(max(maxAttempts-1, 0)), 10)
	b = append(b, `,"current_retry":`...)
	b = strconv.AppendInt(b, int64(max(attempt-1, 0)), 10)
	b = append(b, '}')
	b = append(b, p.hasuraTail...)
	return b
}

const jsonType = "application/json"

// Prepare builds e's body in format f. The error is a *Skip when the event is not delivered in
// that format, or says why its values cannot be converted.
func (bd *Builder) Prepare(f Format, e *Event, o Options) (*Prepared, error) {
	if e.Value == nil {
		return nil, &Skip{SkipTombstone}
	}
	switch f {
	case Debezium:
		if !e.Change {
			return nil, &Skip{SkipNotChange}
		}
		return &Prepared{contentType: jsonType, body: e.Value}, nil
	case Raw:
		ct := "application/octet-stream"
		if json.Valid(e.Value) {
			ct = jsonType
		}
		return &Prepared{contentType: ct, body: e.Value}, nil
	case Flat:
		return bd.flat(e)
	case Hasura:
		return bd.hasura(e, o)
	}
	return nil, fmt.Errorf("unknown payload format %q", f)
}

// flat writes the row with Debezium ExtractNewRecordState's added fields.
func (bd *Builder) flat(e *Event) (*Prepared, error) {
	if !e.Change {
		return nil, &Skip{SkipNotChange}
	}
	row := e.After
	deleted := "false"
	switch e.Op {
	case 'c', 'u', 'r':
	case 'd':
		row, deleted = e.Before, "true"
	case 't':
		row = nil
	default:
		return nil, &Skip{SkipOp}
	}
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	if row != nil {
		fields, err := objectFields(row)
		if err != nil {
			return nil, fmt.Errorf("row of %s: %w", e.Table(), err)
		}
		for _, fl := range fields {
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			writeString(&b, fl.name)
			b.WriteByte(':')
			b.Write(fl.raw)
		}
	}
	add := func(name string, write func()) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		writeString(&b, name)
		b.WriteByte(':')
		write()
	}
	add("__op", func() { writeString(&b, string(e.Op)) })
	add("__schema", func() { writeString(&b, e.Source.Schema) })
	add("__table", func() { writeString(&b, e.Source.Table) })
	add("__lsn", func() {
		if e.Source.HasLSN {
			b.WriteString(strconv.FormatUint(e.Source.LSN, 10))
		} else {
			b.WriteString("null")
		}
	})
	add("__source_ts_ms", func() { b.WriteString(strconv.FormatInt(e.Source.TsMs, 10)) })
	add("__deleted", func() { writeString(&b, deleted) })
	b.WriteByte('}')
	return &Prepared{contentType: jsonType, body: b.Bytes()}, nil
}

var hasuraOps = map[byte]string{'c': "INSERT", 'u': "UPDATE", 'd': "DELETE", 'r': "MANUAL"}

// HasuraCreatedAt is the layout of created_at in Hasura's payloads (UTC, no zone).
const HasuraCreatedAt = "2006-01-02T15:04:05.000000"

// hasura writes a Hasura event trigger body.
func (bd *Builder) hasura(e *Event, o Options) (*Prepared, error) {
	if !e.Change {
		return nil, &Skip{SkipNotChange}
	}
	op, ok := hasuraOps[e.Op]
	if !ok {
		return nil, &Skip{SkipOp}
	}
	rc, err := bd.conv.forSchema(e.valueSchema)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Table(), err)
	}
	var old, new json.RawMessage
	switch e.Op {
	case 'c', 'r':
		new = e.After
	case 'u':
		old, new = e.Before, e.After
	case 'd':
		old = e.Before
	}
	var b bytes.Buffer
	b.WriteString(`{"event":{"session_variables":null,"op":`)
	writeString(&b, op)
	b.WriteString(`,"data":{"old":`)
	if err := rc.pgRow(&b, old); err != nil {
		return nil, fmt.Errorf("%s: %w", e.Table(), err)
	}
	b.WriteString(`,"new":`)
	if err := rc.pgRow(&b, new); err != nil {
		return nil, fmt.Errorf("%s: %w", e.Table(), err)
	}
	b.WriteString(`}},"created_at":`)
	writeString(&b, e.CommitTime().Format(HasuraCreatedAt))
	b.WriteString(`,"id":`)
	writeString(&b, e.UUID(o.IDHeader))
	b.WriteByte(',')
	head := bytes.Clone(b.Bytes())
	b.Reset()
	b.WriteString(`,"trigger":{"name":`)
	writeString(&b, o.TriggerName)
	b.WriteString(`},"table":{"schema":`)
	writeString(&b, e.Source.Schema)
	b.WriteString(`,"name":`)
	writeString(&b, e.Source.Table)
	b.WriteString(`}}`)
	return &Prepared{contentType: jsonType, hasuraHead: head, hasuraTail: b.Bytes()}, nil
}
