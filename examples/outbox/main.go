// Command outbox is a small order service and shipping consumer built on the transactional
// outbox, with pgcdc routing the events (README.md, "Reliable eventing"; `make demo-outbox` runs
// it end to end).
//
//	outbox setup -dsn URL                      create the order service's tables (orders, outbox)
//	                                           and the shipping service's (shipments, processed_events)
//	outbox order -dsn URL [-n 3] [-reject 2]   place orders: each order row and its OrderPlaced
//	                                           event in one transaction; order -reject fails
//	                                           validation after both were written, and rolls back
//	outbox ship -dsn URL -brokers B [-topic outbox.event.order] [-group shipping] [-n 3]
//	            [-from-start] [-timeout 60s]   consume OrderPlaced events and ship each order once
//	outbox status -dsn URL                     count orders, outbox rows, shipments, processed events
//
// The order service never talks to Kafka: it writes its state and the event in one PostgreSQL
// transaction, and pgcdc (outbox.tables: [public.outbox]) publishes the event from the WAL to
// outbox.event.order, keyed by the order id, the event id in the "id" header. The row is deleted
// in the same transaction: the WAL keeps the insert, the table stays empty.
//
// The shipping consumer is idempotent: delivery is at least once, so in one transaction of its own
// database it records the event id (processed_events, primary key) and ships; an event id already
// recorded is a re-delivery and does nothing. Only then is the Kafka offset committed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
)

const usage = `usage:
  outbox setup -dsn URL
  outbox order -dsn URL [-n 3] [-reject N]
  outbox ship  -dsn URL -brokers HOST:PORT[,...] [-topic outbox.event.order] [-group shipping] [-n 3] [-from-start] [-timeout 60s]
  outbox status -dsn URL`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "setup":
		err = runSetup(ctx, os.Args[2:])
	case "order":
		err = runOrder(ctx, os.Args[2:])
	case "ship":
		err = runShip(ctx, os.Args[2:])
	case "status":
		err = runStatus(ctx, os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "outbox %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// Schema is the order service's tables (orders and Debezium's basic outbox table) and the shipping
// service's (in the same database here, for the demo; in production its own).
const Schema = `
CREATE TABLE IF NOT EXISTS orders (
	id          bigint PRIMARY KEY,
	customer    text NOT NULL,
	total_cents bigint NOT NULL,
	placed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS outbox (
	id            uuid PRIMARY KEY,
	aggregatetype varchar(255) NOT NULL,
	aggregateid   varchar(255) NOT NULL,
	type          varchar(255) NOT NULL,
	payload       jsonb
);
CREATE TABLE IF NOT EXISTS shipments (
	order_id   bigint PRIMARY KEY,
	event_id   uuid NOT NULL,
	shipped_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS processed_events (
	event_id     uuid PRIMARY KEY,
	processed_at timestamptz NOT NULL DEFAULT now()
);`

// dbCommand parses a subcommand's flags (-dsn and those flags adds) and connects to its database.
func dbCommand(ctx context.Context, name string, args []string, flags func(fs *flag.FlagSet)) (*pgx.Conn, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	dsn := fs.String("dsn", os.Getenv("OUTBOX_DSN"), "PostgreSQL URL (or OUTBOX_DSN)")
	if flags != nil {
		flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *dsn == "" {
		return nil, errors.New("-dsn is required")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return pgx.Connect(cctx, *dsn)
}

func runSetup(ctx context.Context, args []string) error {
	conn, err := dbCommand(ctx, "setup", args, nil)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, Schema)
	return err
}

func runOrder(ctx context.Context, args []string) error {
	var n, reject *int
	conn, err := dbCommand(ctx, "order", args, func(fs *flag.FlagSet) {
		n = fs.Int("n", 3, "orders to place")
		reject = fs.Int("reject", 0, "this order (1..n) fails validation after its rows were written, and rolls back")
	})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var first int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) + 1 FROM orders`).Scan(&first); err != nil {
		return err
	}
	customers := []string{"ada", "grace", "edsger", "barbara"}
	for i := 0; i < *n; i++ {
		o := Order{ID: first + int64(i), Customer: customers[i%len(customers)], TotalCents: 1999 + int64(i)*1000}
		eventID, err := PlaceOrder(ctx, conn, o, i+1 == *reject)
		if errors.Is(err, errRejected) {
			fmt.Printf("order %d rejected: its transaction rolled back, so its event never existed\n", o.ID)
			continue
		}
		if err != nil {
			return err
		}
		fmt.Printf("order %d placed for %s (%d cents), event OrderPlaced %s written in the same transaction\n", o.ID, o.Customer, o.TotalCents, eventID)
	}
	return nil
}

// Order is what the order service stores, and the OrderPlaced event's payload.
type Order struct {
	ID         int64  `json:"orderId"`
	Customer   string `json:"customer"`
	TotalCents int64  `json:"totalCents"`
}

var errRejected = errors.New("order rejected")

// PlaceOrder stores o and its OrderPlaced event in one transaction and returns the event id. The
// outbox row is deleted before the commit: pgcdc reads the insert from the WAL, the table stays
// empty. With reject the transaction rolls back after both writes (a failed validation): neither
// the order nor its event exists.
func PlaceOrder(ctx context.Context, conn *pgx.Conn, o Order, reject bool) (string, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.Background()) // after a commit: nothing
	if _, err := tx.Exec(ctx, `INSERT INTO orders (id, customer, total_cents) VALUES ($1, $2, $3)`, o.ID, o.Customer, o.TotalCents); err != nil {
		return "", err
	}
	payload, err := json.Marshal(o)
	if err != nil {
		return "", err
	}
	var eventID string
	if err := tx.QueryRow(ctx, `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
		VALUES (gen_random_uuid(), 'order', $1, 'OrderPlaced', $2) RETURNING id::text`, fmt.Sprint(o.ID), payload).Scan(&eventID); err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = $1`, eventID); err != nil {
		return "", err
	}
	if reject {
		return "", errRejected // the deferred Rollback undoes the order and its event
	}
	return eventID, tx.Commit(ctx)
}

func runShip(ctx context.Context, args []string) error {
	var brokers, topic, group *string
	var n *int
	var fromStart *bool
	var timeout *time.Duration
	conn, err := dbCommand(ctx, "ship", args, func(fs *flag.FlagSet) {
		brokers = fs.String("brokers", os.Getenv("OUTBOX_BROKERS"), "Kafka brokers, comma-separated (or OUTBOX_BROKERS)")
		topic = fs.String("topic", "outbox.event.order", "topic of the OrderPlaced events")
		group = fs.String("group", "shipping", "consumer group")
		n = fs.Int("n", 3, "stop after this many events (re-deliveries included)")
		fromStart = fs.Bool("from-start", false, "read the topic from its first offset in a fresh group (a re-delivery of everything, as after a replay)")
		timeout = fs.Duration("timeout", 60*time.Second, "give up when the events do not arrive in time")
	})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if *brokers == "" {
		return errors.New("-brokers is required")
	}
	gid := *group
	if *fromStart {
		gid = fmt.Sprintf("%s-replay-%d", *group, time.Now().UnixNano())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	// pgcdc creates an outbox topic with the first event routed to it. A group that joins before
	// the topic exists is assigned nothing and, in kafka-go, stays so: wait for the topic first.
	if err := waitTopic(ctx, strings.Split(*brokers, ","), *topic); err != nil {
		return err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: strings.Split(*brokers, ","), Topic: *topic, GroupID: gid,
		StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond,
	})
	defer r.Close()
	shipped, dups := 0, 0
	for i := 0; i < *n; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("after %d of %d events: %w", i, *n, err)
		}
		ev, err := DecodeEvent(m)
		if err != nil {
			return err
		}
		done, err := Ship(ctx, conn, ev)
		if err != nil {
			return err
		}
		if done {
			shipped++
			fmt.Printf("event %s (%s, order %d): shipped order %d to %s\n", ev.ID, ev.Type, ev.Order.ID, ev.Order.ID, ev.Order.Customer)
		} else {
			dups++
			fmt.Printf("event %s (%s, order %d): already processed, ignored (a re-delivery)\n", ev.ID, ev.Type, ev.Order.ID)
		}
		if err := r.CommitMessages(ctx, m); err != nil { // after the database commit: at least once
			return err
		}
	}
	fmt.Printf("%d events: %d orders shipped, %d re-deliveries ignored\n", *n, shipped, dups)
	return nil
}

// Event is an OrderPlaced event as the consumer reads it: the event id from the "id" header, the
// type from the "eventType" header (outbox.additional_fields: [type:header:eventType]), the order
// from the value (outbox.expand_json_payload, events.value_schemas off: the payload's JSON).
type Event struct {
	ID    string
	Type  string
	Order Order
}

// DecodeEvent reads a routed outbox record.
func DecodeEvent(m kafka.Message) (Event, error) {
	var ev Event
	for _, h := range m.Headers {
		switch h.Key {
		case "id":
			ev.ID = string(h.Value)
		case "eventType":
			ev.Type = string(h.Value)
		}
	}
	if ev.ID == "" {
		return ev, fmt.Errorf("record at offset %d has no id header", m.Offset)
	}
	if err := json.Unmarshal(m.Value, &ev.Order); err != nil {
		return ev, fmt.Errorf("record at offset %d: value %q: %w", m.Offset, m.Value, err)
	}
	return ev, nil
}

// Ship ships ev's order once: the event id and the shipment are written in one transaction, so a
// re-delivered event (same id) finds its id recorded and does nothing. done=false for a
// re-delivery.
func Ship(ctx context.Context, conn *pgx.Conn, ev Event) (done bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.Background())
	tag, err := tx.Exec(ctx, `INSERT INTO processed_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING`, ev.ID)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO shipments (order_id, event_id) VALUES ($1, $2)`, ev.Order.ID, ev.ID); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}

func runStatus(ctx context.Context, args []string) error {
	conn, err := dbCommand(ctx, "status", args, nil)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var orders, outbox, shipments, processed int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM outbox),
		(SELECT count(*) FROM shipments), (SELECT count(*) FROM processed_events)`).Scan(&orders, &outbox, &shipments, &processed); err != nil {
		return err
	}
	fmt.Printf("orders: %d, outbox rows: %d, shipments: %d, processed events: %d\n", orders, outbox, shipments, processed)
	return nil
}

// waitTopic waits until topic exists on the brokers. Each look uses a new transport: kafka-go's
// transport answers metadata requests from its cached view of the cluster, which can keep saying
// the topic is missing after it was created.
func waitTopic(ctx context.Context, brokers []string, topic string) error {
	for {
		transport := &kafka.Transport{}
		client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		transport.CloseIdleConnections()
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s does not exist (is pgcdc running with the outbox configured?): %w", topic, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
