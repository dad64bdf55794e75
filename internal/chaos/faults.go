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

// intN draws from the run's generator (shared by the lanes).
func (r *run) intN(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rng.IntN(n)
}

// slotWindow sets f's duplicate window to what a pgcdc process that just stopped publishing (killed
// or frozen) may have left unconfirmed: from the slot's confirmed position to the WAL flushed now.
func (r *run) slotWindow(ctx context.Context, f *Fault) (err error) {
	if f.Floor, err = r.srv.confirmedFlush(ctx); err != nil {
		return err
	}
	f.Ceil, err = r.srv.walFlush(ctx)
	return err
}

// killConnector: SIGKILL, proven by the wait status; the slot's position after the death is the
// floor (the next process starts there); a new process is started after a random delay.
func (r *run) killConnector(ctx context.Context, f *Fault) error {
	r.conn.life.Lock()
	defer r.conn.life.Unlock()
	if r.conn.ha { // kill the active one, once a takeover under way is over
		if _, _, err := r.conn.pair(ctx, 3*time.Minute); err != nil {
			return err
		}
	}
	pid, ws, err := r.conn.kill(30 * time.Second)
	if err != nil {
		return err
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return fmt.Errorf("pgcdc pid %d: wait status %#x does not say SIGKILL", pid, uint32(ws))
	}
	if err := r.slotWindow(ctx, f); err != nil {
		return err
	}
	if err := sleepCtx(ctx, time.Duration(r.intN(2000))*time.Millisecond); err != nil {
		return err
	}
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
// is gone from pg_stat_activity and another walsender holds the slot. A walsender that ends on its
// own between the lookup and the termination (another lane's fault) makes it try again.
func (r *run) terminateWalsender(ctx context.Context, f *Fault) error {
	var pid int32
	for attempt := 0; ; attempt++ {
		if err := r.srv.waitActive(ctx, r.conn, 3*time.Minute); err != nil {
			return err
		}
		var ok bool
		err := r.srv.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
			var floor *string
			err := db.QueryRow(ctx, `SELECT coalesce(active_pid, 0), confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slotName).Scan(&pid, &floor)
			if err != nil {
				return err
			}
			if f.Floor, err = r.srv.lsnOf(floor); err != nil || pid == 0 {
				return err
			}
			return db.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok)
		})
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if attempt == 20 {
			return fmt.Errorf("pg_terminate_backend(%d) returned false 20 times", pid)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	newPID, err := r.waitNewWalsender(ctx, pid)
	if err != nil {
		return err
	}
	if f.Ceil, err = r.srv.walFlush(ctx); err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("walsender pid %d terminated and gone from pg_stat_activity; slot now held by walsender pid %d", pid, newPID)
	return nil
}

// waitNewWalsender waits until backend pid is gone and another walsender holds the slot.
func (r *run) waitNewWalsender(ctx context.Context, pid int32) (int32, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var newPID int32
		gone, err := r.srv.backendGone(ctx, uint32(pid))
		if err == nil && gone {
			newPID, err = r.srv.activePID(ctx)
			if err == nil && newPID != 0 && newPID != pid {
				return newPID, nil
			}
		}
		if err := r.conn.unexpected(); err != nil {
			return 0, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("walsender %d: gone %v, slot held by %d after 3m (%v)", pid, gone, newPID, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return 0, err
		}
	}
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
// comes back at the position persisted at the last checkpoint. A fast stop's checkpoint writes only
// the slots marked dirty, and before PostgreSQL 17 a confirmed position alone does not mark a
// logical slot dirty (only a new restart_lsn or catalog_xmin does): the slot may come back older
// after a fast restart too. In both modes the floor is the lower of the slot's position before the
// stop and after the restart.
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
	stopAt := time.Now()
	inTime := r.srv.pg.StopWithin(mode, 30*time.Second)
	stopped := "in " + time.Since(stopAt).Round(time.Millisecond).String()
	if !inTime {
		// A fast shutdown waits for each walsender's client to confirm what it was sent.
		stopped = "killed after 30s: the shutdown did not finish"
	}
	down := time.Duration(r.intN(3000)) * time.Millisecond
	time.Sleep(down)
	// Started again even when the run is being cancelled: the writers wait for PostgreSQL to settle
	// their last transaction.
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
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
	again, err := r.srv.confirmedFlush(ctx)
	if err != nil {
		return err
	}
	if again < f.Floor {
		rewound = fmt.Sprintf("; slot came back at %s, below %s confirmed before the stop", fmtLSN(again), fmtLSN(f.Floor))
		f.Floor = again
	}
	if f.Ceil, err = r.srv.walFlush(ctx); err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("PostgreSQL stopped (%s, postmaster pid %d, %s), down %s, postmaster start time %s -> %s (pid %d)",
		name, oldPID, stopped, down.Round(time.Millisecond), before.Format("15:04:05.000"), after.Format("15:04:05.000"), r.srv.pg.PID()) + rewound
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
