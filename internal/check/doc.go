// Package check implements `pgcdc check` and `pgcdc status`: it inspects a configuration and the
// servers it names, without changing anything, and reports every problem with its fix.
//
// Run checks, in order: PostgreSQL connectivity and settings (version, wal_level, replication slots
// and WAL senders, max_slot_wal_keep_size), the role's privileges (REPLICATION, CREATE on the
// database when pgcdc creates the publication, ownership of tables it must add, SELECT), the
// captured tables (each include entry names something, replica identity of each table), the
// publication's contents and the slot's state (who holds it, and whether an inactive slot is
// further behind than Options.MaxSlotLag), each table's largest row (rows.go; sampled on large
// tables), then Kafka connectivity and, per captured table, its topic: existence, replication
// factor against the brokers, min.insync.replicas and acks (can an acknowledged event be lost with
// one broker?), retention (can the topic still rebuild a downstream system from scratch?), and
// max.message.bytes against the largest row. A Report lists findings of four severities (OK, INFO, WARN,
// FAIL); Failed is true when any finding is FAIL, which `pgcdc check` turns into a non-zero exit
// (with --strict, warnings too).
//
//	rep := check.Run(ctx, cfg, check.Options{MaxSlotLag: 1 << 30})
//	rep.Write(os.Stdout)
//	if rep.Failed() { os.Exit(1) }
//
// The slot reader is pgsource.ReadSlotState: one reader for pgcdc run, check, status and the slot
// metrics.
package check
