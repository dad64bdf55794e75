package replay

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// placeholder holds the JSON forms pgcdc writes for an unchanged TOAST value (see
// pkg/event/value.go appendPlaceholder): never applied, the column keeps its target value.
// placeholder is the unchanged-TOAST placeholder in each form the event encoding gives it. Types
// whose unchanged TOAST value Debezium (and so pgcdc) writes as null (varbit, numeric[], PostGIS,
// vectors, bytea in base64 mode, ...) cannot be told from a real NULL: docs/replay.md.
type placeholder struct {
	str, b64, strArr, intArr, obj, objStr []byte
}

func newPlaceholder(ph string) placeholder {
	q := strconv.Quote(ph) // the placeholder is plain ASCII; Quote matches JSON for it
	var ints []string
	for i := 0; i < len(ph); i++ {
		ints = append(ints, strconv.Itoa(int(int8(ph[i]))))
	}
	obj := "{" + q + ":" + q + "}" // hstore: a map from the placeholder to itself
	return placeholder{
		str:    []byte(q),
		obj:    []byte(obj),
		objStr: []byte(strconv.Quote(obj)),
		b64:    []byte(`"` + base64.StdEncoding.EncodeToString([]byte(ph)) + `"`),
		strArr: []byte("[" + q + "]"),
		intArr: []byte("[" + strings.Join(ints, ",") + "]"),
	}
}

func (p *placeholder) is(raw []byte, c *codec) bool {
	switch c.kind {
	case kText:
		return bytes.Equal(raw, p.str)
	case kHstore:
		return bytes.Equal(raw, p.str) || bytes.Equal(raw, p.obj) || bytes.Equal(raw, p.objStr)
	case kBytes, kBits:
		return bytes.Equal(raw, p.b64) || bytes.Equal(raw, p.str)
	case kArray:
		return bytes.Equal(raw, p.strArr) || bytes.Equal(raw, p.intArr)
	}
	return false
}

// col is a prepared column value: its target column and codec (set by tableState.prepare).
type rowImage struct {
	fields []field
	cols   []*targetCol
	codecs []*codec
}

// prepared is a change whose images are resolved against the target table.
type prepared struct {
	*change
	keyID  string // the key payload: one state per key in a batch
	before rowImage
	after  rowImage
	key    rowImage

	// Primary-key changes (see carry.go).
	savesRow bool   // the delete half: save the old row for the create half
	carry    bool   // the create half with unchanged TOAST values: fill them from the saved old row
	park     string // why this record cannot be applied ("" when it can): parked instead
}

// upsert is the final state of one key in a batch.
type upsert struct {
	del    bool
	row    rowImage // after image minus unavailable (TOAST placeholder) columns; the key for deletes
	source *prepared
}

// segmentSQL builds the statements applying one partition's run of changes to one table (no
// truncate inside; see the coordinator) into b. It returns checks to run on the results.
func (ts *tableState) segmentSQL(b *pgx.Batch, seg []*prepared, ph *placeholder, carry string) ([]func(pgconn int64) error, error) {
	if ts.tgt == nil {
		return nil, nil // only tombstones or truncates of a table that never existed
	}
	if len(ts.key) == 0 {
		return ts.keylessSQL(b, seg, ph)
	}
	// The delete half of a primary-key change saves the old row first (it heads its segment, so the
	// target holds the row as the stream left it; see carry.go).
	var forget []*prepared
	for _, p := range seg {
		if p.park != "" {
			continue
		}
		if p.savesRow {
			if err := ts.saveRowSQL(b, carry, p); err != nil {
				return nil, err
			}
		}
		if p.op == 'c' && p.oldKey && !p.carry {
			forget = append(forget, p)
		}
	}
	// Collapse to the last state per key, in first-seen order.
	states := make([]upsert, 0, len(seg))
	index := make(map[string]int, len(seg))
	for _, p := range seg {
		if p.park != "" {
			continue
		}
		switch p.op {
		case 0, 't':
			continue
		case 'd':
			st := upsert{del: true, row: p.key, source: p}
			if i, ok := index[p.keyID]; ok {
				states[i] = st
			} else {
				index[p.keyID] = len(states)
				states = append(states, st)
			}
			continue
		}
		row := p.after
		var prev *upsert
		if i, ok := index[p.keyID]; ok && !states[i].del {
			prev = &states[i]
		}
		// Unchanged TOAST placeholders: take the value from an earlier image of this batch, or
		// leave the column out (the target keeps its value).
		var kept rowImage
		dropped := false
		for i, f := range row.fields {
			if f.raw[0] == '"' || f.raw[0] == '[' {
				if ph.is(f.raw, row.codecs[i]) {
					if !dropped {
						kept = rowImage{fields: append([]field(nil), row.fields[:i]...), cols: append([]*targetCol(nil), row.cols[:i]...), codecs: append([]*codec(nil), row.codecs[:i]...)}
						dropped = true
					}
					if prev != nil {
						for j, pf := range prev.row.fields {
							if pf.name == f.name {
								kept.fields = append(kept.fields, pf)
								kept.cols = append(kept.cols, prev.row.cols[j])
								kept.codecs = append(kept.codecs, prev.row.codecs[j])
								break
							}
						}
					}
					continue
				}
			}
			if dropped {
				kept.fields = append(kept.fields, f)
				kept.cols = append(kept.cols, row.cols[i])
				kept.codecs = append(kept.codecs, row.codecs[i])
			}
		}
		if dropped {
			row = kept
		}
		if prev != nil {
			row = withEarlierColumns(row, prev.row) // flat.go: rows that leave out unchanged columns
		}
		st := upsert{row: row, source: p}
		if i, ok := index[p.keyID]; ok {
			states[i] = st
		} else {
			index[p.keyID] = len(states)
			states = append(states, st)
		}
	}
	// Group by column list: one statement per shape (normally one upsert and one delete).
	type group struct {
		cols   []*targetCol
		vals   [][]pgtype.Text
		del    bool
		sample *prepared
	}
	var groups []*group
	bySig := map[string]*group{}
	var sig strings.Builder
	for _, st := range states {
		sig.Reset()
		if st.del {
			sig.WriteString("\x00d")
		}
		for _, c := range st.row.cols {
			sig.WriteString(c.name)
			sig.WriteByte(0)
		}
		g := bySig[sig.String()]
		if g == nil {
			g = &group{cols: st.row.cols, vals: make([][]pgtype.Text, len(st.row.cols)), del: st.del, sample: st.source}
			bySig[sig.String()] = g
			groups = append(groups, g)
		}
		for i, f := range st.row.fields {
			v, err := textOf(f, st.row.codecs[i])
			if err != nil {
				return nil, &recordError{st.source, st.source.errorf(ts, f.name, st.row.cols[i], err)}
			}
			g.vals[i] = append(g.vals[i], v)
		}
	}
	for _, g := range groups {
		args := make([]any, len(g.vals))
		for i := range g.vals {
			args[i] = g.vals[i]
		}
		if g.del {
			b.Queue(ts.deleteSQL(g.cols), args...)
		} else {
			b.Queue(ts.upsertSQL(g.cols), args...)
		}
	}
	for _, p := range forget {
		ts.forgetRowSQL(b, carry, p)
	}
	return nil, nil
}

func textOf(f field, c *codec) (pgtype.Text, error) {
	if isNull(f.raw) {
		return pgtype.Text{}, nil
	}
	s, err := c.toText(f.raw)
	if err != nil {
		return pgtype.Text{}, err
	}
	return pgtype.Text{String: s, Valid: true}, nil
}

func (p *prepared) errorf(ts *tableState, col string, tc *targetCol, err error) error {
	return fmt.Errorf("topic %s partition %d offset %d: table %s column %q (%s): %w", ts.topic, p.partition, p.offset, ts.tgt, col, tc.typ, err)
}

// unnestFrom writes `unnest($1::text[], ...) AS u("a", ...)` for cols, parameters from $first.
func unnestFrom(sb *strings.Builder, cols []*targetCol, first int) {
	sb.WriteString("unnest(")
	for i := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(sb, "$%d::text[]", first+i)
	}
	sb.WriteString(") AS u(")
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(quote(c.name))
	}
	sb.WriteString(")")
}

func (ts *tableState) upsertSQL(cols []*targetCol) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO ")
	sb.WriteString(ts.tgt.ident)
	sb.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(quote(c.name))
	}
	sb.WriteString(") SELECT ")
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "u.%s::%s", quote(c.name), c.typ)
	}
	sb.WriteString(" FROM ")
	unnestFrom(&sb, cols, 1)
	ts.onConflict(&sb, cols)
	return sb.String()
}

// onConflict writes the upsert's ON CONFLICT clause on the key (nothing for keyless tables).
func (ts *tableState) onConflict(sb *strings.Builder, cols []*targetCol) {
	if len(ts.key) == 0 {
		return
	}
	sb.WriteString(" ON CONFLICT (")
	isKey := map[string]bool{}
	for i, k := range ts.key {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(quote(k))
		isKey[k] = true
	}
	sb.WriteString(") DO ")
	n := 0
	for _, c := range cols {
		if isKey[c.name] {
			continue
		}
		if n == 0 {
			sb.WriteString("UPDATE SET ")
		} else {
			sb.WriteString(", ")
		}
		n++
		fmt.Fprintf(sb, "%s = EXCLUDED.%s", quote(c.name), quote(c.name))
	}
	if n == 0 {
		sb.WriteString("NOTHING")
	}
}

func (ts *tableState) deleteSQL(cols []*targetCol) string {
	var sb strings.Builder
	sb.WriteString("DELETE FROM ")
	sb.WriteString(ts.tgt.ident)
	sb.WriteString(" AS t USING ")
	unnestFrom(&sb, cols, 1)
	sb.WriteString(" WHERE ")
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(" AND ")
		}
		fmt.Fprintf(&sb, "t.%s = u.%s::%s", quote(c.name), quote(c.name), c.typ)
	}
	return sb.String()
}

// keylessSQL applies the changes of a table without a key one by one, in order (runs of inserts
// batched). Updates and deletes match one row equal to the before image on every column, which
// needs REPLICA IDENTITY FULL on the source.
func (ts *tableState) keylessSQL(b *pgx.Batch, seg []*prepared, ph *placeholder) ([]func(int64) error, error) {
	var checks []func(int64) error
	var run []*prepared
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		// one statement per run of inserts with the same columns
		start := 0
		for start < len(run) {
			end := start + 1
			for end < len(run) && sameCols(run[end].after.cols, run[start].after.cols) {
				end++
			}
			cols := run[start].after.cols
			vals := make([][]pgtype.Text, len(cols))
			for _, p := range run[start:end] {
				for i, f := range p.after.fields {
					v, err := textOf(f, p.after.codecs[i])
					if err != nil {
						return &recordError{p, p.errorf(ts, f.name, p.after.cols[i], err)}
					}
					vals[i] = append(vals[i], v)
				}
			}
			args := make([]any, len(vals))
			for i := range vals {
				args[i] = vals[i]
			}
			b.Queue(ts.upsertSQL(cols), args...)
			checks = append(checks, nil)
			start = end
		}
		run = run[:0]
		return nil
	}
	for _, p := range seg {
		if p.park != "" {
			continue
		}
		switch p.op {
		case 0, 't':
			continue
		case 'c', 'r':
			run = append(run, p)
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		if p.before.fields == nil {
			return nil, fmt.Errorf("topic %s partition %d offset %d: table %s has no key and this %s event has no before image, so the row cannot be found: set REPLICA IDENTITY FULL on the source table (or give it a primary key) and rebuild the topic",
				ts.topic, p.partition, p.offset, ts.tgt, opName(p.op))
		}
		var sb strings.Builder
		var args []any
		if p.op == 'u' {
			fmt.Fprintf(&sb, "UPDATE %s SET ", ts.tgt.ident)
			n := 0
			for i, f := range p.after.fields {
				if ph.is(f.raw, p.after.codecs[i]) {
					continue
				}
				v, err := textOf(f, p.after.codecs[i])
				if err != nil {
					return nil, &recordError{p, p.errorf(ts, f.name, p.after.cols[i], err)}
				}
				if n > 0 {
					sb.WriteString(", ")
				}
				n++
				args = append(args, v)
				fmt.Fprintf(&sb, "%s = $%d::%s", quote(f.name), len(args), p.after.cols[i].typ)
			}
			if n == 0 {
				continue
			}
		} else {
			fmt.Fprintf(&sb, "DELETE FROM %s", ts.tgt.ident)
		}
		fmt.Fprintf(&sb, " WHERE ctid = (SELECT ctid FROM %s WHERE true", ts.tgt.ident)
		for i, f := range p.before.fields {
			if ph.is(f.raw, p.before.codecs[i]) {
				continue
			}
			v, err := textOf(f, p.before.codecs[i])
			if err != nil {
				return nil, &recordError{p, p.errorf(ts, f.name, p.before.cols[i], err)}
			}
			args = append(args, v)
			fmt.Fprintf(&sb, " AND %s::text IS NOT DISTINCT FROM ($%d::%s)::text", quote(f.name), len(args), p.before.cols[i].typ)
		}
		sb.WriteString(" LIMIT 1)")
		b.Queue(sb.String(), args...)
		pp := p
		checks = append(checks, func(n int64) error {
			if n == 0 {
				ts.unmatched.Add(1)
				_ = pp
			}
			return nil
		})
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return checks, nil
}

func sameCols(a, b []*targetCol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func opName(op byte) string {
	switch op {
	case 'u':
		return "update"
	case 'd':
		return "delete"
	}
	return string(op)
}

// applySegment applies one partition's changes and records next as its applied offset, in one
// transaction. When a record cannot be applied (recordError, or the target refusing a value or a
// constraint), the segment is applied again record by record, each under a savepoint, to find it:
// it stops replay with its topic, partition and offset, or with parking on is parked and the
// others applied. It returns the records parked.
func (e *engine) applySegment(ctx context.Context, ts *tableState, partition int, seg []*prepared, next int64) (int, error) {
	err := e.applyTx(ctx, ts, partition, seg, next, false)
	if err == nil || !recordLevel(err) {
		return countParked(seg), err
	}
	if err = e.applyTx(ctx, ts, partition, seg, next, true); err != nil {
		return 0, err
	}
	return countParked(seg), nil
}

func countParked(seg []*prepared) int {
	n := 0
	for _, p := range seg {
		if p.park != "" {
			n++
		}
	}
	return n
}

// recordLevel reports whether err is caused by the records rather than by the connection or the
// target's setup: a recordError, or PostgreSQL refusing data (class 22) or a constraint (23).
func recordLevel(err error) bool {
	var re *recordError
	if errors.As(err, &re) {
		return true
	}
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (strings.HasPrefix(pg.Code, "22") || strings.HasPrefix(pg.Code, "23"))
}

// buildSQL queues the statements of seg into b and returns the checks of their row counts.
func (e *engine) buildSQL(b *pgx.Batch, ts *tableState, seg []*prepared) ([]func(int64) error, error) {
	switch {
	case len(seg) == 1 && seg[0].op == 't':
		if ts.tgt != nil {
			b.Queue("TRUNCATE TABLE " + ts.tgt.ident)
		}
		return nil, nil
	case len(seg) == 1 && seg[0].carry && seg[0].park == "":
		check, err := ts.carrySQL(b, e.offsets.carry, seg[0], &e.ph)
		return []func(int64) error{check}, err
	}
	return ts.segmentSQL(b, seg, &e.ph, e.offsets.carry)
}

// runBatch sends b in tx and runs the checks.
func runBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch, checks []func(int64) error) error {
	br := tx.SendBatch(ctx, b)
	for i := 0; i < b.Len(); i++ {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return err
		}
		if i < len(checks) && checks[i] != nil {
			if err := checks[i](tag.RowsAffected()); err != nil {
				br.Close()
				return err
			}
		}
	}
	return br.Close()
}

// applyTx applies seg in one transaction (oneByOne: each record under a savepoint of its own,
// parking or naming the ones that fail), parks the records marked so, and records next.
func (e *engine) applyTx(ctx context.Context, ts *tableState, partition int, seg []*prepared, next int64, oneByOne bool) error {
	where := func() string {
		return fmt.Sprintf("%s partition %d offsets %d..%d", ts.topic, partition, seg[0].offset, next-1)
	}
	return e.db.with(ctx, func(db *pgx.Conn) error {
		tx, err := db.Begin(ctx)
		if err != nil {
			return fmt.Errorf("target: begin: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit a no-op
		if !oneByOne {
			b := &pgx.Batch{}
			checks, err := e.buildSQL(b, ts, seg)
			if err != nil {
				return err
			}
			if err := runBatch(ctx, tx, b, checks); err != nil {
				if recordLevel(err) {
					return err
				}
				return fmt.Errorf("target: apply %s to %s: %w", where(), ts.tgt, err)
			}
		} else {
			for _, p := range seg {
				if p.park != "" {
					continue
				}
				b := &pgx.Batch{}
				checks, err := e.buildSQL(b, ts, []*prepared{p})
				if err == nil && b.Len() > 0 {
					var sp pgx.Tx
					if sp, err = tx.Begin(ctx); err != nil {
						return fmt.Errorf("target: savepoint: %w", err)
					}
					if err = runBatch(ctx, sp, b, checks); err != nil {
						if rb := sp.Rollback(ctx); rb != nil {
							return fmt.Errorf("target: rollback to savepoint: %w", rb)
						}
					} else if err = sp.Commit(ctx); err != nil {
						return fmt.Errorf("target: release savepoint: %w", err)
					}
				}
				switch {
				case err == nil:
				case !recordLevel(err):
					return fmt.Errorf("target: apply %s to %s: %w", where(), ts.tgt, err)
				case e.parker == nil:
					var re *recordError
					if errors.As(err, &re) {
						return err
					}
					return fmt.Errorf("target: topic %s partition %d offset %d: table %s refuses the record: %w (pass --park-file or --park-topic to set such records aside and go on)",
						ts.topic, p.partition, p.offset, ts.tgt, err)
				default:
					p.park = fmt.Sprintf("topic %s partition %d offset %d: table %s: %v", ts.topic, p.partition, p.offset, ts.tgt, err)
					var re *recordError
					if errors.As(err, &re) {
						p.park = err.Error() // names them already
					}
				}
			}
		}
		if err := e.parkSegment(ctx, seg); err != nil {
			return err
		}
		b := &pgx.Batch{}
		e.offsets.queue(b, ts.topic, partition, next)
		if err := runBatch(ctx, tx, b, nil); err != nil {
			return fmt.Errorf("target: record the offset of %s: %w", where(), err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("target: commit %s: %w", where(), err)
		}
		return nil
	})
}
