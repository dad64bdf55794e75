package kafkasink

import (
	"sync"
	"time"
)

// metadataRefresher makes the next requests of a kafka.Transport route with fresh cluster metadata.
//
// kafka-go (v0.4.51, transport.go) caches the cluster's metadata per connection pool and refreshes it
// only on a timer, at a random moment within Transport.MetadataTTL; a failed request never triggers a
// refresh. After a partition's leader moved (a broker killed, a controlled shutdown, a frozen broker
// fenced by the controller), every retry would go to the old leader (NOT_LEADER_OR_FOLLOWER, a refused
// connection, a timeout) until that timer fired: measured up to 13 s of the 30 s TTL in the cluster
// tests. Transport.CloseIdleConnections drops the transport's pools (requests in flight finish on
// theirs); the next request builds a new pool, which fetches the metadata before it routes anything.
type metadataRefresher struct {
	transport interface{ CloseIdleConnections() }
	every     time.Duration // at most one refresh per this interval

	mu    sync.Mutex
	last  time.Time
	count int
}

func newMetadataRefresher(t interface{ CloseIdleConnections() }, every time.Duration) *metadataRefresher {
	return &metadataRefresher{transport: t, every: every}
}

// refresh drops the cached metadata unless that was done less than every ago (the partitions of a
// failed broker fail together; one refresh serves them all). It reports whether it did. A nil
// refresher does nothing.
func (m *metadataRefresher) refresh() bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if now := time.Now(); m.count == 0 || now.Sub(m.last) >= m.every {
		m.last = now
		m.count++
		m.transport.CloseIdleConnections()
		return true
	}
	return false
}

// refreshes returns how many refreshes were done.
func (m *metadataRefresher) refreshes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count
}
