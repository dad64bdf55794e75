package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/pgcdc/pgcdc/pkg/replay"
)

// Column values as PostgreSQL's row_to_json writes them, rebuilt from Debezium's encoding with
// the topic's value schema: what a Hasura event trigger receives.

type colKind uint8

const (
	colRaw       colKind = iota // the value as Debezium wrote it
	colJSON                     // io.debezium.data.Json: a string holding JSON, embedded as JSON
	colNumber                   // Decimal / VariableScaleDecimal: a JSON number (NaN as a string)
	colText                     // Date, Time, bytes: PostgreSQL's text form as a string
	colTimestamp                // Timestamp, MicroTimestamp, NanoTimestamp: ISO 8601 without zone
	colArray
)

type colConv struct {
	kind colKind
	conv *replay.ValueConverter
	elem *colConv
}

// connectSchema is one Kafka Connect schema as JsonConverter writes it.
type connectSchema struct {
	Type   string            `json:"type"`
	Name   string            `json:"name"`
	Field  string            `json:"field"`
	Fields []json.RawMessage `json:"fields"`
	Items  json.RawMessage   `json:"items"`
}

func newColConv(raw json.RawMessage) (*colConv, error) {
	var s connectSchema
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	var kind colKind
	switch s.Name {
	case "io.debezium.data.Json":
		return &colConv{kind: colJSON}, nil
	case "org.apache.kafka.connect.data.Decimal", "io.debezium.data.VariableScaleDecimal":
		kind = colNumber
	case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date",
		"io.debezium.time.Time", "org.apache.kafka.connect.data.Time", "io.debezium.time.MicroTime", "io.debezium.time.NanoTime":
		kind = colText
	case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp", "io.debezium.time.MicroTimestamp", "io.debezium.time.NanoTimestamp":
		kind = colTimestamp
	case "":
		switch s.Type {
		case "bytes":
			kind = colText
		case "array":
			if len(s.Items) == 0 {
				return &colConv{kind: colRaw}, nil
			}
			el, err := newColConv(s.Items)
			if err != nil {
				return nil, err
			}
			if el.kind == colRaw {
				return el, nil
			}
			return &colConv{kind: colArray, elem: el}, nil
		default:
			return &colConv{kind: colRaw}, nil
		}
	default:
		return &colConv{kind: colRaw}, nil
	}
	conv, err := replay.NewValueConverter(raw)
	if err != nil {
		return nil, err
	}
	return &colConv{kind: kind, conv: conv}, nil
}

func (c *colConv) write(b *bytes.Buffer, raw json.RawMessage) error {
	if c == nil || c.kind == colRaw || bytes.Equal(raw, []byte("null")) {
		b.Write(raw)
		return nil
	}
	switch c.kind {
	case colJSON:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || !json.Valid([]byte(s)) {
			b.Write(raw) // not a string of JSON: leave it
			return nil
		}
		b.WriteString(s)
		return nil
	case colArray:
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return err
		}
		b.WriteByte('[')
		for i, el := range elems {
			if i > 0 {
				b.WriteByte(',')
			}
			if len(el) > 0 && el[0] == '[' { // another dimension
				if err := c.write(b, el); err != nil {
					return err
				}
				continue
			}
			if err := c.elem.write(b, el); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	}
	text, err := c.conv.Text(raw)
	if err != nil {
		return err
	}
	switch c.kind {
	case colNumber:
		if f, err := strconv.ParseFloat(text, 64); err == nil && !isInfOrNaN(f) {
			b.WriteString(text)
			return nil
		}
	case colTimestamp:
		if d, t, ok := strings.Cut(text, " "); ok && !strings.HasSuffix(text, " BC") {
			text = d + "T" + t
		}
	}
	writeString(b, text)
	return nil
}

func isInfOrNaN(f float64) bool { return math.IsInf(f, 0) || math.IsNaN(f) }

// rowConv converts the rows of one table version: a converter per column.
type rowConv struct {
	cols map[string]*colConv
}

// converters caches row converters by value schema (the schema text identifies a table version).
type converters struct {
	mu sync.Mutex
	m  map[string]*rowConv
}

const maxCachedSchemas = 512

func (cs *converters) forSchema(schema json.RawMessage) (*rowConv, error) {
	if len(schema) == 0 {
		return nil, nil
	}
	cs.mu.Lock()
	rc, ok := cs.m[string(schema)]
	cs.mu.Unlock()
	if ok {
		return rc, nil
	}
	var env connectSchema
	if err := json.Unmarshal(schema, &env); err != nil {
		return nil, fmt.Errorf("value schema: %w", err)
	}
	rc = &rowConv{cols: map[string]*colConv{}}
	for _, f := range env.Fields {
		var fs connectSchema
		if err := json.Unmarshal(f, &fs); err != nil {
			return nil, fmt.Errorf("value schema: %w", err)
		}
		if fs.Field != "after" && fs.Field != "before" || fs.Type != "struct" {
			continue
		}
		for _, col := range fs.Fields {
			var cs connectSchema
			if err := json.Unmarshal(col, &cs); err != nil {
				return nil, fmt.Errorf("value schema: %w", err)
			}
			c, err := newColConv(col)
			if err != nil {
				return nil, fmt.Errorf("value schema of column %s: %w", cs.Field, err)
			}
			rc.cols[cs.Field] = c
		}
		break
	}
	cs.mu.Lock()
	if cs.m == nil || len(cs.m) >= maxCachedSchemas {
		cs.m = map[string]*rowConv{}
	}
	cs.m[string(schema)] = rc
	cs.mu.Unlock()
	return rc, nil
}

// pgRow writes a row (a JSON object, or nil for null) with its values as PostgreSQL writes them.
// Without a schema (rc nil) the row is written as it is.
func (rc *rowConv) pgRow(b *bytes.Buffer, row json.RawMessage) error {
	if row == nil {
		b.WriteString("null")
		return nil
	}
	if rc == nil {
		b.Write(row)
		return nil
	}
	fields, err := objectFields(row)
	if err != nil {
		return err
	}
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, f.name)
		b.WriteByte(':')
		if err := rc.cols[f.name].write(b, f.raw); err != nil {
			return fmt.Errorf("column %s: %w", f.name, err)
		}
	}
	b.WriteByte('}')
	return nil
}
