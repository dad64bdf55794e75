// Package retry is pgcdc deliver's retry policy: which outcomes of an HTTP attempt are worth
// another attempt, how long to wait before it (exponential backoff with jitter, or the endpoint's
// Retry-After when that is longer), and when to give up (a maximum number of attempts and a maximum
// age of the first attempt). It is pure logic: no clock, no randomness of its own.
package retry
