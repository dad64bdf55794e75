// Package versiontest holds pgcdc's tests across PostgreSQL versions, run by `make test`:
//
//   - TestVersions runs one combined scenario on each of PostgreSQL 14, 15, 16, 17 and 18
//     (testenv.PostgresVersions: a dedicated server per version, started once; the shared Kafka). It
//     drives the real pgcdc binary as a process: an initial snapshot, streamed changes, a type
//     subset compared with Debezium's recorded output (connector/testdata/compat), a transaction
//     larger than logical_decoding_work_mem with postgres.streaming off (spilled by the server) and
//     another with it on (streamed in progress, protocol v2), a rolled-back streamed transaction, a
//     DDL change, a kill -9 of pgcdc under a running workload, and a slot created again behind
//     pgcdc's back (refused, then recovered with snapshot.mode: when_needed). The checker reads the
//     topic back: every committed row arrived, nothing uncommitted did, the last event of every key
//     equals its row.
//   - TestFailoverSlot builds a primary and a physical standby of PostgreSQL 17 and 18 with slot
//     synchronization, runs pgcdc with postgres.failover_slot on a multi-host DSN, promotes the
//     standby under a workload and checks that pgcdc continues on the new primary from the
//     synchronized slot with nothing lost.
//
// The package has no code outside its tests.
package versiontest
