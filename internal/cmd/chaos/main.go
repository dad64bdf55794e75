// Command chaos runs pgcdc's fault-injection harness (package internal/chaos) for as long as asked and
// prints the result: faults injected and their rate, events written and consumed, lost (must be 0),
// and per fault kind the count, the events lost, the duplicates against the bound of its windows
// (docs/faults.md) and the longest stall and recovery. It exits 1 when the verification fails (or a
// minimum was not met) and 2 when the harness itself could not run.
//
//	go run ./internal/cmd/chaos -duration 60m      (or: make chaos DURATION=60m)
//
// It starts its own PostgreSQL and three-broker Kafka cluster (internal/testenv) and builds pgcdc
// without -race. By default the fault phase ends at -duration, and the run must reach the project's
// goal pro rata: 1,000 faults and 30 of each heavy kind per 60 minutes.
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
	flag.DurationVar(&o.Duration, "duration", 60*time.Minute, "length of the fault phase")
	flag.DurationVar(&o.MaxDuration, "max-duration", 0, "longest fault phase when the minimums are not met by -duration (default: -duration)")
	flag.IntVar(&o.MinFaults, "min-faults", -1, "inject at least this many faults (default: 1,000 per 60 minutes of -duration)")
	flag.IntVar(&o.MinEach, "min-each", 1, "inject every kind at least this many times")
	flag.IntVar(&o.MinHeavy, "min-heavy", -1, "inject every heavy kind at least this many times (default: 30 per 60 minutes of -duration)")
	flag.DurationVar(&o.GapMin, "gap-min", 300*time.Millisecond, "shortest pause of a lane between two of its faults")
	flag.DurationVar(&o.GapMax, "gap-max", 1500*time.Millisecond, "longest pause of a lane between two of its faults")
	flag.DurationVar(&o.RecoveryWait, "recovery-wait", 5*time.Second, "longest a lane waits for its fault to recover before the next")
	flag.Uint64Var(&o.Seed, "seed", 0, "random seed (0: from the clock)")
	flag.IntVar(&o.Writers, "writers", 2, "concurrent writer connections")
	flag.IntVar(&o.RowsPerS, "rate", 1500, "average rows per second across the writers")
	flag.IntVar(&o.MaxTxn, "max-txn", 50000, "largest transaction in rows")
	flag.DurationVar(&o.WriteTimeout, "write-timeout", 10*time.Second, "pgcdc's kafka.write_timeout")
	flag.BoolVar(&o.Streaming, "streaming", false, "run pgcdc with postgres.streaming (protocol v2 + spool)")
	flag.BoolVar(&o.Standby, "standby", true, "run two pgcdc processes with ha.enabled (active and standby) and inject the takeover kinds")
	flag.StringVar(&o.WorkDir, "dir", "", "directory for logs (default: a new temporary directory)")
	flag.StringVar(&kinds, "kinds", "", "comma-separated fault kinds (default: all)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: chaos [flags]\n\nfault kinds (class; three lanes run at once: pgcdc, PostgreSQL, Kafka):\n%s\nflags:\n", chaos.KindHelp())
		flag.PrintDefaults()
	}
	flag.Parse()
	if kinds != "" {
		for _, k := range strings.Split(kinds, ",") {
			o.Kinds = append(o.Kinds, chaos.Kind(strings.TrimSpace(k)))
		}
	}
	perHour := func(n int) int { return int(float64(n) * o.Duration.Hours()) }
	if o.MinFaults < 0 {
		o.MinFaults = perHour(1000)
	}
	if o.MinHeavy < 0 {
		o.MinHeavy = perHour(30)
	}
	if o.MaxDuration == 0 {
		o.MaxDuration = o.Duration
	}
	o.Logf = log.Printf
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*o.MaxDuration+30*time.Minute)
	defer cancel()
	log.Printf("chaos: fault phase %s (at most %s); goals: %d faults, every heavy kind %d times, every kind %d", o.Duration, o.MaxDuration, o.MinFaults, o.MinHeavy, o.MinEach)
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
