// Command pgcdc streams PostgreSQL changes to Kafka as Debezium-compatible events.
//
//	pgcdc run --config pgcdc.yaml    stream until SIGINT/SIGTERM
//	pgcdc version                    print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/connector"
	"github.com/pgcdc/pgcdc/pkg/version"
)

const usage = `pgcdc streams PostgreSQL changes to Kafka as Debezium-compatible change events.

Usage:
  pgcdc run --config FILE     stream the slot's changes to Kafka until SIGINT/SIGTERM
  pgcdc version               print the version

Every configuration key can also be set from the environment: PGCDC_<SECTION>_<KEY>,
e.g. PGCDC_POSTGRES_DSN, PGCDC_POSTGRES_PASSWORD, PGCDC_KAFKA_BROKERS (see config/example.yaml).
The config file may also be named by PGCDC_CONFIG.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, "pgcdc", version.String())
		return 0
	case "run":
		return runConnector(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pgcdc: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func runConnector(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pgcdc run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv(config.EnvConfigFile), "configuration file (YAML); env PGCDC_CONFIG")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pgcdc run --config FILE\n\nStreams the changes of the captured tables to Kafka until SIGINT/SIGTERM.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(*configPath, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "pgcdc: invalid configuration:\n%v\n", err)
		return 2
	}
	log := newLogger(cfg.Log, stdout)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := connector.New(cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("pgcdc cannot start")
		return 1
	}
	if err := c.Run(ctx); err != nil {
		log.Error().Err(err).Msg("pgcdc stopped on an error")
		return 1
	}
	return 0
}
