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

const checkSummary = `Usage: pgcdc check [--config FILE] [--strict] [--timeout DURATION]

Checks the configuration and the servers it names, changing nothing: each connection's security (TLS
version, whether the server's certificate is verified, SASL mechanism, principal), PostgreSQL (version, wal_level,
replication slots and WAL senders), the role's privileges, the captured tables' replica identity,
the publication, the slot, and each table's Kafka topic (replication factor, min.insync.replicas,
retention). Prints one line per finding (OK, INFO, WARN, FAIL) with the fix under each problem.
Exit status: 0 when nothing FAILs (with --strict: nothing FAILs or WARNs), 1 otherwise, 2 when the
configuration itself is invalid.
`

func checkFlags(fs *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configPath := configFlag(fs)
	strict := fs.Bool("strict", false, "exit non-zero on warnings too")
	timeout := fs.Duration("timeout", 0, "bound on each server's checks (default: the connect timeouts, at most 15s)")
	return func(stdout, stderr io.Writer) int {
		cfg, err := config.Load(*configPath, os.Environ())
		if err != nil {
			_ = check.ConfigReport(err).Write(stdout)
			return 2
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		fmt.Fprintf(stdout, "pgcdc check: slot %s, publication %s, topic prefix %s\n\n", cfg.Postgres.Slot, cfg.Postgres.Publication, cfg.Kafka.TopicPrefix)
		rep := check.Run(ctx, cfg, *timeout)
		if err := rep.Write(stdout); err != nil {
			return 1
		}
		if rep.Failed() || (*strict && rep.Count(check.Warn) > 0) {
			return 1
		}
		return 0
	}
}
