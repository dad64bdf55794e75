// Command bench measures pgcdc against the limit PostgreSQL itself sets: how fast a walsender can
// decode the same WAL into pgoutput for a client that does nothing with it (pg_recvlogical writing
// to /dev/null), and how close pgcdc comes to that end to end (decoded, encoded, acknowledged by
// Kafka, confirmed to the slot). `make bench` runs the default suite; docs/performance.md explains
// the method and keeps the latest figures.
//
//	go run ./internal/cmd/bench [-rows 1000000] [-txn-rows 100] [-debezium=false] [-modes throughput,latency,large,deliver,incremental,snapshot] [-json FILE]
//	go run ./internal/cmd/bench -modes sweep [-sweep-rows 200000] [-sweep-factors rowsize,partitions,tables,txn] [-sweep-debezium] [-plot-dir DIR]
//
// Servers: by default a throwaway PostgreSQL and Kafka are started through internal/testenv (their
// pids are known, so the CPU of the broker's JVM and of the walsender are measured too). Existing
// servers are used instead with -pg-dsn (a superuser URL; the benchmark creates and drops its own
// database) and -kafka-brokers, or the variables PGCDC_TEST_PG_DSN and PGCDC_TEST_KAFKA_BROKERS.
//
// Modes, one after the other:
//
//   - throughput: the table bench (bigint key, text, numeric, timestamptz, jsonb; about 120 bytes per
//     row) gets -rows rows in transactions of -txn-rows, written into the WAL before any consumer
//     runs. Every consumer reads that same WAL from its own slot, created before the workload:
//     first pg_recvlogical (pgoutput, proto_version 1, the same publication; finished when the
//     walsender's sent_lsn reaches the last commit), then pgcdc with events.value_schemas=false and
//     =true (finished when the slot's confirmed_flush_lsn reaches the end LSN of the last commit,
//     which pgcdc confirms only once Kafka acknowledged everything). Per consumer: rows/s, CPU
//     seconds of the client, the walsender and the broker JVM (utime+stime deltas from /proc), CPU-µs
//     per event, peak RSS (VmHWM). -repeat N repeats the three runs N times on fresh slots over the
//     same WAL; the summary takes medians of the per-round ratios. With -debezium (default on), each
//     round then runs Debezium (io.debezium:debezium-connector-postgres in Kafka Connect standalone,
//     internal/debeziumtest, JsonConverter with key and value schemas as each -schemas setting, JVM
//     options -debezium-jvm, default -Xmx1g) over the same WAL from a slot of its own, from the
//     JVM's start until its topic holds every row (Debezium confirms its slot only on offset
//     flushes, so the topic's end offset is its end criterion); the summary adds pgcdc's rows/s
//     over Debezium's and Debezium's CPU per event and peak RSS over pgcdc's.
//     With -warmup (default on) one unreported pgcdc run (value schemas on) precedes round 1, so
//     that the broker's JIT is as warm for round 1 as for the later ones.
//     -variant NAME:ENV=V,... adds a pgcdc configuration to every round; in it,
//     BENCH_PGCDC_BIN=PATH runs another pgcdc binary (an A/B of two builds within one run).
//   - latency: a writer inserts -latency-rate rows/s in transactions of -latency-batch rows for
//     -latency-warmup plus -latency-duration, on a schedule fixed in advance (start + k*interval,
//     so a late batch does not shift the rest); a Kafka consumer reads the topic as records arrive
//     and takes receive time minus source.ts_us (the commit time PostgreSQL recorded) for each row
//     written after the warm-up: p50, p95, p99, max.
//   - large: one transaction of -large-rows rows, committed before pgcdc starts; time from pgcdc's
//     start to the slot confirmed past that commit, and peak RSS. With -large-ref, pg_recvlogical
//     reads the same transaction first as the reference.
//   - deliver: -deliver-events Debezium-shaped records (pgcdc's format, no schemas; 10,000 keys) are
//     written to a topic of -deliver-partitions partitions, then `pgcdc deliver --until-end` sends
//     them to an HTTP endpoint of the benchmark that answers 204 at once; events/s is measured at
//     the endpoint from the first request to the last, with the process's CPU and peak RSS.
//   - incremental: a table of -incremental-rows rows (the throughput table's layout) that pgcdc
//     captures without snapshotting it, and a second captured table written at -latency-rate rows/s
//     throughout. After -latency-duration of writes, an execute-snapshot signal (signal table) asks
//     for an incremental snapshot of the first table: rows/s from the signal to the log's "table
//     done" (after the last chunk's acknowledgement), and the second table's latency (commit to a
//     consumer's receipt, p50/p99/max) before and during the snapshot.
//   - snapshot: a table of -snapshot-rows rows (the throughput table's layout), snapshotted with
//     snapshot.mode initial and value schemas on by pgcdc, then (with -debezium) by Debezium, each
//     timed from its process's start until its topic holds every row; beside them the read limit,
//     COPY (SELECT * FROM table) TO STDOUT to a client that discards it, and pgcdc's own streaming
//     rate from the throughput mode.
//   - sweep (only when named in -modes: twelve points, each with its own workload, so it is long;
//     -timeout grows by 45 minutes unless given): how the cost grows with one factor at a time away
//     from the default point (the throughput table's ~120-byte rows, one captured table,
//     kafka.partitions 1, transactions of 100 rows). Factors (-sweep-factors): rowsize (120 B; 2
//     KB, a 2,000-character text column of random characters with STORAGE PLAIN, kept in the row;
//     100 KB TOAST, a 100,000-character one with STORAGE EXTERNAL, moved out of line uncompressed),
//     partitions (1, 6, 24: kafka.partitions), tables (1, 100, 1,000 captured tables, the rows
//     spread round-robin, each table its own topic) and txn (1, 100, 10,000 rows per transaction).
//     Each point writes -sweep-rows rows (default 200,000; -quick 20,000; the 100 KB point about 1
//     KB of payload per row of it: 2,000 rows, at most 256 MiB) into tables, a publication and
//     slots of its own, then times pg_recvlogical (the limit) and pgcdc at its defaults with value
//     schemas on (and with -sweep-debezium Debezium, -debezium-jvm) over that WAL as the throughput
//     mode does (pgcdc's postgres.connect_timeout, which bounds its whole start-up including the
//     set-up of every topic, is raised to -run-timeout); it checks each topic's record count and
//     drops its slots, tables, publication and topics afterwards. An unreported warm-up point (the
//     default one, at most 20,000 rows) runs first, so that the broker's JVM is as warm for the
//     first point as for the rest. Per point: rows/s, pgcdc/limit, CPU µs per event of pgcdc, its
//     walsender and the broker, peak RSS, start-up. A table per factor on stdout, the points in the
//     results (sweep), and an SVG per factor (rows/s, CPU µs per event, peak RSS over the factor's
//     values) in -plot-dir (default OUT/plots, i.e. .cache/bench/plots; 'off' for none).
//
// Profiling: with -profile DIR (default .cache/bench), one more pgcdc run over the throughput WAL
// has PGCDC_PPROF_ADDR set (cmd/pgcdc/pprof.go) and the benchmark saves a CPU profile taken over
// most of that run and the allocation profile at its end, then prints the top entries. That run is
// not part of the timed figures.
//
// Output: a table on stdout, and the full results as JSON (-json; default
// .cache/bench/results.json, git-ignored). Every wait is bounded (-run-timeout per consumer run).
//
// Fairness notes: pgcdc runs with postgres.status_interval=-status-interval (default 200ms) so that
// its confirmation is not held back by the 10s default; that delay, at most one interval, is
// inside its figure. pg_recvlogical's figure ends when the walsender has sent the last commit. On
// a small machine the broker, the walsender and pgcdc share the same cores; the CPU columns show
// who used them.
package main
