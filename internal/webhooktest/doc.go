// Package webhooktest is a webhook endpoint for tests, demos and benchmarks of pgcdc deliver: a
// real HTTP server on loopback that records every request it accepts and, when asked, misbehaves
// the ways real endpoints do: random 5xx answers (some with Retry-After), requests that hang past
// the client's timeout, 2xx answers whose body trickles in slowly, and connections reset without
// an answer. It verifies Standard Webhooks signatures when given the secrets.
//
// A request is accepted when the server commits to a 2xx status (writes its header): that is the
// moment a real endpoint would have processed the event. A hung or reset request is not accepted.
package webhooktest
