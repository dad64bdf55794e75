package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// The standby pair (Options.Standby): two pgcdc processes with ha.enabled. These are the takeover
// faults and the pair's helpers; connector.go keeps cur on the active process (refreshRoles).

const (
	logStreaming    = `"message":"streaming"`
	logStandbyWaits = "standby: the slot's lease is held by another process"
	logStoodBy      = "standby: waiting for the slot's lease"
)

// waitStandby waits until the standby process says it waits for the lease.
func (c *connector) waitStandby(ctx context.Context, limit time.Duration) error {
	c.mu.Lock()
	sb := c.sb
	c.mu.Unlock()
	if sb == nil {
		return errors.New("no standby pgcdc")
	}
	return c.waitLog(ctx, sb, logStandbyWaits, 1, limit)
}

// waitLog waits until process p's log holds substr at least n times.
func (c *connector) waitLog(ctx context.Context, p *cproc, substr string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for strings.Count(readLog(p.logPath, p.logFrom), substr) < n {
		if err := c.unexpected(); err != nil {
			return err
		}
		select {
		case <-p.done:
			return fmt.Errorf("pgcdc pid %d exited (%v) before logging %q %d times\n%s", p.pid, p.state, substr, n, tailOf(p.logPath))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgcdc pid %d did not log %q %d times within %s\n%s", p.pid, substr, n, limit, tailOf(p.logPath))
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// stopStandby sends SIGTERM to the standby and returns its exit code.
func (c *connector) stopStandby(limit time.Duration) (int, error) {
	c.mu.Lock()
	p := c.sb
	c.mu.Unlock()
	if p == nil {
		return 0, errors.New("no standby pgcdc to stop")
	}
	return c.stopProc(p, limit)
}

// pair waits (at most limit) until cur is the active process and sb a live standby, following a
// takeover still under way; c.life is held.
func (c *connector) pair(ctx context.Context, limit time.Duration) (active, standby *cproc, err error) {
	deadline := time.Now().Add(limit)
	for {
		if err := c.restartPending(0); err != nil {
			return nil, nil, err
		}
		c.refreshRoles(ctx)
		c.mu.Lock()
		a, s := c.cur, c.sb
		c.mu.Unlock()
		if a != nil && s != nil {
			av, aok := a.metric(ctx, "pgcdc_ha_active")
			sv, sok := s.metric(ctx, "pgcdc_ha_active")
			if aok && av == 1 && sok && sv == 0 && strings.Contains(readLog(a.logPath, a.logFrom), logStreaming) {
				return a, s, nil
			}
		}
		if err := c.unexpected(); err != nil {
			return nil, nil, err
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("no active pgcdc with a waiting standby within %s\n%s", limit, c.tail())
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, nil, err
		}
	}
}

// takeoverKill: SIGKILL of the active process (proven by the wait status); counted once the standby
// streams; the killed one is started again and stands by. Floor and ceiling as a connector kill.
func (r *run) takeoverKill(ctx context.Context, f *Fault) error {
	c := r.conn
	c.life.Lock()
	defer c.life.Unlock()
	active, standby, err := c.pair(ctx, 3*time.Minute)
	if err != nil {
		return err
	}
	streams := strings.Count(readLog(standby.logPath, standby.logFrom), logStreaming)
	began := time.Now()
	pid, ws, err := c.kill(30 * time.Second)
	if err != nil {
		return err
	}
	if pid != active.pid || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return fmt.Errorf("pgcdc pid %d (active %d): wait status %#x does not say SIGKILL", pid, active.pid, uint32(ws))
	}
	if err := r.slotWindow(ctx, f); err != nil {
		return err
	}
	if err := c.waitLog(ctx, standby, logStreaming, streams+1, 3*time.Minute); err != nil {
		return err
	}
	took := time.Since(began)
	if err := c.start(); err != nil {
		return err
	}
	c.mu.Lock()
	restarted := c.cur
	c.mu.Unlock()
	if err := c.waitLog(ctx, restarted, logStandbyWaits, 1, 3*time.Minute); err != nil {
		return err
	}
	c.refreshRoles(ctx)
	f.Evidence = fmt.Sprintf("active pgcdc pid %d killed (wait status %#x: signal %v); standby pid %d streamed %s later; pid %d started as the standby",
		pid, uint32(ws), ws.Signal(), standby.pid, took.Round(time.Millisecond), restarted.pid)
	return nil
}

// takeoverFreeze: SIGSTOP of the active process (proven by its state T); counted once the standby
// streams, the frozen one is thawed and says it stands by. The frozen process cannot confirm or
// publish while stopped, so the floor is the slot's position and the ceiling the WAL written when it
// froze; a stale write after the thaw would be of that range too.
func (r *run) takeoverFreeze(ctx context.Context, f *Fault) error {
	c := r.conn
	c.life.Lock()
	defer c.life.Unlock()
	active, standby, err := c.pair(ctx, 3*time.Minute)
	if err != nil {
		return err
	}
	streams := strings.Count(readLog(standby.logPath, standby.logFrom), logStreaming)
	stoodBy := strings.Count(readLog(active.logPath, active.logFrom), logStoodBy)
	began := time.Now()
	if err := syscall.Kill(active.pid, syscall.SIGSTOP); err != nil {
		return err
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = syscall.Kill(active.pid, syscall.SIGCONT)
		}
	}()
	state := ""
	for i := 0; i < 100 && state != "T"; i++ {
		if state = procState(active.pid); state != "T" {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if state != "T" {
		return fmt.Errorf("pgcdc pid %d: state %q after SIGSTOP, want T (stopped)", active.pid, state)
	}
	if err := r.slotWindow(ctx, f); err != nil {
		return err
	}
	if err := c.waitLog(ctx, standby, logStreaming, streams+1, 3*time.Minute); err != nil {
		return err
	}
	took := time.Since(began)
	from := int64(len(readLog(active.logPath, 0)))
	thawed = true
	if err := syscall.Kill(active.pid, syscall.SIGCONT); err != nil {
		return err
	}
	if err := c.waitLog(ctx, active, logStoodBy, stoodBy+1, 3*time.Minute); err != nil {
		return err
	}
	why := "lease lost"
	switch after := readLog(active.logPath, from); {
	case strings.Contains(after, "fenced by a newer active process"):
		why = "fenced by Kafka"
	case strings.Contains(after, "kafka write withheld"):
		why = "write withheld: heartbeat too old"
	}
	c.refreshRoles(ctx)
	f.Evidence = fmt.Sprintf("active pgcdc pid %d frozen (SIGSTOP, state T); standby pid %d streamed %s later; thawed, pid %d stood by (%s)",
		active.pid, standby.pid, took.Round(time.Millisecond), active.pid, why)
	return nil
}
