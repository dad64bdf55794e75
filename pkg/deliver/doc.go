// Package deliver is the engine of `pgcdc deliver`: one member of a Kafka consumer group that reads
// pgcdc's topics and sends every event to the HTTP endpoints of the routes it matches, at least
// once, in order per key (docs/deliver.md is the user's guide).
//
//	e, err := deliver.New(deliver.Options{
//		Kafka:   deliver.NewKafka(kc) // kc: a *kafkaclient.Client,
//		GroupID: "orders-hooks",
//		Routes:  routes, // compiled route.Route values
//		DeadLetterTopic: "orders-hooks.dlq",
//		Log: log,
//	})
//	err = e.Run(ctx) // until ctx ends: drains, commits, leaves the group
//
// How it works:
//
//   - The group (kafka-go's ConsumerGroup, which speaks protocol versions Kafka 4 accepts) assigns
//     partitions; each generation runs one goroutine per assigned partition (partition.go), a
//     committer and a lag poller (generation.go). A rebalance or a stop ends the generation: the
//     partitions stop reading, deliver what they have read (retries included) for half the grace,
//     let the last attempts finish, and their finished positions are committed before the group
//     moves on.
//   - A partition parses each record once (package payload), finds its routes (package route),
//     and queues one delivery per route on the queue of its ordering unit: the route and the record
//     key (OrderKey) or the route alone (OrderPartition). Only a queue's head is attempted, so a
//     unit's events reach the endpoint in offset order; up to Options.Concurrency heads are
//     attempted at once.
//   - An attempt (attempt.go) is one signed POST (package signature). A failure waits for its retry
//     in a timer heap without holding a slot (package retry decides the delay and when to give
//     up); giving up writes the record to the dead-letter topic (deadletter.go) or, with Hold,
//     keeps retrying.
//   - Package offsets turns finished records into the offset to commit: the oldest unfinished
//     one. A record is finished when every route is done with it.
//
// Every Kafka connection is made from Options.Kafka (NewKafka), the one place where TLS and SASL
// settings are applied. Metrics (metrics.go) are served by internal/opshttp.
package deliver
