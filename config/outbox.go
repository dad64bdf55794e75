package config

import (
	"fmt"
	"regexp"
	"strings"
)

// OutboxConfig configures outbox routing (docs: README.md "Reliable eventing"): inserts into the
// outbox tables, and transactional logical decoding messages with the outbox prefixes, become
// events on the topic their routing value names, as Debezium's outbox EventRouter
// (io.debezium.transforms.outbox.EventRouter) makes them. Each key names the EventRouter option it
// reproduces; the defaults are the EventRouter's.
type OutboxConfig struct {
	// Tables are the outbox tables, exact "schema.table" names; tables.include must capture them.
	Tables []string `yaml:"tables"`
	// Messages configures the message outbox.
	Messages OutboxMessagesConfig `yaml:"messages"`

	EventIDField     string `yaml:"event_id_field"`    // table.field.event.id: the "id" header; default "id"
	EventKeyField    string `yaml:"event_key_field"`   // table.field.event.key: the record key; default "aggregateid"; "none": a null key
	PayloadField     string `yaml:"payload_field"`     // table.field.event.payload: the record value; default "payload"
	RouteByField     string `yaml:"route_by_field"`    // route.by.field: the value naming the topic; default "aggregatetype"
	TopicRegex       string `yaml:"topic_regex"`       // route.topic.regex, whole value; default "(?<routedByValue>.*)"
	TopicReplacement string `yaml:"topic_replacement"` // route.topic.replacement (Java syntax: $1, ${name}); default "outbox.event.${routedByValue}"
	// ExpandJSONPayload publishes a JSON string payload as JSON, its schema inferred
	// (table.expand.json.payload); default false.
	ExpandJSONPayload bool   `yaml:"expand_json_payload"`
	JSONNullFields    string `yaml:"json_null_fields"` // table.json.payload.null.behavior: ignore (default) | optional_bytes
	// AdditionalFields place more columns (table.fields.additional.placement):
	// "column:header[:alias]" or "column:envelope[:alias]".
	AdditionalFields  []string `yaml:"additional_fields"`
	AdditionalMissing string   `yaml:"additional_missing"` // table.field.additional.missing: error (default) | ignore
	// TombstoneOnEmptyPayload publishes a tombstone (null value) for an event whose payload is
	// null or blank (route.tombstone.on.empty.payload); default false.
	TombstoneOnEmptyPayload bool   `yaml:"tombstone_on_empty_payload"`
	OpInvalidBehavior       string `yaml:"op_invalid_behavior"` // table.op.invalid.behavior, for an update of an outbox row: warn (default) | error | fatal
	// RawEvents also publishes the outbox tables' own change events to their table topics (and
	// outbox messages to <prefix>.message, when events.messages does); default false.
	RawEvents bool `yaml:"raw_events"`
	// InvalidEvent is what an event that cannot be routed does (null routing value, a topic name
	// Kafka refuses, message content that is not a JSON object with the fields): fail (default: pgcdc
	// stops, as Debezium's task fails) | skip (logged at error level and left out).
	InvalidEvent string `yaml:"invalid_event"`
}

// OutboxMessagesConfig configures the message outbox: pg_logical_emit_message(true, prefix,
// content) with a JSON object content holding the fields of an outbox row.
type OutboxMessagesConfig struct {
	// Prefixes are regular expressions (whole prefix) of the messages routed as outbox events.
	Prefixes []string `yaml:"prefixes"`
	// RouteByField is the content field naming the topic; "" (default) routes by the prefix.
	RouteByField string `yaml:"route_by_field"`
	// NullFields keeps the content's null fields (as optional bytes) rather than leaving them out
	// (Debezium's DecodeLogicalDecodingMessageContent fields.null.include); default false.
	NullFields bool `yaml:"null_fields"`
}

// OutboxNoKey as outbox.event_key_field gives outbox events a null key.
const OutboxNoKey = "none"

// Enabled reports whether anything is routed as an outbox event.
func (o OutboxConfig) Enabled() bool { return len(o.Tables) > 0 || len(o.Messages.Prefixes) > 0 }

func defaultOutbox() OutboxConfig {
	return OutboxConfig{
		Tables:            []string{},
		Messages:          OutboxMessagesConfig{Prefixes: []string{}},
		EventIDField:      "id",
		EventKeyField:     "aggregateid",
		PayloadField:      "payload",
		RouteByField:      "aggregatetype",
		TopicRegex:        "(?<routedByValue>.*)",
		TopicReplacement:  "outbox.event.${routedByValue}",
		JSONNullFields:    "ignore",
		AdditionalFields:  []string{},
		AdditionalMissing: "error",
		OpInvalidBehavior: "warn",
		InvalidEvent:      "fail",
	}
}

func (o OutboxConfig) validate(v *validator, tables TablesConfig) {
	for i, t := range o.Tables {
		key := fmt.Sprintf("outbox.tables[%d]", i)
		schema, name, ok := strings.Cut(t, ".")
		switch {
		case !ok || schema == "" || name == "" || strings.ContainsAny(t, "*?["):
			v.add(key, "%q: want an exact schema.table name, e.g. public.outbox", t)
		case !tables.Matches(schema, name):
			v.add(key, "%s is not captured: add it to tables.include (and keep it out of tables.exclude)", t)
		}
	}
	for i, p := range o.Messages.Prefixes {
		if _, err := regexp.Compile("^(?:" + p + ")$"); err != nil {
			v.add(fmt.Sprintf("outbox.messages.prefixes[%d]", i), "invalid regular expression %q: %v", p, err)
		}
	}
	v.required("outbox.event_id_field", o.EventIDField == "")
	v.required("outbox.event_key_field", o.EventKeyField == "")
	v.required("outbox.payload_field", o.PayloadField == "")
	v.required("outbox.route_by_field", o.RouteByField == "")
	if re, err := regexp.Compile("^(?:" + o.TopicRegex + ")$"); err != nil {
		v.add("outbox.topic_regex", "invalid regular expression %q: %v (RE2 syntax: no lookaround or back-references)", o.TopicRegex, err)
	} else {
		for _, m := range regexp.MustCompile(`\$\{([^}]*)\}`).FindAllStringSubmatch(o.TopicReplacement, -1) {
			if re.SubexpIndex(m[1]) < 0 {
				v.add("outbox.topic_replacement", "%q refers to group %q, which outbox.topic_regex does not name", o.TopicReplacement, m[1])
			}
		}
	}
	for i, f := range o.AdditionalFields {
		parts := strings.Split(f, ":")
		key := fmt.Sprintf("outbox.additional_fields[%d]", i)
		if len(parts) < 2 || len(parts) > 3 || strings.TrimSpace(parts[0]) == "" {
			v.add(key, "%q: want column:placement or column:placement:alias (placement header or envelope)", f)
			continue
		}
		v.oneOf(key, strings.ToLower(strings.TrimSpace(parts[1])), "header", "envelope")
	}
	v.oneOf("outbox.json_null_fields", o.JSONNullFields, "ignore", "optional_bytes")
	v.oneOf("outbox.additional_missing", o.AdditionalMissing, "error", "ignore")
	v.oneOf("outbox.op_invalid_behavior", o.OpInvalidBehavior, "warn", "error", "fatal")
	v.oneOf("outbox.invalid_event", o.InvalidEvent, "fail", "skip")
}
