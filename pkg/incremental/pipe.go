package incremental

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pglogrepl"

	"github.com/pgcdc/pgcdc/pkg/ack"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/route"
)

// pipeSide is the part of the Snapshotter the pipeline goroutine drives: it sees the stream's
// changes and the watermarks in WAL order.
type pipeSide struct {
	mu      sync.Mutex  // guards wins and open (the reader registers and attaches, the pipeline opens and closes)
	wins    []*window   // registered windows, in the order of their watermarks in the WAL
	open    *window     // the window between its low and its high watermark (at most one: windows follow each other in the WAL)
	hasOpen atomic.Bool // open != nil: the stream's changes need not take mu while no window is open

	// Used by the pipeline goroutine only.
	router     *route.Router
	ring       ring
	txTables   []string // distinct tables the current transaction changed
	lastXid    uint32
	lastCommit pglogrepl.LSN
	keyCols    map[*decode.Relation][]int // the window's key columns in a relation
	keyTable   string                     // the table keyCols was built for
	keyBuf     []byte
	datums     []event.Datum
}

// register queues w (the reader, before it writes w's low watermark).
func (p *pipeSide) register(w *window) {
	p.mu.Lock()
	p.wins = append(p.wins, w)
	p.mu.Unlock()
}

// find returns the index of window id in wins, or -1. Called with mu held.
func (p *pipeSide) find(id string) int {
	for i, w := range p.wins {
		if w.id == id {
			return i
		}
	}
	return -1
}

// attach hands the chunk read for window id to it (the reader, before the high watermark).
func (p *pipeSide) attach(id string, c *chunk) {
	p.mu.Lock()
	if i := p.find(id); i >= 0 {
		p.wins[i].chunk = c
	}
	p.mu.Unlock()
}

// drop forgets window id (the reader gave it up: its high watermark never comes).
func (p *pipeSide) drop(id string) {
	p.mu.Lock()
	if i := p.find(id); i >= 0 {
		if p.open == p.wins[i] {
			p.setOpen(nil)
		}
		p.wins = append(p.wins[:i], p.wins[i+1:]...)
	}
	p.mu.Unlock()
}

// setOpen sets the open window. Called with mu held.
func (p *pipeSide) setOpen(w *window) {
	p.open = w
	p.hasOpen.Store(w != nil)
}

// cancel makes the windows whose table matches publish nothing (stop-snapshot).
func (p *pipeSide) cancel(match func(table string) bool) {
	p.mu.Lock()
	for _, w := range p.wins {
		if match(w.table) {
			w.cancelled = true
		}
	}
	p.mu.Unlock()
}

// Observe sees every change the pipeline decodes, before it is routed, in commit order: the
// window collects the keys the stream changes in the table being read, and the transactions that
// changed a table are remembered (see the package doc). Only the pipeline goroutine calls it.
func (s *Snapshotter) Observe(ch *decode.Change) {
	p := &s.pipe
	switch ch.Kind {
	case decode.KindBegin:
		p.txTables = p.txTables[:0]
		return
	case decode.KindCommit:
		if ch.Txn != nil {
			for _, t := range p.txTables {
				p.ring.push(ch.Txn.Xid, t)
			}
			p.lastXid = ch.Txn.Xid
		}
		p.lastCommit = ch.LSN
		p.txTables = p.txTables[:0]
		return
	case decode.KindInsert, decode.KindUpdate, decode.KindDelete:
		p.touch(ch.Relation.Name)
	case decode.KindTruncate:
		for _, r := range ch.Relations {
			p.touch(r.Name)
		}
	default:
		return
	}
	if !p.hasOpen.Load() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.open
	if w == nil {
		return
	}
	if ch.Kind == decode.KindTruncate {
		for _, r := range ch.Relations {
			if r.Name == w.table {
				w.truncated = true
			}
		}
		return
	}
	if ch.Relation.Name != w.table {
		return
	}
	cols, ok := p.columns(ch.Relation, w)
	if !ok {
		w.unknown = true
		return
	}
	// The new row's key, and the old row's when the change has an old image: an update that
	// changes the key, or a delete, removes the old key's row from the chunk too.
	newKey := false
	if ch.After != nil {
		if k, ok, _ := keyOf(p.keyBuf[:0], ch.After, cols); ok {
			p.keyBuf, newKey = k, true
			w.changed[string(k)] = struct{}{}
		}
	}
	oldKey := false
	if ch.Before != nil {
		// A key-only old image ('K') holds the replica identity's columns, the others as NULL: a
		// NULL there is not the row's value.
		if k, ok, null := keyOf(p.keyBuf[:0], ch.Before, cols); ok && !(ch.BeforeIsKey && null) {
			p.keyBuf, oldKey = k, true
			w.changed[string(k)] = struct{}{}
		}
	}
	switch {
	case ch.Kind == decode.KindDelete && !oldKey:
		w.unknown = true
	case ch.Kind != decode.KindDelete && !newKey && !oldKey:
		w.unknown = true // the key is an unchanged TOAST value and there is no old image
	}
}

// touch remembers that the current transaction changed table.
func (p *pipeSide) touch(table string) {
	for _, t := range p.txTables {
		if t == table {
			return
		}
	}
	p.txTables = append(p.txTables, table)
}

// columns returns the indexes of w's key columns in rel (cached per relation version).
func (p *pipeSide) columns(rel *decode.Relation, w *window) ([]int, bool) {
	if p.keyTable != w.table || p.keyCols == nil {
		p.keyCols, p.keyTable = map[*decode.Relation][]int{}, w.table
	}
	if cols, ok := p.keyCols[rel]; ok {
		return cols, cols != nil
	}
	var cols []int
	for _, name := range w.keyNames {
		found := false
		for i, c := range rel.Table.Columns {
			if c.Name == name {
				cols, found = append(cols, i), true
				break
			}
		}
		if !found {
			cols = nil
			break
		}
	}
	p.keyCols[rel] = cols
	return cols, cols != nil
}

// Watermark handles a logical decoding message. It returns false for a message that is not an
// incremental snapshot watermark (the pipeline routes it as usual). At a high watermark it
// publishes the window's rows whose key the stream did not change, through emit, as tracker
// transaction txn (the watermark's: the pipeline commits it at the watermark's transaction's end,
// or just past a message outside a transaction). Only the pipeline goroutine calls it.
func (s *Snapshotter) Watermark(ch *decode.Change, txn ack.TxnID, emit func(kafkasink.Record) error) (bool, error) {
	if ch.Kind != decode.KindMessage || ch.Message.Prefix != WatermarkPrefix {
		return false, nil
	}
	kind, id, ok := parseWatermark(ch.Message.Content)
	if !ok {
		return true, nil
	}
	p := &s.pipe
	p.mu.Lock()
	i := p.find(id)
	if i < 0 { // a window of an earlier process, or one given up
		p.mu.Unlock()
		return true, nil
	}
	w := p.wins[i]
	if kind == markOpen {
		// Windows before this one in the WAL that are still registered never get their high
		// watermark (their reader gave up after writing the low one).
		p.wins = p.wins[i:]
		w.opened, w.mark, w.changed = true, p.ring.total, map[string]struct{}{}
		w.truncated, w.unknown = false, false
		p.setOpen(w)
		p.mu.Unlock()
		return true, nil
	}
	p.wins = p.wins[i+1:]
	if p.open == w {
		p.setOpen(nil)
	}
	p.mu.Unlock()
	if w.chunk == nil { // cannot happen: the reader attaches before it writes the high watermark
		return true, nil
	}

	v := verdict{id: id, txn: uint64(txn)}
	c := w.chunk
	switch {
	case w.cancelled:
		v.cancelled = true
	case !w.opened || w.unknown:
		v.redo = true
	default:
		if xid, race := p.ring.before(w.mark, w.table, c.invisible); race {
			v.redo, v.racer = true, xid
			break
		}
		src := event.Source{Snapshot: SnapshotMarker, LSN: uint64(ch.LSN), TxID: p.lastXid, LastCommitLSN: uint64(p.lastCommit)}
		for i, vals := range c.rows {
			if _, changed := w.changed[c.keys[i]]; changed || w.truncated {
				v.dropped++
				continue
			}
			p.datums = event.TextDatums(p.datums[:0], vals)
			if err := p.router.Snapshot(c.rel, p.datums, src, v.published, emit); err != nil {
				return true, fmt.Errorf("incremental snapshot of %s: %w", w.table, err)
			}
			v.published++
		}
	}
	select {
	case s.verdicts <- v:
	default: // the reader is gone (a stop): nothing waits for it
	}
	return true, nil
}

// SnapshotMarker is source.snapshot of the incremental snapshot's records, as Debezium writes it.
const SnapshotMarker = "incremental"
