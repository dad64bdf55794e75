package replay

import (
	"encoding/json"
	"fmt"
)

// ValueConverter turns the values of one column of a change event into PostgreSQL's text form,
// as replay writes them: a Connect Decimal becomes "12.30", a Date "2024-05-01", a MicroTimestamp
// "2024-05-01 12:00:00.123456", bytes "\x0a0b", ±infinity sentinels "infinity". It exists for other
// readers of the change topics (pgcdc deliver builds Hasura payloads with it).
type ValueConverter struct{ c *codec }

// NewValueConverter compiles the converter for a column from its Kafka Connect schema (one entry
// of the value schema's before/after fields, as JsonConverter writes it).
func NewValueConverter(schema []byte) (*ValueConverter, error) {
	var fs fieldSchema
	if err := json.Unmarshal(schema, &fs); err != nil {
		return nil, fmt.Errorf("column schema: %w", err)
	}
	c, err := codecFromSchema(&fs, nil, Modes{})
	if err != nil {
		return nil, err
	}
	return &ValueConverter{c: c}, nil
}

// Text converts one non-null JSON value.
func (v *ValueConverter) Text(raw []byte) (string, error) { return v.c.toText(raw) }
