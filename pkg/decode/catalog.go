package decode

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CatalogColumn is what the catalog says about one column of a relation.
type CatalogColumn struct {
	Name    string
	TypeOID uint32 // pg_attribute.atttypid: the declared type (a domain's own OID), as in Relation messages
	// TypeName is the name of the type the values have on the wire, domains resolved to their base
	// type (a column of domain posint over int4 is "int4"; an array of posint is "_int4").
	TypeName string
	TypeMod  int32 // atttypmod, or the domain's typmod (varchar(8) domain: 12)
	NotNull  bool
	// EnumValues are the labels in sort order when the type (or array element type), after domain
	// resolution, is an enum.
	EnumValues []string
	// Domain is the declared domain's name when the column's type (or its array element type) is a
	// domain; "" otherwise.
	Domain string
	// Composite marks a composite (row) type, or an array of one.
	Composite bool
	// DefaultExpr is pg_get_expr of the column default; HasDefault tells whether there is one.
	HasDefault  bool
	DefaultExpr string
}

// CatalogTable is what the catalog says about one relation.
type CatalogTable struct {
	Schema, Name string
	Columns      []CatalogColumn
	Key          []string // key column names in key order; empty when the table has none
	PrimaryKey   bool     // Key is the primary key (else a unique index)
	Identity     byte     // relreplident: 'd' default, 'f' full, 'i' index, 'n' nothing
	Partitioned  bool     // relkind 'p': a partitioned table (its changes come through its partitions)
	// Root is the "schema.table" of the partitioned table a partition belongs to (its top-most
	// ancestor), "" for a table that is not a partition.
	Root string
	// Dropped: the relation no longer exists; nothing but its name is known.
	Dropped bool
}

// CatalogType is what the catalog says about a type, by OID: what Describe says of a column's type.
type CatalogType struct {
	TypeName   string   // domains resolved to their base type; arrays as "_<base>"
	TypeMod    int32    // a domain's typmod (-1 otherwise)
	EnumValues []string // labels in sort order when the (element) type is an enum
	Domain     string   // the declared domain's name, "" when none
	Composite  bool
}

// Catalog describes relations and types by OID.
type Catalog interface {
	Describe(ctx context.Context, relID uint32) (CatalogTable, error)
	// DescribeType describes a type that a relation's column had when a change was written, when
	// the column's type is another one now (an ALTER COLUMN ... TYPE since).
	DescribeType(ctx context.Context, typeOID uint32) (CatalogType, error)
}

// Querier is the part of *pgx.Conn the catalog needs.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PGCatalog reads the system catalog through a regular (non-replication) connection.
type PGCatalog struct{ Conn Querier }

const describeTableSQL = `
SELECT n.nspname, c.relname, c.relreplident::text, c.relkind = 'p',
       CASE WHEN c.relispartition THEN (SELECT rn.nspname || '.' || r.relname FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace
                                        WHERE r.oid = pg_partition_root(c.oid)) ELSE '' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1`

// Columns with their types resolved: t is the declared type; e its array element type (or t);
// b the base type of e through up to a chain of domains (domains over domains resolve
// recursively); ba the array type of b (for arrays of domains).
const describeColumnsSQL = `
WITH RECURSIVE cols AS (
  SELECT a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull,
         a.atthasdef AND a.attgenerated = '' AS atthasdef, -- a generated column's expression is no default (Debezium has none)
         pg_get_expr(d.adbin, d.adrelid) AS defexpr,
         t.typcategory = 'A' AND t.typelem <> 0 AS isarray,
         CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem ELSE t.oid END AS elem
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
), chain AS (
  SELECT c.attnum, c.elem AS oid, -1 AS typmod, 0 AS depth, ''::name AS domain FROM cols c
  UNION ALL
  SELECT ch.attnum, t.typbasetype, CASE WHEN ch.typmod = -1 THEN t.typtypmod ELSE ch.typmod END, ch.depth + 1,
         CASE WHEN ch.domain = '' THEN t.typname ELSE ch.domain END
  FROM chain ch JOIN pg_type t ON t.oid = ch.oid
  WHERE t.typtype = 'd' AND ch.depth < 16
), base AS (
  SELECT DISTINCT ON (attnum) attnum, oid, typmod, domain FROM chain ORDER BY attnum, depth DESC
)
SELECT c.attname, c.atttypid::int8,
       CASE WHEN c.isarray THEN coalesce(ba.typname, '_' || b.typname) ELSE b.typname END,
       CASE WHEN c.atttypmod <> -1 THEN c.atttypmod ELSE base.typmod END,
       c.attnotnull, base.domain::text, b.typtype = 'c',
       COALESCE((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = b.oid), '{}'),
       c.atthasdef, coalesce(c.defexpr, '')
FROM cols c
JOIN base ON base.attnum = c.attnum
JOIN pg_type b ON b.oid = base.oid
LEFT JOIN pg_type ba ON ba.oid = b.typarray AND b.typarray <> 0
ORDER BY c.attnum`

// The key as Debezium 3.6 takes it: the primary key; without one, the first unique index by name
// (PgOutputMessageDecoder: "Primary keys are not defined ..., defaulting to unique indices", read
// with JDBC getIndexInfo(unique=true), ordered by index name). Indexes on expressions have no
// column to take and are skipped, as are invalid ones.
const describeKeySQL = `
SELECT a.attname, k.indisprimary
FROM (SELECT i.indkey, i.indisprimary FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisunique) AND i.indisvalid AND i.indexprs IS NULL
      ORDER BY i.indisprimary DESC, ic.relname LIMIT 1) k
CROSS JOIN LATERAL unnest(k.indkey::int2[]) WITH ORDINALITY AS u(attnum, ord)
JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = u.attnum
WHERE u.ord <= array_length(k.indkey::int2[], 1)
ORDER BY u.ord`

// describeTypeSQL resolves a type as describeColumnsSQL resolves a column's: array element, domain
// chain to the base type (with the outermost domain's typmod), enum labels.
const describeTypeSQL = `
WITH RECURSIVE t0 AS (
  SELECT t.oid, t.typcategory = 'A' AND t.typelem <> 0 AS isarray,
         CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem ELSE t.oid END AS elem
  FROM pg_type t WHERE t.oid = $1
), chain AS (
  SELECT elem AS oid, -1 AS typmod, 0 AS depth, ''::name AS domain FROM t0
  UNION ALL
  SELECT t.typbasetype, CASE WHEN ch.typmod = -1 THEN t.typtypmod ELSE ch.typmod END, ch.depth + 1,
         CASE WHEN ch.domain = '' THEN t.typname ELSE ch.domain END
  FROM chain ch JOIN pg_type t ON t.oid = ch.oid
  WHERE t.typtype = 'd' AND ch.depth < 16
), base AS (
  SELECT oid, typmod, domain FROM chain ORDER BY depth DESC LIMIT 1
)
SELECT CASE WHEN t0.isarray THEN coalesce(ba.typname, '_' || b.typname) ELSE b.typname END,
       base.typmod, base.domain::text, b.typtype = 'c',
       COALESCE((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = b.oid), '{}')
FROM t0, base
JOIN pg_type b ON b.oid = base.oid
LEFT JOIN pg_type ba ON ba.oid = b.typarray AND b.typarray <> 0`

// DescribeType reads type typeOID from the catalog.
func (c PGCatalog) DescribeType(ctx context.Context, typeOID uint32) (CatalogType, error) {
	var t CatalogType
	err := c.Conn.QueryRow(ctx, describeTypeSQL, typeOID).Scan(&t.TypeName, &t.TypeMod, &t.Domain, &t.Composite, &t.EnumValues)
	if err != nil {
		return t, fmt.Errorf("catalog: type %d: %w", typeOID, err)
	}
	return t, nil
}

// Describe reads relation relID's name, columns and key from the catalog.
func (c PGCatalog) Describe(ctx context.Context, relID uint32) (CatalogTable, error) {
	var t CatalogTable
	var ident string
	if err := c.Conn.QueryRow(ctx, describeTableSQL, relID).Scan(&t.Schema, &t.Name, &ident, &t.Partitioned, &t.Root); err != nil {
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
		if err := rows.Scan(&col.Name, &oid, &col.TypeName, &col.TypeMod, &col.NotNull, &col.Domain, &col.Composite,
			&col.EnumValues, &col.HasDefault, &col.DefaultExpr); err != nil {
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
		if err := rows.Scan(&name, &t.PrimaryKey); err != nil {
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
