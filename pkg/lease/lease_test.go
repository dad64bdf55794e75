package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestSlotKeyIsStableAndPositive(t *testing.T) {
	tests := []struct{ a, b string }{{"pgcdc", "pgcdc2"}, {"s", "t"}, {"", "x"}}
	for _, tt := range tests {
		ka, kb := slotKey(tt.a), slotKey(tt.b)
		if ka < 0 || kb < 0 {
			t.Errorf("slotKey(%q)=%d, slotKey(%q)=%d: want >= 0 (pg_locks.objid is unsigned)", tt.a, ka, tt.b, kb)
		}
		if ka == kb {
			t.Errorf("slotKey(%q) == slotKey(%q) = %d", tt.a, tt.b, ka)
		}
		if ka != slotKey(tt.a) {
			t.Errorf("slotKey(%q) not stable", tt.a)
		}
	}
}

func options(t *testing.T, dsn, slot string, takeoverAfter time.Duration) Options {
	return Options{
		Slot:          slot,
		TakeoverAfter: takeoverAfter,
		Log:           zerolog.New(zerolog.NewTestWriter(t)),
		Connect:       func(ctx context.Context) (*pgx.Conn, error) { return pgsource.ConnectSQL(ctx, dsn) },
	}
}

// acquireAsync runs Acquire on a goroutine the test waits for.
func acquireAsync(t *testing.T, ctx context.Context, opts Options) <-chan *Lease {
	out := make(chan *Lease, 1)
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		l, err := Acquire(ctx, opts)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("Acquire: %v", err)
			}
			close(out)
			return
		}
		out <- l
	}()
	return out
}

// A free lease is taken at once; a second process waits (seeing the holder) until it is released.
func TestLeaseWaitsForTheHolder(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := Acquire(ctx, options(t, dsn, "s1", 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if first.TookOver {
		t.Error("a free lease reported as taken over")
	}
	seen := make(chan Holder, 100)
	opts := options(t, dsn, "s1", 2*time.Second)
	opts.OnWait = func(h Holder) {
		select {
		case seen <- h:
		default:
		}
	}
	second := acquireAsync(t, ctx, opts)
	var h Holder
	select {
	case h = <-seen:
	case <-ctx.Done():
		t.Fatal("the waiting process never saw the holder")
	}
	if uint32(h.PID) != first.conn.PgConn().PID() || !h.Known {
		t.Errorf("holder %+v, want pid %d with a known heartbeat", h, first.conn.PgConn().PID())
	}
	// The holder's heartbeat keeps it: three takeover periods later the second still waits.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case l := <-second:
			l.Release()
			t.Fatal("the second process took a lease whose holder is alive")
		case h := <-seen:
			if h.Silent >= 2*time.Second {
				t.Errorf("a live holder's heartbeat silent for %s", h.Silent)
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case <-first.Lost():
		t.Fatalf("the holder lost its lease: %v", first.Err())
	default:
	}
	// A lease on another slot is independent.
	other, err := Acquire(ctx, options(t, dsn, "s2", 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	other.Release()

	first.Release()
	select {
	case l := <-second:
		if l == nil {
			t.Fatal("no lease")
		}
		if l.TookOver {
			t.Error("a released lease reported as taken over")
		}
		l.Release()
	case <-ctx.Done():
		t.Fatal("the lease was released but the second process never took it")
	}
}

// A frozen holder (its heartbeat stopped, its sessions open, its walsender streaming from the slot)
// is taken over after TakeoverAfter: its lease session and the walsender are terminated.
func TestLeaseTakesOverAFrozenHolder(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const slot = "frozen_slot"

	sql, err := pgsource.ConnectSQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer sql.Close(context.Background())
	if _, err := sql.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sql.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, slot) })
	if _, err := sql.Exec(ctx, `CREATE PUBLICATION frozen_pub FOR ALL TABLES`); err != nil {
		t.Fatal(err)
	}

	first, err := Acquire(ctx, options(t, dsn, slot, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	repl, err := pgsource.ConnectReplication(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	if err := pglogrepl.StartReplication(ctx, repl, slot, 0, pglogrepl.StartReplicationOptions{PluginArgs: []string{"proto_version '1'", "publication_names 'frozen_pub'"}}); err != nil {
		t.Fatal(err)
	}
	walsender := repl.PID()
	// Freeze: the heartbeat stops, every session stays open.
	first.cancel()
	<-first.done
	frozeAt := time.Now()

	second, err := Acquire(ctx, options(t, dsn, slot, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release()
	took := time.Since(frozeAt)
	if !second.TookOver {
		t.Error("TookOver false after taking over a frozen holder")
	}
	// Silence counts from the last heartbeat, at most one heartbeat period before the freeze.
	if earliest := time.Second - options(t, dsn, slot, time.Second).heartbeat(); took < earliest {
		t.Errorf("taken over %s after the freeze, before the heartbeat could be %s silent", took, time.Second)
	}
	t.Logf("taken over %s after the freeze (takeover_after 1s)", took.Round(time.Millisecond))
	// The frozen holder's sessions are gone: its lease connection and its walsender.
	if _, err := first.conn.Exec(ctx, `SELECT 1`); err == nil {
		t.Error("the frozen holder's lease session still answers")
	}
	var active bool
	var pid *int32
	if err := sql.QueryRow(ctx, `SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active, &pid); err != nil {
		t.Fatal(err)
	}
	if active {
		t.Errorf("slot still active (pid %v; the frozen walsender was %d)", pid, walsender)
	}
	first.conn.Close(context.Background())
}

// A holder whose lease session is terminated (as a takeover does) sees Lost close.
func TestLeaseLostWhenItsSessionEnds(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Acquire(ctx, options(t, dsn, "lost", time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	sql, err := pgsource.ConnectSQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer sql.Close(context.Background())
	if _, err := sql.Exec(ctx, `SELECT pg_terminate_backend($1)`, l.conn.PgConn().PID()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
		if !errors.Is(l.Err(), ErrLost) {
			t.Errorf("Err() = %v, want ErrLost", l.Err())
		}
	case <-ctx.Done():
		t.Fatal("Lost never closed after the lease session was terminated")
	}
}

// Valid holds while heartbeats succeed and fails (wrapping ErrLost) once the last successful one was
// sent TakeoverAfter/2 ago: a process that was frozen must not write before it learns it lost.
func TestLeaseValidNeedsARecentHeartbeat(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Acquire(ctx, options(t, dsn, "valid", 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	// Three seconds of heartbeats: valid throughout.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if err := l.Valid(); err != nil {
			t.Fatalf("Valid with a live heartbeat: %v", err)
		}
	}
	// Freeze the heartbeat.
	l.cancel()
	<-l.done
	stopped := time.Now()
	for l.Valid() == nil {
		if time.Since(stopped) > 5*time.Second {
			t.Fatal("Valid still nil 5 s after the heartbeat stopped (takeover_after 2s)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := l.Valid(); !errors.Is(err, ErrLost) {
		t.Fatalf("Valid = %v, want ErrLost", err)
	}
	if waited := time.Since(stopped); waited > 1500*time.Millisecond {
		t.Errorf("Valid failed %s after the heartbeat stopped, want within takeover_after/2 (1s) plus a heartbeat period", waited)
	}
}
