#!/usr/bin/env bash
# pgcdc outbox demo: an order service writes each order and its OrderPlaced event in one
# transaction; pgcdc routes the event from the WAL to Kafka; a shipping consumer ships each order
# once, even when every event is delivered again.
#
#   make demo-outbox   (= go run ./internal/cmd/testenv -- bash scripts/demo-outbox.sh)
#
# testenv starts a throwaway PostgreSQL and Kafka on loopback (PGCDC_TEST_PG_DSN,
# PGCDC_TEST_KAFKA_BROKERS) and removes them afterwards. With servers of your own in those two
# variables it uses them: it creates and drops the database pgcdc_outbox_demo and the slot
# pgcdc_outbox_demo, and reads outbox.event.order from its first offset.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PGCDC_TEST_PG_DSN:?not set: run this through make demo-outbox (internal/cmd/testenv starts the servers)}"
: "${PGCDC_TEST_KAFKA_BROKERS:?not set: run this through make demo-outbox (internal/cmd/testenv starts the servers)}"
GO=${GO:-go}
DB=pgcdc_outbox_demo
SLOT=pgcdc_outbox_demo
TOPIC=outbox.event.order
start=$SECONDS
. scripts/demo-lib.sh # step, start_pgcdc, stop_pgcdc, the clean-up on exit

step "build bin/pgcdc, the demo helper and the example service (examples/outbox)"
mkdir -p bin
"$GO" build -o bin/pgcdc ./cmd/pgcdc
"$GO" build -o bin/democonsume ./internal/cmd/democonsume
"$GO" build -o bin/outbox-example ./examples/outbox
demo=bin/democonsume
svc=bin/outbox-example

step "create database $DB: the order service's tables (orders, outbox) and the shipping service's (shipments, processed_events)"
fresh_database
DSN=$("$demo" dsn -db "$DB")
"$svc" setup -dsn "$DSN"

step "start pgcdc with the outbox table public.outbox"
export PGCDC_POSTGRES_DSN=$DSN
export PGCDC_KAFKA_BROKERS=$PGCDC_TEST_KAFKA_BROKERS
export PGCDC_KAFKA_TOPIC_PREFIX=shop
export PGCDC_METRICS_LISTEN=127.0.0.1:0
export PGCDC_POSTGRES_SLOT=$SLOT
export PGCDC_POSTGRES_PUBLICATION=$SLOT
export PGCDC_LOG_FORMAT=console
export PGCDC_TABLES_INCLUDE=public.outbox
export PGCDC_OUTBOX_TABLES=public.outbox
export PGCDC_OUTBOX_EXPAND_JSON_PAYLOAD=true
export PGCDC_OUTBOX_ADDITIONAL_FIELDS=type:header:eventType
export PGCDC_EVENTS_KEY_SCHEMAS=false
export PGCDC_EVENTS_VALUE_SCHEMAS=false
env | grep -E '^PGCDC_(TABLES|OUTBOX|EVENTS)_' | sort
start_pgcdc

step "place 4 orders: each order and its event in one transaction (order 2 fails validation and rolls back)"
"$svc" order -dsn "$DSN" -n 4 -reject 2
"$svc" status -dsn "$DSN"
echo "(each outbox row was deleted in the transaction that wrote it: the WAL keeps the insert, pgcdc routes it)"

step "the shipping service consumes $TOPIC and ships each order"
"$svc" ship -dsn "$DSN" -brokers "$PGCDC_TEST_KAFKA_BROKERS" -topic "$TOPIC" -n 3

step "at least once: read every event again from the first offset (a re-delivery, a replay); nothing ships twice"
"$svc" ship -dsn "$DSN" -brokers "$PGCDC_TEST_KAFKA_BROKERS" -topic "$TOPIC" -n 3 -from-start
"$svc" status -dsn "$DSN"

step "stop pgcdc (SIGTERM)"
stop_pgcdc
drop_demo

if [ $pgcdc_status -ne 0 ]; then
	echo "demo FAILED (pgcdc status $pgcdc_status)" >&2
	exit 1
fi
printf '\n%s✔ outbox demo finished in %ss%s\n' "$g" $((SECONDS - start)) "$r"
