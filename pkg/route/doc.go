// Package route turns decoded changes into Kafka records: the Debezium change event of each row
// change (key, envelope, the tombstone after a delete, the delete + create pair of a primary-key
// change), TRUNCATE events, logical decoding messages, Debezium heartbeat records and the
// transaction metadata topic's BEGIN/END events, each record with the pgcdc.position header.
//
// A Router is used by one goroutine: the pipeline's, or one snapshot worker's (each has its own).
// It keeps one encoder per relation version, built when the relation is described.
//
// # Transforms
//
// Steps change what the router built before it is published, as Kafka Connect's single message
// transforms do: each Step gets the records built for one change (with the change itself, so it can
// read columns by name) and returns the records to publish instead — the same, changed, none, or
// others (outbox routing replaces a row's change event by the event the row describes; a topic
// router renames; a filter drops). A step that drops whole changes before they are encoded
// implements Filter as well. Steps run in order; add one with Options.Steps.
//
// # Shaping as Debezium users configure it
//
// Options.Shaping (column.include/exclude.list, column mappers, message.key.columns) shapes each
// relation's table before its encoder is built, and steps implementing TableShaper change it
// there too (LogicalTableRouter names the schemas and adds the key field), so schemas, row images
// and keys agree, in snapshots and streaming alike (shaping.go). Options.SkippedOperations,
// ChangedHeader/UnchangedHeader (ExtractChangedRecordState) and Unwrap (ExtractNewRecordState,
// unwrap.go) shape the records built for a change (records.go). RegexRouter and
// LogicalTableRouter are steps renaming topics (topics.go); RenameTopic gives a table's topic
// after them. docs/shaping.md describes each option and the comparison with Debezium.
package route
