// Package route describes where pgcdc deliver sends events: a Route names the topics and tables
// it takes (globs), the Debezium ops, the endpoint URL with its headers, TLS and signing secrets,
// the body format and the timeout of one attempt. Every route an event matches gets its own
// delivery (fan-out); an event no route matches is skipped.
package route
