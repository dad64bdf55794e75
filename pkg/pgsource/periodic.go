package pgsource

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// Periodic describes a job run at an interval on a PostgreSQL connection of its own (the
// publication refresh, the heartbeat, the slot metrics poller).
type Periodic struct {
	Name       string        // for logs: "heartbeat", "publication refresh", ...
	ConnString string        // with the password: never logged
	Interval   time.Duration // time between runs
	Timeout    time.Duration // bound of one run (and of one connection attempt); default 30s
	Immediate  bool          // run once at the start instead of after the first interval
	Log        zerolog.Logger
	OnError    func(error) // called for every failed run or connection attempt (metrics); may be nil
}

// StopJob wraps a job's error that must end the periodic job and be returned by Run.
func StopJob(err error) error { return &stopJob{err} }

type stopJob struct{ err error }

func (e *stopJob) Error() string { return e.err.Error() }
func (e *stopJob) Unwrap() error { return e.err }

// Run calls job at every interval until ctx ends (then it returns nil) or job returns an error made
// with StopJob (then it returns that error). The connection is opened on first use and opened again
// after any failure; a failed run is logged (the first of a streak, then one in 60) and retried at
// the next interval.
func (p Periodic) Run(ctx context.Context, job func(ctx context.Context, conn *pgx.Conn) error) error {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	ticker := time.NewTicker(p.Interval)
	defer ticker.Stop()
	failures := 0
	first := p.Immediate
	for {
		if !first {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
			}
		}
		first = false
		err := func() error {
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if conn == nil || conn.IsClosed() {
				c, err := ConnectSQL(rctx, p.ConnString)
				if err != nil {
					return err
				}
				conn = c
			}
			return job(rctx, conn)
		}()
		var stop *stopJob
		switch {
		case err == nil:
			if failures > 0 {
				p.Log.Info().Str("job", p.Name).Int("failures", failures).Msg("periodic job recovered")
			}
			failures = 0
		case errors.As(err, &stop):
			return stop.err
		case ctx.Err() != nil:
			return nil
		default:
			if p.OnError != nil {
				p.OnError(err)
			}
			if failures++; failures == 1 || failures%60 == 0 {
				p.Log.Warn().Err(err).Str("job", p.Name).Int("failures", failures).Msg("periodic job failed; retrying at the next interval")
			}
			if conn != nil && !IsPermanent(err) {
				conn.Close(context.Background()) // a fresh connection for the next run
				conn = nil
			}
		}
	}
}
