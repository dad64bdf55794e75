package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/connector"
	"github.com/pgcdc/pgcdc/internal/check"
	"github.com/pgcdc/pgcdc/internal/metrics"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
	"github.com/pgcdc/pgcdc/pkg/version"
)

const runSummary = `Usage: pgcdc run [--config FILE]

Streams the changes of the captured tables to Kafka until SIGINT/SIGTERM, then finishes the current
transaction, waits for Kafka to acknowledge what is in flight, confirms and exits 0.
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
		closeOps, err := serveOps("metrics.listen", cfg.Metrics.Listen, m, log)
		if err != nil {
			log.Error().Err(err).Msg("pgcdc cannot start")
			return 1
		}
		defer closeOps()
	}

	c, err := connector.New(cfg, log, m)
	if err != nil {
		m.Error(metrics.ErrStartup)
		log.Error().Err(err).Msg("pgcdc cannot start")
		return 1
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if cfg.Metrics.Enabled() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pollSlot(pollCtx, cfg, m, log)
		}()
	}
	defer func() { stopPoll(); wg.Wait() }()
	if err := c.Run(ctx); err != nil {
		log.Error().Err(err).Msg("pgcdc stopped on an error")
		return 1
	}
	return 0
}

// pollSlot reads the slot's server-side state (WAL end, confirmed flush, wal_status) for the
// metrics at the status interval, on a connection of its own.
func pollSlot(ctx context.Context, cfg config.Config, m *metrics.Metrics, log zerolog.Logger) {
	connStr, err := cfg.Postgres.ConnString()
	if err != nil {
		return
	}
	every := cfg.Postgres.StatusInterval
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	failures := 0
	for {
		if conn == nil || conn.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			conn, err = pgsource.ConnectSQL(cctx, connStr)
			cancel()
			if err != nil {
				conn = nil
			}
		}
		if conn != nil {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var st check.SlotStatus
			st, err = check.ReadSlot(qctx, conn, cfg.Postgres.Slot)
			cancel()
			if err == nil && st.Exists {
				m.SetSlot(metrics.Slot{ServerWALEnd: uint64(st.ServerWALEnd), ConfirmedFlush: uint64(st.ConfirmedFlush), RestartLSN: uint64(st.RestartLSN),
					WALStatus: st.WALStatus, SafeWALSize: st.SafeWALSize, Active: st.Active})
			}
			if err != nil {
				conn.Close(context.Background())
				conn = nil
			}
		}
		if err != nil && ctx.Err() == nil {
			m.Error(metrics.ErrSlotPoll)
			if failures++; failures == 1 || failures%60 == 0 {
				log.Warn().Err(err).Msg("slot metrics: cannot read the slot's state; retrying")
			}
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
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
