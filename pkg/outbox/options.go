package outbox

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/event"
)

// Options configure outbox routing. The zero value routes nothing; Defaults gives Debezium's
// EventRouter defaults. Each option names the EventRouter option it reproduces.
type Options struct {
	// Tables are the outbox tables ("schema.table", exact names): their inserts (and snapshot
	// rows) are routed as events.
	Tables []string
	// MessagePrefixes are regular expressions (whole prefix): transactional logical decoding
	// messages whose prefix matches are routed as events, their content being the JSON of an
	// outbox row (Debezium: DecodeLogicalDecodingMessageContent, then the EventRouter).
	MessagePrefixes []string
	// MessageRouteByField is the content field that routes a message; "" routes by its prefix.
	MessageRouteByField string
	// MessageNullFields keeps the content's null fields (as optional bytes) instead of leaving
	// them out (DecodeLogicalDecodingMessageContent's fields.null.include).
	MessageNullFields bool

	EventIDField  string // table.field.event.id: the "id" header (default "id")
	EventKeyField string // table.field.event.key: the record key (default "aggregateid"; "" null key)
	PayloadField  string // table.field.event.payload: the record value (default "payload")
	RouteByField  string // route.by.field: the routing value (default "aggregatetype")
	// TopicRegex and TopicReplacement are route.topic.regex (default "(?<routedByValue>.*)") and
	// route.topic.replacement (default "outbox.event.${routedByValue}"), Java replacement syntax.
	TopicRegex, TopicReplacement string
	// ExpandJSONPayload turns a JSON string payload into JSON with an inferred schema
	// (table.expand.json.payload).
	ExpandJSONPayload bool
	// JSONNullFields is table.json.payload.null.behavior: "ignore" (default) leaves null fields of
	// an expanded payload out, "optional_bytes" keeps them as optional bytes holding null.
	JSONNullFields string
	// AdditionalFields are table.fields.additional.placement entries: "column:header[:alias]" or
	// "column:envelope[:alias]".
	AdditionalFields []string
	// AdditionalMissing is table.field.additional.missing: "error" (default) or "ignore".
	AdditionalMissing string
	// TombstoneOnEmptyPayload publishes a null value for an event whose payload is null or blank
	// (route.tombstone.on.empty.payload).
	TombstoneOnEmptyPayload bool
	// InvalidOp is table.op.invalid.behavior, what an update of an outbox row does: "warn"
	// (default) or "error" log it and route nothing, "fatal" stops pgcdc.
	InvalidOp string
	// RawEvents also publishes the outbox tables' own change events to their table topics, and the
	// routed messages to <prefix>.message (when events.messages publishes them).
	RawEvents bool
	// InvalidEvent is what an event that cannot be routed does (a null routing value, a topic
	// name Kafka refuses, a message whose content is not a JSON object with the fields): "fail"
	// (default: pgcdc stops, as Debezium's task fails) or "skip" (logged at error level).
	InvalidEvent string

	Event event.Options // the topic prefix and the converter's schema settings
	Log   zerolog.Logger
}

// Defaults returns Options with Debezium's EventRouter defaults (config.Default's) and no outbox.
func Defaults() Options { return FromConfig(config.Default().Outbox) }

// FromConfig returns the Options of pgcdc's outbox configuration section; Event and Log are left
// to the caller.
func FromConfig(c config.OutboxConfig) Options {
	o := Options{
		Tables:                  c.Tables,
		MessagePrefixes:         c.Messages.Prefixes,
		MessageRouteByField:     c.Messages.RouteByField,
		MessageNullFields:       c.Messages.NullFields,
		EventIDField:            c.EventIDField,
		EventKeyField:           c.EventKeyField,
		PayloadField:            c.PayloadField,
		RouteByField:            c.RouteByField,
		TopicRegex:              c.TopicRegex,
		TopicReplacement:        c.TopicReplacement,
		ExpandJSONPayload:       c.ExpandJSONPayload,
		JSONNullFields:          c.JSONNullFields,
		AdditionalFields:        c.AdditionalFields,
		AdditionalMissing:       c.AdditionalMissing,
		TombstoneOnEmptyPayload: c.TombstoneOnEmptyPayload,
		InvalidOp:               c.OpInvalidBehavior,
		RawEvents:               c.RawEvents,
		InvalidEvent:            c.InvalidEvent,
	}
	if o.EventKeyField == config.OutboxNoKey {
		o.EventKeyField = ""
	}
	return o
}

// Enabled reports whether o routes anything.
func (o Options) Enabled() bool { return len(o.Tables) > 0 || len(o.MessagePrefixes) > 0 }

// Placements of additional fields.
const (
	placeHeader   = "header"
	placeEnvelope = "envelope"
)

// additional is one parsed table.fields.additional.placement entry.
type additional struct {
	field, placement, alias string
}

// ParseAdditionalField parses "column:placement[:alias]" as Debezium does (parts trimmed). The
// placement "partition" is not supported: pgcdc places records by their key.
func ParseAdditionalField(s string) (field, placement, alias string, err error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "", "", "", fmt.Errorf("%q: want column:placement or column:placement:alias (placement header or envelope)", s)
	}
	field, placement = strings.TrimSpace(parts[0]), strings.ToLower(strings.TrimSpace(parts[1]))
	alias = field
	if len(parts) == 3 {
		alias = strings.TrimSpace(parts[2])
	}
	if field == "" || alias == "" {
		return "", "", "", fmt.Errorf("%q: empty column or alias", s)
	}
	switch placement {
	case placeHeader, placeEnvelope:
	case "partition":
		return "", "", "", fmt.Errorf("%q: placement partition is not supported (pgcdc places records by their key, as the Java client does)", s)
	default:
		return "", "", "", fmt.Errorf("%q: unknown placement %q (header or envelope)", s, parts[1])
	}
	return field, placement, alias, nil
}

// compiled is the validated form of Options, shared read-only by every Step.
type compiled struct {
	opts     Options
	tables   map[string]bool
	prefixes []*regexp.Regexp
	topics   *topicRouter
	extra    []additional
	envelope bool // an additional field goes into the value: the value is a struct
	infer    inferrer
}

func compile(o Options) (*compiled, error) {
	c := &compiled{opts: o, tables: map[string]bool{}}
	for _, t := range o.Tables {
		if strings.Count(t, ".") < 1 {
			return nil, fmt.Errorf("outbox.tables: %q is not schema.table", t)
		}
		c.tables[t] = true
	}
	for _, p := range o.MessagePrefixes {
		re, err := regexp.Compile("^(?:" + p + ")$")
		if err != nil {
			return nil, fmt.Errorf("outbox.messages.prefixes: %q: %w", p, err)
		}
		c.prefixes = append(c.prefixes, re)
	}
	var err error
	if c.topics, err = newTopicRouter(o.TopicRegex, o.TopicReplacement); err != nil {
		return nil, err
	}
	for _, s := range o.AdditionalFields {
		f, p, a, err := ParseAdditionalField(s)
		if err != nil {
			return nil, fmt.Errorf("outbox.additional_fields: %w", err)
		}
		c.extra = append(c.extra, additional{f, p, a})
		c.envelope = c.envelope || p == placeEnvelope
	}
	for _, check := range []struct{ key, got string }{
		{"outbox.event_id_field", o.EventIDField}, {"outbox.payload_field", o.PayloadField}, {"outbox.route_by_field", o.RouteByField},
	} {
		if check.got == "" {
			return nil, fmt.Errorf("%s: required", check.key)
		}
	}
	switch o.JSONNullFields {
	case "", "ignore":
	case "optional_bytes":
		c.infer.keepNulls = true
	default:
		return nil, fmt.Errorf("outbox.json_null_fields: %q (ignore or optional_bytes)", o.JSONNullFields)
	}
	for _, check := range []struct {
		key, got string
		allowed  []string
	}{
		{"outbox.additional_missing", o.AdditionalMissing, []string{"", "error", "ignore"}},
		{"outbox.op_invalid_behavior", o.InvalidOp, []string{"", "warn", "error", "fatal"}},
		{"outbox.invalid_event", o.InvalidEvent, []string{"", "fail", "skip"}},
	} {
		ok := false
		for _, a := range check.allowed {
			ok = ok || check.got == a
		}
		if !ok {
			return nil, fmt.Errorf("%s: %q (allowed: %s)", check.key, check.got, strings.Join(check.allowed[1:], ", "))
		}
	}
	return c, nil
}
