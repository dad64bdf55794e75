package replay

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Primary-key changes with unchanged TOAST values.
//
// An UPDATE that changes a row's key reaches the topic as a delete of the old key (header
// __debezium.newkey) and a create of the new key (header __debezium.oldkey), both at the UPDATE's
// source.lsn. When a large (TOASTed) column is unchanged, PostgreSQL does not send its value, and
// pgcdc writes the placeholder into the create: the value exists only in the old row. Replay
// therefore saves the old row (as jsonb) into <offsets table>_carry, keyed by (topic, lsn), in the
// transaction that applies the delete, and the create takes the placeholder columns from it in the
// transaction that applies the create, deleting the saved row. Both ends are crash-safe with the
// offsets. The two halves can sit on different partitions, applied in parallel: the coordinator
// applies such a create only once every partition has applied everything up to its LSN
// (coordinator.readyCarries), and a delete that saves a row starts a transaction of its own (so
// the target holds the old row exactly as the stream left it). When the old row was not in the
// target (replay started after it, or the topic lost the delete to retention), the value is
// unknown: the create is an error (or parked), never written with a wrong value.

// saveRowSQL queues the statement saving the row of p's key (the delete half) into carry.
func (ts *tableState) saveRowSQL(b *pgx.Batch, carry string, p *prepared) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "INSERT INTO %s (topic, lsn, old_row) SELECT $1, $2, to_jsonb(t.*) FROM %s t WHERE true", carry, ts.tgt.ident)
	args := []any{ts.topic, int64(p.lsn)}
	for i, f := range p.key.fields {
		v, err := textOf(f, p.key.codecs[i])
		if err != nil {
			return &recordError{p, p.errorf(ts, f.name, p.key.cols[i], err)}
		}
		args = append(args, v)
		fmt.Fprintf(&sb, " AND t.%s = $%d::%s", quote(f.name), len(args), p.key.cols[i].typ)
	}
	sb.WriteString(" ON CONFLICT (topic, lsn) DO UPDATE SET old_row = EXCLUDED.old_row, saved_at = now()")
	b.Queue(sb.String(), args...)
	return nil
}

// forgetRowSQL queues the removal of a saved old row that the create half did not need.
func (ts *tableState) forgetRowSQL(b *pgx.Batch, carry string, p *prepared) {
	b.Queue(fmt.Sprintf("DELETE FROM %s WHERE topic = $1 AND lsn = $2", carry), ts.topic, int64(p.lsn))
}

// carrySQL queues the upsert of p (the create half) with its placeholder columns taken from the
// saved old row, and returns the check of its row count.
func (ts *tableState) carrySQL(b *pgx.Batch, carry string, p *prepared, ph *placeholder) (func(int64) error, error) {
	var cols, exprs, missing []string
	var tcols []*targetCol
	var args []any
	args = append(args, ts.topic, int64(p.lsn))
	for i, f := range p.after.fields {
		c := p.after.cols[i]
		cols = append(cols, quote(c.name))
		tcols = append(tcols, c)
		if ph.is(f.raw, p.after.codecs[i]) {
			exprs = append(exprs, "r."+quote(c.name))
			missing = append(missing, c.name)
			continue
		}
		v, err := textOf(f, p.after.codecs[i])
		if err != nil {
			return nil, &recordError{p, p.errorf(ts, f.name, c, err)}
		}
		args = append(args, v)
		exprs = append(exprs, fmt.Sprintf("$%d::%s", len(args), c.typ))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "WITH c AS (DELETE FROM %s WHERE topic = $1 AND lsn = $2 RETURNING old_row) INSERT INTO %s (%s) SELECT %s FROM c, jsonb_populate_record(NULL::%s, c.old_row) r",
		carry, ts.tgt.ident, strings.Join(cols, ", "), strings.Join(exprs, ", "), ts.tgt.ident)
	ts.onConflict(&sb, tcols)
	b.Queue(sb.String(), args...)
	return func(n int64) error {
		if n == 1 {
			return nil
		}
		return &recordError{p, fmt.Errorf("topic %s partition %d offset %d: table %s: this create is the new key of a primary-key change (source.lsn %d) whose columns %s were unchanged TOAST values, not in the event (the placeholder), "+
			"and replay did not see the old row when the old key's delete was applied (replay started after the old row was written, or retention removed its events), so their values are unknown. "+
			"Rebuild the target from the beginning of the topics, or set REPLICA IDENTITY FULL on the source table (pgcdc then writes the full value); --park-file/--park-topic sets the record aside instead",
			ts.topic, p.partition, p.offset, ts.tgt, p.lsn, strings.Join(missing, ", "))}
	}, nil
}

// recordError is an error that one record causes (a value the target refuses, a value replay
// cannot know): with parking on, that record is parked and the others applied.
type recordError struct {
	rec *prepared
	err error
}

func (e *recordError) Error() string { return e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }
