package pgsource

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Table is a table that may be captured.
type Table struct {
	Schema, Name string
	OID          uint32 // pg_class.oid: a table dropped and created again under its name has a new one
	Identity     byte   // relreplident: 'd' default, 'f' full, 'i' index, 'n' nothing
	HasKey       bool   // has a primary key
	HasIdentIdx  bool   // has a replica identity index (REPLICA IDENTITY USING INDEX)
	// Leaves are a partitioned table's leaf partitions ("schema.table"), whose own names the
	// changes carry unless the publication publishes via the partition root; nil for a table.
	Leaves []string
}

// String is schema.table as the include patterns spell it.
func (t Table) String() string { return t.Schema + "." + t.Name }

// Ident is the table's quoted SQL name.
func (t Table) Ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// IdentityProblem explains why UPDATE and DELETE on the table would fail once it is published (it
// has no replica identity), with the fix; "" when it can be published.
func (t Table) IdentityProblem() string {
	ok := t.Identity == 'f' || (t.Identity == 'd' && t.HasKey) || (t.Identity == 'i' && t.HasIdentIdx)
	if ok {
		return ""
	}
	reason := "no primary key and REPLICA IDENTITY " + identityName(t.Identity)
	fix := "add a primary key, or run ALTER TABLE " + t.Ident() + " REPLICA IDENTITY FULL (or USING INDEX <unique index>)"
	if t.HasKey {
		// REPLICA IDENTITY NOTHING, or USING INDEX whose index was dropped, ignores the primary key.
		reason = "REPLICA IDENTITY " + identityName(t.Identity) + " although it has a primary key"
		fix = "run ALTER TABLE " + t.Ident() + " REPLICA IDENTITY DEFAULT (or FULL)"
	}
	return fmt.Sprintf("table %s has no replica identity (%s): publishing it would make the application's own UPDATE and DELETE on it fail. "+
		"Fix: %s, or exclude it with tables.exclude", t, reason, fix)
}

func identityName(b byte) string {
	switch b {
	case 'd':
		return "DEFAULT"
	case 'f':
		return "FULL"
	case 'i':
		return "USING INDEX (index missing)"
	case 'n':
		return "NOTHING"
	}
	return string(b)
}

const listTablesSQL = `
SELECT n.nspname, c.relname, c.oid, c.relreplident::text,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident),
       CASE WHEN c.relkind = 'p' THEN ARRAY(SELECT ln.nspname || '.' || l.relname FROM pg_partition_tree(c.oid) pt
                                            JOIN pg_class l ON l.oid = pt.relid JOIN pg_namespace ln ON ln.oid = l.relnamespace
                                            WHERE pt.isleaf ORDER BY 1) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1, 2`

// ListTables returns the user tables (partitioned roots, not their partitions) that match.
func ListTables(ctx context.Context, conn *pgx.Conn, match func(schema, table string) bool) ([]Table, error) {
	rows, err := conn.Query(ctx, listTablesSQL)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tables: %w", err)
	}
	defer rows.Close()
	var out []Table
	for rows.Next() {
		var t Table
		var ident string
		if err := rows.Scan(&t.Schema, &t.Name, &t.OID, &ident, &t.HasKey, &t.HasIdentIdx, &t.Leaves); err != nil {
			return nil, fmt.Errorf("postgres: list tables: %w", err)
		}
		t.Identity = ident[0]
		if match(t.Schema, t.Name) {
			out = append(out, t)
		}
	}
	return out, rows.Err()
}

// Publication is the state of a publication.
type Publication struct {
	Name      string
	Exists    bool
	AllTables bool
	ViaRoot   bool
	Tables    map[string]bool // "schema.table" (the tables as published: roots when ViaRoot)
}

// ReadPublication reads publication name.
func ReadPublication(ctx context.Context, conn *pgx.Conn, name string) (Publication, error) {
	p := Publication{Name: name, Tables: map[string]bool{}}
	err := conn.QueryRow(ctx, `SELECT puballtables, pubviaroot FROM pg_publication WHERE pubname = $1`, name).Scan(&p.AllTables, &p.ViaRoot)
	if err == pgx.ErrNoRows {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("postgres: read publication %q: %w", name, err)
	}
	p.Exists = true
	// pg_publication_tables lists partitions instead of their root when publish_via_partition_root
	// is off; pg_publication_rel lists the tables as they were added.
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1
		UNION SELECT n.nspname, c.relname FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
		JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = $1`, name)
	if err != nil {
		return p, fmt.Errorf("postgres: tables of publication %q: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			return p, err
		}
		p.Tables[s+"."+t] = true
	}
	return p, rows.Err()
}

// CreatePublication creates publication name for tables, with the row filters and column lists of
// f (nil: none); viaRoot publishes the changes of partitions as changes of their partitioned root
// table.
func CreatePublication(ctx context.Context, conn *pgx.Conn, name string, tables []Table, viaRoot bool, f Filters) error {
	sql := "CREATE PUBLICATION " + pgx.Identifier{name}.Sanitize()
	if len(tables) > 0 {
		sql += " FOR TABLE " + f.specList(tables)
	}
	sql += fmt.Sprintf(" WITH (publish_via_partition_root = %t)", viaRoot)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("postgres: create publication %q: %w", name, describe(err))
	}
	return nil
}

// CreatePublicationAllTables creates publication name FOR ALL TABLES (a superuser's privilege).
func CreatePublicationAllTables(ctx context.Context, conn *pgx.Conn, name string, viaRoot bool) error {
	sql := fmt.Sprintf("CREATE PUBLICATION %s FOR ALL TABLES WITH (publish_via_partition_root = %t)", pgx.Identifier{name}.Sanitize(), viaRoot)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("postgres: create publication %q FOR ALL TABLES: %w", name, describe(err))
	}
	return nil
}

// AddTables adds tables to publication name, with the row filters and column lists of f (nil: none).
func AddTables(ctx context.Context, conn *pgx.Conn, name string, tables []Table, f Filters) error {
	if len(tables) == 0 {
		return nil
	}
	sql := "ALTER PUBLICATION " + pgx.Identifier{name}.Sanitize() + " ADD TABLE " + f.specList(tables)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("postgres: add %s to publication %q: %w", identList(tables), name, describe(err))
	}
	return nil
}

// SetViaRoot changes the publication's publish_via_partition_root.
func SetViaRoot(ctx context.Context, conn *pgx.Conn, name string, viaRoot bool) error {
	sql := fmt.Sprintf("ALTER PUBLICATION %s SET (publish_via_partition_root = %t)", pgx.Identifier{name}.Sanitize(), viaRoot)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("postgres: set publish_via_partition_root on publication %q: %w", name, describe(err))
	}
	return nil
}

func identList(tables []Table) string {
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = t.Ident()
	}
	return strings.Join(parts, ", ")
}
