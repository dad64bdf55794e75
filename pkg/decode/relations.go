package decode

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/pkg/event"
)

// Relation is one captured relation at one schema version: the columns and types of the changes
// that follow its Relation message, as they were when those changes were written.
type Relation struct {
	ID    uint32
	Table event.Table
	Key   []int  // indexes of the key columns in Table.Columns (as in Table.Key)
	Name  string // "<schema>.<table>"
	Root  string // the partitioned table ("schema.table") a partition belongs to; "" otherwise

	msg      *pglogrepl.RelationMessage // what it was built from (a refresh rebuilds from it)
	enumCols []int                      // columns of an enum type: a value outside its labels means they changed since
}

// Relations caches Relation entries by OID. It is used by one goroutine (the pipeline).
type Relations struct {
	catalog Catalog
	byID    map[uint32]*Relation
	types   map[uint32]string // Type messages: the schema-qualified name of each non-built-in type OID
}

// NewRelations returns an empty cache that describes relations with catalog.
func NewRelations(catalog Catalog) *Relations {
	return &Relations{catalog: catalog, byID: map[uint32]*Relation{}, types: map[uint32]string{}}
}

// Update rebuilds the entry of the relation a Relation message describes. The message carries
// each column's name, type OID and type modifier as they were when the changes that follow were
// written; the catalog adds what the message lacks (type names, NOT NULL, defaults, enum labels,
// the key), for the columns whose type is still the same.
func (r *Relations) Update(ctx context.Context, m *pglogrepl.RelationMessage) (*Relation, error) {
	cat, err := r.catalog.Describe(ctx, m.RelationID)
	if errors.Is(err, pgx.ErrNoRows) {
		// Dropped since the change was written (decoding lags the DDL): the message alone says
		// what the columns were; every column nullable, no defaults, the key from the replica
		// identity flags, and a partition's root unknown.
		cat, err = CatalogTable{Schema: m.Namespace, Name: m.RelationName, Dropped: true}, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := BuildTable(m, cat, func(oid uint32) (CatalogType, error) { return r.describeType(ctx, oid) })
	if err != nil {
		return nil, err
	}
	rel := &Relation{ID: m.RelationID, Table: t, Key: t.Key, Name: t.Schema + "." + t.Name, Root: cat.Root, msg: m}
	for i, c := range t.Columns {
		if len(c.EnumValues) > 0 && c.TypeName[0] != '_' {
			rel.enumCols = append(rel.enumCols, i)
		}
	}
	r.byID[m.RelationID] = rel
	return rel, nil
}

// Type records a Type message: the name of a non-built-in type used by the relations that follow.
func (r *Relations) Type(m *pglogrepl.TypeMessage) {
	r.types[m.DataType] = m.Namespace + "." + m.Name
}

// describeType resolves a type the catalog column no longer has: from the catalog by OID, or,
// for a type dropped since, by the name its Type message gave (an unknown type then).
func (r *Relations) describeType(ctx context.Context, oid uint32) (CatalogType, error) {
	t, err := r.catalog.DescribeType(ctx, oid)
	if err == nil {
		return t, nil
	}
	if name, ok := r.types[oid]; ok && errors.Is(err, pgx.ErrNoRows) {
		return CatalogType{TypeName: name, TypeMod: -1}, nil
	}
	return t, err
}

// Refresh rebuilds rel from its Relation message with the catalog as it is now: after an enum
// value outside the labels read earlier (ALTER TYPE ... ADD VALUE since).
func (r *Relations) Refresh(ctx context.Context, rel *Relation) (*Relation, error) {
	if rel.msg == nil {
		return rel, nil
	}
	return r.Update(ctx, rel.msg)
}

// Stale reports whether row holds an enum value its relation's labels lack: the labels were read
// before the value was added.
func (rel *Relation) Stale(row []event.Datum) bool {
	for _, i := range rel.enumCols {
		if i >= len(row) || row[i].Kind != event.DatumText {
			continue
		}
		if !slices.Contains(rel.Table.Columns[i].EnumValues, string(row[i].Text)) {
			return true
		}
	}
	return false
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
func (r *Relations) Reset() {
	clear(r.byID)
	clear(r.types)
}

// TypeResolver describes a type by OID (for columns whose type changed since the change was
// written); nil resolves built-in types only.
type TypeResolver func(oid uint32) (CatalogType, error)

// BuildTable joins a Relation message (column order, types and type modifiers of the tuples that
// follow, as of those changes) with the catalog (type names, NOT NULL, defaults, enum labels, the
// key).
func BuildTable(m *pglogrepl.RelationMessage, cat CatalogTable, types TypeResolver) (event.Table, error) {
	t := event.Table{Schema: m.Namespace, Name: m.RelationName}
	byName := make(map[string]*CatalogColumn, len(cat.Columns))
	for i := range cat.Columns {
		byName[cat.Columns[i].Name] = &cat.Columns[i]
	}
	pos := make(map[string]int, len(m.Columns))
	for i, c := range m.Columns {
		// The type and its modifier as the change was written: numeric(10,2) stays (10,2) after an
		// ALTER COLUMN ... TYPE numeric(12,4), for the changes written before it.
		col := event.Column{Name: c.Name, TypeOID: c.DataType, TypeMod: c.TypeModifier, Optional: true}
		if cc := byName[c.Name]; cc != nil && cc.TypeOID == c.DataType {
			col.TypeName = cc.TypeName
			col.Optional = !cc.NotNull
			col.EnumValues = cc.EnumValues
			if col.TypeMod == -1 {
				col.TypeMod = cc.TypeMod // a domain's typmod (a domain column's own is -1)
			}
			if cc.HasDefault && cc.Domain == "" {
				col.Default, col.HasDefault = columnDefault(cc.TypeName, cc.EnumValues != nil && len(cc.EnumValues) > 0, cc.DefaultExpr)
			}
		} else if name, ok := builtinTypeName(c.DataType); ok {
			// The catalog moved on (a later ALTER or rename): the column as it was, nullable,
			// without a default (what it had then is not known).
			col.TypeName = name
		} else {
			if types == nil {
				return t, fmt.Errorf("decode: %s.%s column %q: type OID %d changed since this change was written and is not a built-in type", m.Namespace, m.RelationName, c.Name, c.DataType)
			}
			ct, err := types(c.DataType)
			if err != nil {
				return t, fmt.Errorf("decode: %s.%s column %q: type OID %d (the column's type when the change was written): %w", m.Namespace, m.RelationName, c.Name, c.DataType, err)
			}
			col.TypeName, col.EnumValues = ct.TypeName, ct.EnumValues
			if col.TypeMod == -1 {
				col.TypeMod = ct.TypeMod
			}
		}
		pos[c.Name] = i
		t.Columns = append(t.Columns, col)
	}
	key, primary, err := keyColumns(m, cat, pos)
	if err != nil {
		return t, err
	}
	for _, i := range key {
		// A primary key column is NOT NULL; a unique index's column keeps its optionality, as in
		// Debezium (a key field may be optional).
		if primary {
			t.Columns[i].Optional = false
		}
	}
	t.Key = key
	return t, nil
}

// keyColumns are the key columns' positions in the message: the catalog's key (the primary key,
// else the first unique index, as Debezium takes it) when all its columns are in the message;
// otherwise (the key columns were renamed or changed since) the replica identity columns the
// message flags, which are the key as of the change under REPLICA IDENTITY DEFAULT or USING INDEX.
func keyColumns(m *pglogrepl.RelationMessage, cat CatalogTable, pos map[string]int) (key []int, primary bool, err error) {
	missing := ""
	if cat.Dropped {
		missing = "(the table was dropped since)"
	}
	for _, k := range cat.Key {
		i, ok := pos[k]
		if !ok {
			missing = k
			break
		}
		key = append(key, i)
	}
	if missing == "" {
		return key, cat.PrimaryKey, nil
	}
	key = key[:0]
	if m.ReplicaIdentity != 'f' && m.ReplicaIdentity != 'n' {
		for i, c := range m.Columns {
			if c.Flags&1 != 0 {
				key = append(key, i)
			}
		}
	}
	if len(key) == 0 && cat.Dropped {
		return nil, false, nil // no key known (REPLICA IDENTITY FULL or NOTHING): keyless, as Debezium without a key
	}
	if len(key) == 0 {
		return nil, false, fmt.Errorf("decode: %s.%s: key column %q is not among the published columns (a column list on the publication must include the key)", m.Namespace, m.RelationName, missing)
	}
	return key, m.ReplicaIdentity == 'd', nil
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
