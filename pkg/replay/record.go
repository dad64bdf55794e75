package replay

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// field is one column value of a row image: its name and raw JSON value.
type field struct {
	name string
	raw  []byte
}

// change is one decoded record of a table topic.
type change struct {
	partition int
	offset    int64
	size      int    // bytes of the record's key and value
	op        byte   // 'c', 'r', 'u', 'd', 't'; 0 for a tombstone
	lsn       uint64 // source.lsn; for tombstones and events without one, the previous record's
	schema    string // source.schema
	table     string // source.table

	key       []byte // key payload (a JSON object); nil for a null key
	keyFields []field
	keySchema *rowSchema
	before    []field // nil when null
	after     []field
	vschema   *rowSchema // nil when the value has no schema

	msg    *kafka.Message // the record as read (kept to park it)
	oldKey bool           // header __debezium.oldkey: the create half of a primary-key change
	newKey bool           // header __debezium.newkey: the delete half of a primary-key change
}

// Headers of a primary-key change (an UPDATE of the key is a delete of the old key and a create of
// the new one, at the same source.lsn).
const (
	headerOldKey = "__debezium.oldkey"
	headerNewKey = "__debezium.newkey"
)

// decoder decodes the records of one topic. Parsed schemas and column names are cached: most
// records of a topic share them. Not safe for concurrent use.
type decoder struct {
	schemas map[string]*rowSchema // raw value-schema bytes => row schema
	keySchs map[string]*rowSchema
	names   map[string]string // raw quoted name => name

	// Flattened rows (flat.go).
	flat                  bool            // the topic holds flattened rows: its tombstones are deletes
	flatPrefix            string          // the prefix of the fields ExtractNewRecordState adds
	flatSchema, flatTable string          // the table the topic's name gives
	flatSchemas           map[string]bool // raw value-schema bytes => a flattened row's
}

func newDecoder(flatPrefix string) *decoder {
	return &decoder{schemas: map[string]*rowSchema{}, keySchs: map[string]*rowSchema{}, names: map[string]string{},
		flatPrefix: flatPrefix, flatSchemas: map[string]bool{}}
}

func (d *decoder) name(raw []byte) (string, error) {
	if s, ok := d.names[string(raw)]; ok {
		return s, nil
	}
	s, err := unquote(raw)
	if err != nil {
		return "", err
	}
	d.names[string(raw)] = s
	return s, nil
}

// unwrap splits a JsonConverter record into its schema and payload when it has the
// {"schema":...,"payload":...} form; otherwise the whole record is the payload.
func unwrap(b []byte) (schema, payload []byte, err error) {
	var s, p []byte
	n := 0
	other := false
	err = eachField(b, func(name, raw []byte) error {
		n++
		switch string(name) {
		case `"schema"`:
			s = raw
		case `"payload"`:
			p = raw
		default:
			other = true
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if n == 2 && !other && s != nil && p != nil && len(s) > 0 && s[0] == '{' {
		return s, p, nil
	}
	return nil, b, nil
}

func (d *decoder) row(raw []byte) ([]field, error) {
	if isNull(raw) {
		return nil, nil
	}
	out := make([]field, 0, 16)
	err := eachField(raw, func(name, v []byte) error {
		n, err := d.name(name)
		if err != nil {
			return err
		}
		out = append(out, field{name: n, raw: v})
		return nil
	})
	return out, err
}

// decode turns a Kafka record into a change. prevLSN is the LSN of the partition's previous
// record (given to tombstones).
func (d *decoder) decode(key, value []byte, prevLSN uint64, c *change) error {
	c.lsn = prevLSN
	if key != nil {
		ks, kp, err := unwrap(key)
		if err != nil {
			return fmt.Errorf("key is not a JSON object: %w", err)
		}
		if isNull(kp) {
			kp = nil
		}
		c.key = kp
		if ks != nil {
			rs, ok := d.keySchs[string(ks)]
			if !ok {
				if rs, err = parseStructSchema(ks); err != nil {
					return err
				}
				d.keySchs[string(ks)] = rs
			}
			c.keySchema = rs
		}
		if kp != nil {
			if c.keyFields, err = d.row(kp); err != nil {
				return fmt.Errorf("key: %w", err)
			}
		}
	}
	if value == nil {
		c.op = 0
		if d.flat && c.key != nil { // a tombstone of a flattened topic deletes its key
			c.op = 'd'
			c.schema, c.table = d.flatSchema, d.flatTable
		}
		return nil
	}
	if isNull(bytes.TrimSpace(value)) { // a flattened delete without schemas (delete.tombstone.handling.mode tombstone)
		return d.decodeFlat(nil, nil, c)
	}
	vs, payload, err := unwrap(value)
	if err != nil {
		return fmt.Errorf("value is not a JSON object: %w", err)
	}
	if flat, err := d.isFlat(vs, payload); err != nil {
		return err
	} else if flat {
		if err := d.decodeFlat(vs, payload, c); err != nil {
			return err
		}
		return checkKeyColumns(c)
	}
	if vs != nil {
		rs, ok := d.schemas[string(vs)]
		if !ok {
			if rs, err = parseEnvelopeSchema(vs); err != nil {
				return err
			}
			d.schemas[string(vs)] = rs
		}
		c.vschema = rs
	}
	var op []byte
	err = eachField(payload, func(name, raw []byte) error {
		var err error
		switch string(name) {
		case `"op"`:
			op = raw
		case `"before"`:
			c.before, err = d.row(raw)
		case `"after"`:
			c.after, err = d.row(raw)
		case `"source"`:
			err = eachField(raw, func(n, v []byte) error {
				var err error
				switch string(n) {
				case `"schema"`:
					c.schema, err = d.name(v)
				case `"table"`:
					c.table, err = d.name(v)
				case `"lsn"`:
					if !isNull(v) {
						c.lsn, err = strconv.ParseUint(string(v), 10, 64)
					}
				}
				return err
			})
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("value: %w", err)
	}
	if len(op) != 3 || op[0] != '"' {
		return fmt.Errorf("value has no op: not a pgcdc/Debezium change event")
	}
	c.op = op[1]
	switch c.op {
	case 'c', 'r', 'u':
		if c.after == nil {
			return fmt.Errorf("op %q without an after image", c.op)
		}
	case 'd', 't':
	default:
		return fmt.Errorf("unsupported op %q", c.op)
	}
	if c.schema == "" || c.table == "" {
		return fmt.Errorf("value has no source.schema/source.table")
	}
	return checkKeyColumns(c) // flat.go
}
