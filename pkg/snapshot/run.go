package snapshot

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// Values of source.snapshot, as Debezium writes them (io.debezium.connector.SnapshotRecord).
const (
	MarkFirst       = "first"
	MarkLast        = "last"
	MarkFirstInData = "first_in_data_collection"
	MarkLastInData  = "last_in_data_collection"
	MarkTrue        = "true"
)

// Marker is source.snapshot of a row of chunk c that is the chunk's first and/or last row, with
// Debezium's precedence (last, first, last in table, first in table, true).
func Marker(c *Chunk, firstRow, lastRow bool) string {
	switch {
	case lastRow && c.LastInSnapshot:
		return MarkLast
	case firstRow && c.FirstInSnapshot:
		return MarkFirst
	case lastRow && c.LastInTable:
		return MarkLastInData
	case firstRow && c.Seq == 0:
		return MarkFirstInData
	}
	return MarkTrue
}

// Handler receives the rows. Its methods are called from the worker goroutines (worker w only
// ever from one goroutine), so per-worker state needs no locking.
type Handler interface {
	// ChunkStart is called before the first row of c.
	ChunkStart(w int, c *Chunk) error
	// Row hands over one row of c: values in Table.Columns order (nil is NULL, text format),
	// valid only during the call; n is the row's position in the chunk. Row may block
	// (backpressure); it should return when ctx ends.
	Row(ctx context.Context, w int, t *Table, c *Chunk, n int64, values [][]byte, marker string) error
	// ChunkEnd is called once every row of c was handed over; rows is their count.
	ChunkEnd(w int, c *Chunk, rows int64) error
}

// RunOptions tune Run.
type RunOptions struct {
	MaxRowsPerSec int       // over all workers; 0: no limit
	Progress      *Progress // counts the rows read; may be nil
}

// Run reads chunks (those not Done) with the session's workers and hands their rows to h. The
// snapshot's first chunk is started before any other and its last chunk runs alone after all
// others finished (see the package doc). It returns when every chunk was read, the first error,
// or ctx's error.
func (s *Session) Run(parent context.Context, tables map[string]*Table, chunks []*Chunk, h Handler, opts RunOptions) error {
	g, ctx := errgroup.WithContext(parent)
	lim := newLimiter(opts.MaxRowsPerSec)
	var (
		jobs      = make(chan *Chunk)
		inflight  sync.WaitGroup
		firstDone = make(chan struct{})
		firstOnce sync.Once
	)
	signalFirst := func() { firstOnce.Do(func() { close(firstDone) }) }
	for w, conn := range s.workers {
		g.Go(func() error {
			for c := range jobs {
				err := s.readChunk(ctx, w, conn, tables[c.Table], c, h, lim, opts.Progress, signalFirst)
				inflight.Done()
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	send := func(c *Chunk) bool {
		inflight.Add(1)
		select {
		case jobs <- c:
			return true
		case <-ctx.Done():
			inflight.Done()
			return false
		}
	}
	var last *Chunk
dispatch:
	for _, c := range chunks {
		if c.Done {
			continue
		}
		if c.LastInSnapshot {
			last = c
			continue
		}
		if !send(c) {
			break dispatch
		}
		if c.FirstInSnapshot {
			select {
			case <-firstDone:
			case <-ctx.Done():
				break dispatch
			}
		}
	}
	if last != nil && ctx.Err() == nil {
		idle := make(chan struct{})
		go func() { inflight.Wait(); close(idle) }()
		select {
		case <-idle:
			send(last)
		case <-ctx.Done():
		}
	}
	close(jobs)
	if err := g.Wait(); err != nil {
		return err
	}
	return parent.Err() // a stop: chunks may be left unread (Wait cancels ctx itself)
}

// rowBuf holds a copy of one row (the look-ahead row).
type rowBuf struct {
	buf    []byte
	vals   [][]byte
	isNull []bool
}

func (r *rowBuf) set(vals [][]byte) {
	r.buf, r.vals, r.isNull = r.buf[:0], r.vals[:0], r.isNull[:0]
	for _, v := range vals {
		r.isNull = append(r.isNull, v == nil)
		r.buf = append(r.buf, v...)
	}
	off := 0
	for i, v := range vals {
		if r.isNull[i] {
			r.vals = append(r.vals, nil)
			continue
		}
		r.vals = append(r.vals, r.buf[off:off+len(v):off+len(v)])
		off += len(v)
	}
}

func (s *Session) readChunk(ctx context.Context, w int, conn *pgx.Conn, t *Table, c *Chunk, h Handler, lim *rate.Limiter, p *Progress, signalFirst func()) (err error) {
	if c.FirstInSnapshot {
		defer signalFirst()
	}
	if t == nil {
		return fmt.Errorf("snapshot: chunk %d of %s: table not described", c.Seq, c.Table)
	}
	if err := h.ChunkStart(w, c); err != nil {
		return err
	}
	sql, args := query(t, c)
	rr := conn.PgConn().ExecParams(ctx, sql, args, nil, nil, nil)
	closed := false
	defer func() {
		if !closed {
			_, _ = rr.Close() // an error left the result unread: free the connection for the next chunk
		}
	}()
	var prev rowBuf
	var n int64
	emit := func(last bool) error {
		err := h.Row(ctx, w, t, c, n-1, prev.vals, Marker(c, n == 1, last))
		if n == 1 && c.FirstInSnapshot {
			signalFirst()
		}
		return err
	}
	for rr.NextRow() {
		if n > 0 {
			if err := emit(false); err != nil {
				return err
			}
		}
		prev.set(rr.Values())
		n++
		if p != nil {
			p.rows.Add(1)
		}
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return err
			}
		}
	}
	closed = true
	if _, err := rr.Close(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("snapshot: read chunk %d of %s: %w", c.Seq, c.Table, err)
	}
	if n > 0 {
		if err := emit(true); err != nil {
			return err
		}
	}
	return h.ChunkEnd(w, c, n)
}

// newLimiter returns a token bucket of perSec rows per second over all workers (bursts of a tenth
// of a second), or nil for no limit.
func newLimiter(perSec int) *rate.Limiter {
	if perSec <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSec), max(1, perSec/10))
}
