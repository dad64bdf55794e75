package outbox

import (
	"errors"
	"fmt"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

// Router holds validated outbox options; it is safe for concurrent use. Each route.Router gets
// its own Step.
type Router struct{ c *compiled }

// New validates o. Every error names the option (as its pgcdc configuration key).
func New(o Options) (*Router, error) {
	c, err := compile(o)
	if err != nil {
		return nil, err
	}
	return &Router{c: c}, nil
}

// IsTable reports whether name ("schema.table") is an outbox table.
func (r *Router) IsTable(name string) bool { return r.c.tables[name] }

// RawEvents reports whether the outbox tables' own change events are published too.
func (r *Router) RawEvents() bool { return r.c.opts.RawEvents }

// Step returns a route step (route.Step) for one route.Router: it is used by that router's
// goroutine only.
func (r *Router) Step() *Step {
	return &Step{c: r.c, rels: map[uint32]*relRoute{}, warned: map[string]bool{}}
}

// Step routes the outbox events of the changes one route.Router builds.
type Step struct {
	c      *compiled
	rels   map[uint32]*relRoute
	warned map[string]bool // message prefixes warned about (non-transactional messages)
}

// invalidEvent is an event that cannot be routed (see Options.InvalidEvent).
type invalidEvent struct{ err error }

func (e *invalidEvent) Error() string { return e.err.Error() }
func (e *invalidEvent) Unwrap() error { return e.err }

func invalid(format string, args ...any) error { return &invalidEvent{fmt.Errorf(format, args...)} }

// Apply implements route.Step: the insert (or snapshot row) of an outbox table becomes the event
// it describes; updates, deletes and truncates of outbox tables route nothing; a transactional
// message with an outbox prefix becomes an event. The outbox tables' own change events (and the
// messages' <prefix>.message records) are kept only with RawEvents.
func (s *Step) Apply(ch *decode.Change, recs []kafkasink.Record) ([]kafkasink.Record, error) {
	switch ch.Kind {
	case decode.KindMessage:
		return s.message(ch, recs)
	case decode.KindTruncate:
		if s.c.opts.RawEvents {
			return recs, nil
		}
		kept := recs[:0]
		for _, rec := range recs {
			if !s.c.tables[rec.Table] {
				kept = append(kept, rec)
			}
		}
		return kept, nil
	}
	if ch.Relation == nil || !s.c.tables[ch.Relation.Name] {
		return recs, nil
	}
	if !s.c.opts.RawEvents {
		recs = recs[:0]
	}
	log := s.c.opts.Log
	switch ch.Kind {
	case decode.KindInsert, decode.KindRead:
		rec, err := s.tableEvent(ch)
		if err != nil {
			return s.invalidOrFail(recs, err, ch.Relation.Name, ch)
		}
		return append(recs, rec), nil
	case decode.KindUpdate:
		// EventRouter's table.op.invalid.behavior: an outbox row is inserted (and maybe deleted),
		// never updated.
		switch s.c.opts.InvalidOp {
		case "fatal":
			return recs, fmt.Errorf("outbox table %s: unexpected update (outbox.op_invalid_behavior is fatal; outbox rows are only inserted and deleted)", ch.Relation.Name)
		case "error":
			log.Error().Str("table", ch.Relation.Name).Str("lsn", ch.LSN.String()).Msg("outbox: unexpected update of an outbox row ignored")
		default:
			log.Warn().Str("table", ch.Relation.Name).Str("lsn", ch.LSN.String()).Msg("outbox: unexpected update of an outbox row ignored")
		}
	case decode.KindDelete:
		log.Debug().Str("table", ch.Relation.Name).Str("lsn", ch.LSN.String()).Msg("outbox: delete ignored")
	}
	return recs, nil
}

// invalidOrFail applies Options.InvalidEvent to err.
func (s *Step) invalidOrFail(recs []kafkasink.Record, err error, what string, ch *decode.Change) ([]kafkasink.Record, error) {
	var ie *invalidEvent
	if !errors.As(err, &ie) || s.c.opts.InvalidEvent != "skip" {
		if errors.As(err, &ie) {
			return recs, fmt.Errorf("outbox %s: %w (outbox.invalid_event: skip routes past such events)", what, err)
		}
		return recs, fmt.Errorf("outbox %s: %w", what, err)
	}
	s.c.opts.Log.Error().Err(err).Str("source", what).Str("lsn", ch.LSN.String()).Msg("outbox: event skipped (outbox.invalid_event is skip)")
	return recs, nil
}

// relRoute is an outbox table's relation version with the columns the router reads.
type relRoute struct {
	rel *decode.Relation
	enc *event.Encoder
}

func (s *Step) relation(rel *decode.Relation) (*relRoute, error) {
	if rr := s.rels[rel.ID]; rr != nil && rr.rel == rel {
		return rr, nil
	}
	enc, err := event.NewEncoder(s.c.opts.Event, rel.Table)
	if err != nil {
		return nil, err
	}
	rr := &relRoute{rel: rel, enc: enc}
	s.rels[rel.ID] = rr
	return rr, nil
}

// tableEvent builds the event of an outbox row.
func (s *Step) tableEvent(ch *decode.Change) (kafkasink.Record, error) {
	rr, err := s.relation(ch.Relation)
	if err != nil {
		return kafkasink.Record{}, err
	}
	src := &rowSource{enc: rr.enc, row: ch.After}
	if src.row == nil {
		return kafkasink.Record{}, fmt.Errorf("%s at LSN %s without a row image", ch.Kind, ch.LSN)
	}
	// EventRouter checks the payload and id fields first ("Unable to find ... field ... in event"):
	// a missing column is a configuration problem, not a bad event.
	for _, f := range []struct{ key, name string }{{"outbox.payload_field", s.c.opts.PayloadField}, {"outbox.event_id_field", s.c.opts.EventIDField}} {
		if !src.has(f.name) {
			return kafkasink.Record{}, fmt.Errorf("table %s has no column %q (%s)", ch.Relation.Name, f.name, f.key)
		}
	}
	t := ch.Relation.Table
	ev := &eventParts{
		schemaPrefix: s.c.opts.Event.TopicPrefix + "." + t.Schema + "." + t.Name,
		name:         ch.Relation.Name,
	}
	route := s.c.opts.RouteByField
	if !src.has(route) {
		return kafkasink.Record{}, fmt.Errorf("table %s has no column %q (outbox.route_by_field)", ch.Relation.Name, route)
	}
	rv, ok, isString, err := src.text(route)
	if err != nil {
		return kafkasink.Record{}, err
	}
	if !isString {
		return kafkasink.Record{}, fmt.Errorf("table %s: column %q (outbox.route_by_field) is not a string column", ch.Relation.Name, route)
	}
	if !ok {
		return kafkasink.Record{}, invalid("event at LSN %s has a null %q (outbox.route_by_field): it names the topic", ch.LSN, route)
	}
	ev.routeValue = rv
	rec, err := s.build(src, ev)
	if err != nil {
		return rec, err
	}
	rec.Table, rec.LSN = ch.Relation.Name, ch.LSN
	return rec, nil
}

// eventParts are the facts of one event besides its fields.
type eventParts struct {
	schemaPrefix string // the row struct's schema name without ".Value" ("" for message content)
	routeValue   string
	name         string // for messages
}

// source is the row (or message content) an event is built from: EventRouter's eventStruct.
type source interface {
	has(name string) bool
	// value appends the field's JSON payload (null for a null).
	value(dst []byte, name string) ([]byte, error)
	schema(name string) *event.Schema
	// header appends the field as a header value; null=true for a null header.
	header(dst []byte, name string) (out []byte, null bool, err error)
	// text returns a string field's value: ok=false for a null, isString=false when the field is
	// not a string.
	text(name string) (s string, ok, isString bool, err error)
}

// build is EventRouterDelegate.apply from the event struct on: headers, value, key, topic.
func (s *Step) build(src source, ev *eventParts) (kafkasink.Record, error) {
	o := &s.c.opts
	var rec kafkasink.Record

	idHeader, null, err := src.header(nil, o.EventIDField)
	if err != nil {
		return rec, err
	}
	rec.Headers = append(rec.Headers, header("id", idHeader, null))

	payloadSchema := src.schema(o.PayloadField)
	payload, err := src.value(nil, o.PayloadField)
	if err != nil {
		return rec, err
	}
	ptext, pok, pstring, err := src.text(o.PayloadField)
	if err != nil {
		return rec, err
	}
	expanded := false
	if o.ExpandJSONPayload {
		switch {
		case pstring && pok:
			if sch, val, err := s.expandJSON(ptext); err != nil {
				o.Log.Warn().Err(err).Str("source", ev.name).Msg("outbox: JSON expansion failed: the payload is published as the string it is")
			} else {
				payloadSchema, payload, expanded = sch, val, true
			}
		case string(payload) != "null" && ev.schemaPrefix != "": // a message's object payload is JSON already
			o.Log.Warn().Str("source", ev.name).Msg("outbox: table.expand.json.payload is on but the payload is not a string")
		}
	}
	isDelete := string(payload) == "null" || (pstring && pok && !expanded && javaTrimEmpty(ptext))

	var envSchema *event.Schema
	var env []byte
	if s.c.envelope {
		envSchema = &event.Schema{Type: "struct", Name: schemaName(ev.schemaPrefix, ev.routeValue)}
		envSchema.Fields = append(envSchema.Fields, event.SchemaField{Name: "payload", Schema: payloadSchema})
		env = append(env, `{"payload":`...)
		env = append(env, payload...)
	}
	for _, f := range s.c.extra {
		if !src.has(f.field) {
			if o.AdditionalMissing == "ignore" {
				continue
			}
			return rec, fieldMissing(ev, f.field, "outbox.additional_fields")
		}
		switch f.placement {
		case placeEnvelope:
			envSchema.Fields = append(envSchema.Fields, event.SchemaField{Name: f.alias, Schema: src.schema(f.field)})
			env = append(env, ',')
			env = event.AppendJSONString(env, f.alias)
			env = append(env, ':')
			if env, err = src.value(env, f.field); err != nil {
				return rec, err
			}
		case placeHeader:
			v, null, err := src.header(nil, f.field)
			if err != nil {
				return rec, err
			}
			rec.Headers = append(rec.Headers, header(f.alias, v, null))
		}
	}

	switch {
	case isDelete && o.TombstoneOnEmptyPayload:
		rec.Value = nil
	case s.c.envelope:
		rec.Value = withSchema(o.Event.ValueSchemas, envSchema, append(env, '}'))
	default:
		rec.Value = withSchema(o.Event.ValueSchemas, payloadSchema, payload)
	}

	if k := o.EventKeyField; k != "" {
		if !src.has(k) {
			return rec, fieldMissing(ev, k, "outbox.event_key_field")
		}
		kv, err := src.value(nil, k)
		if err != nil {
			return rec, err
		}
		rec.Key = withSchema(o.Event.KeySchemas, src.schema(k), kv)
	}

	rec.Topic = s.c.topics.topic(ev.routeValue)
	if problem := checkTopic(rec.Topic); problem != "" {
		return rec, invalid("routing value %q (%s): %s", ev.routeValue, routeSource(ev, o), problem)
	}
	return rec, nil
}

func routeSource(ev *eventParts, o *Options) string {
	if ev.schemaPrefix == "" && o.MessageRouteByField == "" {
		return "the message prefix"
	}
	return "outbox.route_by_field"
}

func fieldMissing(ev *eventParts, field, key string) error {
	if ev.schemaPrefix == "" {
		return invalid("message content has no field %q (%s)", field, key)
	}
	return fmt.Errorf("table %s has no column %q (%s)", ev.name, field, key)
}

func header(key string, v []byte, null bool) kafkasink.Header {
	if null {
		return kafkasink.Header{Key: key}
	}
	if v == nil {
		v = []byte{}
	}
	return kafkasink.Header{Key: key, Value: v}
}

// schemaName is EventRouterDelegate.getSchemaName: the row struct's name with the routing value
// inserted before its last part ("<prefix>.<schema>.<table>.<value>.Value"); the routing value
// alone when the struct has no name (message content).
func schemaName(prefix, routeValue string) string {
	if prefix == "" {
		return routeValue
	}
	return prefix + "." + routeValue + ".Value"
}

// withSchema wraps payload in JsonConverter's {"schema":...,"payload":...} when schemas are on.
func withSchema(on bool, s *event.Schema, payload []byte) []byte {
	if !on {
		return payload
	}
	out := make([]byte, 0, len(payload)+256)
	out = append(out, `{"schema":`...)
	out = event.AppendSchema(out, s, "")
	out = append(out, `,"payload":`...)
	out = append(out, payload...)
	return append(out, '}')
}

// expandJSON is table.expand.json.payload: the payload string parsed, its schema inferred (named
// after the payload field).
func (s *Step) expandJSON(text string) (*event.Schema, []byte, error) {
	n, err := parseJSON([]byte(text))
	if err != nil {
		return nil, nil, err
	}
	if n.kind != jObject {
		// Debezium fails later on (a top-level array is no struct); pgcdc keeps the string.
		return nil, nil, errors.New("the payload is a JSON array, not an object")
	}
	sch, err := s.c.infer.schema(s.c.opts.PayloadField, true, n)
	if err != nil {
		return nil, nil, err
	}
	val, err := appendValue(nil, n, sch, s.c.opts.PayloadField)
	if err != nil {
		return nil, nil, err
	}
	return sch, val, nil
}

// rowSource reads an outbox row's columns.
type rowSource struct {
	enc *event.Encoder
	row []event.Datum
}

func (r *rowSource) col(name string) int { return r.enc.ColumnIndex(name) }

func (r *rowSource) has(name string) bool { return r.col(name) >= 0 }

func (r *rowSource) value(dst []byte, name string) ([]byte, error) {
	i := r.col(name)
	return r.enc.AppendColumnValue(dst, i, r.row[i])
}

func (r *rowSource) schema(name string) *event.Schema { return r.enc.ColumnSchema(r.col(name)) }

func (r *rowSource) header(dst []byte, name string) ([]byte, bool, error) {
	i := r.col(name)
	return r.enc.AppendColumnHeader(dst, i, r.row[i])
}

func (r *rowSource) text(name string) (string, bool, bool, error) {
	i := r.col(name)
	if !r.enc.ColumnIsString(i) {
		return "", false, false, nil
	}
	s, ok, err := r.enc.ColumnText(i, r.row[i])
	return s, ok, true, err
}
