// Package retry is pgcdc's one backoff policy: exponential growth with jitter, capped, for every
// loop that retries a transient failure (replication reconnects, PostgreSQL connects, Kafka writes
// and topic set-up, periodic jobs).
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Backoff yields growing, jittered waits between attempts. The zero value is not usable: use New.
// A Backoff is used by one goroutine.
type Backoff struct {
	exp backoff.ExponentialBackOff
	max time.Duration
}

// New returns a Backoff whose waits start near initial, grow by half each attempt, vary by ±25%
// (so that processes that failed together do not retry in step) and never exceed max.
func New(initial, max time.Duration) *Backoff {
	b := &Backoff{max: max}
	b.exp = backoff.ExponentialBackOff{
		InitialInterval:     initial,
		RandomizationFactor: 0.25,
		Multiplier:          1.5,
		MaxInterval:         max,
	}
	b.exp.Reset()
	return b
}

// Next returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	d := b.exp.NextBackOff()
	if d > b.max || d < 0 { // the library caps the interval before jitter, not after
		d = b.max
	}
	return d
}

// Reset starts the growth over (after a success).
func (b *Backoff) Reset() { b.exp.Reset() }

// Wait sleeps for Next, or returns the context's cause when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) error {
	return Sleep(ctx, b.Next())
}

// Sleep sleeps for d, or returns the context's cause when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
