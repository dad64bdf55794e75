// Command democonsume is the helper of `make demo` (scripts/demo.sh) and `make demo-deliver`
// (scripts/demo-deliver.sh). Its subcommands:
//
//	democonsume dsn [-db NAME]                     print the PostgreSQL URL, with another database
//	democonsume sql [-db NAME] [-q] STATEMENT...   run SQL statements one by one, echoing them
//	democonsume consume -topic T [-n N] [-timeout D] [-full]
//	                                               read T from its first offset like any Kafka
//	                                               consumer and pretty-print each change event
//	democonsume webhook -url-file F [-n N] [-timeout D] [-secret-env NAME]
//	                                               serve a webhook endpoint on loopback and print
//	                                               each call (make demo-deliver)
//
// The servers come from the environment that internal/cmd/testenv sets: PGCDC_TEST_PG_DSN (a
// superuser URL) and PGCDC_TEST_KAFKA_BROKERS. It needs no psql or Kafka command-line tools.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mattn/go-isatty"
	"github.com/segmentio/kafka-go"
)

const usage = `usage:
  democonsume dsn [-db NAME]
  democonsume sql [-db NAME] [-q] STATEMENT...
  democonsume consume -topic TOPIC [-n N] [-timeout 60s] [-full]
  democonsume webhook -url-file FILE [-n N] [-timeout 60s] [-secret-env NAME]
Servers: PGCDC_TEST_PG_DSN, PGCDC_TEST_KAFKA_BROKERS (set by internal/cmd/testenv).`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "dsn":
		err = runDSN(os.Args[2:])
	case "sql":
		err = runSQL(os.Args[2:])
	case "consume":
		err = runConsume(os.Args[2:])
	case "webhook":
		err = runWebhook(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "democonsume %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// withDatabase returns dsn naming database db instead of its own (URL or key=value form).
func withDatabase(dsn, db string) (string, error) {
	if db == "" {
		return dsn, nil
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse DSN: %w", err)
		}
		u.Path = "/" + db
		u.RawPath = ""
		return u.String(), nil
	}
	return dsn + " dbname=" + db, nil
}

func baseDSN() (string, error) {
	dsn := os.Getenv("PGCDC_TEST_PG_DSN")
	if dsn == "" {
		return "", errors.New("PGCDC_TEST_PG_DSN is not set (run under internal/cmd/testenv, e.g. make demo)")
	}
	return dsn, nil
}

func runDSN(args []string) error {
	fs := flag.NewFlagSet("dsn", flag.ContinueOnError)
	db := fs.String("db", "", "database name (default: the DSN's own)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dsn, err := baseDSN()
	if err != nil {
		return err
	}
	dsn, err = withDatabase(dsn, *db)
	if err != nil {
		return err
	}
	fmt.Println(dsn)
	return nil
}

func runSQL(args []string) error {
	fs := flag.NewFlagSet("sql", flag.ContinueOnError)
	db := fs.String("db", "", "database name (default: the DSN's own)")
	quiet := fs.Bool("q", false, "do not echo the statements")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dsn, err := baseDSN()
	if err != nil {
		return err
	}
	if dsn, err = withDatabase(dsn, *db); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	prompt := conn.Config().Database
	for _, stmt := range fs.Args() {
		if !*quiet {
			fmt.Printf("%s%s=# %s%s\n", style(bold), prompt, stmt, style(reset))
		}
		tag, err := conn.Exec(ctx, stmt)
		if err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
		if !*quiet {
			fmt.Println(tag.String())
		}
	}
	return nil
}

// ANSI styles, used only when stdout is a terminal.
const (
	reset  = "\x1b[0m"
	bold   = "\x1b[1m"
	dim    = "\x1b[2m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
)

var colored = isatty.IsTerminal(os.Stdout.Fd()) && os.Getenv("NO_COLOR") == ""

func style(s string) string {
	if colored {
		return s
	}
	return ""
}

func runConsume(args []string) error {
	fs := flag.NewFlagSet("consume", flag.ContinueOnError)
	topic := fs.String("topic", "", "topic to read (required)")
	n := fs.Int("n", 0, "exit after this many records (0: until the timeout)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	full := fs.Bool("full", false, "also print each value's whole JSON, indented")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *topic == "" {
		return errors.New("-topic is required")
	}
	brokers := strings.Split(os.Getenv("PGCDC_TEST_KAFKA_BROKERS"), ",")
	if brokers[0] == "" {
		return errors.New("PGCDC_TEST_KAFKA_BROKERS is not set (run under internal/cmd/testenv, e.g. make demo)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	parts, err := waitForTopic(ctx, brokers, *topic)
	if err != nil {
		return err
	}
	fmt.Printf("%sconsumer: reading %s (%d partition(s)) from the first offset%s\n", style(dim), *topic, len(parts), style(reset))

	// One reader per partition, like a consumer assigned every partition, starting at the first offset.
	msgs := make(chan kafka.Message)
	var wg sync.WaitGroup
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: brokers, Topic: *topic, Partition: p, MinBytes: 1, MaxBytes: 16 << 20,
			MaxWait: 200 * time.Millisecond, StartOffset: kafka.FirstOffset,
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				select {
				case msgs <- m:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	count := 0
	for *n == 0 || count < *n {
		select {
		case m := <-msgs:
			count++
			printRecord(os.Stdout, count, m, *full)
		case <-ctx.Done():
			if *n == 0 {
				return nil
			}
			return fmt.Errorf("received %d of %d records within %s", count, *n, *timeout)
		}
	}
	fmt.Printf("%sconsumer: received %d records, exiting%s\n", style(dim), count, style(reset))
	return nil
}

// waitForTopic returns the topic's partition IDs once it exists and every partition has a leader.
func waitForTopic(ctx context.Context, brokers []string, topic string) ([]int, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	var last error
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
			var ids []int
			ready := true
			for _, p := range md.Topics[0].Partitions {
				ids = append(ids, p.ID)
				ready = ready && p.Error == nil && p.Leader.Host != ""
			}
			if ready {
				sort.Ints(ids)
				return ids, nil
			}
		}
		if err == nil && len(md.Topics) == 1 {
			err = md.Topics[0].Error
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("topic %s not available: %v", topic, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var opNames = map[string]string{"c": "create", "u": "update", "d": "delete", "r": "read (snapshot)", "t": "truncate", "m": "message"}

// printRecord writes one record: where it is, its key, and the value's op/before/after/source.
func printRecord(w io.Writer, i int, m kafka.Message, full bool) {
	fmt.Fprintf(w, "\n%s── record %d ── %s  partition %d  offset %d", style(bold), i, m.Topic, m.Partition, m.Offset)
	for _, h := range m.Headers {
		fmt.Fprintf(w, "  %s=%s", h.Key, h.Value)
	}
	fmt.Fprintf(w, "%s\n", style(reset))
	key, keySchema := payload(m.Key)
	fmt.Fprintf(w, "  key     %s%s%s%s\n", style(cyan), compact(key), style(reset), schemaNote(keySchema))
	if m.Value == nil {
		fmt.Fprintf(w, "  value   %snull (tombstone: lets a compacted topic forget the key)%s\n", style(dim), style(reset))
		return
	}
	val, valSchema := payload(m.Value)
	var env struct {
		Op     string          `json:"op"`
		Before json.RawMessage `json:"before"`
		After  json.RawMessage `json:"after"`
		Source struct {
			Connector string          `json:"connector"`
			DB        string          `json:"db"`
			Schema    string          `json:"schema"`
			Table     string          `json:"table"`
			TxID      json.Number     `json:"txId"`
			LSN       json.Number     `json:"lsn"`
			TsMs      json.Number     `json:"ts_ms"`
			Snapshot  json.RawMessage `json:"snapshot"`
		} `json:"source"`
	}
	if err := json.Unmarshal(val, &env); err != nil {
		fmt.Fprintf(w, "  value   %s (not a change event: %v)\n", compact(m.Value), err)
		return
	}
	opColor := map[string]string{"c": green, "u": yellow, "d": red}[env.Op]
	fmt.Fprintf(w, "  op      %s%s%s %s%s%s\n", style(bold+opColor), env.Op, style(reset), style(dim), "("+opNames[env.Op]+")", style(reset))
	fmt.Fprintf(w, "  before  %s%s%s\n", style(opColorFor(env.Before, red)), compact(env.Before), style(reset))
	fmt.Fprintf(w, "  after   %s%s%s\n", style(opColorFor(env.After, green)), compact(env.After), style(reset))
	s := env.Source
	fmt.Fprintf(w, "  source  %s%s db=%s table=%s.%s txId=%s lsn=%s ts_ms=%s snapshot=%s%s%s\n", style(dim),
		s.Connector, s.DB, s.Schema, s.Table, s.TxID, s.LSN, s.TsMs, s.Snapshot, schemaNote(valSchema), style(reset))
	if full {
		var out bytes.Buffer
		if json.Indent(&out, m.Value, "          ", "  ") == nil {
			fmt.Fprintf(w, "  full    %s\n", out.String())
		}
	}
}

func opColorFor(v json.RawMessage, c string) string {
	if len(v) == 0 || string(v) == "null" {
		return dim
	}
	return c
}

// payload returns the payload of a JsonConverter message with schemas enabled ({"schema":...,
// "payload":...}) and whether it had the schema part; other JSON is returned as it is.
func payload(b []byte) (json.RawMessage, bool) {
	var withSchema struct {
		Schema  json.RawMessage `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	if json.Unmarshal(b, &withSchema) == nil && withSchema.Schema != nil && withSchema.Payload != nil {
		return withSchema.Payload, true
	}
	return b, false
}

func schemaNote(had bool) string {
	if had {
		return style(dim) + "   (+ schema)" + style(reset)
	}
	return ""
}

// compact returns JSON without insignificant spaces, keeping the field order.
func compact(b []byte) string {
	if len(b) == 0 {
		return "null"
	}
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return string(b)
	}
	return out.String()
}
