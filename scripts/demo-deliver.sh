#!/usr/bin/env bash
# pgcdc deliver demo: a table change → pgcdc → Kafka → pgcdc deliver → a webhook.
#
#   make demo-deliver   (= go run ./internal/cmd/testenv -- bash scripts/demo-deliver.sh)
#
# testenv starts a throwaway PostgreSQL and Kafka on loopback and exports PGCDC_TEST_PG_DSN and
# PGCDC_TEST_KAFKA_BROKERS. This script builds pgcdc, creates a table, starts `pgcdc run`, a webhook
# endpoint on loopback that prints every call, and `pgcdc deliver` with one route (Hasura's event
# trigger body, signed with a fresh Standard Webhooks secret), writes an insert, an update and a
# delete, shows the three webhook calls and stops everything. With servers of your own in those
# variables it uses them: it creates and drops the database pgcdc_demo_deliver and its slot.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PGCDC_TEST_PG_DSN:?not set: run this through make demo-deliver (internal/cmd/testenv starts the servers)}"
: "${PGCDC_TEST_KAFKA_BROKERS:?not set: run this through make demo-deliver (internal/cmd/testenv starts the servers)}"
GO=${GO:-go}
DB=pgcdc_demo_deliver
SLOT=pgcdc_demo_deliver
start=$SECONDS

if [ -t 1 ]; then b=$'\033[1;34m' g=$'\033[1;32m' r=$'\033[0m'; else b='' g='' r=''; fi
step() { printf '\n%s▶ %s%s\n' "$b" "$*" "$r"; }

step "build bin/pgcdc and the demo helper"
mkdir -p bin
"$GO" build -o bin/pgcdc ./cmd/pgcdc
"$GO" build -o bin/democonsume ./internal/cmd/democonsume
demo=bin/democonsume

work=$(mktemp -d)
run_log="$work/run.log"
deliver_log="$work/deliver.log"
pids=()
cleanup() {
	status=$?
	for pid in "${pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	if [ $status -ne 0 ]; then
		for f in "$run_log" "$deliver_log"; do
			[ -s "$f" ] && { echo "--- $(basename "$f") (last 30 lines) ---" >&2; tail -n 30 "$f" >&2; }
		done
	fi
	rm -rf "$work"
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_log FILE PATTERN PID: wait (60s at most) until the process's log matches.
wait_log() {
	local deadline=$((SECONDS + 60))
	until sed 's/\x1b\[[0-9;]*m//g' "$1" 2>/dev/null | grep -E "$2" >/dev/null; do
		if ! kill -0 "$3" 2>/dev/null; then echo "process $3 exited early" >&2; return 1; fi
		if [ $SECONDS -ge $deadline ]; then echo "no '$2' in $1 after 60s" >&2; return 1; fi
		sleep 0.2
	done
}

step "create database $DB and table public.orders (REPLICA IDENTITY FULL: updates and deletes carry the old row)"
drop_slot="SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active"
"$demo" sql -q -db "$DB" "$drop_slot" 2>/dev/null || true
"$demo" sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" "CREATE DATABASE $DB"
"$demo" sql -db "$DB" "CREATE TABLE public.orders (id int PRIMARY KEY, customer text, total numeric(10,2), placed_at timestamptz)" \
	"ALTER TABLE public.orders REPLICA IDENTITY FULL"

export PGCDC_KAFKA_BROKERS=$PGCDC_TEST_KAFKA_BROKERS
export PGCDC_KAFKA_TOPIC_PREFIX=shop
export PGCDC_LOG_FORMAT=console
# Prefix each process's log lines (and drop the colour codes when stdout is not a terminal).
if [ -t 1 ]; then strip=''; else strip='s/\x1b\[[0-9;]*m//g;'; fi

step "start pgcdc run (the table's changes to the topic shop.public.orders)"
PGCDC_POSTGRES_DSN=$("$demo" dsn -db "$DB") PGCDC_POSTGRES_SLOT=$SLOT PGCDC_POSTGRES_PUBLICATION=$SLOT \
	PGCDC_METRICS_LISTEN=127.0.0.1:0 bin/pgcdc run > >(tee "$run_log" | sed -u "${strip}s/^/  run     │ /") 2>&1 &
pids+=($!)
wait_log "$run_log" ' INF streaming( |$)' "${pids[-1]}"

step "start a webhook endpoint that prints every call and checks its signature"
export ORDERS_HOOK_SECRET
ORDERS_HOOK_SECRET=$(bin/pgcdc deliver secret)
"$demo" webhook -url-file "$work/url" -n 3 -timeout 90s -secret-env ORDERS_HOOK_SECRET &
webhook_pid=$!
pids+=($webhook_pid)
until [ -s "$work/url" ]; do sleep 0.1; done
url=$(cat "$work/url")
echo "endpoint $url, signing secret in ORDERS_HOOK_SECRET (from: pgcdc deliver secret)"

step "start pgcdc deliver: route orders → $url, Hasura event-trigger body, signed"
export PGCDC_DELIVER_ROUTES="[{name: orders, url: \"$url\", tables: [public.orders], payload: hasura, signing_secret_env: ORDERS_HOOK_SECRET}]"
echo "PGCDC_DELIVER_ROUTES=$PGCDC_DELIVER_ROUTES"
PGCDC_DELIVER_GROUP_ID=demo-deliver-$$ PGCDC_DELIVER_METRICS_LISTEN=127.0.0.1:0 PGCDC_DELIVER_TOPIC_REFRESH_INTERVAL=1s \
	bin/pgcdc deliver > >(tee "$deliver_log" | sed -u "${strip}s/^/  deliver │ /") 2>&1 &
pids+=($!)
wait_log "$deliver_log" 'joined the consumer group' "${pids[-1]}"

step "write an insert, an update and a delete"
"$demo" sql -db "$DB" \
	"INSERT INTO public.orders VALUES (1, 'Ada Lovelace', 42.50, '2026-03-01 10:00:00+00')" \
	"UPDATE public.orders SET total = 45.00 WHERE id = 1" \
	"DELETE FROM public.orders WHERE id = 1"

webhook_status=0
wait "$webhook_pid" || webhook_status=$?

step "stop pgcdc deliver and pgcdc run (SIGTERM)"
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
sleep 0.1

for _ in 1 2 3 4 5; do
	if "$demo" sql -q -db "$DB" "$drop_slot" 2>/dev/null && "$demo" sql -q "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null; then
		break
	fi
	sleep 0.5
done

if [ $webhook_status -ne 0 ]; then
	echo "demo FAILED: the webhook did not get its 3 calls" >&2
	exit 1
fi
printf '\n%s✔ demo finished in %ss: three table changes arrived at the webhook%s\n' "$g" $((SECONDS - start)) "$r"
