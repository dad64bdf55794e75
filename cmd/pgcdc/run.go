package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/connector"
	"github.com/pgcdc/pgcdc/internal/metrics"
	"github.com/pgcdc/pgcdc/internal/opshttp"
	"github.com/pgcdc/pgcdc/internal/retry"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/lease"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/version"
)

const runSummary = `Usage: pgcdc run [--config FILE]

Streams the changes of the captured tables to Kafka until SIGINT/SIGTERM, then finishes the current
transaction, waits for Kafka to acknowledge what is in flight, confirms and exits 0. The stop is
bounded by kafka.shutdown_timeout: past it pgcdc exits 1, having confirmed only what Kafka
acknowledged (the next start sends the rest again).
Serves /metrics, /healthz and /readyz on metrics.listen (default :9187; off disables).
`

func runFlags(fs *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configPath := configFlag(fs)
	return func(stdout, stderr io.Writer) int {
		cfg, ok := loadConfig(*configPath, stderr)
		if !ok {
			return 2
		}
		return runConnector(cfg, newLogger(cfg.Log, stdout))
	}
}

func runConnector(cfg config.Config, log zerolog.Logger) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	setMemoryLimit(cfg, log)

	m := metrics.New(version.String())
	// Readiness: no acknowledgement for this long while events are in flight means not ready.
	m.StallAfter = max(2*cfg.Kafka.WriteTimeout, 10*time.Second)
	if cfg.Metrics.Enabled() {
		closeOps, err := serveOps(opshttp.Options{Key: "metrics.listen", Listen: cfg.Metrics.Listen,
			WebConfigKey: "metrics.web_config_file", WebConfigFile: cfg.Metrics.WebConfigFile}, m, log)
		if err != nil {
			log.Error().Err(err).Msg("pgcdc cannot start")
			return 1
		}
		defer closeOps()
	}

	logKafkaWarnings(log, cfg.Kafka, cfg.Kafka.Brokers)
	if cfg.HA.Enabled {
		return runHA(ctx, cfg, log, m)
	}
	c, err := connector.New(cfg, log, m)
	if err != nil {
		m.Error(metrics.ErrStartup)
		log.Error().Err(err).Msg("pgcdc cannot start")
		return 1
	}
	if err := c.Run(ctx); err != nil {
		log.Error().Err(err).Msg("pgcdc stopped on an error")
		return 1
	}
	return 0
}

// runHA runs the connector while this process holds the slot's lease (ha.enabled): it waits as a
// standby until the lease is free or its holder's heartbeat is silent for ha.takeover_after, streams
// until it stops or loses the lease (or Kafka fences its producer: another process took over), and
// then waits as a standby again.
func runHA(ctx context.Context, cfg config.Config, log zerolog.Logger, m *metrics.Metrics) int {
	connStr, err := cfg.Postgres.ConnString()
	if err != nil {
		log.Error().Err(err).Msg("pgcdc cannot start")
		return 1
	}
	opts := lease.Options{
		Slot:          cfg.Postgres.Slot,
		TakeoverAfter: cfg.HA.TakeoverAfter,
		Log:           log,
		Connect:       func(ctx context.Context) (*pgx.Conn, error) { return pgsource.ConnectSQL(ctx, connStr) },
	}
	b := retry.New(time.Second, 30*time.Second)
	for {
		m.Standby("the lease of slot " + cfg.Postgres.Slot + " is not held yet")
		log.Info().Str("slot", cfg.Postgres.Slot).Str("takeover_after", cfg.HA.TakeoverAfter.String()).Msg("standby: waiting for the slot's lease")
		var holder int32
		opts.OnWait = func(h lease.Holder) {
			m.Standby("the lease of slot " + cfg.Postgres.Slot + " is held by " + h.String())
			if h.PID != holder {
				log.Info().Str("holder", h.String()).Msg("standby: the slot's lease is held by another process")
				holder = h.PID
			}
		}
		waited := time.Now()
		l, err := lease.Acquire(ctx, opts)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			log.Error().Err(err).Msg("pgcdc cannot take the slot's lease")
			return 1
		}
		m.Active(l.TookOver)
		log.Info().Bool("took_over", l.TookOver).Float64("waited_s", time.Since(waited).Seconds()).Msg("active: holding the slot's lease")
		stop, err := runActive(ctx, cfg, log, m, l)
		l.Release()
		if stop {
			return 0
		}
		var fenced *kafkasink.FencedError
		switch {
		case errors.Is(err, lease.ErrLost):
			log.Warn().Err(err).Msg("lost the slot's lease; standing by")
		case errors.As(err, &fenced):
			log.Warn().Err(err).Msg("fenced by a newer active process; standing by")
		case connectionLost(err):
			// PostgreSQL restarting or unreachable (during start-up, or a failure the stream does
			// not retry): another process may do better; this one stands by again after a pause.
			pause := b.Next()
			log.Warn().Err(err).Float64("retry_in_s", pause.Seconds()).Msg("lost the connection to PostgreSQL; standing by")
			if retry.Sleep(ctx, pause) != nil {
				return 0
			}
			continue
		default:
			log.Error().Err(err).Msg("pgcdc stopped on an error")
			return 1
		}
		b.Reset()
	}
}

// connectionLost reports a failure of the connection to PostgreSQL, not of pgcdc's setup: the
// server shutting down or terminating the session (SQLSTATE classes 57 and 08), a refused, reset
// or timed-out connection, an EOF. A certificate or authentication problem is not one.
func connectionLost(err error) bool {
	if pgsource.IsPermanent(err) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57") || strings.HasPrefix(pgErr.Code, "08")
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return errors.As(err, &netErr) || errors.As(err, &connectErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// runActive runs the connector until ctx ends (stop true) or it fails or loses the lease.
func runActive(ctx context.Context, cfg config.Config, log zerolog.Logger, m *metrics.Metrics, l *lease.Lease) (stop bool, err error) {
	c, err := connector.New(cfg, log, m)
	if err != nil {
		m.Error(metrics.ErrStartup)
		return false, err
	}
	c.HoldWhile(l)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.Lost():
			cancel()
		case <-runCtx.Done():
		}
	}()
	err = c.Run(runCtx)
	if lost := l.Err(); lost != nil {
		return false, lost
	}
	if err == nil && ctx.Err() != nil {
		return true, nil
	}
	if err == nil {
		err = errors.New("the connector stopped without an error or a stop request")
	}
	return false, err
}

// setMemoryLimit gives the Go runtime a soft memory limit derived from kafka.max_in_flight_bytes
// (twice the in-flight bound plus 64 MiB for everything else), so the heap is collected before it
// doubles; GOMEMLIMIT, when set, wins.
func setMemoryLimit(cfg config.Config, log zerolog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := 2*int64(cfg.Kafka.MaxInFlightBytes) + 64<<20
	debug.SetMemoryLimit(limit)
	log.Debug().Int64("bytes", limit).Msg("Go soft memory limit")
}
