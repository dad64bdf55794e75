package lease

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/internal/retry"
)

// lockClass is the first key of pgcdc's advisory locks ("pgcd"); the second is derived from the slot.
const lockClass int32 = 0x70676364

// slotKey is the advisory lock's second key for slot: a 31-bit FNV-1a hash of its name (so that it
// reads the same as pg_locks.objid, an unsigned oid).
func slotKey(slot string) int32 {
	h := fnv.New32a()
	h.Write([]byte("pgcdc slot " + slot))
	return int32(h.Sum32() & 0x7fffffff)
}

// Options configure the lease of one slot.
type Options struct {
	Slot string
	// Connect opens the lease's own SQL connection (never the one the connector works with: the
	// lock lives as long as the connection).
	Connect func(ctx context.Context) (*pgx.Conn, error)
	// TakeoverAfter is how long the holder's heartbeat may be silent before a waiting process ends
	// the holder's sessions and takes the lease.
	TakeoverAfter time.Duration
	Log           zerolog.Logger
	// OnWait, when set, is called each time Acquire finds the lease held by another process.
	OnWait func(holder Holder)
}

// heartbeat is how often the holder proves it is alive; poll how often a waiting process looks.
func (o Options) heartbeat() time.Duration { return max(o.TakeoverAfter/8, 100*time.Millisecond) }
func (o Options) poll() time.Duration      { return max(o.TakeoverAfter/8, 100*time.Millisecond) }

// ErrLost says the lease was lost: the heartbeat failed, or did not answer within half of
// TakeoverAfter, so another process may hold it now.
var ErrLost = errors.New("lease lost")

// Lease is the right to stream one replication slot, held as a PostgreSQL session advisory lock on
// a connection of its own, kept alive by a heartbeat query.
type Lease struct {
	opts Options
	conn *pgx.Conn
	// TookOver says the lease was taken from a holder whose heartbeat fell silent (its sessions
	// were terminated), rather than found free.
	TookOver bool

	// beat is the monotonic time at which the last successful heartbeat query was sent (the
	// acquisition at first); Valid measures from it.
	beatMu sync.Mutex
	beat   time.Time

	lost    chan struct{}
	lostErr error
	once    sync.Once
	cancel  context.CancelFunc
	done    chan struct{}
}

// Holder is the session holding the lease, as pg_stat_activity shows it.
type Holder struct {
	PID    int32
	Client string // application name and address, when visible
	// Silent is how long the holder's session has been idle since its last query (the heartbeat);
	// Known is false when this role may not see it (another role, without pg_read_all_stats).
	Silent time.Duration
	Known  bool
}

func (h Holder) String() string {
	s := fmt.Sprintf("pid %d", h.PID)
	if h.Client != "" {
		s += " (" + h.Client + ")"
	}
	if h.Known {
		s += fmt.Sprintf(", heartbeat %s ago", h.Silent.Round(time.Millisecond))
	}
	return s
}

// Acquire waits until this process holds the slot's lease, or ctx ends. A holder whose heartbeat
// has been silent for TakeoverAfter (a frozen or cut-off process) has its lease session and the
// slot's walsender terminated. Once the lease is held, any session still streaming from the slot
// (the previous holder's walsender) is terminated too, so the new holder can stream at once.
func Acquire(ctx context.Context, opts Options) (*Lease, error) {
	if opts.TakeoverAfter <= 0 {
		return nil, errors.New("lease: TakeoverAfter must be > 0")
	}
	key := slotKey(opts.Slot)
	b := retry.New(200*time.Millisecond, 5*time.Second)
	var conn *pgx.Conn
	tookOver := false
	warnedHidden := false
	for {
		if conn == nil || conn.IsClosed() {
			c, err := opts.Connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				opts.Log.Warn().Err(err).Msg("lease: cannot connect to PostgreSQL; retrying")
				if retry.Sleep(ctx, b.Next()) != nil {
					return nil, ctx.Err()
				}
				continue
			}
			conn = c
			b.Reset()
		}
		got, err := tryLock(ctx, conn, key)
		if err == nil && got {
			l := &Lease{opts: opts, conn: conn, TookOver: tookOver, beat: time.Now(), lost: make(chan struct{}), done: make(chan struct{})}
			if err := l.clearSlot(ctx); err != nil {
				l.Release() // frees the lock: try again from the start (PostgreSQL may be restarting)
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				opts.Log.Warn().Err(err).Msg("lease: taken, but the slot could not be freed; letting it go and trying again")
				if retry.Sleep(ctx, b.Next()) != nil {
					return nil, ctx.Err()
				}
				continue
			}
			l.start()
			return l, nil
		}
		if err == nil {
			var h Holder
			h, err = readHolder(ctx, conn, key)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				err = nil // released meanwhile: try again at once
				continue
			case err != nil:
			case !h.Known:
				if !warnedHidden {
					opts.Log.Warn().Str("holder", h.String()).Msg("lease: this role cannot see the holder's heartbeat (grant it pg_read_all_stats): a frozen holder is taken over only when its connection ends")
					warnedHidden = true
				}
			case h.Silent >= opts.TakeoverAfter:
				opts.Log.Warn().Str("holder", h.String()).Str("takeover_after", opts.TakeoverAfter.String()).
					Msg("lease: the active pgcdc's heartbeat is silent; ending its sessions and taking over")
				if err = terminate(ctx, conn, h.PID); err == nil {
					err = terminateSlotHolder(ctx, conn, opts.Slot, opts.Log)
				}
				tookOver = true
			}
			if err == nil && opts.OnWait != nil {
				opts.OnWait(h)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				conn.Close(context.Background())
				return nil, ctx.Err()
			}
			opts.Log.Warn().Err(err).Msg("lease: checking the lease failed; retrying")
			if conn.IsClosed() {
				continue
			}
		}
		if retry.Sleep(ctx, opts.poll()) != nil {
			conn.Close(context.Background())
			return nil, ctx.Err()
		}
	}
}

func tryLock(ctx context.Context, conn *pgx.Conn, key int32) (bool, error) {
	var got bool
	err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1::int4, $2::int4)`, lockClass, key).Scan(&got)
	if err != nil {
		return false, fmt.Errorf("lease: pg_try_advisory_lock: %w", err)
	}
	return got, nil
}

const holderSQL = `
SELECT l.pid,
       trim(coalesce(a.application_name, '') || ' ' || coalesce(host(a.client_addr), '')),
       a.state IS NOT NULL,
       coalesce(extract(epoch FROM clock_timestamp() - coalesce(a.state_change, a.backend_start)), 0)::float8
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::int8 = $1 AND l.objid::int8 = $2
LIMIT 1`

// readHolder names the session holding the lease; pgx.ErrNoRows when none does.
func readHolder(ctx context.Context, conn *pgx.Conn, key int32) (Holder, error) {
	var h Holder
	var silent float64
	err := conn.QueryRow(ctx, holderSQL, int64(lockClass), int64(key)).Scan(&h.PID, &h.Client, &h.Known, &silent)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return h, err
		}
		return h, fmt.Errorf("lease: read the lease holder: %w", err)
	}
	h.Silent = time.Duration(silent * float64(time.Second))
	return h, nil
}

func terminate(ctx context.Context, conn *pgx.Conn, pid int32) error {
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		return fmt.Errorf("lease: pg_terminate_backend(%d): %w (the role needs to be the holder's role or a member of pg_signal_backend)", pid, err)
	}
	return nil
}

// terminateSlotHolder ends the session streaming from slot, if any, and waits (at most 10 s) until
// the slot is free.
func terminateSlotHolder(ctx context.Context, conn *pgx.Conn, slot string, log zerolog.Logger) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pid *int32
		err := conn.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && pid == nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lease: read replication slot %q: %w", slot, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lease: replication slot %q is still held by pid %d 10 s after it was terminated", slot, *pid)
		}
		log.Info().Int32("pid", *pid).Str("slot", slot).Msg("lease: ending the previous holder's replication session")
		if err := terminate(ctx, conn, *pid); err != nil {
			return err
		}
		if err := retry.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// clearSlot terminates a walsender still streaming from the slot once the lease is held: it belongs
// to a previous holder (killed, its session not yet gone; or frozen, and taken over).
func (l *Lease) clearSlot(ctx context.Context) error {
	return terminateSlotHolder(ctx, l.conn, l.opts.Slot, l.opts.Log)
}

// start runs the heartbeat: a query every TakeoverAfter/8, each bounded by TakeoverAfter/2. A
// failure, or a heartbeat that cannot answer in time, means the lease may be someone else's now.
func (l *Lease) start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() {
		defer close(l.done)
		t := time.NewTicker(l.opts.heartbeat())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			hctx, hcancel := context.WithTimeout(ctx, l.opts.TakeoverAfter/2)
			sent := time.Now()
			_, err := l.conn.Exec(hctx, `SELECT 1`)
			hcancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				l.fail(fmt.Errorf("%w: the heartbeat on its PostgreSQL session failed (another pgcdc may have taken over): %v", ErrLost, err))
				return
			}
			l.beatMu.Lock()
			l.beat = sent
			l.beatMu.Unlock()
		}
	}()
}

func (l *Lease) fail(err error) {
	l.once.Do(func() {
		l.lostErr = err
		close(l.lost)
	})
}

// Lost is closed when the lease is lost; Err then says why.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err returns why the lease was lost, once Lost is closed; nil before.
func (l *Lease) Err() error {
	select {
	case <-l.lost:
		return l.lostErr
	default:
		return nil
	}
}

// Valid returns nil while this process can prove it still holds the lease: it is not lost, and the
// last successful heartbeat was sent less than TakeoverAfter/2 ago (by the monotonic clock). A
// standby takes over only after TakeoverAfter of silence as PostgreSQL saw it, which began no
// earlier than that send, so a write allowed by Valid cannot follow a takeover, unless the process
// freezes between Valid and the write itself. A process frozen for longer than a standby waits
// fails Valid as soon as it runs again, before its heartbeat finds the session gone. The error
// wraps ErrLost.
func (l *Lease) Valid() error {
	if err := l.Err(); err != nil {
		return err
	}
	l.beatMu.Lock()
	silent := time.Since(l.beat)
	l.beatMu.Unlock()
	if limit := l.opts.TakeoverAfter / 2; silent >= limit {
		return fmt.Errorf("%w: no successful heartbeat for %s (more than half of takeover_after %s): a standby may have taken over",
			ErrLost, silent.Round(time.Millisecond), l.opts.TakeoverAfter)
	}
	return nil
}

// Release stops the heartbeat and closes the lease's session, which frees the lock.
func (l *Lease) Release() {
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	l.conn.Close(context.Background())
}
