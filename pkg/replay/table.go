package replay

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// tableState is what a topic's coordinator knows about the table the topic's events change.
type tableState struct {
	topic     string
	compacted bool // cleanup.policy contains compact
	tgt       *targetTable
	key       []string // key columns (nil: the table has no key)
	keySig    string
	codecs    map[codecKey]*codec
	checked   bool // compaction checks done
	unmatched atomic.Int64
}

type codecKey struct {
	rs   *rowSchema
	name string
}

func newTableState(topic string, compacted bool) *tableState {
	return &tableState{topic: topic, compacted: compacted, codecs: map[codecKey]*codec{}}
}

// prepare resolves a change against the target: the table (created when asked), its key, and the
// codec of every column.
func (e *engine) prepare(ctx context.Context, ts *tableState, c *change) (*prepared, error) {
	p := &prepared{change: c}
	if c.op == 0 {
		return p, nil
	}
	if ts.tgt != nil && (ts.tgt.schema != c.schema || ts.tgt.name != c.table) {
		// One topic, one table: the coordinator orders and applies by topic.
		return nil, fmt.Errorf("topic %s holds events of %s and of %s.%s: replay needs one table per topic (a topic router such as ByLogicalTableRouter merged them); replay from the tables' own topics",
			ts.topic, ts.tgt, c.schema, c.table)
	}
	if ts.tgt == nil {
		if err := e.ensureTable(ctx, ts, c); err != nil {
			return nil, err
		}
		if ts.tgt == nil { // a truncate of a table that does not exist: nothing to do
			return p, nil
		}
	}
	if c.op == 't' {
		return p, nil
	}
	if err := e.checkKey(ts, c); err != nil {
		return nil, err
	}
	if !ts.checked {
		if err := e.checkCompaction(ts, c); err != nil {
			return nil, err
		}
		ts.checked = true
	}
	var err error
	p.keyID = string(c.key)
	if p.key, err = e.image(ctx, ts, c, c.keyFields, true); err != nil {
		return nil, err
	}
	if p.before, err = e.image(ctx, ts, c, c.before, false); err != nil {
		return nil, err
	}
	if p.after, err = e.image(ctx, ts, c, c.after, false); err != nil {
		return nil, err
	}
	if len(ts.key) > 0 {
		p.savesRow = c.op == 'd' && c.newKey
		if c.op == 'c' && c.oldKey {
			for i, f := range p.after.fields {
				if e.ph.is(f.raw, p.after.codecs[i]) {
					p.carry = true
				}
			}
		}
	}
	return p, nil
}

func keyNames(c *change) []string {
	var out []string
	for _, f := range c.keyFields {
		out = append(out, f.name)
	}
	return out
}

func (e *engine) ensureTable(ctx context.Context, ts *tableState, c *change) error {
	// One topic at a time: concurrent CREATE SCHEMA IF NOT EXISTS of one new schema fails with a
	// unique violation in pg_namespace.
	e.ddl.Lock()
	defer e.ddl.Unlock()
	var t *targetTable
	err := e.db.with(ctx, func(db *pgx.Conn) (err error) { t, err = loadTable(ctx, db, c.schema, c.table); return })
	if err != nil {
		return err
	}
	if t == nil {
		if c.op == 't' {
			return nil
		}
		if !e.opts.CreateTables {
			return fmt.Errorf("topic %s: table %s.%s does not exist in the target: create it like the source table, or pass --create-tables (needs topics written with value schemas)", ts.topic, c.schema, c.table)
		}
		if c.vschema == nil {
			return fmt.Errorf("topic %s: cannot create table %s.%s: its events carry no schema (events.value_schemas=false); create the table in the target yourself", ts.topic, c.schema, c.table)
		}
		if err := e.db.with(ctx, func(db *pgx.Conn) error { return createTable(ctx, db, c.schema, c.table, c.vschema, keyNames(c)) }); err != nil {
			return err
		}
		e.log.Info().Str("table", c.schema+"."+c.table).Str("topic", ts.topic).Strs("key", keyNames(c)).Msg("created target table from the events' schema")
		if err = e.db.with(ctx, func(db *pgx.Conn) (err error) { t, err = loadTable(ctx, db, c.schema, c.table); return }); err != nil {
			return err
		}
		if t == nil {
			return fmt.Errorf("target: table %s.%s missing right after its creation", c.schema, c.table)
		}
	}
	ts.tgt, ts.keySig = t, "\x00unset"
	return nil
}

func (e *engine) checkKey(ts *tableState, c *change) error {
	names := keyNames(c)
	sig := strings.Join(names, "\x00")
	if sig == ts.keySig {
		return nil
	}
	if len(names) > 0 && !ts.tgt.hasUnique(names) {
		return fmt.Errorf("topic %s: target table %s has no primary key or unique index on the event key (%s): add one (e.g. ALTER TABLE %s ADD PRIMARY KEY (%s)) so that changes can be matched by key",
			ts.topic, ts.tgt, strings.Join(names, ", "), ts.tgt.ident, strings.Join(names, ", "))
	}
	for _, k := range names {
		if ts.tgt.cols[k] == nil {
			return fmt.Errorf("topic %s: key column %q is not in target table %s", ts.topic, k, ts.tgt)
		}
	}
	ts.key, ts.keySig = names, sig
	return nil
}

// checkCompaction refuses compacted topics whose table cannot be rebuilt from them.
func (e *engine) checkCompaction(ts *tableState, c *change) error {
	if !ts.compacted {
		return nil
	}
	if c.key == nil {
		return fmt.Errorf("topic %s is compacted (cleanup.policy=compact) and table %s has no key: compacted topics keep one event per key and reject null keys, so they cannot hold a keyless table's history; replay it from a topic with cleanup.policy=delete", ts.topic, ts.tgt)
	}
	if e.opts.AllowCompactedTOAST {
		return nil
	}
	var risky []string
	for _, f := range c.after {
		if c.vschema != nil {
			if fs := c.vschema.byName[f.name]; fs != nil && toastable(fs) {
				risky = append(risky, f.name)
			}
			continue
		}
		if col := ts.tgt.cols[f.name]; col != nil {
			switch codecFromTarget(col, e.opts.Modes).kind {
			case kText, kBytes, kArray:
				risky = append(risky, f.name)
			}
		}
	}
	if len(risky) > 0 {
		return fmt.Errorf("topic %s is compacted (cleanup.policy=compact) and table %s has columns PostgreSQL may TOAST (%s): compaction can keep only an update whose unchanged TOAST value was written as the placeholder %q, and the real value is then gone for good, so replay cannot rebuild those columns. Replay from topics with cleanup.policy=delete, or, if the source table has REPLICA IDENTITY FULL (pgcdc then writes the full value) or those values never exceed ~2 kB, pass --allow-compacted-toast",
			ts.topic, ts.tgt, strings.Join(risky, ", "), e.opts.Placeholder)
	}
	return nil
}

// image resolves the columns of a row image (or key) against the target table.
func (e *engine) image(ctx context.Context, ts *tableState, c *change, fields []field, isKey bool) (rowImage, error) {
	if fields == nil {
		return rowImage{}, nil
	}
	img := rowImage{fields: fields, cols: make([]*targetCol, len(fields)), codecs: make([]*codec, len(fields))}
	rs := c.vschema
	if isKey && c.keySchema != nil {
		rs = c.keySchema
	}
	for i, f := range fields {
		col := ts.tgt.cols[f.name]
		if col == nil && e.opts.CreateTables && c.vschema != nil {
			var missing []*fieldSchema
			for _, fs := range c.vschema.fields {
				if ts.tgt.cols[fs.Field] == nil {
					missing = append(missing, fs)
				}
			}
			var t *targetTable
			e.ddl.Lock()
			err := e.db.with(ctx, func(db *pgx.Conn) (err error) {
				if err = addColumns(ctx, db, ts.tgt, missing); err == nil {
					t, err = loadTable(ctx, db, ts.tgt.schema, ts.tgt.name)
				}
				return err
			})
			e.ddl.Unlock()
			if err != nil {
				return img, err
			}
			ts.tgt = t
			col = t.cols[f.name]
			e.log.Info().Str("table", t.String()).Int("columns", len(missing)).Msg("added the columns of a newer table version")
		}
		if col == nil {
			return img, fmt.Errorf("topic %s: column %q of the events is not in target table %s (its columns: %s): add it, or replay with --create-tables",
				ts.topic, f.name, ts.tgt, strings.Join(ts.tgt.order, ", "))
		}
		if col.generated {
			img.cols[i] = nil // dropped below
			continue
		}
		img.cols[i] = col
		k := codecKey{rs, f.name}
		cd := ts.codecs[k]
		if cd == nil {
			var fs *fieldSchema
			if rs != nil {
				fs = rs.byName[f.name]
			}
			if fs != nil {
				var err error
				if cd, err = codecFromSchema(fs, col, e.opts.Modes); err != nil {
					return img, fmt.Errorf("topic %s: column %q of %s: %w", ts.topic, f.name, ts.tgt, err)
				}
			} else {
				cd = codecFromTarget(col, e.opts.Modes)
			}
			ts.codecs[k] = cd
		}
		img.codecs[i] = cd
	}
	for i := range img.cols {
		if img.cols[i] == nil { // a generated column: keep the others only
			kept := rowImage{}
			for j, c := range img.cols {
				if c != nil {
					kept.fields, kept.cols, kept.codecs = append(kept.fields, img.fields[j]), append(kept.cols, c), append(kept.codecs, img.codecs[j])
				}
			}
			return kept, nil
		}
	}
	return img, nil
}
