package decode

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/pkg/event"
)

// Relation is one captured relation at one schema version.
type Relation struct {
	ID    uint32
	Table event.Table
	Key   []int  // indexes of the key columns in Table.Columns (as in Table.Key)
	Name  string // "<schema>.<table>"
}

// Relations caches Relation entries by OID. It is used by one goroutine (the pipeline).
type Relations struct {
	catalog Catalog
	byID    map[uint32]*Relation
}

// NewRelations returns an empty cache that describes relations with catalog.
func NewRelations(catalog Catalog) *Relations {
	return &Relations{catalog: catalog, byID: map[uint32]*Relation{}}
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
	rel := &Relation{ID: m.RelationID, Table: t, Key: t.Key, Name: t.Schema + "." + t.Name}
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
