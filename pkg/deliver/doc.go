// Package deliver is pgcdc deliver's engine: it reads change topics in a Kafka consumer group and
// calls HTTP endpoints.
package deliver
