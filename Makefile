# replikv — see README.md. Every target works from a fresh clone on a machine with Go (and Docker for compose).
SHELL := /bin/bash
GO ?= go
GOBIN ?= $(shell $(GO) env GOPATH)/bin
VERSITYGW_VERSION := v1.8.0
STATICCHECK_VERSION := v0.8.2
export PATH := $(GOBIN):$(PATH)
export REPLIKV_VERSITYGW ?= $(GOBIN)/versitygw
# A count, not a duration: go1.26's fuzz coordinator can report "context deadline exceeded" as a failure when a
# duration runs out while a worker is busy (golang/go#75804, fixed in go1.27). 20,000 inputs take 0.5-35 s per target.
FUZZTIME ?= 20000x

.PHONY: all build demo tools lint test test-unit test-fuzz test-e2e test-chaos soak test-compose compose-plugin bench bench-failover compose-build compose-up compose-down clean

all: build

build:
	$(GO) build -o bin/ ./cmd/leader ./cmd/follower ./cmd/demo ./cmd/replikvctl

## The main job: a leader with embedded NATS, a live write load, a new follower joining mid-load, digests compared.
demo:
	$(GO) run ./cmd/demo

## Tools the tests need: versitygw (a real S3 server) and staticcheck, built from the Go module proxy.
tools: $(GOBIN)/versitygw $(GOBIN)/staticcheck

$(GOBIN)/versitygw:
	CGO_ENABLED=0 GOBIN=$(GOBIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(GOBIN)/staticcheck:
	GOBIN=$(GOBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(GOBIN)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./tests/
	$(GO) vet -tags compose ./tests/compose/
	$(GO) vet -tags bench ./tests/bench/
	$(GO) vet -tags chaos ./tests/chaos/
	$(GOBIN)/staticcheck ./...
	$(GOBIN)/staticcheck -tags e2e ./tests/
	$(GOBIN)/staticcheck -tags compose ./tests/compose/
	$(GOBIN)/staticcheck -tags bench ./tests/bench/
	$(GOBIN)/staticcheck -tags chaos ./tests/chaos/

## The whole suite: unit (with the race detector), fuzz (short), multi-process end-to-end, the fault-injection suite
## (CI size), and Docker compose.
test: tools test-unit test-fuzz test-e2e test-chaos test-compose

test-unit: tools
	$(GO) test -count=1 -race -timeout 20m ./...

## Every fuzz target for FUZZTIME (the seed corpora also run in test-unit).
test-fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

test-e2e: tools
	$(GO) test -count=1 -tags e2e -timeout 30m ./tests/

## The fault-injection suite with its linearizability checker: CHAOS_DURATION of faults (3 minutes in CI) from a seeded
## schedule; CHAOS_SEED replays a run (empty: a new seed, printed).
CHAOS_DURATION ?= 3m
CHAOS_SEED ?=
test-chaos: tools
	$(GO) test -count=1 -tags chaos -v -timeout 90m ./tests/chaos/ -args \
	  -chaos.duration=$(CHAOS_DURATION) $(if $(CHAOS_SEED),-chaos.seed=$(CHAOS_SEED))

## A long fault-injection run (SOAK_DURATION, default 1h); its summary goes to the terminal.
SOAK_DURATION ?= 1h
soak:
	$(MAKE) test-chaos CHAOS_DURATION=$(SOAK_DURATION)

## The compose suite once per compose command: `docker compose` (v2, built by scripts/install-compose.sh when missing)
## and Debian's docker-compose (v1). With CI=true both must answer; elsewhere the installed ones run, and with none
## the suite runs once and skips (no Docker) or says what is missing.
test-compose: compose-plugin
	@set -e; ran=0; \
	for c in "docker compose" docker-compose; do \
	  if $$c version >/dev/null 2>&1; then \
	    echo "--- compose suite with: $$c"; \
	    COMPOSE="$$c" $(GO) test -count=1 -tags compose -timeout 40m ./tests/compose/; ran=1; \
	  elif [ "$${CI:-}" = true ]; then echo "CI needs '$$c' for the compose suite" >&2; exit 1; fi; \
	done; \
	if [ $$ran = 0 ]; then $(GO) test -count=1 -tags compose -timeout 40m ./tests/compose/; fi

## `docker compose` (Compose v2) for the compose suite, built from the Go module proxy if the docker CLI lacks it.
compose-plugin:
	./scripts/install-compose.sh

bench: tools
	./scripts/bench.sh

## The write outage at a leader kill, over FAILOVER_KILLS kills of whichever node leads (docs/benchmarks.md#failover).
FAILOVER_KILLS ?= 12
bench-failover: tools
	$(GO) test -count=1 -tags e2e -timeout 30m -run '^TestFailover_KillLeaderRepeatedly$$' -v ./tests/ -args -failover-kills=$(FAILOVER_KILLS)

compose-build:
	./scripts/compose.sh build

compose-up:
	./scripts/compose.sh up

compose-down:
	./scripts/compose.sh down

clean:
	rm -rf bin build
