package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
	"github.com/pgcdc/pgcdc/pkg/signal"
)

const snapshotSummary = `Usage: pgcdc snapshot [--config FILE] [--filter CONDITION] [--blocking] [--via table|kafka] TABLE...
       pgcdc snapshot --stop [TABLE...] | --pause | --resume

Sends a signal to the running pgcdc of this configuration (Debezium's execute-snapshot,
stop-snapshot, pause-snapshot and resume-snapshot): re-read the existing rows of the tables
(schema.table; regular expressions over whole names, as Debezium's data-collections) while the
stream goes on. Their rows come as op "r" events with source.snapshot "incremental"; none of them
overrides a newer change of the stream. --blocking pauses the stream instead and reads the tables
in one snapshot (markers "first", "true", "last" as the initial snapshot).

The signal goes through the signal table (signal.table; it comes to pgcdc through the replication
stream, so it is acted on in WAL order, and needs INSERT on the table) or, without one or with
--via kafka, the Kafka signal topic (signal.kafka_topic; keyed by kafka.topic_prefix). It returns
once the signal is written; pgcdc acts on it when it reads it (see its log). Progress is in the
log ("incremental snapshot progress") and the pgcdc_incremental_snapshot_* metrics.
`

func snapshotCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pgcdc snapshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := configFlag(fs)
	filter := fs.String("filter", "", "SQL condition on the rows to read, for every TABLE (Debezium's additional-conditions), e.g. \"region = 'eu'\"")
	blocking := fs.Bool("blocking", false, "a blocking snapshot: the stream pauses while the tables are read")
	via := fs.String("via", "", "the channel: table (signal.table) or kafka (signal.kafka_topic); default: the table when configured")
	stop := fs.Bool("stop", false, "stop the incremental snapshot of TABLEs (of every table when none is named)")
	pause := fs.Bool("pause", false, "pause the incremental snapshot (the table being read keeps its place)")
	resume := fs.Bool("resume", false, "resume a paused incremental snapshot")
	surrogate := fs.String("surrogate-key", "", "a unique, not-null column that chunks the tables instead of their primary key")
	fs.Usage = func() {
		fmt.Fprint(stderr, snapshotSummary, "\nFlags:\n")
		fs.PrintDefaults()
	}
	var tables []string
	for rest := args; len(rest) > 0; {
		for _, a := range rest {
			if a == "-h" || a == "--help" || a == "-help" {
				fmt.Fprint(stdout, snapshotSummary, "\nFlags:\n")
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return 0
			}
		}
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		rest = fs.Args()
		if len(rest) > 0 { // flags may follow the tables
			tables, rest = append(tables, rest[0]), rest[1:]
		}
	}
	typ, modes := signal.TypeExecuteSnapshot, 0
	for _, m := range []struct {
		on  bool
		typ string
	}{{*stop, signal.TypeStopSnapshot}, {*pause, signal.TypePauseSnapshot}, {*resume, signal.TypeResumeSnapshot}} {
		if m.on {
			typ, modes = m.typ, modes+1
		}
	}
	switch {
	case modes > 1:
		fmt.Fprintln(stderr, "pgcdc snapshot: --stop, --pause and --resume exclude each other")
		return 2
	case typ == signal.TypeExecuteSnapshot && len(tables) == 0:
		fmt.Fprint(stderr, "pgcdc snapshot: name at least one table (schema.table)\n\n", snapshotSummary)
		return 2
	case typ != signal.TypeExecuteSnapshot && (*filter != "" || *blocking || *surrogate != ""):
		fmt.Fprintln(stderr, "pgcdc snapshot: --filter, --blocking and --surrogate-key go with an execute-snapshot only")
		return 2
	case (typ == signal.TypePauseSnapshot || typ == signal.TypeResumeSnapshot) && len(tables) > 0:
		fmt.Fprintln(stderr, "pgcdc snapshot: --pause and --resume take no table")
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr)
	if !ok {
		return 2
	}
	channel := *via
	if channel == "" {
		channel = "table"
		if cfg.Signal.Table == "" {
			channel = "kafka"
		}
	}
	var data []byte
	switch typ {
	case signal.TypeExecuteSnapshot:
		filters := map[string]string{}
		for _, t := range tables {
			if *filter != "" {
				filters[t] = *filter
			}
		}
		data = signal.ExecuteData(tables, filters, *blocking, *surrogate)
	case signal.TypeStopSnapshot:
		data = signal.StopData(tables)
	default:
		data = []byte("{}")
	}
	id := signal.NewID()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	switch channel {
	case "table":
		if cfg.Signal.Table == "" {
			fmt.Fprintln(stderr, "pgcdc snapshot: --via table needs signal.table (PGCDC_SIGNAL_TABLE)")
			return 2
		}
		conn, err := connect(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "pgcdc snapshot: %v\n", err)
			return 1
		}
		defer conn.Close(context.Background())
		schema, name := cfg.Signal.TableName()
		if _, err := conn.Exec(ctx, signal.InsertSQL(schema, name), id, typ, string(data)); err != nil {
			fmt.Fprintf(stderr, "pgcdc snapshot: insert the signal into %s: %v\n", cfg.Signal.Table, err)
			return 1
		}
	case "kafka":
		if cfg.Signal.KafkaTopic == "" {
			fmt.Fprintln(stderr, "pgcdc snapshot: no signal channel: set signal.table (PGCDC_SIGNAL_TABLE) or signal.kafka_topic (PGCDC_SIGNAL_KAFKA_TOPIC)")
			return 2
		}
		kc, err := kafkaclient.New(ctx, kafkaclient.FromConfig(cfg.Kafka))
		if err != nil {
			fmt.Fprintf(stderr, "pgcdc snapshot: %v\n", err)
			return 1
		}
		if err := signal.SendKafka(ctx, kc, cfg.Signal.KafkaTopic, cfg.Kafka.TopicPrefix, id, typ, data); err != nil {
			fmt.Fprintf(stderr, "pgcdc snapshot: %v\n", err)
			return 1
		}
	default:
		fmt.Fprintf(stderr, "pgcdc snapshot: --via must be table or kafka, got %q\n", channel)
		return 2
	}
	where := cfg.Signal.Table
	if channel == "kafka" {
		where = cfg.Signal.KafkaTopic
	}
	fmt.Fprintf(stdout, "sent %s signal %s through %s (%s): %s\n", typ, id, channel, where, data)
	return 0
}
