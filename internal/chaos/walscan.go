package chaos

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// walScanner records the end LSN of every commit record, reading the WAL with pg_walinspect while it
// is still on disk (the server recycles it once the slot has moved on).
type walScanner struct {
	srv  *servers
	mu   sync.Mutex
	next uint64            // where the next scan starts (end of the last record seen)
	ends map[uint32]uint64 // xid -> end LSN of its commit record
}

func newWALScanner(srv *servers) *walScanner {
	return &walScanner{srv: srv, ends: map[uint32]uint64{}}
}

func (w *walScanner) init(ctx context.Context) error {
	l, err := w.srv.walInsert(ctx)
	w.next = l
	return err
}

func (w *walScanner) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		_ = w.scan(ctx) // PostgreSQL may be down: the next round catches up
	}
}

// scan reads the records from next up to the flushed WAL end. The end of the last record read (not
// the requested end, which can fall inside a record) is where the next scan starts.
func (w *walScanner) scan(ctx context.Context) error {
	w.mu.Lock()
	from := w.next
	w.mu.Unlock()
	flushed, err := w.srv.walFlush(ctx)
	if err != nil || flushed <= from {
		return err // nothing new (pg_get_wal_records_info refuses an empty range)
	}
	type commit struct {
		xid uint32
		end uint64
	}
	var commits []commit
	var last uint64
	err = w.srv.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
		commits, last = commits[:0], 0
		rows, err := db.Query(ctx, `
			WITH r AS (SELECT resource_manager, record_type, xid, end_lsn
			           FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn))
			SELECT xid::text::int8, end_lsn::text, resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%' FROM r
			WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'
			   OR end_lsn = (SELECT max(end_lsn) FROM r)`, fmtLSN(from), fmtLSN(flushed))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var xid int64
			var end string
			var isCommit bool
			if err := rows.Scan(&xid, &end, &isCommit); err != nil {
				return err
			}
			l, err := pglogrepl.ParseLSN(end)
			if err != nil {
				return err
			}
			if isCommit {
				commits = append(commits, commit{uint32(xid), uint64(l)})
			}
			last = max(last, uint64(l))
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range commits {
		w.ends[c.xid] = c.end
	}
	if last > w.next {
		w.next = last
	}
	return nil
}

// end returns the commit end LSN of xid (false when unknown).
func (w *walScanner) end(xid uint32) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.ends[xid]
	return e, ok
}
