// Package signal reads the signals that steer a running pgcdc, in Debezium's formats
// (io.debezium.pipeline.signal, Debezium 3.6): execute-snapshot (incremental or blocking, with
// data-collections, additional-conditions and a surrogate-key), stop-snapshot, pause-snapshot,
// resume-snapshot and log.
//
// Two channels bring them:
//
//   - The signal table (Debezium's source channel, signal.data.collection): a table with the columns
//     id, type and data (TableDDL) in the publication. An INSERT into it is a signal; it comes
//     through the replication stream, in WAL order with the changes around it, and is acted on at
//     its transaction's commit. Its rows are never published.
//   - The Kafka signal topic (Debezium's kafka channel, signal.kafka.topic): partition 0 of the
//     topic, records whose key is the connector's topic prefix and whose value is
//     {"id": ..., "type": ..., "data": {...}}. KafkaChannel reads it from a stored offset, so a
//     signal is acted on once (at least once across a crash between acting and recording).
//
// Parse turns the (type, data) pair of either channel into a Signal; ExecuteData builds the data
// of an execute-snapshot signal (for `pgcdc snapshot`).
package signal
