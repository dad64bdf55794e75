package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/connector"
	"github.com/pgcdc/pgcdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The example end to end with pgcdc in-process: orders placed (one rejected), each event routed
// and shipped once; reading the topic again from the start ships nothing more.
func TestOrdersShippedOnce(t *testing.T) {
	testenv.Require(t)
	dsn := testenv.NewDatabase(t)
	brokers := testenv.SharedKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := runSetup(ctx, []string{"-dsn", dsn}); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Postgres.DSN = dsn
	cfg.Postgres.Slot = testenv.UniqueName(t, "slot")
	cfg.Postgres.Publication = testenv.UniqueName(t, "pub")
	cfg.Postgres.SpoolDir = t.TempDir()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.TopicPrefix = testenv.UniqueName(t, "ex")
	cfg.Metrics.Listen = config.MetricsOff
	cfg.Tables.Include = []string{"public.outbox"}
	cfg.Events.KeySchemas, cfg.Events.ValueSchemas = false, false
	cfg.Outbox.Tables = []string{"public.outbox"}
	cfg.Outbox.ExpandJSONPayload = true
	cfg.Outbox.AdditionalFields = []string{"type:header:eventType"}
	cfg.Outbox.TopicReplacement = cfg.Kafka.TopicPrefix + ".event.${routedByValue}"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := connector.New(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pgcdc: %v", err)
		}
	}()
	waitSlotActive(t, ctx, dsn, cfg.Postgres.Slot, done)

	if err := runOrder(ctx, []string{"-dsn", dsn, "-n", "4", "-reject", "2"}); err != nil {
		t.Fatal(err)
	}
	topic := cfg.Kafka.TopicPrefix + ".event.order"
	ship := []string{"-dsn", dsn, "-brokers", brokers[0], "-topic", topic, "-group", cfg.Kafka.TopicPrefix, "-n", "3", "-timeout", "180s"}
	if err := runShip(ctx, ship); err != nil {
		t.Fatal(err)
	}
	if err := runShip(ctx, append(ship, "-from-start")); err != nil { // everything again: all ignored
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var orders, shipments, outboxRows, wrong int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM shipments), (SELECT count(*) FROM outbox),
		(SELECT count(*) FROM shipments s LEFT JOIN orders o ON o.id = s.order_id WHERE o.id IS NULL)`).Scan(&orders, &shipments, &outboxRows, &wrong); err != nil {
		t.Fatal(err)
	}
	if orders != 3 || shipments != 3 || outboxRows != 0 || wrong != 0 {
		t.Fatalf("%d orders, %d shipments (%d of orders that do not exist), %d outbox rows; want 3, 3 (0), 0", orders, shipments, wrong, outboxRows)
	}
}

func waitSlotActive(t *testing.T, ctx context.Context, dsn, slot string, done <-chan error) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(time.Minute); ; {
		var active bool
		err := conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		if err == nil && active {
			return
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("pgcdc stopped before streaming: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("pgcdc is not streaming after a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
