// Package kafkasink is the sink stage: it publishes records to Kafka and tells an Acker (the
// ack.Tracker) what Kafka acknowledged. Its interface is "append a record, be told when it is
// acknowledged"; kafka-go's types and the mapping of the configuration's strings onto them stay
// inside it, behind the producer interface (producer.go), so the producer can be replaced.
//
// It keeps the guarantees pgcdc needs (see the design notes, invariant 5):
//
//   - partitions are chosen here, with the Java client's murmur2 over the record key's final bytes,
//     so a key lands on the partition Debezium would pick; records with a null key go to partition 0
//     so keyless tables keep their order;
//   - each partition has one goroutine that owns its queue and has at most one batch outstanding: it
//     sends the next batch only after the previous one was acknowledged, so a batch that fails can
//     never be overtaken by a later one;
//   - retriable errors (io.EOF, timeouts, leader changes, ...) are retried without end with backoff;
//     permanent ones (authorization, record too large, ...) stop the sink and are reported by Err;
//   - memory is bounded: Append waits while the bytes in flight are at the configured bound, until
//     Kafka acknowledges enough or its context ends;
//   - with a transactional id (Options.TransactionalID) the producer is fenced.go's idempotent one:
//     record batches encoded here (recordbatch.go) with a producer id and epoch from InitProducerID
//     and sequence numbers, so the broker drops the copy of a retried batch that was in fact written,
//     and refuses (FencedError, permanent) the writes of an older process with the same id on every
//     partition the newer one has written to; the fence lasts while the partition's leader remembers
//     the newer producer (producer.id.expiration.ms after its last write there);
//   - topics are created (if allowed) and described on first use; records larger than the topic's
//     max.message.bytes are refused with an error naming the table, key, LSN and size before
//     anything is sent.
package kafkasink
