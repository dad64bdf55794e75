package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
	"github.com/pgcdc/pgcdc/pkg/replay"
)

const replayUsage = `Usage: pgcdc replay --brokers HOST:PORT --topic-prefix PREFIX --target DSN [flags]
       pgcdc replay --config pgcdc.yaml --target DSN [flags]

Rebuilds tables in the target PostgreSQL from pgcdc's change topics <prefix>.<schema>.<table>.
The applied offset of every partition is stored in the target (--offsets-table) in the same
transaction as the rows: a second run resumes where the first stopped. Without --until-end,
replay follows new events until SIGINT/SIGTERM. A record that cannot be applied stops replay with
its topic, partition and offset, unless --park-file or --park-topic keeps it aside with the reason.
The target's password: PGCDC_REPLAY_TARGET_PASSWORD, --target-password-file, PGPASSWORD or
~/.pgpass (a password inside --target is visible to every user of the machine).
See docs/replay.md. Secured clusters: the kafka.tls and kafka.sasl settings come from --config and
PGCDC_KAFKA_* variables (docs/security.md).
Exit status: 0 done (or stopped by a signal), 1 replay failed, 2 invalid flags.

`

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func replayCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pgcdc replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "pgcdc configuration file whose kafka section (brokers, topic_prefix, client_id, tls, sasl) replay uses; PGCDC_KAFKA_* variables apply too, and the flags below win")
	brokers := fs.String("brokers", "", "Kafka bootstrap brokers, comma-separated (required unless kafka.brokers is configured)")
	prefix := fs.String("topic-prefix", "", "pgcdc's kafka.topic_prefix: replays the topics <prefix>.<schema>.<table> (default: kafka.topic_prefix)")
	topics := fs.String("topics", "", "comma-separated topics to replay instead of discovering them by prefix")
	tables := fs.String("tables", "", "comma-separated schema.table glob patterns to replay (default: all)")
	exclude := fs.String("exclude", "", "comma-separated schema.table glob patterns to leave out")
	target := fs.String("target", "", "target PostgreSQL connection string (libpq URL or key=value) (required); leave the password out of it")
	passwordFile := fs.String("target-password-file", "", "file holding the target's password (trailing newline ignored); else PGCDC_REPLAY_TARGET_PASSWORD, PGPASSWORD or ~/.pgpass")
	offsetsTable := fs.String("offsets-table", "public.pgcdc_replay_offsets", "schema.table in the target holding the applied offset per topic partition")
	createTables := fs.Bool("create-tables", false, "create missing target tables (and columns) from the events' value schemas")
	untilEnd := fs.Bool("until-end", false, "stop at the topics' end offsets taken at start (default: follow new events)")
	fromTime := fs.String("from-timestamp", "", "RFC 3339 time: partitions without a stored offset start at their first record at or after it (default: the beginning)")
	batch := fs.Int("batch-size", 5000, "records per transaction per partition")
	workers := fs.Int("workers", 4, "target connections applying partitions in parallel")
	decimal := fs.String("decimal-handling", "precise", "topics without schemas: pgcdc's events.decimal_handling (precise, double, string)")
	timePrec := fs.String("time-precision", "adaptive", "topics without schemas: pgcdc's events.time_precision (adaptive, adaptive_time_microseconds, connect)")
	binary := fs.String("binary-handling", "bytes", "pgcdc's events.binary_handling (bytes, base64, base64-url-safe, hex)")
	hstore := fs.String("hstore-handling", "json", "pgcdc's events.hstore_handling (json, map); both are read either way")
	parkFile := fs.String("park-file", "", "append records that cannot be applied to this file (JSON lines with topic, partition, offset, key, value, headers and the reason) and go on")
	parkTopic := fs.String("park-topic", "", "produce records that cannot be applied to this Kafka topic (with the reason in headers) and go on")
	placeholder := fs.String("placeholder", config.DefaultUnavailableValue, "pgcdc's events.unavailable_value_placeholder (unchanged TOAST values; never written)")
	allowCompacted := fs.Bool("allow-compacted-toast", false, "accept compacted topics of tables with TOASTable columns (only safe with REPLICA IDENTITY FULL on the source)")
	flatPrefix := fs.String("flat-field-prefix", "__", "topics flattened by events.format ExtractNewRecordState: the prefix of its added fields (events.unwrap.add_fields_prefix), which are not columns")
	refresh := fs.Duration("refresh-interval", 30*time.Second, "follow mode: how often to look for new topics")
	logLevel := fs.String("log-level", "info", "trace, debug, info, warn or error")
	logFormat := fs.String("log-format", "json", "json, console or auto")
	progress := fs.String("progress", "auto", "auto (a bar on a terminal, log lines otherwise), bar or log")
	progressInterval := fs.Duration("progress-interval", 0, "interval of progress updates (default 200ms for the bar, 10s for log lines)")
	fs.Usage = func() {
		fmt.Fprint(stderr, replayUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pgcdc replay: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "pgcdc replay: "+format+"\n", args...)
		return 2
	}
	if *batch <= 0 {
		return usage("--batch-size %d: want at least 1 record per transaction", *batch)
	}
	if *workers <= 0 {
		return usage("--workers %d: want at least 1 target connection", *workers)
	}
	if *refresh <= 0 {
		return usage("--refresh-interval %s: want a duration > 0", *refresh)
	}
	if *progressInterval < 0 {
		return usage("--progress-interval %s: want a duration >= 0", *progressInterval)
	}
	switch *logFormat {
	case "json", "console", "auto":
	default:
		return usage("--log-format %q: want json, console or auto", *logFormat)
	}
	if _, err := zerolog.ParseLevel(*logLevel); err != nil || *logLevel == "" {
		return usage("--log-level %q: want trace, debug, info, warn or error", *logLevel)
	}
	password, err := targetPassword(*passwordFile)
	if err != nil {
		return usage("%v", err)
	}
	log := newLogger(config.LogConfig{Level: *logLevel, Format: *logFormat}, stdout)
	// The kafka section of the configuration (file and PGCDC_KAFKA_* variables) gives the brokers,
	// the topic prefix and the connection's TLS and SASL; only problems with those keys matter here.
	kcfg, ok := loadPartialConfig(*configPath, stderr, "kafka.tls", "kafka.sasl", "kafka.client_id")
	if !ok {
		return 2
	}
	if *brokers == "" {
		*brokers = strings.Join(kcfg.Kafka.Brokers, ",")
	}
	if *prefix == "" && *topics == "" {
		*prefix = kcfg.Kafka.TopicPrefix
	}
	logKafkaWarnings(log, kcfg.Kafka, splitList(*brokers))
	opts := replay.Options{
		Brokers: splitList(*brokers), ClientID: kcfg.Kafka.ClientID + "-replay", Security: kafkaclient.SecurityFromConfig(kcfg.Kafka),
		TopicPrefix: *prefix, Topics: splitList(*topics),
		Include: splitList(*tables), Exclude: splitList(*exclude),
		Target: *target, TargetPassword: password, OffsetsTable: *offsetsTable, CreateTables: *createTables,
		UntilEnd: *untilEnd, BatchSize: *batch, Workers: *workers, RefreshInterval: *refresh,
		Modes:       replay.Modes{DecimalHandling: *decimal, TimePrecision: *timePrec, BinaryHandling: *binary, HstoreHandling: *hstore},
		Placeholder: *placeholder, AllowCompactedTOAST: *allowCompacted, ParkFile: *parkFile, ParkTopic: *parkTopic, FlatFieldPrefix: *flatPrefix,
		Log: log, ProgressInterval: *progressInterval,
	}
	if *fromTime != "" {
		t, err := time.Parse(time.RFC3339, *fromTime)
		if err != nil {
			fmt.Fprintf(stderr, "pgcdc replay: --from-timestamp %q: want RFC 3339, e.g. 2024-05-01T12:00:00Z\n", *fromTime)
			return 2
		}
		opts.FromTime = t
	}
	switch *progress {
	case "bar":
		opts.Progress = stderr
	case "auto":
		if f, ok := stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			opts.Progress = stderr
		}
	case "log":
	default:
		fmt.Fprintf(stderr, "pgcdc replay: --progress %q: want auto, bar or log\n", *progress)
		return 2
	}
	if err := opts.Validate(); err != nil {
		return usage("%v", strings.TrimPrefix(err.Error(), "replay: "))
	}
	if targetHasPassword(*target) {
		log.Warn().Msg("--target holds a password, which every user of this machine can read in the process list: move it to PGCDC_REPLAY_TARGET_PASSWORD or --target-password-file")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := replay.Run(ctx, opts)
	var usageErr *replay.UsageError
	if errors.As(err, &usageErr) {
		return usage("%v", strings.TrimPrefix(err.Error(), "replay: "))
	}
	ev := log.Info()
	if err != nil {
		ev = log.Error().Err(err)
	}
	rate := 0.0
	if st.Elapsed > 0 {
		rate = float64(st.Records) / st.Elapsed.Seconds()
	}
	ev.Int64("records", st.Records).Int64("rows", st.Rows).Int64("parked", st.Parked).Int("topics", st.Topics).
		Float64("elapsed_s", st.Elapsed.Round(time.Millisecond).Seconds()).Int64("records_per_s", int64(rate))
	if err != nil {
		ev.Msg("replay stopped on an error")
		return 1
	}
	ev.Msg("replay finished")
	return 0
}

// targetPassword reads the target's password from file, else PGCDC_REPLAY_TARGET_PASSWORD ("": let
// pgx use PGPASSWORD or ~/.pgpass).
func targetPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--target-password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return os.Getenv("PGCDC_REPLAY_TARGET_PASSWORD"), nil
}

// targetHasPassword reports whether a connection string itself carries a password (a URL's
// user:password@ or a password= keyword).
func targetHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return false
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Get("password") != ""
	}
	for _, f := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "password" && v != "" {
			return true
		}
	}
	return false
}
