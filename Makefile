# pgcdc — make targets. `make test` provisions its own PostgreSQL and Kafka (see README.md).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/pgcdc/pgcdc/pkg/version.Version=$(VERSION)
TESTENV  := $(GO) run ./internal/cmd/testenv --
PKGS     := ./...

.PHONY: all build test test-unit test-long lint kafka-jars clean

all: lint build test

build: ## build bin/pgcdc
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/pgcdc ./cmd/pgcdc

test: ## unit and integration tests with -race against real PostgreSQL and Kafka started on loopback
	$(TESTENV) $(GO) test -race -count=1 -timeout 45m $(PKGS)

# The long forms (about 45 min, then the cluster's): the live comparisons with Debezium 3.6.1 in Kafka Connect (every
# mode set, the outbox EventRouter, the event shaping option sets of docs/shaping.md, an incremental snapshot), pgcdc's peak
# memory over kafka.max_in_flight_bytes 4-64 MiB on 1 and 12 partitions (without -race, which would
# inflate it), DDL under load for 10 minutes, an incremental snapshot of 1,000,000 rows under writes.
LONG_TESTS := TestCompatDebezium|TestOutboxCompatDebezium|TestShapingDebezium|TestIncrementalDebezium|TestMemoryPeak|TestDDLUnderLoad|TestIncrementalUnderWrites
# The long forms of the cluster tests (about 100 min, with -race): 15 min of chaos with every fault
# kind, five of each cluster fault under heavier load, the raw three-broker cluster test.
LONG_CLUSTER_TESTS := TestShortChaos|TestClusterFaults|TestKafkaCluster
test-long: ## long-form tests: live Debezium comparisons in every mode set and shaping option set, memory sweep, 10 min of DDL under load, incremental snapshot of 1,000,000 rows, long chaos and cluster faults
	$(TESTENV) env PGCDC_TEST_LONG=1 PGCDC_TEST_DDL_DURATION=10m $(GO) test -count=1 -timeout 120m -run '$(LONG_TESTS)' -v ./connector
	$(TESTENV) env PGCDC_TEST_LONG=1 $(GO) test -race -count=1 -timeout 150m -run '$(LONG_CLUSTER_TESTS)' -v ./internal/chaos ./internal/testenv

test-unit: ## unit tests only (integration tests skip under -short)
	$(GO) test -short -race -count=1 $(PKGS)

lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

kafka-jars: ## fetch the Kafka broker jars into .cache/kafka (done on demand by the tests too)
	$(GO) test -count=1 -run '^$$' ./internal/testenv && $(GO) run ./internal/cmd/testenv -- true

clean:
	rm -rf bin .cache

.PHONY: test-versions
test-versions: ## the cross-version suite (PostgreSQL 14-18) and the failover test (17, 18); part of make test
	$(TESTENV) $(GO) test -race -count=1 -timeout 20m ./internal/versiontest

.PHONY: demo
demo: ## end-to-end demo: throwaway PostgreSQL + Kafka, pgcdc, an insert/update/delete, a consumer printing the events
	$(TESTENV) bash scripts/demo.sh

.PHONY: demo-outbox
demo-outbox: ## the transactional outbox end to end: examples/outbox places orders, pgcdc routes their events, a consumer ships each order once (README "Reliable eventing")
	$(TESTENV) bash scripts/demo-outbox.sh

.PHONY: chaos
chaos: DURATION ?= 60m
chaos: DDL_DURATION ?= 10m
chaos: ## long chaos run on a throwaway PostgreSQL and 3-broker Kafka cluster: make chaos DURATION=60m (goal: 1,000 faults and 30 of each heavy kind per 60 minutes; CHAOS_FLAGS for more knobs), then DDL under load with kill -9 for DDL_DURATION=10m
	$(GO) run ./internal/cmd/chaos -duration $(DURATION) $(CHAOS_FLAGS)
	$(TESTENV) env PGCDC_TEST_LONG=1 PGCDC_TEST_DDL_DURATION=$(DDL_DURATION) $(GO) test -count=1 -timeout 0 -run '^TestDDLUnderLoad$$' -v ./connector
	$(TESTENV) env PGCDC_TEST_LONG=1 $(GO) test -count=1 -timeout 0 -run '^TestIncrementalUnderWrites$$' -v ./connector

.PHONY: bench
bench: build ## benchmark against pg_recvlogical: throughput (with and without value schemas), latency, one large transaction; BENCH_FLAGS=-quick for a short run (docs/performance.md)
	$(GO) run ./internal/cmd/bench -pgcdc bin/pgcdc $(BENCH_FLAGS)

.PHONY: demo-deliver
demo-deliver: ## end-to-end webhook demo: throwaway PostgreSQL + Kafka, pgcdc run, pgcdc deliver, a webhook printing the calls
	$(TESTENV) bash scripts/demo-deliver.sh
