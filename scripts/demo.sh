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
. scripts/demo-lib.sh # step, start_pgcdc, stop_pgcdc, the clean-up on exit

step "build bin/pgcdc and the demo helper"
mkdir -p bin
"$GO" build -o bin/pgcdc ./cmd/pgcdc
"$GO" build -o bin/democonsume ./internal/cmd/democonsume
demo=bin/democonsume

step "create database $DB and table public.customers"
fresh_database
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
start_pgcdc

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
stop_pgcdc
drop_demo

if [ $consumer_status -ne 0 ] || [ $pgcdc_status -ne 0 ]; then
	echo "demo FAILED (consumer status $consumer_status, pgcdc status $pgcdc_status)" >&2
	exit 1
fi
printf '\n%s✔ demo finished in %ss%s\n' "$g" $((SECONDS - start)) "$r"
