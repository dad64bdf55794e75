package check

import (
	"context"
	"time"

	"github.com/pgcdc/pgcdc/config"
)

// DefaultMaxSlotLag is the default of Options.MaxSlotLag.
const DefaultMaxSlotLag = 1 << 30

// Options tune a check run.
type Options struct {
	// Timeout bounds each server's checks; 0: the configured connect timeouts, capped at 15 s.
	Timeout time.Duration
	// MaxSlotLag is the WAL (bytes) an existing slot may leave unconfirmed or retain before check
	// warns; 0: DefaultMaxSlotLag.
	MaxSlotLag int64
	// SkipRowSizes leaves out the measurement of each captured table's largest row (a scan bounded
	// by rowScanBudget per table) against its topic's max.message.bytes.
	SkipRowSizes bool
}

// Run checks cfg against the servers it names and returns the report. It changes nothing.
func Run(ctx context.Context, cfg config.Config, o Options) *Report {
	if o.MaxSlotLag <= 0 {
		o.MaxSlotLag = DefaultMaxSlotLag
	}
	r := &Report{}
	r.add(OK, "config", "", "configuration is valid")
	pgTimeout, kTimeout := o.Timeout, o.Timeout
	if o.Timeout <= 0 {
		pgTimeout, kTimeout = min(cfg.Postgres.ConnectTimeout, 15*time.Second), min(cfg.Kafka.ConnectTimeout, 15*time.Second)
	}
	pctx, cancel := context.WithTimeout(ctx, pgTimeout)
	src := checkPostgres(pctx, cfg, o, r)
	cancel()
	kctx, cancel := context.WithTimeout(ctx, kTimeout)
	checkKafka(kctx, cfg, src, r)
	cancel()
	return r
}
