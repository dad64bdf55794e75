package snapshot

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/pkg/decode"
)

// Querier is the part of *pgx.Conn planning and description need.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Column is one column a snapshot reads.
type Column struct {
	Name    string
	TypeOID uint32
	TypeMod int32
}

// Table is one table to snapshot.
type Table struct {
	Schema, Name string
	OID          uint32
	Columns      []Column // the published columns in attribute order: the order of the row values
	Key          []string // chunking key (primary key, else replica identity index), index order; empty: none
	KeyTypes     []string // SQL type of each key column (format_type), for the bound casts
	Partitioned  bool
	Estimate     int64 // pg_class.reltuples (over the partitions of a partitioned table); 0 unknown
	// Filter is an SQL condition on the table's rows (a blocking snapshot's additional condition):
	// only the rows it holds for are read. "" reads every row.
	Filter string
}

func (t *Table) String() string { return t.Schema + "." + t.Name }

func (t *Table) ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// from is the FROM item: ONLY for a plain table (inheritance children are tables of their own),
// the whole tree for a partitioned one.
func (t *Table) from() string {
	if t.Partitioned {
		return t.ident()
	}
	return "ONLY " + t.ident()
}

// From is the FROM item that reads t: ONLY t for a plain table, the whole tree of a partitioned one.
func (t *Table) From() string { return t.from() }

// where joins conditions (and the table's Filter) into a WHERE clause, "" when there is none.
func (t *Table) where(conds []string) string {
	if t.Filter != "" {
		conds = append([]string{"(" + t.Filter + ")"}, conds...)
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// Kind is how a chunk bounds its rows.
type Kind string

// Chunk kinds.
const (
	KindKey  Kind = "key"  // Lower < key <= Upper (row comparison); nil bound: unbounded
	KindCTID Kind = "ctid" // Lower[0] <= block < Upper[0]; nil Upper: unbounded
	KindAll  Kind = "all"  // the whole table
)

// Chunk is one unit of work and of recorded progress.
type Chunk struct {
	Table      string // schema.table
	TableOrder int    // position of the table in the plan
	Seq        int    // position of the chunk in its table
	Ordinal    int    // position of the chunk in the plan
	Kind       Kind
	Lower      []string
	Upper      []string
	Estimate   int64
	// Markers (see the package doc).
	LastInTable     bool // the table's final chunk
	FirstInSnapshot bool // the first chunk of the first table, when it has rows
	LastInSnapshot  bool // the final chunk of the last non-empty table
	Done            bool
	Rows            int64 // rows read (recorded when done)
}

const describeSQL = `
SELECT c.oid::int8, c.relkind = 'p',
  CASE WHEN c.relkind = 'p' THEN
    (SELECT coalesce(sum(greatest(p.reltuples, 0)), 0)::int8 FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid WHERE t.isleaf)
  ELSE greatest(c.reltuples, 0)::int8 END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`

// Columns a snapshot reads: not dropped, and on PostgreSQL 15+ within the publication's column
// list when it has one. Stored generated columns are read: Debezium's snapshot records have them
// (it reads the table through JDBC), while its streamed records do not (pgoutput does not send
// them), so a table's snapshot and streamed schemas differ by these columns (README).
const columnsSQL = `
SELECT a.attname, a.atttypid::int8, a.atttypmod
FROM pg_attribute a
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
  AND ($2 = '' OR NOT EXISTS (SELECT 1 FROM pg_publication_tables pt WHERE pt.pubname = $2 AND pt.schemaname = $3 AND pt.tablename = $4 AND pt.attnames IS NOT NULL)
       OR a.attname = ANY (SELECT unnest(pt.attnames) FROM pg_publication_tables pt WHERE pt.pubname = $2 AND pt.schemaname = $3 AND pt.tablename = $4))
ORDER BY a.attnum`

const columnsSQL14 = `
SELECT a.attname, a.atttypid::int8, a.atttypmod
FROM pg_attribute a
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

// The key as the event key takes it: primary key first, else the replica identity index.
const keySQL = `
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM (SELECT i.indkey FROM pg_index i
      WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident)
      ORDER BY i.indisprimary DESC LIMIT 1) k
CROSS JOIN LATERAL unnest(k.indkey::int2[]) WITH ORDINALITY AS u(attnum, ord)
JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = u.attnum
ORDER BY u.ord`

// Describe reads what a snapshot of schema.name needs from the catalog. publication limits the
// columns to the publication's column list (PostgreSQL 15+); serverVersion is server_version_num.
func Describe(ctx context.Context, q Querier, schema, name, publication string, serverVersion int) (*Table, error) {
	t := &Table{Schema: schema, Name: name}
	var oid int64
	if err := q.QueryRow(ctx, describeSQL, schema, name).Scan(&oid, &t.Partitioned, &t.Estimate); err != nil {
		return nil, fmt.Errorf("snapshot: describe %s: %w", t, err)
	}
	t.OID = uint32(oid)
	var rows pgx.Rows
	var err error
	if serverVersion >= 150000 {
		rows, err = q.Query(ctx, columnsSQL, oid, publication, schema, name)
	} else {
		rows, err = q.Query(ctx, columnsSQL14, oid)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: columns of %s: %w", t, err)
	}
	for rows.Next() {
		var c Column
		var typ int64
		if err := rows.Scan(&c.Name, &typ, &c.TypeMod); err != nil {
			rows.Close()
			return nil, fmt.Errorf("snapshot: columns of %s: %w", t, err)
		}
		c.TypeOID = uint32(typ)
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("snapshot: columns of %s: %w", t, err)
	}
	rows, err = q.Query(ctx, keySQL, oid)
	if err != nil {
		return nil, fmt.Errorf("snapshot: key of %s: %w", t, err)
	}
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("snapshot: key of %s: %w", t, err)
		}
		t.Key = append(t.Key, col)
		t.KeyTypes = append(t.KeyTypes, typ)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("snapshot: key of %s: %w", t, err)
	}
	return t, nil
}

// QuoteCols returns the quoted identifiers of cols, comma-separated.
func QuoteCols(cols []string) string { return quoteCols(cols) }

// KeyText returns ARRAY[k1::text, ...] for the key columns cols: a key value as text[], the form
// chunk bounds are kept in (cast back to each column's type in SQL, never compared in Go).
func KeyText(cols []string) string { return keyText(cols) }

func quoteCols(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// keyText is ARRAY[k1::text, ...]: a key value as text, one element per column.
func keyText(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize() + "::text"
	}
	return "ARRAY[" + strings.Join(q, ", ") + "]"
}

// PlanTable splits t into chunks of about chunkRows rows. It runs in the caller's snapshot
// (the coordinator's transaction), so that the final chunk holds the table's last row in that
// snapshot. It reports whether the table has no row at all.
func PlanTable(ctx context.Context, q Querier, t *Table, chunkRows int64) (chunks []*Chunk, empty bool, err error) {
	if chunkRows < 1 {
		chunkRows = 1
	}
	name := t.String()
	if err := q.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM "+t.from()+t.where(nil)+")").Scan(&empty); err != nil {
		return nil, false, fmt.Errorf("snapshot: plan %s: %w", name, err)
	}
	switch {
	case len(t.Key) > 0:
		bounds, err := keyBounds(ctx, q, t, chunkRows)
		if err != nil {
			return nil, false, fmt.Errorf("snapshot: plan %s: %w", name, err)
		}
		var lower []string
		for _, b := range bounds {
			chunks = append(chunks, &Chunk{Table: name, Kind: KindKey, Lower: lower, Upper: b})
			lower = b
		}
		chunks = append(chunks, &Chunk{Table: name, Kind: KindKey, Lower: lower})
	case !t.Partitioned:
		var pages, relpages int64
		var reltuples float64
		err := q.QueryRow(ctx, `SELECT pg_relation_size($1::oid) / current_setting('block_size')::int8, relpages::int8, reltuples::float8 FROM pg_class WHERE oid = $1::oid`, t.OID).
			Scan(&pages, &relpages, &reltuples)
		if err != nil {
			return nil, false, fmt.Errorf("snapshot: plan %s: %w", name, err)
		}
		step := ctidStep(chunkRows, relpages, reltuples)
		var lo int64
		for ; lo+step < pages; lo += step {
			chunks = append(chunks, &Chunk{Table: name, Kind: KindCTID, Lower: []string{fmt.Sprint(lo)}, Upper: []string{fmt.Sprint(lo + step)}})
		}
		chunks = append(chunks, &Chunk{Table: name, Kind: KindCTID, Lower: []string{fmt.Sprint(lo)}})
	default:
		chunks = []*Chunk{{Table: name, Kind: KindAll}}
	}
	est := t.Estimate
	if est <= 0 && len(t.Key) > 0 && !empty {
		// Never analyzed (reltuples -1): every chunk but the last holds exactly chunkRows rows (the
		// key pass cut them so); count the last one, at most chunkRows rows.
		last, err := countChunk(ctx, q, t, chunks[len(chunks)-1])
		if err != nil {
			return nil, false, fmt.Errorf("snapshot: plan %s: count the rows of its last chunk: %w", name, err)
		}
		est = int64(len(chunks)-1)*chunkRows + last
	}
	per, rem := est/int64(len(chunks)), est%int64(len(chunks))
	for i, c := range chunks {
		c.Seq, c.Estimate = i, per
		if int64(i) < rem { // the shares add up to the estimate
			c.Estimate++
		}
	}
	chunks[len(chunks)-1].LastInTable = true
	return chunks, empty, nil
}

// countChunk counts the rows of chunk c of t.
func countChunk(ctx context.Context, q Querier, t *Table, c *Chunk) (int64, error) {
	sql, raw := query(t, c)
	args := make([]any, len(raw))
	for i, a := range raw {
		args[i] = string(a)
	}
	var n int64
	err := q.QueryRow(ctx, "SELECT count(*) FROM ("+sql+") c", args...).Scan(&n)
	return n, err
}

// ctidStep is the number of blocks per chunk for chunkRows rows, from the table's statistics
// (50 rows per block when it was never analyzed).
func ctidStep(chunkRows, relpages int64, reltuples float64) int64 {
	density := 50.0
	if relpages > 0 && reltuples > 0 {
		density = reltuples / float64(relpages)
	}
	step := int64(float64(chunkRows) / density)
	if step < 1 {
		step = 1
	}
	return step
}

// keyBounds returns the keys of every chunkRows-th row in key order, without the table's last
// key (so the final, unbounded chunk is never empty in this snapshot).
func keyBounds(ctx context.Context, q Querier, t *Table, chunkRows int64) ([][]string, error) {
	cols := quoteCols(t.Key)
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT k FROM (SELECT %s AS k, row_number() OVER (ORDER BY %s) AS rn FROM %s%s) s WHERE rn %% $1 = 0`,
		keyText(t.Key), cols, t.from(), t.where(nil)), chunkRows)
	if err != nil {
		return nil, err
	}
	var bounds [][]string
	for rows.Next() {
		var b []string
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, err
		}
		bounds = append(bounds, b)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(bounds) == 0 {
		return nil, nil
	}
	desc := make([]string, len(t.Key))
	for i, c := range t.Key {
		desc[i] = pgx.Identifier{c}.Sanitize() + " DESC"
	}
	var last []string
	if err := q.QueryRow(ctx, fmt.Sprintf(`SELECT %s FROM %s%s ORDER BY %s LIMIT 1`, keyText(t.Key), t.from(), t.where(nil), strings.Join(desc, ", "))).Scan(&last); err != nil {
		return nil, err
	}
	if slices.Equal(bounds[len(bounds)-1], last) {
		bounds = bounds[:len(bounds)-1]
	}
	return bounds, nil
}

// MarkPlan numbers the chunks of a plan (tables in order, each table's chunks in order) and marks
// the snapshot's first and last chunk. As in Debezium 3.6.1 (RelationalSnapshotChangeEventSource:
// "first" only in the first table of the order; BufferingSnapshotChangeRecordReceiver: "last" on
// the last record written), the first chunk is the first table's when that table has rows (else
// no record is "first"), and the last chunk is the last non-empty table's.
func MarkPlan(tables [][]*Chunk, empty []bool) []*Chunk {
	var all []*Chunk
	first, last := -1, -1
	for ti, chunks := range tables {
		if !empty[ti] {
			if first < 0 {
				first = ti
			}
			last = ti
		}
		for _, c := range chunks {
			c.TableOrder = ti
			c.Ordinal = len(all)
			all = append(all, c)
		}
	}
	if first == 0 {
		tables[0][0].FirstInSnapshot = true
	}
	if last >= 0 {
		tables[last][len(tables[last])-1].LastInSnapshot = true
	}
	return all
}

// query returns the SELECT that reads chunk c of t and its arguments (text, cast in SQL).
func query(t *Table, c *Chunk) (string, [][]byte) {
	cols := make([]string, len(t.Columns))
	for i, col := range t.Columns {
		cols[i] = col.Name
	}
	sql := "SELECT " + quoteCols(cols) + " FROM " + t.from()
	var args [][]byte
	switch c.Kind {
	case KindKey:
		return sql + t.where(KeyRange(t, c.Lower, c.Upper, &args)) + " ORDER BY " + quoteCols(t.Key), args
	case KindCTID:
		var where []string
		if c.Lower != nil {
			where = append(where, "ctid >= "+param(&args, "("+c.Lower[0]+",0)", "tid"))
		}
		if c.Upper != nil {
			where = append(where, "ctid < "+param(&args, "("+c.Upper[0]+",0)", "tid"))
		}
		return sql + t.where(where), args
	}
	return sql + t.where(nil), args
}

// Where joins conditions and t's Filter into a WHERE clause ("" when there is none).
func (t *Table) Where(conds []string) string { return t.where(conds) }

// KeyRange returns the conditions that bound t's key to lower < key <= upper (a nil bound is
// unbounded), compared in SQL as row values (ROW(k1, k2) > ROW($1::type1, $2::type2)): PostgreSQL
// orders them by each column's type and collation, as the key's index does. The bound values are
// appended to args as text, cast to each key column's type.
func KeyRange(t *Table, lower, upper []string, args *[][]byte) []string {
	row := func(b []string) string {
		p := make([]string, len(b))
		for i, v := range b {
			p[i] = param(args, v, t.KeyTypes[i])
		}
		return "ROW(" + strings.Join(p, ", ") + ")"
	}
	key := "ROW(" + quoteCols(t.Key) + ")"
	var where []string
	if lower != nil {
		where = append(where, key+" > "+row(lower))
	}
	if upper != nil {
		where = append(where, key+" <= "+row(upper))
	}
	return where
}

// param appends v to args and returns its placeholder, cast to typ.
func param(args *[][]byte, v, typ string) string {
	*args = append(*args, []byte(v))
	return fmt.Sprintf("$%d::%s", len(*args), typ)
}

// Relation describes t as the decoder describes a relation from its Relation message
// (decode.BuildTable joined with the catalog), so that snapshot rows encode as streamed ones do.
func Relation(ctx context.Context, q decode.Querier, t *Table) (*decode.Relation, error) {
	msg := &pglogrepl.RelationMessage{RelationID: t.OID, Namespace: t.Schema, RelationName: t.Name}
	for _, col := range t.Columns {
		msg.Columns = append(msg.Columns, &pglogrepl.RelationMessageColumn{Name: col.Name, DataType: col.TypeOID, TypeModifier: col.TypeMod})
	}
	cat, err := decode.PGCatalog{Conn: q}.Describe(ctx, t.OID)
	if err != nil {
		return nil, err
	}
	et, err := decode.BuildTable(msg, cat, nil)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", t, err)
	}
	return &decode.Relation{ID: t.OID, Table: et, Key: et.Key, Name: t.String()}, nil
}
