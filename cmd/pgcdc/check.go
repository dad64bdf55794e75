package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/internal/check"
)

const checkSummary = `Usage: pgcdc check [--config FILE] [--strict] [--timeout DURATION] [--max-slot-lag SIZE] [--no-row-sizes]

Checks the configuration and the servers it names, changing nothing: each connection's security (TLS
version, whether the server's certificate is verified, SASL mechanism, principal), PostgreSQL (version, wal_level,
replication slots and WAL senders), the role's privileges, the captured tables' replica identity,
the publication, the slot (who holds it; an inactive slot more than --max-slot-lag behind), and
each table's Kafka topic (replication factor, min.insync.replicas, retention, max.message.bytes
against the table's largest row). Prints one line per finding (OK, INFO, WARN, FAIL) with the fix
under each problem.
Exit status: 0 when nothing FAILs (with --strict: nothing FAILs or WARNs), 1 otherwise, 2 when the
configuration itself is invalid.
`

func checkFlags(fs *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configPath := configFlag(fs)
	strict := fs.Bool("strict", false, "exit non-zero on warnings too")
	timeout := fs.Duration("timeout", 0, "bound on each server's checks (default: the connect timeouts, at most 15s)")
	maxLag := fs.String("max-slot-lag", "1GiB", "WAL an existing slot may leave unconfirmed or retain before check warns (an inactive slot beyond it fills the disk)")
	noRows := fs.Bool("no-row-sizes", false, "do not measure each table's largest row against its topic's max.message.bytes (reads up to 256 MiB per table; larger tables are sampled)")
	return func(stdout, stderr io.Writer) int {
		lag, err := config.ParseByteSize(*maxLag)
		if err != nil || lag <= 0 {
			fmt.Fprintf(stderr, "pgcdc check: --max-slot-lag %q: want a size > 0 such as 512MiB or 10GB\n", *maxLag)
			return 2
		}
		cfg, err := config.Load(*configPath, os.Environ())
		if err != nil {
			_ = check.ConfigReport(err).Write(stdout)
			return 2
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		fmt.Fprintf(stdout, "pgcdc check: slot %s, publication %s, topic prefix %s\n\n", cfg.Postgres.Slot, cfg.Postgres.Publication, cfg.Kafka.TopicPrefix)
		rep := check.Run(ctx, cfg, check.Options{Timeout: *timeout, MaxSlotLag: int64(lag), SkipRowSizes: *noRows})
		if err := rep.Write(stdout); err != nil {
			return 1
		}
		if rep.Failed() || (*strict && rep.Count(check.Warn) > 0) {
			return 1
		}
		return 0
	}
}
