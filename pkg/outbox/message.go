package outbox

import (
	"errors"
	"strconv"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

// The message outbox: a transactional logical decoding message, pg_logical_emit_message(true,
// prefix, content), whose content is the JSON object of an outbox row. Debezium does it with two
// transforms: DecodeLogicalDecodingMessageContent (the content becomes the "after" struct of an
// insert, its schema inferred from the JSON, its key null) and the EventRouter on that struct.
// pgcdc routes by the prefix unless MessageRouteByField names a content field.

// message routes a logical decoding message with an outbox prefix.
func (s *Step) message(ch *decode.Change, recs []kafkasink.Record) ([]kafkasink.Record, error) {
	m := ch.Message
	if !s.isOutboxPrefix(m.Prefix) {
		return recs, nil
	}
	if !m.Transactional || ch.Txn == nil {
		// It was written whether or not its transaction committed: no outbox event.
		if !s.warned[m.Prefix] {
			s.warned[m.Prefix] = true
			s.c.opts.Log.Warn().Str("prefix", m.Prefix).
				Msg("outbox: a non-transactional logical decoding message with an outbox prefix is not routed (emit outbox messages with pg_logical_emit_message(true, ...)); warned once per prefix")
		}
		return recs, nil
	}
	if !s.c.opts.RawEvents {
		recs = recs[:0]
	}
	what := "message " + strconv.Quote(m.Prefix)
	rec, err := s.messageEvent(m)
	if err != nil {
		return s.invalidOrFail(recs, err, what, ch)
	}
	rec.Table, rec.LSN = what, ch.LSN
	return append(recs, rec), nil
}

func (s *Step) isOutboxPrefix(p string) bool {
	for _, re := range s.c.prefixes {
		if re.MatchString(p) {
			return true
		}
	}
	return false
}

func (s *Step) messageEvent(m decode.Message) (kafkasink.Record, error) {
	n, err := parseJSON(m.Content)
	if err != nil {
		return kafkasink.Record{}, invalid("content is not JSON: %v", err)
	}
	if n.kind != jObject {
		return kafkasink.Record{}, invalid("content is a JSON array, not an object")
	}
	in := inferrer{keepNulls: s.c.opts.MessageNullFields}
	sch, err := in.schema("", false, n)
	if err != nil {
		return kafkasink.Record{}, invalid("content: %v", err)
	}
	if _, err := appendValue(nil, n, sch, "content"); err != nil { // Kafka Connect validates it whole
		return kafkasink.Record{}, invalid("content: %v", err)
	}
	src := &jsonSource{node: n, schema_: sch}
	ev := &eventParts{name: "message " + strconv.Quote(m.Prefix), routeValue: m.Prefix}
	for _, f := range []struct{ key, name string }{{"outbox.payload_field", s.c.opts.PayloadField}, {"outbox.event_id_field", s.c.opts.EventIDField}} {
		if !src.has(f.name) {
			return kafkasink.Record{}, fieldMissing(ev, f.name, f.key)
		}
	}
	if f := s.c.opts.MessageRouteByField; f != "" {
		if !src.has(f) {
			return kafkasink.Record{}, fieldMissing(ev, f, "outbox.messages.route_by_field")
		}
		v, ok, isString, _ := src.text(f)
		if !isString || !ok {
			return kafkasink.Record{}, invalid("content field %q (outbox.messages.route_by_field) is not a string", f)
		}
		ev.routeValue = v
	}
	return s.build(src, ev)
}

// jsonSource reads the fields of a message's content.
type jsonSource struct {
	node    *jnode
	schema_ *event.Schema
}

func (j *jsonSource) field(name string) (*jnode, *event.Schema) {
	for _, f := range j.schema_.Fields {
		if f.Name == name {
			v, _ := j.node.get(name)
			return v, f.Schema
		}
	}
	return nil, nil
}

func (j *jsonSource) has(name string) bool {
	_, s := j.field(name)
	return s != nil
}

func (j *jsonSource) value(dst []byte, name string) ([]byte, error) {
	v, s := j.field(name)
	if s == nil {
		return dst, errors.New("no field " + strconv.Quote(name))
	}
	return appendValue(dst, v, s, name)
}

func (j *jsonSource) schema(name string) *event.Schema {
	_, s := j.field(name)
	return s
}

func (j *jsonSource) header(dst []byte, name string) ([]byte, bool, error) {
	v, s := j.field(name)
	out, null := appendHeader(dst, v, s, false)
	return out, null, nil
}

func (j *jsonSource) text(name string) (string, bool, bool, error) {
	v, s := j.field(name)
	if s == nil || s.Type != "string" {
		return "", false, false, nil
	}
	if v == nil || v.kind != jString {
		return "", false, true, nil
	}
	return v.str, true, true, nil
}
