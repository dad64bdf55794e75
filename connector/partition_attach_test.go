package connector_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// ATTACH PARTITION of a table that already holds rows is a join like any other: the rows it held
// were never published under the captured partitioned table, so they arrive as snapshot rows (op r)
// once the refresher sees the new partition, and the changes after the attachment are streamed.
// Both settings of tables.publish_via_partition_root: the partition's own topic (false, as
// Debezium), the root's topic (true).
func TestAttachPartitionIsAJoin(t *testing.T) {
	for _, viaRoot := range []bool{false, true} {
		name := "leaf topics"
		if viaRoot {
			name = "root topic"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			e.exec(`CREATE TABLE pa (id int NOT NULL, region text NOT NULL, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`)
			e.exec(`CREATE TABLE pa_eu PARTITION OF pa FOR VALUES IN ('eu')`)
			env := map[string]string{}
			topic := "pa_us"
			if viaRoot {
				env["PGCDC_TABLES_PUBLISH_VIA_PARTITION_ROOT"] = "true"
				topic = "pa"
			}
			p := e.start(env)
			p.waitStreaming()

			e.exec(`CREATE TABLE pa_us (id int NOT NULL, region text NOT NULL, v text, PRIMARY KEY (id, region))`)
			e.exec(`INSERT INTO pa_us VALUES (1, 'us', 'before the attach')`)
			e.exec(`ALTER TABLE pa ATTACH PARTITION pa_us FOR VALUES IN ('us')`)
			p.waitLog(`"partitions":["public.pa_us"]`, time.Minute)
			e.exec(`INSERT INTO pa VALUES (2, 'us', 'after the attach')`)

			var ops map[float64]string
			for deadline := time.Now().Add(time.Minute); ; {
				msgs, _ := testenv.ReadTopic(context.Background(), e.brokers, e.topic(topic), 1<<20, 3*time.Second)
				ops = map[float64]string{}
				for _, c := range decodeChanges(t, msgs) {
					if c.After != nil && c.After["region"] == "us" {
						ops[c.After["id"].(float64)] += c.Op
					}
				}
				if strings.Contains(ops[1], "r") && strings.HasPrefix(ops[2], "c") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("topic %s after ATTACH PARTITION: ops by id %v, want 1: r (its backfill) and 2: c first (streamed)\n%s", topic, ops, tail(p.out.String(), 3000))
				}
			}
			if code := p.stop(); code != 0 {
				t.Fatalf("exit code %d", code)
			}
		})
	}
}
