package route

import (
	"fmt"
	"slices"

	"github.com/pgcdc/pgcdc/internal/dbzopt"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

// Unwrap configures the flattened format: Debezium's ExtractNewRecordState transform
// (io.debezium.transforms.ExtractNewRecordState), which replaces each change event's envelope
// by its row for sinks that want rows (JDBC sinks, search indexes):
//
//   - a create, update or snapshot read becomes its after row (plus __deleted "false" in the
//     rewrite modes, plus the added fields);
//   - a delete, by Delete: dropped (drop); a record whose value has no row (tombstone, the
//     default: {"schema":<row schema>,"payload":null}, or null without value schemas, which is not
//     a Kafka tombstone); its before row with __deleted "true" (rewrite, rewrite-with-tombstone); a
//     Kafka tombstone (delete-to-tombstone);
//   - the tombstone after a delete is kept only in rewrite-with-tombstone;
//   - truncate events are dropped; logical decoding messages, transaction metadata and
//     heartbeats are not change events and stay as they are.
//
// Fields are added to the row (add.fields) and Headers to every record (add.headers; a tombstone
// gets only the op header, "d"). DropFieldsHeader names the ExtractChangedRecordState header
// (Options.ChangedHeader or UnchangedHeader) whose fields are left out of the row
// (drop.fields.header.name), and of the key with DropFieldsFromKey; with
// DropKeepSchemaCompatible only optional fields are.
type Unwrap struct {
	Delete                   dbzopt.DeleteHandling
	Fields                   []event.FlatField
	Headers                  []event.FlatField
	DropFieldsHeader         string
	DropFieldsFromKey        bool
	DropKeepSchemaCompatible bool
}

// UnwrapOptions are ExtractNewRecordState's options as Debezium names them.
type UnwrapOptions struct {
	DeleteTombstoneHandlingMode    string   // delete.tombstone.handling.mode
	AddFields                      []string // add.fields
	AddFieldsPrefix                string   // add.fields.prefix (Debezium's default "__")
	AddHeaders                     []string // add.headers
	AddHeadersPrefix               string   // add.headers.prefix (Debezium's default "__")
	DropFieldsHeaderName           string   // drop.fields.header.name
	DropFieldsFromKey              bool     // drop.fields.from.key
	DropFieldsKeepSchemaCompatible bool     // drop.fields.keep.schema.compatible (Debezium's default true)
}

// NewUnwrap checks and parses o. changedHeader and unchangedHeader are the
// ExtractChangedRecordState headers pgcdc writes: drop.fields.header.name must name one of them.
// Errors name the Debezium option.
func NewUnwrap(o UnwrapOptions, changedHeader, unchangedHeader string) (*Unwrap, error) {
	u := &Unwrap{DropFieldsHeader: o.DropFieldsHeaderName, DropFieldsFromKey: o.DropFieldsFromKey, DropKeepSchemaCompatible: o.DropFieldsKeepSchemaCompatible}
	var err error
	if u.Delete, err = dbzopt.ParseDeleteHandling(o.DeleteTombstoneHandlingMode); err != nil {
		return nil, fmt.Errorf("delete.tombstone.handling.mode: %w", err)
	}
	for _, l := range []struct {
		name   string
		prefix string
		list   []string
		out    *[]event.FlatField
	}{{"add.fields", o.AddFieldsPrefix, o.AddFields, &u.Fields}, {"add.headers", o.AddHeadersPrefix, o.AddHeaders, &u.Headers}} {
		refs, err := dbzopt.ParseFieldRefs(l.prefix, l.list)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
		for _, ref := range refs {
			*l.out = append(*l.out, event.FlatField{Struct: ref.Struct, Field: ref.Field, Name: ref.Name})
		}
	}
	if h := u.DropFieldsHeader; h != "" && h != changedHeader && h != unchangedHeader {
		return nil, fmt.Errorf("drop.fields.header.name: %q is not a header pgcdc writes: name the header of ExtractChangedRecordState's changed or unchanged fields", h)
	}
	// An unknown field is an error now rather than at the first event.
	probe, err := event.NewEncoder(event.Options{}, event.Table{})
	if err == nil {
		_, err = event.NewFlat(probe, event.FlatOptions{Fields: append(slices.Clone(u.Fields), u.Headers...)})
	}
	if err != nil {
		return nil, fmt.Errorf("add.fields/add.headers: %w", err)
	}
	return u, nil
}

// flatEncoder returns the flattened encoding of a table when the format is unwrapped.
func (r *Router) flatEncoder(enc *event.Encoder) (*event.Flat, error) {
	u := r.opts.Unwrap
	if u == nil {
		return nil, nil
	}
	return event.NewFlat(enc, event.FlatOptions{Deleted: u.Delete.Rewrites(), Fields: u.Fields, DropKeepSchemaCompatible: u.DropKeepSchemaCompatible})
}

// unwrapRecords appends the records ExtractNewRecordState leaves of one change event with its
// headers evHeaders. Its tombstone shares them (see build), added headers included, and gets
// its own op header besides.
func (r *Router) unwrapRecords(recs []kafkasink.Record, t *table, ch *decode.Change, b built, evHeaders []kafkasink.Header, changed, unchanged []string) ([]kafkasink.Record, error) {
	u := r.opts.Unwrap
	var drop []string
	switch u.DropFieldsHeader {
	case "":
	case r.opts.ChangedHeader:
		drop = changed
	case r.opts.UnchangedHeader:
		drop = unchanged
	}
	key := b.key
	if u.DropFieldsFromKey && len(drop) > 0 && key != nil {
		keyRow := b.after
		if keyRow == nil {
			keyRow = b.before
		}
		var err error
		if key, _, err = t.flat.AppendKey(nil, keyRow, drop); err != nil {
			return recs, err
		}
	}
	record := func(key, value []byte, headers []kafkasink.Header) kafkasink.Record {
		return kafkasink.Record{Topic: t.topic, Key: key, Value: value, Headers: headers, Table: t.rel.Name, LSN: ch.LSN}
	}
	var value []byte
	var err error
	switch {
	case b.op != event.OpDelete:
		value, err = t.flat.AppendValue(make([]byte, 0, t.valueCap), b.op, b.after, b.src, b.tx, b.now, drop)
	case u.Delete == dbzopt.DeleteDrop:
		return recs, nil // the tombstone goes too
	case u.Delete == dbzopt.DeleteTombstone || b.before == nil:
		value = t.flat.AppendNull(nil)
	case u.Delete == dbzopt.DeleteToTombstone:
		value = nil
	default: // rewrite, rewrite-with-tombstone
		value, err = t.flat.AppendValue(make([]byte, 0, t.valueCap), b.op, b.before, b.src, b.tx, b.now, drop)
	}
	if err != nil {
		return recs, err
	}
	if len(value) > 0 {
		t.valueCap = len(value) + len(value)/8 + 64
	}
	evHeaders = r.addHeaders(t, evHeaders, b, false)
	recs = append(recs, record(key, value, evHeaders))
	if b.op == event.OpDelete && r.opts.TombstonesOnDelete && b.key != nil && u.Delete == dbzopt.DeleteRewriteWithTombstone {
		recs = append(recs, record(b.key, nil, r.addHeaders(t, evHeaders, b, true)))
	}
	return recs, nil
}

// addHeaders appends the add.headers of a record: for a tombstone only the op header ("d").
func (r *Router) addHeaders(t *table, headers []kafkasink.Header, b built, tombstone bool) []kafkasink.Header {
	u := r.opts.Unwrap
	if len(u.Headers) == 0 {
		return headers
	}
	out := headers[:len(headers):len(headers)]
	for _, h := range u.Headers {
		switch {
		case !tombstone:
			out = append(out, kafkasink.Header{Key: h.Name, Value: t.flat.HeaderValue(h, b.op, b.src, b.tx, b.now)})
		case h.Struct == "" && h.Field == "op":
			out = append(out, kafkasink.Header{Key: h.Name, Value: []byte("d")})
		}
	}
	return out
}
