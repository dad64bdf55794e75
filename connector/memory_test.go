package connector_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// memoryBound is the peak resident memory docs/operations.md ("Sizing") states for a
// kafka.max_in_flight_bytes of inFlight and topics of partitions partitions: keep the two in step.
// Measured (TestMemoryPeak, make test-long, 2026-12-07): 1 partition 65/72/92/128/201 MiB and 12
// partitions 89/97/113/144/157 MiB at 4/8/16/32/64 MiB in flight.
func memoryBound(inFlight int64, partitions int) int64 {
	fixed := int64(60 << 20)
	if partitions > 1 {
		fixed = 85 << 20
	}
	return inFlight*5/2 + fixed
}

// TestMemoryPeak measures the peak resident memory (VmHWM) of the real pgcdc process (built
// without -race) while one 200,000-row transaction streams through with small transactions
// committed before, during and after it (from another session, one every 5 ms), and holds it to
// memoryBound. `make test` runs the default kafka.max_in_flight_bytes (8 MiB) on 12 partitions,
// the costliest layout measured; PGCDC_TEST_LONG=1 (make test-long) sweeps 4 to 64 MiB on 1 and
// 12 partitions.
func TestMemoryPeak(t *testing.T) {
	type load struct {
		inFlight   int64
		partitions int
	}
	loads := []load{{8 << 20, 12}}
	if os.Getenv("PGCDC_TEST_LONG") != "" {
		loads = nil
		for _, p := range []int{1, 12} {
			for _, mib := range []int64{4, 8, 16, 32, 64} {
				loads = append(loads, load{mib << 20, p})
			}
		}
	}
	for _, l := range loads {
		t.Run(fmt.Sprintf("in_flight=%dMiB/partitions=%d", l.inFlight>>20, l.partitions), func(t *testing.T) {
			e := newEnv(t, nil, nil)
			e.exec(`CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL); CREATE TABLE small (id bigserial PRIMARY KEY, v int)`)
			p := e.start(map[string]string{
				"PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES": strconv.FormatInt(l.inFlight, 10),
				"PGCDC_KAFKA_PARTITIONS":          strconv.Itoa(l.partitions),
			})
			p.waitStreaming()

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var smallErr error
			smalls := 0
			wg.Add(1)
			go func() { // small transactions until stopped, at most 30,000
				defer wg.Done()
				conn, err := pgx.Connect(ctx, e.dsn)
				if err != nil {
					smallErr = err
					return
				}
				defer conn.Close(context.Background())
				for ; smalls < 30000; smalls++ {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					if _, err := conn.Exec(ctx, `INSERT INTO small (v) VALUES ($1)`, smalls); err != nil {
						smallErr = err
						return
					}
				}
			}()
			time.Sleep(time.Second)
			e.exec(`INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 200000) g`) // 96-byte payloads
			time.Sleep(2 * time.Second)
			close(stop)
			wg.Wait()
			if smallErr != nil {
				t.Fatal(smallErr)
			}
			e.waitDelivered(4 * time.Minute)
			hwm := p.vmHWM()
			bound := memoryBound(l.inFlight, l.partitions)
			t.Logf("max_in_flight_bytes %d MiB, %d partitions: a 200,000-row transaction and %d small ones delivered; pgcdc VmHWM %.1f MiB (documented bound %d MiB)",
				l.inFlight>>20, l.partitions, smalls, float64(hwm)/(1<<20), bound>>20)
			if code := p.stop(); code != 0 {
				t.Fatalf("pgcdc exit %d", code)
			}
			if hwm > bound {
				t.Fatalf("VmHWM %.1f MiB exceeds the documented bound (docs/operations.md, Sizing) of %d MiB", float64(hwm)/(1<<20), bound>>20)
			}
		})
	}
}
