// Package outbox routes outbox events, as Debezium's outbox Event Router
// (io.debezium.transforms.outbox.EventRouter, 3.6.1) does in Kafka Connect, inside pgcdc's route
// stage.
//
// An application writes its state change and an event describing it in one transaction: a row in
// an outbox table (id, aggregatetype, aggregateid, payload, ...), or a transactional logical
// decoding message, pg_logical_emit_message(true, prefix, '{"id": ..., "payload": ...}'). The WAL
// holds both or neither, so the event exists exactly when the change committed. pgcdc turns the
// row's insert (or the message) into a record on the topic its routing value names
// (outbox.event.<aggregatetype> by default), keyed by the aggregate id, the payload as its value
// and the event id in the "id" header. Updates, deletes and truncates of outbox tables route
// nothing, so an application may delete the row in the same transaction or later.
//
// Usage: validate the options once, then give each route.Router its own Step:
//
//	r, err := outbox.New(opts)          // opts from outbox.Defaults(), Tables/MessagePrefixes set
//	routeOpts.Steps = append(routeOpts.Steps, r.Step())
//
// The record is byte for byte what the EventRouter and Kafka Connect's JsonConverter (and
// SimpleHeaderConverter for headers) write, with the differences listed in README.md ("Reliable
// eventing"); json.go reproduces Debezium's JSON schema inference for table.expand.json.payload and
// message contents.
package outbox
