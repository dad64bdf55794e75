// Package connector wires pgcdc's stages together and owns the lifetime of every goroutine:
//
//	pgsource.Stream ──messages──▶ pipeline: decode.Decoder → route.Router → kafkasink.Sink
//	      ▲                                                          │ acknowledgements
//	      └──────── safe position (ack.Tracker.Safe) ◀── ack.Tracker ◀┘
//
// The stream (package pgsource) owns the replication connection and sends status updates with the
// position the tracker says is safe. The pipeline (pipeline.go) decodes each message, routes the
// changes to records, appends them to the sink and registers every transaction with the tracker.
// The sink's partition writers tell the tracker what Kafka acknowledged.
//
// Lifecycle (connector.go): Run checks the server, syncs the publication, prepares the topics and
// the slot, runs the initial snapshot when one is due (snapshot.go), then runs the stages in one
// errgroup beside the periodic jobs (publication refresh, heartbeat, slot metrics, progress log).
//
// Stopping: when Run's context ends, the pipeline finishes the transaction at hand, the stream
// stops reading, the tracker waits for Kafka to acknowledge everything in flight, the stream
// confirms it and Run returns nil ("stopped cleanly"). kafka.shutdown_timeout bounds the whole
// stop; past it every stage ends at once and Run returns ErrShutdownTimeout, having confirmed only
// what Kafka acknowledged. Any failure no reconnect cures (a record Kafka never takes, a dropped
// slot or publication, bad data) ends every stage and is returned; transient ones (a PostgreSQL
// restart, a broker outage) are retried inside the stage that met them.
package connector
