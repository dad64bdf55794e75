package event

import "time"

// Column of a captured table, as read from the catalog / pgoutput Relation message.
type Column struct {
	Name     string
	TypeOID  uint32
	TypeName string // pg_type.typname of the column's type, e.g. "int4", "numeric", "timestamptz", "_int4" for arrays
	TypeMod  int32  // atttypmod, -1 when none (numeric(p,s): ((p<<16)|s)+4 ; varchar(n): n+4 ; timestamp(p): p)
	Optional bool   // true unless the column is NOT NULL

	// EnumValues, when non-empty, marks the column as a PostgreSQL enum (or, with an
	// array TypeName, an array of one); the values are the enum labels in sort order.
	// Debezium maps enums to string io.debezium.data.Enum with parameter "allowed".
	EnumValues []string

	// HasDefault/Default describe the column default as Debezium puts it into the
	// schema ("default": ...). Default is the default value in PostgreSQL text output
	// form (e.g. "active" for DEFAULT 'active'::text); when HasDefault is true and
	// Default is nil, the type's zero fallback is used (what Debezium does for defaults
	// it cannot evaluate, e.g. nextval(...) or now() on a NOT NULL column). The
	// caller (catalog reader) decides; this package only encodes.
	HasDefault bool
	Default    []byte

	// Omit leaves the column out of the event value and its schema, as Debezium's
	// column.include.list / column.exclude.list do; a key column stays in the key.
	Omit bool
	// Mapper changes the column's values in the event value (never in the key), as Debezium's
	// column mappers (column.mask.*, column.truncate.*) do; nil: none. See Mapper.
	Mapper *Mapper
}

// Table describes one captured table at one schema version.
type Table struct {
	Schema  string
	Name    string
	Columns []Column
	Key     []int // indexes into Columns of the key columns (primary key from the catalog); empty => null Kafka key

	// SchemaName, when set, replaces "<prefix>.<schema>.<table>" in the names of the Key, Value
	// and Envelope schemas (ByLogicalTableRouter names them after the new topic).
	SchemaName string
	// KeyFields are appended to the key, each a required string field (ByLogicalTableRouter's
	// physical table identifier). A table without a key has none.
	KeyFields []KeyField
}

// KeyField is a constant field appended to a table's key.
type KeyField struct {
	Name, Value string
}

// DatumKind says what a Datum holds.
type DatumKind uint8

const (
	DatumNull      DatumKind = iota // SQL NULL
	DatumText                       // text-format value in Text
	DatumUnchanged                  // unchanged TOAST value (pgoutput 'u'): value not in the WAL record
	DatumAbsent                     // no value at all (e.g. the row image itself is missing)
)

// TextDatums appends to dst a row of text-format values as datums (a nil value is NULL) and
// returns it: a snapshot row as the encoder takes it. The datums alias values.
func TextDatums(dst []Datum, values [][]byte) []Datum {
	for _, v := range values {
		if v == nil {
			dst = append(dst, Datum{Kind: DatumNull})
		} else {
			dst = append(dst, Datum{Kind: DatumText, Text: v})
		}
	}
	return dst
}

// Datum is one column value of a row image.
type Datum struct {
	Kind DatumKind
	Text []byte // PostgreSQL text output format of the value (valid for DatumText); may alias a buffer: copy if you keep it
}

// Op is the Debezium operation code.
type Op byte

const (
	OpCreate   Op = 'c'
	OpUpdate   Op = 'u'
	OpDelete   Op = 'd'
	OpRead     Op = 'r'
	OpTruncate Op = 't'
	OpMessage  Op = 'm'
)

// Options configure the encoding. The zero value means: no schemas (see
// DefaultOptions for Kafka Connect's defaults, which enable them), Debezium's
// default handling modes, the default TOAST placeholder.
type Options struct {
	TopicPrefix        string // Debezium topic.prefix; also source.name and the schema-name prefix
	Database           string // source.db
	Version            string // source.version (pgcdc version)
	KeySchemas         bool   // JsonConverter key.converter.schemas.enable (Kafka Connect default true; see DefaultOptions)
	ValueSchemas       bool   // value.converter.schemas.enable (Kafka Connect default true; see DefaultOptions)
	UnavailableValue   string // placeholder for unchanged TOAST, default "__debezium_unavailable_value"
	UnknownTypesAsText bool   // a type pgcdc cannot map: false => error naming table, column, type; true => emitted as string

	// Modes; zero values mean Debezium's defaults.
	DecimalHandling  string // "precise" (default), "double", "string"
	TimePrecision    string // "adaptive" (default), "adaptive_time_microseconds", "connect", "isostring", "microseconds", "nanoseconds"
	BinaryHandling   string // "bytes" (default), "base64", "base64-url-safe", "hex"
	IntervalHandling string // "numeric" (default), "string"
	HstoreHandling   string // "json" (default): io.debezium.data.Json string; "map": a map of strings

	// SchemaNameAdjustment and FieldNameAdjustment are Debezium's schema.name.adjustment.mode and
	// field.name.adjustment.mode: "none" (default), "avro" (invalid characters become '_'),
	// "avro_unicode" (invalid characters become _uXXXX).
	SchemaNameAdjustment string
	FieldNameAdjustment  string

	// Snapshot marks an encoder for snapshot records. Debezium reads snapshot rows through JDBC,
	// which converts a few types differently from the streamed text (dates: see value.go); the
	// records of a snapshot encoder follow that path.
	Snapshot bool
}

// DefaultUnavailableValue is Debezium's default unavailable.value.placeholder.
const DefaultUnavailableValue = "__debezium_unavailable_value"

// DefaultOptions returns Options with Kafka Connect's JsonConverter defaults
// (schemas enabled for keys and values) and Debezium's default modes.
func DefaultOptions(prefix, database, version string) Options {
	return Options{
		TopicPrefix:      prefix,
		Database:         database,
		Version:          version,
		KeySchemas:       true,
		ValueSchemas:     true,
		UnavailableValue: DefaultUnavailableValue,
	}
}

// Source carries the per-event facts for the envelope's "source" block.
type Source struct {
	CommitTime    time.Time // source.ts_ms/ts_us/ts_ns (zero => the processing time, as Debezium uses Instant.now())
	Snapshot      string    // "false", "true", "first", "last", ... (string!); "" => "false"
	TxID          uint32    // source.txId (top-level xid); 0 => null
	LSN           uint64    // source.lsn (LSN of this change); 0 => null
	LastCommitLSN uint64    // first element of source.sequence; 0 => null element
}

// Transaction is the envelope's "transaction" block (nil => "transaction": null).
type Transaction struct {
	ID                  string
	TotalOrder          int64
	DataCollectionOrder int64
}
