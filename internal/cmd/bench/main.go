package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

type options struct {
	pgDSN, brokers, pgBinDir string
	pgLocal                  bool
	kafkaPID, kafkaHeapMB    int
	kafkaJVM                 string
	warmup                   bool
	pgcdcBin                 string

	modes   map[string]bool
	schemas []bool
	rows    int64
	txnRows int
	repeat  int

	latencyRate, latencyBatch      int
	latencyDuration, latencyWarmup time.Duration

	largeRows int64
	largeRef  bool

	deliverEvents, deliverPartitions, deliverConcurrency int
	incrementalRows                                      int64
	snapshotRows                                         int64
	incrementalChunk                                     int

	debezium    bool   // throughput: run Debezium beside pgcdc
	debeziumJVM string // its JVM options

	sweepRows     int64
	sweepFactors  []string
	sweepDebezium bool
	plotDir       string

	statusInterval time.Duration
	partitions     int
	pgcdcEnv       map[string]string
	optional       map[string]string // optionalSettings the binary knows
	variants       []variant

	outDir, jsonPath, profileDir string
	profileSchemas               bool
	runTimeout, timeout          time.Duration
	keepTopics                   bool
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func parseFlags(args []string) (*options, error) {
	o := &options{pgcdcEnv: map[string]string{}}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.pgDSN, "pg-dsn", os.Getenv(testenv.EnvPostgresDSN), "superuser postgres:// URL of an existing server with wal_level=logical (default: start one; env "+testenv.EnvPostgresDSN+")")
	fs.BoolVar(&o.pgLocal, "pg-local", false, "with -pg-dsn: the server runs on this machine, so measure its walsenders' CPU from /proc")
	fs.StringVar(&o.brokers, "kafka-brokers", os.Getenv(testenv.EnvKafkaBrokers), "comma-separated brokers of an existing Kafka (default: start one; env "+testenv.EnvKafkaBrokers+")")
	fs.IntVar(&o.kafkaPID, "kafka-pid", 0, "with -kafka-brokers: pid of the (local, single) broker, to measure its CPU")
	fs.IntVar(&o.kafkaHeapMB, "kafka-heap-mb", 512, "heap of the broker the benchmark starts")
	fs.BoolVar(&o.warmup, "warmup", true, "throughput: one unreported pgcdc run before round 1, so that every round meets a warm broker")
	fs.StringVar(&o.kafkaJVM, "kafka-jvm", "-XX:TieredStopAtLevel=4",
		"extra JVM options of the broker the benchmark starts, after the test harness's (which stop the JIT at C1 for fast start-up; the default gives the broker its optimizing compiler back, as a production broker has)")
	fs.StringVar(&o.pgBinDir, "pg-bin", "", "directory of the PostgreSQL binaries (initdb, postgres, pg_recvlogical); default PATH or the newest /usr/lib/postgresql/*/bin")
	fs.StringVar(&o.pgcdcBin, "pgcdc", "", "pgcdc binary to measure (default: build ./cmd/pgcdc without -race into -out)")
	modes := fs.String("modes", "throughput,latency,large,deliver,incremental,snapshot", "modes to run, comma-separated: throughput, latency, large, deliver, incremental, snapshot, sweep (not by default: long)")
	schemas := fs.String("schemas", "false,true", "events.value_schemas settings for the throughput runs, comma-separated")
	fs.Int64Var(&o.rows, "rows", 1_000_000, "throughput: rows in the workload")
	fs.IntVar(&o.txnRows, "txn-rows", 100, "throughput: rows per transaction")
	fs.IntVar(&o.repeat, "repeat", 3, "throughput: rounds (pg_recvlogical + pgcdc per schema setting), each on fresh slots over the same WAL")
	fs.IntVar(&o.latencyRate, "latency-rate", 2000, "latency: rows per second")
	fs.IntVar(&o.latencyBatch, "latency-batch", 10, "latency: rows per transaction")
	fs.DurationVar(&o.latencyDuration, "latency-duration", 60*time.Second, "latency: measured period")
	fs.DurationVar(&o.latencyWarmup, "latency-warmup", 5*time.Second, "latency: writes before the measured period, not counted")
	fs.Int64Var(&o.largeRows, "large-rows", 2_000_000, "large: rows in the one transaction")
	fs.BoolVar(&o.largeRef, "large-ref", true, "large: measure pg_recvlogical on the same transaction first")
	fs.IntVar(&o.deliverEvents, "deliver-events", 200_000, "deliver: events sent to the trivial endpoint")
	fs.IntVar(&o.deliverPartitions, "deliver-partitions", 4, "deliver: partitions of the topic")
	fs.IntVar(&o.deliverConcurrency, "deliver-concurrency", 8, "deliver: deliver.concurrency (attempts in flight per partition)")
	fs.Int64Var(&o.incrementalRows, "incremental-rows", 1_000_000, "incremental: rows of the table snapshotted incrementally (while -latency-rate rows/s stream)")
	fs.Int64Var(&o.snapshotRows, "snapshot-rows", 1_000_000, "snapshot: rows of the table snapshotted (snapshot.mode initial) by pgcdc and by Debezium")
	fs.IntVar(&o.incrementalChunk, "incremental-chunk", 0, "incremental: snapshot.incremental_chunk_rows (0: pgcdc's default)")
	fs.BoolVar(&o.debezium, "debezium", true, "throughput: run Debezium (Kafka Connect standalone, test/debezium/pom.xml) over the same WAL in every round, with each -schemas setting")
	fs.StringVar(&o.debeziumJVM, "debezium-jvm", "-Xmx1g", "throughput: JVM options of Debezium's Kafka Connect worker (a fixed heap; JIT and GC as the JVM chooses)")
	fs.Int64Var(&o.sweepRows, "sweep-rows", 200_000, "sweep: rows of each point (the 100 KB TOAST point writes fewer: about 1 KB of payload per row, at most 256 MiB)")
	sweepFactorList := fs.String("sweep-factors", strings.Join(sweepFactors, ","), "sweep: factors to vary, comma-separated: rowsize, partitions, tables, txn")
	fs.BoolVar(&o.sweepDebezium, "sweep-debezium", false, "sweep: run Debezium (value schemas on, -debezium-jvm) at each point too")
	fs.StringVar(&o.plotDir, "plot-dir", "", "sweep: directory for the SVG plots, one per factor (default OUT/plots; 'off' for none)")
	fs.DurationVar(&o.statusInterval, "status-interval", 200*time.Millisecond, "pgcdc postgres.status_interval (how soon the slot shows a confirmation)")
	fs.IntVar(&o.partitions, "partitions", 1, "pgcdc kafka.partitions")
	env := fs.String("pgcdc-env", "", "extra environment of every pgcdc run, comma-separated NAME=VALUE (e.g. PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES=16MiB,GOMEMLIMIT=100MiB)")
	var variants variantFlags
	fs.Var(&variants, "variant", "throughput: an extra pgcdc configuration measured in every round next to the default one, NAME:ENV=V[,ENV=V...] (repeatable), e.g. -variant inflight16:PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES=16MiB")
	fs.StringVar(&o.outDir, "out", ".cache/bench", "directory for logs, spool, the pgcdc build and the results (git-ignored)")
	fs.StringVar(&o.jsonPath, "json", "", "results file (default OUT/results.json; - for stdout)")
	fs.StringVar(&o.profileDir, "profile", "", "directory for the CPU and allocation profiles of an extra pgcdc run (default OUT/profile; 'off' to skip)")
	fs.BoolVar(&o.profileSchemas, "profile-schemas", true, "events.value_schemas of the profiled run")
	fs.DurationVar(&o.runTimeout, "run-timeout", 10*time.Minute, "bound on each consumer run")
	fs.DurationVar(&o.timeout, "timeout", 45*time.Minute, "bound on the whole benchmark (45 minutes more when the sweep runs, unless given)")
	fs.BoolVar(&o.keepTopics, "keep-topics", false, "keep the topics pgcdc wrote (default: delete them after counting)")
	quick := fs.Bool("quick", false, "short run: 100,000 rows, one round, 15s latency, 300,000-row transaction, 20,000 rows a sweep point (flags given explicitly still win)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		if !set["rows"] {
			o.rows = 100_000
		}
		if !set["repeat"] {
			o.repeat = 1
		}
		if !set["latency-duration"] {
			o.latencyDuration = 15 * time.Second
		}
		if !set["large-rows"] {
			o.largeRows = 300_000
		}
		if !set["deliver-events"] {
			o.deliverEvents = 50_000
		}
		if !set["incremental-rows"] {
			o.incrementalRows = 200_000
		}
		if !set["snapshot-rows"] {
			o.snapshotRows = 100_000
		}
		if !set["sweep-rows"] {
			o.sweepRows = 20_000
		}
	}
	o.modes = map[string]bool{}
	for _, m := range strings.Split(*modes, ",") {
		m = strings.TrimSpace(m)
		switch m {
		case "throughput", "latency", "large", "deliver", "incremental", "snapshot", "sweep":
			o.modes[m] = true
		case "":
		default:
			return nil, fmt.Errorf("-modes: unknown mode %q", m)
		}
	}
	for _, v := range strings.Split(*schemas, ",") {
		switch strings.TrimSpace(v) {
		case "false":
			o.schemas = append(o.schemas, false)
		case "true":
			o.schemas = append(o.schemas, true)
		default:
			return nil, fmt.Errorf("-schemas: want true/false, got %q", v)
		}
	}
	for _, kv := range strings.Split(*env, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-pgcdc-env: want NAME=VALUE, got %q", kv)
		}
		o.pgcdcEnv[k] = v
	}
	o.variants = append([]variant{{Name: "default"}}, variants...)
	if o.rows < 1 || o.txnRows < 1 || o.repeat < 1 || o.latencyRate < 1 || o.latencyBatch < 1 || o.largeRows < 1 || o.partitions < 1 ||
		o.deliverEvents < 1 || o.deliverPartitions < 1 || o.deliverConcurrency < 1 || o.incrementalRows < 1 || o.snapshotRows < 1 {
		return nil, errors.New("-rows, -txn-rows, -repeat, -latency-rate, -latency-batch, -large-rows, -partitions, -incremental-rows, -snapshot-rows and -deliver-* must be >= 1")
	}
	if o.modes["sweep"] && !set["timeout"] {
		o.timeout += 45 * time.Minute
	}
	var err error
	if o.sweepFactors, err = parseSweepFactors(*sweepFactorList); err != nil {
		return nil, err
	}
	if o.sweepRows < 1000 {
		return nil, errors.New("-sweep-rows: at least 1,000 (every table of the 1,000-table point gets a row)")
	}
	if o.repeat > 10 {
		return nil, errors.New("-repeat: at most 10 (every round holds its slots)")
	}
	if o.outDir, err = filepath.Abs(o.outDir); err != nil {
		return nil, err
	}
	if o.jsonPath == "" {
		o.jsonPath = filepath.Join(o.outDir, "results.json")
	}
	switch o.profileDir {
	case "":
		o.profileDir = filepath.Join(o.outDir, "profile")
	case "off":
		o.profileDir = ""
	}
	switch o.plotDir {
	case "":
		o.plotDir = filepath.Join(o.outDir, "plots")
	case "off":
		o.plotDir = ""
	default:
		if o.plotDir, err = filepath.Abs(o.plotDir); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// variant is a pgcdc configuration of the throughput mode: extra environment over the defaults.
type variant struct {
	Name string            `json:"name"`
	Env  map[string]string `json:"env,omitempty"`
}

type variantFlags []variant

func (v *variantFlags) String() string { return fmt.Sprint(*v) }

func (v *variantFlags) Set(s string) error {
	name, rest, ok := strings.Cut(s, ":")
	if !ok || name == "" || name == "default" || strings.ContainsAny(name, " /") {
		return fmt.Errorf("want NAME:ENV=V[,ENV=V...] with a NAME other than default, got %q", s)
	}
	x := variant{Name: name, Env: map[string]string{}}
	for _, kv := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return fmt.Errorf("variant %s: want ENV=VALUE, got %q", name, kv)
		}
		x.Env[k] = val
	}
	*v = append(*v, x)
	return nil
}

// Results is everything one benchmark run measured (written as JSON).
type Results struct {
	Started     time.Time          `json:"started"`
	Seconds     float64            `json:"wall_seconds"`
	Machine     Machine            `json:"machine"`
	Settings    map[string]any     `json:"settings"`
	Throughput  *ThroughputResult  `json:"throughput,omitempty"`
	Latency     *LatencyResult     `json:"latency,omitempty"`
	Large       *LargeResult       `json:"large_transaction,omitempty"`
	Deliver     *DeliverResult     `json:"deliver,omitempty"`
	Incremental *IncrementalResult `json:"incremental_snapshot,omitempty"`
	Snapshot    *SnapshotResult    `json:"initial_snapshot,omitempty"`
	Sweep       *SweepResult       `json:"sweep,omitempty"`
	Profile     *ProfileResult     `json:"profile,omitempty"`
	Errors      []string           `json:"errors,omitempty"`
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o *options) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res := &Results{Started: time.Now(), Machine: describeMachine(), Settings: settingsOf(o)}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	err := runAll(ctx, o, res)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		logf("error: %v", err)
	}
	res.Seconds = time.Since(res.Started).Seconds()
	if werr := writeJSON(o.jsonPath, res); werr != nil {
		logf("write results: %v", werr)
	} else if o.jsonPath != "-" {
		logf("results in %s", o.jsonPath)
	}
	printReport(os.Stdout, res)
	if err != nil {
		return 1
	}
	return 0
}

func runAll(ctx context.Context, o *options, res *Results) error {
	if o.pgcdcBin == "" {
		bin, err := buildPgcdc(ctx, o.outDir)
		if err != nil {
			return err
		}
		o.pgcdcBin = bin
	}
	opt, err := probeSettings(ctx, o.pgcdcBin)
	if err != nil {
		return err
	}
	o.optional = opt
	res.Settings["pgcdc_settings_added"] = opt
	if out, err := exec.CommandContext(ctx, o.pgcdcBin, "version").Output(); err == nil {
		res.Machine.Pgcdc = strings.TrimSpace(string(out))
	}
	logf("starting servers")
	s, err := startServers(ctx, o)
	if err != nil {
		return err
	}
	defer s.close()
	admin, err := connect(ctx, s.adminDSN)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(context.Background())
	var version string
	if err := admin.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&version); err != nil {
		return err
	}
	res.Machine.Postgres = version
	if libs, err := testenv.KafkaLibs(); err == nil && o.brokers == "" {
		res.Machine.Kafka = filepath.Base(filepath.Dir(libs))
	}
	dbName := fmt.Sprintf("pgcdc_bench_%d", os.Getpid())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	dsn, err := dsnFor(s.adminDSN, dbName)
	if err != nil {
		return err
	}
	db, err := connect(ctx, dsn)
	if err != nil {
		return err
	}
	var slots []string // dropped before the database
	defer func() {
		bg, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		db.Close(bg)
		for _, sl := range slots {
			dropSlot(bg, admin, sl)
		}
		if _, err := admin.Exec(bg, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)"); err != nil {
			logf("warning: drop database %s: %v", dbName, err)
		}
	}()
	b := &bench{o: o, s: s, db: db, dsn: dsn, res: res, slots: &slots}

	// A mode that fails is reported and the next one still runs.
	var errs []error
	if o.modes["throughput"] {
		if err := b.throughput(ctx); err != nil {
			errs = append(errs, fmt.Errorf("throughput: %w", err))
			logf("throughput: %v", err)
		}
	}
	if o.modes["latency"] && ctx.Err() == nil {
		if err := b.latency(ctx); err != nil {
			errs = append(errs, fmt.Errorf("latency: %w", err))
			logf("latency: %v", err)
		}
	}
	if o.modes["large"] && ctx.Err() == nil {
		if err := b.large(ctx); err != nil {
			errs = append(errs, fmt.Errorf("large transaction: %w", err))
			logf("large transaction: %v", err)
		}
	}
	if o.modes["deliver"] && ctx.Err() == nil {
		if err := b.deliver(ctx); err != nil {
			errs = append(errs, fmt.Errorf("deliver: %w", err))
			logf("deliver: %v", err)
		}
	}
	if o.modes["incremental"] && ctx.Err() == nil {
		if err := b.incremental(ctx); err != nil {
			errs = append(errs, fmt.Errorf("incremental snapshot: %w", err))
			logf("incremental snapshot: %v", err)
		}
	}
	if o.modes["snapshot"] && ctx.Err() == nil {
		if err := b.snapshot(ctx); err != nil {
			errs = append(errs, fmt.Errorf("snapshot: %w", err))
			logf("snapshot: %v", err)
		}
	}
	if o.modes["sweep"] && ctx.Err() == nil {
		if err := b.sweep(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sweep: %w", err))
			logf("sweep: %v", err)
		}
	}
	return errors.Join(errs...)
}

// bench carries what every mode needs.
type bench struct {
	o     *options
	s     *servers
	db    *pgx.Conn // the benchmark database, for setup and slot polling
	dsn   string
	res   *Results
	slots *[]string
}

func (b *bench) createSlots(ctx context.Context, names ...string) error {
	for _, n := range names {
		if err := createSlot(ctx, b.db, n); err != nil {
			return err
		}
		*b.slots = append(*b.slots, n)
	}
	return nil
}

func (b *bench) dropSlots(ctx context.Context, names ...string) {
	for _, n := range names {
		dropSlot(ctx, b.db, n)
	}
	kept := (*b.slots)[:0]
	for _, n := range *b.slots {
		drop := false
		for _, d := range names {
			drop = drop || d == n
		}
		if !drop {
			kept = append(kept, n)
		}
	}
	*b.slots = kept
}

// buildPgcdc builds cmd/pgcdc without -race, as `make build` does.
func buildPgcdc(ctx context.Context, outDir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(outDir, "pgcdc")
	logf("building %s", bin)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/pgcdc")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/pgcdc: %v\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 64; i++ {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("run the benchmark inside the pgcdc module (no go.mod found above the working directory)")
}

func settingsOf(o *options) map[string]any {
	return map[string]any{
		"rows": o.rows, "txn_rows": o.txnRows, "repeat": o.repeat, "schemas": o.schemas,
		"latency_rate": o.latencyRate, "latency_batch": o.latencyBatch,
		"latency_duration_s": o.latencyDuration.Seconds(), "latency_warmup_s": o.latencyWarmup.Seconds(),
		"large_rows": o.largeRows, "large_ref": o.largeRef, "incremental_rows": o.incrementalRows, "incremental_chunk": o.incrementalChunk, "snapshot_rows": o.snapshotRows, "status_interval": o.statusInterval.String(),
		"partitions": o.partitions, "pgcdc_env": o.pgcdcEnv, "variants": o.variants, "own_servers": o.pgDSN == "" && o.brokers == "",
		"kafka_heap_mb": o.kafkaHeapMB, "kafka_jvm": o.kafkaJVM, "warmup": o.warmup, "deliver_events": o.deliverEvents, "deliver_partitions": o.deliverPartitions,
		"deliver_concurrency": o.deliverConcurrency, "debezium": o.debezium, "debezium_jvm": o.debeziumJVM,
		"sweep_rows": o.sweepRows, "sweep_factors": o.sweepFactors, "sweep_debezium": o.sweepDebezium, "plot_dir": o.plotDir,
	}
}

func writeJSON(path string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
