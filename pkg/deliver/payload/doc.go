// Package payload turns a Kafka record of pgcdc's topics into the body of a webhook request.
//
// Parse reads a record once: when its value is a Debezium change event (with or without the
// JsonConverter schema envelope) the op, source block, before and after rows are picked out; any
// other value (an outbox event, a heartbeat) is kept as it is. An Event's ID is stable across
// redeliveries: a version 5 UUID of the source name, the source LSN and the pgcdc.position header
// when the record is one of pgcdc's change events, otherwise the record's id header (the outbox
// event id) or its topic, partition and offset.
//
// The body formats:
//
//   - debezium: the record value as it is (the Debezium event, schema envelope included when the
//     topic has one);
//   - flat: the row (the after state; the before state of a delete) with __op, __schema, __table,
//     __lsn, __source_ts_ms and __deleted added, as Debezium's ExtractNewRecordState transform
//     writes it with add.fields=op,schema,table,lsn,source.ts_ms and delete.handling.mode=rewrite;
//     values keep Debezium's encoding;
//   - hasura: the body of a Hasura event trigger (event.op INSERT/UPDATE/DELETE/MANUAL,
//     event.data.old/new, table, trigger, id, created_at, delivery_info), with column values turned
//     back into the JSON PostgreSQL's row_to_json gives (numbers, ISO timestamps, nested JSON)
//     when the topic carries value schemas;
//   - raw: the record value as it is, for any topic (outbox events).
package payload
