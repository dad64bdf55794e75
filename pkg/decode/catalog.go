package decode

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CatalogColumn is what the catalog says about one column of a relation.
type CatalogColumn struct {
	Name       string
	TypeOID    uint32
	TypeName   string
	TypeMod    int32
	NotNull    bool
	EnumValues []string // labels in sort order when the type (or array element type) is an enum
}

// CatalogTable is what the catalog says about one relation.
type CatalogTable struct {
	Schema, Name string
	Columns      []CatalogColumn
	Key          []string // key column names in key order; empty when the table has none
	Identity     byte     // relreplident: 'd' default, 'f' full, 'i' index, 'n' nothing
}

// Catalog describes relations by OID.
type Catalog interface {
	Describe(ctx context.Context, relID uint32) (CatalogTable, error)
}

// Querier is the part of *pgx.Conn the catalog needs.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PGCatalog reads the system catalog through a regular (non-replication) connection.
type PGCatalog struct{ Conn Querier }

const describeTableSQL = `
SELECT n.nspname, c.relname, c.relreplident::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1`

const describeColumnsSQL = `
SELECT a.attname, a.atttypid::int8, t.typname, a.atttypmod, a.attnotnull,
       COALESCE((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e
                 WHERE e.enumtypid = CASE WHEN t.typelem <> 0 AND t.typcategory = 'A' THEN t.typelem ELSE t.oid END),
                '{}')
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

// Primary key first; without one, the replica identity index (a unique index the user chose).
const describeKeySQL = `
SELECT a.attname
FROM (SELECT i.indkey, i.indisprimary FROM pg_index i
      WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident)
      ORDER BY i.indisprimary DESC LIMIT 1) k
CROSS JOIN LATERAL unnest(k.indkey::int2[]) WITH ORDINALITY AS u(attnum, ord)
JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = u.attnum
ORDER BY u.ord`

// Describe reads relation relID's name, columns and key from the catalog.
func (c PGCatalog) Describe(ctx context.Context, relID uint32) (CatalogTable, error) {
	var t CatalogTable
	var ident string
	if err := c.Conn.QueryRow(ctx, describeTableSQL, relID).Scan(&t.Schema, &t.Name, &ident); err != nil {
		return t, fmt.Errorf("catalog: relation %d: %w", relID, err)
	}
	if len(ident) == 1 {
		t.Identity = ident[0]
	}
	rows, err := c.Conn.Query(ctx, describeColumnsSQL, relID)
	if err != nil {
		return t, fmt.Errorf("catalog: columns of %s.%s: %w", t.Schema, t.Name, err)
	}
	for rows.Next() {
		var col CatalogColumn
		var oid int64
		if err := rows.Scan(&col.Name, &oid, &col.TypeName, &col.TypeMod, &col.NotNull, &col.EnumValues); err != nil {
			rows.Close()
			return t, fmt.Errorf("catalog: columns of %s.%s: %w", t.Schema, t.Name, err)
		}
		col.TypeOID = uint32(oid)
		t.Columns = append(t.Columns, col)
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("catalog: columns of %s.%s: %w", t.Schema, t.Name, err)
	}
	rows, err = c.Conn.Query(ctx, describeKeySQL, relID)
	if err != nil {
		return t, fmt.Errorf("catalog: key of %s.%s: %w", t.Schema, t.Name, err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return t, fmt.Errorf("catalog: key of %s.%s: %w", t.Schema, t.Name, err)
		}
		t.Key = append(t.Key, name)
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("catalog: key of %s.%s: %w", t.Schema, t.Name, err)
	}
	return t, nil
}
