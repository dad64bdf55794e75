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

if [ -t 1 ]; then b=$'\033[1;34m' g=$'\033[1;32m' r=$'\033[0m'; else b='' g='' r=''; fi
step() { printf '\n%s▶ %s%s\n' "$b" "$*" "$r"; }

step "build bin/pgcdc, the demo helper and the example service (examples/outbox)"
mkdir -p bin
"$GO" build -o bin/pgcdc ./cmd/pgcdc
"$GO" build -o bin/democonsume ./internal/cmd/democonsume
"$GO" build -o bin/outbox-example ./examples/outbox
demo=bin/democonsume
svc=bin/outbox-example

work=$(mktemp -d)
log="$work/pgcdc.log"
pgcdc_pid=""
cleanup() {
	status=$?
	if [ -n "$pgcdc_pid" ] && kill -0 "$pgcdc_pid" 2>/dev/null; then
		kill -TERM "$pgcdc_pid" 2>/dev/null || true
		wait "$pgcdc_pid" 2>/dev/null || true
	fi
	if [ $status -ne 0 ] && [ -s "$log" ]; then
		echo "--- pgcdc log (last 40 lines) ---" >&2
		tail -n 40 "$log" >&2
	fi
	rm -rf "$work"
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "create database $DB: the order service's tables (orders, outbox) and the shipping service's (shipments, processed_events)"
drop_slot="SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active"
"$demo" sql -q -db "$DB" "$drop_slot" 2>/dev/null || true
"$demo" sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" "CREATE DATABASE $DB"
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
if [ -t 1 ]; then show='s/^/  pgcdc │ /'; else show='s/\x1b\[[0-9;]*m//g; s/^/  pgcdc │ /'; fi
bin/pgcdc run > >(tee "$log" | sed -u "$show") 2>&1 &
pgcdc_pid=$!
deadline=$((SECONDS + 60))
until sed 's/\x1b\[[0-9;]*m//g' "$log" 2>/dev/null | grep -E ' INF streaming( |$)' >/dev/null; do
	if ! kill -0 "$pgcdc_pid" 2>/dev/null; then
		wait "$pgcdc_pid" || true
		echo "pgcdc exited before it was streaming" >&2
		exit 1
	fi
	if [ $SECONDS -ge $deadline ]; then
		echo "pgcdc was not streaming after 60s" >&2
		exit 1
	fi
	sleep 0.2
done

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
kill -TERM "$pgcdc_pid"
(sleep 45 && kill -KILL "$pgcdc_pid" 2>/dev/null) &
watchdog=$!
pgcdc_status=0
wait "$pgcdc_pid" || pgcdc_status=$?
kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
pgcdc_pid=""
sleep 0.1
echo "pgcdc exited with status $pgcdc_status"

for _ in 1 2 3 4 5; do
	if "$demo" sql -q -db "$DB" "$drop_slot" 2>/dev/null &&
		"$demo" sql -q "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null; then
		break
	fi
	sleep 0.5
done

if [ $pgcdc_status -ne 0 ]; then
	echo "demo FAILED (pgcdc status $pgcdc_status)" >&2
	exit 1
fi
printf '\n%s✔ outbox demo finished in %ss%s\n' "$g" $((SECONDS - start)) "$r"
