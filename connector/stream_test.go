package connector_test

import (
	"fmt"
	"testing"
	"time"
)

// Inserts, updates and deletes across tables and transactions arrive on the right topics, with the
// right keys, in commit order per key, with correct before/after/op/source fields.
func TestStreamsChangesInCommitOrder(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL, qty int, price numeric(10,2), placed timestamptz, meta jsonb, ref uuid, ok bool)`)
	e.exec(`CREATE TABLE customers (id bigint PRIMARY KEY, name text)`)
	p := e.start(map[string]string{"PGCDC_KAFKA_PARTITIONS": "3"})
	p.waitStreaming()

	e.exec(`INSERT INTO orders VALUES (1, 'apple', 3, 1.50, '2024-05-06 07:08:09.123456+00', '{"a": [1, 2.5]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true),
	                                  (2, 'pear', 1, 0.99, NULL, NULL, NULL, false)`)
	e.exec(`BEGIN; INSERT INTO customers VALUES (10, 'ada'); UPDATE orders SET qty = 4 WHERE id = 1; COMMIT`)
	e.exec(`UPDATE orders SET qty = 5 WHERE id = 1`)
	e.exec(`DELETE FROM orders WHERE id = 2`)
	e.exec(`UPDATE customers SET name = 'grace' WHERE id = 10`)
	for i := 0; i < 20; i++ {
		e.exec(fmt.Sprintf(`UPDATE orders SET qty = %d WHERE id = 1`, 100+i))
	}

	// orders: 2 creates, 2 updates, delete + tombstone, 20 updates.
	orders := e.readExactly("orders", 26, 60*time.Second, 2*time.Second)
	customers := e.readExactly("customers", 2, 30*time.Second, time.Second)

	byKey := map[int64][]change{}
	for _, c := range orders {
		byKey[keyID(t, c.Key)] = append(byKey[keyID(t, c.Key)], c)
	}
	one := byKey[1]
	if len(one) != 23 {
		t.Fatalf("order 1: %d events, want 23", len(one))
	}
	c0 := one[0]
	if c0.Op != "c" || c0.Before != nil || c0.After["item"] != "apple" || c0.After["qty"] != float64(3) {
		t.Errorf("order 1 create: op %s before %v after %v", c0.Op, c0.Before, c0.After)
	}
	if c0.After["placed"] != "2024-05-06T07:08:09.123456Z" || c0.After["meta"] != `{"a": [1, 2.5]}` ||
		c0.After["ref"] != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" || c0.After["ok"] != true || c0.After["price"] != "AJY=" {
		t.Errorf("order 1 create values: %v", c0.After)
	}
	src := c0.Source
	if src.Connector != "postgresql" || src.Name != e.prefix || src.Schema != "public" || src.Table != "orders" ||
		src.Snapshot != "false" || src.TxID == 0 || src.LSN == 0 || src.TsMs == 0 || src.Sequence == "" {
		t.Errorf("order 1 source block: %+v", src)
	}
	// Commit order per key: qty 3, 4, 5, 100..119, and LSNs increasing.
	wantQty := []float64{3, 4, 5}
	for i := 0; i < 20; i++ {
		wantQty = append(wantQty, float64(100+i))
	}
	for i, c := range one {
		if c.After["qty"] != wantQty[i] {
			t.Fatalf("order 1 event %d: qty %v, want %v (commit order broken)", i, c.After["qty"], wantQty[i])
		}
		if i > 0 && (c.Op != "u" || c.Before != nil || c.Source.LSN <= one[i-1].Source.LSN) {
			t.Fatalf("order 1 event %d: op %s before %v lsn %d after %d", i, c.Op, c.Before, c.Source.LSN, one[i-1].Source.LSN)
		}
		if c.Partition != one[0].Partition {
			t.Fatalf("order 1 events on partitions %d and %d", one[0].Partition, c.Partition)
		}
	}
	two := byKey[2]
	if len(two) != 3 || two[0].Op != "c" || two[1].Op != "d" || !two[2].Tombstone {
		t.Fatalf("order 2: want create, delete, tombstone; got %+v", two)
	}
	if two[1].Before == nil || two[1].Before["id"] != float64(2) || two[1].After != nil {
		t.Errorf("order 2 delete: before %v after %v", two[1].Before, two[1].After)
	}
	if customers[0].Op != "c" || customers[1].Op != "u" || customers[1].After["name"] != "grace" {
		t.Errorf("customers: %+v", customers)
	}
	// The customer insert and the order update shared a transaction.
	if customers[0].Source.TxID != one[1].Source.TxID {
		t.Errorf("txId of one transaction differs across tables: %d vs %d", customers[0].Source.TxID, one[1].Source.TxID)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
