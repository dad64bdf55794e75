package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// pgcdc check measures each table's largest row against its topic's max.message.bytes, warns about
// an inactive slot far behind (--max-slot-lag), and check and status name the session that holds
// the slot.
func TestCheckRowSizesSlotLagAndHolder(t *testing.T) {
	testenv.Require(t)
	dsn := testenv.NewDatabase(t)
	slot := testenv.UniqueName(t, "slot")
	prefix := testenv.UniqueName(t, "t")
	brokers := testenv.SharedKafka(t)
	sqlExec(t, dsn,
		`CREATE TABLE public.docs (id int PRIMARY KEY, body text, raw bytea)`,
		`CREATE TABLE public.small (id int PRIMARY KEY, v text)`,
		`CREATE TABLE public.scratch (id int, pad text)`,
		// 160 kB of text as event values: md5 hex compresses a little on disk, not in the event
		`INSERT INTO public.docs SELECT 1, string_agg(md5(i::text), ''), NULL FROM generate_series(1, 5000) i`,
		`INSERT INTO public.docs VALUES (2, 'x', decode(repeat('ff', 30000), 'hex'))`, // 30 kB: 40 kB as base64
		`INSERT INTO public.small VALUES (1, 'a')`,
		`CREATE PUBLICATION holder_pub FOR TABLE public.small`,
		"SELECT pg_create_logical_replication_slot('"+slot+"', 'pgoutput')",
		// about 3 MB of WAL after the slot's position
		`INSERT INTO public.scratch SELECT g, repeat('p', 200) FROM generate_series(1, 12000) g`)
	docsTopic := prefix + ".public.docs"
	createTopicWithConfig(t, brokers, docsTopic, "max.message.bytes", "100000")
	env := map[string]string{
		"PGCDC_POSTGRES_DSN":         dsn,
		"PGCDC_POSTGRES_SLOT":        slot,
		"PGCDC_KAFKA_BROKERS":        strings.Join(brokers, ","),
		"PGCDC_KAFKA_TOPIC_PREFIX":   prefix,
		"PGCDC_TABLES_INCLUDE":       "public.docs,public.small",
		"PGCDC_POSTGRES_PUBLICATION": "holder_pub",
	}
	code, out, errOut := pgcdc(t, env, "check", "--max-slot-lag", "1MiB")
	t.Logf("pgcdc check:\n%s", out)
	if code != 1 {
		t.Errorf("exit %d, want 1 (a row larger than its topic accepts) %s", code, errOut)
	}
	requireFinding(t, out, "FAIL", docsTopic+": max.message.bytes 100000 is smaller than the largest row of public.docs", "156.3 KiB", "scanned whole",
		"fix: kafka-configs.sh", "--entity-name "+docsTopic, "max.message.bytes=1048576")
	requireFinding(t, out, "OK", prefix+".public.small: max.message.bytes 1048588 holds the largest row of public.small")
	requireFinding(t, out, "WARN", "replication slot "+slot+" is inactive and far behind", "of WAL retained", "fix: start pgcdc", "--max-slot-lag 1.0 MiB")

	// With the default threshold (1 GiB) the slot is fine; without row sizes nothing is measured.
	_, out, _ = pgcdc(t, env, "check", "--no-row-sizes")
	requireFinding(t, out, "OK", "replication slot "+slot+": confirmed_flush_lsn")
	if strings.Contains(out, "largest row") {
		t.Errorf("--no-row-sizes measured rows:\n%s", out)
	}
	if code, _, errOut := pgcdc(t, env, "check", "--max-slot-lag", "-5"); code != 2 || !strings.Contains(errOut, "--max-slot-lag") {
		t.Errorf("bad --max-slot-lag: exit %d %q", code, errOut)
	}

	// A session holds the slot: check and status name it.
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("application_name", "other-consumer")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	repl, err := pgsource.ConnectReplication(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	_ = repl.Exec(ctx, `START_REPLICATION SLOT `+slot+` LOGICAL 0/0 (proto_version '1', publication_names 'holder_pub')`)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var active bool
		if err := conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replication connection did not take the slot within 30s")
		}
	}
	_, out, _ = pgcdc(t, env, "check", "--no-row-sizes", "--max-slot-lag", "1MiB")
	requireFinding(t, out, "INFO", "replication slot "+slot+" is held by walsender pid", `application_name "other-consumer"`, "client 127.0.0.1:")
	requireFinding(t, out, "INFO", "replication slot "+slot+" is being consumed but is more than 1.0 MiB behind")
	code, out, errOut = pgcdc(t, env, "status")
	if code != 0 || !strings.Contains(out, `active           yes, held by walsender pid`) || !strings.Contains(out, `application_name "other-consumer"`) {
		t.Errorf("status: exit %d %s\n%s", code, errOut, out)
	}
	_, out, _ = pgcdc(t, env, "status", "--json")
	var js struct {
		Holder struct {
			PID             int32  `json:"pid"`
			ApplicationName string `json:"application_name"`
			ClientAddr      string `json:"client_addr"`
		} `json:"holder"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || js.Holder.PID == 0 || js.Holder.ApplicationName != "other-consumer" || js.Holder.ClientAddr != "127.0.0.1" {
		t.Errorf("status --json holder: %+v (%v)\n%s", js.Holder, err, out)
	}
}
