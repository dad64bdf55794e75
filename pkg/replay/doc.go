// Package replay rebuilds tables in a target PostgreSQL from pgcdc's change topics: the engine
// behind `pgcdc replay`.
//
//	stats, err := replay.Run(ctx, replay.Options{
//		Brokers: []string{"kafka:9092"}, TopicPrefix: "app",
//		Target: "postgres://replay@db2/app", CreateTables: true, UntilEnd: true,
//		Log: log,
//	})
//
// Records are read in every format pgcdc writes: keys and values with or without the
// JsonConverter {"schema","payload"} wrapper. With value schemas the Connect types and logical
// names say how each field is encoded (Decimal scale, MicroTimestamp, ZonedTimestamp, ...); without
// them the target column's type does, under the modes pgcdc was configured with (Modes), so the
// tables must exist. Every value becomes PostgreSQL input text and is cast to the target column's
// type in SQL.
//
// Applying (apply.go): c/r/u are upserts on the key (INSERT ... SELECT FROM unnest($n::text[]) ...
// ON CONFLICT DO UPDATE), d is a delete (DELETE ... USING unnest(...)), t a TRUNCATE. A batch holds
// one partition's records and is collapsed to the last state per key first. Each batch is one
// transaction that also writes the partition's next offset into the offsets table, so the target
// always holds exactly the changes up to its recorded position: a crash or kill at any moment
// resumes from there, and replaying twice changes nothing.
//
// The unchanged-TOAST placeholder is never written: such a column is left out of the upsert and
// keeps the target's value (or takes the value from an earlier event of the same batch). A
// primary-key change takes it from the old row, saved when the old key's delete is applied
// (carry.go); a value replay cannot know stops it.
//
// A record that cannot be applied (malformed, refused by the target) stops replay with its topic,
// partition and offset (a failed batch is applied again record by record under savepoints to find
// it), or with Options.ParkFile/ParkTopic is parked with the reason (park.go). Every error of the
// options is a *UsageError. docs/replay.md is the user's guide.
//
// Order (coordinator.go): one coordinator per topic; partitions are applied in parallel, each in
// offset order (pgcdc keeps a key on one partition in commit order). Truncates are ordered by
// source.lsn against the events of every partition of their table, and so is the new key of a
// primary-key change that needs the old row's values. DDL (--create-tables) is serialized across
// topics. The first error of any topic stops the others and is the one Run returns. Tables
// without a key are on one partition (pgcdc writes them so) and are applied one change at a time
// in order; their updates and deletes match a row equal to the before image, which needs REPLICA
// IDENTITY FULL.
//
// Compacted topics (cleanup.policy=compact) hold no keyless tables and no truncates (null keys),
// and may keep an update whose TOAST column holds only the placeholder: such topics are refused
// for tables with TOASTable columns unless Options.AllowCompactedTOAST.
package replay
