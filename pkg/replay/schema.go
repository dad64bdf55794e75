package replay

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// fieldSchema is one Kafka Connect schema as JsonConverter writes it.
type fieldSchema struct {
	Type       string            `json:"type"`
	Optional   bool              `json:"optional"`
	Name       string            `json:"name"`
	Parameters map[string]string `json:"parameters"`
	Fields     []*fieldSchema    `json:"fields"`
	Items      *fieldSchema      `json:"items"`
	Field      string            `json:"field"`
}

// rowSchema is the row struct of a table version (the envelope's "after"/"before" schema, or a
// key schema).
type rowSchema struct {
	fields []*fieldSchema
	byName map[string]*fieldSchema
}

func newRowSchema(fields []*fieldSchema) *rowSchema {
	rs := &rowSchema{fields: fields, byName: make(map[string]*fieldSchema, len(fields))}
	for _, f := range fields {
		rs.byName[f.Field] = f
	}
	return rs
}

// parseEnvelopeSchema extracts the row schema from a value's envelope schema.
func parseEnvelopeSchema(raw []byte) (*rowSchema, error) {
	var env fieldSchema
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("value schema: %w", err)
	}
	for _, f := range env.Fields {
		if (f.Field == "after" || f.Field == "before") && f.Type == "struct" {
			return newRowSchema(f.Fields), nil
		}
	}
	return nil, fmt.Errorf("value schema %q has no before/after struct: not a change event", env.Name)
}

// parseStructSchema parses a key schema (a struct of the key columns).
func parseStructSchema(raw []byte) (*rowSchema, error) {
	var s fieldSchema
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("key schema: %w", err)
	}
	return newRowSchema(s.Fields), nil
}

// Decoding modes of a topic written without schemas (pgcdc's events.* settings).
type Modes struct {
	DecimalHandling string // precise (default) | double | string
	TimePrecision   string // adaptive (default) | adaptive_time_microseconds | connect
	BinaryHandling  string // bytes (default) | base64 | base64-url-safe | hex
	HstoreHandling  string // json (default) | map: read either way, kept for symmetry with pgcdc's events.hstore_handling
}

// codecFromSchema maps a field's Connect schema to a codec, refined by the target column.
func codecFromSchema(fs *fieldSchema, col *targetCol, m Modes) (*codec, error) {
	c := &codec{}
	switch fs.Name {
	case "org.apache.kafka.connect.data.Decimal":
		sc, err := strconv.Atoi(fs.Parameters["scale"])
		if err != nil {
			return nil, fmt.Errorf("Decimal schema without a valid scale parameter (%q)", fs.Parameters["scale"])
		}
		c.kind, c.scale = kDecimal, sc
	case "io.debezium.data.VariableScaleDecimal":
		c.kind = kVarDecimal
	case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date":
		c.kind = kDate
	case "io.debezium.time.Time", "org.apache.kafka.connect.data.Time":
		c.kind = kTimeMillis
	case "io.debezium.time.MicroTime":
		c.kind = kTimeMicros
	case "io.debezium.time.NanoTime":
		c.kind = kTimeNanos
	case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
		c.kind = kTsMillis
	case "io.debezium.time.MicroTimestamp":
		c.kind = kTsMicros
	case "io.debezium.time.NanoTimestamp":
		c.kind = kTsNanos
	case "io.debezium.time.MicroDuration", "io.debezium.time.Interval":
		c.kind = kInterval
	case "io.debezium.data.Bits":
		c.kind = kBits
		if n, err := strconv.Atoi(fs.Parameters["length"]); err == nil && n > 0 {
			c.bits = n
		}
		if col != nil && (col.base == "bit" || col.base == "varbit") && col.typmod > 0 {
			c.bits = int(col.typmod)
		}
	default:
		switch fs.Type {
		case "boolean":
			c.kind = kBool
			if col != nil && col.base == "bit" || col != nil && col.base == "varbit" {
				c.kind = kBitBool
			}
		case "int8", "int16", "int32", "int64":
			c.kind = kInt
		case "float", "double", "float32", "float64": // JsonConverter writes float/double
			c.kind = kFloat
		case "string":
			c.kind = kText
			if col != nil && col.base == "bytea" && !col.array { // binary.handling.mode base64/hex
				c.kind, c.binMode = kBytes, m.BinaryHandling
			}
			if col != nil && col.base == "hstore" && !col.array { // hstore.handling.mode json
				c.kind = kHstore
			}
		case "map": // hstore.handling.mode map: a map of strings
			c.kind = kJSONValue
			if col != nil && col.base == "hstore" {
				c.kind = kHstore
			}
		case "bytes":
			c.kind, c.binMode = kBytes, "bytes"
		case "array":
			if fs.Items == nil {
				return nil, fmt.Errorf("array schema without items")
			}
			var ec *targetCol
			if col != nil {
				e := *col
				e.array = false
				ec = &e
			}
			el, err := codecFromSchema(fs.Items, ec, m)
			if err != nil {
				return nil, err
			}
			c.kind, c.elem = kArray, el
		default:
			return nil, fmt.Errorf("unsupported Connect type %q (%s)", fs.Type, fs.Name)
		}
	}
	if col != nil {
		if err := compatible(c, col); err != nil {
			return nil, fmt.Errorf("the topic carries %s but the target column is %s: %w", describe(fs), col.typ, err)
		}
	}
	return c, nil
}

func describe(fs *fieldSchema) string {
	if fs.Name != "" {
		return fs.Type + " (" + fs.Name + ")"
	}
	return fs.Type
}

// compatible rejects conversions PostgreSQL would refuse or that would change the meaning.
func compatible(c *codec, col *targetCol) error {
	if c.kind == kArray {
		if !col.array {
			return fmt.Errorf("an array cannot go into a non-array column")
		}
		return nil
	}
	if col.array {
		return fmt.Errorf("a scalar cannot go into an array column")
	}
	ok := true
	switch c.kind {
	case kBool, kBitBool:
		ok = col.category == 'B' || col.category == 'V'
	case kInt, kFloat, kDecimal, kVarDecimal, kNumeric:
		ok = col.category == 'N'
	case kDate, kTsMillis, kTsMicros, kTsNanos, kTimeMillis, kTimeMicros, kTimeNanos:
		ok = col.category == 'D'
	case kInterval:
		ok = col.category == 'T'
	case kBytes:
		ok = col.base == "bytea"
	case kBits:
		ok = col.base == "bit" || col.base == "varbit"
	case kHstore:
		ok = col.base == "hstore"
	case kJSONValue:
		ok = col.base == "json" || col.base == "jsonb" || col.category == 'S'
	}
	if !ok {
		return fmt.Errorf("incompatible types")
	}
	return nil
}

// timePrecision: no typmod means 6 (pgjdbc's default scale for time types).
func timePrecision(typmod int32) int {
	if typmod < 0 {
		return 6
	}
	return int(typmod)
}

// codecFromTarget maps a target column to a codec for topics written without schemas.
func codecFromTarget(col *targetCol, m Modes) *codec {
	if col.array {
		e := *col
		e.array = false
		return &codec{kind: kArray, elem: codecFromTarget(&e, m)}
	}
	switch col.base {
	case "bool":
		return &codec{kind: kBool}
	case "bit", "varbit":
		// Debezium: bit(1) (and bit without a length) is a boolean, longer ones io.debezium.data.Bits
		if col.typmod == 1 || (col.base == "bit" && col.typmod < 0) {
			return &codec{kind: kBitBool}
		}
		return &codec{kind: kBits, bits: max(int(col.typmod), 0)}
	case "hstore":
		return &codec{kind: kHstore}
	case "int2", "int4", "int8", "oid":
		return &codec{kind: kInt}
	case "float4", "float8":
		return &codec{kind: kFloat}
	case "numeric":
		sc := -1
		if col.typmod >= 4 {
			sc = int((col.typmod - 4) & 0xFFFF)
			if sc > 0x7FFF {
				sc -= 0x10000
			}
			sc = max(sc, 0)
		}
		return &codec{kind: kNumeric, scale: sc, decMode: m.DecimalHandling}
	case "money":
		return &codec{kind: kNumeric, scale: 2, decMode: m.DecimalHandling}
	case "date":
		return &codec{kind: kDate}
	case "time":
		if m.TimePrecision == "connect" || (m.TimePrecision != "adaptive_time_microseconds" && timePrecision(col.typmod) <= 3) {
			return &codec{kind: kTimeMillis}
		}
		return &codec{kind: kTimeMicros}
	case "timestamp":
		if m.TimePrecision == "connect" || timePrecision(col.typmod) <= 3 {
			return &codec{kind: kTsMillis}
		}
		return &codec{kind: kTsMicros}
	case "interval":
		return &codec{kind: kInterval}
	case "bytea":
		return &codec{kind: kBytes, binMode: m.BinaryHandling}
	}
	return &codec{kind: kText}
}

// ddlType is the PostgreSQL type replay creates for a field's Connect schema (--create-tables).
func ddlType(fs *fieldSchema) (string, error) {
	switch fs.Name {
	case "org.apache.kafka.connect.data.Decimal":
		if p := fs.Parameters["connect.decimal.precision"]; p != "" {
			return fmt.Sprintf("numeric(%s,%s)", p, fs.Parameters["scale"]), nil
		}
		return "numeric", nil
	case "io.debezium.data.VariableScaleDecimal":
		return "numeric", nil
	case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date":
		return "date", nil
	case "io.debezium.time.Time", "org.apache.kafka.connect.data.Time":
		return "time(3)", nil
	case "io.debezium.time.MicroTime", "io.debezium.time.NanoTime":
		return "time", nil
	case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
		return "timestamp(3)", nil
	case "io.debezium.time.MicroTimestamp", "io.debezium.time.NanoTimestamp":
		return "timestamp", nil
	case "io.debezium.time.ZonedTimestamp":
		return "timestamptz", nil
	case "io.debezium.time.ZonedTime":
		return "timetz", nil
	case "io.debezium.time.MicroDuration", "io.debezium.time.Interval":
		return "interval", nil
	case "io.debezium.data.Uuid":
		return "uuid", nil
	case "io.debezium.data.Json":
		return "jsonb", nil
	case "io.debezium.data.Xml":
		return "xml", nil
	case "io.debezium.data.Bits":
		if n := fs.Parameters["length"]; n != "" {
			return "bit(" + n + ")", nil // exact for bit(n); a shorter varbit(n) value gains leading zeros
		}
		return "bit varying", nil
	}
	switch fs.Type {
	case "boolean":
		return "boolean", nil
	case "int8", "int16":
		return "smallint", nil
	case "int32":
		return "integer", nil
	case "int64":
		return "bigint", nil
	case "float", "float32":
		return "real", nil
	case "double", "float64":
		return "double precision", nil
	case "string":
		return "text", nil
	case "bytes":
		return "bytea", nil
	case "map": // hstore in map mode
		return "jsonb", nil
	case "array":
		if fs.Items == nil {
			return "", fmt.Errorf("array schema without items")
		}
		el, err := ddlType(fs.Items)
		if err != nil {
			return "", err
		}
		if strings.HasSuffix(el, "[]") {
			return el, nil
		}
		return el + "[]", nil
	}
	return "", fmt.Errorf("no PostgreSQL type for Connect type %s", describe(fs))
}

// toastable reports whether pgcdc may write the unchanged-TOAST placeholder into the field
// (the types whose codec in pkg/event has a placeholder form).
func toastable(fs *fieldSchema) bool {
	switch fs.Name {
	case "io.debezium.time.ZonedTimestamp", "io.debezium.time.ZonedTime", "io.debezium.time.Interval":
		return false
	}
	switch fs.Type {
	case "string", "array":
		return true
	case "bytes":
		return fs.Name != "org.apache.kafka.connect.data.Decimal"
	}
	return false
}
