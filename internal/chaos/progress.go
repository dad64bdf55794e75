package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// sample is one reading of the slot's progress.
type sample struct {
	at        time.Time
	confirmed uint64 // the slot's confirmed_flush_lsn
	wal       uint64 // the server's WAL insert position
}

// writeErrs is one reading of pgcdc's failed Kafka write attempts (a counter of process pid).
type writeErrs struct {
	at  time.Time
	n   float64
	pid int
}

// monitor reads the slot's confirmed_flush_lsn and the WAL position every 250 ms on a connection of
// its own (so that a fault's admin queries never delay it), keeping every reading: faults measure
// their recovery and stalls from them, and isr-loss proves from them that nothing was confirmed.
//
// It also reads pgcdc's count of failed Kafka write attempts: a batch can be written once more for
// each attempt that failed after a broker had taken it, so the failed attempts during a Kafka fault
// bound the extra copies that fault may cause.
type monitor struct {
	srv     *servers
	conn    *connector
	mu      sync.Mutex
	samples []sample
	errs    []writeErrs
	changed chan struct{} // closed and replaced at every new sample
}

func newMonitor(srv *servers, conn *connector) *monitor {
	return &monitor{srv: srv, conn: conn, changed: make(chan struct{})}
}

const monitorEvery = 250 * time.Millisecond

func (m *monitor) loop(ctx context.Context) {
	var db *pgx.Conn
	defer func() {
		if db != nil {
			db.Close(context.Background())
		}
	}()
	for {
		if db == nil || db.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			db, _ = pgx.Connect(cctx, m.srv.dsn+"&application_name=chaos_monitor")
			cancel()
		}
		if db != nil {
			var c, w *string
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := db.QueryRow(qctx, `SELECT (SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1), pg_current_wal_insert_lsn()::text`, slotName).Scan(&c, &w)
			cancel()
			if err != nil {
				db.Close(context.Background())
				db = nil
			} else if c != nil && w != nil {
				cl, err1 := pglogrepl.ParseLSN(*c)
				wl, err2 := pglogrepl.ParseLSN(*w)
				if err1 == nil && err2 == nil {
					m.add(sample{at: time.Now(), confirmed: uint64(cl), wal: uint64(wl)})
				}
			}
		}
		if m.conn != nil {
			if n, pid, ok := m.conn.failedWrites(ctx); ok {
				m.mu.Lock()
				m.errs = append(m.errs, writeErrs{time.Now(), n, pid})
				m.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(monitorEvery):
		}
	}
}

// failedWrites counts pgcdc's failed Kafka write attempts between from and to (a new process counts
// from zero).
func (m *monitor) failedWrites(from, to time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n float64
	var prev *writeErrs
	for i := range m.errs {
		e := &m.errs[i]
		if e.at.After(to) {
			break
		}
		if !e.at.Before(from) && prev != nil {
			if e.pid == prev.pid && e.n >= prev.n {
				n += e.n - prev.n
			} else {
				n += e.n
			}
		}
		prev = e
	}
	return int(n)
}

func (m *monitor) add(s sample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, s)
	close(m.changed)
	m.changed = make(chan struct{})
}

// last returns the newest sample and a channel closed at the next one.
func (m *monitor) last() (sample, bool, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) == 0 {
		return sample{}, false, m.changed
	}
	return m.samples[len(m.samples)-1], true, m.changed
}

// between returns the samples taken in [from, to].
func (m *monitor) between(from, to time.Time) []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sample
	for i := len(m.samples) - 1; i >= 0 && !m.samples[i].at.Before(from); i-- {
		if !m.samples[i].at.After(to) {
			out = append(out, m.samples[i])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// waitRecovered waits until the slot's confirmed_flush_lsn reaches target (bounded by limit) and
// returns the time from start until then, and the longest stall in between: the longest time the
// slot did not move beyond its highest position so far while the server had changes pgcdc had not
// confirmed (a PostgreSQL restart, when nothing can be read, counts as no progress).
func (m *monitor) waitRecovered(ctx context.Context, c *connector, start time.Time, target uint64, limit time.Duration) (time.Duration, time.Duration, error) {
	deadline := time.Now().Add(limit)
	for {
		s, ok, next := m.last()
		if ok && s.confirmed >= target && s.at.After(start) {
			return s.at.Sub(start), stallOf(m.between(start, s.at), start), nil
		}
		if err := c.unexpected(); err != nil {
			return 0, 0, err
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("slot at %s, not past %s after %s", fmtLSN(s.confirmed), fmtLSN(target), limit)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-next:
		case <-time.After(time.Second):
		}
	}
}

// stallOf is the longest run of samples without progress while changes were pending, from start.
func stallOf(samples []sample, start time.Time) time.Duration {
	var stall time.Duration
	runStart := start
	var best uint64
	for i, s := range samples {
		switch {
		case i == 0 || s.confirmed > best:
			if i > 0 {
				runStart = s.at
			}
			best = max(best, s.confirmed)
		case s.confirmed >= s.wal: // caught up: nothing pending
			runStart = s.at
		default:
			stall = max(stall, s.at.Sub(runStart))
		}
	}
	return stall
}

// waitProgress waits (up to limit) until the slot's confirmed_flush_lsn is past since; a limit
// reached is not an error (a long outage of another lane).
func (m *monitor) waitProgress(ctx context.Context, since uint64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		s, ok, next := m.last()
		if ok && s.confirmed > since {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
		case <-time.After(time.Second):
		}
	}
	return nil
}
