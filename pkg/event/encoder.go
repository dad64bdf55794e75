package event

import (
	"fmt"
	"strconv"
	"time"
)

// Encoder encodes events of one Table version. It precomputes the key and
// value schema JSON once; AppendKey/AppendValue only write payloads. An
// Encoder is not safe for concurrent use (it reuses scratch buffers); create
// one per goroutine or guard it.
type Encoder struct {
	opts  Options
	table Table
	topic string
	ph    string

	cols          []*codec
	colNames      [][]byte // `"name":` per column, JSON-escaped (field.name.adjustment.mode applied)
	fieldNames    []string // field name per column (field.name.adjustment.mode applied)
	key           []int
	mappers       []*colMapper   // per column: the column mapper changing its values; nil: none
	row           *connectSchema // the Value struct (the columns not omitted)
	keySchemaName string
	keyExtra      []byte // `,"name":"value"` of Table.KeyFields

	keyPrefix []byte // `{"schema":...,"payload":{` or `{`
	keySuffix []byte // `}}` or `}`
	valPrefix []byte // `{"schema":...,"payload":{"before":` or `{"before":`
	valSuffix []byte
	srcHead   []byte // `{"version":...,"connector":"postgresql","name":...,"ts_ms":`
	dbSeq     []byte // `,"db":"...","sequence":`
	srcTable  []byte // `,"schema":"...","table":"...","txId":`
	srcMemo   sourceMemo

	s scratch
}

// NewEncoder builds the encoder for one table version. It fails, naming
// schema.table, column and type, when a column type cannot be mapped (unless
// opts.UnknownTypesAsText), or when a key index is out of range.
func NewEncoder(opts Options, t Table) (*Encoder, error) {
	if opts.UnavailableValue == "" {
		opts.UnavailableValue = DefaultUnavailableValue
	}
	switch opts.TimePrecision {
	case "", "adaptive", "adaptive_time_microseconds", "connect", "isostring", "microseconds", "nanoseconds":
	default:
		return nil, fmt.Errorf("unknown time precision mode %q", opts.TimePrecision)
	}
	switch opts.IntervalHandling {
	case "", "numeric", "string":
	default:
		return nil, fmt.Errorf("unknown interval handling mode %q", opts.IntervalHandling)
	}
	schemaNames, err := newNameAdjuster(opts.SchemaNameAdjustment, false)
	if err != nil {
		return nil, err
	}
	fieldNames, err := newNameAdjuster(opts.FieldNameAdjustment, true)
	if err != nil {
		return nil, err
	}
	e := &Encoder{opts: opts, table: t, ph: opts.UnavailableValue}
	e.topic = SanitizeTopic(opts.TopicPrefix + "." + t.Schema + "." + t.Name)
	// Debezium names the record schemas after the (sanitized) topic, then applies
	// schema.name.adjustment.mode (TableSchemaBuilder.create); field names go through
	// field.name.adjustment.mode. A Table.SchemaName (ByLogicalTableRouter) replaces the
	// topic-derived prefix: the transform renames the schemas after the connector built them,
	// with its own schema.name.adjustment.mode (default none), so that name is used as given.
	schemaName := func(suffix string) string { return schemaNames.adjust(e.topic + suffix) }
	if t.SchemaName != "" {
		schemaName = func(suffix string) string { return t.SchemaName + suffix }
	}

	valueFields := make([]connectField, 0, len(t.Columns))
	e.mappers = make([]*colMapper, len(t.Columns))
	for i, c := range t.Columns {
		cd, err := e.codecFor(c)
		if err != nil {
			return nil, err
		}
		sc := cd.schema.withOptional(c.Optional)
		if c.HasDefault {
			var dv []byte
			switch {
			case c.Default != nil:
				// A default Debezium cannot convert is left out of the schema (it logs
				// "Cannot parse column default value" and goes on).
				if dv, err = cd.appendValue(nil, c.Default, &e.s); err != nil {
					dv = nil
				}
			case !c.Optional:
				dv = cd.appendFallback(nil)
			}
			sc.dflt = dv
		}
		cd.schema = sc
		e.cols = append(e.cols, cd)
		name := fieldNames.adjust(c.Name)
		e.fieldNames = append(e.fieldNames, name)
		e.colNames = append(e.colNames, append(appendJSONString(nil, name), ':'))
		if !c.Omit {
			// The key keeps the column's own schema; the value's carries the mapper's parameter.
			var vs *connectSchema
			e.mappers[i], vs = prepareMapper(c, sc)
			valueFields = append(valueFields, connectField{name, vs})
		}
	}
	for _, k := range t.Key {
		if k < 0 || k >= len(t.Columns) {
			return nil, fmt.Errorf("%s.%s: key column index %d out of range", t.Schema, t.Name, k)
		}
	}
	e.key = append([]int(nil), t.Key...)

	// key
	if len(e.key) > 0 {
		e.keySchemaName = schemaName(".Key")
		ks := &connectSchema{typ: "struct", name: e.keySchemaName}
		for _, k := range e.key {
			// The key's fields: the column's own schema (no mapper parameter), omitted or not.
			ks.fields = append(ks.fields, connectField{e.fieldNames[k], e.cols[k].schema})
		}
		for _, f := range t.KeyFields {
			ks.fields = append(ks.fields, connectField{f.Name, strReq})
			e.keyExtra = append(e.keyExtra, ',')
			e.keyExtra = appendJSONString(e.keyExtra, f.Name)
			e.keyExtra = append(e.keyExtra, ':')
			e.keyExtra = appendJSONString(e.keyExtra, f.Value)
		}
		if opts.KeySchemas {
			e.keyPrefix = append(e.keyPrefix, `{"schema":`...)
			e.keyPrefix = appendSchemaJSON(e.keyPrefix, ks, "")
			e.keyPrefix = append(e.keyPrefix, `,"payload":{`...)
			e.keySuffix = []byte("}}")
		} else {
			e.keyPrefix = []byte("{")
			e.keySuffix = []byte("}")
		}
	}

	// value envelope
	row := &connectSchema{typ: "struct", optional: true, name: schemaName(".Value"), fields: valueFields}
	e.row = row
	env := &connectSchema{
		typ: "struct", name: schemaName(".Envelope"), version: envelopeVersion,
		fields: []connectField{
			{"before", row}, {"after", row}, {"source", sourceSchema},
			{"transaction", transactionSchema},
			{"op", strReq}, {"ts_ms", int64Opt}, {"ts_us", int64Opt}, {"ts_ns", int64Opt},
		},
	}
	if opts.ValueSchemas {
		e.valPrefix = append(e.valPrefix, `{"schema":`...)
		e.valPrefix = appendSchemaJSON(e.valPrefix, env, "")
		e.valPrefix = append(e.valPrefix, `,"payload":{"before":`...)
		e.valSuffix = []byte("}}")
	} else {
		e.valPrefix = []byte(`{"before":`)
		e.valSuffix = []byte("}")
	}
	b := []byte(`{"version":`)
	b = appendJSONString(b, opts.Version)
	b = append(b, `,"connector":"postgresql","name":`...)
	b = appendJSONString(b, opts.TopicPrefix)
	b = append(b, `,"ts_ms":`...)
	e.srcHead = b
	b = []byte(`,"db":`)
	b = appendJSONString(b, opts.Database)
	b = append(b, `,"sequence":`...)
	e.dbSeq = b
	b = []byte(`,"schema":`)
	b = appendJSONString(b, t.Schema)
	b = append(b, `,"table":`...)
	b = appendJSONString(b, t.Name)
	b = append(b, `,"txId":`...)
	e.srcTable = b
	return e, nil
}

// Topic returns "<prefix>.<schema>.<table>" sanitized like Debezium.
func (e *Encoder) Topic() string { return e.topic }

// Table returns the table this encoder was built for.
func (e *Encoder) Table() Table { return e.table }

// HasKey reports whether records of this table carry a (non-null) key.
func (e *Encoder) HasKey() bool { return len(e.key) > 0 }

// AppendKey appends the Kafka record key (JsonConverter bytes) for the row to
// dst; it returns dst unchanged and ok=false when the table has no key (null
// key). row holds all columns of the table (only the key columns are read).
func (e *Encoder) AppendKey(dst []byte, row []Datum) (out []byte, ok bool, err error) {
	if len(e.key) == 0 {
		return dst, false, nil
	}
	if len(row) != len(e.cols) {
		return dst, false, fmt.Errorf("%s.%s: row has %d columns, table has %d", e.table.Schema, e.table.Name, len(row), len(e.cols))
	}
	start := len(dst)
	dst = append(dst, e.keyPrefix...)
	for i, k := range e.key {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e.colNames[k]...)
		if dst, err = e.appendDatum(dst, k, row[k]); err != nil {
			return dst[:start], false, err
		}
	}
	dst = append(dst, e.keyExtra...)
	return append(dst, e.keySuffix...), true, nil
}

// AppendValue appends the full value envelope. before/after may be nil (=>
// JSON null). now is the processing time (envelope ts_ms/ts_us/ts_ns).
func (e *Encoder) AppendValue(dst []byte, op Op, before, after []Datum, src Source, tx *Transaction, now time.Time) ([]byte, error) {
	start := len(dst)
	out, err := e.AppendValueBody(append(dst, e.valPrefix...), op, before, after, src, tx, now)
	if err != nil {
		return dst[:start], err
	}
	return out, nil
}

// ValuePrefix is what every value of this encoder starts with: with value schemas the whole schema
// and `,"payload":{"before":`, else `{"before":`. It is built once per relation version and never
// changes, so records may share it instead of copying it (kafkasink.Record.ValuePrefix); the
// caller must not modify it.
func (e *Encoder) ValuePrefix() []byte { return e.valPrefix[:len(e.valPrefix):len(e.valPrefix)] }

// AppendValueBody appends the value of AppendValue without its ValuePrefix.
func (e *Encoder) AppendValueBody(dst []byte, op Op, before, after []Datum, src Source, tx *Transaction, now time.Time) ([]byte, error) {
	start := len(dst)
	var err error
	if dst, err = e.appendRow(dst, before); err != nil {
		return dst[:start], err
	}
	dst = append(dst, `,"after":`...)
	if dst, err = e.appendRow(dst, after); err != nil {
		return dst[:start], err
	}
	dst = append(dst, `,"source":`...)
	dst = e.appendSource(dst, src, now)
	// Debezium 3.6 (checked against a live run): ..., xmin, origin, origin_lsn; then the
	// envelope's transaction block comes before op and the processing timestamps.
	dst = append(dst, `,"transaction":`...)
	if tx == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"id":`...)
		dst = appendJSONString(dst, tx.ID)
		dst = append(dst, `,"total_order":`...)
		dst = strconv.AppendInt(dst, tx.TotalOrder, 10)
		dst = append(dst, `,"data_collection_order":`...)
		dst = strconv.AppendInt(dst, tx.DataCollectionOrder, 10)
		dst = append(dst, '}')
	}
	if op == 0 {
		return dst[:start], fmt.Errorf("%s.%s: missing op", e.table.Schema, e.table.Name)
	}
	dst = append(dst, `,"op":"`...)
	dst = append(dst, byte(op))
	dst = append(dst, `","ts_ms":`...)
	dst = strconv.AppendInt(dst, now.UnixMilli(), 10)
	dst = append(dst, `,"ts_us":`...)
	dst = strconv.AppendInt(dst, now.UnixMicro(), 10)
	dst = append(dst, `,"ts_ns":`...)
	dst = strconv.AppendInt(dst, now.UnixNano(), 10)
	return append(dst, e.valSuffix...), nil
}

func (e *Encoder) appendRow(dst []byte, row []Datum) ([]byte, error) {
	if row == nil {
		return append(dst, "null"...), nil
	}
	if len(row) != len(e.cols) {
		return dst, fmt.Errorf("%s.%s: row has %d columns, table has %d", e.table.Schema, e.table.Name, len(row), len(e.cols))
	}
	dst = append(dst, '{')
	var err error
	first := true
	for i := range e.cols {
		if e.table.Columns[i].Omit {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, e.colNames[i]...)
		if dst, err = e.appendValueDatum(dst, i, row[i]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// appendValueDatum appends column i's value in the event value: mapped when the column has a
// mapper that changes values.
func (e *Encoder) appendValueDatum(dst []byte, i int, d Datum) ([]byte, error) {
	if e.mappers[i] != nil {
		return e.appendMapped(dst, i, d)
	}
	return e.appendDatum(dst, i, d)
}

func (e *Encoder) appendDatum(dst []byte, i int, d Datum) ([]byte, error) {
	cd := e.cols[i]
	switch d.Kind {
	case DatumText:
		out, err := cd.appendValue(dst, d.Text, &e.s)
		if err != nil {
			return dst, e.valueError(i, d.Text, err)
		}
		return out, nil
	case DatumUnchanged:
		return cd.appendPlaceholder(dst), nil
	default: // DatumNull, DatumAbsent
		// Kafka Connect's JsonConverter (replace.null.with.default=true, its
		// default) writes a field's schema default in place of a null, so a NULL
		// in a column with a default reads as the default.
		if cd.schema.dflt != nil {
			return append(dst, cd.schema.dflt...), nil
		}
		if e.table.Columns[i].Optional {
			return append(dst, "null"...), nil
		}
		// JdbcValueConverters.convertValue: NOT NULL column without default => fallback
		return cd.appendFallback(dst), nil
	}
}

func (e *Encoder) valueError(i int, text []byte, err error) error {
	c := e.table.Columns[i]
	if c.Mapper != nil { // a masked column's value never reaches a log
		// Nor does the parser's message, which may quote it.
		return fmt.Errorf("%s.%s column %q (%s): invalid value (not shown: the column is masked or truncated)", e.table.Schema, e.table.Name, c.Name, c.TypeName)
	}
	t := text
	suffix := ""
	if len(t) > 64 {
		t = t[:64]
		suffix = "..."
	}
	return fmt.Errorf("%s.%s column %q (%s): invalid value %q%s: %w", e.table.Schema, e.table.Name, c.Name, c.TypeName, t, suffix, err)
}
