// Package testenv provisions the real servers that pgcdc's integration tests run against: a throwaway
// PostgreSQL cluster (initdb on a free loopback port, wal_level=logical) and an Apache Kafka 4.x broker
// in KRaft mode (jars fetched from Maven Central through test/kafka/pom.xml and cached in .cache/kafka).
//
// Two ways to get servers:
//
//   - Shared: SharedPostgres and SharedKafka return the servers of the whole test run. `make test` starts
//     one PostgreSQL and one Kafka through cmd/testenv and hands them to every package in the
//     environment variables PGCDC_TEST_PG_DSN and PGCDC_TEST_KAFKA_BROKERS; users with their own servers
//     set those variables themselves. Without them, each test binary starts its own pair on first use
//     and stops it in Main. Tests sharing servers isolate themselves by name: NewDatabase gives each test
//     its own database, UniqueName its own slot, publication and topic names.
//   - Dedicated: StartPostgres and StartKafka start servers owned by one test, with their own settings
//     (e.g. wal_level=replica), which the test may stop, kill, restart on the same port and data
//     directory, or freeze (Kafka.Pause/Resume send SIGSTOP/SIGCONT to the broker's JVM).
//
// PostgreSQL versions: StartPostgres runs the system's binaries unless PostgresOptions.Version or
// PGCDC_TEST_PG_VERSION names a major version (14 to 18); a version not installed under
// /usr/lib/postgresql comes from Maven Central (test/postgres/pom.xml: zonky's embedded PostgreSQL
// bundles, server binaries and contrib, no client tools), cached in .cache/postgres like the Kafka
// jars (MavenLibs, Cached). `PGCDC_TEST_PG_VERSION=17 make test` runs the whole suite on 17.
// Postgres.StartStandby builds a physical standby of a dedicated cluster (a low-level base backup:
// pg_backup_start, a copy of the data directory, pg_backup_stop) and Postgres.Promote promotes it,
// for failover tests.
//
// Every server process is started with Pdeathsig=SIGKILL, so it dies with the process that started it
// even when go test times out and kills the test binary. PostgreSQL refuses to run as root: when the
// tests run as root, initdb and postgres run as the "postgres" user (or "nobody").
//
// Integration tests call Require(t) first: under `go test -short` they are skipped; otherwise a server
// that cannot be had fails the test, it never skips it.
package testenv
