package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/connector"
	"github.com/pgcdc/pgcdc/internal/metrics"
	"github.com/pgcdc/pgcdc/internal/opshttp"
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
