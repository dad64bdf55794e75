// Command pgcdc streams PostgreSQL changes to Kafka as Debezium-compatible events.
//
//	pgcdc run       --config pgcdc.yaml    stream until SIGINT/SIGTERM (metrics on metrics.listen)
//	pgcdc check     --config pgcdc.yaml    check the setup; non-zero exit when something is wrong
//	pgcdc status    --config pgcdc.yaml    the slot's position, lag, holder and wal_status
//	pgcdc slot drop --confirm              drop the replication slot
//	pgcdc snapshot TABLE...                re-read tables while streaming (a signal)
//	pgcdc version                          print the version
//
// Every command answers --help.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/version"
)

const usage = `pgcdc streams PostgreSQL changes to Kafka as Debezium-compatible change events.

Usage:
  pgcdc run [--config FILE]              stream the slot's changes to Kafka until SIGINT/SIGTERM
  pgcdc check [--config FILE] [--strict] check PostgreSQL, the role, tables, publication, slot and
                                         Kafka topics; print each problem with its fix
  pgcdc status [--config FILE] [--json]  show the slot's position, lag, holder and wal_status
  pgcdc slot drop --confirm [--config FILE]
                                         drop the replication slot (changes not yet sent are lost)
  pgcdc replay --target DSN ...          rebuild tables in a target database from the change topics
  pgcdc deliver [--config FILE]          call HTTP endpoints (webhooks) with the change events, at
                                         least once, in order per key (also: deliver redrive, secret)
  pgcdc snapshot [--filter C] [--blocking] TABLE...
                                         re-read tables while streaming (an incremental snapshot
                                         signal; --stop, --pause, --resume steer it)
  pgcdc version                          print the version
  pgcdc help [COMMAND]                   this help, or a command's

Every command answers --help. Every configuration key can also be set from the environment:
PGCDC_<SECTION>_<KEY>, e.g. PGCDC_POSTGRES_DSN, PGCDC_POSTGRES_PASSWORD, PGCDC_KAFKA_BROKERS
(see config/example.yaml). The config file may also be named by PGCDC_CONFIG.

Exit codes: 0 success; 1 failure (or, for check, a problem found); 2 usage or configuration error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: its flag set (for --help) and what it does.
type command struct {
	name    string
	summary string // the help text's first lines
	flags   func(fs *flag.FlagSet) func(stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"run":       {"run", runSummary, runFlags},
		"check":     {"check", checkSummary, checkFlags},
		"status":    {"status", statusSummary, statusFlags},
		"slot drop": {"slot drop", slotDropSummary, slotDropFlags},
		"version":   {"version", versionSummary, versionFlags},

		"deliver":         {"deliver", deliverSummary, deliverFlags},
		"deliver redrive": {"deliver redrive", redriveSummary, redriveFlags},
		"deliver secret":  {"deliver secret", secretSummary, secretFlags},
	}
}

const versionSummary = `Usage: pgcdc version

Prints pgcdc's version.
`

func versionFlags(_ *flag.FlagSet) func(stdout, stderr io.Writer) int {
	return func(stdout, _ io.Writer) int {
		fmt.Fprintln(stdout, "pgcdc", version.String())
		return 0
	}
}

const slotSummary = `Usage: pgcdc slot drop --confirm [--config FILE]

Subcommands:
  drop    drop the replication slot named by postgres.slot
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name := args[0]
	rest := args[1:]
	switch name {
	case "help", "-h", "--help", "-help":
		if len(rest) > 0 {
			topic := strings.Join(rest, " ")
			if topic == "slot" {
				fmt.Fprint(stdout, slotSummary)
				return 0
			}
			if c, ok := commands()[topic]; ok {
				return runCommand(c, []string{"--help"}, stdout, stderr)
			}
			fmt.Fprintf(stderr, "pgcdc: no help for %q\n\n%s", topic, usage)
			return 2
		}
		fmt.Fprint(stdout, usage)
		return 0
	case "replay":
		return replayCommand(rest, stdout, stderr)
	case "deliver":
		if len(rest) > 0 && (rest[0] == "redrive" || rest[0] == "secret") {
			name, rest = "deliver "+rest[0], rest[1:]
		}
	case "snapshot":
		return snapshotCommand(rest, stdout, stderr)
	case "slot":
		if len(rest) == 0 {
			fmt.Fprint(stderr, slotSummary)
			return 2
		}
		switch rest[0] {
		case "-h", "--help", "-help", "help":
			fmt.Fprint(stdout, slotSummary)
			return 0
		case "drop":
			name, rest = "slot drop", rest[1:]
		default:
			fmt.Fprintf(stderr, "pgcdc: unknown command \"slot %s\"\n\n%s", rest[0], slotSummary)
			return 2
		}
	}
	c, ok := commands()[name]
	if !ok {
		fmt.Fprintf(stderr, "pgcdc: unknown command %q\n\n%s", name, usage)
		return 2
	}
	return runCommand(c, rest, stdout, stderr)
}

// runCommand parses a command's flags (--help prints its usage to stdout and exits 0) and runs it.
func runCommand(c command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pgcdc "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	do := c.flags(fs)
	printUsage := func(w io.Writer) {
		fmt.Fprint(w, c.summary)
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
		if b.Len() > 0 {
			fmt.Fprint(w, "\nFlags:\n", b.String())
		}
	}
	fs.Usage = func() { printUsage(stderr) }
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			printUsage(stdout)
			return 0
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pgcdc %s: unexpected argument %q\n\n", c.name, fs.Arg(0))
		printUsage(stderr)
		return 2
	}
	return do(stdout, stderr)
}

// configFlag adds --config (default: PGCDC_CONFIG).
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv(config.EnvConfigFile), "configuration file (YAML); default: env PGCDC_CONFIG; keys may also come from PGCDC_* variables")
}

// loadConfig loads and validates the configuration, printing the problems on failure.
func loadConfig(path string, stderr io.Writer) (config.Config, bool) {
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "pgcdc: invalid configuration:\n%v\n", err)
		return cfg, false
	}
	return cfg, true
}

// loadPostgresConfig loads the configuration for commands that only talk to PostgreSQL (status,
// slot drop): problems with keys of other sections do not stop them.
func loadPostgresConfig(path string, stderr io.Writer) (config.Config, bool) {
	return loadPartialConfig(path, stderr, "postgres.")
}

// loadPartialConfig loads the configuration, failing only on problems with keys under one of the
// prefixes (or not about a key at all, such as an unknown PGCDC_ variable).
func loadPartialConfig(path string, stderr io.Writer, prefixes ...string) (config.Config, bool) {
	return loadConfigFor(path, stderr, func(_ config.Config, key string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) {
				return true
			}
		}
		return false
	})
}

// loadConfigFor loads the configuration for a command that needs only some keys: validation
// problems of the keys relevant rejects do not stop it (other problems, such as unknown keys, do).
func loadConfigFor(path string, stderr io.Writer, relevant func(cfg config.Config, key string) bool) (config.Config, bool) {
	cfg, err := config.Load(path, os.Environ())
	if err == nil {
		return cfg, true
	}
	joined, ok := err.(interface{ Unwrap() []error })
	matters := !ok
	if ok {
		for _, e := range joined.Unwrap() {
			var fe *config.FieldError
			if !errors.As(e, &fe) || relevant(cfg, fe.Key) {
				matters = true
			}
		}
	}
	if matters {
		fmt.Fprintf(stderr, "pgcdc: invalid configuration:\n%v\n", err)
		return cfg, false
	}
	return cfg, true
}
