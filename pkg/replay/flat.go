package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Flattened topics: records written with events.format io.debezium.transforms.ExtractNewRecordState
// (or by Debezium with that transform) hold the row alone, not the change event envelope. Replay
// reads them as upserts of the row (a delete when the row has __deleted "true", when the record
// has no row — the delete modes tombstone and delete-to-tombstone — or for a tombstone of such a
// topic), keyed by the record key. The fields the transform adds (add.fields: named with
// Options.FlatFieldPrefix, "__" by default) are not columns; __op and __lsn / __source_lsn are read
// when present. The table is the topic's <prefix>.<schema>.<table>.
//
// What replay refuses, with the reason (docs/shaping.md):
//   - flattened topics of tables without a key: their updates and deletes carry no old row;
//   - flattened topics renamed by a topic router: the topic no longer names the table;
//   - topics of several tables (ByLogicalTableRouter's __dbz__physicalTableIdentifier key field, or
//     events of another table in the topic);
//   - a key column whose value differs between the key and the row (masked, hashed or cut in the
//     value by a column mapper): the row could not be found again by its values.

// DefaultFlatFieldPrefix is ExtractNewRecordState's add.fields.prefix default.
const DefaultFlatFieldPrefix = "__"

// logicalTableKeyField is ByLogicalTableRouter's default key.field.name.
const logicalTableKeyField = "__dbz__physicalTableIdentifier"

// topicTable tells the decoder the table its topic names, for flattened records:
// <prefix>.<schema>.<table>; "" when the topic has another form.
func (d *decoder) topicTable(prefix, topic string) {
	rest, ok := strings.CutPrefix(topic, prefix+".")
	if prefix == "" || !ok {
		return
	}
	if s, t, ok := strings.Cut(rest, "."); ok && !strings.Contains(t, ".") {
		d.flatSchema, d.flatTable = s, t
	}
}

// isFlat reports whether a value (its schema, or without one its payload) is a flattened row
// rather than a change event: with a schema, one not named <...>.Envelope; without one, an object
// lacking the envelope's before, after and op.
func (d *decoder) isFlat(vs, payload []byte) (bool, error) {
	if vs != nil {
		if flat, ok := d.flatSchemas[string(vs)]; ok {
			return flat, nil
		}
		var s struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(vs, &s); err != nil {
			return false, fmt.Errorf("value schema: %w", err)
		}
		flat := !strings.HasSuffix(s.Name, ".Envelope")
		d.flatSchemas[string(vs)] = flat
		return flat, nil
	}
	seen := 0
	err := eachField(payload, func(name, _ []byte) error {
		switch string(name) {
		case `"before"`, `"after"`, `"op"`:
			seen++
		}
		return nil
	})
	return seen < 3, err
}

// decodeFlat decodes a flattened row (payload nil or null: a delete without a row).
func (d *decoder) decodeFlat(vs, payload []byte, c *change) error {
	d.flat = true
	if d.flatTable == "" {
		return fmt.Errorf("a flattened row (ExtractNewRecordState), whose topic is not <prefix>.<schema>.<table>: replay cannot tell its table (a topic router renamed it?); replay needs the table topics as pgcdc names them")
	}
	c.schema, c.table = d.flatSchema, d.flatTable
	if c.key == nil {
		return fmt.Errorf("a flattened row (ExtractNewRecordState) of a table without a key: its updates and deletes carry no old row to find theirs by, so replay cannot rebuild %s.%s; replay from topics written with the envelope format", c.schema, c.table)
	}
	if vs != nil {
		rs, ok := d.schemas[string(vs)]
		if !ok {
			all, err := parseStructSchema(vs)
			if err != nil {
				return err
			}
			var cols []*fieldSchema
			for _, f := range all.fields {
				if !strings.HasPrefix(f.Field, d.flatPrefix) {
					cols = append(cols, f)
				}
			}
			rs = newRowSchema(cols)
			d.schemas[string(vs)] = rs
		}
		c.vschema = rs
	}
	if payload == nil || isNull(payload) {
		c.op = 'd'
		return nil
	}
	fields, err := d.row(payload)
	if err != nil {
		return fmt.Errorf("value: %w", err)
	}
	var row []field
	var op byte
	deleted := false
	for _, f := range fields {
		meta, ok := strings.CutPrefix(f.name, d.flatPrefix)
		if !ok {
			row = append(row, f)
			continue
		}
		switch meta {
		case "deleted":
			deleted = string(f.raw) == `"true"`
		case "op":
			if s, err := unquote(f.raw); err == nil && len(s) == 1 {
				op = s[0]
			}
		case "lsn", "source_lsn":
			if n, err := strconv.ParseUint(string(f.raw), 10, 64); err == nil {
				c.lsn = n
			}
		}
	}
	switch {
	case deleted || op == 'd':
		c.op, c.before = 'd', row
	case op == 'c' || op == 'r' || op == 'u':
		c.op, c.after = op, row
	case c.oldKey: // the create half of a primary-key change
		c.op, c.after = 'c', row
	default:
		c.op, c.after = 'u', row
	}
	return nil
}

// checkKeyColumns refuses the shapes replay cannot rebuild from: a topic of several tables
// (ByLogicalTableRouter's key field), and a key column whose value in the row differs from the
// key's (a column mapper changed it in the value only).
func checkKeyColumns(c *change) error {
	for _, k := range c.keyFields {
		if k.name == logicalTableKeyField {
			return fmt.Errorf("the key has the field %s: the topic holds the events of several tables (ByLogicalTableRouter), which replay cannot rebuild; replay from the tables' own topics", logicalTableKeyField)
		}
		for _, f := range c.after {
			if f.name == k.name && !bytes.Equal(f.raw, k.raw) {
				return fmt.Errorf("key column %q has another value in the row than in the key: the column is masked, hashed or truncated in the values (tables.column_mappers), so rows cannot be found again by it; replay cannot rebuild %s.%s", k.name, c.schema, c.table)
			}
		}
	}
	return nil
}

// withEarlierColumns adds to row the columns of prev (an earlier state of the same key in the
// batch) that row does not have, so that collapsing the two applies both. Flattened rows leave
// out the fields an update did not change (drop.fields.header.name); change event envelopes
// always carry every column, and the placeholder columns are handled before.
func withEarlierColumns(row, prev rowImage) rowImage {
	var extra []int
	for j, pf := range prev.fields {
		found := false
		for _, f := range row.fields {
			if f.name == pf.name {
				found = true
				break
			}
		}
		if !found {
			extra = append(extra, j)
		}
	}
	if len(extra) == 0 {
		return row
	}
	out := rowImage{
		fields: append([]field(nil), row.fields...),
		cols:   append([]*targetCol(nil), row.cols...),
		codecs: append([]*codec(nil), row.codecs...),
	}
	for _, j := range extra {
		out.fields = append(out.fields, prev.fields[j])
		out.cols = append(out.cols, prev.cols[j])
		out.codecs = append(out.codecs, prev.codecs[j])
	}
	return out
}
