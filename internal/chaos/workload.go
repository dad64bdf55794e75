package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// table is a captured table of the workload.
type table struct {
	name, keyCol, identity string
	keys                   int
	text                   bool // text key "k<n>"
	big                    bool // bigint key
}

var tables = []table{
	{name: "c_a", keyCol: "id", identity: "DEFAULT", keys: 4000},             // hot: few keys, key-only delete images
	{name: "c_b", keyCol: "id", identity: "FULL", keys: 60000, big: true},    // bigint key, full before images
	{name: "c_c", keyCol: "code", identity: "FULL", keys: 60000, text: true}, // text key
}

// ledgerTable is the table index of chaos_ledger in packed identities.
const ledgerTable = 3

// Operations, as packed.
const (
	opCreate = 0
	opUpdate = 1
	opDelete = 2
)

// pack builds the identity of one change: table (2 bits), ledger transaction id (30 bits), key (30
// bits), op (2 bits). Within a transaction a key changes at most once, so the identity is unique to
// the change, and sorting puts the changes of one table and transaction together.
func pack(table int, ledger uint64, key int, op int) uint64 {
	return uint64(table)<<62 | (ledger&(1<<30-1))<<32 | uint64(key&(1<<30-1))<<2 | uint64(op)
}

func unpack(id uint64) (table int, ledger uint64, key int, op int) {
	return int(id >> 62), (id >> 32) & (1<<30 - 1), int((id >> 2) & (1<<30 - 1)), int(id & 3)
}

func keyText(k int) string { return "k" + strconv.Itoa(k) }

// writer commits transactions over the keys it owns (key % writers == id) and records every change of
// every transaction that committed.
type writer struct {
	r      *run
	id     int
	rng    *rand.Rand
	owned  [][]int  // per table, the keys this writer owns
	exists [][]bool // per table, indexed by key: the row exists (as far as committed transactions go)
	conn   *pgx.Conn

	expected []uint64 // identities of committed changes (ledger rows included)
	ledgers  []uint64 // committed ledger ids

	committed, rolledBack, failed, failedCommitted, largest, deletes int
}

var nextLedger atomic.Uint64

func newWriter(r *run, id int) *writer {
	w := &writer{r: r, id: id, rng: rand.New(rand.NewPCG(r.opts.Seed, uint64(id)+1))}
	for _, t := range tables {
		var own []int
		for k := id; k < t.keys; k += r.opts.Writers {
			own = append(own, k)
		}
		w.owned = append(w.owned, own)
		w.exists = append(w.exists, make([]bool, t.keys))
	}
	return w
}

// largestSize is the largest transaction the writer can make: MaxTxn rows, at most one per key it owns.
func (w *writer) largestSize() int {
	owned := 0
	for _, o := range w.owned {
		owned += len(o)
	}
	return min(w.r.opts.MaxTxn, owned)
}

// size draws a transaction size: mostly small, some of hundreds and thousands of rows, a few of
// tens of thousands; from its 12th transaction on, writer 0 makes every transaction of the maximum
// size until one of them commits (a fault may cut it), so every run has one.
func (w *writer) size(i int) int {
	biggest := w.r.opts.MaxTxn
	if w.id == 0 && i >= 12 && w.largest < w.largestSize() {
		return biggest
	}
	x := w.rng.Float64()
	switch {
	case x < 0.60:
		return 1 + w.rng.IntN(10)
	case x < 0.88:
		return 11 + w.rng.IntN(190)
	case x < 0.985:
		return min(biggest, 201+w.rng.IntN(4800))
	default:
		return min(biggest, 5001+w.rng.IntN(max(1, biggest-5000)))
	}
}

// change is one planned row change.
type change struct {
	table, key, op int
}

// plan picks n distinct owned keys and the operation for each: insert when the row does not exist,
// else update (70%) or delete (30%).
func (w *writer) plan(n int) []change {
	total := 0
	for _, o := range w.owned {
		total += len(o)
	}
	n = min(n, total)
	out := make([]change, 0, n)
	add := func(t, k int) {
		op := opCreate
		if w.exists[t][k] {
			op = opUpdate
			if w.rng.IntN(10) < 3 {
				op = opDelete
			}
		}
		out = append(out, change{t, k, op})
	}
	if n <= 50 {
		seen := map[[2]int]bool{}
		for len(out) < n {
			t := w.rng.IntN(len(tables))
			k := w.owned[t][w.rng.IntN(len(w.owned[t]))]
			if seen[[2]int{t, k}] {
				continue
			}
			seen[[2]int{t, k}] = true
			add(t, k)
		}
		return out
	}
	left := n
	for t := range tables {
		share := n * len(w.owned[t]) / total
		if t == len(tables)-1 {
			share = left
		}
		share = min(share, len(w.owned[t]), left)
		left -= share
		start := w.rng.IntN(len(w.owned[t]))
		for i := 0; i < share; i++ {
			add(t, w.owned[t][(start+i)%len(w.owned[t])])
		}
	}
	return out
}

func (w *writer) connect(ctx context.Context) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, w.r.srv.dsn+"&application_name=chaos_writer_"+strconv.Itoa(w.id))
		cancel()
		if err == nil {
			w.conn = conn
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cannot connect for 3m: %w", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// run commits transactions until ctx ends. A transaction in progress when ctx ends is finished.
func (w *writer) run(ctx context.Context) error {
	if err := w.connect(ctx); err != nil {
		return err
	}
	defer func() { w.conn.Close(context.Background()) }()
	rate := float64(w.r.opts.RowsPerS) / float64(w.r.opts.Writers)
	for i := 0; ctx.Err() == nil; i++ {
		n := w.size(i)
		changes := w.plan(n)
		rollback := i > 0 && w.rng.IntN(100) < 3
		ledger := nextLedger.Add(1)
		began := time.Now()
		err := w.exec(changes, ledger, rollback)
		switch {
		case err == nil && rollback:
			w.rolledBack++
		case err == nil:
			w.apply(changes, ledger)
		default:
			if errors.Is(err, errModel) || !isConnErr(err) {
				return fmt.Errorf("transaction %d: %w", ledger, err) // an answer from PostgreSQL: a harness bug
			}
			w.failed++
			ok, serr := w.settle(ctx, ledger)
			if serr != nil {
				return fmt.Errorf("transaction %d failed (%v) and its outcome could not be settled: %w", ledger, err, serr)
			}
			if ok && !rollback {
				w.failedCommitted++
				w.apply(changes, ledger)
			} else if ok {
				return fmt.Errorf("transaction %d was to roll back but its ledger row exists", ledger)
			}
		}
		pause := time.Duration(float64(len(changes))/rate*float64(time.Second)) - time.Since(began)
		pause = min(pause, 20*time.Second) + time.Duration(w.rng.IntN(30))*time.Millisecond
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
	return nil
}

// errModel means the database disagrees with the writer's model: a harness bug, not a fault.
var errModel = errors.New("workload model out of step with the database")

// exec runs one transaction: the changes, then the ledger row; commit or roll back.
func (w *writer) exec(changes []change, ledger uint64, rollback bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it does nothing
	type group struct {
		ints  []int64
		texts []string
	}
	var groups [3][3]group // [table][op]
	for _, c := range changes {
		g := &groups[c.table][c.op]
		if tables[c.table].text {
			g.texts = append(g.texts, keyText(c.key))
		} else {
			g.ints = append(g.ints, int64(c.key))
		}
	}
	order := w.rng.Perm(len(tables))
	for _, t := range order {
		tb := tables[t]
		arr := "int[]"
		if tb.big {
			arr = "bigint[]"
		} else if tb.text {
			arr = "text[]"
		}
		for _, op := range []int{opDelete, opUpdate, opCreate} {
			g := groups[t][op]
			var keys any = g.ints
			n := len(g.ints)
			if tb.text {
				keys, n = g.texts, len(g.texts)
			}
			if n == 0 {
				continue
			}
			var sql string
			switch op {
			case opCreate:
				sql = fmt.Sprintf(`INSERT INTO %s (%s, txn, n, pad) SELECT k, $2::bigint, 1, repeat(md5(k::text || $2::bigint::text), 1 + length(k::text) %% 5) FROM unnest($1::%s) AS k`, tb.name, tb.keyCol, arr)
			case opUpdate:
				sql = fmt.Sprintf(`UPDATE %s SET txn = $2::bigint, n = n + 1, pad = md5(pad || $2::bigint::text) WHERE %s = ANY($1::%s)`, tb.name, tb.keyCol, arr)
			case opDelete:
				sql = fmt.Sprintf(`DELETE FROM %s WHERE %s = ANY($1::%s) AND $2::bigint > 0`, tb.name, tb.keyCol, arr)
			}
			tag, err := tx.Exec(ctx, sql, keys, int64(ledger))
			if err != nil {
				return err
			}
			if int(tag.RowsAffected()) != n {
				return fmt.Errorf("%w: %s on %s touched %d rows, want %d", errModel, sql, tb.name, tag.RowsAffected(), n)
			}
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO chaos_ledger (id, xid, writer, rows) VALUES ($1, pg_current_xact_id()::text::bigint, $2, $3)`,
		int64(ledger), w.id, len(changes)); err != nil {
		return err
	}
	if rollback {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}

// settle decides a failed transaction's outcome: reconnect, wait until the old backend is gone (so
// the transaction can no longer commit), and look for its ledger row.
func (w *writer) settle(ctx context.Context, ledger uint64) (bool, error) {
	pid := w.conn.PgConn().PID()
	w.conn.Close(context.Background())
	if err := w.connect(context.Background()); err != nil {
		return false, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		gone, err := w.r.srv.backendGone(context.Background(), pid)
		if err == nil && gone {
			break
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("backend %d still there after 2m (%v)", pid, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var n int
	err := w.r.srv.do(context.Background(), func(ctx context.Context, db *pgx.Conn) error {
		return db.QueryRow(ctx, `SELECT count(*) FROM chaos_ledger WHERE id = $1`, int64(ledger)).Scan(&n)
	})
	return n == 1, err
}

// apply records a committed transaction's changes and updates the model.
func (w *writer) apply(changes []change, ledger uint64) {
	for _, c := range changes {
		w.expected = append(w.expected, pack(c.table, ledger, c.key, c.op))
		switch c.op {
		case opCreate:
			w.exists[c.table][c.key] = true
		case opDelete:
			w.exists[c.table][c.key] = false
			w.deletes++
		}
	}
	w.expected = append(w.expected, pack(ledgerTable, ledger, 0, opCreate))
	w.ledgers = append(w.ledgers, ledger)
	w.committed++
	w.largest = max(w.largest, len(changes))
	if w.id == 0 && w.largest >= w.largestSize() {
		w.r.largestDone.Store(true)
	}
}
