# pgcdc — make targets. `make test` provisions its own PostgreSQL and Kafka (see README.md).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/pgcdc/pgcdc/pkg/version.Version=$(VERSION)
TESTENV  := $(GO) run ./internal/cmd/testenv --
PKGS     := ./...

.PHONY: all build test test-unit lint kafka-jars clean

all: lint build test

build: ## build bin/pgcdc
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/pgcdc ./cmd/pgcdc

test: ## unit and integration tests with -race against real PostgreSQL and Kafka started on loopback
	$(TESTENV) $(GO) test -race -count=1 -timeout 45m $(PKGS)

test-unit: ## unit tests only (integration tests skip under -short)
	$(GO) test -short -race -count=1 $(PKGS)

lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

kafka-jars: ## fetch the Kafka broker jars into .cache/kafka (done on demand by the tests too)
	$(GO) test -count=1 -run '^$$' ./internal/testenv && $(GO) run ./internal/cmd/testenv -- true

clean:
	rm -rf bin .cache

.PHONY: demo
demo: ## end-to-end demo: throwaway PostgreSQL + Kafka, pgcdc, an insert/update/delete, a consumer printing the events
	$(TESTENV) bash scripts/demo.sh

.PHONY: chaos
chaos: DURATION ?= 60m
chaos: ## long chaos run on a throwaway PostgreSQL and 3-broker Kafka cluster: make chaos DURATION=60m (goal: 1,000 faults and 30 of each heavy kind per 60 minutes; CHAOS_FLAGS for more knobs)
	$(GO) run ./internal/cmd/chaos -duration $(DURATION) $(CHAOS_FLAGS)

.PHONY: test-long
test-long: ## make test with the long forms of the tests that have one (PGCDC_TEST_LONG=1: more faults, longer runs)
	PGCDC_TEST_LONG=1 $(TESTENV) $(GO) test -race -count=1 -timeout 150m $(PKGS)

.PHONY: bench
bench: build ## benchmark against pg_recvlogical: throughput (with and without value schemas), latency, one large transaction; BENCH_FLAGS=-quick for a short run (docs/performance.md)
	$(GO) run ./internal/cmd/bench -pgcdc bin/pgcdc $(BENCH_FLAGS)
