package kafkasink

import (
	"context"
	"sync"
)

// budget bounds the bytes of records handed to the sink and not yet acknowledged.
type budget struct {
	mu      sync.Mutex
	used    int64
	max     int64
	changed chan struct{} // closed and replaced whenever used decreases
}

func newBudget(max int64) *budget {
	return &budget{max: max, changed: make(chan struct{})}
}

// acquire takes n bytes, waiting until there is room, stop is closed, or ctx ends. A record larger
// than the whole budget is admitted alone when nothing else is in flight, so it cannot wait forever.
func (b *budget) acquire(ctx context.Context, n int64, stop <-chan struct{}) error {
	for {
		b.mu.Lock()
		if b.fits(n) {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-stop:
			return errSinkFailed
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// tryAcquire takes n bytes when there is room now (acquire's rule), without waiting.
func (b *budget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fits(n) {
		b.used += n
		return true
	}
	return false
}

// fits says whether n more bytes may go in flight now (b.mu held).
func (b *budget) fits(n int64) bool { return b.used+n <= b.max || b.used == 0 }

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// inUse returns the bytes in flight and a channel closed at the next release.
func (b *budget) inUse() (int64, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.changed
}
