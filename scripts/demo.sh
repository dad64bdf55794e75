#!/usr/bin/env bash
# pgcdc end-to-end demo: PostgreSQL → pgcdc → Kafka → a consumer.
#
#   make demo        (= go run ./internal/cmd/testenv -- bash scripts/demo.sh)
#
# testenv starts a throwaway PostgreSQL and Kafka on loopback, exports PGCDC_TEST_PG_DSN and
# PGCDC_TEST_KAFKA_BROKERS, runs this script and removes the servers afterwards. This script builds
# pgcdc, creates a table, starts `pgcdc run` configured from the environment, writes an insert, an
# update and a delete, prints the change events as a Kafka consumer receives them, and stops pgcdc
# with SIGTERM. With servers of your own in those two variables it uses them instead: it creates
# and drops the database pgcdc_demo and the slot pgcdc_demo, and reads the topic
# demo.public.customers from its first offset (records of earlier runs included).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PGCDC_TEST_PG_DSN:?not set: run this through make demo (internal/cmd/testenv starts the servers)}"
: "${PGCDC_TEST_KAFKA_BROKERS:?not set: run this through make demo (internal/cmd/testenv starts the servers)}"
GO=${GO:-go}
DB=pgcdc_demo
SLOT=pgcdc_demo
TOPIC=demo.public.customers
start=$SECONDS

if [ -t 1 ]; then b=$'\033[1;34m' g=$'\033[1;32m' r=$'\033[0m'; else b='' g='' r=''; fi
step() { printf '\n%s▶ %s%s\n' "$b" "$*" "$r"; }

step "build bin/pgcdc and the demo helper"
mkdir -p bin
"$GO" build -o bin/pgcdc ./cmd/pgcdc
"$GO" build -o bin/democonsume ./internal/cmd/democonsume
demo=bin/democonsume

work=$(mktemp -d)
log="$work/pgcdc.log"
pgcdc_pid=""
consumer_pid=""
cleanup() {
	status=$?
	if [ -n "$consumer_pid" ] && kill -0 "$consumer_pid" 2>/dev/null; then
		kill "$consumer_pid" 2>/dev/null || true
		wait "$consumer_pid" 2>/dev/null || true
	fi
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

step "create database $DB and table public.customers"
# Leftovers of an earlier run on servers of your own: a logical slot pins its database and can only
# be dropped from it.
drop_slot="SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active"
"$demo" sql -q -db "$DB" "$drop_slot" 2>/dev/null || true
"$demo" sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" "CREATE DATABASE $DB"
"$demo" sql -db "$DB" "CREATE TABLE public.customers (id int PRIMARY KEY, name text, email text)"

step "start pgcdc run (configured from the environment)"
export PGCDC_POSTGRES_DSN
PGCDC_POSTGRES_DSN=$("$demo" dsn -db "$DB")
export PGCDC_KAFKA_BROKERS=$PGCDC_TEST_KAFKA_BROKERS
export PGCDC_KAFKA_TOPIC_PREFIX=demo
export PGCDC_METRICS_LISTEN=127.0.0.1:0
export PGCDC_POSTGRES_SLOT=$SLOT
export PGCDC_POSTGRES_PUBLICATION=$SLOT
export PGCDC_LOG_FORMAT=console
echo "PGCDC_POSTGRES_DSN=$(sed -E 's#(//[^:/@]+:)[^@]*@#\1***@#' <<<"$PGCDC_POSTGRES_DSN") PGCDC_KAFKA_BROKERS=$PGCDC_KAFKA_BROKERS PGCDC_KAFKA_TOPIC_PREFIX=demo PGCDC_LOG_FORMAT=console"
# Show pgcdc's log as it runs, prefixed (and without colour codes when stdout is not a terminal).
if [ -t 1 ]; then show='s/^/  pgcdc │ /'; else show='s/\x1b\[[0-9;]*m//g; s/^/  pgcdc │ /'; fi
bin/pgcdc run > >(tee "$log" | sed -u "$show") 2>&1 &
pgcdc_pid=$!

deadline=$((SECONDS + 60))
# zerolog's console writer colours its output: strip the escapes before matching the message.
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

step "start a Kafka consumer on $TOPIC (exits after 4 records: create, update, delete, tombstone)"
"$demo" consume -topic "$TOPIC" -n 4 -timeout 60s &
consumer_pid=$!
sleep 0.5

step "write an insert, an update and a delete"
"$demo" sql -db "$DB" \
	"INSERT INTO public.customers VALUES (1, 'Ada Lovelace', 'ada@example.com')" \
	"UPDATE public.customers SET email = 'ada@analytical.engine' WHERE id = 1" \
	"DELETE FROM public.customers WHERE id = 1"

consumer_status=0
wait "$consumer_pid" || consumer_status=$?
consumer_pid=""

step "stop pgcdc (SIGTERM)"
kill -TERM "$pgcdc_pid"
# pgcdc drains for at most kafka.shutdown_timeout (30s); never let the demo hang past that.
(sleep 45 && kill -KILL "$pgcdc_pid" 2>/dev/null) &
watchdog=$!
pgcdc_status=0
wait "$pgcdc_pid" || pgcdc_status=$?
kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
pgcdc_pid=""
sleep 0.1 # let the log pipe flush
echo "pgcdc exited with status $pgcdc_status"

# Leave nothing behind on servers of your own (testenv's servers are removed anyway): the slot
# would otherwise keep WAL forever. Its walsender may take a moment to exit after pgcdc.
for _ in 1 2 3 4 5; do
	if "$demo" sql -q -db "$DB" "$drop_slot" 2>/dev/null &&
		"$demo" sql -q "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null; then
		break
	fi
	sleep 0.5
done

if [ $consumer_status -ne 0 ] || [ $pgcdc_status -ne 0 ]; then
	echo "demo FAILED (consumer status $consumer_status, pgcdc status $pgcdc_status)" >&2
	exit 1
fi
printf '\n%s✔ demo finished in %ss%s\n' "$g" $((SECONDS - start)) "$r"
