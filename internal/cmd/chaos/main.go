// Command chaos runs pgcdc's fault-injection harness (package internal/chaos) for as long as asked and
// prints the result: faults injected by kind, events written and consumed, lost (must be 0) and
// duplicates against the bound of each fault kind (docs/faults.md). It exits 1 when the verification
// fails and 2 when the harness itself could not run.
//
//	go run ./internal/cmd/chaos -duration 20m      (or: make chaos DURATION=20m)
//
// It starts its own PostgreSQL and Kafka (internal/testenv) and builds pgcdc without -race.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pgcdc/pgcdc/internal/chaos"
)

func main() {
	var o chaos.Options
	var kinds string
	flag.DurationVar(&o.Duration, "duration", 20*time.Minute, "length of the fault phase")
	flag.IntVar(&o.MinFaults, "min-faults", 8, "inject at least this many faults")
	flag.DurationVar(&o.GapMin, "gap-min", 5*time.Second, "shortest pause between faults")
	flag.DurationVar(&o.GapMax, "gap-max", 25*time.Second, "longest pause between faults")
	flag.Uint64Var(&o.Seed, "seed", 0, "random seed (0: from the clock)")
	flag.IntVar(&o.Writers, "writers", 2, "concurrent writer connections")
	flag.IntVar(&o.RowsPerS, "rate", 1500, "average rows per second across the writers")
	flag.IntVar(&o.MaxTxn, "max-txn", 50000, "largest transaction in rows")
	flag.BoolVar(&o.Streaming, "streaming", false, "run pgcdc with postgres.streaming (protocol v2 + spool)")
	flag.StringVar(&o.WorkDir, "dir", "", "directory for logs (default: a new temporary directory)")
	flag.StringVar(&kinds, "kinds", "", "comma-separated fault kinds (default: all of "+kindList()+")")
	flag.Parse()
	if kinds != "" {
		for _, k := range strings.Split(kinds, ",") {
			o.Kinds = append(o.Kinds, chaos.Kind(strings.TrimSpace(k)))
		}
	}
	o.Logf = log.Printf
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 3*o.Duration+30*time.Minute)
	defer cancel()
	res, err := chaos.Run(ctx, o)
	res.Write(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos: the run did not complete:", err)
		os.Exit(2)
	}
	if res.Err() != nil {
		os.Exit(1)
	}
}

func kindList() string {
	var s []string
	for _, k := range chaos.AllKinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}
