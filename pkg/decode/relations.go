package decode

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/pkg/event"
)

// Relation is one captured relation at one schema version, ready to encode events.
type Relation struct {
	ID      uint32
	Table   event.Table
	Encoder *event.Encoder
	Key     []int  // indexes of the key columns in Table.Columns (as in Table.Key)
	Name    string // "<schema>.<table>"

	keyCap, valueCap int // sizes of the last event, to allocate its successor's buffers once
}

// Buffers returns new key and value buffers sized for this relation's events. Every record owns
// its bytes until Kafka acknowledges it, so buffers are not reused; sizing them from the previous
// event avoids growing them byte by byte (a measured 10-15% of the CPU with schemas).
func (r *Relation) Buffers() (key, value []byte) {
	if r.keyCap == 0 {
		r.keyCap, r.valueCap = 64, 512
	}
	return make([]byte, 0, r.keyCap), make([]byte, 0, r.valueCap)
}

// Observe records the sizes of an event just encoded.
func (r *Relation) Observe(keyLen, valueLen int) {
	r.keyCap, r.valueCap = keyLen+keyLen/8+8, valueLen+valueLen/8+64
}

// Relations caches Relation entries by OID. It is used by one goroutine (the stream).
type Relations struct {
	catalog Catalog
	opts    event.Options
	byID    map[uint32]*Relation
}

// NewRelations returns an empty cache that builds encoders with opts.
func NewRelations(catalog Catalog, opts event.Options) *Relations {
	return &Relations{catalog: catalog, opts: opts, byID: map[uint32]*Relation{}}
}

// Update rebuilds the entry of the relation a Relation message describes.
func (r *Relations) Update(ctx context.Context, m *pglogrepl.RelationMessage) (*Relation, error) {
	cat, err := r.catalog.Describe(ctx, m.RelationID)
	if err != nil {
		return nil, err
	}
	t, err := BuildTable(m, cat)
	if err != nil {
		return nil, err
	}
	enc, err := event.NewEncoder(r.opts, t)
	if err != nil {
		return nil, err
	}
	rel := &Relation{ID: m.RelationID, Table: t, Encoder: enc, Key: t.Key, Name: t.Schema + "." + t.Name}
	r.byID[m.RelationID] = rel
	return rel, nil
}

// Get returns the entry of relID; a change for a relation no Relation message described is a
// protocol violation.
func (r *Relations) Get(relID uint32) (*Relation, error) {
	rel, ok := r.byID[relID]
	if !ok {
		return nil, fmt.Errorf("decode: change for relation %d before its Relation message", relID)
	}
	return rel, nil
}

// Reset forgets every relation (after a reconnect PostgreSQL sends them again).
func (r *Relations) Reset() { clear(r.byID) }

// BuildTable joins a Relation message (column order and types of the tuples that follow) with
// the catalog (names, NOT NULL, key).
func BuildTable(m *pglogrepl.RelationMessage, cat CatalogTable) (event.Table, error) {
	t := event.Table{Schema: m.Namespace, Name: m.RelationName}
	byName := make(map[string]*CatalogColumn, len(cat.Columns))
	for i := range cat.Columns {
		byName[cat.Columns[i].Name] = &cat.Columns[i]
	}
	pos := make(map[string]int, len(m.Columns))
	for i, c := range m.Columns {
		col := event.Column{Name: c.Name, TypeOID: c.DataType, TypeMod: c.TypeModifier, Optional: true}
		if cc := byName[c.Name]; cc != nil && cc.TypeOID == c.DataType {
			col.TypeName = cc.TypeName
			col.Optional = !cc.NotNull
			col.EnumValues = cc.EnumValues
			if cc.TypeMod != -1 {
				col.TypeMod = cc.TypeMod // a domain's typmod (the message carries the column's, -1)
			}
			if cc.HasDefault && cc.Domain == "" {
				col.Default, col.HasDefault = columnDefault(cc.TypeName, cc.EnumValues != nil && len(cc.EnumValues) > 0, cc.DefaultExpr)
			}
		} else {
			// The catalog moved on (a later ALTER): fall back to the type name of the OID.
			name, ok := builtinTypeName(c.DataType)
			if !ok {
				return t, fmt.Errorf("decode: %s.%s column %q: type OID %d changed since this change was written and is not a built-in type", m.Namespace, m.RelationName, c.Name, c.DataType)
			}
			col.TypeName = name
		}
		pos[c.Name] = i
		t.Columns = append(t.Columns, col)
	}
	for _, k := range cat.Key {
		i, ok := pos[k]
		if !ok {
			return t, fmt.Errorf("decode: %s.%s: key column %q is not among the published columns (a column list on the publication must include the key)", m.Namespace, m.RelationName, k)
		}
		// A primary key column is NOT NULL; a unique index's column keeps its optionality, as in
		// Debezium (a key field may be optional).
		if cat.PrimaryKey {
			t.Columns[i].Optional = false
		}
		t.Key = append(t.Key, i)
	}
	return t, nil
}

// Row converts tuple columns into datums. A nil tuple yields nil.
func Row(dst []event.Datum, tuple *pglogrepl.TupleData) ([]event.Datum, error) {
	if tuple == nil {
		return nil, nil
	}
	dst = dst[:0]
	for i, c := range tuple.Columns {
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			dst = append(dst, event.Datum{Kind: event.DatumNull})
		case pglogrepl.TupleDataTypeToast:
			dst = append(dst, event.Datum{Kind: event.DatumUnchanged})
		case pglogrepl.TupleDataTypeText:
			dst = append(dst, event.Datum{Kind: event.DatumText, Text: c.Data})
		default:
			return nil, fmt.Errorf("decode: column %d has tuple data kind %q (binary transfer is not requested)", i, c.DataType)
		}
	}
	return dst, nil
}

// SetCatalog replaces the catalog (after the catalog connection was re-established).
func (r *Relations) SetCatalog(c Catalog) { r.catalog = c }
