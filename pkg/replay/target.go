package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// targetCol is a column of a target table, read from the catalog.
type targetCol struct {
	name     string
	typ      string // format_type(atttypid, atttypmod): what values are cast to
	base     string // typname of the (domain's base) type, of the element for arrays
	category byte   // typcategory of that type
	typmod   int32
	array    bool
	notNull  bool
	// generated: a GENERATED ALWAYS column, which PostgreSQL computes and refuses values for
	// (snapshot events carry it, streamed events do not, as in Debezium): never written.
	generated bool
}

// targetTable is a table of the target database.
type targetTable struct {
	schema, name string
	ident        string // quoted schema.table
	cols         map[string]*targetCol
	order        []string   // column names in attnum order
	uniques      [][]string // primary key and unique indexes (non-partial, plain columns), sorted names
}

func (t *targetTable) String() string { return t.schema + "." + t.name }

func quote(s string) string { return pgx.Identifier{s}.Sanitize() }

// loadTable reads a table's columns and unique keys; nil when the table does not exist.
func loadTable(ctx context.Context, db *pgx.Conn, schema, name string) (*targetTable, error) {
	var oid uint32
	err := db.QueryRow(ctx, `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')`, schema, name).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("target: look up table %s.%s: %w", schema, name, err)
	}
	t := &targetTable{schema: schema, name: name, ident: quote(schema) + "." + quote(name), cols: map[string]*targetCol{}}
	rows, err := db.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypmod, a.attnotnull,
			bt.typcategory = 'A', coalesce(et.typname, bt.typname), coalesce(et.typcategory, bt.typcategory)::text, a.attgenerated <> ''
		FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
		LEFT JOIN pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, oid)
	if err != nil {
		return nil, fmt.Errorf("target: read the columns of %s.%s: %w", schema, name, err)
	}
	for rows.Next() {
		c := &targetCol{}
		var cat string
		if err := rows.Scan(&c.name, &c.typ, &c.typmod, &c.notNull, &c.array, &c.base, &cat, &c.generated); err != nil {
			rows.Close()
			return nil, err
		}
		if cat != "" {
			c.category = cat[0]
		}
		t.cols[c.name] = c
		t.order = append(t.order, c.name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("target: read the columns of %s.%s: %w", schema, name, err)
	}
	rows, err = db.Query(ctx, `SELECT array_agg(a.attname::text ORDER BY a.attname)
		FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
		GROUP BY i.indexrelid`, oid)
	if err != nil {
		return nil, fmt.Errorf("target: read the unique indexes of %s.%s: %w", schema, name, err)
	}
	for rows.Next() {
		var cols []string
		if err := rows.Scan(&cols); err != nil {
			rows.Close()
			return nil, err
		}
		t.uniques = append(t.uniques, cols)
	}
	return t, rows.Err()
}

// hasUnique reports whether the table has a unique index on exactly the columns key.
func (t *targetTable) hasUnique(key []string) bool {
	k := slices.Clone(key)
	slices.Sort(k)
	for _, u := range t.uniques {
		if slices.Equal(u, k) {
			return true
		}
	}
	return false
}

// createTable creates a table from the value schema of its events (--create-tables), with a
// primary key on the key columns (none for keyless tables).
func createTable(ctx context.Context, db *pgx.Conn, schema, name string, rs *rowSchema, key []string) error {
	var cols []string
	for _, f := range rs.fields {
		typ, err := ddlType(f)
		if err != nil {
			return fmt.Errorf("create %s.%s column %q: %w", schema, name, f.Field, err)
		}
		c := quote(f.Field) + " " + typ
		if !f.Optional {
			c += " NOT NULL"
		}
		cols = append(cols, c)
	}
	if len(key) > 0 {
		q := make([]string, len(key))
		for i, k := range key {
			q[i] = quote(k)
		}
		cols = append(cols, "PRIMARY KEY ("+strings.Join(q, ", ")+")")
	}
	sql := fmt.Sprintf("CREATE SCHEMA IF NOT EXISTS %s; CREATE TABLE IF NOT EXISTS %s.%s (\n  %s\n)",
		quote(schema), quote(schema), quote(name), strings.Join(cols, ",\n  "))
	if _, err := db.Exec(ctx, sql); err != nil {
		return fmt.Errorf("target: create table %s.%s: %w", schema, name, err)
	}
	return nil
}

// addColumns adds the columns of a newer table version (--create-tables).
func addColumns(ctx context.Context, db *pgx.Conn, t *targetTable, fields []*fieldSchema) error {
	for _, f := range fields {
		typ, err := ddlType(f)
		if err != nil {
			return fmt.Errorf("add column %q to %s: %w", f.Field, t, err)
		}
		if _, err := db.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", t.ident, quote(f.Field), typ)); err != nil {
			return fmt.Errorf("target: add column %q to %s: %w", f.Field, t, err)
		}
	}
	return nil
}

// offsetStore keeps the applied position per topic partition in the target, written in the same
// transaction as the rows.
type offsetStore struct {
	ident string // quoted schema.table
	carry string // quoted schema.<table>_carry: old rows of primary-key changes (carry.go)
	lock  int64  // advisory lock key: one replay per offsets table
}

func newOffsetStore(table string) (*offsetStore, error) {
	schema, name, ok := strings.Cut(table, ".")
	if !ok || schema == "" || name == "" || strings.Contains(name, ".") {
		return nil, fmt.Errorf("offsets table %q: want schema.table", table)
	}
	var h int64 = 1469598103934665603
	for _, c := range []byte(table) {
		h = (h ^ int64(c)) * 1099511628211
	}
	if len(name)+len("_carry") > 63 {
		return nil, fmt.Errorf("offsets table %q: the table name must leave room for the suffix _carry (63 bytes)", table)
	}
	return &offsetStore{ident: quote(schema) + "." + quote(name), carry: quote(schema) + "." + quote(name+"_carry"), lock: h}, nil
}

func (o *offsetStore) ensure(ctx context.Context, db *pgx.Conn) error {
	schema, _, _ := strings.Cut(o.ident, ".")
	_, err := db.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS %s; CREATE TABLE IF NOT EXISTS %s (
		topic text NOT NULL, partition int NOT NULL, next_offset bigint NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (topic, partition));
		CREATE TABLE IF NOT EXISTS %s (topic text NOT NULL, lsn bigint NOT NULL, old_row jsonb NOT NULL,
		saved_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (topic, lsn))`, schema, o.ident, o.carry))
	if err != nil {
		return fmt.Errorf("target: create the offsets table %s (needs CREATE on the schema): %w", o.ident, err)
	}
	return nil
}

// load returns the next offset to apply per partition of topic.
func (o *offsetStore) load(ctx context.Context, db *pgx.Conn, topic string) (map[int]int64, error) {
	rows, err := db.Query(ctx, fmt.Sprintf(`SELECT partition, next_offset FROM %s WHERE topic = $1`, o.ident), topic)
	if err != nil {
		return nil, fmt.Errorf("target: read %s: %w", o.ident, err)
	}
	out := map[int]int64{}
	for rows.Next() {
		var p int
		var off int64
		if err := rows.Scan(&p, &off); err != nil {
			rows.Close()
			return nil, err
		}
		out[p] = off
	}
	return out, rows.Err()
}

func (o *offsetStore) queue(b *pgx.Batch, topic string, partition int, next int64) {
	b.Queue(fmt.Sprintf(`INSERT INTO %s (topic, partition, next_offset) VALUES ($1, $2, $3)
		ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()`, o.ident),
		topic, partition, next)
}
