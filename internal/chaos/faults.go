package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// faultLoop injects faults in a shuffled rotation of the kinds, at random moments, until the fault
// phase is over and at least MinFaults were injected (bounded by twice the phase). It returns early
// when a writer fails or pgcdc ends on its own.
func (r *run) faultLoop(ctx context.Context, werr <-chan error) error {
	start := time.Now()
	var rotation []Kind
	for {
		elapsed := time.Since(start)
		if elapsed >= r.opts.Duration && len(r.res.Faults) >= r.opts.MinFaults {
			return nil
		}
		if elapsed >= 2*r.opts.Duration {
			return fmt.Errorf("only %d faults in %s (want %d)", len(r.res.Faults), elapsed.Round(time.Second), r.opts.MinFaults)
		}
		gap := r.opts.GapMin + time.Duration(r.rng.Int64N(int64(r.opts.GapMax-r.opts.GapMin)+1))
		if err := r.pause(ctx, gap, werr); err != nil {
			return err
		}
		if len(rotation) == 0 {
			rotation = append([]Kind(nil), r.opts.Kinds...)
			r.rng.Shuffle(len(rotation), func(i, j int) { rotation[i], rotation[j] = rotation[j], rotation[i] })
		}
		kind := rotation[0]
		rotation = rotation[1:]
		f := Fault{Kind: kind, At: time.Now()}
		err := r.inject(ctx, &f)
		f.Took = time.Since(f.At)
		if err != nil {
			r.srv.saveLogs(r.opts.WorkDir)
			return fmt.Errorf("fault %d (%s): %w", len(r.res.Faults)+1, kind, err)
		}
		r.res.Faults = append(r.res.Faults, f)
		r.logf("chaos: fault %d at +%s: %s (%s): %s; duplicate window (%s, %s]", len(r.res.Faults),
			f.At.Sub(start).Round(time.Second), f.Kind, f.Took.Round(time.Millisecond), f.Evidence, fmtLSN(f.Floor), fmtLSN(f.Ceil))
	}
}

// pause waits for d, watching for a failed writer or a pgcdc that ended on its own.
func (r *run) pause(ctx context.Context, d time.Duration, werr <-chan error) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := r.conn.unexpected(); err != nil {
			return err
		}
		select {
		case err := <-werr:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Until(deadline), 250*time.Millisecond)):
		}
	}
	return r.conn.unexpected()
}

func (r *run) inject(ctx context.Context, f *Fault) error {
	switch f.Kind {
	case ConnectorKill:
		return r.killConnector(ctx, f)
	case WalsenderTerminate:
		return r.terminateWalsender(ctx, f)
	case BrokerRestart, BrokerKill:
		return r.restartBroker(ctx, f)
	case PGRestartFast, PGRestartImmediate:
		return r.restartPostgres(ctx, f)
	case BrokerPause:
		return r.pauseBroker(ctx, f)
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}

// killConnector: SIGKILL, proven by the wait status; the slot's position after the death is the
// floor (the next process starts there); a new process is started after a random delay.
func (r *run) killConnector(ctx context.Context, f *Fault) error {
	pid, ws, err := r.conn.kill(30 * time.Second)
	if err != nil {
		return err
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return fmt.Errorf("pgcdc pid %d: wait status %#x does not say SIGKILL", pid, uint32(ws))
	}
	if f.Floor, err = r.srv.confirmedFlush(ctx); err != nil {
		return err
	}
	if f.Ceil, err = r.srv.walFlush(ctx); err != nil {
		return err
	}
	time.Sleep(time.Duration(r.rng.IntN(2000)) * time.Millisecond)
	if err := r.conn.start(); err != nil {
		return err
	}
	newPID := r.conn.pid()
	if newPID == pid || newPID == 0 {
		return fmt.Errorf("no new pgcdc process (pid %d)", newPID)
	}
	f.Evidence = fmt.Sprintf("pgcdc pid %d killed (wait status %#x: signal %v), restarted as pid %d", pid, uint32(ws), ws.Signal(), newPID)
	return nil
}

// terminateWalsender: pg_terminate_backend of the walsender holding the slot; counted once that pid
// is gone from pg_stat_activity and another walsender holds the slot.
func (r *run) terminateWalsender(ctx context.Context, f *Fault) error {
	if err := r.srv.waitActive(ctx, r.conn, 2*time.Minute); err != nil {
		return err
	}
	var pid int32
	var ok bool
	err := r.srv.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
		var floor *string
		err := db.QueryRow(ctx, `SELECT active_pid, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slotName).Scan(&pid, &floor)
		if err != nil {
			return err
		}
		f.Floor, err = r.srv.lsnOf(floor)
		if err != nil {
			return err
		}
		return db.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok)
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pg_terminate_backend(%d) returned false", pid)
	}
	deadline := time.Now().Add(2 * time.Minute)
	var newPID int32
	for {
		gone, err := r.srv.backendGone(ctx, uint32(pid))
		if err == nil && gone {
			newPID, err = r.srv.activePID(ctx)
			if err == nil && newPID != 0 && newPID != pid {
				break
			}
		}
		if err := r.conn.unexpected(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("walsender %d: gone %v, slot held by %d after 2m (%v)", pid, gone, newPID, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if f.Ceil, err = r.srv.walFlush(ctx); err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("walsender pid %d terminated and gone from pg_stat_activity; slot now held by walsender pid %d", pid, newPID)
	return nil
}

// restartBroker stops the broker (SIGTERM, or SIGKILL for broker-kill), leaves it down for up to 5 s
// and starts it again; counted when it runs under a new pid. Batches in flight when it went down may
// be written twice: the window is everything not confirmed before the stop up to the WAL position
// once the old broker is gone.
func (r *run) restartBroker(ctx context.Context, f *Fault) error {
	var err error
	if f.Floor, err = r.srv.confirmedFlush(ctx); err != nil {
		return err
	}
	k := r.srv.kafka
	oldPID := k.PID()
	how := "SIGTERM"
	if f.Kind == BrokerKill {
		how = "SIGKILL"
		k.Kill()
	} else {
		k.Stop()
	}
	if f.Ceil, err = r.srv.walFlush(ctx); err != nil {
		return err
	}
	down := time.Duration(r.rng.IntN(5000)) * time.Millisecond
	time.Sleep(down)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := k.Start(sctx); err != nil {
		return fmt.Errorf("broker did not come back: %w", err)
	}
	if k.PID() == oldPID {
		return fmt.Errorf("broker pid unchanged (%d)", oldPID)
	}
	f.Evidence = fmt.Sprintf("broker pid %d stopped by %s, down %s, restarted as pid %d", oldPID, how, down.Round(time.Millisecond), k.PID())
	return nil
}

// pauseBroker freezes the broker's JVM (SIGSTOP) for 3 to 15 s, longer than pgcdc's write timeout
// half of the time, then thaws it; counted when /proc showed the process stopped. A write that timed
// out may have been written: the window is as for a broker restart, up to the WAL position at the thaw.
func (r *run) pauseBroker(ctx context.Context, f *Fault) error {
	var err error
	if f.Floor, err = r.srv.confirmedFlush(ctx); err != nil {
		return err
	}
	k := r.srv.kafka
	pid := k.PID()
	if err := k.Pause(); err != nil {
		return err
	}
	state := ""
	for i := 0; i < 50 && state != "T"; i++ {
		state = procState(pid)
		time.Sleep(20 * time.Millisecond)
	}
	frozen := time.Duration(3000+r.rng.IntN(12000)) * time.Millisecond
	time.Sleep(frozen)
	if err := k.Resume(); err != nil {
		return err
	}
	if state != "T" {
		return fmt.Errorf("broker pid %d not stopped after SIGSTOP (state %q)", pid, state)
	}
	if f.Ceil, err = r.srv.walFlush(ctx); err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("broker pid %d frozen by SIGSTOP (/proc state T) for %s, then SIGCONT (state now %s)", pid, frozen.Round(time.Millisecond), procState(pid))
	return nil
}

// procState is the state letter of a process in /proc/<pid>/stat ("" when unreadable).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// restartPostgres restarts PostgreSQL in fast or immediate mode; counted when
// pg_postmaster_start_time() changed. An immediate stop skips the shutdown checkpoint, so the slot
// comes back at the position persisted at the last checkpoint: the floor is the lower of the slot's
// position before the stop and after the restart.
func (r *run) restartPostgres(ctx context.Context, f *Fault) error {
	before, err := r.srv.postmasterStart(ctx)
	if err != nil {
		return err
	}
	if f.Floor, err = r.srv.confirmedFlush(ctx); err != nil {
		return err
	}
	oldPID := r.srv.pg.PID()
	mode, name := testenv.StopFast, "fast"
	if f.Kind == PGRestartImmediate {
		mode, name = testenv.StopImmediate, "immediate"
	}
	r.srv.pg.Stop(mode)
	down := time.Duration(r.rng.IntN(3000)) * time.Millisecond
	time.Sleep(down)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := r.srv.pg.Start(sctx); err != nil {
		return fmt.Errorf("PostgreSQL did not come back: %w", err)
	}
	after, err := r.srv.postmasterStart(ctx)
	if err != nil {
		return err
	}
	if !after.After(before) {
		return fmt.Errorf("pg_postmaster_start_time() did not change (%s)", after)
	}
	rewound := ""
	if f.Kind == PGRestartImmediate {
		again, err := r.srv.confirmedFlush(ctx)
		if err != nil {
			return err
		}
		if again < f.Floor {
			rewound = fmt.Sprintf("; slot came back at %s, below %s confirmed before the crash", fmtLSN(again), fmtLSN(f.Floor))
			f.Floor = again
		}
	}
	if f.Ceil, err = r.srv.walFlush(ctx); err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("PostgreSQL stopped (%s, postmaster pid %d), down %s, postmaster start time %s -> %s (pid %d)",
		name, oldPID, down.Round(time.Millisecond), before.Format("15:04:05.000"), after.Format("15:04:05.000"), r.srv.pg.PID()) + rewound
	return nil
}

var errNoLSN = errors.New("no LSN")

// lsnOf parses a nullable LSN text.
func (s *servers) lsnOf(v *string) (uint64, error) {
	if v == nil {
		return 0, errNoLSN
	}
	var hi, lo uint32
	if _, err := fmt.Sscanf(*v, "%X/%X", &hi, &lo); err != nil {
		return 0, err
	}
	return uint64(hi)<<32 | uint64(lo), nil
}
