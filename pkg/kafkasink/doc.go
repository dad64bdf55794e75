// Package kafkasink publishes change events to Kafka and reports each acknowledgement to an
// ack.Tracker.
//
// It wraps a segmentio/kafka-go Writer with the guarantees pgcdc needs (see ../../shared DESIGN.md,
// invariant 5):
//
//   - partitions are chosen here, with the Java client's murmur2 over the record key's final bytes,
//     so a key lands on the partition Debezium would pick; records with a null key go to partition 0
//     so keyless tables keep their order;
//   - each partition has one goroutine that owns its queue and has at most one batch outstanding: it
//     calls the Writer synchronously and sends the next batch only after the previous one was
//     acknowledged, so a batch that fails can never be overtaken by a later one;
//   - retriable errors (io.EOF, timeouts, leader changes, ...) are retried without end with backoff;
//     permanent ones (authorization, record too large, ...) stop the sink and are reported by Err;
//   - memory is bounded: Reserve admits a record only while the bytes in flight stay under the
//     configured bound, and returns after a wait limit so the caller can keep its replication
//     connection alive (status updates) while the broker is slow or stalled;
//   - records larger than the topic's max.message.bytes are refused with an error naming the table,
//     key, LSN and size before anything is sent.
package kafkasink
