# Shared parts of the demo scripts (scripts/demo.sh, scripts/demo-outbox.sh): sourced, not run.
# Set before sourcing: DB and SLOT (the demo's database and slot), demo (the democonsume binary).

if [ -t 1 ]; then b=$'\033[1;34m' g=$'\033[1;32m' r=$'\033[0m'; else b='' g='' r=''; fi
step() { printf '\n%s▶ %s%s\n' "$b" "$*" "$r"; }

work=$(mktemp -d)
log="$work/pgcdc.log"
pgcdc_pid=""
consumer_pid=""
drop_slot="SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active"

demo_cleanup() {
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
trap demo_cleanup EXIT
trap 'exit 130' INT TERM

# fresh_database drops what an earlier run left on servers of your own (a logical slot pins its
# database and can only be dropped from it) and creates the database again.
fresh_database() {
	"$demo" sql -q -db "$DB" "$drop_slot" 2>/dev/null || true
	"$demo" sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" "CREATE DATABASE $DB"
}

# start_pgcdc runs `pgcdc run` (configured by the PGCDC_* variables) in the background, its log
# shown prefixed, and waits until it streams.
start_pgcdc() {
	# zerolog's console writer colours its output: strip the escapes when stdout is not a terminal.
	if [ -t 1 ]; then show='s/^/  pgcdc │ /'; else show='s/\x1b\[[0-9;]*m//g; s/^/  pgcdc │ /'; fi
	bin/pgcdc run > >(tee "$log" | sed -u "$show") 2>&1 &
	pgcdc_pid=$!
	local deadline=$((SECONDS + 60))
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
}

# stop_pgcdc sends SIGTERM and sets pgcdc_status to its exit status; pgcdc drains for at most
# kafka.shutdown_timeout (30s): the demo never hangs past 45s.
stop_pgcdc() {
	kill -TERM "$pgcdc_pid"
	(sleep 45 && kill -KILL "$pgcdc_pid" 2>/dev/null) &
	local watchdog=$!
	pgcdc_status=0
	wait "$pgcdc_pid" || pgcdc_status=$?
	kill "$watchdog" 2>/dev/null || true
	wait "$watchdog" 2>/dev/null || true
	pgcdc_pid=""
	sleep 0.1 # let the log pipe flush
	echo "pgcdc exited with status $pgcdc_status"
}

# drop_demo leaves nothing behind on servers of your own (testenv's are removed anyway): the slot
# would otherwise keep WAL forever. Its walsender may take a moment to exit after pgcdc.
drop_demo() {
	for _ in 1 2 3 4 5; do
		if "$demo" sql -q -db "$DB" "$drop_slot" 2>/dev/null &&
			"$demo" sql -q "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null; then
			break
		fi
		sleep 0.5
	done
}
