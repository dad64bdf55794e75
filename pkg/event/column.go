package event

import (
	"encoding/json"
	"fmt"
)

// Column-level encoding, for transforms that build records of their own from a row's columns
// (pkg/outbox: Debezium's outbox EventRouter takes the key, the value and headers from single
// columns of the row and keeps each column's Connect schema).

// ColumnIndex returns the index of the column named name, or -1.
func (e *Encoder) ColumnIndex(name string) int {
	for i, c := range e.table.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// AppendColumnValue appends the JSON payload of column i's value d, as it appears inside the row
// struct of the envelope (a NULL reads as the column's schema default when it has one, as Kafka
// Connect's Struct.get and JsonConverter give it).
func (e *Encoder) AppendColumnValue(dst []byte, i int, d Datum) ([]byte, error) {
	if i < 0 || i >= len(e.cols) {
		return dst, fmt.Errorf("%s.%s: no column %d", e.table.Schema, e.table.Name, i)
	}
	return e.appendDatum(dst, i, d)
}

// ColumnSchema returns column i's Connect schema, for a struct of a transform's own (Schema.Fields)
// or to be written alone with AppendSchema.
func (e *Encoder) ColumnSchema(i int) *Schema { return &Schema{col: e.cols[i].schema} }

// ColumnIsString reports whether column i's Connect type is string (text, varchar, json, jsonb,
// uuid, ...): its value is a Java String in Kafka Connect.
func (e *Encoder) ColumnIsString(i int) bool { return e.cols[i].schema.typ == "string" }

// AppendColumnHeader appends column i's value d as Kafka Connect's SimpleHeaderConverter writes a
// header of the column's schema (Values.convertToString): strings and base64 bytes without quotes,
// numbers and booleans as their text, decimals as BigDecimal.toString. null=true when the header
// value is null (a NULL without a schema default).
func (e *Encoder) AppendColumnHeader(dst []byte, i int, d Datum) (out []byte, null bool, err error) {
	if i < 0 || i >= len(e.cols) {
		return dst, false, fmt.Errorf("%s.%s: no column %d", e.table.Schema, e.table.Name, i)
	}
	cd := e.cols[i]
	if d.Kind == DatumText && (cd.kind == kString || cd.kind == kUnknownText) {
		return append(dst, d.Text...), false, nil
	}
	start := len(dst)
	if d.Kind == DatumText {
		dst, err = e.appendHeaderDatum(dst, i, d)
	} else {
		dst, err = e.appendDatum(dst, i, d)
	}
	if err != nil {
		return dst[:start], false, err
	}
	v := dst[start:]
	if string(v) == "null" {
		return dst[:start], true, nil
	}
	if len(v) > 0 && v[0] == '"' && (cd.schema.typ == "string" || cd.schema.typ == "bytes") {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return dst[:start], false, fmt.Errorf("%s.%s column %q: header value: %w", e.table.Schema, e.table.Name, e.table.Columns[i].Name, err)
		}
		return append(dst[:start], s...), false, nil
	}
	return dst, false, nil
}

// ColumnText returns column i's value as the Java String Kafka Connect holds for a string column
// (ok=false for a NULL without default, or a column whose type is not string).
func (e *Encoder) ColumnText(i int, d Datum) (s string, ok bool, err error) {
	if !e.ColumnIsString(i) {
		return "", false, nil
	}
	v, err := e.AppendColumnValue(nil, i, d)
	if err != nil || string(v) == "null" {
		return "", false, err
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false, fmt.Errorf("%s.%s column %q: %w", e.table.Schema, e.table.Name, e.table.Columns[i].Name, err)
	}
	return s, true, nil
}

// Schema is a Kafka Connect schema built outside the type mapping (a transform's own struct, or
// one inferred from JSON), written by AppendSchema as JsonConverter writes schemas. A column's
// schema (Encoder.ColumnSchema) can be one of its fields.
type Schema struct {
	Type     string // "struct", "array", "string", "int32", "int64", "double", "boolean", "bytes", ...
	Optional bool
	Name     string
	Version  int
	Fields   []SchemaField // struct
	Items    *Schema       // array

	col *connectSchema // a column's schema (ColumnSchema): used as it is
}

// SchemaField is one field of a struct Schema.
type SchemaField struct {
	Name   string
	Schema *Schema
}

// AppendSchema appends s as JsonConverter writes a schema; field, when not empty, is appended as
// the schema's "field" name.
func AppendSchema(dst []byte, s *Schema, field string) []byte {
	return appendSchemaJSON(dst, s.connect(), field)
}

func (s *Schema) connect() *connectSchema {
	if s.col != nil {
		return s.col
	}
	c := &connectSchema{typ: s.Type, optional: s.Optional, name: s.Name, version: s.Version}
	for _, f := range s.Fields {
		c.fields = append(c.fields, connectField{f.Name, f.Schema.connect()})
	}
	if s.Items != nil {
		c.items = s.Items.connect()
	}
	return c
}

// AppendJSONString appends s as a JSON string, escaped as Jackson (JsonConverter) escapes it.
func AppendJSONString[T string | []byte](dst []byte, s T) []byte { return appendJSONString(dst, s) }

// AppendJavaDouble appends f as JsonConverter writes a double (Java's Double.toString; NaN and the
// infinities as strings).
func AppendJavaDouble(dst []byte, f float64) []byte { return appendJavaDouble(dst, f) }
