package check

import (
	"context"
	"time"

	"github.com/pgcdc/pgcdc/config"
)

// Run checks cfg against the servers it names, bounding each server's checks by timeout (0: the
// configured connect timeouts, capped at 15 s), and returns the report. It changes nothing.
func Run(ctx context.Context, cfg config.Config, timeout time.Duration) *Report {
	r := &Report{}
	r.add(OK, "config", "", "configuration is valid")
	pgTimeout, kTimeout := timeout, timeout
	if timeout <= 0 {
		pgTimeout, kTimeout = min(cfg.Postgres.ConnectTimeout, 15*time.Second), min(cfg.Kafka.ConnectTimeout, 15*time.Second)
	}
	pctx, cancel := context.WithTimeout(ctx, pgTimeout)
	tables := checkPostgres(pctx, cfg, r)
	cancel()
	kctx, cancel := context.WithTimeout(ctx, kTimeout)
	checkKafka(kctx, cfg, tables, r)
	cancel()
	return r
}
