package deliver

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// The request versions kafka-go's ConsumerGroup sends (consumergroup.go and conn.go of
// kafka-go v0.4.51) must be within what the broker supports: Kafka 4.0 removed old versions
// (KIP-896: OffsetCommit v0-v1, OffsetFetch v0, ...). This fails first, with the API named, if a
// broker or a kafka-go upgrade breaks the consumer group.
func TestConsumerGroupVersionsSupported(t *testing.T) {
	brokers := testenv.SharedKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	versions, err := conn.ApiVersions()
	if err != nil {
		t.Fatal(err)
	}
	supported := map[int16][2]int16{}
	for _, v := range versions {
		supported[v.ApiKey] = [2]int16{v.MinVersion, v.MaxVersion}
	}
	for _, use := range []struct {
		name       string
		key        int16
		minV, maxV int16 // the versions kafka-go may send (it negotiates within them)
	}{
		{"FindCoordinator", 10, 0, 0},
		{"JoinGroup", 11, 1, 2},
		{"Heartbeat", 12, 0, 0},
		{"LeaveGroup", 13, 0, 0},
		{"SyncGroup", 14, 0, 0},
		{"OffsetFetch", 9, 1, 1},
		{"OffsetCommit", 8, 2, 2},
	} {
		r, ok := supported[use.key]
		if !ok || use.maxV < r[0] || use.minV > r[1] {
			t.Errorf("%s: kafka-go sends v%d..v%d, the broker supports v%d..v%d", use.name, use.minV, use.maxV, r[0], r[1])
			continue
		}
		t.Logf("%s: kafka-go v%d..v%d, broker v%d..v%d", use.name, use.minV, use.maxV, r[0], r[1])
	}
}
