package pgsource

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// TableFilter is what a publication publishes of one table (PostgreSQL 15+): only the rows
// matching Where (a row filter; "" = every row) and only the Columns listed (a column list;
// empty = every column).
type TableFilter struct {
	Where   string
	Columns []string
}

// Filters are the row filters and column lists of the captured tables, keyed by "schema.table"
// (tables.row_filters and tables.columns).
type Filters map[string]TableFilter

// NewFilters joins the two configuration maps.
func NewFilters(rows map[string]string, columns map[string][]string) Filters {
	f := Filters{}
	for t, w := range rows {
		tf := f[t]
		tf.Where = w
		f[t] = tf
	}
	for t, c := range columns {
		tf := f[t]
		tf.Columns = c
		f[t] = tf
	}
	return f
}

// Check refuses filters the server or the publication cannot have: PostgreSQL 14 has neither row
// filters nor column lists, and a FOR ALL TABLES publication takes neither.
func (f Filters) Check(serverVersion int, pub Publication) error {
	if len(f) == 0 {
		return nil
	}
	if serverVersion < 150000 {
		return fmt.Errorf("tables.row_filters and tables.columns need PostgreSQL 15 or newer (publication row filters and column lists); the server is %d.%d: remove them (tables: %s)",
			serverVersion/10000, serverVersion%10000, strings.Join(f.names(), ", "))
	}
	if pub.AllTables {
		return fmt.Errorf("publication %q is FOR ALL TABLES, which takes no row filter or column list: remove tables.row_filters and tables.columns, or use a publication of listed tables", pub.Name)
	}
	return nil
}

func (f Filters) names() []string {
	out := make([]string, 0, len(f))
	for t := range f {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// spec is a table as ADD TABLE and FOR TABLE take it: name, column list, row filter.
func (f Filters) spec(t Table) string {
	s := t.Ident()
	tf := f[t.String()]
	if len(tf.Columns) > 0 {
		cols := make([]string, len(tf.Columns))
		for i, c := range tf.Columns {
			cols[i] = pgx.Identifier{c}.Sanitize()
		}
		s += " (" + strings.Join(cols, ", ") + ")"
	}
	if tf.Where != "" {
		s += " WHERE (" + tf.Where + ")"
	}
	return s
}

func (f Filters) specList(tables []Table) string {
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = f.spec(t)
	}
	return strings.Join(parts, ", ")
}

// SyncFilters gives the tables already in publication name the row filters and column lists of f:
// each table that has one configured, or has one in the publication, is dropped from the
// publication and added again with the configured ones, all in one transaction. It returns the
// tables it changed. Run it at start-up, before streaming begins.
func SyncFilters(ctx context.Context, conn *pgx.Conn, name string, tables []Table, f Filters, serverVersion int) ([]string, error) {
	if serverVersion < 150000 {
		return nil, nil // Check refused any configured filter; there are none to remove
	}
	rows, err := conn.Query(ctx, `SELECT n.nspname || '.' || c.relname FROM pg_publication_rel pr
		JOIN pg_publication p ON p.oid = pr.prpubid JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname = $1 AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL)`, name)
	if err != nil {
		return nil, fmt.Errorf("postgres: read the row filters and column lists of publication %q: %w", name, err)
	}
	filtered, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: read the row filters and column lists of publication %q: %w", name, err)
	}
	has := map[string]bool{}
	for _, t := range filtered {
		has[t] = true
	}
	var redo []Table
	var names []string
	for _, t := range tables {
		if _, want := f[t.String()]; want || has[t.String()] {
			redo = append(redo, t)
			names = append(names, t.String())
		}
	}
	if len(redo) == 0 {
		return nil, nil
	}
	pub := pgx.Identifier{name}.Sanitize()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "ALTER PUBLICATION "+pub+" DROP TABLE "+identList(redo)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "ALTER PUBLICATION "+pub+" ADD TABLE "+f.specList(redo))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: set the row filters and column lists of %s in publication %q (tables.row_filters, tables.columns): %w", strings.Join(names, ", "), name, describe(err))
	}
	return names, nil
}
