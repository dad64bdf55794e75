package config

import (
	"strings"

	"github.com/pgcdc/pgcdc/internal/dbzopt"
)

// Event shaping as a Debezium connector configuration does it (docs/shaping.md): the options keep
// Debezium's names and value syntax, so that a migrating user can copy them. Regular expressions
// are Go's (RE2), matched against the whole name.

// The values of events.format.
const (
	FormatEnvelope = "envelope"                                     // Debezium's change event envelope (default)
	FormatUnwrap   = "io.debezium.transforms.ExtractNewRecordState" // the row alone; "unwrap" is accepted too
)

// Unwrapped reports whether events.format flattens the envelope (ExtractNewRecordState).
func (e EventsConfig) Unwrapped() bool {
	return e.Format == FormatUnwrap || e.Format == "unwrap"
}

// UnwrapConfig is ExtractNewRecordState's configuration (events.unwrap), used when events.format
// is io.debezium.transforms.ExtractNewRecordState.
type UnwrapConfig struct {
	// DeleteTombstoneHandlingMode is delete.tombstone.handling.mode: drop, tombstone (default),
	// rewrite, rewrite-with-tombstone or delete-to-tombstone.
	DeleteTombstoneHandlingMode string `yaml:"delete_tombstone_handling_mode"`
	// AddFields is add.fields: fields of the event added to the row (op, table, lsn, source.ts_ms,
	// transaction.id, ...; "field:name" renames), named AddFieldsPrefix + name.
	AddFields       []string `yaml:"add_fields"`
	AddFieldsPrefix string   `yaml:"add_fields_prefix"` // add.fields.prefix, default "__"
	// AddHeaders is add.headers: the same, as record headers.
	AddHeaders       []string `yaml:"add_headers"`
	AddHeadersPrefix string   `yaml:"add_headers_prefix"` // add.headers.prefix, default "__"
	// DropFieldsHeaderName is drop.fields.header.name: the header listing the fields to leave out
	// of the row, one of events.changed_fields' headers.
	DropFieldsHeaderName           string `yaml:"drop_fields_header_name"`
	DropFieldsFromKey              bool   `yaml:"drop_fields_from_key"`               // drop.fields.from.key, default false
	DropFieldsKeepSchemaCompatible bool   `yaml:"drop_fields_keep_schema_compatible"` // drop.fields.keep.schema.compatible, default true
}

// ChangedFieldsConfig is ExtractChangedRecordState's configuration (events.changed_fields): each
// change event gets headers listing the fields an update changed and those it did not.
type ChangedFieldsConfig struct {
	HeaderChangedName   string `yaml:"header_changed_name"`   // header.changed.name; "" adds no header
	HeaderUnchangedName string `yaml:"header_unchanged_name"` // header.unchanged.name; "" adds no header
}

// RegexRouterConfig is Kafka Connect's RegexRouter (events.regex_router): table topics matching
// Regex entirely are renamed to Replacement ($1, ${name}).
type RegexRouterConfig struct {
	Regex       string `yaml:"regex"`
	Replacement string `yaml:"replacement"`
}

// LogicalTableRouterConfig is Debezium's ByLogicalTableRouter (events.logical_table_router):
// tables whose topics match TopicRegex go to one topic, TopicReplacement.
type LogicalTableRouterConfig struct {
	TopicRegex           string `yaml:"topic_regex"`            // topic.regex; "" disables the router
	TopicReplacement     string `yaml:"topic_replacement"`      // topic.replacement
	KeyEnforceUniqueness bool   `yaml:"key_enforce_uniqueness"` // key.enforce.uniqueness, default true
	KeyFieldName         string `yaml:"key_field_name"`         // key.field.name, default __dbz__physicalTableIdentifier
	KeyFieldRegex        string `yaml:"key_field_regex"`        // key.field.regex
	KeyFieldReplacement  string `yaml:"key_field_replacement"`  // key.field.replacement
}

// DefaultLogicalTableKeyField is ByLogicalTableRouter's default key.field.name.
const DefaultLogicalTableKeyField = "__dbz__physicalTableIdentifier"

// TruncatePublished reports whether TRUNCATE events are published: skipped.operations decides
// when it is set, events.truncate otherwise.
func (e EventsConfig) TruncatePublished() bool {
	if strings.TrimSpace(e.SkippedOperations) == "" {
		return e.Truncate
	}
	skip, err := dbzopt.ParseSkippedOperations(e.SkippedOperations)
	return err == nil && !skip['t']
}

func (t TablesConfig) validateShaping(v *validator) {
	if t.ColumnIncludeList != "" && t.ColumnExcludeList != "" {
		v.add("tables.column_include_list", "cannot be set together with tables.column_exclude_list (as in Debezium)")
	}
	for key, list := range map[string]string{"tables.column_include_list": t.ColumnIncludeList, "tables.column_exclude_list": t.ColumnExcludeList} {
		if _, err := dbzopt.CompilePatterns(dbzopt.SplitList(list)); err != nil {
			v.add(key, "%v", err)
		}
	}
	if _, err := dbzopt.ParseMappers(t.ColumnMappers); err != nil {
		v.add("tables.column_mappers", "%v", err)
	}
	if _, err := dbzopt.ParseKeyColumns(t.MessageKeyColumns); err != nil {
		v.add("tables.message_key_columns", "%v", err)
	}
}

func (e EventsConfig) validateShaping(v *validator) {
	if strings.TrimSpace(e.SkippedOperations) != "" {
		skip, err := dbzopt.ParseSkippedOperations(e.SkippedOperations)
		if err != nil {
			v.add("events.skipped_operations", "%v", err)
		} else if e.Truncate && skip['t'] {
			v.add("events.truncate", "is true but events.skipped_operations skips truncates (t): set one of them")
		}
	}
	if e.Format != FormatEnvelope && !e.Unwrapped() {
		v.add("events.format", "invalid value %q (allowed: %s, %s)", e.Format, FormatEnvelope, FormatUnwrap)
	}
	u := e.Unwrap
	if _, err := dbzopt.ParseDeleteHandling(u.DeleteTombstoneHandlingMode); err != nil {
		v.add("events.unwrap.delete_tombstone_handling_mode", "%v", err)
	}
	for key, l := range map[string][]string{"events.unwrap.add_fields": u.AddFields, "events.unwrap.add_headers": u.AddHeaders} {
		refs, err := dbzopt.ParseFieldRefs("", l)
		if err != nil {
			v.add(key, "%v", err)
		}
		for _, r := range refs {
			if !dbzopt.KnownField(r.Struct, r.Field) {
				v.add(key, "unknown field %q (%s)", strings.TrimPrefix(r.Struct+"."+r.Field, "."), dbzopt.KnownFields)
			}
		}
	}
	if h := u.DropFieldsHeaderName; h != "" && h != e.ChangedFields.HeaderChangedName && h != e.ChangedFields.HeaderUnchangedName {
		v.add("events.unwrap.drop_fields_header_name", "%q must be events.changed_fields.header_changed_name or header_unchanged_name: those are the headers that list fields", h)
	}
	if r := e.RegexRouter; r.Regex != "" {
		if _, err := dbzopt.NewRewrite(r.Regex, r.Replacement); err != nil {
			v.add("events.regex_router", "%v", err)
		}
	} else if r.Replacement != "" {
		v.add("events.regex_router.regex", "required with events.regex_router.replacement")
	}
	l := e.LogicalTableRouter
	if l.TopicRegex != "" {
		if _, err := dbzopt.NewRewrite(l.TopicRegex, l.TopicReplacement); err != nil {
			v.add("events.logical_table_router", "topic_regex/topic_replacement: %v", err)
		}
		if l.KeyFieldRegex != "" {
			if l.KeyFieldReplacement == "" {
				v.add("events.logical_table_router.key_field_replacement", "must be non-empty if key_field_regex is set")
			} else if _, err := dbzopt.NewRewrite(l.KeyFieldRegex, l.KeyFieldReplacement); err != nil {
				v.add("events.logical_table_router", "key_field_regex/key_field_replacement: %v", err)
			}
		}
	} else if l.TopicReplacement != "" {
		v.add("events.logical_table_router.topic_regex", "required with events.logical_table_router.topic_replacement")
	}
}

// RoutedTopic is the topic the events of the data topic topic go to: through
// events.logical_table_router, then events.regex_router (as the connector's route steps do).
// Invalid settings (which Validate reports) leave the topic as it is.
func (e EventsConfig) RoutedTopic(topic string) string {
	if l := e.LogicalTableRouter; l.TopicRegex != "" {
		if rw, err := dbzopt.NewRewrite(l.TopicRegex, l.TopicReplacement); err == nil {
			if t, ok := rw.Apply(topic); ok && t != "" {
				topic = t
			}
		}
	}
	if r := e.RegexRouter; r.Regex != "" {
		if rw, err := dbzopt.NewRewrite(r.Regex, r.Replacement); err == nil {
			topic, _ = rw.Apply(topic)
		}
	}
	return topic
}

// redactSalts returns a copy of column mapper properties with the hash salts replaced by
// "xxxxx": a salt lets anyone who knows it test guesses against the hashes.
func redactSalts(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if i := strings.Index(k, ".with.salt."); i >= 0 && strings.HasPrefix(k, "column.mask.hash.") {
			k = k[:i] + ".with.salt." + redactedPassword
		}
		out[k] = v
	}
	return out
}
