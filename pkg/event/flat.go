package event

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FlatField is a field of the change event that Debezium's ExtractNewRecordState adds to the
// flattened value (add.fields) or as a header (add.headers).
type FlatField struct {
	Struct string // "" (the envelope: op, ts_ms, ts_us, ts_ns), "source" or "transaction"
	Field  string // its name there
	Name   string // the name it gets (add.fields.prefix / add.headers.prefix included)
}

// FlatOptions configure a Flat.
type FlatOptions struct {
	// Deleted adds the field __deleted ("true" on a delete, "false" otherwise), as the rewrite
	// modes of delete.tombstone.handling.mode do.
	Deleted bool
	// Fields are added after the row's fields (add.fields).
	Fields []FlatField
	// DropKeepSchemaCompatible drops only optional fields (drop.fields.keep.schema.compatible,
	// Debezium's default true).
	DropKeepSchemaCompatible bool
}

// Flat encodes the values of one table version as Debezium's ExtractNewRecordState transform
// flattens change events for sinks that want rows: the row image alone, with the fields it adds.
// The layout follows io.debezium.transforms.ExtractNewRecordState 3.6.1 and Kafka Connect's
// ExtractField, InsertField and ReplaceField: the value schema keeps the row's Value name but is
// required (InsertField and ReplaceField rebuild it with SchemaUtil.copySchemaBasics); an added
// field's schema is the envelope field's, optional and without its default. A Flat shares its
// Encoder's scratch buffers: not safe for concurrent use.
type Flat struct {
	e       *Encoder
	opts    FlatOptions
	fields  []flatField
	schemas map[string][]byte // value prefix (`{"schema":...,"payload":` or "") per delete flag and dropped fields
	null    []byte            // the value of a delete in the tombstone mode
}

type flatField struct {
	FlatField
	schema *connectSchema
}

// NewFlat prepares the flattened encoding of e's table. It fails naming a field it does not know.
func NewFlat(e *Encoder, o FlatOptions) (*Flat, error) {
	f := &Flat{e: e, opts: o, schemas: map[string][]byte{}}
	for _, ff := range o.Fields {
		sc, err := flatFieldSchema(ff)
		if err != nil {
			return nil, err
		}
		f.fields = append(f.fields, flatField{ff, sc})
	}
	if e.opts.ValueSchemas {
		f.null = append([]byte(`{"schema":`), appendSchemaJSON(nil, e.row, "")...)
		f.null = append(f.null, `,"payload":null}`...)
	} else {
		f.null = []byte("null")
	}
	return f, nil
}

// flatFieldSchema is the schema ExtractNewRecordState gives an added field: the envelope
// field's, optional, without a default (SchemaUtil.copySchemaBasics(...).optional()).
func flatFieldSchema(ff FlatField) (*connectSchema, error) {
	var parent *connectSchema
	switch ff.Struct {
	case "":
		switch ff.Field {
		case "op":
			return strOpt, nil
		case "ts_ms", "ts_us", "ts_ns":
			return int64Opt, nil
		}
	case "source":
		parent = sourceSchema
	case "transaction":
		parent = transactionSchema
	}
	if parent != nil {
		for _, f := range parent.fields {
			if f.name == ff.Field {
				c := *f.schema
				c.optional, c.dflt = true, nil
				return &c, nil
			}
		}
	}
	return nil, fmt.Errorf("unknown field %q: the envelope has op, ts_ms, ts_us, ts_ns; source has version, connector, name, ts_ms, snapshot, db, sequence, ts_us, ts_ns, schema, table, txId, lsn, xmin, origin, origin_lsn; transaction has id, total_order, data_collection_order",
		strings.TrimPrefix(ff.Struct+"."+ff.Field, "."))
}

// AppendNull appends the value of a delete in delete.tombstone.handling.mode tombstone: no row,
// but not a Kafka tombstone either, as ExtractField leaves it and the JsonConverter writes it
// ({"schema":<the row's schema>,"payload":null} with value schemas, null without).
func (f *Flat) AppendNull(dst []byte) []byte { return append(dst, f.null...) }

// AppendValue appends the flattened value of a change: for op c, u and r the after image, for d
// (the rewrite modes) the before image, then __deleted and the added fields. drop names fields
// to leave out (drop.fields.header.name); on a delete the added fields are never dropped (they
// are added after the drop, as in Debezium). Names in drop are field names, as ChangedFields gives them.
func (f *Flat) AppendValue(dst []byte, op Op, row []Datum, src Source, tx *Transaction, now time.Time, drop []string) ([]byte, error) {
	e := f.e
	if len(row) != len(e.cols) {
		return dst, fmt.Errorf("%s.%s: row has %d columns, table has %d", e.table.Schema, e.table.Name, len(row), len(e.cols))
	}
	del := op == OpDelete
	dropped := f.dropped(del, drop)
	dst = append(dst, f.prefix(del, dropped)...)
	start := len(dst)
	dst = append(dst, '{')
	var err error
	for i := range e.cols {
		if e.table.Columns[i].Omit || dropped[e.fieldNames[i]] {
			continue
		}
		dst = f.comma(dst, start)
		dst = append(dst, e.colNames[i]...)
		if dst, err = e.appendValueDatum(dst, i, row[i]); err != nil {
			return dst, err
		}
	}
	if f.opts.Deleted && !dropped[deletedField] {
		dst = f.comma(dst, start)
		dst = append(dst, `"__deleted":`...)
		dst = strconv.AppendQuote(dst, strconv.FormatBool(del))
	}
	for _, ff := range f.fields {
		if !del && dropped[ff.Name] {
			continue
		}
		dst = f.comma(dst, start)
		dst = appendJSONString(dst, ff.Name)
		dst = append(dst, ':')
		dst = f.appendFieldJSON(dst, ff.FlatField, op, src, tx, now)
	}
	dst = append(dst, '}')
	if e.opts.ValueSchemas {
		dst = append(dst, '}')
	}
	return dst, nil
}

const deletedField = "__deleted"

func (f *Flat) comma(dst []byte, start int) []byte {
	if len(dst) > start+1 {
		return append(dst, ',')
	}
	return dst
}

// dropped returns the fields of drop that are left out: with drop.fields.keep.schema.compatible
// only the optional ones.
func (f *Flat) dropped(del bool, drop []string) map[string]bool {
	if len(drop) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, fl := range f.schemaFields(del, nil) {
		if slices.Contains(drop, fl.name) && (fl.schema.optional || !f.opts.DropKeepSchemaCompatible) {
			out[fl.name] = true
		}
	}
	return out
}

// schemaFields are the fields of the flattened value, less dropped ones.
func (f *Flat) schemaFields(del bool, dropped map[string]bool) []connectField {
	var out []connectField
	for _, fl := range f.e.row.fields {
		if !dropped[fl.name] {
			out = append(out, fl)
		}
	}
	if f.opts.Deleted && !dropped[deletedField] {
		out = append(out, connectField{deletedField, strOpt})
	}
	for _, ff := range f.fields {
		if del || !dropped[ff.Name] {
			out = append(out, connectField{ff.Name, ff.schema})
		}
	}
	return out
}

// prefix returns `{"schema":<schema>,"payload":` (or nothing without value schemas) for the
// value's fields, cached per shape.
func (f *Flat) prefix(del bool, dropped map[string]bool) []byte {
	if !f.e.opts.ValueSchemas {
		return nil
	}
	key := "c"
	if del {
		key = "d"
	}
	if len(dropped) > 0 {
		names := make([]string, 0, len(dropped))
		for n := range dropped {
			names = append(names, n)
		}
		slices.Sort(names)
		key += "\x00" + strings.Join(names, "\x00")
	}
	if p, ok := f.schemas[key]; ok {
		return p
	}
	sc := &connectSchema{typ: "struct", name: f.e.row.name, fields: f.schemaFields(del, dropped)}
	p := append([]byte(`{"schema":`), appendSchemaJSON(nil, sc, "")...)
	p = append(p, `,"payload":`...)
	f.schemas[key] = p
	return p
}

// AppendKey appends the key of row without the optional key fields named in drop
// (drop.fields.from.key; all of them without drop.fields.keep.schema.compatible); ok=false when
// the table has no key.
func (f *Flat) AppendKey(dst []byte, row []Datum, drop []string) ([]byte, bool, error) {
	e := f.e
	var keep []int
	cut := false
	for _, k := range e.key {
		if slices.Contains(drop, e.fieldNames[k]) && (e.cols[k].schema.optional || !f.opts.DropKeepSchemaCompatible) {
			cut = true
			continue
		}
		keep = append(keep, k)
	}
	extra := e.table.KeyFields
	if !f.opts.DropKeepSchemaCompatible {
		extra = slices.DeleteFunc(slices.Clone(extra), func(kf KeyField) bool {
			if slices.Contains(drop, kf.Name) {
				cut = true
				return true
			}
			return false
		})
	}
	if !cut {
		return e.AppendKey(dst, row)
	}
	if len(e.key) == 0 {
		return dst, false, nil
	}
	ks := &connectSchema{typ: "struct", name: e.keySchemaName}
	for _, k := range keep {
		ks.fields = append(ks.fields, connectField{e.fieldNames[k], e.cols[k].schema})
	}
	for _, kf := range extra {
		ks.fields = append(ks.fields, connectField{kf.Name, strReq})
	}
	start := len(dst)
	if e.opts.KeySchemas {
		dst = append(dst, `{"schema":`...)
		dst = appendSchemaJSON(dst, ks, "")
		dst = append(dst, `,"payload":`...)
	}
	dst = append(dst, '{')
	p := len(dst)
	var err error
	for _, k := range keep {
		if len(dst) > p {
			dst = append(dst, ',')
		}
		dst = append(dst, e.colNames[k]...)
		if dst, err = e.appendDatum(dst, k, row[k]); err != nil {
			return dst[:start], false, err
		}
	}
	for _, kf := range extra {
		if len(dst) > p {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, kf.Name)
		dst = append(dst, ':')
		dst = appendJSONString(dst, kf.Value)
	}
	dst = append(dst, '}')
	if e.opts.KeySchemas {
		dst = append(dst, '}')
	}
	return dst, true, nil
}

// appendFieldJSON appends the JSON value of an added field.
func (f *Flat) appendFieldJSON(dst []byte, ff FlatField, op Op, src Source, tx *Transaction, now time.Time) []byte {
	v, str, null := f.fieldValue(ff, op, src, tx, now)
	switch {
	case null:
		return append(dst, "null"...)
	case str:
		return appendJSONString(dst, v)
	}
	return append(dst, v...)
}

// HeaderValue is the value of an added header as Kafka Connect's SimpleHeaderConverter writes
// it: strings as they are, numbers in decimal; nil for a null.
func (f *Flat) HeaderValue(ff FlatField, op Op, src Source, tx *Transaction, now time.Time) []byte {
	v, _, null := f.fieldValue(ff, op, src, tx, now)
	if null {
		return nil
	}
	return []byte(v)
}

// fieldValue returns an added field's value as text, whether it is a string, and whether it is
// null.
func (f *Flat) fieldValue(ff FlatField, op Op, src Source, tx *Transaction, now time.Time) (v string, str, null bool) {
	e := f.e
	ct := src.CommitTime
	if ct.IsZero() {
		ct = now
	}
	num := func(n int64) (string, bool, bool) { return strconv.FormatInt(n, 10), false, false }
	optNum := func(n uint64) (string, bool, bool) {
		if n == 0 {
			return "", false, true
		}
		return strconv.FormatUint(n, 10), false, false
	}
	switch ff.Struct {
	case "":
		switch ff.Field {
		case "op":
			return string(rune(op)), true, false
		case "ts_ms":
			return num(now.UnixMilli())
		case "ts_us":
			return num(now.UnixMicro())
		case "ts_ns":
			return num(now.UnixNano())
		}
	case "transaction":
		if tx == nil {
			return "", false, true
		}
		switch ff.Field {
		case "id":
			return tx.ID, true, false
		case "total_order":
			return num(tx.TotalOrder)
		case "data_collection_order":
			return num(tx.DataCollectionOrder)
		}
	case "source":
		switch ff.Field {
		case "version":
			return e.opts.Version, true, false
		case "connector":
			return "postgresql", true, false
		case "name":
			return e.opts.TopicPrefix, true, false
		case "ts_ms":
			return num(ct.UnixMilli())
		case "ts_us":
			return num(ct.UnixMicro())
		case "ts_ns":
			return num(ct.UnixNano())
		case "snapshot":
			if src.Snapshot == "" {
				return "false", true, false
			}
			return src.Snapshot, true, false
		case "db":
			return e.opts.Database, true, false
		case "sequence":
			return string(appendSequence(nil, src, `"`)), true, false
		case "schema":
			return e.table.Schema, true, false
		case "table":
			return e.table.Name, true, false
		case "txId":
			return optNum(uint64(src.TxID))
		case "lsn":
			return optNum(src.LSN)
		}
	}
	return "", false, true // xmin, origin, origin_lsn: always null
}

// ChangedFields sorts the value fields of a change into those whose values differ between before
// and after and those equal in both, as Debezium's ExtractChangedRecordState compares the two
// structs (a null differs from any value, the column default included). The names are the
// value's field names (field.name.adjustment.mode applied).
func (e *Encoder) ChangedFields(before, after []Datum) (changed, unchanged []string, err error) {
	if len(before) != len(e.cols) || len(after) != len(e.cols) {
		return nil, nil, fmt.Errorf("%s.%s: row images do not have the table's %d columns", e.table.Schema, e.table.Name, len(e.cols))
	}
	var a, b []byte
	for i := range e.cols {
		if e.table.Columns[i].Omit {
			continue
		}
		an, bn := e.nullValue(i, after[i]), e.nullValue(i, before[i])
		same := an == bn
		if same && !an {
			if a, err = e.appendValueDatum(a[:0], i, after[i]); err != nil {
				return nil, nil, err
			}
			if b, err = e.appendValueDatum(b[:0], i, before[i]); err != nil {
				return nil, nil, err
			}
			same = string(a) == string(b)
		}
		if same {
			unchanged = append(unchanged, e.fieldNames[i])
		} else {
			changed = append(changed, e.fieldNames[i])
		}
	}
	return changed, unchanged, nil
}

// nullValue reports whether Debezium's value of column i is null for d (the JsonConverter may
// still write the column default for it).
func (e *Encoder) nullValue(i int, d Datum) bool {
	if d.Kind != DatumNull && d.Kind != DatumAbsent {
		return false
	}
	if cm := e.mappers[i]; cm != nil && cm.m.Kind == MaskChars {
		return false
	}
	return e.table.Columns[i].Optional
}
